"""AsyncWebSocket and the asyncio driver, against real servers in the same loop.

Every test runs on the default event loop and on uvloop (when installed). The
servers are the ``websockets`` asyncio server and, for misbehaviour, raw
``asyncio.start_server`` handlers, all on 127.0.0.1 with a port from the
kernel. Every recorded connection is checked against the ordering contract.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import logging
import os
import socket
import ssl
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsloop import (
    BinaryData,
    BinaryMessage,
    Closed,
    ConcurrencyError,
    ConnectError,
    Error,
    InvalidState,
    NegotiationError,
    Opened,
    TextMessage,
    TimeoutError,
    TLSError,
)
from wsloop._async_client import AsyncWebSocket
from wsloop.drivers.asyncio import WRITE_LIMIT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator

    from wsloop import Event

FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
WAIT = 20.0 * FACTOR
"""How long to wait for what should happen: generous, never a measure."""
SHORT = 0.5
"""A connect/close/ping timeout that a test makes expire."""

HANDLERS = ("on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message")


# Loops.


def _loop_factories() -> list[Any]:
    params: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the test group
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("no uvloop")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``run(coro)``: run a test body on a fresh loop of the kind under test."""
    factory = request.param

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        async def guarded() -> Any:
            async with asyncio.timeout(WAIT * 3):
                return await coro

        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(guarded())

    return runner


async def until(predicate: Callable[[], bool], what: str = "the condition") -> None:
    """Wait for a condition nothing signals (a driver flag, a server counter)."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


# The ordering contract, on every recorded connection.


def check_contract(events: list[Event]) -> None:
    """One connect() attempt: Opened first if any, one Error at most and right
    before Closed, exactly one Closed and last; clean exactly when no Error."""
    kinds = [type(e).__name__ for e in events]
    assert events, "no events"
    assert isinstance(events[-1], Closed), f"Closed is not last: {kinds}"
    assert kinds.count("Closed") == 1, f"not exactly one Closed: {kinds}"
    assert kinds.count("Opened") <= 1, f"more than one Opened: {kinds}"
    if "Opened" in kinds:
        assert kinds[0] == "Opened", f"Opened is not first: {kinds}"
    else:
        assert "TextMessage" not in kinds and "BinaryMessage" not in kinds, kinds
    assert kinds.count("Error") <= 1, f"more than one Error: {kinds}"
    if "Error" in kinds:
        assert kinds[-2] == "Error", f"Error is not right before Closed: {kinds}"
        assert not events[-1].was_clean, kinds
    else:
        assert events[-1].was_clean, f"unclean close without an Error: {events}"


class Recorder:
    """Sets the five handlers (sync, or async with ``async_handlers``) and records."""

    def __init__(self, ws: AsyncWebSocket, *, async_handlers: bool = False) -> None:
        self.ws = ws
        self.events: list[Event] = []
        self.expressions: list[tuple[str, str, int, str]] = []
        for name in HANDLERS:
            setattr(ws, name, self._async(name) if async_handlers else self._sync(name))

    def _sync(self, name: str) -> Callable[[Event], None]:
        def handler(event: Event) -> None:
            self._record(event)

        handler.__name__ = name
        return handler

    def _async(self, name: str) -> Callable[[Event], Awaitable[None]]:
        async def handler(event: Event) -> None:
            await asyncio.sleep(0)
            self._record(event)
            await asyncio.sleep(0)

        handler.__name__ = name
        return handler

    def _record(self, event: Event) -> None:
        ws = self.ws
        self.events.append(event)
        self.expressions.append((ws.message_text, ws.error_msg, ws.close_code, ws.close_reason))

    def attempts(self) -> list[list[Event]]:
        out: list[list[Event]] = [[]]
        for event in self.events:
            out[-1].append(event)
            if isinstance(event, Closed):
                out.append([])
        return [a for a in out if a]

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def record() -> Iterator[Callable[..., Recorder]]:
    """``record(ws)``: a Recorder whose every attempt is checked at teardown."""
    recorders: list[Recorder] = []

    def factory(ws: AsyncWebSocket, **kwargs: Any) -> Recorder:
        rec = Recorder(ws, **kwargs)
        recorders.append(rec)
        return rec

    yield factory
    for rec in recorders:
        assert rec.ws.is_closed, "a test left its connection open"
        for attempt in rec.attempts():
            check_contract(attempt)


# Servers.


class Echo:
    """The websockets server: echoes; ``close CODE REASON`` closes with those."""

    def __init__(self) -> None:
        self.port = 0
        self.close_codes: list[int | None] = []
        self.connections: list[ServerConnection] = []
        self.received: list[str | bytes] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def handler(self, conn: ServerConnection) -> None:
        try:
            async for message in conn:
                self.received.append(message)
                if isinstance(message, str) and message.startswith("close "):
                    code, _, reason = message[6:].partition(" ")
                    await conn.close(int(code), reason)
                    break
                await conn.send(message)
        except ConnectionClosed:
            pass
        await conn.wait_closed()
        self.close_codes.append(conn.close_code)


@contextlib.asynccontextmanager
async def echo_server(
    handler: Callable[[ServerConnection], Awaitable[None]] | None = None,
    **options: Any,
) -> AsyncIterator[Echo]:
    echo = Echo()
    options.setdefault("max_size", None)
    options.setdefault("ping_interval", None)
    serve_one = handler or echo.handler

    async def recorded(conn: ServerConnection) -> None:
        echo.connections.append(conn)
        await serve_one(conn)

    async with serve(recorded, "127.0.0.1", 0, **options) as server:
        echo.port = server.sockets[0].getsockname()[1]
        yield echo


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    **options: Any,
) -> AsyncIterator[int]:
    """A TCP server running ``handler`` per connection; yields the port."""
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0, **options)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        for writer in writers:
            writer.transport.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a WebSocket upgrade by hand (no extensions, no subprotocol)."""
    request = await reader.readuntil(b"\r\n\r\n")
    key = ""
    for line in request.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    accept = base64.b64encode(digest).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
    )


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept TCP, then say nothing (reading what comes, so the peer is not reset)."""
    while await reader.read(65536):
        pass


async def deaf_after_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Open the connection, then never answer anything (close frames, pings)."""
    await handshake(reader, writer)
    while await reader.read(65536):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Open, messages, close.


