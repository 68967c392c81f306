"""One ``wsloop.room.v1`` connection: reading its JSON, checking it, answering errors.

A session turns the frames of one connection into calls on its
:class:`~wsloop.relay.rooms.RoomCore`. It checks everything a client sends
(JSON, types, sizes, the send rate) and answers a mistake with an ``error``
message naming it, keeping the connection open; only a flood closes it (1008).
A binary payload travels as a ``send`` header with ``"binary": true``
followed by one binary frame.

A seat can leave a connection while it is still open: a newer connection
took it back by a resume (this one is closed with 4001), or the room kicked
it (4003). What such a connection still sends, until its close completes,
is ignored: it must not speak, or ``leave``, for a seat that is no longer
its own (found by the ``rooms`` fuzz target: the replaced connection's
``leave`` removed the seat from under the newer connection). The Redis
session forgets the seat the same way (``_redis_session``, ``lost``).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from .rooms import RoomConfig, RoomCore, Seat, encode

if TYPE_CHECKING:
    from .rooms import Link

__all__ = ["RoomSession"]

FLOOD_CODE = 1008
MAX_CLIENT_ID = 64


class RoomSession:
    """The room protocol on one connection.

    Args:
        link: the connection.
        core: the room of the connection's URL path (``None`` for a subclass
            that overrides the ``_do_*`` methods).
        config: the limits.
    """

    def __init__(self, link: Link, core: RoomCore | None, config: RoomConfig) -> None:
        self.link = link
        self._core = core
        self.config = config
        self.seat: Seat | None = None
        self._pending: str | bool | None = False  # a binary header's client id, awaiting data
        self._tokens = float(config.burst)
        self._stamp = time.monotonic()
        self._done = False

    def _error(self, code: str, message: str, ref: str | None = None) -> None:
        event: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if ref is not None:
            event["ref"] = ref
        self.link.push(encode(event), True)

    def _flooding(self) -> bool:
        now = time.monotonic()
        self._tokens = min(
            float(self.config.burst), self._tokens + (now - self._stamp) * self.config.rate
        )
        self._stamp = now
        if self._tokens < 1.0:
            return True
        self._tokens -= 1.0
        return False

    def _seat_lost(self) -> bool:
        """The seat went to a newer connection, or was kicked: this one is being closed."""
        seat = self.seat
        return seat is not None and self._core is not None and seat.link is not self.link

    def handle(self, message: str | bytes) -> None:
        """One frame from the client."""
        if self._done:
            return
        if self._seat_lost():
            self.seat = None
            self._done = True
            return
        if self._flooding():
            self._done = True
            self._error("flood", f"more than {self.config.rate:g} messages per second")
            seat, self.seat = self.seat, None
            if seat is not None:
                self._do_leave(seat, "kicked")
            self.link.shut(FLOOD_CODE, "flooding the room")
            return
        if isinstance(message, bytes):
            pending = self._pending
            if pending is False:
                self._error(
                    "unexpected_binary",
                    'a binary frame must follow a {"type":"send","binary":true} message',
                )
                return
            self._pending = False
            if self.seat is not None:
                self._do_say(
                    self.seat, pending if isinstance(pending, str) else None, None, message
                )
            return
        if self._pending is not False:
            self._pending = False
            self._error("expected_binary", "the binary frame announced by send did not come")
        try:
            obj = json.loads(message)
        except ValueError as exc:
            self._error("bad_json", f"not JSON: {exc}")
            return
        if not isinstance(obj, dict):
            self._error("bad_json", "a message must be a JSON object")
            return
        kind = obj.get("type")
        ref = kind if isinstance(kind, str) else None
        if kind == "send":
            self._send(obj)
        elif kind == "join":
            self._join(obj)
        elif kind == "resume":
            self._resume(obj)
        elif kind == "leave":
            self._leave()
        else:
            self._error(
                "unknown_type",
                f"unknown message type {kind!r}; use join, resume, send or leave",
                ref,
            )

    def _send(self, obj: dict[str, Any]) -> None:
        if self.seat is None:
            self._error("not_joined", "join (or resume) before sending", "send")
            return
        client_id = obj.get("id")
        if client_id is not None and (
            not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID
        ):
            self._error("bad_send", f"id must be a string of at most {MAX_CLIENT_ID}", "send")
            return
        if obj.get("binary") is True:
            self._pending = client_id
            return
        if "data" not in obj:
            self._error("bad_send", 'send needs "data" (any JSON) or "binary": true', "send")
            return
        self._do_say(self.seat, client_id, obj["data"], None)

    def _join(self, obj: dict[str, Any]) -> None:
        if self.seat is not None:
            self._error("already_joined", f"already joined as {self.seat.id}", "join")
            return
        name = obj.get("name", "")
        meta = obj.get("meta", {})
        if not isinstance(name, str) or len(name) > self.config.max_name:
            self._error(
                "bad_join", f"name must be a string of at most {self.config.max_name}", "join"
            )
            return
        if len(encode({"m": meta})) - 6 > self.config.max_meta:
            self._error(
                "bad_join", f"meta is larger than {self.config.max_meta} bytes as JSON", "join"
            )
            return
        self._do_join(name, meta)

    def _resume(self, obj: dict[str, Any]) -> None:
        if self.seat is not None:
            self._error("already_joined", f"already joined as {self.seat.id}", "resume")
            return
        token = obj.get("token")
        since = obj.get("since", 0)
        if not isinstance(token, str) or not isinstance(since, int) or since < 0:
            self._error(
                "bad_resume", "resume needs a token (string) and since (an integer >= 0)", "resume"
            )
            return
        self._do_resume(token, since)

    def _resume_failed(self) -> None:
        self._error(
            "resume_failed",
            "unknown or expired resume token: join again as a new member",
            "resume",
        )

    def _leave(self) -> None:
        seat = self.seat
        if seat is None:
            self._error("not_joined", "not in the room", "leave")
            return
        self.seat = None
        self._done = True
        self._do_leave(seat, "left")
        self.link.shut(1000, "left the room")

    def closed(self) -> None:
        """The connection is gone."""
        seat = self.seat
        self.seat = None
        self._done = True
        if seat is not None:
            self._do_detach(seat)

    # What the room does: the room core of this process here; a subclass
    # (``_redis_session``) does it through Redis instead.

    @property
    def core(self) -> RoomCore:
        """The room core of this process that the session drives."""
        assert self._core is not None
        return self._core

    def _do_join(self, name: str, meta: Any) -> None:
        self.seat = self.core.join(self.link, name, meta)

    def _do_resume(self, token: str, since: int) -> None:
        seat = self.core.resume(self.link, token, since)
        if seat is None:
            self._resume_failed()
        else:
            self._resumed()
        self.seat = seat

    def _resumed(self) -> None:
        """A seat was taken back: counted by a link that counts (the relay's)."""
        count = getattr(self.link, "count_resume", None)
        if count is not None:
            count()

    def _do_say(self, seat: Seat, client_id: str | None, data: Any, binary: bytes | None) -> None:
        self.core.say(seat, client_id, data, binary)

    def _do_leave(self, seat: Seat, reason: str) -> None:
        self.core.leave(seat, reason)

    def _do_detach(self, seat: Seat) -> None:
        if seat.id in self.core.seats:
            self.core.detach(seat, self.link)
