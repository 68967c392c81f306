// Opens the relay's /status page in Debian's Chromium (playwright-core),
// reports what a person sees on it and saves a screenshot.
//   node status_runner.mjs URL SCREENSHOT.png
// One JSON line on stdout: {title, tiles: {label: value}, rooms: [[cells]], console: [...]}
import { launchChromium, watchPage } from "./launch.mjs";

const [url, screenshot] = process.argv.slice(2);
const consoleLines = [];
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  watchPage(page, consoleLines);
  await page.goto(url, { waitUntil: "load" });
  const out = {
    title: await page.title(),
    tiles: Object.fromEntries(await page.$$eval(".tile", (els) =>
      els.map((e) => [e.querySelector(".k").textContent, e.querySelector(".v").textContent]))),
    rooms: await page.$$eval("tbody tr", (rows) =>
      rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent))),
    value_colour: await page.$eval(".v", (e) => getComputedStyle(e).color),
    console: consoleLines,
  };
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
