"""The room core of the room protocol (``wsloop.room.v1``): seats, history, resume.

Theory of operation
-------------------
A :class:`RoomCore` is one room of one relay process. Its members are
*seats* (:class:`Seat`), which outlive connections: a seat is bound to at
most one connection (a :class:`Link`) at a time, and keeps its member id, its
resume token and the client message ids it has seen while it has none.

Every message said in the room gets the room's next sequence number and is
kept in the history (bounded by a message count and a byte count) *before* it
is pushed to the seats that are online, the sender included: the echo is
the sender's acknowledgement, and every member's log is the same ordered
sequence. A seat that drops keeps its place for ``grace`` seconds; a
connection that presents its token within that time takes the seat back and
is sent every message after the last sequence number it saw, from the
history. If the history no longer reaches that far back, a ``gap`` event
says how many messages cannot be replayed. Client message ids make a resend
idempotent: a seat remembers the ids it has seen (and the sequence number
each got), so a message resent after a resume is said once.

The core does no I/O: it pushes encoded frames into links and asks them to
close. The relay supplies the links, so the same core can be driven by a
test, and a later room class can subclass it and override the hooks
:meth:`RoomCore.on_join`, :meth:`RoomCore.on_leave` and
:meth:`RoomCore.on_message`.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

__all__ = ["ROOM_PROTOCOL", "Link", "RoomConfig", "RoomCore", "Seat"]

ROOM_PROTOCOL = "wsloop.room.v1"
"""The subprotocol that opts a connection into the room protocol."""

REASONS = ("left", "dropped", "timed_out", "kicked", "replaced")
"""The reasons a ``left`` event can give."""


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """Limits and defaults of the room protocol (``docs/rooms.md``).

    Frozen; make a new one with :func:`dataclasses.replace` to change a field.
    """

    history: int = 1000
    """Messages each room keeps for joiners and resumes."""
    history_bytes: int = 1 << 20
    """Bytes of payload each room keeps (the oldest messages go first)."""
    grace: float = 30.0
    """Seconds a dropped member keeps its seat and can resume."""
    announce_drops: bool = True
    """Tell the others when a member drops and when it resumes (else: only timeouts)."""
    max_members: int = 256
    """Seats per room, online or not; a further join gets ``room_full``."""
    max_name: int = 64
    """Characters in a member's name."""
    max_meta: int = 1024
    """Bytes of a member's metadata, as JSON."""
    rate: float = 100.0
    """Messages per second a member may send, sustained."""
    burst: int = 500
    """Messages a member may send at once above the rate; beyond: closed with 1008."""
    dedupe: int = 4096
    """Client message ids remembered per member, for resends after a resume."""

    def __post_init__(self) -> None:
        for name in ("history", "history_bytes", "max_members", "max_name", "burst", "dedupe"):
            if getattr(self, name) <= 0:
                raise ValueError(f"rooms: {name} must be positive, not {getattr(self, name)}")
        if self.grace < 0 or self.rate <= 0:
            raise ValueError("rooms: grace must be >= 0 and rate positive")


