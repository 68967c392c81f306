"""``wsloop.Room``: the room protocol of the relay (``wsloop.room.v1``) with triggers.

Theory of operation
-------------------
A :class:`Room` sits on a :class:`~wsloop.WebSocket` or an
:class:`~wsloop.AsyncWebSocket` (any driver, the browser's included) and uses
only its public API: it sets the socket's ``on_opened``, ``on_text_message``
and ``on_binary_message`` (calling an ``on_opened`` that was set before), and
sends with ``send_text`` and ``send_binary``. The messages are those of
``docs/rooms.md``.

Every time the socket opens, the room introduces itself: with ``join`` the
first time, with ``resume`` (its token and the last sequence number it saw)
after that, so a socket created with ``reconnect=True`` takes its seat back by
itself after a drop. Each :meth:`Room.send` gets a client message id and
stays *unacknowledged* until the relay echoes it back with a sequence number.
After every ``welcome`` the unacknowledged messages are sent again, in order;
the relay says each id once, so a message sent just before a cut (or while
the socket was down) reaches the room exactly once. Messages whose sequence
number the room has already seen are dropped, so a replay never shows one
twice.

A resend the relay had said already is answered with an ``ack``, which
settles it too (its echo may have fallen into a ``gap``). If the seat is gone
when the socket comes back (past the relay's grace period), the room joins
again as a new member and sends the unacknowledged messages under it: those
whose echo was lost with the old seat may then be said twice (at least once,
never lost).

A trigger's return value is handed back to the socket, so with an
:class:`~wsloop.AsyncWebSocket` a trigger may be an ``async def``. The
socket's ``on_closed``, ``on_error`` and ``on_reconnecting`` stay the
application's; setting ``on_text_message`` or ``on_binary_message`` on the
socket after creating the room takes the messages away from it.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._async_client import AsyncWebSocket
    from ._client import WebSocket
    from .events import BinaryMessage, Opened, TextMessage

__all__ = ["ROOM_PROTOCOL", "Member", "Room"]

ROOM_PROTOCOL = "wsloop.room.v1"
"""The subprotocol of the room protocol."""
KICKED_CODE = 4003
"""The close code of a member removed from the room (by the relay and by the helper)."""
REPLACED_CODE = 4001
"""The close code of a connection whose seat another connection resumed."""


@dataclass(slots=True)
class Member:
    """A member of the room, as the relay describes it.

    Attributes:
        id: the member id the relay gave it (kept across resumes).
        name: the name it joined with ("" for a member that left before we
            joined, seen only in the history).
        meta: the metadata it joined with (any JSON).
        online: ``False`` while it is dropped and within its grace period.
    """

    id: str
    name: str = ""
    meta: Any = field(default=None)
    online: bool = True


class Room:
    """One member's seat in a room of the relay, on top of a WebSocket.

    ::

        ws = wsloop.WebSocket(reconnect=True)
        room = wsloop.Room(ws, "ann", {"color": "red"})
        room.on_message = lambda member, data: print(member.name, data)
        room.connect("ws://127.0.0.1:8765/room/lobby")
        room.send({"move": "e4"})

    Args:
        ws: a :class:`~wsloop.WebSocket` or :class:`~wsloop.AsyncWebSocket`;
            give it ``reconnect=True`` for resumes after a drop.
        name: this member's name (at most 64 characters by default).
        meta: small metadata for the others (any JSON; 1 KiB by default).
        max_unacked: how many sent messages may wait for the relay's echo;
            beyond, :meth:`send` refuses (returns ``False``).
    """

    on_joined: Callable[[Member], object] | None
    """Called with this member once the relay seated it (after a resume too:
    see :attr:`resumed`)."""
    on_member_joined: Callable[[Member], object] | None
    """Called with another member that joined (or came back after a drop)."""
    on_member_left: Callable[[Member, str], object] | None
    """Called with a member and the reason: ``left``, ``dropped``,
    ``timed_out``, ``kicked`` or ``replaced``. Also called with this member
    itself when it is ``kicked`` or ``replaced``: the socket is then closed
    for good (no reconnect), with 4003 or 4001, and ``on_closed`` follows."""
    on_message: Callable[[Member, Any], object] | None
    """Called with the sender and the data (a JSON value, or ``bytes``) of
    each message of the room, this member's own included, in room order."""
    on_gap: Callable[[int], object] | None
    """Called with the number of messages missed beyond the room's history."""
    on_room_error: Callable[[str, str], object] | None
    """Called with the code and the message of an ``error`` from the relay."""

    def __init__(
        self,
        ws: WebSocket | AsyncWebSocket,
        name: str = "",
        meta: Any = None,
        *,
        max_unacked: int = 1024,
    ) -> None:
        self.ws = ws
        """The WebSocket the room runs on."""
        self.name = name
        self.meta = {} if meta is None else meta
        self.max_unacked = max_unacked
        self.on_joined = None
        self.on_member_joined = None
        self.on_member_left = None
        self.on_message = None
        self.on_gap = None
        self.on_room_error = None
        self.members: dict[str, Member] = {}
        """The members by id, this one included, online or in their grace period."""
        self.member_id = ""
        """This member's id ("" before the first ``welcome``)."""
        self.seq = 0
        """The sequence number of the last message of the room seen here."""
        self.resumed = False
        """Whether the last ``welcome`` was a resume of the same seat."""
        self.missed = 0
        """Messages lost to gaps since joining (each reported by ``on_gap``)."""
        self._token = ""
        self._joined = False

        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._unacked: OrderedDict[str, Any] = OrderedDict()
        self._binary_from: Member | None = None
        self._previous_opened = ws.on_opened
        ws.on_opened = self._opened
        ws.on_text_message = self._text
        ws.on_binary_message = self._binary

    # What the application calls.

    def connect(self, url: str) -> Any:
        """Connect the socket to ``url`` with the room subprotocol.

        Returns what the socket's ``connect`` returns: ``await`` it with an
        :class:`~wsloop.AsyncWebSocket`.
        """

        return self.ws.connect(url, ROOM_PROTOCOL)

    @property
    def joined(self) -> bool:
        """Whether this member is seated and its connection is open."""
        return self._joined and self.ws.is_open

    @property
    def me(self) -> Member | None:
        """This member, once seated."""
        return self.members.get(self.member_id)

    @property
    def unacked(self) -> int:
        """Messages sent and not yet echoed by the relay (they are resent on resume)."""
        return len(self._unacked)

    def send(self, data: Any) -> bool:
        """Say ``data`` to the room: ``bytes``-like as binary, anything else as JSON.

        Sent now when seated, else when seated again; delivered once either
        way. Returns ``False`` (sending nothing) when :attr:`max_unacked`
        messages already wait for their echo.

        Raises:
            TypeError: ``data`` is neither bytes-like nor JSON-serializable.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            json.dumps(data)  # refuse what cannot travel, here and now
        if len(self._unacked) >= self.max_unacked:
            return False
        self._count += 1
        client_id = f"{self._prefix}-{self._count}"
        self._unacked[client_id] = data
        if self.joined:
            self._transmit(client_id, data)
        return True

    def leave(self) -> None:
        """Leave the room for good (the others see ``left``); the relay then closes."""

        self._token = ""
        if self.ws.is_open:
            self.ws.send_text(json.dumps({"type": "leave"}))
        self._joined = False

    # The socket's handlers.

    def _transmit(self, client_id: str, data: Any) -> None:
        if isinstance(data, bytes):
            self.ws.send_text(json.dumps({"type": "send", "id": client_id, "binary": True}))
            self.ws.send_binary(data)
        else:
            self.ws.send_text(json.dumps({"type": "send", "id": client_id, "data": data}))

    def _opened(self, event: Opened) -> object:
        self._joined = False
        self._binary_from = None
        if self._token:
            hello: dict[str, Any] = {"type": "resume", "token": self._token, "since": self.seq}
        else:
            hello = {"type": "join", "name": self.name, "meta": self.meta}
        self.ws.send_text(json.dumps(hello))
        previous = self._previous_opened
        return None if previous is None else previous(event)

    def _join_text(self) -> str:
        return json.dumps({"type": "join", "name": self.name, "meta": self.meta})

    def _member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        return member if member is not None else Member(member_id, online=False)

    def _text(self, event: TextMessage) -> object:
        try:
            msg = json.loads(event.text)
        except ValueError:
            return None
        if not isinstance(msg, dict):
            return None
        kind = msg.get("type")
        if kind == "message":
            return self._said(msg)
        if kind == "welcome":
            return self._welcome(msg)
        if kind == "joined":
            info = msg["member"]
            member = Member(info["id"], info.get("name", ""), info.get("meta"), True)
            self.members[member.id] = member
            return None if self.on_member_joined is None else self.on_member_joined(member)
        if kind == "ack":  # a resend the relay had said already
            self._unacked.pop(str(msg.get("id", "")), None)
            return None
        if kind == "left":
            return self._left(msg)
        if kind == "gap":
            missed = int(msg.get("missed", 0))
            self.missed += missed
            self.seq = max(self.seq, int(msg.get("to", self.seq)))
            return None if self.on_gap is None else self.on_gap(missed)
        if kind == "error":
            code = str(msg.get("code", ""))
            if code == "resume_failed":
                # The seat is gone (past its grace period): join as a new member.
                self._token = ""
                self.seq = 0
                self.ws.send_text(
                    json.dumps({"type": "join", "name": self.name, "meta": self.meta})
                )
            handler = self.on_room_error
            return None if handler is None else handler(code, str(msg.get("message", "")))
        return None

    def _welcome(self, msg: dict[str, Any]) -> object:
        self.member_id = str(msg["member"])
        self._token = str(msg["token"])
        self.resumed = bool(msg.get("resumed"))
        if not self.resumed:
            self.seq = max(0, int(msg.get("seq", 0)) - int(msg.get("replay", 0)))
        self.members = {
            info["id"]: Member(info["id"], info.get("name", ""), info.get("meta"), info["online"])
            for info in msg.get("members", ())
        }
        self._joined = True
        for client_id, data in tuple(self._unacked.items()):
            self._transmit(client_id, data)  # the relay says each id once
        me = self.members.get(self.member_id, Member(self.member_id, self.name, self.meta))
        return None if self.on_joined is None else self.on_joined(me)

    def _left(self, msg: dict[str, Any]) -> object:
        member_id = str(msg.get("member", ""))
        reason = str(msg.get("reason", "left"))
        member = self._member(member_id)
        if member_id == self.member_id and reason in ("replaced", "kicked"):
            # This seat is taken over or gone: do not let a reconnect fight for
            # it. The close code says which (the relay closes with it too).
            self._joined = False
            self._token = ""
            if reason == "kicked":
                self.ws.close(KICKED_CODE, "kicked from the room")
            else:
                self.ws.close(REPLACED_CODE, "replaced by a newer connection of this member")
        elif reason == "dropped":
            member.online = False
        else:
            self.members.pop(member_id, None)
        return None if self.on_member_left is None else self.on_member_left(member, reason)

    def _said(self, msg: dict[str, Any]) -> object:
        seq = int(msg.get("seq", 0))
        if seq <= self.seq:
            self._binary_from = None if "binary" not in msg else Member("", online=False)
            return None  # seen already (a replay overlapping what we had)
        self.seq = seq
        sender = self._member(str(msg.get("from", "")))
        if sender.id == self.member_id:
            self._unacked.pop(str(msg.get("id", "")), None)
        if "binary" in msg:
            self._binary_from = sender
            return None
        return None if self.on_message is None else self.on_message(sender, msg.get("data"))

    def _binary(self, event: BinaryMessage) -> object:
        sender, self._binary_from = self._binary_from, None
        if sender is None or not sender.id or self.on_message is None:
            return None
        return self.on_message(sender, bytes(event.data))
