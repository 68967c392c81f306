"""A moderated chat room with history: the room decides what is said.

    wsloop serve --game '/chat/*=chat_room:Chat'          # from this folder

Members join ``ws://127.0.0.1:8765/chat/<room>`` with ``wsloop.Room`` (see
examples/poll/room_chat.py) and send text. The room broadcasts each line as
``{"from": name, "text": ...}`` after checking it: too long, too fast, or a word
from the block list, and only the sender hears why. A late joiner is replayed the
room's recent lines (the room protocol's history); ``/who`` answers privately.
"""

from __future__ import annotations

import time

from wsloop.relay import GameRoom, Seat

BLOCKED = {"spam", "cheat"}
MAX_TEXT = 300
MIN_GAP = 0.5  # seconds between two lines of one member


class Chat(GameRoom):
    def on_create(self) -> None:
        self.last_line: dict[str, float] = {}

    def on_join(self, player: Seat) -> None:
        self.broadcast({"from": "room", "text": f"{player.name or player.id} joined"})

    def on_message(self, player: Seat, data: object) -> None:
        text = data if isinstance(data, str) else ""
        if text == "/who":
            names = ", ".join(p.name or p.id for p in self.players)
            self.send(player, {"from": "room", "text": f"here: {names}"})
            return
        problem = self.check(player, text)
        if problem:
            self.send(player, {"from": "room", "text": f"not sent: {problem}"})
            return
        self.last_line[player.id] = time.monotonic()
        self.broadcast({"from": player.name or player.id, "text": text})

    def check(self, player: Seat, text: str) -> str:
        if not text.strip():
            return "send a line of text"
        if len(text) > MAX_TEXT:
            return f"longer than {MAX_TEXT} characters"
        if time.monotonic() - self.last_line.get(player.id, 0.0) < MIN_GAP:
            return "slow down"
        if BLOCKED & set(text.lower().split()):
            return "that word is not allowed here"
        return ""

    def on_leave(self, player: Seat, reason: str) -> None:
        self.last_line.pop(player.id, None)
        self.broadcast({"from": "room", "text": f"{player.name or player.id} {reason}"})
