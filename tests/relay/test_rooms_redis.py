"""Rooms across relay processes through a real redis-server: nothing lost, nothing twice.

Every member reaches its relay through a :class:`fault_proxy.CutProxy`, so
its connection is cut, half-closed, cut mid-message or stalled at random
points, and its socket's own ``reconnect`` resumes the seat. In the Redis
test, one relay reaches Redis through a proxy too, which is cut for a second
in the middle of the conversation.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest
from fault_proxy import FAULTS, CutProxy
from relay_support import WAIT, RelayProcess

from wsloop import Reconnect, Room, WebSocket
from wsloop.relay import RoomConfig, serve
from wsloop.testing import poll_until

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)
TOTAL = 1000


class Log:
    """Every trigger of a room, recorded, with the time each resume took."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.joined: list[bool] = []
        self.member_joined: list[tuple[str, bool]] = []
        self.member_left: list[tuple[str, str]] = []
        self.messages: list[tuple[str, Any]] = []
        self.gaps: list[int] = []
        self.errors: list[str] = []
        self.resumes_ms: list[float] = []
        self._down_since: float | None = None
        room.on_joined = self._joined
        room.on_member_joined = lambda m: self.member_joined.append((m.name, m.online))
        room.on_member_left = lambda m, why: self.member_left.append((m.id, why))
        room.on_message = lambda m, data: self.messages.append((m.id, data))
        room.on_gap = self.gaps.append
        room.on_room_error = lambda code, msg: self.errors.append(code)
        room.ws.on_reconnecting = self._reconnecting

    def _reconnecting(self, event: object) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _joined(self, me: object) -> None:
        self.joined.append(self.room.resumed)
        if self._down_since is not None:
            self.resumes_ms.append((time.monotonic() - self._down_since) * 1000)
            self._down_since = None

    @property
    def data(self) -> list[Any]:
        return [d for _, d in self.messages]


def poll_rooms(until: Any, *logs: Log) -> None:
    poll_until(until, *(log.room.ws for log in logs), timeout=WAIT)


def close_rooms(*logs: Log) -> None:
    for log in logs:
        log.room.ws.close()
    poll_rooms(lambda: all(log.room.ws.is_closed for log in logs), *logs)


@pytest.fixture
def two_relays(redis_server, tmp_path):
    started: list[RelayProcess] = []
    try:
        for name in ("one", "two"):
            started.append(RelayProcess(["--redis", redis_server.url], tmp_path / f"{name}.log"))
        yield started
    finally:
        for relay in started:
            relay.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def conversation(
    ports: list[int], rng: random.Random, midway: Any = None, faults_per_member: int = 3
) -> dict[str, Any]:
    """Three members (member ``i`` on ``ports[i]``), :data:`TOTAL` messages, random faults.

    ``midway`` is called once, halfway. Returns the figures of the run.
    """
    proxies = [CutProxy(port) for port in ports]
    logs = [Log(Room(WebSocket(reconnect=FAST), name)) for name in ("ann", "bob", "cat")]
    try:
        for log, proxy in zip(logs, proxies, strict=True):
            log.room.connect(f"ws://127.0.0.1:{proxy.port}/room/redis")
            poll_rooms(lambda log=log: log.joined, *logs)
        cut_at = {rng.randrange(1, TOTAL): i for i in range(3) for _ in range(faults_per_member)}
        faults: list[str] = []
        stalled: list[tuple[CutProxy, int]] = []
        sent = 0
        while sent < TOTAL:
            who = sent % 3
            logs[who].room.send(f"{logs[who].room.name}-{sent}")
            sent += 1
            if sent == TOTAL // 2 and midway is not None:
                midway()
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
        poll_rooms(lambda: all(len(log.messages) >= TOTAL for log in logs), *logs)
        poll_rooms(lambda: all(log.room.unacked == 0 for log in logs), *logs)
        first = logs[0].messages
        said = [data for _, data in first]
        figures = {
            "faults": faults,
            "lost": len(set(range(TOTAL)) - {int(d.split("-")[1]) for d in said}),
            "duplicated": len(said) - len(set(said)),
            "resumes": sum(len(log.resumes_ms) for log in logs),
            "longest_resume_ms": max((ms for log in logs for ms in log.resumes_ms), default=0.0),
        }
        print(f"\nrooms across relays: {figures}")
        for log in logs:
            assert log.messages == first  # the same ordered log for every member
            assert log.gaps == [] and log.errors == []
            assert all(log.joined[1:])  # every welcome after the first was a resume
        assert figures["lost"] == 0 and figures["duplicated"] == 0
        assert len(said) == TOTAL
        for name in ("ann", "bob", "cat"):
            mine = [int(d.split("-")[1]) for d in said if d.startswith(name)]
            assert mine == sorted(mine)  # each sender's order kept
        dropping = sum(f != "stall" for f in faults)
        assert dropping == 0 or figures["resumes"] >= 1, faults
        return figures
    finally:
        close_rooms(*logs)
        for proxy in proxies:
            proxy.close()


