"""``wsloop demo``: two scripted players, one game loop, a relay, offline.

The demo starts the relay of :mod:`wsloop.relay` on a free port of
``127.0.0.1`` (in a background thread), then runs a game loop on the main
thread that polls two :class:`~wsloop.WebSocket` objects, one per player,
with the poll driver: every trigger fires inside ``poll()`` and is printed.

The players meet in the room ``/room/tictactoe`` with the subprotocol
``tictactoe.v1``: Bob says hello in a text message, Ada welcomes him and
opens; each move is a 2-byte binary message built with
:class:`~wsloop.BinaryData` (move number, cell). The player who receives the
last move says "gg" and closes; the other closes on hearing it. The demo
exits 0 when the game ended and both connections closed cleanly, 1 otherwise
(an error, an unexpected close, or the overall timeout).
"""

from __future__ import annotations

import random
import sys
import time
from typing import TYPE_CHECKING, TextIO

from ._binary import BinaryData
from ._client import WebSocket
from .relay import serve

if TYPE_CHECKING:
    from .events import BinaryMessage, Closed, Error, Opened, TextMessage

__all__ = ["run_demo"]

PROTOCOL = "tictactoe.v1"
ROOM = "/room/tictactoe"
THINK = 0.12
"""Seconds a player 'thinks' before moving, so a person can follow the game."""
FRAME = 1 / 240
"""The game loop's frame time."""
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def winner(board: list[str]) -> str | None:
    """``"X"`` or ``"O"`` if that mark has three in a row, ``"draw"`` if full, else None."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return "draw" if "." not in board else None


class Player:
    """A scripted player: a WebSocket, a copy of the board, a simple strategy."""

    def __init__(self, name: str, mark: str, rng: random.Random, demo: Demo) -> None:
        self.name = name
        self.mark = mark
        self.rng = rng
        self.demo = demo
        self.board = ["."] * 9
        self.moves = 0
        self.my_turn = False
        self.move_at = 0.0
        self.result: str | None = None
        self.closed: Closed | None = None
        self.errors: list[str] = []
        self.ws = WebSocket(binary_data=BinaryData(), driver="poll")
        self.ws.on_opened = self.on_opened
        self.ws.on_text_message = self.on_text_message
        self.ws.on_binary_message = self.on_binary_message
        self.ws.on_error = self.on_error
        self.ws.on_closed = self.on_closed

    @property
    def other(self) -> str:
        return "O" if self.mark == "X" else "X"

    def say(self, trigger: str, text: str = "") -> None:
        self.demo.show(self.name, trigger, text)

    # Triggers.

    def on_opened(self, event: Opened) -> None:
        self.say("on_opened", f"in {ROOM}, subprotocol {event.subprotocol}")
        if self.mark == "O":
            self.ws.send_text(f"hello, I am {self.name} and I play {self.mark}")

    def on_text_message(self, event: TextMessage) -> None:
        self.say("on_text_message", repr(event.text))
        if event.text.startswith("hello") and self.mark == "X":
            self.ws.send_text(f"welcome! I am {self.name}, {self.mark} starts")
            self.plan_move()
        elif event.text == "gg":
            self.ws.send_text("gg, thanks for the game")
            self.ws.close(1000, "good game")
        elif event.text.startswith("gg, "):
            self.ws.close(1000, "good game")

    def on_binary_message(self, event: BinaryMessage) -> None:
        data = self.ws.binary_data
        assert data is not None
        if data.byte_length != 2:
            self.fail(f"a move is 2 bytes, got {len(event.data)}")
            return
        number, cell = data.get_uint8(0), data.get_uint8(1)
        self.say("on_binary_message", f"[{data.get_hex()}] move {number}: {self.other} on {cell}")
        if number != self.moves + 1 or not 0 <= cell < 9 or self.board[cell] != ".":
            self.fail(f"illegal move {number} on cell {cell}")
            return
        self.apply(cell, self.other)
        if self.result is not None:
            self.ws.send_text("gg")
        else:
            self.plan_move()

    def on_error(self, event: Error) -> None:
        self.errors.append(event.message)
        self.say("on_error", event.message)

    def on_closed(self, event: Closed) -> None:
        self.closed = event
        clean = "clean" if event.was_clean else "NOT clean"
        self.say("on_closed", f"code {event.code} {event.reason!r} ({clean})")

    # The game.

    def fail(self, why: str) -> None:
        self.errors.append(why)
        self.say("protocol error", why)
        self.ws.close(4000, "protocol error")

    def apply(self, cell: int, mark: str) -> None:
        self.board[cell] = mark
        self.moves += 1
        self.result = winner(self.board)

    def plan_move(self) -> None:
        self.my_turn = True
        self.move_at = time.monotonic() + THINK

    def update(self, now: float) -> None:
        """Called once per frame by the game loop."""
        if not self.my_turn or now < self.move_at or not self.ws.is_open:
            return
        self.my_turn = False
        cell = self.choose()
        message = BinaryData(2)
        message.set_uint8(0, self.moves + 1)
        message.set_uint8(1, cell)
        self.ws.send_binary(message)
        self.demo.show(self.name, "send_binary", f"[{message.get_hex()}] {self.mark} on {cell}")
        self.apply(cell, self.mark)
        self.demo.board(self.board)

    def choose(self) -> int:
        free = [i for i, mark in enumerate(self.board) if mark == "."]
        for mark in (self.mark, self.other):  # win, else block (O forgets half the time)
            if mark != self.mark and self.mark == "O" and self.rng.random() < 0.5:
                continue
            for cell in free:
                trial = self.board.copy()
                trial[cell] = mark
                if winner(trial) == mark:
                    return cell
        if 4 in free:
            return 4
        corners = [c for c in (0, 2, 6, 8) if c in free]
        return self.rng.choice(corners or free)


class Demo:
    """The output and the game loop."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()

    def show(self, who: str, trigger: str, text: str = "") -> None:
        elapsed = time.monotonic() - self.start
        self.out.write(f"{elapsed:6.3f}s  {who:<4} {trigger:<18} {text}".rstrip() + "\n")
        self.out.flush()

    def board(self, board: list[str]) -> None:
        for row in range(3):
            self.out.write(" " * 14 + " ".join(board[row * 3 : row * 3 + 3]) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run_demo(*, seed: int = 7, timeout: float = 30.0, out: TextIO | None = None) -> int:
    """Run the demo; return 0 if the game was played and both players closed cleanly."""
    demo = Demo(out if out is not None else sys.stdout)
    deadline = time.monotonic() + timeout
    with serve(protocols=[PROTOCOL], close_timeout=2.0) as relay:
        url = relay.url + ROOM
        demo.say(f"wsloop demo: a relay on {relay.url}; Ada (X) and Bob (O) meet in {ROOM}")
        demo.say("one game loop polls both WebSocket objects; each line is a trigger firing\n")
        ada = Player("Ada", "X", random.Random(seed), demo)
        bob = Player("Bob", "O", random.Random(seed + 1), demo)
        players = (ada, bob)
        ada.ws.connect(url, PROTOCOL)
        bob_connected = False
        while not all(p.closed for p in players):
            now = time.monotonic()
            if now > deadline:
                demo.say(f"\nwsloop demo: FAILED: not finished after {timeout:g} s")
                for player in players:
                    if not player.ws.is_closed:
                        player.ws.close(1000, "demo timed out")
                        player.ws.wait_closed(3.0)
                return 1
            for player in players:  # the frame: poll every connection...
                player.ws.poll()
            for player in players:  # ...then update the game
                player.update(now)
            if not bob_connected and ada.ws.is_open:
                bob.ws.connect(url, PROTOCOL)  # Bob arrives once Ada is in the room
                bob_connected = True
            if ada.closed and not bob_connected:
                break
            time.sleep(FRAME)
    result = ada.result
    problems = [f"{p.name}: {e}" for p in players for e in p.errors]
    for player in players:
        closed = player.closed
        if closed is None or not closed.was_clean or closed.code != 1000:
            problems.append(f"{player.name} did not close cleanly ({closed})")
    if result is None or bob.result != result:
        problems.append("the game did not finish")
    if problems:
        demo.say("\nwsloop demo: FAILED: " + "; ".join(problems))
        return 1
    outcome = "a draw" if result == "draw" else f"{result} wins"
    demo.say(
        f"\nwsloop demo: {outcome} in {ada.moves} moves; both connections closed cleanly. "
        "Try it yourself: `wsloop serve` and `wsloop connect :8765/room/lobby`."
    )
    return 0
