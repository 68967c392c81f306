"""``wsloop demo``: an authoritative game on the relay, two players in one loop, offline.

The demo starts the relay of :mod:`wsloop.relay` on a free port of
``127.0.0.1`` (in a background thread) with a tic-tac-toe
:class:`~wsloop.relay.GameRoom`: the server holds the board and decides
whose turn it is and which moves are legal. A game loop on the main thread
polls two :class:`~wsloop.Room` objects (poll driver, reconnection on), one
per player, and prints every trigger as it fires.

Ada and Bob join ``/ttt/`` (quick match puts them at the same table). Each
move is a 2-byte binary message built with :class:`~wsloop.BinaryData` (move
number, cell); the room answers everyone with the board as JSON. Bob first
tries to move out of turn, and the server refuses it, to him alone. In the
middle of the game the demo cuts Bob's connection at the relay, as a network
blip would, just as he sends a move: his socket reconnects by itself, his
room resumes the seat, the move he sent is delivered once, and what he
missed is replayed. The demo exits 0 when the game ended, the server saw
every move exactly once, Bob's seat survived the cut, and both connections
closed cleanly; 1 otherwise (and after the overall timeout at the latest).
"""

from __future__ import annotations

import random
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from .._binary import BinaryData
from .._client import WebSocket
from .._sansio.reconnect import Reconnect
from ..relay import GameRoom, Seat, serve
from ..room import Member, Room
from ._args import _seconds

if TYPE_CHECKING:
    import argparse

    from ..events import Closed, Error, Opened, Reconnecting
    from ..relay import RelayThread
    from ._args import _Parser

__all__ = ["add_parser", "run_demo"]

PATH = "/ttt/"
THINK = 0.12
"""Seconds a player 'thinks' before moving, so a person can follow the game."""
FRAME = 1 / 240
"""The game loop's frame time."""
CUT_AT_MOVE = 4
"""Bob's connection is cut as he sends this move."""
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def winner(board: list[str]) -> str | None:
    """``"X"`` or ``"O"`` if that mark has three in a row, ``"draw"`` if full, else None."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return "draw" if "." not in board else None


class TicTacToe(GameRoom):
    """The server's rules: two seats, X starts, a move is (number, cell) in 2 bytes."""

    max_players = 2
    tables: ClassVar[list[TicTacToe]] = []

    def on_create(self) -> None:
        self.board = ["."] * 9
        self.marks: dict[str, str] = {}
        self.applied = 0
        """Moves applied: each move the players sent, once."""
        self.refused = 0
        TicTacToe.tables.append(self)

    def on_join(self, player: Seat) -> None:
        self.marks[player.id] = "O" if "X" in self.marks.values() else "X"
        self.send(player, {"you": self.marks[player.id]})
        self.locked = len(self.marks) == 2
        self.tell_all()

    def on_message(self, player: Seat, data: Any) -> None:
        problem = self.check(player, data)
        if problem:
            self.refused += 1
            self.send(player, {"illegal": problem})
            return
        self.board[data[1]] = self.marks[player.id]
        self.applied += 1
        self.tell_all()

    def check(self, player: Seat, data: Any) -> str:
        if not isinstance(data, bytes) or len(data) != 2:
            return "a move is 2 bytes: (move number, cell)"
        number, cell = data
        result = winner(self.board)
        turn = "X" if self.applied % 2 == 0 else "O"
        if result or len(self.marks) < 2:
            return "no game in progress"
        if self.marks.get(player.id) != turn:
            return f"not your turn: {turn} plays move {self.applied + 1}"
        if number != self.applied + 1:
            return f"move {number} is out of order: this is move {self.applied + 1}"
        if not 0 <= cell < 9 or self.board[cell] != ".":
            return f"cell {cell} is not free"
        return ""

    def tell_all(self) -> None:
        turn = "X" if self.applied % 2 == 0 else "O"
        result = winner(self.board) or ""
        self.broadcast(
            {
                "board": "".join(self.board),
                "turn": turn,
                "moves": self.applied,
                "result": result,
                "players": len(self.marks),
            }
        )


