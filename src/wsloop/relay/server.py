"""The relay server, built on the ``websockets`` asyncio server.

Theory of operation
-------------------
A connection is checked during the opening handshake, in
``process_response`` (after ``websockets`` has validated the request, chosen
the subprotocol and checked the Origin, before the ``101`` is sent): the
connection limit is enforced there and the client becomes a *member* of the
room named by its path. Registering before the ``101`` leaves no gap in which
a message for the room could miss a client that already sees its connection
open; with Redis, the room's channel is subscribed there too (the plain
rooms: ``_plain.py``).

Relaying a message never waits for a receiver: each member has a bounded
send queue and, once something has to wait there, a writer task; a member
whose queue would overflow is a slow consumer, closed with 1008
(``_delivery.py``).

A member leaves its room when its TCP connection is gone, whatever the path
that led there (``_reap``), which is also where the disconnect is logged.

Before any of this, the relay's :class:`~wsloop.relay._handshake.Gate`
answers the plain-HTTP pages (``/healthz``, ``/metrics``, ``/status``:
``_monitor.py``), runs the ``auth`` hook, picks the subprotocol and refuses
what the limits refuse (``_handshake.py``); each message read passes the
sender's rate limit first (``_guard.py``).

A member that speaks the room protocol is placed in its room (a game room,
quick match, a room in Redis or in this process) and reaches it through a
link (``_match.py``); :class:`~wsloop.relay.RelayThread`
and :func:`~wsloop.relay.serve` run a relay on a thread of its own
(``_thread.py``).

The parts
---------
``server.py`` puts the others together; none of them imports it but
``_thread.py``: what a part needs of the relay is a ``Protocol`` of its own,
so the imports form no cycle (``tests/test_layout.py``).

* ``server.py``: :class:`Relay`: its options and life cycle, a member's
  registration at the handshake, its reading loop and its leaving.
* ``_handshake.py`` (the ``Gate``), ``_guard.py`` (auth, per-address and rate
  limits), ``_monitor.py`` (the HTTP pages), ``_conn.py`` (the connection
  class): from the TCP connection to the ``101``.
* ``_delivery.py``: send queues, writers, slow consumers, closing a member.
* ``_plain.py``: the plain rooms, and their Redis pub/sub link (``_redis.py``).
* ``_match.py``: where a room-protocol connection goes (``Placement``), its
  link, quick match; ``_session.py`` reads its protocol, ``rooms.py`` (the
  room core) and ``game.py`` (game rooms) are its rooms in this process.
* ``_redis_rooms.py`` (the ``RoomStore``: calls, the tail, leases),
  ``_redis_session.py`` (a connection with its room in Redis) and
  ``_redis_lua.py`` (the scripts): room-protocol rooms kept in Redis.
* ``_thread.py`` (a relay on a thread), ``_parts.py`` (a member, a message,
  the counters), ``_errors.py`` (the exceptions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve as _ws_serve
from websockets.exceptions import ConnectionClosed

from .._version import __version__
from . import _monitor
from ._conn import DEFAULT_MAX_FRAGMENTS, RelayConnection, connection_class
from ._delivery import SLOW_CONSUMER_CODE, Delivery
from ._errors import RelayError, RelayStateError
from ._guard import LOOPBACK, Handshake, RateLimit, networks, shared_secret
from ._handshake import Gate, subprotocol
from ._match import Placement
from ._parts import RelayStats, _Member, _Message, _peer, _room_of
from ._plain import PlainRooms
from .game import GameRoom, Games
from .rooms import ROOM_PROTOCOL, RoomConfig, RoomCore

if TYPE_CHECKING:
    import ssl as _ssl
    from collections.abc import Callable, Coroutine, Mapping, Sequence
    from types import TracebackType

    from websockets.http11 import Request, Response

    from ._redis_rooms import RedisRoom, RoomStore

__all__ = [
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OPEN_TIMEOUT",
    "DEFAULT_PORT",
    "Relay",
    "RelayError",
    "RelayStateError",
    "RelayStats",
]

logger = logging.getLogger("wsloop.relay")

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

SHUTDOWN_CODE = 1001
"""The close code sent to every client when the relay shuts down (going away)."""
RATE_LIMIT_CODE = 1008
"""The close code for a client that passes its rate limit (policy violation)."""
DEFAULT_RATE_MESSAGES = 1000.0
"""Messages per second one client may send, on average (bursts of twice that)."""
DEFAULT_RATE_BYTES = 16.0 * 2**20
"""Payload bytes per second one client may send, on average (bursts of twice that)."""
DEFAULT_MAX_PER_ADDRESS = 100
"""Connections from one (non-loopback) address."""
ACCEPT_WARNING_EVERY = 10.0
"""Seconds between two log lines saying that connections cannot be accepted (no fds)."""


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
            Plain rooms go through pub/sub, rooms of the room protocol through
            Redis Streams (``_redis_rooms``: history, presence and resume on
            any relay, and a Redis blip loses nothing).
        redis_prefix: the prefix of the Redis channel names.
        rooms: the limits of the room protocol, for clients that ask for the
            ``wsloop.room.v1`` subprotocol (``docs/rooms.md``).
        auth: a hook that sees each client's :class:`~wsloop.relay.Handshake`
            (may be ``async``) and returns its identity; ``None`` refuses
            with HTTP 401, :class:`~wsloop.relay.Refuse` with its status.
        token: a shared secret clients must present (``?token=`` or a
            Bearer header); HTTP 401 without it, 403 with another. Also
            guards ``/metrics`` and ``/status``. Not with ``auth``.
        rate_messages: messages per second one client may send on average
            (bursts of twice that); past it the client is closed with 1008.
            ``None``: no limit.
        rate_bytes: payload bytes per second, likewise (a burst always
            allows one message of ``max_size``). ``None``: no limit.
        max_connections_per_address: connections from one address beyond
            this get HTTP 429. ``None``: no limit.
        exempt_networks: addresses not counted against that limit
            (networks such as ``"10.0.0.0/8"``, or single addresses);
            loopback by default, where a reverse proxy on the same host
            connects from for all of its clients.
        monitoring: serve ``/metrics`` and ``/status`` (``/healthz`` is
            always served).
        games: authoritative rooms: :class:`~wsloop.relay.GameRoom`
            subclasses by path pattern (``{"/ttt/*": TicTacToe}``). Their
            clients speak the room protocol; ``/ttt/`` is quick match.
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
        # Who may connect, how fast they may talk
        auth: Callable[[Handshake], Any] | None = None,
        token: str | None = None,
        rate_messages: float | None = DEFAULT_RATE_MESSAGES,
        rate_bytes: float | None = DEFAULT_RATE_BYTES,
        max_connections_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
        exempt_networks: Sequence[str] = LOOPBACK,
        # Operations
        monitoring: bool = True,
        # Authoritative rooms
        games: Mapping[str, type[GameRoom]] | None = None,
    ) -> None:
        if isinstance(protocols, str):
            raise TypeError("protocols must be a sequence of names, not a str")
        if isinstance(exempt_networks, str):
            raise TypeError("exempt_networks must be a sequence of networks, not a str")
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
        self.games = Games(games or {})
        if echo and self.games:
            raise ValueError("echo mode answers each client alone: it cannot host game rooms")
        if auth is not None and token is not None:
            raise ValueError("give auth or token, not both (a hook can check a token itself)")
        if token is not None and not token:
            raise ValueError("token must not be empty")
        for name, rate in (("rate_messages", rate_messages), ("rate_bytes", rate_bytes)):
            if rate is not None and rate <= 0:
                raise ValueError(f"{name} must be positive or None, not {rate}")
        if max_connections_per_address is not None and max_connections_per_address <= 0:
            raise ValueError("max_connections_per_address must be positive or None")
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
        self.token = token
        self.auth = shared_secret(token) if token is not None else auth
        self.rate_messages = rate_messages
        self.rate_bytes = rate_bytes
        self.max_connections_per_address = max_connections_per_address
        self.exempt_networks = tuple(exempt_networks)
        self._gate = Gate(
            echo=echo,
            protocols=self.protocols,
            games=self.games,
            auth=self.auth,
            token=token,
            max_connections=max_connections,
            max_per_address=max_connections_per_address,
            exempt=networks(self.exempt_networks),
            pages=self._page,
        )
        self.monitoring = monitoring
        self._rates = _monitor.Rates()
        self._sampler: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._bytes_in = 0
        self._rate_limited = 0
        self._handler_errors = 0
        self._resumes = 0
        self._placement = Placement(self)
        self.failure: str | None = None
        """Why the relay stopped by itself (its Redis link failed), else ``None``."""
        self._server: Server | None = None
        self._room_store: RoomStore | None = None
        self._members: dict[ServerConnection, _Member] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._closed: asyncio.Event | None = None
        self._messages_in = 0
        self._handler_set = False
        self._accept_warned = -ACCEPT_WARNING_EVERY
        self._delivery = Delivery(self, self._spawn)
        self._plain = PlainRooms(self._delivery, self._on_broker_failure)

    # Life cycle.

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's error handler while the relay runs: out of file descriptors is one line.

        When ``accept()`` fails for want of file descriptors (clients that
        connect and never finish their handshake, or more members than
        ``ulimit -n`` allows), asyncio logs the error with a traceback and
        retries every second: a traceback a second for as long as it lasts.
        The relay says it once every :data:`ACCEPT_WARNING_EVERY` seconds
        instead; anything else goes to asyncio's default handler.
        """
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if not (message.startswith("socket.accept() out of system resource") and exc):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._accept_warned >= ACCEPT_WARNING_EVERY:
            self._accept_warned = now
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            logger.warning(
                "! cannot accept new connections: %s (%d connected); retrying every second. "
                "Raise the limit on open files (ulimit -n, LimitNOFILE) or lower "
                "--max-connections or --open-timeout",
                why,
                len(self._members),
            )

    async def start(self) -> None:
        """Start listening (and connect to Redis first, when configured).

        Raises:
            RelayError: the port is taken, or Redis cannot be reached.
            RelayStateError: this relay was already started.
        """
        if self._server is not None:
            raise RelayStateError("this relay was already started")
        self._closed = asyncio.Event()
        if self.redis_url is not None and not self.echo:
            # The rooms of the room protocol live in Redis (and ride out a
            # blip); the pub/sub link of the plain rooms opens with the first
            # plain member (see _plain.py).
            from ._redis_rooms import RoomStore

            store = RoomStore(self.redis_url, prefix=self.redis_prefix, config=self.rooms)
            await store.start()
            self._room_store = store
        origins: list[Any] | None = None
        if self.allowed_origins is not None:
            origins = [*self.allowed_origins, None]
        try:
            self._server = await _ws_serve(
                self._handler,
                self.host,
                self.port,
                subprotocols=[subprotocol(p) for p in self.protocols] or None,
                select_subprotocol=self._gate.select_subprotocol,
                origins=origins,
                process_request=self._gate.process_request,
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
            if self._room_store is not None:
                await self._room_store.stop()
                self._room_store = None
            why = exc.strerror or str(exc)
            raise RelayError(f"could not listen on {self.host}:{self.port}: {why}") from exc
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._sampler = loop.create_task(self._sample_rates())
        if loop.get_exception_handler() is None:  # the application did not set its own
            loop.set_exception_handler(self._loop_exception)
            self._handler_set = True

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
        if self._sampler is not None:
            self._sampler.cancel()
        server.close(close_connections=False)
        members = list(self._members.values())
        if members:
            await asyncio.gather(*(self._delivery.close_member(m, code, reason) for m in members))
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
        await self._plain.stop()
        if self._room_store is not None:
            await self._room_store.stop()
        self._placement.close()
        if self._handler_set:
            asyncio.get_running_loop().set_exception_handler(None)
            self._handler_set = False
        closed.set()

    async def wait_closed(self) -> None:
        """Wait until the relay has stopped, by :meth:`stop` or by a failure.

        Raises:
            RelayStateError: the relay was never started.
        """
        if self._closed is None:
            raise RelayStateError("the relay was not started")
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
    def healthy(self) -> bool:
        """Serving, not stopping, and not failed (what ``/healthz`` says)."""
        return self._server is not None and not self._stopping and self.failure is None

    @property
    def stats(self) -> RelayStats:
        """A snapshot of the counters."""
        members = list(self._members.values())
        return RelayStats(
            connections=len(members),
            rooms=len(self._rooms),
            messages_in=self._messages_in,
            messages_out=self._delivery.messages_out,
            slow_consumers=self._delivery.slow_consumers,
            queued_bytes=sum(m.queued_bytes for m in members),
            peak_queued_bytes=self._delivery.peak_queued,
            bytes_in=self._bytes_in,
            bytes_out=self._delivery.bytes_out,
            rate_limited=self._rate_limited,
            refused=self._gate.refused,
            handler_errors=self._handler_errors,
            resumes=self._resumes,
        )

    @property
    def _rooms(self) -> dict[str, dict[_Member, None]]:
        """The plain rooms of this process and their members (``_plain.py``)."""
        return self._plain.rooms

    @property
    def _cores(self) -> dict[str, RoomCore]:
        """The room-protocol rooms of this process (``_match.Placement``)."""
        return self._placement.cores

    def room_size(self, room: str) -> int:
        """How many members the room has in this process."""
        return self._plain.size(room)

    def room(self, name: str) -> RoomCore | RedisRoom | None:
        """The room-protocol room of a URL path, if it has members (online or in grace).

        With Redis, the room as this process sees it (while it has
        connections here); its ``kick`` works on members of any relay.
        """
        if self._room_store is not None:
            return self._room_store.rooms.get(name)
        return self._cores.get(name)

    # The handshake (the refusals: _handshake.py).

    def _page(self, path: str, token_ok: bool | None, query: str) -> Response:
        return _monitor.respond(self, path, token_ok, query)

    async def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        """Register the client as a member before its ``101``, unless it is refused."""
        gate = self._gate
        room = _room_of(request)
        peer = _peer(conn)
        identity = gate.identities.pop(conn, None)
        address = gate.counted_address(conn)
        refusal = gate.refusal(
            conn,
            room,
            peer,
            response,
            address,
            stopping=self._stopping,
            connections=len(self._members),
        )
        if refusal is not None or response.status_code != 101:
            return refusal
        member = _Member(conn, room, peer)
        member.identity = identity
        if address is not None:
            member.address = address
            gate.count(address)
        if self.rate_messages is not None or self.rate_bytes is not None:
            member.limit = RateLimit(self.rate_messages, self.rate_bytes, self.max_size)
        self._members[conn] = member
        if isinstance(conn, RelayConnection):
            conn.on_unread_answers = lambda: self._delivery.kick(
                member,
                SLOW_CONSUMER_CODE,
                "too slow: the client does not read the answers to its pings",
                why="does not read its pongs",
            )
        if response.headers.get("Sec-WebSocket-Protocol") == ROOM_PROTOCOL:
            member.session = self._placement.session(member)
        elif not self.echo:
            self._plain.add(member)
        self._spawn(self._reap(member))
        if self.redis_url is not None and not self.echo and member.session is None:
            try:
                await self._plain.subscribe(member, self.redis_url, self.redis_prefix)
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
        if member.queue:  # queued between the handshake and now
            self._delivery.start_writer(member)
        limit = member.limit
        delivery = self._delivery
        try:
            async for message in conn:
                size = len(message)
                self._bytes_in += size
                if limit is not None:
                    why = limit.take(size)
                    if why is not None:
                        self._rate_limited += 1
                        member.why = "rate limited"
                        logger.info("! %s in %s: %s", member.peer, member.room, why)
                        await delivery.close_rate_limited(member, RATE_LIMIT_CODE, why)
                        break
                if member.session is not None:
                    member.rcvd += 1
                    self._messages_in += 1
                    member.session.handle(message)
                else:
                    await self._on_message(member, message)
                # Let the writers run: a burst read in one go must not fill
                # the queues of clients that are merely waiting for their turn.
                # Not needed when every copy went straight into its socket.
                if delivery.queued:
                    delivery.queued = False
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        finally:
            if member.session is not None:
                member.session.closed()
            member.closing = True
            member.wakeup.set()
            writer = member.writer
            if writer is not None:
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
            self._delivery.enqueue(member, item)
            return
        publication = self._plain.say(member, item)
        if publication is not None:
            await publication

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
        session = member.session
        if session is not None:
            self._placement.forget(session)
        if member.address:
            self._gate.release(member.address)
        self._plain.remove(member)
        if member.opened:
            conn = member.conn
            code = conn.close_code
            reason = conn.close_reason or ""
            ending = "no close frame" if code is None else f"{code} {reason!r}"
            why = member.why or _unanswered(conn)
            if why:
                ending += f" ({why})"
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

    async def _sample_rates(self) -> None:
        while True:
            self._rates.sample(self._messages_in, self._delivery.messages_out)
            await asyncio.sleep(1.0)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _unanswered(conn: ServerConnection) -> str:
    """What the relay's own close frame said, when the client never answered it."""
    sent, rcvd = conn.protocol.close_sent, conn.protocol.close_rcvd
    if sent is None or rcvd is not None:
        return ""
    return f"the relay sent {sent.code} {sent.reason!r}, no answer"
