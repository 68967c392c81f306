// Runs the battery in Pyodide under Node.js (the npm `pyodide` package, no
// network). Node 20 needs --experimental-websocket for its WebSocket (undici,
// which follows the browser's rules); Node 22+ has it by default.
//
//   node --experimental-websocket node_runner.mjs CONFIG.json
//
// CONFIG: {packages: {name: {dir, files}}, extras: {...}, battery, ctx}.
// Prints progress on stderr and the JSON report as the last stdout line.
import { readFile } from "node:fs/promises";
import { loadPyodide } from "pyodide";
import { runBattery } from "./boot.mjs";

const config = JSON.parse(await readFile(process.argv[2], "utf8"));
const started = Date.now();
const pyodide = await loadPyodide({ stdout: (s) => console.error(s), stderr: (s) => console.error(s) });
const loadMs = Date.now() - started;

const readers = { battery: () => readFile(config.battery, "utf8") };
const listing = {};
const extras = {};
for (const [name, pkg] of Object.entries(config.packages)) {
  readers[name] = (rel) => readFile(`${pkg.dir}/${rel}`, "utf8");
  listing[name] = pkg.files;
}
for (const [name, pkg] of Object.entries(config.extras || {})) {
  readers[name] = (rel) => readFile(`${pkg.dir}/${rel}`, "utf8");
  extras[name] = pkg.files;
}
const report = await runBattery(
  pyodide,
  { packages: listing, extras, ctx: config.ctx },
  readers,
  (line) => console.error(line),
);
report.load_ms = loadMs;
report.pyodide = pyodide.version;
report.node = process.version;
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(0);
