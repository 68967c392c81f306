// Debian's Chromium through playwright-core (no browser download), with the
// flags this machine needs: no sandbox as root, no GPU, and none of the
// background connections that a closed network refuses.
//   import { launchChromium, watchPage } from "./launch.mjs";
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.WSLOOP_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// Collects a page's uncaught errors (and, with errorsOnly false, every console
// line) into `lines`, each prefixed with `who` when given.
export function watchPage(page, lines, { who = "", errorsOnly = true } = {}) {
  const tag = who ? `${who} ` : "";
  page.on("pageerror", (err) => lines.push(`${tag}pageerror: ${err}`));
  page.on("console", (msg) => {
    if (!errorsOnly || msg.type() === "error") lines.push(`${tag}${msg.type()}: ${msg.text()}`);
  });
}
