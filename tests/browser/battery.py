"""The browser driver's behaviour battery, run inside Pyodide (Node.js or Chromium).

``tests/browser/test_browser.py`` starts the servers on 127.0.0.1, hands their
URLs to a runner (``harness/node_runner.mjs`` or the Chromium page), which
installs wsloop from the source tree into Pyodide's file system and awaits
:func:`main`. Each case drives a real ``wsloop.WebSocket`` the way a game
does: ``ws.poll()`` once per frame, with ``await asyncio.sleep()`` between
frames so that JavaScript can deliver the socket's events. A case returns
what it observed (checked again in pytest, with the server's side) or raises
``AssertionError``.

This file runs in the browser's Python only; it imports nothing from the
test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
import traceback
import weakref
from typing import Any

CTX: dict[str, Any] = {}
CASES: dict[str, Any] = {}
IMPORT_NOTES: dict[str, Any] = {}


def case(fn: Any) -> Any:
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def _import_wsloop() -> None:
    """Import wsloop as a browser app would; note whether it needed websockets."""
    try:
        import wsloop
    except ModuleNotFoundError as exc:
        if exc.name != "websockets":
            raise
        IMPORT_NOTES["needs_websockets"] = True
        sys.path.append("/wsloop-test/extra")
        for name in [m for m in sys.modules if m == "wsloop" or m.startswith("wsloop.")]:
            del sys.modules[name]
        import wsloop  # noqa: F401
    else:
        IMPORT_NOTES["needs_websockets"] = False
    IMPORT_NOTES["websockets_imported"] = "websockets" in sys.modules


# Helpers.


def timeout() -> float:
    return float(CTX.get("timeout", 20.0))


def url(name: str, path: str = "") -> str:
    """A URL on server ``name`` with a path unique to this runtime and case."""
    base = CTX[name]
    return f"{base}/{CTX['runtime']}/{path or CTX['case']}"


async def frames(until: Any, what: str, limit: float | None = None, ws: Any = None) -> None:
    """Run 'frames' (poll, then yield to JavaScript) until ``until()`` or fail."""
    end = time.monotonic() + (limit if limit is not None else timeout())
    while True:
        if ws is not None:
            ws.poll()
        if until():
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def idle(seconds: float, ws: Any) -> None:
    """Keep polling for a while (to see that nothing more happens)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ws.poll()
        await asyncio.sleep(0.01)


class Rec:
    """A WebSocket with all five handlers recording, per connect() attempt."""

    def __init__(self, **options: Any) -> None:
        from wsloop import WebSocket
        from wsloop.drivers.browser import BrowserDriver

        driver = options.pop("driver", BrowserDriver)
        self.ws = WebSocket(driver=driver, **options)
        self.events: list[Any] = []
        self.starts: list[int] = []
        self.in_poll = True
        for name in ("on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message"):
            setattr(self.ws, name, self._record)

    def _record(self, event: Any) -> None:
        self.events.append(event)

    def connect(self, target: str, protocol: Any = None) -> None:
        self.ws.connect(target, protocol)
        # A connection still active ended in connect(): dispatch its Error and
        # Closed now (nothing of the new one can arrive before Python yields).
        self.ws.poll()
        self.starts.append(len(self.events))

    @property
    def attempt(self) -> list[Any]:
        return self.events[self.starts[-1] :] if self.starts else self.events

    def kinds(self, events: list[Any] | None = None) -> list[str]:
        return [type(e).__name__ for e in (self.attempt if events is None else events)]

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.attempt if type(e).__name__ == kind]

    async def wait_open(self) -> Any:
        await frames(lambda: self.of("Opened") or self.of("Closed"), "On opened", ws=self.ws)
        assert self.of("Opened"), f"the connection failed: {self.attempt}"
        return self.of("Opened")[0]

    async def wait_closed(self, limit: float | None = None) -> Any:
        await frames(lambda: self.of("Closed"), "On closed", limit, ws=self.ws)
        check_attempt(self.attempt)
        assert self.ws.is_closed
        return self.of("Closed")[0]

    async def wait_messages(self, count: int) -> list[Any]:
        def got() -> list[Any]:
            return [
                e for e in self.attempt if type(e).__name__ in ("TextMessage", "BinaryMessage")
            ]

        await frames(
            lambda: len(got()) >= count or self.of("Closed"), f"{count} message(s)", ws=self.ws
        )
        assert len(got()) >= count, f"the connection ended first: {self.attempt}"
        return [e.text if hasattr(e, "text") else e.data for e in got()]

    async def finish(self) -> None:
        # By the driver's state: is_closed is the façade's, which a replaced
        # connection can confuse (see case_replace_keeps_active).
        state = self.ws.state
        if state is not None and state.name in ("CONNECTING", "OPEN"):
            self.ws.close()
        if (state is not None and state.name != "CLOSED") or not self.of("Closed"):
            await frames(lambda: self.of("Closed"), "the final close", ws=self.ws)


