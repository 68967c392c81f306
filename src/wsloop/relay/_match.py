"""How a room-protocol connection of the relay meets its room: placement, links, quick match.

:class:`Placement` decides, at the handshake, which room a ``wsloop.room.v1``
connection goes to and gives it its session: a game room (which lives in
this process, Redis or not; on a quick-match path, the first room of the
class with a free seat, or a new one), else the room of its path, kept in
Redis when the relay has a Redis link (``_redis_rooms``) or in this process
(a :class:`~wsloop.relay.rooms.RoomCore`). It holds the rooms alive in this
process and drops each when it empties, or when a connection leaves without
ever joining it.

A :class:`_MemberLink` is one relay member as a room core sees it (a
:class:`~wsloop.relay.rooms.Link`): ``push`` appends to the member's send
queue, ``shut`` lets what was pushed just before go out, then closes. A
:class:`_MatchSession` is the session of a quick-match path (``/ttt/``):
the relay placed the connection in a room at the handshake; a ``resume``
may name a seat in another room of the same class, and the session moves
there before the resume is handled.

They call back into the relay through :class:`Host`, spelled out here so
that this module needs nothing of ``server.py``, which imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from ._parts import _Member, _Message
from ._session import RoomSession
from .game import GameRoom, Games, _GameCore
from .rooms import RoomCore

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from ._delivery import Delivery
    from ._redis_rooms import RoomStore
    from .rooms import RoomConfig

__all__: list[str] = []


class Host(Protocol):
    """What a link needs of the relay that holds it (a :class:`~wsloop.relay.Relay`)."""

    close_timeout: float
    rooms: RoomConfig
    games: Games
    _resumes: int
    _handler_errors: int

    @property
    def _delivery(self) -> Delivery: ...
    @property
    def _room_store(self) -> RoomStore | None: ...
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class Placement:
    """The room each room-protocol connection goes to, and the rooms of this process."""

    def __init__(self, relay: Host) -> None:
        self.relay = relay
        self.cores: dict[str, RoomCore] = {}
        """The rooms alive in this process, by URL path."""

    def session(self, member: _Member) -> RoomSession:
        """The session of a new room-protocol connection, in the room it goes to."""
        relay = self.relay
        link = _MemberLink(relay, member)
        game = relay.games.match(member.room)
        if game is not None:  # a game room lives in this process, Redis or not
            cls, quick = game
            name = member.room
            if quick:
                name, _ = Games.quick_match(self.cores, member.room, cls)
            core = self.core(name, cls)
            if quick:
                assert isinstance(core, _GameCore)
                core.pending += 1
                link.placed = core
                return _MatchSession(link, core, relay.rooms, self)
            return RoomSession(link, core, relay.rooms)
        store = relay._room_store
        if store is not None:
            return store.session(link, member.room)
        return RoomSession(link, self.core(member.room, None), relay.rooms)

    def core(self, name: str, cls: type[GameRoom] | None) -> RoomCore:
        """The room ``name`` of this process, made (of ``cls``, if a game) if need be."""
        core = self.cores.get(name)
        if core is None:
            loop = asyncio.get_running_loop()
            config = self.relay.rooms
            if cls is None:
                core = RoomCore(name, config, loop, on_empty=self.drop)
            else:
                core = _GameCore(
                    name,
                    config,
                    loop,
                    cls,
                    on_empty=self.drop,
                    on_error=self._game_error,
                )
            self.cores[name] = core
        return core

    def _game_error(self) -> None:
        self.relay._handler_errors += 1

    def drop(self, core: RoomCore) -> None:
        """Forget and close a room (it emptied, or nobody ever joined it)."""
        if self.cores.get(core.name) is core:
            del self.cores[core.name]
            core.close()

    def unplace(self, link: _MemberLink) -> None:
        """A quick-match connection leaves the room it was placed in without joining."""
        core, link.placed = link.placed, None
        if core is not None:
            core.pending -= 1
            if not core.seats and core.pending <= 0:
                self.drop(core)

    def forget(self, session: RoomSession) -> None:
        """A room-protocol connection is gone: drop a room it leaves with nobody in it."""
        link = session.link
        if isinstance(link, _MemberLink) and link.placed is not None:
            self.unplace(link)
        core: RoomCore | None = session._core  # None: a room kept in Redis
        idle = core is not None and not core.seats and not getattr(core, "pending", 0)
        if idle and core is not None and self.cores.get(core.name) is core:
            self.drop(core)  # nobody ever joined it

    def close(self) -> None:
        """The relay stopped: close every room of this process."""
        for core in list(self.cores.values()):
            core.close()
        self.cores.clear()


class _MemberLink:
    """A relay member as the room core sees it (a :class:`~wsloop.relay.rooms.Link`)."""

    __slots__ = ("member", "placed", "relay")

    def __init__(self, relay: Host, member: _Member) -> None:
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
        self.relay._delivery.enqueue(self.member, _Message(data, text))

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
        await self.relay._delivery.close_member(member, code, reason)


class _MatchSession(RoomSession):
    """A quick-match connection: placed in a room at the handshake, or resumed anywhere.

    A resume names its seat by token, and the seat may be in any room of the
    class: the session moves to that room before the resume is handled.
    """

    link: _MemberLink

    def __init__(
        self, link: _MemberLink, core: RoomCore, config: RoomConfig, placement: Placement
    ) -> None:
        super().__init__(link, core, config)
        self.placement = placement

    def handle(self, message: str | bytes) -> None:
        link = self.link
        placed = link.placed
        if placed is not None and isinstance(message, str):
            home = self._home(placed, message)
            if home is not None and home is not placed:
                self.placement.unplace(link)
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
        for core in self.placement.cores.values():
            if (
                isinstance(core, _GameCore)
                and core.room_class is placed.room_class
                and core.holds(token)
            ):
                return core
        return None
