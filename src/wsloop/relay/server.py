"""The relay server, built on the ``websockets`` asyncio server.

Theory of operation
-------------------
A connection is checked during the opening handshake, in
``process_response`` (after ``websockets`` has validated the request, chosen
the subprotocol and checked the Origin, before the ``101`` is sent): the
connection limit is enforced there and the client becomes a *member* of the
room named by its path. Registering before the ``101`` leaves no gap in which
a message for the room could miss a client that already sees its connection
open; with Redis, the room's channel is subscribed there too.

Each member has a bounded send queue (a message count and a byte count) and
one writer task that drains it into the connection. Relaying a message never
waits for a receiver: it is appended to the other members' queues. A member
whose queue would overflow is a slow consumer: its queue is dropped and it is
closed with 1008; if it does not even read the close frame within
``close_timeout``, its TCP connection is aborted. Memory per member is thus
bounded by the queue limits plus the ``websockets`` write buffer.

A member leaves its room when its TCP connection is gone, whatever the path
that led there (``_reap``), which is also where the disconnect is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve as _ws_serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from .._version import __version__
from ._conn import DEFAULT_MAX_FRAGMENTS, connection_class
from ._errors import RelayError
from ._parts import RelayStats, _first_line, _Member, _Message, _peer, _room_of
from ._session import RoomSession
from .rooms import ROOM_PROTOCOL, RoomConfig, RoomCore

if TYPE_CHECKING:
    import ssl as _ssl
    from collections.abc import Callable, Coroutine, Sequence
    from types import TracebackType

    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    from ._redis import RedisBroker

__all__ = [
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_PORT",
    "Relay",
    "RelayError",
    "RelayStats",
    "RelayThread",
    "serve",
]

logger = logging.getLogger("wsloop.relay")
T = TypeVar("T")

_ws_logger = logging.getLogger("wsloop.relay.websockets")
# The websockets server logs "connection open"/"connection closed" at INFO;
# the relay writes its own single line per connection instead.
_ws_logger.setLevel(logging.WARNING)

DEFAULT_PORT = 8765
"""The port ``wsloop serve`` listens on unless told otherwise."""
DEFAULT_MAX_SIZE = 2**20
"""The largest message a client may send, in bytes (1 MiB)."""
DEFAULT_OPEN_TIMEOUT = 10.0
"""Seconds a client is given to complete its opening handshake."""

SLOW_CONSUMER_CODE = 1008
"""The close code for a client that does not read fast enough (policy violation)."""
SHUTDOWN_CODE = 1001
"""The close code sent to every client when the relay shuts down (going away)."""


class _MemberLink:
    """A relay member as the room core sees it (a :class:`~wsloop.relay.rooms.Link`)."""

    __slots__ = ("member", "relay")

    def __init__(self, relay: Relay, member: _Member) -> None:
        self.relay = relay
        self.member = member

    def push(self, data: bytes, text: bool) -> None:
        self.relay._enqueue(self.member, _Message(data, text))

    def shut(self, code: int, reason: str) -> None:
        member = self.member
        if not member.closing:
            self.relay._spawn(self._drain_then_close(code, reason))

    async def _drain_then_close(self, code: int, reason: str) -> None:
        # What was pushed just before (an error, a "left") goes out first.
        member = self.member
        if member.queue and not member.closing:
            member.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.relay.close_timeout):
                    await member.idle.wait()
        await self.relay._close_member(member, code, reason)


class Relay:
    """The relay server, on the running :mod:`asyncio` loop.

    Args:
        host: the interface to listen on; the loopback interface by default,
            so that exposing the relay to a network is a decision.
        port: the TCP port; ``0`` picks a free one (see :attr:`port`).
        echo: echo mode: every message goes back to its sender only.
        protocols: the subprotocols accepted. A client is given the first
            one *it* listed that is accepted here; a client that asks only
            for others is refused with HTTP 400. A client that asks for none
            is accepted without one. Empty: no subprotocol is ever selected.
        allowed_origins: if given, a browser's ``Origin`` must be one of
            these (HTTP 403 otherwise). Clients that send no ``Origin``
            (non-browser clients) are accepted.
        max_size: the largest message a client may send, in bytes; a larger
            one closes that client with 1009.
        max_fragments: the most frames one message may be split into; one
            more closes that client with 1009. The pieces are gathered into
            one buffer, so memory is bounded by ``max_size`` either way.
        max_connections: clients beyond this many are refused with HTTP 503.
        send_queue: the most messages waiting for one client.
        send_queue_bytes: the most bytes waiting for one client (one message
            is always accepted into an empty queue, whatever its size).
        ping_interval: seconds between keepalive pings; ``None`` disables.
        close_timeout: seconds a client is given to answer a close frame
            before its TCP connection is aborted.
        open_timeout: seconds a client is given, from its TCP connection, to
            complete the opening handshake; past it the connection is
            dropped (a client trickling its request, or sending nothing).
        ssl: a server :class:`ssl.SSLContext` for ``wss://``.
        redis_url: share rooms with other relay processes through this
            Redis server (``redis://host:port/db``); needs ``wsloop[relay-redis]``.
        redis_prefix: the prefix of the Redis channel names.
        rooms: the limits of the room protocol, for clients that ask for the
            ``wsloop.room.v1`` subprotocol (``docs/rooms.md``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        # Behaviour
        echo: bool = False,
        protocols: Sequence[str] = (),
        allowed_origins: Sequence[str] | None = None,
        # Limits
        max_size: int = DEFAULT_MAX_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_connections: int = 1000,
        send_queue: int = 1024,
        send_queue_bytes: int = 4 * 2**20,
        # Timeouts
        ping_interval: float | None = 20.0,
        close_timeout: float = 5.0,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        # TLS
        ssl: _ssl.SSLContext | None = None,
        # Scale-out
        redis_url: str | None = None,
        redis_prefix: str = "wsloop:",
        # The room protocol
        rooms: RoomConfig | None = None,
    ) -> None:
        if isinstance(protocols, str):
            raise TypeError("protocols must be a sequence of names, not a str")
        for name, value in (
            ("max_size", max_size),
            ("max_fragments", max_fragments),
            ("max_connections", max_connections),
            ("send_queue", send_queue),
            ("send_queue_bytes", send_queue_bytes),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if close_timeout <= 0:
            raise ValueError("close_timeout must be positive")
        if open_timeout <= 0:
            raise ValueError("open_timeout must be positive")
        if echo and redis_url:
            raise ValueError("echo mode answers each client alone: it cannot use Redis")
        self.host = host
        """The interface the relay listens on."""
        self.port = port
        """The port the relay listens on (the real one once started)."""
        self.echo = echo
        self.protocols = tuple(protocols)
        self.allowed_origins = None if allowed_origins is None else tuple(allowed_origins)
        self.max_size = max_size
        self.max_fragments = max_fragments
        self.max_connections = max_connections
        self.send_queue = send_queue
        self.send_queue_bytes = send_queue_bytes
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self.open_timeout = open_timeout
        self.ssl = ssl
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.rooms = RoomConfig() if rooms is None else rooms
        """The limits of the room protocol (``wsloop.room.v1``, ``docs/rooms.md``)."""
        self._cores: dict[str, RoomCore] = {}
        self.failure: str | None = None
        """Why the relay stopped by itself (its Redis link failed), else ``None``."""
        self._server: Server | None = None
        self._broker: RedisBroker | None = None
        self._members: dict[ServerConnection, _Member] = {}
        self._rooms: dict[str, dict[_Member, None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._closed: asyncio.Event | None = None
        self._messages_in = 0
        self._messages_out = 0
        self._slow_consumers = 0
        self._peak_queued = 0

    # Life cycle.

    async def start(self) -> None:
        """Start listening (and connect to Redis first, when configured).

        Raises:
            RelayError: the port is taken, or Redis cannot be reached.
        """
        if self._server is not None:
            raise RuntimeError("this relay was already started")
        self._closed = asyncio.Event()
        if self.redis_url is not None:
            from ._redis import RedisBroker

            broker = RedisBroker(
                self.redis_url,
                prefix=self.redis_prefix,
                deliver=self._deliver_remote,
                on_failure=self._on_broker_failure,
            )
            await broker.start()
            self._broker = broker
        origins: list[Any] | None = None
        if self.allowed_origins is not None:
            origins = [*self.allowed_origins, None]
        try:
            self._server = await _ws_serve(
                self._handler,
                self.host,
                self.port,
                subprotocols=[self._subprotocol(p) for p in self.protocols] or None,
                select_subprotocol=self._select_subprotocol,
                origins=origins,
                process_response=self._process_response,
                server_header=f"wsloop-relay/{__version__}",
                max_size=self.max_size,
                create_connection=connection_class(self.max_fragments),
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                close_timeout=self.close_timeout,
                logger=_ws_logger,
                ssl=self.ssl,
            )
        except OSError as exc:
            if self._broker is not None:
                await self._broker.stop()
                self._broker = None
            why = exc.strerror or str(exc)
            raise RelayError(f"could not listen on {self.host}:{self.port}: {why}") from exc
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self, code: int = SHUTDOWN_CODE, reason: str = "server shutting down") -> None:
        """Stop: refuse new clients, close every client with ``code``, wait for all.

        A client that does not answer within ``close_timeout`` is cut off.
        Idempotent; returns once everything is closed.
        """
        server = self._server
        closed = self._closed
        if server is None or closed is None:
            return
        if self._stopping:
            await closed.wait()
            return
        self._stopping = True
        server.close(close_connections=False)
        members = list(self._members.values())
        if members:
            await asyncio.gather(*(self._close_member(m, code, reason) for m in members))
        await server.wait_closed()
        # The reapers finish at once now that every connection is closed.
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        if pending:
            _, stragglers = await asyncio.wait(pending, timeout=self.close_timeout + 1.0)
            for task in stragglers:
                task.cancel()
            if stragglers:
                await asyncio.gather(*stragglers, return_exceptions=True)
        if self._broker is not None:
            await self._broker.stop()
        for core in list(self._cores.values()):
            core.close()
        self._cores.clear()
        closed.set()

    async def wait_closed(self) -> None:
        """Wait until the relay has stopped, by :meth:`stop` or by a failure."""
        if self._closed is None:
            raise RuntimeError("the relay was not started")
        await self._closed.wait()

    async def serve_forever(self) -> None:
        """Start if needed, then run until stopped."""
        if self._server is None:
            await self.start()
        await self.wait_closed()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # What callers read.

    @property
    def url(self) -> str:
        """The base URL clients connect to, without a path (add ``/room/<name>``)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.ssl is not None else "ws"
        return f"{scheme}://{host}:{self.port}"

    @property
    def stats(self) -> RelayStats:
        """A snapshot of the counters."""
        members = list(self._members.values())
        return RelayStats(
            connections=len(members),
            rooms=len(self._rooms),
            messages_in=self._messages_in,
            messages_out=self._messages_out,
            slow_consumers=self._slow_consumers,
            queued_bytes=sum(m.queued_bytes for m in members),
            peak_queued_bytes=self._peak_queued,
        )

    def room_size(self, room: str) -> int:
        """How many members the room has in this process."""
        return len(self._rooms.get(room, ()))

    def room(self, name: str) -> RoomCore | None:
        """The room-protocol room of a URL path, if it has members (online or in grace)."""
        return self._cores.get(name)

    def _session(self, member: _Member) -> RoomSession:
        core = self._cores.get(member.room)
        if core is None:
            core = RoomCore(
                member.room, self.rooms, asyncio.get_running_loop(), on_empty=self._drop_core
            )
            self._cores[member.room] = core
        return RoomSession(_MemberLink(self, member), core, self.rooms)

    def _drop_core(self, core: RoomCore) -> None:
        if self._cores.get(core.name) is core:
            del self._cores[core.name]

    # The handshake.

    @staticmethod
    def _subprotocol(name: str) -> Subprotocol:
        return name  # type: ignore[return-value]

    def _select_subprotocol(
        self, conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if not offered:
            return None
        if ROOM_PROTOCOL in offered and not self.echo:
            if self.redis_url is not None:
                raise NegotiationError(
                    f"the room protocol ({ROOM_PROTOCOL}) does not span relay processes yet: "
                    "this relay uses Redis, so it is not offered here"
                )
            return self._subprotocol(ROOM_PROTOCOL)
        if not self.protocols:
            return None
        for name in offered:
            if name in self.protocols:
                return name
        raise NegotiationError(
            f"none of the requested subprotocols ({', '.join(offered)}) is accepted here; "
            f"this relay accepts: {', '.join(self.protocols)}"
        )

    async def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        room = _room_of(request)
        peer = _peer(conn)
        if response.status_code != 101:
            logger.info(
                "! %s refused %s: HTTP %d %s",
                peer,
                room,
                response.status_code,
                _first_line(response.body),
            )
            return None
        if self._stopping:
            return conn.respond(503, "The relay is shutting down.\n")
        if len(self._members) >= self.max_connections:
            logger.info(
                "! %s refused %s: HTTP 503 full (%d connections)", peer, room, len(self._members)
            )
            return conn.respond(
                503,
                f"This relay is full ({self.max_connections} connections); try again later.\n",
            )
        member = _Member(conn, room, peer)
        self._members[conn] = member
        if response.headers.get("Sec-WebSocket-Protocol") == ROOM_PROTOCOL:
            member.session = self._session(member)
        elif not self.echo:
            self._rooms.setdefault(room, {})[member] = None
        self._spawn(self._reap(member))
        if self._broker is not None and not self.echo and member.session is None:
            member.joined = True
            try:
                await self._broker.join(room)
            except RelayError as exc:
                self._remove(member)
                logger.info("! %s refused %s: HTTP 503 %s", peer, room, exc)
                return conn.respond(503, f"The relay cannot reach Redis: {exc}\n")
        return None

    # Connections.

    async def _handler(self, conn: ServerConnection) -> None:
        member = self._members.get(conn)
        if member is None or member.gone:
            return
        member.opened = True
        member.since = time.monotonic()
        protocol = conn.subprotocol
        logger.info(
            "+ %s joined %s%s (%d in room, %d connected)",
            member.peer,
            "echo" if self.echo else member.room,
            f" protocol={protocol}" if protocol else "",
            1 if self.echo else self.room_size(member.room),
            len(self._members),
        )
        writer = asyncio.create_task(self._write(member))
        try:
            async for message in conn:
                if member.session is not None:
                    member.rcvd += 1
                    self._messages_in += 1
                    member.session.handle(message)
                    await asyncio.sleep(0)
                    continue
                await self._on_message(member, message)
                # Let the writers run: a burst read in one go must not fill
                # the queues of clients that are merely waiting for their turn.
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        finally:
            if member.session is not None:
                member.session.closed()
            member.closing = True
            member.wakeup.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _on_message(self, member: _Member, message: str | bytes) -> None:
        member.rcvd += 1
        self._messages_in += 1
        if isinstance(message, str):
            item = _Message(message.encode(), True)
        else:
            item = _Message(bytes(message), False)
        if self.echo:
            self._enqueue(member, item)
            return
        room = self._rooms.get(member.room)
        if room is not None:
            for other in tuple(room):
                if other is not member:
                    self._enqueue(other, item)
        if self._broker is not None:
            await self._broker.publish(member.room, item.data, item.text)

    def _deliver_remote(self, room: str, data: bytes, text: bool) -> None:
        """Called by the broker, in order, for messages of other processes."""
        members = self._rooms.get(room)
        if not members:
            return
        item = _Message(data, text)
        for member in tuple(members):
            self._enqueue(member, item)

    def _enqueue(self, member: _Member, item: _Message) -> None:
        if member.closing:
            return
        size = len(item.data)
        if member.queue and (
            len(member.queue) >= self.send_queue
            or member.queued_bytes + size > self.send_queue_bytes
        ):
            self._kick(
                member,
                SLOW_CONSUMER_CODE,
                "too slow: the relay's send queue for this client is full",
            )
            return
        member.queue.append(item)
        member.queued_bytes += size
        if member.queued_bytes > self._peak_queued:
            self._peak_queued = member.queued_bytes
        member.wakeup.set()

    async def _write(self, member: _Member) -> None:
        conn = member.conn
        queue = member.queue
        while not member.closing:
            if not queue:
                member.idle.set()
                member.wakeup.clear()
                await member.wakeup.wait()
                continue
            item = queue.popleft()
            member.queued_bytes -= len(item.data)
            await conn.send(item.data, text=item.text)
            member.sent += 1
            self._messages_out += 1

    def _kick(self, member: _Member, code: int, reason: str) -> None:
        member.closing = True
        member.why = f"slow consumer, closed with {code}"
        member.queue.clear()
        member.queued_bytes = 0
        member.wakeup.set()
        self._slow_consumers += 1
        self._spawn(self._close_member(member, code, reason))

    async def _close_member(self, member: _Member, code: int, reason: str) -> None:
        member.closing = True
        member.wakeup.set()
        conn = member.conn
        try:
            async with asyncio.timeout(self.close_timeout):
                await conn.close(code, reason)
        except TimeoutError:
            if not member.why:
                member.why = "did not answer the close frame"
            conn.transport.abort()
            await conn.wait_closed()

    async def _reap(self, member: _Member) -> None:
        await member.conn.wait_closed()
        self._remove(member)

    def _remove(self, member: _Member) -> None:
        if member.gone:
            return
        member.gone = True
        member.closing = True
        member.queue.clear()
        member.queued_bytes = 0
        member.wakeup.set()
        self._members.pop(member.conn, None)
        room = self._rooms.get(member.room)
        if room is not None and member in room:
            del room[member]
            if not room:
                del self._rooms[member.room]
        if member.joined and self._broker is not None:
            member.joined = False
            self._broker.leave(member.room)
        if member.opened:
            conn = member.conn
            code = conn.close_code
            reason = conn.close_reason or ""
            ending = "no close frame" if code is None else f"{code} {reason!r}"
            if member.why:
                ending += f" ({member.why})"
            logger.info(
                "- %s left %s: %s after %.1f s, %d in / %d out (%d connected)",
                member.peer,
                "echo" if self.echo else member.room,
                ending,
                time.monotonic() - member.since,
                member.rcvd,
                member.sent,
                len(self._members),
            )

    # Failures of the Redis link.

    def _on_broker_failure(self, why: str) -> None:
        if self._stopping or self.failure is not None:
            return
        self.failure = why
        logger.error("lost the Redis link: %s; closing every client with 1011", why)
        self._spawn(self.stop(1011, "the relay lost its Redis link"))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class RelayThread:
    """A :class:`Relay` running on its own event loop in a background thread.

    Made for tests, demos and apps that are not asyncio: the relay serves
    while the calling thread does something else. Use it as a context
    manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        """The relay being run."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the relay listens on."""
        return self.relay.port

    @property
    def url(self) -> str:
        """The base URL, such as ``ws://127.0.0.1:40123``; add a room path."""
        return self.relay.url

    @property
    def stats(self) -> RelayStats:
        """The relay's counters (see :class:`RelayStats`)."""
        return self.call(lambda: self.relay.stats)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the relay's loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the relay is not running")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def start(self, timeout: float = 30.0) -> RelayThread:
        """Start the thread and wait until the relay listens.

        Raises:
            RelayError: the relay could not start.
        """
        if self._thread is not None:
            raise RuntimeError("this relay thread was already started")
        self._thread = threading.Thread(target=self._run, name="wsloop-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RelayError(f"the relay did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close every client with 1001, stop the relay and join the thread."""
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        event = self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RelayError(f"the relay did not stop within {timeout:g} s")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            await self.relay.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._ready.set()
        stop = asyncio.create_task(self._stop_event.wait())
        ended = asyncio.create_task(self.relay.wait_closed())
        await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ended.cancel()
        await self.relay.stop()

    def __enter__(self) -> RelayThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 0, **options: Any) -> RelayThread:
    """Start a relay in a background thread; return it running.

    Takes the arguments of :class:`Relay`, except that ``port`` defaults to
    ``0`` (a free port)::

        with wsloop.relay.serve(protocols=["chat"]) as relay:
            ws.connect(f"{relay.url}/room/lobby", "chat")

    Raises:
        RelayError: the relay could not start.
    """
    return RelayThread(Relay(host, port, **options)).start()
