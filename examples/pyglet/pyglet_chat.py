"""A chat room in a pyglet window: ``pyglet.clock`` calls ``ws.poll()`` every frame.

Run it against the relay (``wsloop serve``) or any echo server::

    pip install "pyglet>=2.1"
    python examples/pyglet/pyglet_chat.py ws://127.0.0.1:8765/room/lobby

Type and press Enter to send, F5 to reconnect, Esc to leave. Start two
windows on the same room of the relay to talk to yourself.

pyglet runs its own loop (``pyglet.app.run()``); the place for per-frame
work is a function scheduled with ``pyglet.clock.schedule_interval``. That
function calls ``ws.poll()``, which never blocks: the name lookup, the
handshake, reading, writing and the triggers all happen there, on pyglet's
thread, so the triggers may change the window's labels freely. No threads.

``--self-test`` types two lines into the window, waits for their echoes in
the chat log, closes the window, prints a JSON report and exits 0 on success.
It needs a server that echoes messages back and an X display (Xvfb will do).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pyglet
from pyglet.window import key

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


class ChatWindow(pyglet.window.Window):
    """The window: a status line, the chat log, the line being typed."""

    def __init__(self, url: str) -> None:
        super().__init__(WIDTH, HEIGHT, caption="wsloop chat (pyglet)")
        self.url = url
        self.log: list[str] = []
        self.typing = ""
        self.frames = 0
        self.polls = 0
        self._leave_by: float | None = None

        self.batch = pyglet.graphics.Batch()
        self.status = pyglet.text.Label("", x=8, y=HEIGHT - 20, batch=self.batch)
        self.lines = [
            pyglet.text.Label("", x=8, y=HEIGHT - 48 - 22 * row, font_size=11, batch=self.batch)
            for row in range(ROWS)
        ]
        self.prompt = pyglet.text.Label("say: ", x=8, y=10, batch=self.batch)

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
                pyglet.app.exit()

        self.ws.connect(url)
        pyglet.clock.schedule_interval(self.update, 1.0 / FPS)

    # The per-frame hook.

    def update(self, dt: float) -> None:
        self.polls += 1
        self.ws.poll()  # I/O and triggers, now; never blocks
        if self._leave_by is not None and time.monotonic() > self._leave_by:
            pyglet.app.exit()  # the server never answered the close

    def leave(self) -> None:
        """Close politely, then stop the loop once On closed has fired."""
        if self.ws.is_closed:
            pyglet.app.exit()
            return
        if self._leave_by is None:
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

    # pyglet's window events.

    def on_text(self, text: str) -> None:
        if text.isprintable():
            self.typing += text

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        if symbol in (key.RETURN, key.ENTER):
            self.send_typed()
        elif symbol == key.BACKSPACE:
            self.typing = self.typing[:-1]
        elif symbol == key.ESCAPE:
            self.leave()
        elif symbol == key.F5 and self.ws.is_closed:
            self.ws.connect(self.url)
        return True  # Esc must not close the window before the close handshake

    def on_close(self) -> None:
        self.leave()

    def on_draw(self) -> None:
        self.frames += 1
        if self.ws.is_open:
            self.status.text, self.status.color = f"open: {self.url}", (90, 200, 120, 255)
        elif self.ws.is_connecting:
            self.status.text, self.status.color = f"connecting to {self.url}…", (230, 200, 80, 255)
        elif self.ws.is_closed:
            self.status.text = f"closed ({self.ws.close_code}) - F5 reconnects"
            self.status.color = (230, 90, 90, 255)
        else:
            self.status.text, self.status.color = "closing…", (230, 200, 80, 255)
        shown = self.log[-ROWS:]
        for row, label in enumerate(self.lines):
            label.text = shown[row] if row < len(shown) else ""
        self.prompt.text = f"say: {self.typing}_"
        self.clear()
        self.batch.draw()


def self_test(window: ChatWindow, report: dict[str, object]) -> None:
    """``--self-test``: a scheduled checker that types, waits for echoes, leaves."""
    typed = ["hello from pyglet", "ünïcödé ✓ 🐍"]
    deadline = time.monotonic() + 30.0
    state = {"step": 0}

    def received() -> list[str]:
        return [line[2:] for line in window.log if line.startswith("< ")]

    def check(dt: float) -> None:
        if time.monotonic() > deadline:
            report["error"] = "timed out"
            pyglet.app.exit()
        elif state["step"] == 0 and window.ws.is_open:
            for text in typed:  # what the keyboard would produce: text, then Enter
                window.dispatch_event("on_text", text)
                window.dispatch_event("on_key_press", key.RETURN, 0)
            state["step"] = 1
        elif state["step"] == 0 and window.ws.is_closed:
            report["error"] = f"could not connect: {window.ws.error_msg}"
            pyglet.app.exit()
        elif state["step"] == 1 and all(text in received() for text in typed):
            state["step"] = 2
            window.dispatch_event("on_close")  # closes, then leaves the loop

    pyglet.clock.schedule_interval(check, 1.0 / FPS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument("--self-test", action="store_true", help="run the scripted check")
    args = parser.parse_args(argv)

    window = ChatWindow(args.url)
    report: dict[str, object] = {"ok": False, "error": None}
    if args.self_test:
        self_test(window, report)
    pyglet.app.run(1.0 / FPS)
    window.close()
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
