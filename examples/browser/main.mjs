// Boots Pyodide from ./pyodide/ (served by serve.py, no network), installs
// wsloop's Python files into its file system, then runs chat.py.
import { loadPyodide } from "./pyodide/pyodide.mjs";

const status = document.getElementById("status");

async function installPackages(pyodide) {
  const site = "/home/pyodide/site";
  const listing = await (await fetch("wsloop/files.json")).json();
  for (const [name, files] of Object.entries(listing)) {
    for (const rel of files) {
      const text = await (await fetch(`wsloop/${name}/${rel}`)).text();
      const target = `${site}/${name}/${rel}`;
      pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
      pyodide.FS.writeFile(target, text, { encoding: "utf8" });
    }
  }
  pyodide.runPython(`import sys; sys.path.insert(0, "${site}")`);
}

try {
  const pyodide = await loadPyodide({ indexURL: new URL("pyodide/", location.href).href });
  await installPackages(pyodide);
  const chat = await (await fetch("chat.py")).text();
  await pyodide.runPythonAsync(chat);
} catch (err) {
  status.className = "closed";
  status.textContent = `could not start Python: ${err}`;
  console.error(err);
}
