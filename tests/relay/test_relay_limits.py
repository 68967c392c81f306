"""The relay's connection-level limits: fragments per message and the opening-handshake timeout.

Real relay, real clients: the ``websockets`` client sends fragmented messages
(an iterable is sent as one message in as many frames), a raw socket plays
the client that never finishes its handshake.
"""

from __future__ import annotations

import socket
import time

import pytest
from relay_support import WAIT
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from wsloop.relay import serve


def test_a_message_within_max_fragments_is_echoed_whole():
    # websockets sends an iterable of four pieces as five frames (a last, empty one ends it).
    with (
        serve(echo=True, max_fragments=5) as relay,
        ws_connect(f"{relay.url}/x", open_timeout=WAIT) as ws,
    ):
        ws.send(iter(["ab", "cd", "ef", "gh"]))
        assert ws.recv(timeout=WAIT) == "abcdefgh"
        ws.send(iter([b"\x01", b"\x02", b"\x03"]))
        assert ws.recv(timeout=WAIT) == b"\x01\x02\x03"


def test_a_message_in_more_fragments_closes_its_sender_with_1009_and_others_go_on():
    with serve(max_fragments=4) as relay:
        url = f"{relay.url}/room/frag"
        with (
            ws_connect(url, open_timeout=WAIT) as a,
            ws_connect(url, open_timeout=WAIT) as b,
            ws_connect(url, open_timeout=WAIT) as bad,
        ):
            with pytest.raises(ConnectionClosed) as info:
                _send_then_recv(bad, ["x"] * 4)  # five frames
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
            assert info.value.rcvd.reason == "message in more than 4 fragments"
            a.send("still here")
            assert b.recv(timeout=WAIT) == "still here"


def test_a_handshake_never_finished_is_dropped_after_open_timeout():
    with serve(open_timeout=0.5) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as sock:
            sock.sendall(b"GET /room/slow HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the relay closed it
            assert time.monotonic() - started < WAIT
        assert relay.stats.connections == 0


@pytest.mark.parametrize("options", [{"max_fragments": 0}, {"open_timeout": 0}])
def test_invalid_limits(options):
    from wsloop.relay import Relay

    with pytest.raises(ValueError, match="must be positive"):
        Relay(**options)


def _send_then_recv(ws, fragments):
    ws.send(iter(fragments))  # may already fail: the relay closes at the fifth frame
    ws.recv(timeout=WAIT)
