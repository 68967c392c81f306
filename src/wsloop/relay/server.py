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
one writer task that drains it into the connection, started the first time
something has to wait there. Relaying a message never waits for a receiver:
a member with nothing waiting and room in its socket buffer gets the frame
written at once (built once for all of them), any other has it appended to
its queue. A member
whose queue would overflow is a slow consumer: its queue is dropped and it is
closed with 1008; if it does not even read the close frame within
``close_timeout``, its TCP connection is aborted. Memory per member is thus
bounded by the queue limits plus the ``websockets`` write buffer.

A member leaves its room when its TCP connection is gone, whatever the path
that led there (``_reap``), which is also where the disconnect is logged.

Before any of this, ``process_request`` answers the plain-HTTP pages
(``/healthz``, ``/metrics``, ``/status``: ``_monitor.py``) and runs the
``auth`` hook; ``process_response`` applies the per-address limit; each
message read passes the sender's rate limit first (``_guard.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve as _ws_serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN

from .._version import __version__
from . import _monitor
from ._conn import DEFAULT_MAX_FRAGMENTS, connection_class
from ._errors import RelayError
from ._guard import LOOPBACK, Handshake, RateLimit, Refuse, exempt, networks, shared_secret
from ._parts import RelayStats, _first_line, _Member, _Message, _peer, _room_of
from ._session import RoomSession
from .game import GameRoom, Games, _GameCore
from .rooms import ROOM_PROTOCOL, RoomConfig, RoomCore

if TYPE_CHECKING:
    import ssl as _ssl
    from collections.abc import Callable, Coroutine, Mapping, Sequence
    from types import TracebackType

    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    from ._redis import RedisBroker
    from ._redis_rooms import RedisRoom, RoomStore

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
RATE_LIMIT_CODE = 1008
"""The close code for a client that passes its rate limit (policy violation)."""
DEFAULT_RATE_MESSAGES = 1000.0
"""Messages per second one client may send, on average (bursts of twice that)."""
DEFAULT_RATE_BYTES = 16.0 * 2**20
"""Payload bytes per second one client may send, on average (bursts of twice that)."""
DEFAULT_MAX_PER_ADDRESS = 100
"""Connections from one (non-loopback) address."""


class _MemberLink:
    """A relay member as the room core sees it (a :class:`~wsloop.relay.rooms.Link`)."""

    __slots__ = ("member", "placed", "relay")

    def __init__(self, relay: Relay, member: _Member) -> None:
        self.relay = relay
        self.member = member
        self.placed: _GameCore | None = None
        """The game room quick match put this connection in, until it joins or resumes."""

    @property
    def identity(self) -> Any:
        """What the relay's ``auth`` hook said of this connection."""
        return self.member.identity

    def count_resume(self) -> None:
        """A room-protocol seat was taken back on this connection."""
        self.relay._resumes += 1

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


