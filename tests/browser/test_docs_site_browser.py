"""The built documentation site in headless Chromium: the WebSocket reference renders.

Builds the site (``mkdocs build --strict``) into a temporary directory,
serves it on 127.0.0.1, opens ``reference/wsloop.html`` with
``harness/site_runner.mjs`` (npm playwright-core driving Debian's chromium),
checks that the ``WebSocket`` entry and its triggers are on the rendered
page, and that the screenshot is not blank.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from screenshots import colours

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parent / "harness"
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
CHROMIUM = os.environ.get("WSLOOP_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("WSLOOP_REQUIRE_BROWSER") == "1"
TRIGGERS = ["on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message"]

pytest.importorskip("mkdocs", reason="the docs group is not installed")


def _need(ok: bool, what: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(what)
        pytest.skip(what)


@contextlib.contextmanager
def _serve(directory: Path):  # type: ignore[no-untyped-def]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined,method-assign]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()


def test_websocket_reference_renders_in_chromium(tmp_path: Path) -> None:
    node = shutil.which("node")
    _need(node is not None, "needs Node.js")
    _need((NODE_MODULES / "playwright-core").is_dir(), "needs tests/browser/node_modules")
    _need(os.access(CHROMIUM, os.X_OK), f"needs Chromium at {CHROMIUM}")
    assert node is not None

    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=110,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr

    screenshot = tmp_path / "websocket-reference.png"
    with _serve(site) as base:
        done = subprocess.run(
            [
                node,
                str(HARNESS / "site_runner.mjs"),
                f"{base}/reference/wsloop.html",
                str(screenshot),
            ],
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["console"] == [], page["console"]
    assert page["title"].startswith("wsloop"), page["title"]
    assert page["websocket_visible"] is True, page
    ids = set(page["ids"])
    assert "wsloop.WebSocket" in ids
    missing = [t for t in TRIGGERS if f"wsloop.WebSocket.{t}" not in ids]
    assert not missing, missing
    assert page["text_length"] > 2000, page
    assert len(colours(screenshot)) > 16, "the screenshot is blank"
