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
  ``EVENTS``), and per member ``seen:<id>``: the client message ids it said
  (a sorted set by seq, ``dedupe`` long).

Every change is one Lua script (join, resume, say, detach, leave, reap), run
atomically by Redis: the sequence number, the dedupe check and the append
happen together, so two relays never number two messages alike and a message
resent with its id (on either relay) is said once.

Delivery. One task per relay tails the logs of its rooms with ``XREAD
BLOCK`` on its own connection, from the last entry it delivered, and hands
each entry to the room's local connections, in log order. Every connection
has a cursor (the last entry id it was given) and ignores what is not after
it. A join or resume script returns, atomically, the room's position, the
members and the history after ``since``; the connection is given its
``welcome`` and that replay, then what the tail brought meanwhile (kept in
a backlog while the script ran) or what it must still fetch (``XRANGE``), and
is live from there. A message whose seq jumps past the cursor's (the log
was trimmed under a relay that was cut off longer than the history covers)
is announced as a ``gap`` first: never a silent hole.

A Redis blip. Every script call is retried (with backoff, for up to
``retry_for`` seconds, 30 by default) and each is idempotent under retry: a
join or resume recognises its connection id, a say its client message id, a
detach or leave checks the seat. The tail reconnects and reads on from where
it was, so it catches up with whatever was appended meanwhile. A connection's
operations run in order on one task, so what it sends waits (nothing
dropped) while Redis is away. Past ``retry_for`` the connection is closed
with 1011 and the client resumes (elsewhere, or here later); its queued
sends are given up (the client resends them), but its detach still runs,
retried, so the seat does not stay online for nobody.

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
import hashlib
import itertools
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from . import _redis_lua as lua
from ._errors import RelayError
from ._redis import import_redis, redact
from ._session import RoomSession
from .rooms import RoomConfig, Seat, encode

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .rooms import Link

__all__ = ["RedisRoom", "RoomStore"]

logger = logging.getLogger("wsloop.relay")

EVENTS = 1000
"""Presence events each room's log keeps (beside the messages of its history)."""
LEASE = 10.0
"""Seconds a relay's lease lives in Redis without being renewed."""
HEARTBEAT = 1.0
"""Seconds between a relay's lease renewals and reaps."""
BLOCK_MS = 1000
"""How long one ``XREAD`` of the tail blocks, in milliseconds."""
IDLE_TTL = 3600.0
"""Seconds a room's keys outlive its last change (on top of the grace period)."""

_Position = tuple[int, int]
_Entry = tuple[_Position, dict[bytes, bytes]]
_REPLACED = "replaced by a newer connection of this member"
if TYPE_CHECKING:
    _Op = tuple[Callable[[], Coroutine[Any, Any, None]], bool]


def _position(raw: bytes | str) -> _Position:
    text = raw.decode() if isinstance(raw, bytes) else raw
    seq, _, sub = text.partition("-")
    return int(seq), int(sub or 0)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _entries(raw: Any) -> list[_Entry]:
    """Stream entries as a script or ``XRANGE`` returns them."""
    out: list[_Entry] = []
    for item in raw or ():
        eid, fields = item[0], item[1]
        if not isinstance(fields, dict):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        out.append((_position(eid), fields))
    return out


class _Local:
    """A connection of this relay in a room: where it is in the log."""

    __slots__ = ("backlog", "cursor", "session")

    def __init__(self, session: RedisRoomSession) -> None:
        self.session = session
        self.cursor: _Position = (0, 0)
        self.backlog: list[_Entry] | None = []