class Link(Protocol):
    """One connection, as the room core sees it."""

    def push(self, data: bytes, text: bool) -> None:
        """Queue a frame for the connection (never blocks)."""

    def shut(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` and ``reason``."""


def encode(obj: dict[str, Any]) -> bytes:
    """JSON for the wire: compact, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Seat:
    """A member of a room: an id, a name, metadata, a token; a link while online."""

    __slots__ = ("expiry", "id", "identity", "link", "meta", "name", "seen", "token")

    def __init__(self, member_id: str, name: str, meta: Any) -> None:
        self.id = member_id
        """The member id, kept across resumes."""
        self.name = name
        """The name it joined with."""
        self.meta = meta
        """The metadata it joined with (any JSON)."""
        self.identity: Any = None
        """What the relay's ``auth`` hook said of its connection (``None`` without one)."""
        self.token = secrets.token_urlsafe(24)
        self.link: Link | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.seen: OrderedDict[str, int] = OrderedDict()

    @property
    def online(self) -> bool:
        """Whether a connection holds the seat now (else it is within its grace period)."""
        return self.link is not None

    def describe(self) -> dict[str, Any]:
        """The member as the protocol shows it to others."""
        return {
            "id": self.id,
            "name": self.name,
            "meta": self.meta,
            "online": self.link is not None,
        }


class _Entry:
    __slots__ = ("frames", "seq", "size", "to")

    def __init__(
        self, seq: int, frames: tuple[tuple[bytes, bool], ...], to: str | None = None
    ) -> None:
        self.seq = seq
        self.frames = frames
        self.size = sum(len(data) for data, _ in frames)
        self.to = to
        """The one member it is for (a room's private message), else ``None``: everyone."""


class RoomCore:
    """One room: its seats, its history and its sequence numbers.

    Args:
        name: the room's name (the URL path).
        config: the limits.
        loop: the event loop the grace timers run on.
        on_empty: called when the last seat is gone, to forget the room.
    """

    def __init__(
        self,
        name: str,
        config: RoomConfig,
        loop: asyncio.AbstractEventLoop,
        on_empty: Any = None,
    ) -> None:
        self.name = name
        self.config = config
        self.seq = 0
        self.seats: dict[str, Seat] = {}
        self._loop = loop
        self._on_empty = on_empty
        self._history: deque[_Entry] = deque()
        self._history_bytes = 0
        self._next_id = 0
        self._by_token: dict[str, Seat] = {}

    # Hooks for room logic (a subclass may override them).

    def on_join(self, seat: Seat, resumed: bool) -> None:
        """A seat was taken (``resumed``: taken back by a resume)."""

    def on_leave(self, seat: Seat, reason: str) -> None:
        """A seat is gone for good (``reason`` is one of :data:`REASONS`)."""

    def on_message(self, seat: Seat, data: Any, binary: bytes | None) -> bool:
        """A member said something; return ``False`` to drop it. Default: relay it."""
        return True

    def admit(self, seat: Seat, link: Link) -> tuple[str, str] | None:
        """A member asks to join as ``seat``: ``None`` admits it, else ``(code, message)``."""
        return None

    def on_drop(self, seat: Seat) -> None:
        """A seat's connection is gone; it keeps its place for the grace period."""

    @property
    def capacity(self) -> int:
        """Seats this room has, online or not (``max_members`` unless a subclass says)."""
        return self.config.max_members

    # What the room knows.

    @property
    def history_size(self) -> tuple[int, int]:
        """Messages and payload bytes in the history now."""
        return len(self._history), self._history_bytes

    def holds(self, token: str) -> bool:
        """Whether a seat of this room has the resume token ``token``."""
        return token in self._by_token

    @property
    def first_seq(self) -> int:
        """The oldest sequence number in the history (``seq + 1`` when empty)."""
        return self._history[0].seq if self._history else self.seq + 1

    # Joining, resuming, leaving.

    def join(self, link: Link, name: str, meta: Any) -> Seat | None:
        """A new member; sends it ``welcome`` and the history, tells the others."""
        if len(self.seats) >= self.capacity:
            return self._refuse(link, "room_full", f"this room is full ({self.capacity} members)")
        self._next_id += 1
        seat = Seat(f"m{self._next_id}", name, meta)
        seat.identity = getattr(link, "identity", None)
        refusal = self.admit(seat, link)
        if refusal is not None:
            return self._refuse(link, *refusal)
        self._broadcast_event({"type": "joined", "member": {**seat.describe(), "online": True}})
        self.seats[seat.id] = seat
        self._by_token[seat.token] = seat
        seat.link = link
        self._welcome(seat, resumed=False, since=self.first_seq - 1)
        self.on_join(seat, False)
        return seat

    @staticmethod
    def _refuse(link: Link, code: str, message: str) -> None:
        link.push(encode({"type": "error", "code": code, "message": message}), True)

    def resume(self, link: Link, token: str, since: int) -> Seat | None:
        """Take a seat back by its token; ``None`` if the token is unknown."""
        seat = self._by_token.get(token)
        if seat is None:
            return None
        if seat.expiry is not None:
            seat.expiry.cancel()
            seat.expiry = None
        old = seat.link
        if old is not None and old is not link:
            old.push(
                encode({"type": "left", "member": seat.id, "reason": "replaced"}),
                True,
            )
            old.shut(4001, "replaced by a newer connection of this member")
        was_online = old is not None
        seat.link = link
        since = max(0, min(since, self.seq))
        self._welcome(seat, resumed=True, since=since)
        if self.config.announce_drops and not was_online:
            self._broadcast_event(
                {"type": "joined", "member": seat.describe(), "resumed": True}, skip=seat
            )
        self.on_join(seat, True)
        return seat

    def detach(self, seat: Seat, link: Link) -> None:
        """The seat's connection is gone without a ``leave``: keep the seat a while."""
        if seat.link is not link:
            return  # replaced already
        seat.link = None
        if self.config.grace <= 0:
            self._forget(seat, "dropped")
            return
        self.on_drop(seat)
        if self.config.announce_drops:
            self._broadcast_event(
                {
                    "type": "left",
                    "member": seat.id,
                    "reason": "dropped",
                    "grace": self.config.grace,
                }
            )
        seat.expiry = self._loop.call_later(self.config.grace, self._expire, seat)

    def leave(self, seat: Seat, reason: str = "left") -> None:
        """The member leaves for good (``leave`` message, kick)."""
        link = seat.link
        seat.link = None
        if link is not None and reason == "kicked":
            link.push(encode({"type": "left", "member": seat.id, "reason": reason}), True)
        self._forget(seat, reason)

    def kick(self, member_id: str, reason: str = "kicked by the room") -> bool:
        """Remove a member and close its connection with 4003; ``False`` if unknown."""
        seat = self.seats.get(member_id)
        if seat is None:
            return False
        link = seat.link
        self.leave(seat, "kicked")
        if link is not None:
            link.shut(4003, reason)
        return True

    def _expire(self, seat: Seat) -> None:
        seat.expiry = None
        if seat.link is None and seat.id in self.seats:
            self._forget(seat, "timed_out")

    def _forget(self, seat: Seat, reason: str) -> None:
        if seat.expiry is not None:
            seat.expiry.cancel()
            seat.expiry = None
        if self.seats.pop(seat.id, None) is None:
            return
        self._by_token.pop(seat.token, None)
        self._broadcast_event({"type": "left", "member": seat.id, "reason": reason})
        self.on_leave(seat, reason)
        if not self.seats and self._on_empty is not None:
            self._on_empty(self)

    def close(self) -> None:
        """The relay stops: cancel the grace timers."""
        for seat in self.seats.values():
            if seat.expiry is not None:
                seat.expiry.cancel()
                seat.expiry = None

    # Messages.

    def say(self, seat: Seat, client_id: str | None, data: Any, binary: bytes | None) -> None:
        """A member's message: numbered, kept, sent to every online member (sender too)."""
        if client_id is not None and client_id in seat.seen:
            # A resend of a message already said: not again. The replay (or the
            # history, or a gap) carried it; tell the sender it is settled.
            if seat.link is not None:
                ack = {"type": "ack", "id": client_id, "seq": seat.seen[client_id]}
                seat.link.push(encode(ack), True)
            return
        if not self.on_message(seat, data, binary):
            return
        self.publish(data, binary, sender=seat.id, client_id=client_id)
        if client_id is not None:
            self.settle(seat, client_id)

    def settle(self, seat: Seat, client_id: str) -> None:
        """Remember that ``client_id`` of ``seat`` was handled (as of the last seq)."""
        seat.seen[client_id] = self.seq
        if len(seat.seen) > self.config.dedupe:
            seat.seen.popitem(last=False)

    def publish(
        self,
        data: Any,
        binary: bytes | None = None,
        *,
        sender: str = "room",
        client_id: str | None = None,
        to: Seat | None = None,
    ) -> int:
        """Number a message, keep it, push it to the online seats (or to ``to`` only).

        ``sender`` is the member id shown in ``from``; ``"room"`` for the
        room's own messages. Returns the message's sequence number.
        """
        self.seq += 1
        header: dict[str, Any] = {"type": "message", "seq": self.seq, "from": sender}
        if client_id is not None:
            header["id"] = client_id
        if binary is not None:
            header["binary"] = len(binary)
            frames: tuple[tuple[bytes, bool], ...] = ((encode(header), True), (binary, False))
        else:
            header["data"] = data
            frames = ((encode(header), True),)
        self._keep(_Entry(self.seq, frames, None if to is None else to.id))
        for other in (to,) if to is not None else tuple(self.seats.values()):
            if other.link is not None:
                for frame, text in frames:
                    other.link.push(frame, text)
        return self.seq

    def _keep(self, entry: _Entry) -> None:
        history = self._history
        history.append(entry)
        self._history_bytes += entry.size
        while len(history) > self.config.history or (
            self._history_bytes > self.config.history_bytes and len(history) > 1
        ):
            self._history_bytes -= history.popleft().size

    def _welcome(self, seat: Seat, *, resumed: bool, since: int) -> None:
        link = seat.link
        assert link is not None
        first = self.first_seq
        replay = [
            entry
            for entry in self._history
            if entry.seq > since and (entry.to is None or entry.to == seat.id)
        ]
        welcome = {
            "type": "welcome",
            "member": seat.id,
            "token": seat.token,
            "room": self.name,
            "resumed": resumed,
            "seq": self.seq,
            "members": [s.describe() for s in self.seats.values()],
            "replay": len(replay),
        }
        link.push(encode(welcome), True)
        if resumed and since + 1 < first:
            missed = first - since - 1
            link.push(
                encode({"type": "gap", "missed": missed, "from": since + 1, "to": first - 1}),
                True,
            )
        for entry in replay:
            for frame, text in entry.frames:
                link.push(frame, text)

    def _broadcast_event(self, event: dict[str, Any], skip: Seat | None = None) -> None:
        frame = encode(event)
        for seat in tuple(self.seats.values()):
            if seat is not skip and seat.link is not None:
                seat.link.push(frame, True)
