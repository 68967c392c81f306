"""An authoritative tic-tac-toe room: the server decides, the clients only ask.

    wsloop serve --game '/ttt/*=tictactoe_room:TicTacToe'      # from this folder
    python tictactoe_room.py                                   # the same, on :8765

Clients join ``ws://127.0.0.1:8765/ttt/`` (quick match: the first table with a free
seat) or ``/ttt/<name>`` with ``wsloop.Room`` (or the room protocol's JSON from a
browser or a Construct event sheet, docs/rooms.md) and send ``{"cell": 0..8}``.

The room tells everyone ``{"board": "X.O......", "turn": "O", ...}`` after each move,
tells a player alone what it did wrong, and ends the game on three in a row, a full
board, a turn clock that runs out, or a player who left for good. A player whose
connection drops keeps its seat for the grace period and is replayed what it missed.
"""

from __future__ import annotations

from wsloop.relay import GameRoom, JoinRefused, Seat

TURN_SECONDS = 30.0
WINS = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


class TicTacToe(GameRoom):
    max_players = 2

    def on_create(self) -> None:
        self.board = ["."] * 9
        self.marks: dict[str, str] = {}  # player id -> "X" or "O"
        self.turn = "X"
        self.result = ""
        self.clock = None

    def on_join(self, player: Seat) -> None:
        if self.result:
            raise JoinRefused("this game is over")
        mark = "O" if "X" in self.marks.values() else "X"
        self.marks[player.id] = mark
        self.send(player, {"you": mark})
        if len(self.marks) == 2:
            self.locked = True  # a full table: quick match looks elsewhere
            self.start_clock()
        self.tell_all()

    def on_message(self, player: Seat, data: object) -> None:
        cell = data.get("cell") if isinstance(data, dict) else None
        problem = self.check(player, cell)
        if problem:
            self.send(player, {"illegal": problem, "cell": cell})
            return
        assert isinstance(cell, int)
        self.board[cell] = self.turn
        line = next((w for w in WINS if {self.board[i] for i in w} == {self.turn}), None)
        if line:
            self.end(f"{self.turn} wins")
        elif "." not in self.board:
            self.end("a draw")
        else:
            self.turn = "O" if self.turn == "X" else "X"
            self.start_clock()
            self.tell_all()

    def check(self, player: Seat, cell: object) -> str:
        if self.result:
            return "the game is over"
        if len(self.marks) < 2:
            return "wait for a second player"
        if self.marks.get(player.id) != self.turn:
            return f"not your turn: {self.turn} plays"
        if not isinstance(cell, int) or not 0 <= cell <= 8:
            return 'send {"cell": 0..8}'
        if self.board[cell] != ".":
            return f"cell {cell} is taken"
        return ""

    def on_drop(self, player: Seat) -> None:
        self.broadcast({"waiting_for": self.marks.get(player.id)})

    def on_leave(self, player: Seat, reason: str) -> None:
        mark = self.marks.pop(player.id, None)
        if mark and not self.result and len(self.marks) == 1:
            self.end(f"{'O' if mark == 'X' else 'X'} wins: {mark} {reason}")

    def start_clock(self) -> None:
        if self.clock is not None:
            self.clock.cancel()
        self.clock = self.call_later(TURN_SECONDS, self.out_of_time, self.turn)

    def out_of_time(self, mark: str) -> None:
        if not self.result and self.turn == mark:
            self.end(f"{'O' if mark == 'X' else 'X'} wins: {mark} ran out of time")

    def end(self, result: str) -> None:
        self.result = result
        if self.clock is not None:
            self.clock.cancel()
        self.tell_all()

    def tell_all(self) -> None:
        self.broadcast(
            {
                "board": "".join(self.board),
                "turn": self.turn,
                "result": self.result,
                "players": len(self.marks),
            }
        )


if __name__ == "__main__":
    import asyncio

    from wsloop.relay import Relay

    async def main() -> None:
        async with Relay("127.0.0.1", 8765, games={"/ttt/*": TicTacToe}) as relay:
            print(f"tic-tac-toe on {relay.url}/ttt/ (quick match); Ctrl-C stops")
            await relay.wait_closed()

    asyncio.run(main())
