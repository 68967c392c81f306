"""Fuzz target ``rooms``: the room protocol (``wsloop.room.v1``) as clients speak it.

:class:`~wsloop.relay._session.RoomSession` is the protocol's Sans-I/O entry
point: it takes one client frame at a time (``handle``) and answers through
its link (``push`` frames, ``shut`` the connection), driving a
:class:`~wsloop.relay.rooms.RoomCore` that does no I/O either. The target
runs three clients of one room in memory, with the relay's own classes; only
the links are the target's (:class:`_Link`, which records what they get).

Input: byte 0 chooses the room's limits (bit 0: tight ones, so that history
eviction, the dedupe window, a full room and the flood limit are reached);
the rest is lines, one client action each:

* ``0``..``2`` then a text frame's content: client N sends it;
* ``a``..``c`` then bytes: client N sends them as a binary frame;
* ``x0``..``x2``: client N's connection drops (``closed``); ``n0``..``n2``:
  client N connects again (a new session, a new link).

``$T0``..``$T2`` in a text is replaced by the resume token client N was last
welcomed with, so that resumes can succeed. Time does not pass.

Properties: ``handle`` and ``closed`` raise nothing; every text frame a link
gets is a JSON object with a known ``type``, every error has a known
``code``; every ``message`` a link gets has a sequence number above the
previous one it got (after each welcome, from the welcome's own count); a
binary frame comes right after the ``message`` header that announced its
size; a link is shut at most once, with 1000, 1008, 4001 or 4003; nothing
is pushed to a link after it was shut; the room's history stays within its
limits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fuzz._common import Finding
from wsloop.relay._session import RoomSession
from wsloop.relay.rooms import RoomConfig, RoomCore

TYPES = {"welcome", "joined", "left", "message", "error", "ack", "gap"}
CODES = {
    "flood",
    "unexpected_binary",
    "expected_binary",
    "bad_json",
    "unknown_type",
    "not_joined",
    "bad_send",
    "already_joined",
    "bad_join",
    "bad_resume",
    "resume_failed",
    "room_full",
}
SHUT_CODES = {1000, 1008, 4001, 4003}
CONFIGS = (
    RoomConfig(),
    RoomConfig(history=3, history_bytes=64, max_members=2, burst=12, rate=1.0, dedupe=2),
)

_loop = asyncio.new_event_loop()  # for the grace timers: never run, closed with each room


class _Link:
    """One connection as the room sees it: checks each frame it is given."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.shut_with: tuple[int, str] | None = None
        self.seq = -1  # the last sequence number seen; -1: not welcomed yet
        self.token: str | None = None
        self.binary_due: int | None = None  # a message header announced a binary frame

    def push(self, data: bytes, text: bool) -> None:
        if self.shut_with is not None:
            raise Finding(f"{self.name}: a frame after shut {self.shut_with}: {data[:80]!r}")
        if type(data) is not bytes:
            raise Finding(f"{self.name}: pushed {type(data).__name__}")
        if not text:
            if self.binary_due != len(data):
                raise Finding(f"{self.name}: a binary frame of {len(data)}, {self.binary_due} due")
            self.binary_due = None
            return
        if self.binary_due is not None:
            raise Finding(f"{self.name}: a text frame where a binary one was due: {data!r}")
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise Finding(f"{self.name}: not JSON: {data[:80]!r}") from exc
        if not isinstance(event, dict) or event.get("type") not in TYPES:
            raise Finding(f"{self.name}: an unknown event {data[:80]!r}")
        self._check(event)

    def _check(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "welcome":
            self.token = event["token"]
            # The replayed messages follow: anything after the resume point.
            self.seq = -1
        elif kind == "message":
            seq = event["seq"]
            if self.seq >= 0 and seq <= self.seq:
                raise Finding(f"{self.name}: message seq {seq} after {self.seq}")
            self.seq = seq
            if "binary" in event:
                self.binary_due = event["binary"]
        elif kind == "error" and event.get("code") not in CODES:
            raise Finding(f"{self.name}: an unknown error code {event!r}")

    def shut(self, code: int, reason: str) -> None:
        if self.shut_with is not None:
            raise Finding(f"{self.name}: shut twice: {self.shut_with} then {(code, reason)}")
        if code not in SHUT_CODES or not isinstance(reason, str):
            raise Finding(f"{self.name}: shut with {code} {reason!r}")
        self.shut_with = (code, reason)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    config = CONFIGS[data[0] & 1]
    core = RoomCore("/fuzz", config, _loop)
    links = [_Link(f"client{i}") for i in range(3)]
    sessions = [RoomSession(link, core, config) for link in links]
    try:
        for line in data[1:].split(b"\n"):
            _step(line, core, config, links, sessions)
            count, size = core.history_size
            if count > config.history or (count > 1 and size > config.history_bytes):
                raise Finding(f"history of {count} messages, {size} bytes with {config}")
        for session in sessions:
            session.closed()
    finally:
        core.close()


def _step(
    line: bytes,
    core: RoomCore,
    config: RoomConfig,
    links: list[_Link],
    sessions: list[RoomSession],
) -> None:
    if len(line) < 1:
        return
    op = line[:1]
    if op in b"012":
        who = int(op)
        text = line[1:].decode("utf-8", "replace")
        for i, link in enumerate(links):
            text = text.replace(f"$T{i}", link.token or "")
        sessions[who].handle(text)
    elif op in b"abc":
        sessions[b"abc".index(op)].handle(bytes(line[1:]))
    elif op in b"xn" and len(line) >= 2 and line[1:2] in b"012":
        who = int(line[1:2])
        sessions[who].closed()
        if op == b"n":
            token = links[who].token
            links[who] = _Link(f"client{who}")
            links[who].token = token
            sessions[who] = RoomSession(links[who], core, config)
