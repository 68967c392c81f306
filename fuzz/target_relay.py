"""Fuzz target ``relay``: the relay's input path, bytes from one client.

The relay runs as it does under ``wsloop serve``: a :class:`wsloop.relay.Relay`
started on an asyncio loop (listening on 127.0.0.1, port 0). Each input
becomes one client connection, made without a socket: the connection object
that the relay's ``websockets`` server builds for an accepted TCP connection
(its protocol factory: a :class:`~wsloop.relay._conn.RelayConnection` around
a :class:`~wsloop.relay._conn.RelayServerProtocol`) is given an in-memory
transport (:class:`_Transport`), which keeps what the relay writes and turns
its ``close`` and ``abort`` into ``connection_lost``, as asyncio would. So an
input runs the whole path: the HTTP upgrade request (the monitoring pages,
the token check, subprotocol selection, the per-address and connection
limits), then frames through ``RelayConnection.recv`` and the relay's
handler (rate limits, plain rooms, echo, the room protocol's sessions).

Input: byte 0 chooses the relay (bit 0: a room relay with the ``chat``
subprotocol, 1: an echo relay with a token, ``max_size`` 1024 and 8 fragments
a message); byte 1 is the size of each read (0: one read); the rest is what
the client sends. The relay has a turn of the event loop after each read and
after the last one until it has read what it was sent; then the client's EOF
arrives.

Properties: nothing the relay logs at ERROR or above (the ``websockets``
server logs "opening handshake failed" and "connection handler failed" with
the traceback of any exception the relay's code lets escape), no exception
reaches the loop's exception handler, the connection is closed and forgotten
(the relay holds no member, room or address count for it afterwards) within
5 seconds (else a hang), and the answer is an HTTP response. A room-protocol
member that dropped without ``leave`` keeps its seat for the grace period,
as it should: the seat must be offline with its timer running, and the
target then expires it, so that no input sees the seats of another.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import wsloop.relay._conn
import wsloop.relay.server  # noqa: F401 - imported before instrumentation ends
from fuzz._common import Finding, chunks
from wsloop.relay import Relay

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

TOKEN = "fuzz-token"
_loop: asyncio.AbstractEventLoop | None = None
_relays: list[Relay] = []
_problems: list[str] = []


class _Capture(logging.Handler):
    """Records at ERROR and above, as findings."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]!r}"
        _problems.append(f"{record.name}: {text}")


class _Transport(asyncio.Transport):
    """An in-memory TCP transport: keeps the writes, ends with connection_lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self.written = bytearray()
        self.eof_written = False
        self._closing = False
        self._lost = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 40000)
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._lose)

    def abort(self) -> None:
        self.close()

    def _lose(self) -> None:
        if not self._lost:
            self._lost = True
            self._protocol.connection_lost(None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    _problems.append(f"loop: {context.get('message')}: {exc!r}")


def setup() -> None:
    """Start the two relays once; the inputs share them, as clients share a relay."""
    global _loop
    for name in ("wsloop.relay", "websockets"):
        logging.getLogger(name).addHandler(_Capture(logging.ERROR))
    # Keep the relay's INFO lines (one per connection) out of the fuzzer's output.
    logging.getLogger("wsloop.relay").setLevel(logging.WARNING)
    _loop = asyncio.new_event_loop()
    _loop.set_exception_handler(_on_loop_exception)
    asyncio.set_event_loop(_loop)
    _relays.append(Relay(port=0, protocols=["chat"], ping_interval=None, close_timeout=1.0))
    _relays.append(
        Relay(
            port=0,
            echo=True,
            token=TOKEN,
            max_size=1024,
            max_fragments=8,
            ping_interval=None,
            close_timeout=1.0,
            rate_messages=50.0,
        )
    )
    for relay in _relays:
        _loop.run_until_complete(relay.start())


async def _connect(relay: Relay, reads: list[bytes]) -> _Transport:
    assert relay._server is not None
    factory = relay._server.server._protocol_factory  # type: ignore[attr-defined]
    conn: ServerConnection = factory()
    transport = _Transport(asyncio.get_running_loop(), conn)
    conn.connection_made(transport)
    for read in reads:
        if transport.is_closing():
            break
        conn.data_received(read)
        await asyncio.sleep(0)
    # Let the relay read what it was sent before the EOF comes.
    for _ in range(1000):
        if transport.is_closing() or not len(conn.recv_messages.frames):
            break
        await asyncio.sleep(0)
    for _ in range(3):
        await asyncio.sleep(0)
    if not transport.is_closing():
        conn.eof_received()
        transport.close()
    await conn.wait_closed()
    # The relay's own tasks for the member (its reaper) finish on later turns.
    for _ in range(100):
        if not relay._members and not relay._tasks:
            break
        await asyncio.sleep(0)
    return transport


def _expire_dropped_seats(relay: Relay) -> None:
    """A room-protocol member that dropped keeps its seat for the grace period: end it now.

    Each seat left must be offline with its grace timer running; its expiry
    (what the timer would do) then forgets it, and the room with its last seat.
    """
    for core in list(relay._cores.values()):
        for seat in list(core.seats.values()):
            if seat.link is not None or seat.expiry is None:
                raise Finding(
                    f"seat {seat.id} of {core.name} left behind: online={seat.online}, "
                    f"grace timer={seat.expiry is not None}"
                )
            seat.expiry.cancel()
            core._expire(seat)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    assert _loop is not None
    relay = _relays[data[0] & 1]
    reads = chunks(data[2:], data[1])
    _problems.clear()
    try:
        transport = _loop.run_until_complete(asyncio.wait_for(_connect(relay, reads), 5.0))
    except TimeoutError:
        raise Finding("the connection did not end within 5 s (a hang)") from None
    if _problems:
        raise Finding("; ".join(_problems))
    if relay._members or relay._rooms or relay._gate.per_address or relay._gate.identities:
        raise Finding(
            f"left behind: members={len(relay._members)} rooms={list(relay._rooms)} "
            f"addresses={relay._gate.per_address} identities={len(relay._gate.identities)}"
        )
    _expire_dropped_seats(relay)
    if relay._cores:
        raise Finding(f"room cores left behind: {list(relay._cores)}")
    written = bytes(transport.written)
    if written and not written.startswith(b"HTTP/1.1 "):
        raise Finding(f"the relay answered {written[:40]!r}")
