"""Authoritative game rooms: the room's Python code decides, the clients follow.

Theory of operation
-------------------
A :class:`GameRoom` is the application's class; the relay makes one instance
per room path that matches the pattern it was registered under
(``Relay(games={"/ttt/*": TicTacToe})``) when the first member arrives, and
drops it when the last seat is gone. Underneath, a game room is a room of the
room protocol (``wsloop.room.v1``, ``docs/rooms.md``) run by a
:class:`~wsloop.relay.rooms.RoomCore` subclass, so members, resume tokens,
grace periods, history and sequence numbers work exactly as in a relayed
room, and the same clients speak to it (``wsloop.Room``, a browser page, a
Construct event sheet).

What changes is who speaks. A member's ``send`` goes to
:meth:`GameRoom.on_message` and nowhere else; the relay answers the sender
with an ``ack`` (the message was handled), so a client resending after a
resume is deduplicated by its message id as in any room: the room's code
sees each message exactly once. Only the room speaks to the members:
:meth:`GameRoom.broadcast` and :meth:`GameRoom.send` publish numbered
messages ``"from": "room"``, kept in the history like any other, a private
one visible only to its member. A member who drops and resumes is therefore
replayed everything the room told it while it was away, in order, once; a
late joiner is replayed the broadcasts (the room's public record).

The room's code runs on the relay's event loop, one call at a time: no
locks are needed, and a call must not block (compute, don't wait). An
exception raised by the room's code is logged with its traceback and
counted (``handler_errors`` in ``/metrics``); the member whose message caused
it gets an ``error`` event (``room_error``), and the room, the relay and the
other rooms carry on. Timers (:meth:`GameRoom.call_later`,
:meth:`GameRoom.every`) are cancelled when the room closes.

A game room lives in one relay process: its state is Python objects. Behind
several processes, route each game path to one process (or use one process
for games; a few thousand rooms fit).
"""

from __future__ import annotations

import fnmatch
import logging
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from .rooms import RoomConfig, RoomCore, Seat, encode

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator, Mapping

    from .rooms import Link

__all__ = ["GameRoom", "JoinRefused"]

logger = logging.getLogger("wsloop.relay.game")


class JoinRefused(Exception):
    """Raised by :meth:`GameRoom.on_join` to turn a member away (the table is full...).

    The member gets an ``error`` event with the code ``join_refused`` and
    this message; its connection stays open, unjoined.
    """