def check_attempt(events: list[Any]) -> None:
    """The ordering contract of wsloop.events for one connect() attempt."""
    kinds = [type(e).__name__ for e in events]
    assert kinds and kinds[-1] == "Closed", f"the last event is not Closed: {kinds}"
    assert kinds.count("Closed") == 1, f"not exactly one Closed: {kinds}"
    assert kinds.count("Opened") <= 1, f"more than one Opened: {kinds}"
    if "Opened" in kinds:
        assert kinds[0] == "Opened", f"Opened is not first: {kinds}"
    assert kinds.count("Error") <= 1, f"more than one Error: {kinds}"
    if "Error" in kinds:
        assert kinds[-2] == "Error", f"Error is not right before Closed: {kinds}"
        assert not events[-1].was_clean, f"an Error but a clean close: {events}"
    else:
        assert events[-1].was_clean, f"an unclean close without an Error: {events}"


def closed_data(closed: Any) -> dict[str, Any]:
    return {"code": closed.code, "reason": closed.reason, "was_clean": closed.was_clean}


def error_data(rec: Rec) -> dict[str, Any]:
    errors = rec.of("Error")
    assert len(errors) == 1, f"expected one Error: {rec.attempt}"
    return {"message": errors[0].message, "exception": type(errors[0].exception).__name__}


# The battery.


