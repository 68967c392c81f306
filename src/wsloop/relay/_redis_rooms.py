"""Rooms of the room protocol across relay processes, kept in Redis (``--redis``).

Theory of operation
-------------------
With Redis, the truth of a room lives in Redis, not in a relay: every relay
process holding a connection of the room reads and writes the same keys, so
a member may join on one relay and resume on another. A room ``<path>`` has
nine keys ``<prefix>room:<path>:<suffix>`` (see ``_redis_lua``):

* ``log``: a Redis Stream, the room's ordered log. A message said in the
  room is the entry ``<seq>-0`` (its sequence number is the stream id); the
  presence events after it (joined, left) are ``<seq>-1``, ``<seq>-2``...
  The log is the history (``[first, seq]``: ``history`` messages and
  ``history_bytes`` bytes, counted as in a single process) and the way
  messages travel between relays. What leaves the history stays in the
  stream a while (10 s, at most ``max(history, 1000)`` messages and
  ``history_bytes`` bytes more), so a tail that lags behind a fast room
  still finds every message.
* ``state`` (the last seq, member id counter, first kept seq, kept bytes),
  ``seats`` (member id -> name and meta), ``online`` (member id -> the
  connection holding it, ``<relay id>:<n>``), ``tokens`` / ``token_of``
  (SHA-256 of the resume token <-> member id: Redis never holds a usable
  token), ``expiry`` (dropped seats -> the end of their grace, ms), ``sizes``
  (bytes of each kept message), ``events`` (the presence events kept, at most
  ``_redis_session.EVENTS``), and per member ``seen:<id>``: the client message ids it said
  (a sorted set by seq, ``dedupe`` long).

Every change is one Lua script (join, resume, say, detach, leave, reap), run
atomically by Redis: the sequence number, the dedupe check and the append
happen together, so two relays never number two messages alike and a message
resent with its id (on either relay) is said once.

Delivery. One task per relay tails the logs of its rooms with ``XREAD
BLOCK`` on its own connection, from the last entry it delivered, and hands
each entry to the room's local connections, in log order (how a connection
joins that flow, without a hole or a repeat: ``_redis_session``).

A Redis blip. Every script call is retried (with backoff, for up to
``retry_for`` seconds, 30 by default) and each is idempotent under retry: a
join or resume recognises its connection id, a say its client message id, a
detach or leave checks the seat. The tail reconnects and reads on from where
it was, so it catches up with whatever was appended meanwhile. What a
connection does while Redis is away: ``_redis_session``.

Relays that stop or die. A relay that stops detaches its connections (the
seats are ``dropped``: their members resume on any relay). Each relay keeps
a lease ``<prefix>relay:<id>`` alive in Redis (``LEASE`` seconds) and, once
a second, runs the reap script for each of its rooms: seats held by a relay
whose lease is gone become ``dropped``; seats past their grace become
``timed_out``. A resume also refuses a seat past its grace by itself. Every
script refreshes the room's keys' lifetime (``grace`` plus an hour), so a
room nobody touches vanishes from Redis.

Scripts touch the per-member and lease keys by name, which a Redis Cluster
would refuse: this design is for one Redis server (or a primary with
replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from . import _redis_lua as lua
from ._errors import RelayError
from ._redis import import_redis, redact
from ._redis_session import RedisRoom, RedisRoomSession, _entries

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .rooms import Link, RoomConfig

__all__ = ["RedisRoom", "RoomStore"]

logger = logging.getLogger("wsloop.relay")

LEASE = 10.0
"""Seconds a relay's lease lives in Redis without being renewed."""
HEARTBEAT = 1.0
"""Seconds between a relay's lease renewals and reaps."""
BLOCK_MS = 1000
"""How long one ``XREAD`` of the tail blocks, in milliseconds."""


