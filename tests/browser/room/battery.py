"""The ``wsloop.Room`` battery, run inside Pyodide in headless Chromium.

``tests/browser/test_room_browser.py`` starts a relay on 127.0.0.1 and a
desktop member in the room ``/room/browser``; this page joins the same room
three ways: a ``wsloop.Room`` on a poll-style ``WebSocket`` with the browser
driver, a ``wsloop.Room`` on an ``AsyncWebSocket`` with the browser driver,
and the browser's own JavaScript ``WebSocket`` speaking the JSON of
``docs/rooms.md`` by hand, as a Construct game does. Served as
``/tests/battery.py`` to the battery page of ``harness/``; it imports nothing
from the test suite.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any

CTX: dict[str, Any] = {}


async def frames(until: Any, what: str, *sockets: Any) -> None:
    """Poll the sockets, then yield to JavaScript, until ``until()`` or fail."""
    end = time.monotonic() + float(CTX["timeout"])
    while not until():
        for ws in sockets:
            ws.poll()
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def recorder(room: Any) -> dict[str, list[Any]]:
    log: dict[str, list[Any]] = {"joined": [], "member_joined": [], "left": [], "messages": []}
    room.on_joined = lambda me: log["joined"].append(me.id)
    room.on_member_joined = lambda m: log["member_joined"].append(m.name)
    room.on_member_left = lambda m, why: log["left"].append([m.id, why])

    def on_message(member: Any, data: Any) -> None:
        shown = {"bytes": list(data)} if isinstance(data, bytes) else data
        log["messages"].append([member.name, shown])

    room.on_message = on_message
    return log


async def js_member(url: str, log: list[Any]) -> Any:
    """The browser's own WebSocket, speaking the room protocol by hand."""
    import js
    from pyodide.ffi import create_proxy

    sock = js.WebSocket.new(url, "wsloop.room.v1")

    def opened(_event: Any) -> None:
        sock.send(json.dumps({"type": "join", "name": "js", "meta": {"engine": "construct"}}))

    def message(event: Any) -> None:
        if isinstance(event.data, str):
            log.append(json.loads(event.data))

    sock.addEventListener("open", create_proxy(opened))
    sock.addEventListener("message", create_proxy(message))
    return sock


async def run(ctx: dict[str, Any]) -> dict[str, Any]:
    import wsloop
    from wsloop.drivers.browser import BrowserDriver

    url = ctx["relay"] + "/room/browser"
    js_log: list[Any] = []
    sock = await js_member(url, js_log)
    await frames(lambda: any(m.get("type") == "welcome" for m in js_log), "the JS welcome")

    poll_ws = wsloop.WebSocket(driver=BrowserDriver)
    poll_room = wsloop.Room(poll_ws, "poll", {"driver": "browser"})
    poll_log = recorder(poll_room)
    poll_room.connect(url)
    await frames(lambda: poll_log["joined"], "the poll Room's welcome", poll_ws)

    async_ws = wsloop.AsyncWebSocket()  # the browser driver under emscripten
    assert isinstance(async_ws.driver, BrowserDriver), async_ws.driver
    async_room = wsloop.Room(async_ws, "async")
    async_log = recorder(async_room)
    await async_room.connect(url)
    await frames(lambda: async_log["joined"], "the async Room's welcome", poll_ws)

    poll_room.send({"from": "poll"})
    async_room.send(b"\x00\x01\x02")
    sock.send(json.dumps({"type": "send", "id": "js-1", "data": {"from": "js"}}))
    # The desktop member answers each of the three with "ack <n>", then says "done".
    await frames(
        lambda: (
            ["desktop", "done"] in poll_log["messages"]
            and ["desktop", "done"] in async_log["messages"]
        ),
        "the desktop's done",
        poll_ws,
    )
    await frames(
        lambda: any(m.get("data") == "done" for m in js_log if m.get("type") == "message"),
        "the JS member's done",
        poll_ws,
    )
    sock.close()
    await frames(lambda: any(why for _, why in poll_log["left"]), "the JS member's left", poll_ws)
    poll_room.leave()
    await frames(lambda: poll_ws.is_closed, "the poll socket's close", poll_ws)
    await async_ws.aclose()
    js_messages = [[m["from"], m.get("data")] for m in js_log if m.get("type") == "message"]
    return {
        "poll": poll_log,
        "async": async_log,
        "js_messages": js_messages,
        "js_member": next(m["member"] for m in js_log if m.get("type") == "welcome"),
        "members_seen_by_poll": sorted(m.name for m in poll_room.members.values()),
    }


async def main(ctx_json: str, log: Any = None) -> str:
    CTX.update(json.loads(ctx_json))
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(run(CTX), float(CTX["timeout"]) * 3)
        result = {"ok": True, "data": data}
    except BaseException as exc:  # report everything, a timeout included
        result = {"ok": False, "error": "".join(traceback.format_exception(exc))}
    result["seconds"] = round(time.monotonic() - started, 3)
    if log is not None:
        log(f"room: {'ok' if result['ok'] else 'FAILED'}")
    return json.dumps(
        {
            "runtime": CTX.get("runtime"),
            "python": sys.version.split()[0],
            "results": {"room": result},
        }
    )