@case
async def case_open_text(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    assert rec.ws.state is None and rec.ws.is_closed
    rec.connect(url("echo"))
    assert rec.ws.is_connecting, "not connecting right after connect()"
    opened = await rec.wait_open()
    assert rec.ws.is_open
    assert opened.subprotocol is None and rec.ws.protocol == ""
    assert rec.ws.send_text("héllo wörld ✓ 🎮")
    assert await rec.wait_messages(1) == ["héllo wörld ✓ 🎮"]
    assert rec.ws.message_text == "héllo wörld ✓ 🎮"
    rec.ws.close()
    assert rec.ws.state.name == "CLOSING"
    closed = await rec.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (1000, "", True), closed
    assert rec.kinds() == ["Opened", "TextMessage", "Closed"], rec.kinds()
    return {"extensions": list(opened.extensions), "headers": dict(opened.headers)}


@case
async def case_subprotocol(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"), ["superchat", "chat"])
    opened = await rec.wait_open()
    assert opened.subprotocol == "superchat", opened
    assert rec.ws.protocol == "superchat"
    await rec.finish()
    return {"subprotocol": opened.subprotocol}


@case
async def case_binary_small(ctx: dict[str, Any]) -> dict[str, Any]:
    from wsloop import BinaryData

    rec = Rec(binary_data=BinaryData())
    rec.connect(url("echo"))
    await rec.wait_open()
    payload = bytes(range(256))
    assert rec.ws.send_binary(payload)
    assert rec.ws.send_binary(bytearray(b"\x00\xff"))
    assert rec.ws.send_binary(memoryview(b"abcdef")[2:4])
    assert rec.ws.send_binary(memoryview(b"abcdef")[::2])  # not contiguous
    assert rec.ws.send_binary(b"")
    got = await rec.wait_messages(5)
    assert got == [payload, b"\x00\xff", b"cd", b"ace", b""], got
    assert all(isinstance(g, bytes) for g in got)
    assert bytes(rec.ws.binary_data) == b"", "BinaryData holds the last message"
    await rec.finish()
    return {}


@case
async def case_binary_1mb(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    payload = bytes(range(256)) * 4096  # 1 MiB
    started = time.monotonic()
    assert rec.ws.send_binary(payload)
    buffered = rec.ws.buffered_amount
    assert isinstance(buffered, int) and buffered >= 0
    [got] = await rec.wait_messages(1)
    assert got == payload, f"{len(got)} bytes came back"
    elapsed = time.monotonic() - started
    await rec.finish()
    return {"seconds": round(elapsed, 3), "buffered_after_send": buffered}


@case
async def case_text_1mb(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    payload = ("wsloop ✓ " * 120_000)[: 2**20]
    assert rec.ws.send_text(payload)
    [got] = await rec.wait_messages(1)
    assert got == payload
    await rec.finish()
    return {"chars": len(payload)}


@case
async def case_close_from_client(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.close(4001, "bye now ✓")
    assert not rec.ws.send_text("too late"), "send while closing was accepted"
    closed = await rec.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (4001, "bye now ✓", True), closed
    assert rec.ws.close_code == 4001 and rec.ws.close_reason == "bye now ✓"
    return closed_data(closed)


@case
async def case_close_from_server(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("close 4002 server says bye")
    closed = await rec.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (4002, "server says bye", True)
    assert rec.kinds() == ["Opened", "Closed"], rec.kinds()
    return closed_data(closed)


@case
async def case_close_from_server_1001(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("close 1001")
    closed = await rec.wait_closed()
    assert (closed.code, closed.was_clean) == (1001, True), closed
    return closed_data(closed)


@case
async def case_server_drops(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("drop")
    closed = await rec.wait_closed()
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "ConnectionClosedError", data
    assert "without a closing handshake" in data["message"], data
    assert rec.ws.error_msg == data["message"]
    return {**closed_data(closed), **data}


@case
async def case_close_codes_validated(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    await rec.wait_open()
    refused = []
    for code, reason in ((1001, ""), (1006, ""), (2999, ""), (5000, ""), (1000, "é" * 62)):
        try:
            rec.ws.close(code, reason)
        except ValueError as exc:
            refused.append(str(exc))
    assert len(refused) == 5, refused
    assert rec.ws.is_open, "an invalid close() changed the state"
    await rec.finish()
    return {"refused": refused}


@case
async def case_subprotocol_failure(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"), "nosuchprotocol")
    closed = await rec.wait_closed()
    assert not rec.of("Opened"), "the browser opened a connection without the subprotocol"
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "ConnectError", data
    assert "nosuchprotocol" in data["message"], data
    return {**closed_data(closed), **data}


@case
async def case_subprotocol_bogus(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    target = f"{CTX['echo']}/bogus-protocol/{CTX['runtime']}"
    rec.connect(target, "chat")
    closed = await rec.wait_closed()
    assert not rec.of("Opened"), "the browser accepted a subprotocol it did not request"
    assert (closed.code, closed.was_clean) == (1006, False), closed
    return {**closed_data(closed), **error_data(rec)}


@case
async def case_http_status(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(f"{CTX['echo']}/status/404")
    closed = await rec.wait_closed()
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "ConnectError", data
    return {**closed_data(closed), **data}


@case
async def case_refused(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    target = CTX["refused"] + "/nobody"
    rec.connect(target)
    closed = await rec.wait_closed()
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "ConnectError", data
    assert target in data["message"] and "no reason" in data["message"], data
    return {**closed_data(closed), **data}


@case
async def case_send_when_not_open(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    ws = rec.ws
    assert ws.send_text("x") is False and ws.send_binary(b"x") is False, "before connect()"
    rec.connect(url("echo"))
    assert ws.send_text("x") is False and ws.send_binary(b"x") is False, "while connecting"
    await rec.wait_open()
    ws.close()
    assert ws.send_text("x") is False and ws.send_binary(b"x") is False, "while closing"
    await rec.wait_closed()
    assert ws.send_text("x") is False and ws.send_binary(b"x") is False, "after On closed"
    assert ws.ping() is False, "ping() when closed"
    await idle(0.2, ws)
    assert rec.kinds() == ["Opened", "Closed"], rec.kinds()
    return {}


@case
async def case_close_while_connecting(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo"))
    rec.ws.close()
    closed = await rec.wait_closed(limit=1.0)
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "InvalidState", data
    await idle(0.3, rec.ws)
    assert rec.kinds() == ["Error", "Closed"], f"something came after On closed: {rec.kinds()}"
    return {**closed_data(closed), **data}


@case
async def case_reconnect(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec()
    rec.connect(url("echo", "reconnect-1"))
    await rec.wait_open()
    rec.ws.close()
    await rec.wait_closed()
    # The same object connects again once closed.
    rec.connect(url("echo", "reconnect-2"))
    await rec.wait_open()
    rec.ws.send_text("second")
    assert await rec.wait_messages(1) == ["second"]
    # connect() while open ends the old connection first: its Closed comes
    # before anything of the new one.
    before = len(rec.events)
    rec.connect(url("echo", "reconnect-3"))
    old = rec.events[before : rec.starts[-1]]
    assert rec.kinds(old) == ["Error", "Closed"], rec.kinds(old)
    assert old[-1].code == 1000 and not old[-1].was_clean, old
    await rec.wait_open()
    rec.ws.send_text("third")
    assert await rec.wait_messages(1) == ["third"]
    await rec.finish()
    return {"replaced": closed_data(old[-1])}


@case
async def case_replace_keeps_active(ctx: dict[str, Any]) -> dict[str, Any]:
    """After connect() replaced an open connection, the new one is not 'closed'."""
    rec = Rec()
    rec.connect(url("echo", "replace-1"))
    await rec.wait_open()
    rec.connect(url("echo", "replace-2"))  # dispatches the old Error and Closed
    await rec.wait_open()
    assert rec.ws.is_open
    assert not rec.ws.is_closed, "is_closed is true while the new connection is open"
    await rec.finish()
    return {}


@case
async def case_auto_reconnect(ctx: dict[str, Any]) -> dict[str, Any]:
    """reconnect=...: a dropped connection is retried from poll(), as on the desktop."""
    from wsloop import Reconnect

    rec = Rec(reconnect=Reconnect(initial_delay=0.05, jitter=0.0, max_attempts=3))
    retries: list[Any] = []
    rec.ws.on_reconnecting = retries.append
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("drop")
    await frames(lambda: len(rec.of("Opened")) == 2, "the reconnection", ws=rec.ws)
    assert len(retries) == 1, retries
    assert rec.kinds()[:4] == ["Opened", "Error", "Closed", "Opened"], rec.kinds()
    assert rec.ws.send_text("after the retry")
    await frames(
        lambda: any(getattr(e, "text", "") == "after the retry" for e in rec.events),
        "the echo after the retry",
        ws=rec.ws,
    )
    rec.ws.close()
    await frames(lambda: rec.ws.is_closed, "the final close", ws=rec.ws)
    return {"kinds": rec.kinds()}


@case
async def case_refused_options(ctx: dict[str, Any]) -> dict[str, Any]:
    import ssl

    from wsloop import WebSocket
    from wsloop.drivers.browser import BrowserDriver

    refused = {}
    for options in (
        {"headers": {"X-Token": "1"}},
        {"origin": "https://example.invalid"},
        {"user_agent": "my-game/1.0"},
        {"user_agent": None},
        {"ssl": ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)},
        {"cafile": "/nowhere.pem"},
        {"compression": None},
        {"ping_interval": 5.0},
        {"ping_timeout": 5.0},
        {"max_queue": 10},
        {"proxy": "http://127.0.0.1:3128"},
        {"certfile": "/nowhere.pem"},
        {"insecure": True},
    ):
        ws = WebSocket(driver=BrowserDriver, **options)
        name = next(iter(options))
        try:
            ws.connect(url("echo"))
        except ValueError as exc:
            text = str(exc)
            assert name in text and "browser" in text, text
            refused[repr(options)] = text
        else:
            raise AssertionError(f"{options} was accepted")
        assert ws.state is None, f"{options}: a connection started anyway"
    ws = WebSocket(driver=BrowserDriver)
    try:
        ws.connect(CTX["echo"].replace("ws://", "ws://user:secret@") + "/creds")
    except ValueError as exc:
        refused["user_info"] = str(exc)
    else:
        raise AssertionError("credentials in the URL were accepted")
    assert "password" in refused["user_info"], refused
    # What the browser does anyway is accepted: defaults and "disabled".
    accepted = Rec(ping_interval=None, ping_timeout=None, max_queue=None, proxy=True)
    accepted.connect(url("echo"))
    await accepted.wait_open()
    await accepted.finish()
    return {"refused": refused}


@case
async def case_max_message_size(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec(max_message_size=1000)
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("x" * 1000)  # exactly at the limit: fine
    rec.ws.send_binary(b"y" * 1000)
    got = await rec.wait_messages(2)
    assert got == ["x" * 1000, b"y" * 1000]
    rec.ws.send_binary(b"z" * 1001)
    closed = await rec.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (1009, "message too big", False)
    data = error_data(rec)
    assert data["exception"] == "MessageTooBig", data
    assert rec.kinds() == ["Opened", "TextMessage", "BinaryMessage", "Error", "Closed"]
    return {**closed_data(closed), **data}


@case
async def case_max_message_size_text(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec(max_message_size=1000)
    rec.connect(url("echo"))
    await rec.wait_open()
    rec.ws.send_text("é" * 500)  # 1000 bytes in UTF-8: fine
    assert await rec.wait_messages(1) == ["é" * 500]
    rec.ws.send_text("é" * 501)  # 1002 bytes, 501 characters
    closed = await rec.wait_closed()
    assert closed.code == 1009, closed
    return {**closed_data(closed), **error_data(rec)}


@case
async def case_connect_timeout(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec(connect_timeout=0.5)
    started = time.monotonic()
    rec.connect(CTX["silent"] + "/silent")
    closed = await rec.wait_closed()
    elapsed = time.monotonic() - started
    assert (closed.code, closed.was_clean) == (1006, False), closed
    data = error_data(rec)
    assert data["exception"] == "TimeoutError", data
    assert "0.5" in data["message"], data
    assert 0.4 < elapsed < 5, elapsed
    await idle(0.2, rec.ws)
    assert rec.kinds() == ["Error", "Closed"], rec.kinds()
    return {**closed_data(closed), **data, "seconds": round(elapsed, 3)}


@case
async def case_close_timeout(ctx: dict[str, Any]) -> dict[str, Any]:
    rec = Rec(close_timeout=0.5)
    rec.connect(CTX["mute"] + "/mute")
    await rec.wait_open()
    started = time.monotonic()
    rec.ws.close(4000, "bye")
    closed = await rec.wait_closed()
    elapsed = time.monotonic() - started
    assert (closed.code, closed.reason, closed.was_clean) == (4000, "bye", False), closed
    data = error_data(rec)
    assert data["exception"] == "TimeoutError" and "closing handshake" in data["message"], data
    assert 0.4 < elapsed < 5, elapsed
    return {**closed_data(closed), **data, "seconds": round(elapsed, 3)}


@case
async def case_poll_never_blocks(ctx: dict[str, Any]) -> dict[str, Any]:
    from wsloop import InvalidState

    rec = Rec()
    started = time.monotonic()
    rec.ws.poll(5.0)
    rec.connect(url("echo"))
    rec.ws.poll(5.0)
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"poll(5.0) blocked for {elapsed:.3f} s"
    try:
        rec.ws.poll(None)
    except InvalidState as exc:
        message = str(exc)
    else:
        raise AssertionError("poll(None) with nothing queued returned")
    await rec.wait_open()
    await rec.finish()
    return {"seconds": round(elapsed, 4), "poll_none": message}


@case
async def case_waiting_refused(ctx: dict[str, Any]) -> dict[str, Any]:
    """wait_open() and ``with`` cannot wait in a browser: refused at once, no frozen tab."""
    from wsloop import InvalidState

    rec = Rec()
    rec.connect(url("echo"))
    started = time.monotonic()
    try:
        rec.ws.wait_open(2.0)
    except InvalidState as exc:
        message = str(exc)
    else:
        raise AssertionError(
            f"wait_open(2.0) spun for {time.monotonic() - started:.2f} s instead of refusing"
        )
    await rec.wait_open()
    started = time.monotonic()
    with rec.ws:
        pass  # __exit__ closes; it must not spin until close_timeout
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"leaving 'with' took {elapsed:.2f} s"
    await rec.wait_closed()
    return {"message": message}


@case
async def case_is_supported(ctx: dict[str, Any]) -> dict[str, Any]:
    import js

    import wsloop
    from wsloop.drivers.browser import BrowserDriver, is_available

    assert sys.platform == "emscripten"
    assert wsloop.is_supported() and is_available()
    saved = js.WebSocket
    js.eval("globalThis.__wsloopSaved = globalThis.WebSocket; delete globalThis.WebSocket")
    try:
        without = (wsloop.is_supported(), is_available())
        ws = wsloop.WebSocket(driver=BrowserDriver)
        try:
            ws.connect(url("echo"))
        except wsloop.InvalidState as exc:
            message = str(exc)
        else:
            raise AssertionError("connect() without a JavaScript WebSocket did not raise")
    finally:
        js.eval("globalThis.WebSocket = globalThis.__wsloopSaved")
    assert js.WebSocket == saved
    assert without == (False, False), without
    return {"no_websocket_error": message}


@case
async def case_default_driver(ctx: dict[str, Any]) -> dict[str, Any]:
    from wsloop import WebSocket
    from wsloop.drivers.browser import BrowserDriver

    ws = WebSocket()
    assert isinstance(ws.driver, BrowserDriver), type(ws.driver)
    return {}


@case
async def case_import_without_websockets(ctx: dict[str, Any]) -> dict[str, Any]:
    assert not IMPORT_NOTES["needs_websockets"], (
        "import wsloop needs the websockets package (imported eagerly through sansio/_engine), "
        "which the browser driver never uses"
    )
    return dict(IMPORT_NOTES)


@case
async def case_no_leaks(ctx: dict[str, Any]) -> dict[str, Any]:
    import js

    from wsloop.drivers import browser

    # Count listeners on every JavaScript WebSocket through its prototype.
    js.eval(
        """(() => {
        const proto = WebSocket.prototype;
        if (proto.__wsloopCounting) return;
        proto.__wsloopCounting = true;
        globalThis.__wsloopListeners = 0;
        const add = proto.addEventListener, remove = proto.removeEventListener;
        proto.addEventListener = function (...args) {
            globalThis.__wsloopListeners++; return add.apply(this, args); };
        proto.removeEventListener = function (...args) {
            globalThis.__wsloopListeners--; return remove.apply(this, args); };
        })()"""
    )
    refs: list[Any] = []
    original = browser._Connection.__init__

    def tracking_init(self: Any, *args: Any) -> None:
        original(self, *args)
        refs.append(weakref.ref(self))

    browser._Connection.__init__ = tracking_init  # type: ignore[method-assign]
    try:
        rec = Rec()
        cycles = int(CTX.get("leak_cycles", 25))
        for i in range(cycles):
            rec.connect(url("echo", f"leak-{i}"))
            if i % 3 == 2:
                rec.ws.close()  # abandoned while connecting
            else:
                await rec.wait_open()
                rec.ws.send_text("ping")
                await rec.wait_messages(1)
                if i % 3 == 1:
                    rec.connect(url("echo", f"leak-{i}-replaced"))  # replaced while open
                    await rec.wait_open()
                rec.ws.close()
            await rec.wait_closed()
        listeners_now = int(js.__wsloopListeners)
        del rec
        for _ in range(3):
            gc.collect()
        alive = sum(ref() is not None for ref in refs)
    finally:
        browser._Connection.__init__ = original  # type: ignore[method-assign]
    assert listeners_now == 0, f"{listeners_now} JavaScript listeners left after {cycles} cycles"
    assert alive == 0, f"{alive} of {len(refs)} connections still referenced (proxies leaked?)"
    return {"connections": len(refs), "listeners_left": listeners_now, "alive": alive}


@case
async def case_pygbag_shim(ctx: dict[str, Any]) -> dict[str, Any]:
    """The pygbag code path, with ``platform.window`` standing for pygbag's bridge."""
    import platform

    import js

    from wsloop.drivers.browser import BrowserDriver

    class PygbagDriver(BrowserDriver):
        runtime_name = "pygbag"

    platform.window = js  # type: ignore[attr-defined]
    try:
        rec = Rec(driver=PygbagDriver)
        assert rec.ws.driver.runtime == "pygbag", rec.ws.driver.runtime
        rec.connect(url("echo"), ["chat"])
        opened = await rec.wait_open()
        assert opened.subprotocol == "chat"
        payload = bytes(range(256)) * 256
        rec.ws.send_text("pygbag ✓")
        rec.ws.send_binary(payload)
        got = await rec.wait_messages(2)
        assert got == ["pygbag ✓", payload], [type(g) for g in got]
        rec.ws.close(4003, "done")
        closed = await rec.wait_closed()
        assert (closed.code, closed.reason, closed.was_clean) == (4003, "done", True)
        rec.connect(CTX["refused"] + "/pygbag")
        closed = await rec.wait_closed()
        assert closed.code == 1006 and error_data(rec)["exception"] == "ConnectError"
    finally:
        del platform.window  # type: ignore[attr-defined]
    return {"subprotocol": opened.subprotocol}


@case
async def case_asyncio_deliver(ctx: dict[str, Any]) -> dict[str, Any]:
    """The driver's asyncio form: events handed to ``deliver`` from JavaScript."""
    from wsloop import parse_url
    from wsloop.drivers.base import Config
    from wsloop.drivers.browser import BrowserDriver

    got: list[Any] = []
    wakes = []
    changed = asyncio.Event()

    def deliver(events: list[Any]) -> None:
        got.extend(events)
        changed.set()

    driver = BrowserDriver(Config(connect_timeout=0.5), deliver, lambda: wakes.append(1))

    async def until(pred: Any, what: str) -> None:
        end = time.monotonic() + timeout()
        while not pred():
            changed.clear()
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}: {got}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    driver.connect(parse_url(url("echo")), ())
    await until(lambda: got, "Opened")
    driver.pause_reading()
    driver.send_text("held")
    await asyncio.sleep(0.3)
    assert [type(e).__name__ for e in got] == ["Opened"], got
    driver.resume_reading()
    assert [type(e).__name__ for e in got] == ["Opened", "TextMessage"], got
    driver.close(1000, "")
    await until(lambda: type(got[-1]).__name__ == "Closed", "Closed")
    # The connect timeout fires from a loop timer, with no poll() at all.
    got.clear()
    driver.connect(parse_url(CTX["silent"] + "/silent-async"), ())
    await until(lambda: got and type(got[-1]).__name__ == "Closed", "the connect timeout")
    assert [type(e).__name__ for e in got] == ["Error", "Closed"], got
    assert type(got[0].exception).__name__ == "TimeoutError", got
    return {"wakes": len(wakes)}


@case
async def case_async_websocket(ctx: dict[str, Any]) -> dict[str, Any]:
    """AsyncWebSocket on Pyodide's event loop, with the browser driver behind it."""
    import wsloop
    from wsloop.drivers.browser import BrowserDriver

    if hasattr(wsloop, "AsyncWebSocket"):
        ws = wsloop.AsyncWebSocket()
    else:  # not exported yet
        from wsloop._async_client import AsyncWebSocket

        ws = AsyncWebSocket()
    if not isinstance(ws._driver, BrowserDriver):
        # Until the façade picks the browser driver itself: the hook it needs.
        ws._driver = BrowserDriver(ws._config, ws._deliver, ws._changed)
        hooked = True
    else:
        hooked = False
    seen: list[str] = []
    ws.on_text_message = lambda event: seen.append(event.text)
    await asyncio.wait_for(ws.connect(url("echo")), timeout())
    assert ws.is_open
    ws.send_text("async ✓")
    received = []
    while not received or type(received[-1]).__name__ != "TextMessage":
        received.append(await asyncio.wait_for(ws.recv(), timeout()))
    assert received[-1].text == "async ✓", received
    await asyncio.wait_for(ws.aclose(), timeout())
    assert ws.is_closed and ws.close_code == 1000
    assert seen == ["async ✓"], seen
    return {"hooked": hooked, "received": [type(e).__name__ for e in received]}


# Running.


async def run_case(name: str) -> dict[str, Any]:
    CTX["case"] = name
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(CASES[name](CTX), timeout() * 3)
    except BaseException as exc:  # report everything, including a timeout
        text = "".join(traceback.format_exception(exc))
        return {"ok": False, "error": text, "seconds": round(time.monotonic() - started, 3)}
    return {"ok": True, "data": data, "seconds": round(time.monotonic() - started, 3)}


async def main(ctx_json: str, log: Any = None) -> str:
    CTX.update(json.loads(ctx_json))
    if CTX.get("debug"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s")
    _import_wsloop()
    wanted = CTX.get("cases") or list(CASES)
    results = {}
    for name in wanted:
        results[name] = await run_case(name)
        if log is not None:
            log(f"{CTX['runtime']}: {name}: {'ok' if results[name]['ok'] else 'FAILED'}")
    import wsloop

    return json.dumps(
        {
            "runtime": CTX["runtime"],
            "python": sys.version.split()[0],
            "platform": sys.platform,
            "wsloop": wsloop.__version__,
            "imports": IMPORT_NOTES,
            "results": results,
        }
    )
