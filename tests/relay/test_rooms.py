"""The room protocol (``wsloop.room.v1``) against the real relay, with raw ``websockets`` clients.

Each client here speaks the JSON of ``docs/rooms.md`` by hand, as a Construct
event sheet or a browser page would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from relay_support import WAIT
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from wsloop.relay import RoomConfig, serve
from wsloop.relay._session import RoomSession
from wsloop.relay.rooms import RoomCore

PROTO = "wsloop.room.v1"


class Raw:
    """A blocking room client on the ``websockets`` sync client."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(
            url, subprotocols=[PROTO], open_timeout=WAIT
        ).__enter__()  # type: ignore[list-item]
        assert self.ws.subprotocol == PROTO

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def recv(self) -> Any:
        data = self.ws.recv(timeout=WAIT)
        return data if isinstance(data, bytes) else json.loads(data)

    def until(self, kind: str) -> tuple[dict[str, Any], list[Any]]:
        """Read up to the next message of ``kind``; return it and what came before."""
        before: list[Any] = []
        while True:
            got = self.recv()
            if isinstance(got, dict) and got.get("type") == kind:
                return got, before
            before.append(got)

    def join(self, name: str, meta: Any = None) -> dict[str, Any]:
        self.send({"type": "join", "name": name, "meta": meta or {}})
        welcome, _ = self.until("welcome")
        return welcome

    def say(self, data: Any, mid: str | None = None) -> None:
        msg: dict[str, Any] = {"type": "send", "data": data}
        if mid is not None:
            msg["id"] = mid
        self.send(msg)

    def messages(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < count:
            got = self.recv()
            if isinstance(got, dict) and got.get("type") == "message":
                out.append(got)
        return out

    def close(self) -> None:
        self.ws.close()

    def close_code(self) -> int | None:
        """Read until the connection closes; the code the relay closed it with."""
        try:
            while True:
                self.recv()
        except ConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code

    def cut(self) -> None:
        """Drop the TCP connection without a close frame (a blink of the network)."""
        self.ws.socket.close()


@pytest.fixture
def relay():
    with serve(rooms=RoomConfig(grace=30.0, history=50, history_bytes=1 << 16)) as running:
        yield running


def url(relay, room: str = "/room/r") -> str:
    return f"{relay.url}{room}"


def test_join_gives_an_id_the_members_and_tells_the_others(relay):
    a = Raw(url(relay))
    wa = a.join("ann", {"color": "red"})
    assert wa["member"] and wa["token"] and wa["resumed"] is False
    assert [m["name"] for m in wa["members"]] == ["ann"]
    b = Raw(url(relay))
    wb = b.join("bob")
    assert wb["member"] != wa["member"]
    assert [m["name"] for m in wb["members"]] == ["ann", "bob"]
    joined, _ = a.until("joined")
    assert joined["member"]["id"] == wb["member"]
    assert joined["member"]["name"] == "bob"
    b.send({"type": "leave"})
    left, _ = a.until("left")
    assert left == {"type": "left", "member": wb["member"], "reason": "left"}
    a.close()


def test_messages_are_numbered_echoed_and_kept_for_joiners(relay):
    a = Raw(url(relay))
    a.join("ann")
    for i in range(5):
        a.say({"n": i}, f"c{i}")
    echoed = a.messages(5)
    assert [m["seq"] for m in echoed] == [1, 2, 3, 4, 5]
    assert [m["data"] for m in echoed] == [{"n": i} for i in range(5)]
    assert [m["id"] for m in echoed] == [f"c{i}" for i in range(5)]
    b = Raw(url(relay))
    wb = b.join("bob")
    assert wb["seq"] == 5 and wb["replay"] == 5
    assert [m["data"]["n"] for m in b.messages(5)] == [0, 1, 2, 3, 4]
    a.close()
    b.close()


def test_history_is_bounded_by_count_and_by_bytes():
    with serve(rooms=RoomConfig(history=3, history_bytes=1 << 16)) as relay:
        a = Raw(url(relay))
        a.join("ann")
        for i in range(10):
            a.say(i)
        a.messages(10)
        b = Raw(url(relay))
        assert b.join("bob")["replay"] == 3
        assert [m["seq"] for m in b.messages(3)] == [8, 9, 10]
    with serve(rooms=RoomConfig(history=100, history_bytes=2000)) as relay:
        a = Raw(url(relay))
        a.join("ann")
        for _ in range(10):
            a.say("x" * 500)
        a.messages(10)
        core = relay.call(lambda: relay.relay.room("/room/r"))
        count, size = relay.call(lambda: core.history_size)
        assert size <= 2000 and count < 10


def test_binary_payloads_are_a_header_then_one_binary_frame(relay):
    a, b = Raw(url(relay)), Raw(url(relay))
    a.join("ann")
    wb = b.join("bob")
    b.send({"type": "send", "binary": True, "id": "b1"})
    b.send(b"\x00\x01\xff")
    header, _ = a.until("message")
    assert header["binary"] == 3 and header["from"] == wb["member"] and "data" not in header
    assert a.recv() == b"\x00\x01\xff"
    a.close()
    b.close()


def test_resume_replays_every_missed_message_once_and_keeps_the_member_id(relay):
    a, b = Raw(url(relay)), Raw(url(relay))
    wa = a.join("ann")
    b.join("bob")
    a.until("joined")
    a.say("before")
    a.messages(1)
    b.messages(1)
    a.cut()
    dropped, _ = b.until("left")
    assert dropped["reason"] == "dropped" and dropped["member"] == wa["member"]
    for i in range(4):
        b.say(f"gap{i}")
    b.messages(4)
    a2 = Raw(url(relay))
    a2.send({"type": "resume", "token": wa["token"], "since": 1})
    welcome, _ = a2.until("welcome")
    assert welcome["member"] == wa["member"] and welcome["resumed"] is True
    assert welcome["replay"] == 4
    # What ann sent during the gap (it never saw its echo), resent with the same id,
    # and one it had sent before the cut: each said once.
    a2.say("during", "a-2")
    a2.say("during", "a-2")
    replay = a2.messages(5)
    assert [m["data"] for m in replay] == ["gap0", "gap1", "gap2", "gap3", "during"]
    assert [m["seq"] for m in replay] == [2, 3, 4, 5, 6]
    back, _ = b.until("joined")
    assert back["resumed"] is True and back["member"]["id"] == wa["member"]
    assert [m["data"] for m in b.messages(1)] == ["during"]
    b.say("after")
    nxt = a2.messages(1)
    assert nxt[0]["data"] == "after" and nxt[0]["seq"] == 7  # no second "during"
    a2.close()
    b.close()


def test_a_resend_after_a_resume_is_not_said_twice(relay):
    a = Raw(url(relay))
    wa = a.join("ann")
    a.say("once", "x1")
    a.messages(1)
    a.cut()
    a2 = Raw(url(relay))
    a2.send({"type": "resume", "token": wa["token"], "since": 0})
    a2.until("welcome")
    assert [m["data"] for m in a2.messages(1)] == ["once"]
    a2.say("once", "x1")  # the client never knew it arrived
    ack, _ = a2.until("ack")
    assert ack == {"type": "ack", "id": "x1", "seq": 1}
    a2.say("next", "x2")
    assert [m["data"] for m in a2.messages(1)] == ["next"]
    a2.close()


def test_resume_past_the_history_window_gets_a_gap_event():
    with serve(rooms=RoomConfig(history=2)) as relay:
        a, b = Raw(url(relay)), Raw(url(relay))
        wa = a.join("ann")
        b.join("bob")
        a.cut()
        for i in range(6):
            b.say(i)
        b.messages(6)
        a2 = Raw(url(relay))
        a2.send({"type": "resume", "token": wa["token"], "since": 0})
        a2.until("welcome")
        gap, _ = a2.until("gap")
        assert gap["missed"] == 4 and gap["from"] == 1 and gap["to"] == 4
        assert [m["seq"] for m in a2.messages(2)] == [5, 6]


def test_a_dropped_member_times_out_after_the_grace_period():
    with serve(rooms=RoomConfig(grace=0.2)) as relay:
        a, b = Raw(url(relay)), Raw(url(relay))
        wa = a.join("ann")
        b.join("bob")
        a.cut()
        dropped, _ = b.until("left")
        assert dropped["reason"] == "dropped"
        gone, _ = b.until("left")
        assert gone["reason"] == "timed_out" and gone["member"] == wa["member"]
        a2 = Raw(url(relay))
        a2.send({"type": "resume", "token": wa["token"], "since": 0})
        err, _ = a2.until("error")
        assert err["code"] == "resume_failed"


def test_a_second_connection_replaces_the_first(relay):
    a, b = Raw(url(relay)), Raw(url(relay))
    wa = a.join("ann")
    b.join("bob")
    a2 = Raw(url(relay))
    a2.send({"type": "resume", "token": wa["token"], "since": 0})
    assert a2.until("welcome")[0]["member"] == wa["member"]
    left, _ = a.until("left")
    assert left["reason"] == "replaced"
    assert a.close_code() == 4001
    b.say("hi")
    assert a2.messages(1)[0]["data"] == "hi"


def test_kick_closes_with_4003_and_tells_the_others(relay):
    a, b = Raw(url(relay)), Raw(url(relay))
    a.join("ann")
    wb = b.join("bob")
    a.until("joined")
    core = relay.call(lambda: relay.relay.room("/room/r"))
    assert relay.call(lambda: core.kick(wb["member"]))
    left, _ = a.until("left")
    assert left["reason"] == "kicked" and left["member"] == wb["member"]
    assert b.close_code() == 4003


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ({"type": "dance"}, "unknown_type"),
        ({"no": "type"}, "unknown_type"),
        ({"type": "send", "data": 1}, "not_joined"),
        ({"type": "resume", "token": "stolen-or-guessed", "since": 0}, "resume_failed"),
        ({"type": "resume", "token": 5}, "bad_resume"),
        ({"type": "join", "name": "x" * 1000}, "bad_join"),
        ({"type": "join", "name": "m", "meta": {"k": "v" * 5000}}, "bad_join"),
        (b"\x01\x02", "unexpected_binary"),
    ],
)
def test_bad_input_gets_an_error_and_the_others_notice_nothing(relay, sent, code):
    a = Raw(url(relay))
    a.join("ann")
    bad = Raw(url(relay))
    bad.send(sent)
    err, _ = bad.until("error")
    assert err["code"] == code and err["message"]
    # The bad client may go on, and the room is untouched.
    wb = bad.join("bob")
    a.until("joined")
    a.say("still here")
    assert a.messages(1)[0]["data"] == "still here"
    assert bad.messages(1)[0]["data"] == "still here"
    assert wb["seq"] == 0
    a.close()
    bad.close()


