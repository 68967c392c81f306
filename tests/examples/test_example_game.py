"""The server-side examples (examples/game): served by ``wsloop serve --game``, played by clients.

The relay runs as a user would run it, in a subprocess from the example's
folder (``wsloop serve --game '/ttt/*=tictactoe_room:TicTacToe' ...``); the
players are ``wsloop.Room`` objects on the poll driver, one of them behind
the fault-injecting proxy so its connection can be cut mid-game.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from example_helpers import EXAMPLES, TIMEOUT

from wsloop import Reconnect, Room, WebSocket
from wsloop.testing import poll_until

sys.path.insert(0, str(EXAMPLES.parent / "tests" / "relay"))
from fault_proxy import CutProxy

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)


@pytest.fixture
def relay_url(tmp_path):
    path = tmp_path / "relay.log"
    log = path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsloop",
            "serve",
            "--port",
            "0",
            "--game",
            "/ttt/*=tictactoe_room:TicTacToe",
            "--game",
            "/chat/*=chat_room:Chat",
        ],
        cwd=EXAMPLES / "game",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + TIMEOUT
    url = None
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"listening on (ws://\S+)", path.read_text())
        url = match.group(1) if match else None
        time.sleep(0.02)
    assert url, path.read_text()
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT) == 0
    log.close()
    assert "game rooms /ttt/*, /chat/*" in path.read_text()


class Player:
    def __init__(self, name: str, url: str) -> None:
        self.room = Room(WebSocket(reconnect=FAST), name)
        self.heard: list[Any] = []
        self.room.on_message = lambda member, data: self.heard.append(data)
        self.room.connect(url)

    def last(self, key: str) -> Any:
        found = [d for d in self.heard if isinstance(d, dict) and key in d]
        return found[-1] if found else None


def pump(until, *players: Player) -> None:
    poll_until(until, *(p.room.ws for p in players), timeout=TIMEOUT)


def test_tictactoe_the_server_decides_and_a_cut_loses_no_move(relay_url):
    port = int(relay_url.rsplit(":", 1)[1])
    proxy = CutProxy(port)
    x = Player("ann", f"ws://127.0.0.1:{proxy.port}/ttt/")  # quick match, through the proxy
    pump(lambda: x.last("you"), x)
    o = Player("bob", f"{relay_url}/ttt/")
    pump(lambda: o.last("you"), x, o)
    assert (x.last("you")["you"], o.last("you")["you"]) == ("X", "O")
    pump(lambda: (o.last("board") or {}).get("players") == 2, x, o)

    o.room.send({"cell": 4})  # out of turn: refused by the server, to bob alone
    pump(lambda: o.last("illegal"), x, o)
    assert o.last("illegal") == {"illegal": "not your turn: X plays", "cell": 4}
    assert x.last("illegal") is None

    moves = [(x, 0), (o, 4), (x, 1), (o, 8)]
    for n, (player, cell) in enumerate(moves, 1):
        player.room.send({"cell": cell})
        pump(lambda n=n: (o.last("board") or {})["board"].count(".") == 9 - n, x, o)
    proxy.cut()  # X's connection drops mid-game; X moves while it is down
    x.room.send({"cell": 2})  # the winning move, kept and resent on resume
    pump(lambda: (o.last("board") or {}).get("result") == "X wins", x, o)
    pump(lambda: (x.last("board") or {}).get("result") == "X wins", x, o)
    assert x.room.resumed
    assert x.last("board")["board"] == "XXX.O...O"
    states = [
        (d["board"], d["players"], d["result"])
        for d in x.heard
        if isinstance(d, dict) and "board" in d
    ]
    assert len(states) == len(set(states)) == 7  # each state once, none lost by the cut
    for player in (x, o):
        player.room.ws.close()
    pump(lambda: x.room.ws.is_closed and o.room.ws.is_closed, x, o)
    proxy.close()


def test_chat_room_history_moderation_and_who(relay_url):
    ann = Player("ann", f"{relay_url}/chat/lobby")
    pump(lambda: ann.room.joined, ann)
    ann.room.send("hello all")
    ann.room.send("buy spam now")  # refused, to ann alone
    pump(lambda: any("not sent" in str(d) for d in ann.heard), ann)
    bob = Player("bob", f"{relay_url}/chat/lobby")
    pump(lambda: {"from": "ann", "text": "hello all"} in bob.heard, ann, bob)
    assert not any("spam" in str(d) for d in bob.heard)
    bob.room.send("/who")
    pump(lambda: any("here:" in str(d) for d in bob.heard), ann, bob)
    assert {"from": "room", "text": "here: ann, bob"} in bob.heard
    assert not any("here:" in str(d) for d in ann.heard)
    for player in (ann, bob):
        player.room.ws.close()
    pump(lambda: ann.room.ws.is_closed and bob.room.ws.is_closed, ann, bob)
