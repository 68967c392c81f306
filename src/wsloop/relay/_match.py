"""How a room-protocol connection of the relay meets its room: the link and quick match.

A :class:`_MemberLink` is one relay member as a room core sees it (a
:class:`~wsloop.relay.rooms.Link`): ``push`` appends to the member's send
queue, ``shut`` lets what was pushed just before go out, then closes. A
:class:`_MatchSession` is the session of a quick-match path (``/ttt/``):
the relay placed the connection in a room at the handshake; a ``resume``
may name a seat in another room of the same class, and the session moves
there before the resume is handled.

Both call back into the relay through :class:`Host`, spelled out here so
that this module needs nothing of ``server.py``, which imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from ._parts import _Member, _Message
from ._session import RoomSession
from .game import _GameCore

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from ._delivery import Delivery
    from .rooms import RoomConfig, RoomCore

__all__: list[str] = []


class Host(Protocol):
    """What a link needs of the relay that holds it (a :class:`~wsloop.relay.Relay`)."""

    close_timeout: float
    _resumes: int

    @property
    def _cores(self) -> Mapping[str, RoomCore]: ...
    @property
    def _delivery(self) -> Delivery: ...
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...
    def _unplace(self, link: _MemberLink) -> None: ...


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

    def __init__(self, link: _MemberLink, core: RoomCore, config: RoomConfig, relay: Host) -> None:
        super().__init__(link, core, config)
        self.relay = relay

    def handle(self, message: str | bytes) -> None:
        link = self.link
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