def test_join_twice_is_an_error(relay):
    a = Raw(url(relay))
    wa = a.join("ann")
    a.send({"type": "join", "name": "again"})
    err, _ = a.until("error")
    assert err["code"] == "already_joined" and wa["member"] in err["message"]
    a.close()


def test_an_oversized_message_closes_its_sender_with_1009():
    with serve(max_size=1000) as relay:
        a, bad = Raw(url(relay)), Raw(url(relay))
        a.join("ann")
        wb = bad.join("bob")
        a.until("joined")
        bad.say("x" * 2000)
        assert bad.close_code() == 1009
        left, _ = a.until("left")
        assert left["member"] == wb["member"] and left["reason"] == "dropped"


def test_a_flood_closes_with_1008():
    with serve(rooms=RoomConfig(rate=1.0, burst=5)) as relay:
        a, bad = Raw(url(relay)), Raw(url(relay))
        a.join("ann")
        bad.join("bob")
        with contextlib.suppress(ConnectionClosed):  # closed while still sending
            for i in range(20):
                bad.say(i)
        assert bad.close_code() == 1008
        left, _ = a.until("left")
        assert left["reason"] == "kicked"


def test_plain_clients_of_the_same_path_are_not_in_the_room(relay):
    plain, plain2 = (connect(url(relay), open_timeout=WAIT).__enter__() for _ in range(2))
    assert plain.subprotocol is None
    a = Raw(url(relay))
    a.join("ann")
    a.say("for room members")
    a.messages(1)
    plain2.send("plain text")
    assert plain.recv(timeout=WAIT) == "plain text"  # the first thing it gets: no room traffic
    a.say("again")
    assert a.messages(1)[0]["data"] == "again"  # (a plain text here would fail json.loads)
    for ws in (plain, plain2, a):
        ws.close()


