"""The relay's ``/status`` page in headless Chromium, as a person would open it.

A relay runs here with members in two rooms (plain and room protocol);
``harness/status_runner.mjs`` (npm playwright-core driving Debian's
chromium) opens ``/status``, reports the figures and the room table it
rendered, and saves a screenshot, which must show the page's accent colour
(the figures are drawn, not just in the DOM).

Skipped when Node.js, playwright-core or Chromium is missing (a failure
under ``WSLOOP_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from screenshots import colours

from wsloop import Room, WebSocket
from wsloop.relay import serve
from wsloop.testing import poll_until

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "harness"
NODE_MODULES = HERE / "node_modules"
CHROMIUM = os.environ.get("WSLOOP_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("WSLOOP_REQUIRE_BROWSER") == "1"
ACCENT = (0x1A, 0x5F, 0xB4)


def _need(ok: bool, what: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(what)
        pytest.skip(what)


def test_the_status_page_shows_rooms_and_figures(tmp_path: Path) -> None:
    node = shutil.which("node")
    _need(node is not None, "needs Node.js")
    _need((NODE_MODULES / "playwright-core").is_dir(), "needs tests/browser/node_modules")
    _need(os.access(CHROMIUM, os.X_OK), f"needs Chromium at {CHROMIUM}")
    assert node is not None

    with serve() as relay:
        plain = [WebSocket() for _ in range(3)]
        for ws in plain:
            ws.connect(f"{relay.url}/room/lobby")
        room = Room(WebSocket(), "ann")
        room.connect(f"{relay.url}/room/table-1")
        sockets = [*plain, room.ws]
        poll_until(lambda: all(ws.is_open for ws in plain) and room.joined, *sockets)
        plain[0].send_text("hello")
        poll_until(lambda: relay.stats.messages_out >= 2, *sockets)

        screenshot = tmp_path / "status.png"
        status_url = relay.url.replace("ws://", "http://") + "/status"
        done = subprocess.run(
            [node, str(HARNESS / "status_runner.mjs"), status_url, str(screenshot)],
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
        )
        for ws in sockets:
            ws.close()
        poll_until(lambda: all(ws.is_closed for ws in sockets), *sockets)
    assert done.returncode == 0, done.stdout + done.stderr
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["console"] == [], page["console"]
    assert page["title"] == "wsloop relay status"
    assert page["tiles"]["connections"] == "4"
    assert page["tiles"]["rooms"] == "2"
    assert int(page["tiles"]["messages in"]) >= 2  # the hello and the room's join
    assert page["rooms"] == [
        ["/room/lobby", "plain", "3", "-"],
        ["/room/table-1", "room", "1", "1"],
    ], page["rooms"]
    assert page["value_colour"] == "rgb(26, 95, 180)"
    seen = colours(screenshot)
    assert len(seen) > 16, "the screenshot is blank"
    assert ACCENT in seen, "the figures are not drawn in the page's accent colour"
    print(sys.version_info[:2], len(seen), "colours on the screenshot")
