"""Scale-out: two relay processes share rooms through a real redis-server."""

from __future__ import annotations

import pytest
from relay_support import WAIT, Peer, RelayProcess, check_contract, close_all, open_all, pump

from wsloop.relay import serve

COUNT = 500


@pytest.fixture
def relays(redis_server, tmp_path):
    started = []
    try:
        for name in ("one", "two"):
            started.append(RelayProcess(["--redis", redis_server.url], tmp_path / f"{name}.log"))
        yield started
    finally:
        for relay in started:
            relay.stop()


def test_members_on_different_processes_hear_each_other_in_order(relays):
    one, two = relays
    a = Peer().connect(f"{one.url}/room/shared")  # on process one
    c = Peer().connect(f"{one.url}/room/shared")  # on process one too
    b = Peer().connect(f"{two.url}/room/shared")  # on process two
    d = Peer().connect(f"{two.url}/room/elsewhere")  # another room, process two
    e = Peer().connect(f"{one.url}/room/elsewhere")  # its room-mate on process one
    peers = (a, b, c, d, e)
    open_all(*peers)

    # Both senders at once, interleaved, from different processes.
    for i in range(COUNT):
        a.ws.send_text(f"a{i}")
        b.ws.send_text(f"b{i}")
        if i % 50 == 0:
            for peer in peers:
                peer.ws.poll()
    a.ws.send_binary(b"\x00a-binary\xff")
    expected_a = [f"a{i}" for i in range(COUNT)]
    expected_b = [f"b{i}" for i in range(COUNT)]
    pump(
        lambda: len(a.texts) >= COUNT and len(b.texts) >= COUNT and len(c.texts) >= 2 * COUNT,
        *peers,
    )
    pump(lambda: b.binaries and c.binaries, *peers)

    assert b.texts == expected_a  # across processes: in order, nothing lost
    assert a.texts == expected_b  # and never its own messages back
    assert [t for t in c.texts if t[0] == "a"] == expected_a  # same process
    assert [t for t in c.texts if t[0] == "b"] == expected_b  # through Redis
    assert b.binaries == [b"\x00a-binary\xff"]
    assert a.binaries == []

    # Rooms stay apart across processes. e's marker goes through the same Redis
    # subscription of process two after every message of a, so a stray copy
    # of any of them would have reached d before it.
    e.ws.send_text("marker")
    pump(lambda: d.texts, *peers)
    assert d.texts == ["marker"]
    assert d.binaries == []

    close_all(*peers)
    for peer in peers:
        check_contract(peer.events)
        assert peer.closed.code == 1000


def test_a_member_who_just_joined_misses_nothing(relays):
    one, two = relays
    for round_number in range(5):
        room = f"/room/join-{round_number}"
        sender = Peer().connect(f"{one.url}{room}")
        open_all(sender)
        receiver = Peer().connect(f"{two.url}{room}")
        open_all(receiver)
        # The receiver's process subscribed before the handshake completed.
        sender.ws.send_text("first")
        pump(lambda receiver=receiver: receiver.texts, sender, receiver)
        assert receiver.texts == ["first"]
        close_all(sender, receiver)


def test_in_process_relays_share_rooms_too(redis_server):
    with serve(redis_url=redis_server.url) as one, serve(redis_url=redis_server.url) as two:
        a = Peer().connect(f"{one.url}/room/x")
        b = Peer().connect(f"{two.url}/room/x")
        open_all(a, b)
        a.ws.send_text("over redis")
        b.ws.send_binary(b"\x01")
        pump(lambda: b.texts and a.binaries, a, b)
        assert b.texts == ["over redis"]
        assert a.binaries == [b"\x01"]
        close_all(a, b)
        # Rooms emptied: the processes unsubscribed and forgot them.
        pump(lambda: one.stats.rooms == 0 and two.stats.rooms == 0)


def test_losing_redis_closes_every_client_with_1011_and_stops(redis_server, tmp_path):
    relay = RelayProcess(["--redis", redis_server.url], tmp_path / "relay.log")
    try:
        a = Peer().connect(f"{relay.url}/room/r")
        b = Peer().connect(f"{relay.url}/room/r")
        open_all(a, b)
        redis_server.stop()
        pump(lambda: a.closed and b.closed, a, b)
        for peer in (a, b):
            check_contract(peer.events)
            assert peer.closed.code == 1011
            assert "Redis" in peer.closed.reason
        status = relay.proc.wait(WAIT)  # it stops by itself
    finally:
        relay.stop()
    assert status == 1
    assert "lost the Redis link" in relay.log()


def test_serve_exits_1_when_redis_is_unreachable(redis_server, tmp_path):
    url = redis_server.url
    redis_server.stop()
    with pytest.raises(AssertionError, match="exited with 1"):
        RelayProcess(["--redis", url], tmp_path / "relay.log")
    assert "could not use Redis" in (tmp_path / "relay.log").read_text()