@pytest.mark.parametrize("seed", [13, 14])
def test_three_members_on_two_relay_processes_random_cuts_one_log(two_relays, seed):
    one, two = two_relays
    ports = [port_of(one.url), port_of(two.url), port_of(one.url)]
    conversation(ports, random.Random(seed))


@pytest.mark.parametrize("faults_per_member", [3, 0])
def test_a_relay_cut_off_from_redis_for_a_second_loses_nothing(
    redis_server, tmp_path, faults_per_member
):
    link = CutProxy(redis_server.port)  # relay one reaches Redis through it
    proxied = f"redis://127.0.0.1:{link.port}/0"
    one = RelayProcess(["--redis", proxied], tmp_path / "one.log")
    two = RelayProcess(["--redis", redis_server.url], tmp_path / "two.log")
    try:
        ports = [port_of(one.url), port_of(two.url), port_of(one.url)]
        before = link.accepted
        figures = conversation(
            ports, random.Random(21), lambda: link.outage(1.0), faults_per_member
        )
        assert link.accepted > before  # relay one did lose its Redis link and came back
        if not faults_per_member:
            assert figures["resumes"] == 0  # the blip disconnected nobody
        assert one.proc.poll() is None and two.proc.poll() is None
    finally:
        one.stop()
        two.stop()
        link.close()


@pytest.fixture
def two_in_process(redis_server):
    config = RoomConfig(grace=1.5)
    with (
        serve(redis_url=redis_server.url, rooms=config) as one,
        serve(redis_url=redis_server.url, rooms=config) as two,
    ):
        yield one, two


def test_a_member_resumes_on_the_other_relay(two_in_process):
    one, two = two_in_process
    proxy = CutProxy(one.port)
    a = Log(Room(WebSocket(reconnect=FAST), "ann"))
    b = Log(Room(WebSocket(), "bob"))
    try:
        a.room.connect(f"ws://127.0.0.1:{proxy.port}/room/c")
        poll_rooms(lambda: a.joined, a)
        b.room.connect(f"{two.url}/room/c")
        poll_rooms(lambda: b.joined and a.member_joined, a, b)
        member_id = a.room.member_id
        for i in range(5):
            a.room.send(f"a{i}")
            b.room.send(f"b{i}")
        poll_rooms(lambda: len(a.messages) == 10 and len(b.messages) == 10, a, b)
        proxy.target = two.port  # the next connection goes to relay two
        proxy.cut()
        for i in range(5, 10):
            a.room.send(f"a{i}")  # while a is down: kept, resent after the resume
            b.room.send(f"b{i}")  # missed by a: replayed
        poll_rooms(lambda: len(a.joined) == 2, a, b)
        assert two.call(lambda: two.relay.stats.connections) == 2  # both on relay two now
        poll_rooms(lambda: len(a.messages) == 20 and len(b.messages) == 20, a, b)
        assert a.joined == [False, True] and a.room.member_id == member_id
        assert a.messages == b.messages
        expected = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
        assert sorted(a.data) == sorted(expected)
        assert a.room.unacked == 0 and a.gaps == []
        # b saw the drop, then the return; the grace timer set on relay one is void.
        poll_rooms(lambda: b.member_joined[-1:] == [("ann", True)], a, b)
        assert (member_id, "dropped") in b.member_left
        time.sleep(2.0)  # past the grace period
        a.room.send("still here")
        poll_rooms(lambda: b.data[-1:] == ["still here"], a, b)
        assert (member_id, "timed_out") not in b.member_left
        assert set(b.room.members) == {member_id, b.room.member_id}
    finally:
        close_rooms(a, b)
        proxy.close()