class GameRoom:
    """Subclass this: one instance is one room, and its methods are the rules.

    ::

        class TicTacToe(GameRoom):
            max_players = 2

            def on_create(self):
                self.board = [""] * 9

            def on_join(self, player):
                self.broadcast({"board": self.board, "players": len(self.players)})

            def on_message(self, player, data):
                ...                      # check the move; self.send(player, ...) if illegal
                self.broadcast({"board": self.board})

    Players are :class:`~wsloop.relay.Seat` objects (``id``, ``name``,
    ``meta``, ``identity``, ``online``): the same object when a member
    resumes. Store per-player state in dicts keyed by ``player.id``.
    """

    max_players: ClassVar[int | None] = None
    """Seats of this room (``None``: the relay's ``RoomConfig.max_members``)."""

    def __init__(self, core: _GameCore) -> None:
        self._core = core
        self._timers: set[asyncio.TimerHandle] = set()
        self.locked = False
        """When ``True`` nobody new may join (resumes still may); quick match skips it."""

    # What the room knows.

    @property
    def name(self) -> str:
        """The room's path, such as ``/ttt/7f3a``."""
        return self._core.name

    @property
    def players(self) -> list[Seat]:
        """The seats, in joining order: online or within their grace period."""
        return list(self._core.seats.values())

    @property
    def is_full(self) -> bool:
        """Whether every seat is taken."""
        return len(self._core.seats) + self._core.pending >= self._core.capacity

    # Hooks (override what you need).

    def on_create(self) -> None:
        """The room was just made: set up its state here."""

    def on_join(self, player: Seat) -> None:
        """A new member takes a seat; raise :class:`JoinRefused` to turn it away.

        The player's ``welcome`` and its replay of the history come right
        after this returns, so what this sends reaches the player too.
        """

    def on_rejoin(self, player: Seat) -> None:
        """A dropped member took its seat back (a resume), with every message it missed."""

    def on_drop(self, player: Seat) -> None:
        """A member's connection is gone; its seat waits for the grace period."""

    def on_message(self, player: Seat, data: Any) -> None:
        """A member sent ``data``: a JSON value, or ``bytes`` for a binary message."""

    def on_leave(self, player: Seat, reason: str) -> None:
        """A seat is gone for good: ``left``, ``timed_out``, ``kicked`` or ``dropped``."""

    def on_close(self) -> None:
        """The last seat is gone (or the relay stops): the room is about to be dropped."""

    # Actions.

    def broadcast(self, data: Any) -> int:
        """Tell every member ``data`` (JSON, or bytes); kept in the history. Returns its seq."""
        return self._publish(data, None)

    def send(self, player: Seat, data: Any) -> int:
        """Tell one member ``data``; kept for it alone (replayed if it resumes)."""
        return self._publish(data, player)

    def kick(self, player: Seat, reason: str = "kicked by the room") -> None:
        """Remove a member for good; its connection is closed with 4003 and ``reason``."""
        self._core.kick(player.id, reason)

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> Timer:
        """Call ``fn(*args)`` in ``delay`` seconds (a turn clock); cancel with ``.cancel()``."""
        return Timer(self, delay, fn, args, repeat=False)

    def every(self, interval: float, fn: Callable[..., object], *args: Any) -> Timer:
        """Call ``fn(*args)`` every ``interval`` seconds (a tick) until cancelled."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        return Timer(self, interval, fn, args, repeat=True)

    def _publish(self, data: Any, to: Seat | None) -> int:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._core.publish(None, bytes(data), to=to)
        return self._core.publish(data, to=to)


class Timer:
    """A pending call of a game room; :meth:`cancel` stops it."""

    def __init__(
        self,
        room: GameRoom,
        delay: float,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        *,
        repeat: bool,
    ) -> None:
        self._room = room
        self._delay = delay
        self._fn = fn
        self._args = args
        self._repeat = repeat
        self._handle: asyncio.TimerHandle | None = None
        self.cancelled = False
        self._arm()

    def _arm(self) -> None:
        loop = self._room._core.loop
        self._handle = loop.call_later(self._delay, self._fire)
        self._room._timers.add(self._handle)

    def _fire(self) -> None:
        if self._handle is not None:
            self._room._timers.discard(self._handle)
        self._handle = None
        if self.cancelled:
            return
        if self._repeat:
            self._arm()
        self._room._core.guarded(
            None, f"timer {getattr(self._fn, '__name__', self._fn)!r}", self._fn, *self._args
        )

    def cancel(self) -> None:
        """Do not call it (again)."""
        self.cancelled = True
        if self._handle is not None:
            self._handle.cancel()
            self._room._timers.discard(self._handle)
            self._handle = None


class _GameCore(RoomCore):
    """A room core whose members' messages go to a :class:`GameRoom`."""

    def __init__(
        self,
        name: str,
        config: RoomConfig,
        loop: asyncio.AbstractEventLoop,
        room_class: type[GameRoom],
        on_empty: Any = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, config, loop, on_empty=on_empty)
        self.loop = loop
        self.room_class = room_class
        self.pending = 0
        """Connections placed here by quick match that have not joined yet."""
        self._on_error = on_error
        self.game = room_class(self)
        self.guarded(None, "on_create", self.game.on_create)

    @property
    def capacity(self) -> int:
        wanted = self.room_class.max_players
        return self.config.max_members if wanted is None else min(wanted, self.config.max_members)

    def guarded(self, seat: Seat | None, what: str, fn: Callable[..., object], *args: Any) -> bool:
        """Run room code; on an exception log it, count it, tell ``seat``. ``False`` then."""
        try:
            fn(*args)
        except Exception as exc:
            logger.exception("game room %s: %s failed", self.name, what)
            if self._on_error is not None:
                self._on_error()
            if seat is not None and seat.link is not None:
                message = f"the room's code failed on your message ({type(exc).__name__})"
                seat.link.push(
                    encode({"type": "error", "code": "room_error", "message": message}), True
                )
            return False
        return True

    # The hooks of RoomCore, handed to the game.

    def admit(self, seat: Seat, link: Link) -> tuple[str, str] | None:
        if self.game.locked:
            return ("join_refused", "this room takes no new members")
        self.seats[seat.id] = seat  # the game sees the newcomer among its players
        try:
            self.game.on_join(seat)
        except JoinRefused as refusal:
            del self.seats[seat.id]
            return ("join_refused", str(refusal) or "the room turned you away")
        except Exception as exc:
            del self.seats[seat.id]
            logger.exception("game room %s: on_join failed", self.name)
            if self._on_error is not None:
                self._on_error()
            return ("room_error", f"the room's code failed on your join ({type(exc).__name__})")
        return None

    def on_join(self, seat: Seat, resumed: bool) -> None:
        if resumed:
            self.guarded(seat, "on_rejoin", self.game.on_rejoin, seat)

    def on_drop(self, seat: Seat) -> None:
        self.guarded(None, "on_drop", self.game.on_drop, seat)

    def on_leave(self, seat: Seat, reason: str) -> None:
        self.guarded(None, "on_leave", self.game.on_leave, seat, reason)

    def say(self, seat: Seat, client_id: str | None, data: Any, binary: bytes | None) -> None:
        """A member's message: to the game's code once, acknowledged to the sender."""
        if client_id is not None and client_id in seat.seen:
            self._ack(seat, client_id)  # a resend: handled already
            return
        self.guarded(
            seat, "on_message", self.game.on_message, seat, data if binary is None else binary
        )
        if client_id is not None:
            self.settle(seat, client_id)
            self._ack(seat, client_id)

    def _ack(self, seat: Seat, client_id: str) -> None:
        if seat.link is not None:
            ack = {"type": "ack", "id": client_id, "seq": seat.seen.get(client_id, self.seq)}
            seat.link.push(encode(ack), True)

    def close(self) -> None:
        """The room is dropped: the game's ``on_close``, then every timer cancelled."""
        super().close()
        self.guarded(None, "on_close", self.game.on_close)
        for handle in tuple(self.game._timers):
            handle.cancel()
        self.game._timers.clear()


