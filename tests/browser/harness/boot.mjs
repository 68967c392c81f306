// Shared by the Node.js runner and the Chromium page: put Python files into
// Pyodide's file system and run the battery. No network: every file comes
// from the local source tree, read by the caller's `read(path)`.

/** Write `files` (paths relative to a source root) under `root` in Pyodide's FS. */
export async function installFiles(pyodide, root, files, read) {
  for (const rel of files) {
    const target = `${root}/${rel}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, await read(rel), { encoding: "utf8" });
  }
}

/**
 * Install the packages listed in `config.packages` ({name: [files]}) below
 * /wsloop-test/site, then the battery; run the cases; return the report.
 *
 * `readers[name](rel)` returns the text of one file of package `name`;
 * `readers.battery()` returns battery.py.
 */
export async function runBattery(pyodide, config, readers, log = () => {}) {
  const site = "/wsloop-test/site";
  for (const [name, files] of Object.entries(config.packages)) {
    await installFiles(pyodide, `${site}/${name}`, files, readers[name]);
  }
  for (const [name, files] of Object.entries(config.extras || {})) {
    await installFiles(pyodide, `/wsloop-test/extra/${name}`, files, readers[name]);
  }
  pyodide.FS.writeFile(`${site}/wsloop_battery.py`, await readers.battery(), {
    encoding: "utf8",
  });
  pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(site)})`);
  // Loose packages (websockets, for a wsloop that still imports it eagerly)
  // are only put on the path when the battery asks for them.
  const battery = pyodide.pyimport("wsloop_battery");
  const started = Date.now();
  const text = await battery.main(JSON.stringify(config.ctx), log);
  battery.destroy();
  const report = JSON.parse(text);
  report.wall_ms = Date.now() - started;
  return report;
}