def test_presence_and_history_across_relays(two_in_process):
    one, two = two_in_process
    proxy = CutProxy(two.port)
    a = Log(Room(WebSocket(), "ann", {"team": "red"}))
    b = Log(Room(WebSocket(reconnect=FAST), "bob"))
    c = Log(Room(WebSocket(), "cat"))
    try:
        a.room.connect(f"{one.url}/room/d")
        poll_rooms(lambda: a.joined, a)
        for i in range(3):
            a.room.send({"n": i})
        poll_rooms(lambda: len(a.messages) == 3, a)
        b.room.connect(f"ws://127.0.0.1:{proxy.port}/room/d")  # relay two
        poll_rooms(lambda: b.joined and a.member_joined, a, b)
        assert a.member_joined == [("bob", True)]
        poll_rooms(lambda: len(b.messages) == 3, a, b)
        assert b.data == [{"n": 0}, {"n": 1}, {"n": 2}]  # the history, said on relay one
        assert b.room.members[a.room.member_id].meta == {"team": "red"}
        c.room.connect(f"{two.url}/room/d")
        poll_rooms(lambda: c.joined and len(a.member_joined) == 2, a, b, c)
        c.room.leave()
        poll_rooms(lambda: (c.room.member_id, "left") in a.member_left, a, b, c)
        bob = b.room.member_id
        proxy.refuse()  # bob cannot come back
        proxy.cut()
        poll_rooms(lambda: (bob, "dropped") in a.member_left, a, b)
        assert not a.room.members[bob].online
        poll_rooms(lambda: (bob, "timed_out") in a.member_left, a, b)  # the grace ran out
        assert list(a.room.members) == [a.room.member_id]
        assert [why for _, why in a.member_left] == ["left", "dropped", "timed_out"]
    finally:
        close_rooms(a, b, c)
        proxy.close()


def test_a_member_kicked_from_the_other_relay_is_told_and_closed_with_4003(two_in_process):
    one, two = two_in_process
    a = Log(Room(WebSocket(reconnect=FAST), "ann"))
    b = Log(Room(WebSocket(), "bob"))
    closes: list[tuple[int, str]] = []
    a.room.ws.on_closed = lambda event: closes.append((event.code, event.reason))
    try:
        a.room.connect(f"{one.url}/room/k")
        poll_rooms(lambda: a.joined, a)
        b.room.connect(f"{two.url}/room/k")
        poll_rooms(lambda: b.joined and a.member_joined, a, b)
        kicked = a.room.member_id
        room = two.call(lambda: two.relay.room("/room/k"))  # b's relay kicks a
        assert two.call(lambda: room.kick(kicked, "no cheating"))
        poll_rooms(lambda: closes and b.member_left, a, b)
        assert a.member_left == [(kicked, "kicked")]
        assert b.member_left == [(kicked, "kicked")]
        assert closes[0][0] == 4003 and closes[0][1] in ("no cheating", "kicked from the room")
        deadline = time.monotonic() + 0.5  # reconnect=FAST would have retried by now
        while time.monotonic() < deadline:
            a.room.ws.poll(0.01)
        assert a.room.ws.is_closed and len(a.joined) == 1 and len(closes) == 1
        assert list(b.room.members) == [b.room.member_id]
    finally:
        close_rooms(a, b)