class Player:
    """A scripted player: a Room on a WebSocket, what the server said, a simple strategy."""

    def __init__(self, name: str, rng: random.Random, demo: Demo) -> None:
        self.name = name
        self.rng = rng
        self.demo = demo
        self.mark = ""
        self.state: dict[str, Any] = {"turn": "", "moves": 0, "result": "", "players": 0}
        self.move_at: float | None = None
        self.sent: set[int] = set()
        self.refusals: list[str] = []
        self.drops = 0
        self.dropping = False
        """Between the demo's cut and the resume: the error it causes is expected."""
        self.closed: Closed | None = None
        self.errors: list[str] = []
        self.member_ids: list[str] = []
        ws = WebSocket(
            driver="poll", reconnect=Reconnect(initial_delay=0.1, max_delay=0.5, jitter=0.0)
        )
        ws.on_opened = self.on_opened
        ws.on_error = self.on_error
        ws.on_closed = self.on_closed
        ws.on_reconnecting = self.on_reconnecting
        self.ws = ws
        self.room = Room(ws, name)
        self.room.on_joined = self.on_joined
        self.room.on_member_joined = self.on_member_joined
        self.room.on_member_left = self.on_member_left
        self.room.on_message = self.on_message

    def say(self, trigger: str, text: str = "") -> None:
        self.demo.show(self.name, trigger, text)

    # The socket's triggers.

    def on_opened(self, event: Opened) -> None:
        self.say("on_opened", f"subprotocol {event.subprotocol}")

    def on_error(self, event: Error) -> None:
        if not self.dropping:
            self.errors.append(event.message)
        self.say("on_error", event.message)

    def on_closed(self, event: Closed) -> None:
        self.closed = event
        self.say("on_closed", f"code {event.code} ({'clean' if event.was_clean else 'NOT clean'})")

    def on_reconnecting(self, event: Reconnecting) -> None:
        self.drops += 1
        self.closed = None  # not for good: the socket tries again
        self.say("on_reconnecting", f"attempt {event.attempt} in {event.delay:.2f} s")

    # The room's triggers.

    def on_joined(self, me: Member) -> None:
        self.member_ids.append(me.id)
        how = "resumed" if self.room.resumed else "joined"
        self.say("on_joined", f"{how} as member {me.id} ({len(self.room.members)} at the table)")
        self.dropping = False

    def on_member_joined(self, member: Member) -> None:
        self.say("on_member_joined", f"{member.name} ({member.id})")

    def on_member_left(self, member: Member, reason: str) -> None:
        self.say("on_member_left", f"{member.name or member.id}: {reason}")

    def on_message(self, member: Member, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if "you" in data:
            self.mark = data["you"]
            self.say("on_message", f"the server seats me as {self.mark}")
        elif "illegal" in data:
            self.refusals.append(data["illegal"])
            self.say("on_message", f"REFUSED by the server: {data['illegal']}")
        elif "board" in data:
            self.state = data
            if data["result"]:
                self.say("on_message", f"the server says: {data['result']}")
            if data["moves"] and self.name == "Ada":
                self.demo.board(data["board"])

    # The game.

    def my_turn(self) -> bool:
        s = self.state
        return bool(self.mark) and s["turn"] == self.mark and not s["result"] and s["players"] == 2

    def update(self, now: float, demo_relay: RelayThread) -> None:
        """Called once per frame by the game loop."""
        number = self.state["moves"] + 1
        if not self.my_turn() or number in self.sent:  # (sent: the answer is on its way)
            self.move_at = None
            return
        if self.move_at is None:
            self.move_at = now + THINK  # think a little, so a person can follow
        if now < self.move_at:
            return
        self.move_at = None
        cell = self.choose()
        move = BinaryData(2)
        move.set_uint8(0, number)
        move.set_uint8(1, cell)
        if self.name == "Bob" and number == CUT_AT_MOVE:
            self.demo.say(f"{'':14}*** the network drops Bob's connection as he moves ***")
            self.dropping = True
            cut(demo_relay, self.room.member_id)
        self.room.send(move.to_bytes())
        self.sent.add(number)
        self.say("send", f"[{move.get_hex()}] move {number}: {self.mark} on {cell}")

    def choose(self) -> int:
        board = list(self.state["board"])
        free = [i for i, mark in enumerate(board) if mark == "."]
        other = "O" if self.mark == "X" else "X"
        for mark in (self.mark, other):  # win, else block (O forgets half the time)
            if mark == other and self.mark == "O" and self.rng.random() < 0.5:
                continue
            for cell in free:
                trial = board.copy()
                trial[cell] = mark
                if winner(trial) == mark:
                    return cell
        if 4 in free:
            return 4
        corners = [c for c in (0, 2, 6, 8) if c in free]
        return self.rng.choice(corners or free)


def cut(relay: RelayThread, member_id: str) -> None:
    """Drop the TCP connection of a member at the relay, with no close frame."""

    def drop() -> None:
        for member in relay.relay._members.values():
            seat = getattr(member.session, "seat", None)
            if seat is not None and seat.id == member_id:
                member.conn.transport.abort()

    relay.call(drop)


class Demo:
    """The output."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()

    def show(self, who: str, trigger: str, text: str = "") -> None:
        elapsed = time.monotonic() - self.start
        self.out.write(f"{elapsed:6.3f}s  {who:<4} {trigger:<18} {text}".rstrip() + "\n")
        self.out.flush()

    def board(self, board: str) -> None:
        for row in range(3):
            self.out.write(" " * 14 + " ".join(board[row * 3 : row * 3 + 3]) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run_demo(*, seed: int = 7, timeout: float = 30.0, out: TextIO | None = None) -> int:
    """Run the demo; return 0 if the game was played out as it should, 1 otherwise."""
    demo = Demo(out if out is not None else sys.stdout)
    deadline = time.monotonic() + timeout
    TicTacToe.tables.clear()
    with serve(games={"/ttt/*": TicTacToe}, close_timeout=2.0) as relay:
        url = relay.url + PATH
        demo.say(
            f"wsloop demo: a game server on {relay.url}; the room code (a GameRoom) holds the "
            f"board and the rules.\nAda and Bob quick-match at {PATH}; one game loop polls both; "
            "each line is a trigger firing\n"
        )
        ada = Player("Ada", random.Random(seed), demo)
        bob = Player("Bob", random.Random(seed + 1), demo)
        players = (ada, bob)
        ada.room.connect(url)
        bob_connected = tried_illegal = False
        while not all(p.closed for p in players):
            now = time.monotonic()
            if now > deadline:
                demo.say(f"\nwsloop demo: FAILED: not finished after {timeout:g} s")
                for player in players:
                    player.ws.close(1000, "demo timed out")
                    player.ws.wait_closed(3.0)
                return 1
            for player in players:  # the frame: poll every connection...
                player.ws.poll()
            for player in players:  # ...then update the game
                player.update(now, relay)
            if not bob_connected and ada.mark:
                bob.room.connect(url)  # Bob arrives once Ada is seated
                bob_connected = True
            if not tried_illegal and bob.mark and bob.state["turn"] != bob.mark:
                tried_illegal = True
                number = bob.state["moves"] + 1  # out of turn: the server must refuse it
                bob.room.send(bytes([number, 0]))
                bob.say("send", f"[{number:02x}00] move {number} on 0, out of turn (on purpose)")
            for player in players:
                if player.state["result"] and player.ws.is_open:
                    player.ws.close(1000, "good game")
            time.sleep(FRAME)
    return report(demo, ada, bob)


def report(demo: Demo, ada: Player, bob: Player) -> int:
    """Say how it went; 0 if everything happened as it should."""
    table = TicTacToe.tables[0] if TicTacToe.tables else None
    result = ada.state["result"]
    problems = [f"{p.name}: {e}" for p in (ada, bob) for e in p.errors]
    for player in (ada, bob):
        closed = player.closed
        if closed is None or not closed.was_clean or closed.code != 1000:
            problems.append(f"{player.name} did not close cleanly ({closed})")
    if not result or bob.state["result"] != result:
        problems.append("the game did not finish")
    if table is None or table.applied != ada.state["moves"] or table.refused != 1:
        problems.append("the server did not see every move exactly once and one refusal")
    if not bob.refusals:
        problems.append("the out-of-turn move was not refused")
    if bob.drops < 1 or len(set(bob.member_ids)) != 1 or len(bob.member_ids) < 2:
        problems.append(f"Bob's seat did not survive the cut ({bob.member_ids})")
    if problems:
        demo.say("\nwsloop demo: FAILED: " + "; ".join(problems))
        return 1
    outcome = "a draw" if result == "draw" else f"{result} wins"
    demo.say(
        f"\nwsloop demo: {outcome} in {ada.state['moves']} moves, decided by the server; the "
        "out-of-turn move was refused; Bob's cut lost nothing (he resumed as "
        f"{bob.member_ids[0]}, each move reached the room once); both connections closed "
        "cleanly.\nTry it yourself: docs/games.md, and `wsloop serve --game "
        "'/ttt/*=tictactoe_room:TicTacToe'` in examples/game."
    )
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    return run_demo(seed=args.seed, timeout=args.timeout)


def add_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    """Add ``wsloop demo`` and its options to the subcommands."""
    demo = commands.add_parser(
        "demo",
        help="watch two clients play tic-tac-toe through an embedded relay (offline)",
        description="Start a relay on a free local port, connect two scripted wsloop "
        "clients that play a game of tic-tac-toe in a room, print the triggers as they fire, "
        "close cleanly. Exits 0 if everything went as it should.",
    )
    demo.add_argument("--seed", type=int, default=7, help="the players' random seed")
    demo.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="fail if the demo takes longer (default 30)",
    )
    demo.set_defaults(run=_run_demo)
