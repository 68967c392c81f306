"""Authoritative game rooms (``wsloop.relay.GameRoom``) on a real relay, with real clients.

The clients are ``wsloop.Room`` objects on the poll driver (as a pygame game
would have) and, for what a Construct game would send, the ``websockets``
client speaking the JSON by hand. Cuts go through the fault-injecting TCP
proxy, so the clients' own reconnect resumes their seats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import CutProxy
from relay_support import WAIT
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from wsloop import Reconnect, Room, WebSocket
from wsloop.relay import GameRoom, JoinRefused, Relay, Seat, serve
from wsloop.room import ROOM_PROTOCOL
from wsloop.testing import poll_until

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)


class Counter(GameRoom):
    """Adds what the players send; refuses bad input; can fail on purpose."""

    max_players = 3
    handled: list[tuple[str, Any]]

    def on_create(self) -> None:
        self.total = 0
        self.handled = []

    def on_join(self, player: Seat) -> None:
        if player.name == "mallory":
            raise JoinRefused("no Mallory at this table")
        self.send(player, {"hello": player.name, "identity": player.identity})
        self.broadcast({"players": [p.name for p in self.players]})

    def on_message(self, player: Seat, data: Any) -> None:
        self.handled.append((player.name, data))
        if data == "boom":
            raise RuntimeError("a bug in the room")
        if isinstance(data, bytes):
            self.broadcast(data[::-1])
            return
        if not isinstance(data, int):
            self.send(player, {"error": "send a number"})
            return
        self.total += data
        self.broadcast({"total": self.total, "by": player.name})


OPEN: list[Log] = []


def close_open() -> None:
    """Close every client (before its relay stops, which would wait for it)."""
    logs, OPEN[:] = list(OPEN), []
    for log in logs:
        log.room.ws.close()
    poll_until(lambda: all(log.room.ws.is_closed for log in logs), *(log.room.ws for log in logs))


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    close_open()


class Log:
    """A ``wsloop.Room`` with everything it hears recorded."""

    def __init__(self, name: str, url: str, **options: Any) -> None:
        OPEN.append(self)
        self.room = Room(WebSocket(reconnect=FAST, **options), name)
        self.said: list[tuple[str, Any]] = []
        self.errors: list[tuple[str, str]] = []
        self.room.on_message = lambda member, data: self.said.append((member.id, data))
        self.room.on_room_error = lambda code, message: self.errors.append((code, message))
        self.room.connect(url)

    @property
    def data(self) -> list[Any]:
        return [data for sender, data in self.said]


def pump(until, *logs: Log) -> None:
    poll_until(until, *(log.room.ws for log in logs), timeout=WAIT)


def game(relay: Relay | Any, name: str) -> Any:
    return relay.call(lambda: relay.relay.room(name).game)


@pytest.fixture
def relay():
    with serve(games={"/count/*": Counter}, close_timeout=1.0) as running:
        yield running
        close_open()


def test_messages_go_to_the_room_code_and_only_the_room_speaks(relay):
    url = f"{relay.url}/count/a"
    ann, bob = Log("ann", url), Log("bob", url)
    pump(lambda: ann.room.joined and bob.room.joined, ann, bob)
    ann.room.send(2)
    bob.room.send(3)
    pump(
        lambda: {"total": 5, "by": "bob"} in ann.data and {"total": 5, "by": "bob"} in bob.data,
        ann,
        bob,
    )
    # Nobody heard the other's raw message: only the room's answers, "from": "room".
    for log in (ann, bob):
        assert 2 not in log.data and 3 not in log.data
        assert {sender for sender, _ in log.said} == {"room"}
        assert log.room.unacked == 0  # the relay acknowledged each send
    assert game(relay, "/count/a").handled == [("ann", 2), ("bob", 3)]
    # The private hello reached its player alone.
    assert {"hello": "ann", "identity": None} in ann.data
    assert {"hello": "ann", "identity": None} not in bob.data


def test_a_private_answer_and_binary_messages(relay):
    url = f"{relay.url}/count/b"
    ann, bob = Log("ann", url), Log("bob", url)
    pump(lambda: ann.room.joined and bob.room.joined, ann, bob)
    ann.room.send("seven")
    ann.room.send(b"\x01\x02\x03")
    pump(lambda: b"\x03\x02\x01" in bob.data and b"\x03\x02\x01" in ann.data, ann, bob)
    assert {"error": "send a number"} in ann.data
    assert {"error": "send a number"} not in bob.data


def test_a_late_joiner_is_replayed_the_broadcasts_but_not_the_private_messages(relay):
    url = f"{relay.url}/count/c"
    ann = Log("ann", url)
    pump(lambda: ann.room.joined, ann)
    ann.room.send(1)
    ann.room.send("x")  # answered privately
    pump(lambda: {"error": "send a number"} in ann.data, ann)
    bob = Log("bob", url)
    pump(lambda: {"total": 1, "by": "ann"} in bob.data, ann, bob)
    pump(lambda: {"players": ["ann", "bob"]} in bob.data, ann, bob)
    assert {"error": "send a number"} not in bob.data
    assert {"hello": "ann", "identity": None} not in bob.data


def test_a_cut_and_resume_loses_no_move_and_the_room_sees_each_once(relay):
    proxy = CutProxy(relay.port)
    url = f"ws://127.0.0.1:{proxy.port}/count/d"
    ann, bob = Log("ann", url), Log("bob", f"{relay.url}/count/d")
    pump(lambda: ann.room.joined and bob.room.joined, ann, bob)
    seat = ann.room.member_id
    ann.room.send(10)
    pump(lambda: {"total": 10, "by": "ann"} in bob.data, ann, bob)
    proxy.cut()
    ann.room.send(1)  # while the connection is down, or just before it noticed
    ann.room.send(2)
    bob.room.send(100)  # said while ann is away: replayed to her on resume
    pump(lambda: ann.room.resumed and ann.room.unacked == 0, ann, bob)
    pump(
        lambda: {"total": 113, "by": "ann"} in bob.data or {"total": 113, "by": "bob"} in bob.data,
        ann,
        bob,
    )
    pump(lambda: any(d.get("total") == 113 for d in ann.data if isinstance(d, dict)), ann, bob)
    assert ann.room.member_id == seat
    handled = game(relay, "/count/d").handled
    assert sorted(d for _, d in handled) == [1, 2, 10, 100]  # each exactly once
    totals = [d["total"] for d in ann.data if isinstance(d, dict) and "total" in d]
    assert totals == sorted(totals) and len(totals) == len(set(totals)) == 4
    proxy.close()


def test_room_code_that_raises_is_reported_to_that_player_only(relay, caplog):
    url = f"{relay.url}/count/e"
    ann, bob = Log("ann", url), Log("bob", url)
    pump(lambda: ann.room.joined and bob.room.joined, ann, bob)
    with caplog.at_level(logging.ERROR, "wsloop.relay.game"):
        ann.room.send("boom")
        pump(lambda: ann.errors, ann, bob)
    assert ann.errors == [("room_error", "the room's code failed on your message (RuntimeError)")]
    assert "a bug in the room" in caplog.text
    bob.room.send(4)  # the room goes on
    pump(lambda: {"total": 4, "by": "bob"} in ann.data, ann, bob)
    assert not bob.errors
    assert relay.stats.handler_errors == 1


def test_join_refused_and_the_table_full(relay):
    url = f"{relay.url}/count/f"
    mallory = Log("mallory", url)
    pump(lambda: mallory.errors, mallory)
    assert mallory.errors == [("join_refused", "no Mallory at this table")]
    players = [Log(name, url) for name in ("a", "b", "c")]
    pump(lambda: all(p.room.joined for p in players), *players)
    late = Log("d", url)
    pump(lambda: late.errors, late, *players)
    assert late.errors[0][0] == "room_full"
    assert "3 members" in late.errors[0][1]


def test_quick_match_fills_rooms_in_turn_and_resume_finds_the_seat(relay):
    proxy = CutProxy(relay.port)
    logs = [Log(f"p{n}", f"ws://127.0.0.1:{proxy.port}/count/") for n in range(4)]
    pump(lambda: all(log.room.joined for log in logs), *logs)
    names = relay.call(lambda: sorted(relay.relay._cores))
    assert len(names) == 2, names
    assert all(name.startswith("/count/") for name in names)
    by_room = relay.call(lambda: sorted(len(core.seats) for core in relay.relay._cores.values()))
    assert by_room == [1, 3]  # first come, first seated: three to a table, then a new one
    seats = [log.room.member_id for log in logs]
    proxy.cut()
    pump(lambda: all(log.room.resumed and log.room.ws.is_open for log in logs), *logs)
    assert [log.room.member_id for log in logs] == seats
    assert relay.stats.resumes == 4
    assert relay.call(lambda: sorted(relay.relay._cores)) == names  # no room made by the resumes
    proxy.close()


def test_the_identity_from_auth_reaches_the_room():
    def auth(handshake):
        return {"user": handshake.query.get("user")}

    with serve(games={"/count/*": Counter}, auth=auth) as relay:
        ann = Log("ann", f"{relay.url}/count/g?user=u-17")
        pump(lambda: ann.room.joined and ann.data, ann)
        assert {"hello": "ann", "identity": {"user": "u-17"}} in ann.data
        close_open()


def test_a_plain_client_on_a_game_path_is_refused_with_400(relay):
    with pytest.raises(InvalidStatus) as info:
        ws_connect(f"{relay.url}/count/h", open_timeout=WAIT).close()
    assert info.value.response.status_code == 400
    assert ROOM_PROTOCOL in info.value.response.body.decode()


def test_a_construct_style_client_speaks_the_json_by_hand(relay):
    with ws_connect(f"{relay.url}/count/i", subprotocols=[ROOM_PROTOCOL], open_timeout=WAIT) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "join", "name": "construct"}))
        ws.send(json.dumps({"type": "send", "id": "c1", "data": 5}))
        seen: list[dict[str, Any]] = []
        while not any(m.get("type") == "ack" for m in seen):
            seen.append(json.loads(ws.recv(timeout=WAIT)))
        kinds = [m["type"] for m in seen]
        assert kinds[0] == "welcome"
        totals = [m["data"] for m in seen if m["type"] == "message" and "total" in m["data"]]
        assert totals == [{"total": 5, "by": "construct"}]
        ack = next(m for m in seen if m["type"] == "ack")
        assert ack["id"] == "c1"
        ws.send(json.dumps({"type": "send", "id": "c1", "data": 5}))  # a resend: acked, not redone
        assert json.loads(ws.recv(timeout=WAIT))["type"] == "ack"
    assert game(relay, "/count/i").total == 5


class Clock(GameRoom):
    """A turn clock: whoever does not move within the time loses their turn."""

    def on_create(self) -> None:
        self.ticks = 0
        self.turns = 0
        self.tick = self.every(0.02, self.on_tick)
        self.clock = self.call_later(0.05, self.timeout)

    def on_tick(self) -> None:
        self.ticks += 1
        if self.ticks == 3:
            self.tick.cancel()

    def timeout(self) -> None:
        self.turns += 1
        self.broadcast({"timeout": self.turns})
        if self.turns < 3:
            self.clock = self.call_later(0.05, self.timeout)

    def on_message(self, player: Seat, data: Any) -> None:
        if data == "fail-timer":
            self.call_later(0, lambda: 1 / 0)


def test_timers_tick_fire_and_are_contained():
    with serve(games={"/clock/*": Clock}) as relay:
        ann = Log("ann", f"{relay.url}/clock/x")
        pump(lambda: {"timeout": 3} in ann.data, ann)
        room = game(relay, "/clock/x")
        assert room.ticks == 3  # cancelled after three
        assert [d for d in ann.data] == [{"timeout": 1}, {"timeout": 2}, {"timeout": 3}]
        ann.room.send("fail-timer")
        pump(lambda: relay.stats.handler_errors == 1, ann)
        assert ann.room.ws.is_open
        ann.room.leave()
        pump(lambda: ann.room.ws.is_closed, ann)
        pump(lambda: relay.call(lambda: relay.relay.room("/clock/x")) is None, ann)


def test_rooms_nobody_joined_are_forgotten():
    with serve(games={"/count/*": Counter}) as relay:
        for path in ("/count/never", "/plain-room-protocol"):
            with ws_connect(f"{relay.url}{path}", subprotocols=[ROOM_PROTOCOL], open_timeout=WAIT):  # type: ignore[list-item]
                assert relay.call(lambda: len(relay.relay._cores)) == 1
            poll_until(lambda: relay.call(lambda: len(relay.relay._cores)) == 0, timeout=WAIT)


def test_invalid_game_registrations():
    with pytest.raises(TypeError, match="GameRoom subclass"):
        Relay(games={"/x/*": object})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="starts with '/'"):
        Relay(games={"x/*": Counter})
    with pytest.raises(ValueError, match="echo mode"):
        Relay(echo=True, games={"/x/*": Counter})


def test_the_guessing_game_of_docs_games_md():
    """The thirty-line server of docs/games.md, as written there, played by two members."""
    namespace = _snippet("docs/games.md", "class Guess(GameRoom)")
    with serve(games={"/guess/*": namespace["Guess"]}) as relay:
        url = f"{relay.url}/guess/t"
        ann = Log("ann", url)
        pump(lambda: ann.room.joined, ann)
        bob, twin = Log("bob", url), Log("ann", url)
        pump(lambda: bob.room.joined and twin.errors, ann, bob, twin)
        assert twin.errors == [("join_refused", "that name is taken at this table")]
        bob.room.send({"guess": 1})  # ann goes first
        pump(lambda: {"error": "not your turn"} in bob.data, ann, bob)
        room = game(relay, "/guess/t")
        low = 1 if room.secret > 1 else 2
        ann.room.send({"guess": low})
        pump(lambda: any(isinstance(d, dict) and "hint" in d for d in bob.data), ann, bob)
        bob.room.send({"guess": room.secret})
        pump(lambda: {"winner": "bob"} in ann.data and {"winner": "bob"} in bob.data, ann, bob)
        close_open()


def _snippet(path: str, marker: str) -> dict[str, Any]:
    """Run the Python block of a document that contains ``marker``, up to its ``with serve``."""
    text = (Path(__file__).resolve().parents[2] / path).read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    code = next(b for b in blocks if marker in b).split("\nwith serve(", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, path, "exec"), namespace)
    return namespace


def test_the_counter_of_the_readme():
    counter = _snippet("README.md", "class Counter(GameRoom)")["Counter"]
    with serve(games={"/count/*": counter}) as relay:
        url = f"{relay.url}/count/readme"
        ann, bob = Log("ann", url), Log("bob", url)
        pump(lambda: ann.room.joined and bob.room.joined, ann, bob)
        ann.room.send(3)
        bob.room.send(7)
        pump(lambda: {"error": "add 1, 2 or 3"} in bob.data, ann, bob)
        pump(lambda: {"total": 3, "by": "ann"} in bob.data, ann, bob)
        assert {"error": "add 1, 2 or 3"} not in ann.data
        close_open()
