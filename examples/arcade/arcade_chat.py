"""A chat room in an arcade window: ``on_update`` calls ``ws.poll()`` every frame.

Run it against the relay (``wsloop serve``) or any echo server::

    pip install "arcade>=3.0"
    python examples/arcade/arcade_chat.py ws://127.0.0.1:8765/room/lobby

Type and press Enter to send, F5 to reconnect, Esc to leave. Start two
windows on the same room of the relay to talk to yourself.

arcade (3.x, built on pyglet 2.1) calls ``Window.on_update(delta_time)``
once a frame before ``on_draw``: that is where the game's state advances,
and where ``ws.poll()`` belongs. It never blocks; the name lookup, the
handshake, reading, writing and the triggers all happen inside it, on
arcade's thread, so the triggers may change the game state freely. No threads.

``--self-test`` types two lines into the window, waits for their echoes in
the chat log, closes the window, prints a JSON report and exits 0 on success.
It needs a server that echoes messages back and an X display with OpenGL 3.3
(Xvfb with Mesa will do).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import arcade

import wsloop

DEFAULT_URL = "ws://127.0.0.1:8765/room/lobby"
FPS = 30.0
WIDTH, HEIGHT = 640, 480
ROWS = 18


def shorten(text: str, limit: int = 200) -> str:
    """The line the log shows for a message: long ones are cut."""
    if len(text) > limit:
        return f"{text[:60]}… [{len(text)} characters]"
    return text


class ChatWindow(arcade.Window):
    """The window: a status line, the chat log, the line being typed."""

    def __init__(self, url: str) -> None:
        super().__init__(
            WIDTH, HEIGHT, "wsloop chat (arcade)", update_rate=1.0 / FPS, draw_rate=1.0 / FPS
        )
        self.background_color = (24, 26, 32, 255)
        self.url = url
        self.log: list[str] = []
        self.typing = ""
        self.frames = 0
        self.polls = 0
        self.running = True
        self.checker = None  # the self-test's per-frame step, if any
        self._leave_by: float | None = None

        self.status = arcade.Text("", 8, HEIGHT - 20, font_size=12)
        self.lines = [
            arcade.Text("", 8, HEIGHT - 48 - 22 * row, font_size=11) for row in range(ROWS)
        ]
        self.prompt = arcade.Text("say: ", 8, 10, font_size=12)

        self.ws = wsloop.WebSocket()

        @self.ws.event
        def on_opened(event: wsloop.Opened) -> None:
            self.log.append(f"* connected to {self.url}")

        @self.ws.event
        def on_text_message(event: wsloop.TextMessage) -> None:
            self.log.append(f"< {shorten(event.text)}")

        @self.ws.event
        def on_binary_message(event: wsloop.BinaryMessage) -> None:
            self.log.append(f"< [{len(event.data)} bytes of binary data]")

        @self.ws.event
        def on_error(event: wsloop.Error) -> None:
            self.log.append(f"! {event.message}")

        @self.ws.event
        def on_closed(event: wsloop.Closed) -> None:
            reason = f" {event.reason}" if event.reason else ""
            self.log.append(f"* closed: {event.code}{reason}")
            if self._leave_by is not None:
                self.running = False

        self.ws.connect(url)

    # arcade's per-frame hook.

    def on_update(self, delta_time: float) -> None:
        self.polls += 1
        self.ws.poll()  # I/O and triggers, now; never blocks
        if self.checker is not None:
            self.checker()
        if self._leave_by is not None and time.monotonic() > self._leave_by:
            self.running = False  # the server never answered the close
        if not self.running:
            arcade.exit()

    def leave(self) -> None:
        """Close politely, then stop the loop once On closed has fired."""
        if self.ws.is_closed:
            self.running = False
        elif self._leave_by is None:
            self.ws.close(1000, "window closed")
            self._leave_by = time.monotonic() + 3.0

    def send_typed(self) -> None:
        text, self.typing = self.typing, ""
        if not text:
            return
        if self.ws.send_text(text):  # never blocks; False when not open
            self.log.append(f"> {shorten(text)}")
        elif self.ws.is_open:
            self.log.append("! not sent: too much is waiting to be written already")
        else:
            self.log.append("! not sent: not connected (F5 reconnects)")

    # Window events.

    def on_text(self, text: str) -> None:
        if text.isprintable():
            self.typing += text

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        if symbol in (arcade.key.RETURN, arcade.key.ENTER):
            self.send_typed()
        elif symbol == arcade.key.BACKSPACE:
            self.typing = self.typing[:-1]
        elif symbol == arcade.key.ESCAPE:
            self.leave()
        elif symbol == arcade.key.F5 and self.ws.is_closed:
            self.ws.connect(self.url)
        return True

    def on_close(self) -> None:
        self.leave()  # the loop ends once the close handshake is done

    def on_draw(self) -> None:
        self.frames += 1
        self.clear()
        if self.ws.is_open:
            self.status.text, self.status.color = f"open: {self.url}", (90, 200, 120, 255)
        elif self.ws.is_connecting:
            self.status.text, self.status.color = f"connecting to {self.url}…", (230, 200, 80, 255)
        elif self.ws.is_closed:
            self.status.text = f"closed ({self.ws.close_code}) - F5 reconnects"
            self.status.color = (230, 90, 90, 255)
        else:
            self.status.text, self.status.color = "closing…", (230, 200, 80, 255)
        self.status.draw()
        shown = self.log[-ROWS:]
        for row, label in enumerate(self.lines):
            label.text = shown[row] if row < len(shown) else ""
            label.draw()
        self.prompt.text = f"say: {self.typing}_"
        self.prompt.draw()


def self_test(window: ChatWindow, report: dict[str, object]) -> None:
    """``--self-test``: a per-frame checker that types, waits for echoes, leaves."""
    typed = ["hello from arcade", "ünïcödé ✓ 🐍"]
    deadline = time.monotonic() + 30.0
    state = {"step": 0}

    def received() -> list[str]:
        return [line[2:] for line in window.log if line.startswith("< ")]

    def check() -> None:
        if time.monotonic() > deadline:
            report["error"] = "timed out"
            window.running = False
        elif state["step"] == 0 and window.ws.is_open:
            for text in typed:  # what the keyboard would produce: text, then Enter
                window.dispatch_event("on_text", text)
                window.dispatch_event("on_key_press", arcade.key.RETURN, 0)
            state["step"] = 1
        elif state["step"] == 0 and window.ws.is_closed:
            report["error"] = f"could not connect: {window.ws.error_msg}"
            window.running = False
        elif state["step"] == 1 and all(text in received() for text in typed):
            state["step"] = 2
            window.dispatch_event("on_close")  # closes, then leaves the loop

    window.checker = check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument("--self-test", action="store_true", help="run the scripted check")
    args = parser.parse_args(argv)

    window = ChatWindow(args.url)
    report: dict[str, object] = {"ok": False, "error": None}
    if args.self_test:
        self_test(window, report)
    arcade.run()
    if not args.self_test:
        return 0
    ok = report["error"] is None and window.ws.is_closed
    report.update(
        ok=ok,
        log=window.log,
        close_code=window.ws.close_code,
        frames=window.frames,
        polls=window.polls,
    )
    print("SELF-TEST " + json.dumps(report), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
