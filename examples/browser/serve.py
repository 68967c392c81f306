"""Serve the browser chat example, with wsloop's source for Pyodide, on 127.0.0.1.

The page runs Python in the browser (Pyodide) and needs three things over HTTP:
the page itself (this folder), a Pyodide distribution, and wsloop's Python
files, which it writes into Pyodide's file system before ``import wsloop``.
This script serves all three; nothing is fetched from the Internet::

    npm install pyodide@314.0.7          # once: a Pyodide distribution on disk
    python -m wsloop serve --port 8765   # the chat relay, in another terminal
    python examples/browser/serve.py --pyodide node_modules/pyodide

then open http://127.0.0.1:8000/?server=ws://127.0.0.1:8765&room=lobby&name=alice
in two browser tabs (with different names) and chat.

URL layout: ``/`` is this folder, ``/pyodide/`` the Pyodide folder,
``/wsloop/files.json`` the list of Python files to install (by package) and
``/wsloop/<package>/<file>`` each of them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import importlib
import json
import posixpath
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_PYODIDE = REPO / "tests" / "browser" / "node_modules" / "pyodide"


def python_files(package_dir: Path) -> list[str]:
    """The ``.py`` files of a package, relative to it, in a stable order."""
    return sorted(
        p.relative_to(package_dir).as_posix()
        for p in package_dir.rglob("*.py")
        if "__pycache__" not in p.parts
    )


def packages_for_browser() -> dict[str, Path]:
    """wsloop's folder, and websockets' too while ``import wsloop`` still needs it.

    The browser driver never uses websockets; an ``import wsloop`` that
    imports it eagerly makes Pyodide need its files all the same.
    """
    wsloop = importlib.import_module("wsloop")
    found = {"wsloop": Path(wsloop.__file__).resolve().parent}
    check = "import sys, wsloop; print('websockets' in sys.modules)"
    eager = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    ).stdout.strip()
    if eager == "True":
        websockets = importlib.import_module("websockets")
        found["websockets"] = Path(websockets.__file__).resolve().parent
    return found


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves ``mounts`` (URL prefix -> folder) and a few generated JSON files."""

    mounts: ClassVar[dict[str, Path]] = {}
    generated: ClassVar[dict[str, bytes]] = {}
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".py": "text/plain; charset=utf-8",
        ".json": "application/json",
        ".zip": "application/zip",
    }

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        body = self.generated.get(path)
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def translate_path(self, path: str) -> str:
        path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
        best = ""
        for prefix in self.mounts:
            if (path == prefix.rstrip("/") or path.startswith(prefix)) and len(prefix) > len(best):
                best = prefix
        root = self.mounts.get(best or "/")
        if root is None:
            return str(HERE / "__nothing_here__")
        rest = path[len(best) :].lstrip("/") if best else path.lstrip("/")
        target = (root / rest).resolve()
        if root.resolve() not in (target, *target.parents):
            return str(HERE / "__nothing_here__")
        return str(target)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:  # type: ignore[attr-defined]
            super().log_message(format, *args)


def make_server(
    port: int = 0,
    *,
    pyodide: Path | None = None,
    mounts: dict[str, Path] | None = None,
    generated: dict[str, object] | None = None,
    verbose: bool = False,
) -> http.server.ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 for the example (and, with ``mounts``, the tests).

    Args:
        port: 0 picks a free one (``server.server_address[1]``).
        pyodide: the folder of the npm ``pyodide`` package, served at /pyodide/.
        mounts: more URL prefixes (ending in ``/``) and the folders they serve.
        generated: more paths answered with the JSON of a value.
    """
    packages = packages_for_browser()
    table: dict[str, Path] = {"/": HERE}
    if pyodide is not None:
        table["/pyodide/"] = pyodide.resolve()
    listing = {}
    for name, folder in packages.items():
        table[f"/wsloop/{name}/"] = folder
        listing[name] = python_files(folder)
    table.update(mounts or {})
    files = {"/wsloop/files.json": json.dumps(listing).encode()}
    for path, value in (generated or {}).items():
        files[path] = json.dumps(value).encode()
    handler = type("Handler", (_Handler,), {"mounts": table, "generated": files})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(handler, directory=str(HERE))
    )
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve_in_thread(server: http.server.ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` on a daemon thread; stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="example-http", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument(
        "--pyodide",
        type=Path,
        default=DEFAULT_PYODIDE if DEFAULT_PYODIDE.is_dir() else None,
        help="the folder of the npm pyodide package (default: the tests' copy)",
    )
    args = parser.parse_args(argv)
    if args.pyodide is None or not (args.pyodide / "pyodide.mjs").is_file():
        parser.error("--pyodide must name a folder with pyodide.mjs (npm install pyodide)")
    server = make_server(args.port, pyodide=args.pyodide, verbose=True)
    port = server.server_address[1]
    print(f"serving the chat example on http://127.0.0.1:{port}/", flush=True)
    print(
        f"open http://127.0.0.1:{port}/?server=ws://127.0.0.1:8765&room=lobby&name=alice",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