class RedisRoom:
    """One room as seen by one relay: its local connections and its place in the log."""

    def __init__(self, store: RoomStore, name: str) -> None:
        self.store = store
        self.name = name
        base = f"{store.prefix}room:{name}:"
        self.base = base
        self.keys = [base + suffix for suffix in lua.ROOM_KEYS]
        self.log_key = self.keys[0].encode("utf-8", "surrogateescape")
        self.position: _Position | None = None
        self.locals: dict[str, _Local] = {}
        self.sessions = 0

    # Scripts.

    async def run(self, script: str, *args: Any) -> Any:
        """Run one of the room's scripts (retried through a Redis blip)."""
        return await self.store.call(script, self.keys, self.arguments(*args))

    def arguments(self, *args: Any) -> list[Any]:
        """The arguments of a script of this room: the common three, then ``args``."""
        ttl = int((self.store.config.grace + IDLE_TTL) * 1000)
        return [self.base, EVENTS, ttl, *args]

    def kick(self, member_id: str, reason: str = "kicked by the room") -> bool:
        """Remove a member (on whichever relay it is) and close it with 4003.

        Done in the background; returns ``True`` once it is under way.
        """
        self.store.spawn(self._kick(member_id, reason))
        return True

    async def _kick(self, member_id: str, reason: str) -> None:
        try:
            await self.run("leave", member_id, "kicked", reason)
        except RelayError as exc:
            logger.warning("room %s: could not kick %s: %s", self.name, member_id, exc)

    # The tail.

    def deliver(self, entry: _Entry) -> None:
        """An entry of the log, in order, from the tail."""
        self.position = entry[0]
        for local in tuple(self.locals.values()):
            if local.backlog is not None:
                local.backlog.append(entry)
            else:
                self.send(local, entry)

    def send(self, local: _Local, entry: _Entry) -> None:
        """Give one connection one entry, unless it had it already."""
        eid, fields = entry
        if eid <= local.cursor:
            return
        session = local.session
        link = session.link
        kind = fields.get(b"k")
        if kind == b"m":
            if eid[0] > local.cursor[0] + 1:
                start, end = local.cursor[0] + 1, eid[0] - 1
                gap = {"type": "gap", "missed": end - start + 1, "from": start, "to": end}
                link.push(encode(gap), True)
            link.push(fields[b"h"], True)
            if b"b" in fields:
                link.push(fields[b"b"], False)
        elif kind == b"e":
            link.push(fields[b"j"], True)
        elif kind == b"l":
            seat = session.seat
            member = fields[b"m"].decode()
            reason = fields[b"r"]
            if seat is not None and seat.id == member:
                if reason == b"kicked":
                    link.push(fields[b"j"], True)
                    session.lost(4003, fields.get(b"w", b"").decode() or "kicked by the room")
                elif reason == b"replaced":
                    if fields.get(b"c", b"").decode() == session.conn:
                        link.push(fields[b"j"], True)
                        session.lost(4001, _REPLACED)
                elif reason in (b"dropped", b"timed_out"):
                    # Reaped while still here (this relay was cut off from Redis
                    # past its lease): let the client resume.
                    session.lost(1011, "the relay lost its seat in Redis: resume")
            elif reason != b"replaced":
                link.push(fields[b"j"], True)
        local.cursor = eid

    async def go_live(self, local: _Local, pos: _Position) -> None:
        """After the welcome and its replay: what happened since, then live."""
        local.cursor = pos
        if self.position is None:
            self.position = pos
            self.store.wake()
        elif self.position > pos:
            since = f"({pos[0]}-{pos[1]}"
            until = f"{self.position[0]}-{self.position[1]}"
            raw = await self.store.call_plain("xrange", self.keys[0], since, until)
            for entry in _entries(raw):
                self.send(local, entry)
        backlog, local.backlog = local.backlog or [], None
        for entry in backlog:
            self.send(local, entry)


