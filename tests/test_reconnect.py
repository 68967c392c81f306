"""Reconnection with backoff, final codes, the outbox, against a real server."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from websockets.asyncio.server import ServerConnection, serve

import wsloop
from wsloop._sansio.reconnect import Outbox, Reconnect, ReconnectState
from wsloop.events import Closed, Error
from wsloop.exceptions import ConnectError, InvalidStatus

TIMEOUT = 10.0


class _FlakyServer:
    """Echoes; "drop" aborts the TCP connection, "final" closes with 1000, "kick" with 4000.

    ``paused`` makes it refuse the WebSocket upgrade with 503 for a while.
    """

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.received: list[str] = []
        self.refuse = 0  # how many upgrades to refuse with 503
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(TIMEOUT)

    def _process_request(self, conn: ServerConnection, request: object) -> object:
        if self.refuse > 0:
            self.refuse -= 1
            return conn.respond(503, "come back later\n")
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        async for message in conn:
            if isinstance(message, bytes):
                self.received.append("bin:" + message.decode())
                continue
            self.received.append(message)
            if message == "drop":
                conn.transport.abort()
                return
            if message == "final":
                await conn.close(1000, "bye")
                return
            if message == "kick":
                await conn.close(4000, "kicked")
                return
            await conn.send(message)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(TIMEOUT)


@pytest.fixture
def flaky():
    server = _FlakyServer()
    yield server
    server.stop()


def _record(ws: wsloop.WebSocket) -> list[object]:
    events: list[object] = []
    for name in ("on_opened", "on_closed", "on_error", "on_text_message", "on_reconnecting"):
        setattr(ws, name, events.append)
    return events


def _pump(ws: wsloop.WebSocket, predicate, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        if ws.driver.delivers_itself:
            time.sleep(0.01)
        else:
            ws.poll(0.01)


def _kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)


# The clock-free policy.


def test_backoff_grows_to_max_delay_with_jitter_below_it() -> None:
    state = ReconnectState(
        Reconnect(initial_delay=1, max_delay=8, factor=2, jitter=0.5), random.Random(7)
    )
    dropped = Closed(1006, "", False)
    delays = [state.closed(dropped, user_closed=False) for _ in range(6)]
    bases = [1, 2, 4, 8, 8, 8]
    for delay, base in zip(delays, bases, strict=True):
        assert delay is not None
        assert base * 0.5 <= delay <= base
    assert state.attempt == 6
    state.opened()
    assert state.attempt == 0


def test_no_retry_after_user_close_final_code_or_hopeless_error() -> None:
    state = ReconnectState(FAST)
    assert state.closed(Closed(1006), user_closed=True) is None
    assert state.closed(Closed(1000, "bye", True), user_closed=False) is None
    assert state.closed(Closed(1001, "restart", True), user_closed=False) is not None
    state.error(Error("404", InvalidStatus(404, "Not Found", {})))
    assert state.closed(Closed(1006), user_closed=False) is None
    state.error(Error("503", InvalidStatus(503, "Busy", {})))
    assert state.closed(Closed(1006), user_closed=False) is not None
    state.error(Error("refused", ConnectError("refused")))
    assert state.closed(Closed(1006), user_closed=False) is not None


def test_max_attempts() -> None:
    state = ReconnectState(Reconnect(initial_delay=0, max_attempts=2))
    assert state.closed(Closed(1006), user_closed=False) is not None
    assert state.closed(Closed(1006), user_closed=False) is not None
    assert state.closed(Closed(1006), user_closed=False) is None


def test_outbox_bounded_and_ordered() -> None:
    box = Outbox(2)
    assert box.put("a")
    assert box.put(b"b")
    assert not box.put("c")
    assert box.dropped == 1
    assert box.take() == ["a", b"b"]
    assert len(box) == 0


# Against a real server.


@pytest.mark.parametrize("driver", ["poll", "thread"])
def test_dropped_connection_is_reopened(flaky: _FlakyServer, driver: str) -> None:
    ws = wsloop.WebSocket(driver=driver, reconnect=FAST)
    events = _record(ws)
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("drop")
    _pump(ws, lambda: _kinds(events).count("Opened") == 2)
    assert _kinds(events) == ["Opened", "Error", "Closed", "Reconnecting", "Opened"]
    rec = events[3]
    assert isinstance(rec, wsloop.Reconnecting)
    assert rec.attempt == 1
    assert rec.delay == pytest.approx(0.05)
    assert ws.send_text("after")
    _pump(ws, lambda: "after" in [getattr(e, "text", None) for e in events])
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    assert _kinds(events)[-1] == "Closed"
    assert not ws.is_reconnecting
    assert flaky.connections == 2


@pytest.mark.parametrize("driver", ["poll", "thread"])
def test_retries_through_refusals_then_opens(flaky: _FlakyServer, driver: str) -> None:
    ws = wsloop.WebSocket(driver=driver, reconnect=FAST)
    events = _record(ws)
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    flaky.refuse = 2
    ws.send_text("drop")
    _pump(ws, lambda: _kinds(events).count("Opened") == 2)
    assert _kinds(events) == [
        "Opened",
        "Error", "Closed", "Reconnecting",  # the drop
        "Error", "Closed", "Reconnecting",  # 503
        "Error", "Closed", "Reconnecting",  # 503
        "Opened",
    ]  # fmt: skip
    attempts = [e.attempt for e in events if isinstance(e, wsloop.Reconnecting)]
    assert attempts == [1, 2, 3]
    ws.close()
    assert ws.wait_closed(TIMEOUT)


def test_final_close_code_ends_the_session(flaky: _FlakyServer) -> None:
    ws = wsloop.WebSocket(reconnect=FAST)
    events = _record(ws)
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("final")
    assert ws.wait_closed(TIMEOUT)
    assert _kinds(events) == ["Opened", "Closed"]
    assert ws.close_code == 1000
    assert not ws.is_reconnecting


def test_user_close_while_waiting_to_retry_stops_it(flaky: _FlakyServer) -> None:
    ws = wsloop.WebSocket(reconnect=Reconnect(initial_delay=5, max_delay=5, jitter=0))
    events = _record(ws)
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("kick")
    _pump(ws, lambda: ws.is_reconnecting)
    assert not ws.is_closed
    ws.close()
    assert ws.is_closed
    assert not ws.is_reconnecting
    assert ws.wait_closed(1.0)
    assert _kinds(events) == ["Opened", "Closed", "Reconnecting"]
    assert flaky.connections == 1


@pytest.mark.parametrize("driver", ["poll", "thread"])
def test_outbox_sends_what_was_queued_in_order_once(flaky: _FlakyServer, driver: str) -> None:
    policy = Reconnect(initial_delay=0.3, max_delay=0.3, jitter=0, outbox=3)
    ws = wsloop.WebSocket(driver=driver, reconnect=policy)
    events = _record(ws)
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("drop")
    _pump(ws, lambda: ws.is_reconnecting)
    assert ws.send_text("q1")
    assert ws.send_text("q2")
    assert ws.send_binary(b"q3")
    assert not ws.send_text("q4")  # full: dropped, and said so
    _pump(ws, lambda: flaky.received.count("q2") == 1)
    ws.send_text("live")
    _pump(ws, lambda: "live" in flaky.received)
    assert flaky.received == ["drop", "q1", "q2", "bin:q3", "live"]
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    assert _kinds(events).count("Opened") == 2


def test_without_reconnect_sends_while_closed_are_ignored(flaky: _FlakyServer) -> None:
    ws = wsloop.WebSocket()
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("drop")
    assert ws.wait_closed(TIMEOUT)
    assert not ws.send_text("lost")
    assert flaky.connections == 1


def test_close_from_on_closed_cancels_the_retry_and_its_event(flaky: _FlakyServer) -> None:
    ws = wsloop.WebSocket(reconnect=FAST)
    events = _record(ws)

    def on_closed(event: wsloop.Closed) -> None:
        events.append(event)
        ws.close()  # the app gives up: no retry, and no on_reconnecting for it

    ws.on_closed = on_closed
    ws.connect(flaky.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("drop")
    assert ws.wait_closed(TIMEOUT)
    assert _kinds(events) == ["Opened", "Error", "Closed"]
    assert not ws.is_reconnecting
    time.sleep(0.2)  # longer than the retry delay: nothing reconnects
    ws.poll()
    assert flaky.connections == 1