class RoomStore:
    """The Redis side of the rooms of one relay process.

    Args:
        url: the Redis server.
        prefix: the prefix of every key.
        config: the limits of the room protocol.
        retry_for: seconds a script is retried through a Redis blip before the
            connection that needs it is closed with 1011.
    """

    def __init__(
        self, url: str, *, prefix: str, config: RoomConfig, retry_for: float = 30.0
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.config = config
        self.retry_for = retry_for
        self.id = secrets.token_hex(8)
        self.rooms: dict[str, RedisRoom] = {}
        self._by_log: dict[bytes, RedisRoom] = {}
        self._counter = itertools.count(1)
        self._client: Any = None
        self._tail_client: Any = None
        self._tail_id: int | None = None
        self._blocked = False
        self._scripts: dict[str, Any] = {}
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.blips = 0
        """How many times a call or the tail found Redis unreachable (for tests)."""

    @property
    def lease_key(self) -> str:
        return f"{self.prefix}relay:{self.id}"

    def connection_id(self) -> str:
        """A new connection id, unique across relays: ``<relay id>:<n>``."""
        return f"{self.id}:{next(self._counter)}"

    # Life cycle.

    async def start(self) -> None:
        """Connect, load the scripts, start the tail and the heartbeat.

        Raises:
            RelayError: the ``redis`` package is missing or Redis cannot be reached.
        """
        aioredis = import_redis()
        import redis.exceptions as rexc
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._errors = (rexc.ConnectionError, rexc.TimeoutError, OSError)
        where = redact(self.url)
        options: dict[str, Any] = {
            "socket_timeout": 5.0,
            "socket_connect_timeout": 2.0,
            "retry": Retry(NoBackoff(), 0),
        }
        try:
            self._client = aioredis.Redis.from_url(self.url, **options)
            self._tail_client = aioredis.Redis.from_url(
                self.url, single_connection_client=True, **options
            )
        except ValueError as exc:
            raise RelayError(f"invalid Redis URL {where}: {exc}") from exc
        try:
            async with asyncio.timeout(10.0):
                await self._client.ping()
                await self._client.set(self.lease_key, b"1", px=int(LEASE * 1000))
        except Exception as exc:
            await self.stop()
            why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise RelayError(f"could not use Redis at {where}: {why}") from exc
        for name in ("join", "resume", "say", "detach", "leave", "reap"):
            self._scripts[name] = self._client.register_script(getattr(lua, name.upper()))
        self._loops = [
            asyncio.create_task(self._tail(), name="wsloop-rooms-tail"),
            asyncio.create_task(self._heartbeat(), name="wsloop-rooms-heartbeat"),
        ]

    async def stop(self) -> None:
        """Let the connections' last operations finish, then stop and disconnect."""
        self._stopping = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=3.0)
            for task in pending:
                task.cancel()
        # The loops end at their next turn; a cancellation can be swallowed
        # inside the redis client while a command is in flight.
        self._wakeup.set()
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=BLOCK_MS / 1000 + 2.0)
        self._loops = []
        for client in (self._client, self._tail_client):
            if client is not None:
                with contextlib.suppress(Exception):
                    if client is self._client:
                        await client.delete(self.lease_key)
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._client = self._tail_client = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Rooms and sessions.

    def session(self, link: Link, name: str) -> RedisRoomSession:
        """A session for a new connection to the room ``name``."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = RedisRoom(self, name)
            self._by_log[room.log_key] = room
        return RedisRoomSession(link, room, self.config)

    def release(self, room: RedisRoom) -> None:
        """A session of ``room`` ended; forget the room when it was the last."""
        room.sessions -= 1
        if room.sessions <= 0 and not room.locals and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            self._by_log.pop(room.log_key, None)

    # Calls, retried through a blip.

    async def call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script; retried until ``retry_for`` runs out.

        Raises:
            RelayError: Redis stayed unreachable.
        """
        return await self._retry(lambda: self._scripts[script](keys=keys, args=args))

    async def call_plain(self, command: str, *args: Any) -> Any:
        """Run a plain command of the client (``xrange``...), retried the same way."""
        return await self._retry(lambda: getattr(self._client, command)(*args))

    async def _retry(self, make: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        while True:
            if self._client is None:
                raise RelayError("the relay is stopping")
            try:
                return await make()
            except self._errors as exc:
                self.blips += 1
                if time.monotonic() + delay > deadline:
                    raise RelayError(f"Redis unreachable for {self.retry_for:g} s: {exc}") from exc
                logger.debug("Redis call failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    # The tail and the heartbeat.

    def wake(self) -> None:
        """A room got a position: have the tail read it too."""
        self._wakeup.set()
        if self._blocked and self._tail_id is not None and self._client is not None:
            self.spawn(self._unblock(self._tail_id))

    async def _unblock(self, client_id: int) -> None:
        with contextlib.suppress(Exception):
            await self._client.client_unblock(client_id)

    async def _tail(self) -> None:
        delay = 0.02
        while not self._stopping:
            streams = {
                room.log_key: f"{room.position[0]}-{room.position[1]}"
                for room in self.rooms.values()
                if room.position is not None
            }
            if not streams:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._wakeup.clear()
            try:
                if self._tail_id is None:
                    self._tail_id = int(await self._tail_client.client_id())
                self._blocked = True
                try:
                    reply = await self._tail_client.xread(streams, count=512, block=BLOCK_MS)
                finally:
                    self._blocked = False
            except self._errors as exc:
                self.blips += 1
                self._tail_id = None
                logger.debug("reading the room logs failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            delay = 0.02
            for key, raw in reply or ():
                room = self._by_log.get(key)
                if room is None or room.position is None:
                    continue
                for entry in _entries(raw):
                    if entry[0] > room.position:
                        room.deliver(entry)
            await asyncio.sleep(0)

    async def _heartbeat(self) -> None:
        grace = self.config.grace
        announce = "1" if self.config.announce_drops else "0"
        while not self._stopping:
            await asyncio.sleep(HEARTBEAT)
            reap = self._scripts["reap"]
            leases = f"{self.prefix}relay:"
            with contextlib.suppress(*self._errors):
                # The lease and every reap in one round trip, whatever the rooms.
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.set(self.lease_key, b"1", px=int(LEASE * 1000))
                    for room in tuple(self.rooms.values()):
                        if room.locals:
                            args = room.arguments(leases, int(grace * 1000), grace, announce)
                            await reap(keys=room.keys, args=args, client=pipe)
                    await pipe.execute()