class Games:
    """The game classes of a relay by path pattern, and the rooms alive now.

    A pattern is a shell-style pattern (``fnmatch``) of URL paths, such as
    ``/ttt/*``. For a pattern ending in ``/*``, the path with nothing in place
    of the ``*`` (``/ttt/``) is *quick match*: the member is placed in the
    first room of that class with a free seat, or in a new one.
    """

    def __init__(self, classes: Mapping[str, type[GameRoom]]) -> None:
        for pattern, cls in classes.items():
            if not (isinstance(cls, type) and issubclass(cls, GameRoom)):
                raise TypeError(f"games[{pattern!r}] must be a GameRoom subclass, not {cls!r}")
            if not pattern.startswith("/"):
                raise ValueError(f"a game path pattern starts with '/', not {pattern!r}")
        self.classes = dict(classes)

    def __bool__(self) -> bool:
        return bool(self.classes)

    def match(self, path: str) -> tuple[type[GameRoom], bool] | None:
        """The class for ``path`` and whether ``path`` is its quick-match path."""
        for pattern, cls in self.classes.items():
            if pattern.endswith("/*") and path == pattern[:-1]:
                return cls, True
            if fnmatch.fnmatchcase(path, pattern):
                return cls, False
        return None

    @staticmethod
    def quick_match(
        cores: Mapping[str, RoomCore], path: str, cls: type[GameRoom]
    ) -> tuple[str, bool]:
        """The room a quick-match member goes to, and whether it must be created."""
        for core in _games_of(cores, cls):
            if core.name.startswith(path) and not core.game.locked and not core.game.is_full:
                return core.name, False
        return f"{path}{secrets.token_hex(3)}", True


def _games_of(cores: Mapping[str, RoomCore], cls: type[GameRoom]) -> Iterator[_GameCore]:
    for core in cores.values():
        if isinstance(core, _GameCore) and core.room_class is cls:
            yield core
