// The battery in headless Chromium: Pyodide from /pyodide/, wsloop's files
// from /wsloop/ (see examples/browser/serve.py), the servers' URLs from
// /run/config.json. The report lands in window.__wsloopReport.
import { loadPyodide } from "/pyodide/pyodide.mjs";
import { runBattery } from "./boot.mjs";

const status = document.getElementById("status");
const list = document.getElementById("results");

async function text(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
}

try {
  const started = Date.now();
  const pyodide = await loadPyodide({ indexURL: "/pyodide/" });
  const loadMs = Date.now() - started;
  const config = JSON.parse(await text("/run/config.json"));
  const listing = JSON.parse(await text("/wsloop/files.json"));
  const readers = { battery: () => text("/tests/battery.py") };
  const packages = {};
  const extras = {};
  for (const [name, files] of Object.entries(listing)) {
    readers[name] = (rel) => text(`/wsloop/${name}/${rel}`);
    // wsloop itself goes on the path; anything else only if the battery asks.
    (name === "wsloop" ? packages : extras)[name] = files;
  }
  status.textContent = "running…";
  const report = await runBattery(pyodide, { packages, extras, ctx: config.ctx }, readers, (line) =>
    console.log(line),
  );
  report.load_ms = loadMs;
  report.pyodide = pyodide.version;
  report.user_agent = navigator.userAgent;
  for (const [name, result] of Object.entries(report.results)) {
    const item = document.createElement("li");
    item.className = result.ok ? "ok" : "failed";
    item.textContent = `${result.ok ? "ok" : "FAILED"}  ${name}  (${result.seconds} s)`;
    list.appendChild(item);
  }
  status.textContent = "done";
  window.__wsloopReport = report;
} catch (err) {
  status.textContent = `harness error: ${err}`;
  window.__wsloopReport = { harness_error: String(err && err.stack ? err.stack : err) };
}