def test_serve_room_flags_across_processes(redis_server, tmp_path):
    flags = ["--redis", redis_server.url, "--room-history", "3", "--room-grace", "0.5"]
    one = RelayProcess(flags, tmp_path / "one.log")
    two = RelayProcess(flags, tmp_path / "two.log")
    proxy = CutProxy(port_of(two.url))
    a = Log(Room(WebSocket(), "ann"))
    b = Log(Room(WebSocket(reconnect=FAST), "bob"))
    c = Log(Room(WebSocket(), "cat"))
    try:
        a.room.connect(f"{one.url}/room/f")
        poll_rooms(lambda: a.joined, a)
        for i in range(5):
            a.room.send(i)
        poll_rooms(lambda: len(a.messages) == 5, a)  # live: all of them, history or not
        b.room.connect(f"ws://127.0.0.1:{proxy.port}/room/f")
        poll_rooms(lambda: len(b.messages) == 3, a, b)
        assert b.data == [2, 3, 4]  # --room-history 3
        proxy.refuse()
        proxy.cut()
        poll_rooms(lambda: (b.room.member_id, "timed_out") in a.member_left, a, b)
        assert [why for _, why in a.member_left] == ["dropped", "timed_out"]  # --room-grace
        c.room.connect(f"{two.url}/room/f")
        poll_rooms(lambda: c.joined and len(c.messages) == 3, a, c)
    finally:
        close_rooms(a, b, c)
        proxy.close()
        one.stop()
        two.stop()


def test_serve_refuses_bad_room_flags(tmp_path):
    with pytest.raises(AssertionError, match="exited with 2"):
        RelayProcess(["--room-grace", "-1"], tmp_path / "relay.log")
    assert "0 or more seconds" in (tmp_path / "relay.log").read_text()


def test_live_members_get_every_message_of_a_room_faster_than_its_short_history(redis_server):
    config = RoomConfig(history=2, burst=1000)
    with (
        serve(redis_url=redis_server.url, rooms=config) as one,
        serve(redis_url=redis_server.url, rooms=config) as two,
    ):
        a = Log(Room(WebSocket(), "ann"))
        b = Log(Room(WebSocket(), "bob"))
        late = Log(Room(WebSocket(), "cat"))
        try:
            a.room.connect(f"{one.url}/room/fast")
            b.room.connect(f"{two.url}/room/fast")
            poll_rooms(lambda: a.joined and b.joined and len(a.room.members) == 2, a, b)
            for i in range(300):
                a.room.send(i)  # numbered and trimmed faster than the tails read
            poll_rooms(lambda: len(a.messages) + sum(a.gaps) >= 300, a, b)
            poll_rooms(lambda: len(b.messages) + sum(b.gaps) >= 300, a, b)
            assert a.gaps == [] and b.gaps == []
            assert a.data == b.data == list(range(300))
            late.room.connect(f"{two.url}/room/fast")
            poll_rooms(lambda: len(late.messages) == 2, a, b, late)
            assert late.data == [298, 299]  # a joiner gets the history: 2
        finally:
            close_rooms(a, b, late)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_relay_that_stops_or_dies_its_members_resume_on_the_other(redis_server, tmp_path, how):
    one = RelayProcess(["--redis", redis_server.url], tmp_path / "one.log")
    two = RelayProcess(["--redis", redis_server.url], tmp_path / "two.log")
    proxy = CutProxy(port_of(one.url))
    a = Log(Room(WebSocket(reconnect=FAST), "ann"))
    b = Log(Room(WebSocket(), "bob"))
    try:
        a.room.connect(f"ws://127.0.0.1:{proxy.port}/room/r")
        b.room.connect(f"{two.url}/room/r")
        poll_rooms(lambda: a.joined and b.joined and len(a.room.members) == 2, a, b)
        member_id = a.room.member_id
        for i in range(10):
            a.room.send(f"a{i}")
            b.room.send(f"b{i}")
        proxy.target = port_of(two.url)  # where a load balancer would send it next
        one.stop(getattr(signal, how))
        proxy.cut()  # a SIGKILL leaves the client's side of the proxy open
        for i in range(10, 20):
            a.room.send(f"a{i}")
            b.room.send(f"b{i}")
        poll_rooms(lambda: len(a.messages) == 40 and len(b.messages) == 40, a, b)
        assert a.room.member_id == member_id and a.joined[-1] is True
        assert a.messages == b.messages and a.gaps == [] and a.room.unacked == 0
        assert sorted(a.data) == sorted(
            [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)]
        )
    finally:
        close_rooms(a, b)
        proxy.close()
        one.stop()
        two.stop()


