// Opens the built documentation site's WebSocket reference in Debian's
// Chromium (playwright-core), reports what it shows and saves a screenshot.
//   node site_runner.mjs URL SCREENSHOT.png
// One JSON line on stdout: {title, headings: [...], text_length, console: [...]}
import { launchChromium, watchPage } from "./launch.mjs";

const [url, screenshot] = process.argv.slice(2);
const consoleLines = [];
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  watchPage(page, consoleLines);
  await page.goto(url, { waitUntil: "load" });
  await page.locator("[id='wsloop.WebSocket']").scrollIntoViewIfNeeded();
  const out = {
    title: await page.title(),
    // Every documented object's anchor id on the page, as rendered.
    ids: await page.$$eval("[id^='wsloop.']", (els) => els.map((e) => e.id)),
    websocket_visible: await page.locator("[id='wsloop.WebSocket']").isVisible(),
    text_length: (await page.textContent("article")).length,
    console: consoleLines,
  };
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
