// Drives Debian's Chromium with playwright-core (no browser download):
// runs the battery page, then the chat example with two users, and saves
// screenshots. One JSON line on stdout:
//   {battery: report, example: {...}|null, console: [...]}
//
//   node chromium_runner.mjs CONFIG.json
// CONFIG: {battery_url, artifacts, timeout_ms, example: {alice, bob}|null}
import { readFile } from "node:fs/promises";
import { launchChromium, watchPage } from "./launch.mjs";

const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const timeout = config.timeout_ms ?? 180000;
const consoleLines = [];

const browser = await launchChromium();

function watch(page, who) {
  watchPage(page, consoleLines, { who, errorsOnly: false });
}

const out = { battery: null, example: null, console: consoleLines };
const pages = {};

async function snapshot() {
  // What each chat page showed when a step failed.
  const seen = {};
  for (const [who, page] of Object.entries(pages)) {
    try {
      seen[who] = {
        status: await page.textContent("#status"),
        log: await page.$$eval("#log li", (items) => items.map((i) => i.textContent)),
      };
    } catch (err) {
      seen[who] = String(err);
    }
  }
  return seen;
}
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page, "battery");
  const started = Date.now();
  await page.goto(config.battery_url);
  await page.waitForFunction(() => window.__wsloopReport !== undefined, null, { timeout });
  out.battery = await page.evaluate(() => window.__wsloopReport);
  out.battery.page_ms = Date.now() - started;
  out.battery.browser_version = browser.version();
  await page.screenshot({ path: `${config.artifacts}/battery.png`, fullPage: true });

  if (config.example) {
    const example = { steps: [] };
    out.example = example;
    const alice = await context.newPage();
    const bob = await context.newPage();
    pages.alice = alice;
    pages.bob = bob;
    watch(alice, "alice");
    watch(bob, "bob");
    await alice.setViewportSize({ width: 760, height: 560 });
    await alice.goto(config.example.alice);
    await bob.goto(config.example.bob);
    for (const [who, page] of [["alice", alice], ["bob", bob]]) {
      await page.waitForSelector("#status.open", { timeout });
      example.steps.push(`${who} connected`);
    }
    // Both are in the room (whoever joined second, the first saw a note): talk.
    await alice.fill("#text", "hello from Alice!");
    await alice.press("#text", "Enter");
    await bob.waitForSelector("#log li.other >> text=hello from Alice", { timeout });
    example.steps.push("bob got alice's line");
    await bob.fill("#text", "hi Alice, Bob here (Python in the browser too)");
    await bob.click("#send");
    await alice.waitForSelector("#log li.other >> text=Bob here", { timeout });
    example.steps.push("alice got bob's line");
    example.alice_log = await alice.$$eval("#log li", (items) => items.map((i) => i.textContent));
    example.bob_log = await bob.$$eval("#log li", (items) => items.map((i) => i.textContent));
    example.alice_status = await alice.textContent("#status");
    example.screenshot = `${config.artifacts}/example-chat.png`;
    await alice.screenshot({ path: example.screenshot });
  }
} catch (err) {
  out.error = String(err && err.stack ? err.stack : err);
  if (out.example) out.example.pages = await snapshot();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