class RedisRoomSession(RoomSession):
    """The room protocol on one connection, with the room in Redis.

    The checks are :class:`RoomSession`'s; what the room does is a queue of
    operations run in order on one task, each a script.
    """

    def __init__(self, link: Link, room: RedisRoom, config: RoomConfig) -> None:
        super().__init__(link, None, config)
        self.room = room
        self.conn = room.store.connection_id()
        self._ops: asyncio.Queue[_Op | None] = asyncio.Queue()
        self._gone = False
        self._cut_off = False
        room.sessions += 1
        room.store.spawn(self._work())

    async def _work(self) -> None:
        try:
            while (item := await self._ops.get()) is not None:
                op, final = item
                if self._gone or (self._cut_off and not final):
                    continue
                try:
                    await op()
                except RelayError as exc:
                    logger.warning("room %s: %s", self.room.name, exc)
                    if not self._cut_off:
                        # The client resumes (here or elsewhere); the seat is
                        # still detached, in turn, once Redis answers again.
                        self._cut_off = True
                        self.room.locals.pop(self.conn, None)
                        self.link.shut(1011, "the relay cannot reach Redis")
        finally:
            self.room.locals.pop(self.conn, None)
            self.room.store.release(self.room)

    def _queue(self, op: Callable[[], Coroutine[Any, Any, None]], final: bool = False) -> None:
        self._ops.put_nowait((op, final))

    def lost(self, code: int, reason: str) -> None:
        """The seat is not this connection's any more: close it, forget the seat."""
        self._gone = True
        self.seat = None
        self.room.locals.pop(self.conn, None)
        self.link.shut(code, reason)

    # What the room does.

    def _do_join(self, name: str, meta: Any) -> None:
        seat = Seat("", name, meta)
        self.seat = seat
        self._queue(lambda: self._join_op(seat))

    async def _join_op(self, seat: Seat) -> None:
        local = self.room.locals[self.conn] = _Local(self)
        info = encode({"name": seat.name, "meta": seat.meta})[1:-1]
        reply = await self.room.run(
            "join", self.conn, info, _hash(seat.token), self.config.max_members
        )
        if reply[0] == b"full":
            self.room.locals.pop(self.conn, None)
            if self.seat is seat:
                self.seat = None
            max_members = self.config.max_members
            self._error("room_full", f"this room is full ({max_members} members)")
            return
        await self._seated(seat, reply, local, resumed=False)

    def _do_resume(self, token: str, since: int) -> None:
        seat = Seat("", "", None)
        seat.token = token
        self.seat = seat
        self._queue(lambda: self._resume_op(seat, since))

    async def _resume_op(self, seat: Seat, since: int) -> None:
        local = self.room.locals[self.conn] = _Local(self)
        announce = "1" if self.config.announce_drops else "0"
        reply = await self.room.run("resume", self.conn, _hash(seat.token), since, announce)
        if reply[0] == b"unknown":
            self.room.locals.pop(self.conn, None)
            if self.seat is seat:
                self.seat = None
            self._resume_failed()
            return
        self._resumed()
        await self._seated(seat, reply, local, resumed=True)

    async def _seated(self, seat: Seat, reply: Any, local: _Local, *, resumed: bool) -> None:
        _, member, raw_pos, seq, first, since, info, members, raw = reply
        seat.id = member.decode()
        about = _json_object(info)
        seat.name, seat.meta = about.get("name", ""), about.get("meta")
        replay = [entry for entry in _entries(raw) if entry[1].get(b"k") == b"m"]
        head = encode(
            {
                "type": "welcome",
                "member": seat.id,
                "token": seat.token,
                "room": self.room.name,
                "resumed": resumed,
                "seq": int(seq),
            }
        )
        details = b',"members":[' + b",".join(members) + b'],"replay":%d}' % len(replay)
        link = self.link
        link.push(head[:-1] + details, True)
        since, first = int(since), int(first)
        if resumed and since + 1 < first:
            missed = first - since - 1
            gap = {"type": "gap", "missed": missed, "from": since + 1, "to": first - 1}
            link.push(encode(gap), True)
        for _, fields in replay:
            link.push(fields[b"h"], True)
            if b"b" in fields:
                link.push(fields[b"b"], False)
        await self.room.go_live(local, _position(raw_pos))

    def _do_say(self, seat: Seat, client_id: str | None, data: Any, binary: bytes | None) -> None:
        self._queue(lambda: self._say_op(seat, client_id, data, binary))

    async def _say_op(
        self, seat: Seat, client_id: str | None, data: Any, binary: bytes | None
    ) -> None:
        if not seat.id or seat is not self.seat:
            self._error("not_joined", "join (or resume) before sending", "send")
            return
        header: dict[str, Any] = {"from": seat.id}
        if client_id is not None:
            header["id"] = client_id
        if binary is not None:
            header["binary"] = len(binary)
        else:
            header["data"] = data
        rest = encode(header)[1:]
        config = self.config
        reply = await self.room.run(
            "say",
            seat.id,
            client_id or "",
            rest,
            binary or b"",
            "1" if binary is not None else "0",
            config.history,
            config.history_bytes,
            config.dedupe,
        )
        if reply[0] == b"ack":
            ack = {"type": "ack", "id": client_id, "seq": int(reply[1])}
            self.link.push(encode(ack), True)
        elif reply[0] == b"gone":
            self._error("not_joined", "this seat is gone: join again", "send")

    def _do_leave(self, seat: Seat, reason: str) -> None:
        self.room.locals.pop(self.conn, None)
        self._queue(lambda: self._leave_seat(seat, reason), final=True)

    async def _leave_seat(self, seat: Seat, reason: str) -> None:
        if seat.id:
            await self.room.run("leave", seat.id, reason, "")

    def _do_detach(self, seat: Seat) -> None:
        self._queue(lambda: self._detach_op(seat), final=True)

    async def _detach_op(self, seat: Seat) -> None:
        self.room.locals.pop(self.conn, None)
        # Without an id (the join's answer was lost), the script finds the seat
        # by this connection's id.
        grace = self.config.grace
        announce = "1" if self.config.announce_drops else "0"
        await self.room.run("detach", seat.id, self.conn, int(grace * 1000), grace, announce)

    def closed(self) -> None:
        """The connection is gone: detach the seat (in turn), then end the task."""
        super().closed()
        self._ops.put_nowait(None)


def _json_object(raw: bytes) -> dict[str, Any]:
    value = json.loads(b"{" + raw + b"}")
    return value if isinstance(value, dict) else {}


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
