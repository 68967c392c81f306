"""``wsloop.Room`` against the real relay: every trigger, for the poll, thread and asyncio drivers.

The drops are real: the clients reach the relay through
:class:`fault_proxy.CutProxy`, a TCP proxy on 127.0.0.1 that can sever every
connection at once (no close frame, like a network blink), so the socket's
own ``reconnect`` resumes.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest
from fault_proxy import FAULTS, CutProxy
from relay_support import WAIT

from wsloop import AsyncWebSocket, Member, Reconnect, Room, WebSocket
from wsloop.relay import RoomConfig, serve
from wsloop.testing import poll_until

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)


OPEN: list[WebSocket] = []


@pytest.fixture(autouse=True)
def close_sockets():
    yield
    close_open()


def close_open() -> None:
    """Close the recorded sockets (before their relay stops, which would wait for them)."""
    sockets, OPEN[:] = list(OPEN), []
    for ws in sockets:
        ws.close()
    poll_until(lambda: all(ws.is_closed for ws in sockets), *sockets, timeout=WAIT)


class Log:
    """Every trigger of a room, recorded."""

    def __init__(self, room: Room) -> None:
        self.room = room
        if isinstance(room.ws, WebSocket):
            OPEN.append(room.ws)
        self.joined: list[tuple[str, bool]] = []
        self.member_joined: list[str] = []
        self.member_left: list[tuple[str, str]] = []
        self.messages: list[tuple[str, Any]] = []
        self.gaps: list[int] = []
        self.errors: list[str] = []
        room.on_joined = lambda me: self.joined.append((me.id, room.resumed))
        room.on_member_joined = lambda m: self.member_joined.append(m.name)
        room.on_member_left = lambda m, why: self.member_left.append((m.id, why))
        room.on_message = lambda m, data: self.messages.append((m.id, data))
        room.on_gap = self.gaps.append
        room.on_room_error = lambda code, msg: self.errors.append(code)

    @property
    def data(self) -> list[Any]:
        return [d for _, d in self.messages]


@pytest.fixture
def relay():
    with serve(rooms=RoomConfig(grace=30.0, history=100)) as running:
        yield running
        close_open()


def url(relay) -> str:
    return f"{relay.url}/room/test"


def poll_rooms(until, *logs: Log) -> None:
    poll_until(until, *(log.room.ws for log in logs), timeout=WAIT)


def test_poll_driver_every_trigger(relay):
    a = Log(Room(WebSocket(), "ann", {"c": 1}))
    a.room.connect(url(relay))
    poll_rooms(lambda: a.joined, a)
    assert a.joined == [(a.room.member_id, False)]
    assert a.room.me == Member(a.room.member_id, "ann", {"c": 1}, True)
    b = Log(Room(WebSocket(), "bob"))
    b.room.connect(url(relay))
    poll_rooms(lambda: b.joined and a.member_joined, a, b)
    assert a.member_joined == ["bob"]
    assert sorted(m.name for m in b.room.members.values()) == ["ann", "bob"]
    a.room.send({"move": "e4"})
    b.room.send(b"\x00\xffbin")
    poll_rooms(lambda: len(a.messages) == 2 and len(b.messages) == 2, a, b)
    assert a.messages == b.messages  # one order for everyone, own messages included
    assert {repr(d) for d in a.data} == {repr({"move": "e4"}), repr(b"\x00\xffbin")}
    assert a.room.unacked == 0 and b.room.unacked == 0
    b.room.leave()
    poll_rooms(lambda: a.member_left, a, b)
    assert a.member_left == [(b.room.member_id, "left")]
    assert list(a.room.members) == [a.room.member_id]
    a.room.ws.close()
    poll_rooms(lambda: a.room.ws.is_closed, a)


def test_a_late_joiner_gets_the_history(relay):
    a = Log(Room(WebSocket(), "ann"))
    a.room.connect(url(relay))
    poll_rooms(lambda: a.joined, a)
    for i in range(5):
        a.room.send(i)
    poll_rooms(lambda: len(a.messages) == 5, a)
    b = Log(Room(WebSocket(), "bob"))
    b.room.connect(url(relay))
    poll_rooms(lambda: len(b.messages) == 5, a, b)
    assert b.data == [0, 1, 2, 3, 4]
    assert b.room.seq == 5


def test_resume_after_a_cut_loses_nothing_and_duplicates_nothing(relay):
    proxy = CutProxy(relay.port)
    try:
        a = Log(Room(WebSocket(reconnect=FAST), "ann"))
        b = Log(Room(WebSocket(), "bob"))
        a.room.connect(proxy.url)
        poll_rooms(lambda: a.joined, a)
        b.room.connect(url(relay))
        poll_rooms(lambda: b.joined and a.member_joined, a, b)
        member_id = a.room.member_id
        sent = 0
        for cut in range(3):
            for _ in range(5):
                a.room.send(f"a{sent}")
                b.room.send(f"b{sent}")
                sent += 1
            proxy.cut()  # some of a's sends may be on the wire, lost, or not yet sent
            for _ in range(5):
                a.room.send(f"a{sent}")  # while a is down: kept and resent
                b.room.send(f"b{sent}")
                sent += 1
            poll_rooms(lambda c=cut: len(a.joined) == c + 2, a, b)
        poll_rooms(lambda: len(a.messages) == 2 * sent and len(b.messages) == 2 * sent, a, b)
        assert a.room.member_id == member_id
        assert [r for _, r in a.joined] == [False, True, True, True]
        assert a.messages == b.messages
        assert sorted(d for d in a.data if d.startswith("a")) == sorted(
            f"a{i}" for i in range(sent)
        )
        assert [d for d in a.data if d.startswith("a")] == [f"a{i}" for i in range(sent)]
        assert a.gaps == [] and a.room.unacked == 0
        assert ("dropped" in {why for _, why in b.member_left}) and b.member_joined.count(
            "ann"
        ) == 3
    finally:
        proxy.close()


def test_past_the_history_window_on_gap_says_how_many():
    with serve(rooms=RoomConfig(history=3)) as relay:
        proxy = CutProxy(relay.port)
        try:
            a = Log(Room(WebSocket(reconnect=Reconnect(initial_delay=1.0, jitter=0.0)), "ann"))
            b = Log(Room(WebSocket(), "bob"))
            a.room.connect(proxy.url)
            poll_rooms(lambda: a.joined, a)
            b.room.connect(url(relay))
            poll_rooms(lambda: b.joined and a.member_joined, a, b)
            proxy.cut()
            poll_rooms(lambda: b.member_left, a, b)  # the relay saw the drop
            for i in range(8):
                b.room.send(i)
            poll_rooms(lambda: len(a.joined) == 2 and len(a.messages) >= 3, a, b)
            assert a.gaps == [5]
            assert a.data == [5, 6, 7]
        finally:
            close_open()
            proxy.close()


def test_a_seat_past_its_grace_joins_again_as_a_new_member():
    with serve(rooms=RoomConfig(grace=0.0)) as relay:
        proxy = CutProxy(relay.port)
        try:
            a = Log(Room(WebSocket(reconnect=FAST), "ann"))
            a.room.connect(proxy.url)
            poll_rooms(lambda: a.joined, a)
            first = a.room.member_id
            proxy.cut()
            poll_rooms(lambda: len(a.joined) == 2, a)
            assert a.errors == ["resume_failed"]
            assert a.joined[1][1] is False  # a new seat (in a new room: the old one emptied)
            assert first
        finally:
            close_open()
            proxy.close()


def test_thread_driver_every_trigger(relay):
    got = threading.Event()
    seen: list[Any] = []
    ws = WebSocket(driver="thread")
    room = Room(ws, "tess")
    other = Log(Room(WebSocket(), "ollie"))

    def on_message(member: Member, data: Any) -> None:
        seen.append((member.name, data))
        if len(seen) == 3:  # the joined of ollie, then two messages
            got.set()

    room.on_message = on_message
    joined = threading.Event()
    room.on_joined = lambda me: joined.set()
    left: list[str] = []
    room.on_member_left = lambda m, why: left.append(why)
    room.on_member_joined = lambda m: seen.append(("joined", m.name))
    room.connect(url(relay))
    assert joined.wait(WAIT)
    other.room.connect(url(relay))
    poll_rooms(lambda: other.joined, other)
    other.room.send("hi")
    room.send(b"\x01")
    deadline = time.monotonic() + WAIT
    while not got.is_set() and time.monotonic() < deadline:
        other.room.ws.poll(0.01)
    assert got.is_set()
    assert seen[0] == ("joined", "ollie")
    assert sorted(map(repr, seen[1:])) == sorted([repr(("ollie", "hi")), repr(("tess", b"\x01"))])
    other.room.leave()
    poll_until(lambda: left, other.room.ws, timeout=WAIT)
    ws.close()
    assert ws.wait_closed(WAIT)


def test_asyncio_driver_every_trigger_with_async_handlers(relay):
    async def main() -> None:
        async with AsyncWebSocket() as ws1, AsyncWebSocket() as ws2:
            a, b = Room(ws1, "ann"), Room(ws2, "bob")
            events: list[Any] = []
            done = asyncio.Event()

            async def on_message(member: Member, data: Any) -> None:
                await asyncio.sleep(0)
                events.append(("message", member.name, data))
                if len([e for e in events if e[0] == "message"]) == 2:
                    done.set()

            a_in, b_in, b_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

            def on_joined(me: Member) -> None:
                events.append(("joined", me.name))
                a_in.set()

            def on_member_left(member: Member, why: str) -> None:
                events.append(("left", why))
                b_out.set()

            a.on_joined = on_joined
            b.on_joined = lambda me: b_in.set()
            a.on_member_joined = lambda m: events.append(("member_joined", m.name))
            a.on_member_left = on_member_left
            a.on_message = on_message
            await a.connect(url(relay))
            async with asyncio.timeout(WAIT):
                await a_in.wait()
            await b.connect(url(relay))
            async with asyncio.timeout(WAIT):
                await b_in.wait()
            b.send({"x": 1})
            b.send(b"raw")
            async with asyncio.timeout(WAIT):
                await done.wait()
            b.leave()
            async with asyncio.timeout(WAIT):
                await b_out.wait()
            assert events == [
                ("joined", "ann"),
                ("member_joined", "bob"),
                ("message", "bob", {"x": 1}),
                ("message", "bob", b"raw"),
                ("left", "left"),
            ]

    asyncio.run(main())


def test_send_refuses_what_json_cannot_carry_and_bounds_the_unacked(relay):
    room = Room(WebSocket(), "ann", max_unacked=2)
    with pytest.raises(TypeError):
        room.send(object())
    assert room.send(1) and room.send(2)
    assert room.send(3) is False  # not joined yet: two wait, the third is refused
    assert room.unacked == 2


@pytest.mark.parametrize("seed", [13, 14, 15, 16, 17])
def test_three_members_a_thousand_messages_random_cuts_one_log(seed):
    """Each member behind its own proxy; random cuts, half-closes, cuts mid-message and
    stalls: nothing lost, nothing twice, one order."""
    with serve(rooms=RoomConfig(history=2000)) as relay:
        three_members_with_cuts(relay, random.Random(seed))


def test_own_messages_lost_in_a_gap_are_settled_by_the_relays_ack():
    with serve(rooms=RoomConfig(history=2)) as relay:
        proxy = CutProxy(relay.port)
        try:
            a = Log(Room(WebSocket(reconnect=Reconnect(initial_delay=0.5, jitter=0.0)), "ann"))
            a.room.connect(proxy.url)
            poll_rooms(lambda: a.joined, a)
            for i in range(6):
                a.room.send(i)
            proxy.cut()  # the echoes may or may not have come back: the gap covers them
            poll_rooms(lambda: len(a.joined) == 2 and a.room.unacked == 0, a)
            assert a.room.seq == 6
            assert len(a.messages) + sum(a.gaps) == 6
        finally:
            close_open()
            proxy.close()


def three_members_with_cuts(relay: Any, rng: random.Random) -> None:
    proxies = [CutProxy(relay.port) for _ in range(3)]
    try:
        logs = [Log(Room(WebSocket(reconnect=FAST), name)) for name in ("ann", "bob", "cat")]
        for log, proxy in zip(logs, proxies, strict=True):
            log.room.connect(proxy.url)
            poll_rooms(lambda log=log: log.joined, *logs)
        total, sent = 1000, 0
        cut_at = {rng.randrange(total): i for i in range(3) for _ in range(3)}
        faults: list[str] = []
        stalled: list[tuple[CutProxy, int]] = []
        while sent < total:
            who = sent % 3
            logs[who].room.send(f"{logs[who].room.name}-{sent}")
            sent += 1
            if sent in cut_at:
                proxy = proxies[cut_at[sent]]
                fault = rng.choice(FAULTS)
                faults.append(fault)
                if fault == "stall":
                    proxy.stall()
                    stalled.append((proxy, sent + rng.randrange(1, 50)))
                else:
                    getattr(proxy, fault)()
            for proxy, until in list(stalled):
                if sent >= until:
                    proxy.release()
                    stalled.remove((proxy, until))
            for log in logs:
                log.room.ws.poll()
        for proxy, _ in stalled:
            proxy.release()
        poll_rooms(lambda: all(len(log.messages) == total for log in logs), *logs)
        first = logs[0].messages
        for log in logs:
            assert log.messages == first  # the same ordered log for every member
            assert log.gaps == [] and log.room.unacked == 0
        said = [data for _, data in first]
        assert len(said) == len(set(said)) == total  # nothing twice, nothing lost
        for name in ("ann", "bob", "cat"):
            mine = [int(d.split("-")[1]) for d in said if d.startswith(name)]
            assert mine == sorted(mine)  # each sender's order kept
        dropping = sum(f != "stall" for f in faults)
        assert dropping == 0 or sum(len(log.joined) - 1 for log in logs) >= 1, faults
    finally:
        close_open()
        for proxy in proxies:
            proxy.close()


def test_a_kicked_member_is_told_and_closed_with_4003_for_good(relay):
    a = Log(Room(WebSocket(reconnect=FAST), "ann"))
    b = Log(Room(WebSocket(), "bob"))
    closes: list[tuple[int, str]] = []
    a.room.ws.on_closed = lambda event: closes.append((event.code, event.reason))
    a.room.connect(url(relay))
    poll_rooms(lambda: a.joined, a)
    b.room.connect(url(relay))
    poll_rooms(lambda: b.joined and a.member_joined, a, b)
    kicked = a.room.member_id
    core = relay.call(lambda: relay.relay.room("/room/test"))
    assert relay.call(lambda: core.kick(kicked, "no cheating"))
    poll_rooms(lambda: closes and b.member_left, a, b)
    assert a.member_left == [(kicked, "kicked")]  # told, about itself
    assert b.member_left == [(kicked, "kicked")]
    assert closes[0][0] == 4003 and closes[0][1] in ("no cheating", "kicked from the room")
    assert not a.room.joined and a.room.ws.is_closed
    deadline = time.monotonic() + 0.5  # reconnect=FAST would have retried by now
    while time.monotonic() < deadline:
        a.room.ws.poll(0.01)
    assert a.room.ws.is_closed and len(a.joined) == 1 and len(closes) == 1
    assert list(b.room.members) == [b.room.member_id]