def test_text_and_binary_round_trips(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            buffer = BinaryData()
            ws = AsyncWebSocket(binary_data=buffer)
            rec = record(ws)
            await ws.connect(echo.url)
            assert ws.is_open
            assert not ws.is_connecting
            assert not ws.is_closed
            assert rec.kinds() == ["Opened"]
            big = os.urandom(2**20)
            big_text = "é" * (2**19)
            assert ws.send_text("hello")
            assert ws.send_binary(b"\x00\x01\xff")
            assert ws.send_binary(big)
            assert ws.send_text(big_text)
            await until(lambda: len(rec.events) == 5, "four echoes")
            assert rec.events[1] == TextMessage("hello")
            assert rec.events[2] == BinaryMessage(b"\x00\x01\xff")
            assert rec.events[3] == BinaryMessage(big)
            assert rec.events[4] == TextMessage(big_text)
            assert rec.expressions[1][0] == "hello"
            assert bytes(buffer) == big
            assert ws.message_text == big_text
            await ws.aclose()
            assert ws.is_closed
            assert rec.events[-1] == Closed(1000, "", True)
            assert (ws.close_code, ws.close_reason, ws.error_msg) == (1000, "", "")

    run(main())


def test_subprotocol_selected(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server(subprotocols=["superchat"]) as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url, ["chat", "superchat"])
            assert ws.protocol == "superchat"
            assert rec.events[0].subprotocol == "superchat"
            await ws.aclose()

    run(main())


def test_subprotocol_refused_fails_the_connection(run: Any, record: Any) -> None:
    async def main() -> None:
        # A server that does not do subprotocols: it upgrades and selects none.
        async with echo_server(select_subprotocol=lambda conn, offered: None) as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            with pytest.raises(NegotiationError) as info:
                await ws.connect(echo.url, "v2.game")
            assert "'v2.game'" in str(info.value)
            assert rec.kinds() == ["Error", "Closed"]
            assert rec.of(Error)[0].exception is info.value
            assert ws.error_msg == str(info.value)
            assert ws.is_closed
            assert ws.protocol == ""

    run(main())


def test_server_close_code_and_reason_reach_on_closed(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url)
            ws.send_text("close 4321 game over")
            await ws.wait_closed()
            assert rec.events[-1] == Closed(4321, "game over", True)
            assert (ws.close_code, ws.close_reason) == (4321, "game over")
            assert rec.expressions[-1][2:] == (4321, "game over")

    run(main())


def test_client_close_code_reaches_the_server(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url)
            await ws.aclose(4000, "bye")
            assert rec.events[-1] == Closed(4000, "bye", True)
            await until(lambda: bool(echo.close_codes), "the server's end")
            assert echo.close_codes == [4000]
            with pytest.raises(ValueError, match="3000-4999"):
                ws.close(1001)

    run(main())


def test_close_timeout_when_the_server_never_answers(run: Any, record: Any) -> None:
    async def main() -> None:
        async with raw_server(deaf_after_handshake) as port:
            ws = AsyncWebSocket(close_timeout=SHORT, compression=None)
            rec = record(ws)
            await ws.connect(f"ws://127.0.0.1:{port}/")
            await ws.aclose(4000)
            error = rec.of(Error)[0]
            assert isinstance(error.exception, TimeoutError)
            assert error.message == f"closing handshake timed out after {SHORT:g} s"
            assert not rec.events[-1].was_clean

    run(main())


def test_connect_timeout_names_the_websocket_phase(run: Any, record: Any) -> None:
    async def main() -> None:
        async with raw_server(silent) as port:
            ws = AsyncWebSocket(connect_timeout=SHORT)
            rec = record(ws)
            with pytest.raises(TimeoutError) as info:
                await ws.connect(f"ws://127.0.0.1:{port}/")
            assert str(info.value) == f"connect (WebSocket handshake) timed out after {SHORT:g} s"
            assert rec.kinds() == ["Error", "Closed"]
            assert rec.events[-1].code == 1006

    run(main())


def test_connect_timeout_names_the_tls_phase(run: Any, record: Any) -> None:
    async def main() -> None:
        async with raw_server(silent) as port:
            ws = AsyncWebSocket(connect_timeout=SHORT)
            rec = record(ws)
            with pytest.raises(TimeoutError, match=r"^connect \(TLS handshake\) timed out"):
                await ws.connect(f"wss://127.0.0.1:{port}/")
            assert rec.kinds() == ["Error", "Closed"]

    run(main())


def test_refused_port(run: Any, record: Any) -> None:
    async def main() -> None:
        port = free_port()
        ws = AsyncWebSocket()
        rec = record(ws)
        with pytest.raises(ConnectError) as info:
            await ws.connect(f"ws://127.0.0.1:{port}/")
        assert str(info.value) == (
            f"could not connect to 127.0.0.1:{port}: connection refused "
            "(is a server listening there?)"
        )
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert rec.kinds() == ["Error", "Closed"]
        assert ws.error_msg == str(info.value)

    run(main())


def test_server_dropping_tcp_is_an_error_then_1006(run: Any, record: Any) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handshake(reader, writer)
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with raw_server(drop) as port:
            ws = AsyncWebSocket(compression=None)
            rec = record(ws)
            await ws.connect(f"ws://127.0.0.1:{port}/")
            await ws.wait_closed()
            assert rec.kinds() == ["Opened", "Error", "Closed"]
            assert ws.error_msg == "server closed the connection without a close frame"
            assert ws.close_code == 1006

    run(main())


def test_tls_round_trip_and_certificate_failure(run: Any, record: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        async with echo_server(ssl=server_ctx) as echo:
            url = f"wss://localhost:{echo.port}/"  # a name: the resolve phase runs too
            ws = AsyncWebSocket(ssl=client_ctx)
            rec = record(ws)
            await ws.connect(url)
            ws.send_text("secret")
            await until(lambda: len(rec.events) == 2, "the echo")
            assert rec.events[1] == TextMessage("secret")
            await ws.aclose()

            untrusting = AsyncWebSocket()
            rec2 = record(untrusting)
            with pytest.raises(TLSError, match="certificate verification failed for 'localhost'"):
                await untrusting.connect(url)
            assert rec2.kinds() == ["Error", "Closed"]

    run(main())


def test_cancelling_connect_abandons_the_attempt(run: Any, record: Any) -> None:
    async def main() -> None:
        async with raw_server(silent) as port:
            ws = AsyncWebSocket()
            rec = record(ws)
            task = asyncio.create_task(ws.connect(f"ws://127.0.0.1:{port}/"))
            await until(lambda: ws.driver.phase == "ws", "the handshake phase")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await ws.wait_closed()
            assert rec.kinds() == ["Error", "Closed"]
            assert "closed before it was established" in ws.error_msg

    run(main())


# Sending rules.


def test_sends_while_not_open_are_ignored(run: Any, record: Any) -> None:
    async def main() -> None:
        async with raw_server(silent) as port:
            ws = AsyncWebSocket(connect_timeout=SHORT)
            rec = record(ws)
            assert ws.send_text("early") is False
            assert ws.send_binary(b"early") is False
            assert ws.ping() is False
            assert ws.buffered_amount == 0
            task = asyncio.create_task(ws.connect(f"ws://127.0.0.1:{port}/"))
            await until(lambda: ws.is_connecting, "connecting")
            assert ws.send_text("connecting") is False
            with pytest.raises(TimeoutError):
                await task
            assert ws.send_text("late") is False
            assert rec.kinds() == ["Error", "Closed"]
        async with echo_server() as echo:
            await ws.connect(echo.url)
            ws.close()
            assert ws.send_text("closing") is False
            await ws.wait_closed()
            assert ws.send_binary(b"closed") is False
            assert echo.received == []

    run(main())


def test_drain_waits_for_the_transport(run: Any, record: Any) -> None:
    reading = asyncio.Event()
    got = 0

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal got
        await handshake(reader, writer)
        await reading.wait()
        while data := await reader.read(2**20):
            got += len(data)

    async def main() -> None:
        async with raw_server(slow_reader) as port:
            ws = AsyncWebSocket(compression=None, close_timeout=SHORT, max_buffered_amount=None)
            rec = record(ws)
            await ws.connect(f"ws://127.0.0.1:{port}/")
            chunk = b"x" * 2**20
            for _ in range(32):  # more than any loopback socket buffer takes
                assert ws.send_binary(chunk)
            assert ws.buffered_amount > WRITE_LIMIT
            drain = asyncio.create_task(ws.drain())
            await asyncio.sleep(0)
            assert not drain.done()
            reading.set()
            await drain
            assert ws.buffered_amount <= WRITE_LIMIT
            await ws.drain()  # nothing to wait for: returns at once
            await ws.aclose()  # the server never answers the close
            assert isinstance(rec.of(Error)[0].exception, TimeoutError)

    run(main())


def test_max_buffered_amount_refuses_sends_instead_of_growing(
    run: Any, record: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def not_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handshake(reader, writer)
        await asyncio.Event().wait()

    async def main() -> None:
        async with raw_server(not_reading) as port:
            limit = 2**20
            ws = AsyncWebSocket(compression=None, close_timeout=SHORT, max_buffered_amount=limit)
            record(ws)
            await ws.connect(f"ws://127.0.0.1:{port}/")
            accepted = 0
            while ws.send_binary(b"x" * 2**16):
                accepted += 1
                assert accepted < 2**12, "the limit never applied"
            assert ws.buffered_amount >= limit
            assert ws.send_text("refused too") is False
            await ws.aclose()

    with caplog.at_level(logging.WARNING, logger="wsloop.client"):
        run(main())
    warnings = [r for r in caplog.records if "send buffer full" in r.getMessage()]
    assert len(warnings) == 1


# Reconnecting.


def test_connect_again_after_closed(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url)
            ws.send_text("close 4001 first")
            await ws.wait_closed()
            assert ws.close_code == 4001
            await ws.connect(echo.url)
            assert ws.close_code == 0  # the expressions belong to the new connection
            ws.send_text("again")
            await until(lambda: rec.kinds()[-1] == "TextMessage", "the echo")
            await ws.aclose()
            assert [len(a) for a in rec.attempts()] == [2, 3]

    run(main())


def test_connect_while_open_closes_the_previous_connection(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url)
            await ws.connect(echo.url)
            assert rec.kinds() == ["Opened", "Closed", "Opened"]
            await ws.aclose()

    run(main())


def test_reconnect_from_an_async_on_closed_handler(run: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            events: list[str] = []
            reconnected = asyncio.Event()

            async def on_closed(event: Closed) -> None:
                events.append(f"closed {event.code}")
                if event.code == 4002:
                    await ws.connect(echo.url)
                    reconnected.set()

            ws.on_opened = lambda event: events.append("opened")
            ws.on_closed = on_closed
            await ws.connect(echo.url)
            ws.send_text("close 4002 once more")
            await reconnected.wait()
            assert ws.is_open
            await ws.aclose()
            assert events == ["opened", "closed 4002", "opened", "closed 1000"]

    run(main())


# Handlers.


def test_async_and_sync_handlers_keep_the_order(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            for async_handlers in (False, True):
                ws = AsyncWebSocket()
                rec = record(ws, async_handlers=async_handlers)
                await ws.connect(echo.url)
                for i in range(50):
                    ws.send_text(str(i)) if i % 2 else ws.send_binary(bytes([i]))
                await until(lambda rec=rec: len(rec.events) == 51, "50 echoes")
                expected = [
                    TextMessage(str(i)) if i % 2 else BinaryMessage(bytes([i])) for i in range(50)
                ]
                assert rec.events[1:] == expected
                await ws.aclose()

    run(main())


def test_handler_exception_surfaces_from_wait_closed(
    run: Any, record: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Boom(Exception):
        pass

    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)

            async def on_text_message(event: TextMessage) -> None:
                rec._record(event)
                if event.text == "boom":
                    raise Boom("from the handler")

            ws.on_text_message = on_text_message
            await ws.connect(echo.url)
            ws.send_text("boom")
            ws.send_text("after")
            waiter = asyncio.create_task(ws.wait_closed())
            with pytest.raises(Boom, match="from the handler"):
                await waiter  # raised at once, while the connection is still open
            assert ws.is_open
            await until(lambda: len(rec.events) == 3, "the next message")
            assert rec.events[2] == TextMessage("after")  # dispatching goes on
            await ws.aclose()  # reported once only
            assert rec.of(Error) == []  # never an Error event

    with caplog.at_level(logging.ERROR, logger="wsloop.client"):
        run(main())
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is Boom]
    assert len(records) == 1
    assert "on_text_message" in records[0].getMessage()


def test_on_opened_exception_is_raised_by_connect(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)

            async def on_opened(event: Opened) -> None:
                rec._record(event)
                raise LookupError("bad on_opened")

            ws.on_opened = on_opened
            with pytest.raises(LookupError, match="bad on_opened"):
                await ws.connect(echo.url)
            assert ws.is_open  # a bug in a handler does not touch the connection
            await ws.aclose()

    with _quiet():
        run(main())


def test_handler_exception_surfaces_from_async_with(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)

            def on_closed(event: Closed) -> None:
                rec._record(event)
                raise KeyError("on closed")

            ws.on_closed = on_closed
            with pytest.raises(KeyError, match="on closed"):
                async with ws:
                    await ws.connect(echo.url)
            assert ws.is_closed

    with _quiet():
        run(main())


def test_waiting_from_a_handler_is_an_error_not_a_deadlock(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)

            async def on_text_message(event: TextMessage) -> None:
                rec._record(event)
                await ws.wait_closed()

            ws.on_text_message = on_text_message
            await ws.connect(echo.url)
            ws.send_text("wait")
            with pytest.raises(RuntimeError, match="would wait forever"):
                await ws.wait_closed()
            await ws.aclose()

    with _quiet():
        run(main())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the handler-error log lines of a test that provokes them."""
    log = logging.getLogger("wsloop.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


# Reading events.


def test_async_for_ends_after_closed(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            rec = record(ws)
            await ws.connect(echo.url)
            ws.send_text("one")
            seen: list[Event] = []
            async for event in ws:
                seen.append(event)
                if event == TextMessage("one"):
                    ws.send_text("close 4100 done")
            assert [type(e).__name__ for e in seen] == ["Opened", "TextMessage", "Closed"]
            assert seen == rec.events  # handlers and iterator see the same events
            check_contract(seen)
            assert ws.is_closed
            assert [e async for e in ws] == []  # a closed connection has no events

    run(main())


def test_iterator_sees_what_the_server_sends_right_after_the_handshake(run: Any) -> None:
    async def greeter(conn: ServerConnection) -> None:
        for i in range(3):
            await conn.send(f"welcome {i}")
        await conn.close(4200, "that was all")

    async def main() -> None:
        async with echo_server(greeter) as echo:
            ws = AsyncWebSocket()
            await ws.connect(echo.url)
            events = [event async for event in ws]
            check_contract(events)
            assert events[1:] == [
                TextMessage("welcome 0"),
                TextMessage("welcome 1"),
                TextMessage("welcome 2"),
                Closed(4200, "that was all", True),
            ]

    run(main())


def test_recv_returns_each_event_then_closed_forever(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            record(ws)
            with pytest.raises(InvalidState):
                await ws.recv()
            await ws.connect(echo.url)
            assert isinstance(await ws.recv(), Opened)
            ws.send_binary(b"abc")
            assert await ws.recv() == BinaryMessage(b"abc")
            second = asyncio.create_task(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(ConcurrencyError):
                await ws.recv()
            ws.close(4300)
            assert await second == Closed(4300, "", True)
            assert await ws.recv() == Closed(4300, "", True)

    run(main())


# Memory and CPU.


FLOOD = 50 * 2**20
CHUNK = 64 * 2**10
MEMORY_BOUND = 16 * 2**20


async def flood(conn: ServerConnection) -> None:
    chunk = b"\xaa" * CHUNK
    for _ in range(FLOOD // CHUNK):
        await conn.send(chunk)
    await conn.close(4500, "flood over")


@pytest.mark.parametrize("reader", ["handler", "iterator"])
def test_backpressure_pauses_reading_and_bounds_memory(run: Any, record: Any, reader: str) -> None:
    """The app stops consuming: reading pauses, memory stays bounded, nothing is lost."""

    async def main() -> None:
        async with echo_server(flood, compression=None) as echo:
            ws = AsyncWebSocket(compression=None)
            rec = record(ws)
            release = asyncio.Event()
            received = 0

            async def on_binary_message(event: BinaryMessage) -> None:
                nonlocal received
                received += len(event.data)
                if reader == "handler":
                    await release.wait()

            ws.on_binary_message = on_binary_message
            gc.collect()
            tracemalloc.start()
            try:
                await ws.connect(echo.url)
                events = aiter(ws) if reader == "iterator" else None
                await until(lambda: ws.driver.reading_paused, "reading to pause")
                transport = ws.driver._transport
                assert transport is not None
                assert not transport.is_reading()
                server = echo.connections[0].transport
                # The server is stuck too: its writes wait in its own buffer.
                await until(lambda: server.get_write_buffer_size() > 0, "the server to block")
                _, peak = tracemalloc.get_traced_memory()
                assert peak < MEMORY_BOUND, f"{peak} bytes traced while paused"
                assert received < FLOOD // 2
                release.set()
                if events is not None:
                    taken = 0
                    async for event in events:
                        if isinstance(event, BinaryMessage):
                            taken += len(event.data)
                    assert taken == FLOOD
                await ws.wait_closed()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert received == FLOOD
            assert rec.events[-1] == Closed(4500, "flood over", True)
            assert peak < MEMORY_BOUND, f"{peak} bytes traced"

    run(main())


def test_max_queue_counts_events(run: Any, record: Any) -> None:
    count = 3000
    padding = "." * 1000

    async def chatter(conn: ServerConnection) -> None:
        for i in range(count):
            await conn.send(f"{i}{padding}")
        await conn.close(4600)

    async def main() -> None:
        async with echo_server(chatter) as echo:
            ws = AsyncWebSocket(max_queue=10, max_backlog=None, compression=None)
            rec = record(ws)
            release = asyncio.Event()

            async def on_text_message(event: TextMessage) -> None:
                rec._record(event)
                await release.wait()

            ws.on_text_message = on_text_message
            await ws.connect(echo.url)
            await until(lambda: ws.driver.reading_paused, "reading to pause")
            attempt = ws._attempt
            assert attempt is not None
            # A pause takes effect within a read: the queue overshoots by one slice at most.
            assert 10 <= attempt.queued < 40
            release.set()
            await ws.wait_closed()
            texts = [e.text for e in rec.of(TextMessage)]
            assert texts == [f"{i}{padding}" for i in range(count)]

    run(main())


def test_without_a_reader_nothing_is_kept_for_one(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server(flood, compression=None) as echo:
            ws = AsyncWebSocket(compression=None)
            rec = record(ws)
            received = 0

            def on_binary_message(event: BinaryMessage) -> None:
                nonlocal received
                received += len(event.data)

            ws.on_binary_message = on_binary_message
            gc.collect()
            tracemalloc.start()
            try:
                await ws.connect(echo.url)
                await ws.wait_closed()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert received == FLOOD
            assert rec.events[-1].code == 4500
            assert peak < MEMORY_BOUND, f"{peak} bytes traced"

    run(main())


def test_an_abandoned_iterator_releases_its_events(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            record(ws)
            await ws.connect(echo.url)
            async for event in ws:
                assert isinstance(event, Opened)
                break
            await until(lambda: ws._attempt is not None and ws._attempt.channel is None)
            ws.send_text("nobody iterates")
            await ws.aclose()
            assert ws._attempt is not None
            assert ws._attempt.channel is None

    run(main())


def test_an_idle_connection_uses_no_cpu(run: Any, record: Any) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket()
            record(ws)
            await ws.connect(echo.url)
            before = time.process_time()
            await asyncio.sleep(1.0)  # the idle time being measured
            used = time.process_time() - before
            await ws.aclose()
            assert used < 0.05, f"{used:.3f} s of CPU in 1 s idle"

    run(main())


# Keepalive.


@pytest.mark.parametrize("connect_timeout", [10.0, None], ids=["connect-timeout", "no-timeout"])
def test_keepalive_measures_latency_and_detects_a_dead_server(
    run: Any, record: Any, connect_timeout: float | None
) -> None:
    async def main() -> None:
        async with echo_server() as echo:
            ws = AsyncWebSocket(ping_interval=0.05, connect_timeout=connect_timeout)
            record(ws)
            await ws.connect(echo.url)
            await until(lambda: ws.latency is not None, "a pong")
            await ws.aclose()
        async with raw_server(deaf_after_handshake) as port:
            ws = AsyncWebSocket(
                ping_interval=0.05,
                ping_timeout=SHORT,
                compression=None,
                connect_timeout=connect_timeout,
            )
            rec = record(ws)
            await ws.connect(f"ws://127.0.0.1:{port}/")
            await ws.wait_closed()
            assert ws.error_msg.startswith("keepalive timeout")
            assert rec.events[-1].code == 1006

    run(main())


# Options and registration, without a loop.


def test_options_and_registration_are_checked() -> None:
    ws = AsyncWebSocket()
    with pytest.raises(AttributeError, match="on_message"):
        ws.on_message = print  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        ws.on_opened = "nope"  # type: ignore[assignment]

    @ws.event
    async def on_text_message(event: TextMessage) -> None:
        pass

    assert ws.on_text_message is on_text_message
    with pytest.raises(ValueError, match="max_backlog"):
        AsyncWebSocket(max_backlog=0)
    with pytest.raises(ValueError, match="close_timeout"):
        AsyncWebSocket(close_timeout=-1)
    assert ws.is_closed and not ws.is_open and not ws.is_connecting
    assert ws.state is None
    assert repr(ws) == "<AsyncWebSocket IDLE ''>"
    with pytest.raises(ValueError, match="subprotocol"):
        asyncio.run(ws.connect("ws://127.0.0.1:1/", "bad name"))