def test_a_hung_relay_loses_its_seats_to_the_lease_and_its_members_resume(redis_server, tmp_path):
    one = RelayProcess(["--redis", redis_server.url], tmp_path / "one.log")
    two = RelayProcess(["--redis", redis_server.url], tmp_path / "two.log")
    a = Log(Room(WebSocket(reconnect=FAST), "ann"))
    b = Log(Room(WebSocket(), "bob"))
    try:
        a.room.connect(f"{one.url}/room/hung")
        b.room.connect(f"{two.url}/room/hung")
        poll_rooms(lambda: a.joined and b.joined and len(a.room.members) == 2, a, b)
        ann = a.room.member_id
        one.proc.send_signal(signal.SIGSTOP)  # hung: its lease in Redis runs out
        try:
            b.room.send("while one hangs")
            poll_rooms(lambda: (ann, "dropped") in b.member_left, b)  # reaped by relay two
            assert not b.room.members[ann].online
        finally:
            one.proc.send_signal(signal.SIGCONT)
        # Relay one wakes up, sees that its seat was taken from it, closes a with
        # 1011; a resumes (on relay one again) and gets what it missed.
        poll_rooms(lambda: len(a.joined) == 2 and a.data == ["while one hangs"], a, b)
        assert a.joined == [False, True] and a.room.member_id == ann
        poll_rooms(lambda: b.member_joined[-1:] == [("ann", True)], a, b)
        a.room.send("back")
        poll_rooms(lambda: b.data == ["while one hangs", "back"], a, b)
        assert "1011 'the relay lost its seat in Redis: resume'" in one.log()
    finally:
        close_rooms(a, b)
        one.stop()
        two.stop()


def test_past_the_retry_window_the_member_is_closed_with_1011_and_its_seat_freed(redis_server):
    link = CutProxy(redis_server.port)
    proxied = f"redis://127.0.0.1:{link.port}/0"
    with serve(redis_url=proxied) as one, serve(redis_url=redis_server.url) as two:
        one.call(lambda: setattr(one.relay._room_store, "retry_for", 1.0))
        a = Log(Room(WebSocket(), "ann"))
        b = Log(Room(WebSocket(), "bob"))
        closes: list[int] = []
        a.room.ws.on_closed = lambda event: closes.append(event.code)
        try:
            a.room.connect(f"{one.url}/room/w")
            b.room.connect(f"{two.url}/room/w")
            poll_rooms(lambda: a.joined and b.joined and len(b.room.members) == 2, a, b)
            ann = a.room.member_id
            link.refuse()  # relay one loses Redis for longer than it retries
            link.cut()
            a.room.send("into the void")
            poll_rooms(lambda: closes, a, b)
            assert closes == [1011]
            link.accept()  # Redis is back: relay one frees the seat it could not keep
            poll_rooms(lambda: (ann, "dropped") in b.member_left, a, b)
            assert "into the void" not in b.data
        finally:
            close_rooms(a, b)
            link.close()
