"""``wsloop.Room`` with the browser driver, in headless Chromium, in one room with others.

The relay runs here (``wsloop.relay.serve``, the room protocol). A desktop
member (a ``wsloop.Room`` on the thread driver) joins ``/room/browser``; the
page (``room/battery.py`` in Pyodide, served by the battery page of
``harness/``) joins it with a ``Room`` on ``WebSocket``, one on
``AsyncWebSocket`` (both with the browser driver) and the browser's own
JavaScript ``WebSocket`` speaking the JSON by hand, as a Construct game
would. The desktop member acknowledges each of the three messages and then
says ``done``; every member must see the same ordered log.

Skipped like ``test_browser.py`` when Node.js, playwright-core or Chromium is
missing (a failure under ``WSLOOP_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from test_browser import (
    CASE_WAIT,
    HARNESS,
    HERE,
    NODE_MODULES,
    RUNNER_TIMEOUT,
    _load_example_server,
    _marker,
    _need_chromium,
    _run_node,
)

from wsloop import Member, Room, WebSocket
from wsloop.relay import serve

pytestmark = [_marker(), pytest.mark.slow, pytest.mark.timeout(int(RUNNER_TIMEOUT) + 120)]


class Desktop:
    """The desktop member: acknowledges the page's three messages, then says done."""

    def __init__(self, url: str) -> None:
        self.ws = WebSocket(driver="thread")
        self.room = Room(self.ws, "desktop")
        self.log: list[tuple[str, Any]] = []
        self.joined = threading.Event()
        self.room.on_joined = lambda me: self.joined.set()
        self.room.on_message = self.on_message
        self.room.connect(url)

    def on_message(self, member: Member, data: Any) -> None:
        self.log.append((member.name, data))
        if member.name != "desktop":
            heard = sum(1 for name, _ in self.log if name != "desktop")
            self.room.send(f"ack {heard}")
            if heard == 3:
                self.room.send("done")


def test_room_in_chromium(tmp_path_factory: pytest.TempPathFactory) -> None:
    _need_chromium()
    serve_example = _load_example_server()
    with serve() as relay:
        desktop = Desktop(f"{relay.url}/room/browser")
        assert desktop.joined.wait(CASE_WAIT)
        server = serve_example.make_server(
            pyodide=NODE_MODULES / "pyodide",
            mounts={"/harness/": HARNESS, "/tests/": HERE / "room"},
            generated={
                "/run/config.json": {
                    "ctx": {"relay": relay.url, "timeout": CASE_WAIT, "runtime": "chromium"}
                }
            },
        )
        serve_example.serve_in_thread(server)
        artifacts = tmp_path_factory.mktemp("room-artifacts")
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            run = _run_node(
                HARNESS / "chromium_runner.mjs",
                {
                    "battery_url": f"{base}/harness/page.html",
                    "artifacts": str(artifacts),
                    "timeout_ms": int(RUNNER_TIMEOUT * 1000 / 4),
                    "example": None,
                },
                tmp_path_factory.mktemp("room-chromium"),
            )
        finally:
            server.shutdown()
            server.server_close()
            desktop.ws.close()
            desktop.ws.wait_closed(CASE_WAIT)
    report = run.get("battery") or {}
    assert "harness_error" not in report, report.get("harness_error") or run
    result = report["results"]["room"]
    assert result["ok"], result.get("error")
    data = result["data"]
    said = [[name, value] for name, value in desktop.log]
    # One log for everyone: the page's two Rooms saw exactly what the desktop saw, in order
    # (all three page messages were sent after every member had joined).
    shown = [[n, {"bytes": list(v)} if isinstance(v, bytes) else v] for n, v in said]
    assert data["poll"]["messages"] == shown, json.dumps(data)
    assert data["async"]["messages"] == shown, json.dumps(data)
    assert sorted(n for n, _ in said if n != "desktop") == ["async", "js", "poll"]
    assert [v for n, v in said if n == "desktop"] == ["ack 1", "ack 2", "ack 3", "done"]
    # The JS member (a Construct-style client) saw the same sequence, binary as headers.
    assert len(data["js_messages"]) == len(said)
    assert data["poll"]["member_joined"] == ["async"]
    assert {"async", "desktop", "js", "poll"} <= set(data["members_seen_by_poll"])
    # The JS socket closed without "leave": the others see it dropped (its seat waits).
    assert data["poll"]["left"] == [[data["js_member"], "dropped"]]