def test_an_echo_relay_does_not_select_the_room_protocol():
    with serve(echo=True) as relay:
        ws = connect(url(relay), subprotocols=[PROTO], open_timeout=WAIT).__enter__()  # type: ignore[list-item]
        assert ws.subprotocol is None
        ws.close()


# The session and the room core without sockets: orders of events that a
# network makes rare. Found by the rooms fuzz target (fuzz/target_rooms.py).


class _Link:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.shut_with: list[tuple[int, str]] = []

    def push(self, data: bytes, text: bool) -> None:
        self.frames.append(json.loads(data) if text else data)

    def shut(self, code: int, reason: str) -> None:
        self.shut_with.append((code, reason))


def _room() -> tuple[Any, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    return RoomCore("/r", RoomConfig(), loop), loop


def test_a_replaced_connection_can_no_longer_speak_or_leave_for_the_seat():
    core, loop = _room()
    try:
        old_link, new_link = _Link(), _Link()
        old = RoomSession(old_link, core, core.config)
        new = RoomSession(new_link, core, core.config)
        old.handle(json.dumps({"type": "join", "name": "ann"}))
        token = old_link.frames[0]["token"]
        new.handle(json.dumps({"type": "resume", "token": token, "since": 0}))
        assert old_link.shut_with == [(4001, "replaced by a newer connection of this member")]
        # What the old connection sent before it read its close frame.
        old.handle(json.dumps({"type": "send", "data": "stale"}))
        old.handle(json.dumps({"type": "leave"}))
        assert old_link.shut_with == [(4001, "replaced by a newer connection of this member")]
        assert list(core.seats) == [new.seat.id]
        assert core.seats[new.seat.id].link is new_link
        new.handle(json.dumps({"type": "send", "data": "fresh"}))
        said = [f["data"] for f in new_link.frames if f["type"] == "message"]
        assert said == ["fresh"]
    finally:
        core.close()
        loop.close()


def test_a_kicked_connection_can_no_longer_speak_for_the_seat():
    core, loop = _room()
    try:
        link, other_link = _Link(), _Link()
        session = RoomSession(link, core, core.config)
        other = RoomSession(other_link, core, core.config)
        session.handle(json.dumps({"type": "join", "name": "ann"}))
        other.handle(json.dumps({"type": "join", "name": "bob"}))
        assert core.kick(session.seat.id)
        session.handle(json.dumps({"type": "send", "data": "after the kick"}))
        assert core.seq == 0
        assert not [f for f in other_link.frames if f["type"] == "message"]
    finally:
        core.close()
        loop.close()
