"""One room-protocol connection with its room in Redis, and that room as one relay sees it.

Theory of operation
-------------------
The keys, the scripts, the tail and the leases are ``_redis_rooms``'s; this
is what a connection of this relay does with them.

Delivery. The tail hands each entry of a room's log to the room's local
connections (:class:`RedisRoom`), in log order. Every connection
has a cursor (the last entry id it was given) and ignores what is not after
it. A join or resume script returns, atomically, the room's position, the
members and the history after ``since``; the connection is given its
``welcome`` and that replay, then what the tail brought meanwhile (kept in
a backlog while the script ran) or what it must still fetch (``XRANGE``), and
is live from there. A message whose seq jumps past the cursor's (the log
was trimmed under a relay that was cut off longer than the history covers)
is announced as a ``gap`` first: never a silent hole.

A Redis blip. A connection's
operations run in order on one task (:class:`RedisRoomSession`), so what it
sends waits (nothing dropped) while Redis is away; every script call is
retried by the store. Past ``retry_for`` the connection is closed
with 1011 and the client resumes (elsewhere, or here later); its queued
sends are given up (the client resends them), but its detach still runs,
retried, so the seat does not stay online for nobody.

The room reaches its store through :class:`Store`, spelled out here so that
this module needs nothing of ``_redis_rooms``, which imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from . import _redis_lua as lua
from ._errors import RelayError
from ._session import RoomSession
from .rooms import RoomConfig, Seat, encode

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .rooms import Link

__all__ = ["RedisRoom", "RedisRoomSession"]

logger = logging.getLogger("wsloop.relay")

EVENTS = 1000
"""Presence events each room's log keeps (beside the messages of its history)."""
IDLE_TTL = 3600.0
"""Seconds a room's keys outlive its last change (on top of the grace period)."""

_Position = tuple[int, int]
_Entry = tuple[_Position, dict[bytes, bytes]]
_REPLACED = "replaced by a newer connection of this member"
if TYPE_CHECKING:
    _Op = tuple[Callable[[], Coroutine[Any, Any, None]], bool]


class Store(Protocol):
    """What a room needs of the Redis side of its relay (a ``_redis_rooms.RoomStore``)."""

    prefix: str
    config: RoomConfig

    async def call(self, script: str, keys: list[str], args: list[Any]) -> Any: ...
    async def call_plain(self, command: str, *args: Any) -> Any: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...
    def wake(self) -> None: ...
    def connection_id(self) -> str: ...
    def release(self, room: RedisRoom) -> None: ...


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

    def __init__(self, store: Store, name: str) -> None:
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