class _MatchSession(RoomSession):
    """A quick-match connection: placed in a room at the handshake, or resumed anywhere.

    A resume names its seat by token, and the seat may be in any room of the
    class: the session moves to that room before the resume is handled.
    """

    def __init__(
        self, link: _MemberLink, core: RoomCore, config: RoomConfig, relay: Relay
    ) -> None:
        super().__init__(link, core, config)
        self.relay = relay
        self.placement = link

    def handle(self, message: str | bytes) -> None:
        link = self.placement
        placed = link.placed
        if placed is not None and isinstance(message, str):
            home = self._home(placed, message)
            if home is not None and home is not placed:
                self.relay._unplace(link)
                self._core = home
        super().handle(message)
        if link.placed is not None and self.seat is not None:
            link.placed.pending -= 1  # joined (or resumed) where it was placed
            link.placed = None

    def _home(self, placed: _GameCore, message: str) -> RoomCore | None:
        """For a resume: the room of the placed room's class that holds the token."""
        if '"resume"' not in message:
            return None
        try:
            obj = json.loads(message)
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("type") != "resume":
            return None
        token = obj.get("token")
        if not isinstance(token, str):
            return None
        for core in self.relay._cores.values():
            if (
                isinstance(core, _GameCore)
                and core.room_class is placed.room_class
                and core.holds(token)
            ):
                return core
        return None


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
        self._exempt = networks(self.exempt_networks)
        self.monitoring = monitoring
        self._identities: dict[ServerConnection, Any] = {}
        self._per_address: dict[str, int] = {}
        self._rates = _monitor.Rates()
        self._sampler: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._bytes_in = 0
        self._bytes_out = 0
        self._rate_limited = 0
        self._refused = 0
        self._handler_errors = 0
        self._resumes = 0
        self._cores: dict[str, RoomCore] = {}
        self.failure: str | None = None
        """Why the relay stopped by itself (its Redis link failed), else ``None``."""
        self._server: Server | None = None
        self._broker: RedisBroker | None = None
        self._broker_started: asyncio.Future[None] | None = None
        self._room_store: RoomStore | None = None
        self._members: dict[ServerConnection, _Member] = {}
        self._rooms: dict[str, dict[_Member, None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._closed: asyncio.Event | None = None
        self._messages_in = 0
        self._messages_out = 0
        self._slow_consumers = 0
        self._peak_queued = 0
        # The last frame built for _write_now, and the payload it was built from.
        self._frame = b""
        self._frame_data: bytes | None = None
        self._frame_text = True
        self._queued = False
        """A message went into a send queue since the last reader yielded."""

    # Life cycle.

    async def start(self) -> None:
        """Start listening (and connect to Redis first, when configured).

        Raises:
            RelayError: the port is taken, or Redis cannot be reached.
        """
        if self._server is not None:
            raise RuntimeError("this relay was already started")
        self._closed = asyncio.Event()
        if self.redis_url is not None and not self.echo:
            # The rooms of the room protocol live in Redis (and ride out a
            # blip); the pub/sub link of the plain rooms opens with the first
            # plain member (see _plain_broker).
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
                subprotocols=[self._subprotocol(p) for p in self.protocols] or None,
                select_subprotocol=self._select_subprotocol,
                origins=origins,
                process_request=self._process_request,
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
        self._sampler = asyncio.get_running_loop().create_task(self._sample_rates())

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
        if self._room_store is not None:
            await self._room_store.stop()
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
            messages_out=self._messages_out,
            slow_consumers=self._slow_consumers,
            queued_bytes=sum(m.queued_bytes for m in members),
            peak_queued_bytes=self._peak_queued,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            rate_limited=self._rate_limited,
            refused=self._refused,
            handler_errors=self._handler_errors,
            resumes=self._resumes,
        )

    def room_size(self, room: str) -> int:
        """How many members the room has in this process."""
        return len(self._rooms.get(room, ()))

    def room(self, name: str) -> RoomCore | RedisRoom | None:
        """The room-protocol room of a URL path, if it has members (online or in grace).

        With Redis, the room as this process sees it (while it has
        connections here); its ``kick`` works on members of any relay.
        """
        if self._room_store is not None:
            return self._room_store.rooms.get(name)
        return self._cores.get(name)

    def _session(self, member: _Member) -> RoomSession:
        link = _MemberLink(self, member)
        game = self.games.match(member.room)
        if game is not None:  # a game room lives in this process, Redis or not
            cls, quick = game
            name = member.room
            if quick:
                name, _ = Games.quick_match(self._cores, member.room, cls)
            core = self._core(name, cls)
            if quick:
                assert isinstance(core, _GameCore)
                core.pending += 1
                link.placed = core
                return _MatchSession(link, core, self.rooms, self)
            return RoomSession(link, core, self.rooms)
        if self._room_store is not None:
            return self._room_store.session(link, member.room)
        return RoomSession(link, self._core(member.room, None), self.rooms)

    def _core(self, name: str, cls: type[GameRoom] | None) -> RoomCore:
        core = self._cores.get(name)
        if core is None:
            loop = asyncio.get_running_loop()
            if cls is None:
                core = RoomCore(name, self.rooms, loop, on_empty=self._drop_core)
            else:
                core = _GameCore(
                    name,
                    self.rooms,
                    loop,
                    cls,
                    on_empty=self._drop_core,
                    on_error=self._game_error,
                )
            self._cores[name] = core
        return core

    def _game_error(self) -> None:
        self._handler_errors += 1

    def _drop_core(self, core: RoomCore) -> None:
        if self._cores.get(core.name) is core:
            del self._cores[core.name]
            core.close()

    def _unplace(self, link: _MemberLink) -> None:
        """A quick-match connection leaves the room it was placed in without joining."""
        core, link.placed = link.placed, None
        if core is not None:
            core.pending -= 1
            if not core.seats and core.pending <= 0:
                self._drop_core(core)

    # The handshake.

    @staticmethod
    def _subprotocol(name: str) -> Subprotocol:
        return name  # type: ignore[return-value]

    def _select_subprotocol(
        self, conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if not offered:
            return None
        if self.games and self.games.match(_room_of(conn.request)) is not None:  # type: ignore[arg-type]
            if ROOM_PROTOCOL not in offered:
                raise NegotiationError(
                    f"this path is a game room: ask for the {ROOM_PROTOCOL} subprotocol"
                )
            return self._subprotocol(ROOM_PROTOCOL)
        if ROOM_PROTOCOL in offered and not self.echo:
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

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = _room_of(request)
        upgrade = "upgrade" in request.headers.get("Connection", "").lower()
        if path in _monitor.PATHS and not upgrade:
            token_ok, query = None, ""
            if self.token is not None:
                token = Handshake.of(request, "").token
                token_ok = token is not None and hmac.compare_digest(token, self.token)
                query = f"?{urllib.parse.urlencode({'token': token})}" if token_ok else ""
            return _monitor.respond(self, path, token_ok, query)
        if self.auth is None:
            return None
        handshake = Handshake.of(request, _peer(conn))
        try:
            identity = self.auth(handshake)
            if inspect.isawaitable(identity):
                identity = await identity
        except Refuse as refusal:
            return conn.respond(refusal.status, refusal.message.rstrip("\n") + "\n")
        except Exception:
            logger.exception("the relay's auth hook failed for %s", handshake.peer)
            return conn.respond(500, "The relay could not check who you are (see its log).\n")
        if identity is None:
            return conn.respond(401, "This relay does not know you: authentication required.\n")
        self._identities[conn] = identity
        return None

    async def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        room = _room_of(request)
        peer = _peer(conn)
        identity = self._identities.pop(conn, None)
        if response.status_code != 101:
            if response.status_code == 200 and room in _monitor.PATHS:
                return None  # a monitoring page, not a refusal
            self._refused += 1
            logger.info(
                "! %s refused %s: HTTP %d %s",
                peer,
                room,
                response.status_code,
                _first_line(response.body),
            )
            return None
        if self._stopping:
            self._refused += 1
            return conn.respond(503, "The relay is shutting down.\n")
        if len(self._members) >= self.max_connections:
            self._refused += 1
            logger.info(
                "! %s refused %s: HTTP 503 full (%d connections)", peer, room, len(self._members)
            )
            return conn.respond(
                503,
                f"This relay is full ({self.max_connections} connections); try again later.\n",
            )
        address = _address(conn)
        counted = address is not None and not exempt(address, self._exempt)
        limit = self.max_connections_per_address
        if counted and limit is not None and self._per_address.get(address or "", 0) >= limit:
            self._refused += 1
            logger.info("! %s refused %s: HTTP 429 (%d from its address)", peer, room, limit)
            return conn.respond(
                429, f"Too many connections from your address ({limit}); close some first.\n"
            )
        if (
            self.games
            and self.games.match(room) is not None
            and response.headers.get("Sec-WebSocket-Protocol") != ROOM_PROTOCOL
        ):
            self._refused += 1
            return conn.respond(
                400,
                f"This path is a game room: connect with the {ROOM_PROTOCOL} subprotocol "
                "(see docs/rooms.md).\n",
            )
        member = _Member(conn, room, peer)
        member.identity = identity
        if counted and address is not None:
            member.address = address
            self._per_address[address] = self._per_address.get(address, 0) + 1
        if self.rate_messages is not None or self.rate_bytes is not None:
            member.limit = RateLimit(self.rate_messages, self.rate_bytes, self.max_size)
        self._members[conn] = member
        if response.headers.get("Sec-WebSocket-Protocol") == ROOM_PROTOCOL:
            member.session = self._session(member)
        elif not self.echo:
            self._rooms.setdefault(room, {})[member] = None
        self._spawn(self._reap(member))
        if self.redis_url is not None and not self.echo and member.session is None:
            member.joined = True
            try:
                broker = await self._plain_broker()
                await broker.join(room)
            except RelayError as exc:
                self._remove(member)
                logger.info("! %s refused %s: HTTP 503 %s", peer, room, exc)
                return conn.respond(503, f"The relay cannot reach Redis: {exc}\n")
        return None

    async def _plain_broker(self) -> RedisBroker:
        """The pub/sub link of the plain rooms, opened with the first plain member."""
        if self._broker_started is None:
            self._broker_started = started = asyncio.get_running_loop().create_future()
            from ._redis import RedisBroker

            assert self.redis_url is not None
            broker = RedisBroker(
                self.redis_url,
                prefix=self.redis_prefix,
                deliver=self._deliver_remote,
                on_failure=self._on_broker_failure,
            )
            try:
                await broker.start()
            except RelayError as exc:
                self._broker_started = None
                started.set_exception(exc)
                started.exception()  # retrieved: raised below for each waiter
                raise
            self._broker = broker
            started.set_result(None)
        await asyncio.shield(self._broker_started)
        assert self._broker is not None
        return self._broker

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
            self._start_writer(member)
        limit = member.limit
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
                        await self._close_member(member, RATE_LIMIT_CODE, why)
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
                if self._queued:
                    self._queued = False
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

    def _start_writer(self, member: _Member) -> None:
        """The member's writer task, started the first time something waits in its queue.

        Most messages go straight into the socket (``_write_now``), so an idle
        member, or one that keeps up, never needs a task of its own.
        """
        member.writer = asyncio.get_running_loop().create_task(self._write(member))

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
        if not member.queue and not member.writing and self._write_now(member, item):
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
        self._queued = True
        if member.writer is None and member.opened:
            self._start_writer(member)
        member.queued_bytes += size
        if member.queued_bytes > self._peak_queued:
            self._peak_queued = member.queued_bytes
        member.wakeup.set()

    def _write_now(self, member: _Member, item: _Message) -> bool:
        """Write a message straight into an idle member's socket; False if it must queue.

        Only when nothing of this member's is waiting (its queue is empty and
        its writer holds nothing), so the order is kept; only while its
        transport is below its high-water mark (``paused`` is websockets' flow
        control), so a slow reader still fills its queue and is closed as a
        slow consumer. The frame is the same bytes for every member without an
        extension (server frames are not masked): it is built once per
        message and reused for all of them, as long as the same payload
        object is being handed out.
        """
        conn = member.conn
        protocol = conn.protocol
        if (
            protocol.state is not OPEN
            or conn.paused
            or protocol.extensions
            or protocol.writes
            or conn.send_in_progress is not None
        ):
            return False
        data = item.data
        if data is not self._frame_data or item.text is not self._frame_text:
            opcode = Opcode.TEXT if item.text else Opcode.BINARY
            self._frame = Frame(opcode, data).serialize(mask=False, extensions=[])
            self._frame_data = data
            self._frame_text = item.text
        conn.transport.write(self._frame)
        member.sent += 1
        self._messages_out += 1
        self._bytes_out += len(data)
        return True

    async def _write(self, member: _Member) -> None:
        conn = member.conn
        queue = member.queue
        while not member.closing:
            if not queue:
                member.writing = False
                member.idle.set()
                member.wakeup.clear()
                await member.wakeup.wait()
                continue
            item = queue.popleft()
            member.queued_bytes -= len(item.data)
            member.writing = True
            await conn.send(item.data, text=item.text)
            member.writing = False
            member.sent += 1
            self._messages_out += 1
            self._bytes_out += len(item.data)

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
        session = member.session
        if session is not None:
            link = session.link
            if isinstance(link, _MemberLink) and link.placed is not None:
                self._unplace(link)
            core: RoomCore | None = session._core  # None: a room kept in Redis
            idle = core is not None and not core.seats and not getattr(core, "pending", 0)
            if idle and core is not None and self._cores.get(core.name) is core:
                self._drop_core(core)  # nobody ever joined it
        address = member.address
        if address:
            left = self._per_address.get(address, 1) - 1
            if left > 0:
                self._per_address[address] = left
            else:
                self._per_address.pop(address, None)
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

    async def _sample_rates(self) -> None:
        while True:
            self._rates.sample(self._messages_in, self._messages_out)
            await asyncio.sleep(1.0)

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


def _address(conn: ServerConnection) -> str | None:
    try:
        address = conn.remote_address
    except Exception:  # pragma: no cover - the transport is gone
        return None
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None


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
