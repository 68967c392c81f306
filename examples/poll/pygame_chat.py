"""A chat room in a pygame window: the game loop calls ``ws.poll()`` once a frame.

Run it against the relay (``wsloop serve``) or any echo server::

    pip install pygame-ce
    python examples/poll/pygame_chat.py ws://127.0.0.1:8765/room/lobby

Type and press Enter to send, F5 to reconnect, Esc to leave. Start two
windows on the same room of the relay to talk to yourself.

There are no threads and no callbacks from elsewhere: ``connect()`` returns
at once, and everything (the name lookup, the handshake, reading, writing
what did not fit in the socket, the triggers) happens inside ``ws.poll()``,
which never blocks. The triggers fire there, in the game loop, between
handling input and drawing the frame, so they may change game state freely.

``--self-test`` types two lines into the window, waits for their echoes in
the chat log, closes the window, prints a JSON report and exits 0 on success.
It needs a server that echoes messages back; ``SDL_VIDEODRIVER=dummy`` runs it
without a display.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

import wsloop

DEFAULT_URL = "ws://127.0.0.1:8765/room/lobby"
FPS = 30
SIZE = (640, 480)

WHITE = (235, 235, 235)
GREY = (140, 140, 140)
GREEN = (90, 200, 120)
YELLOW = (230, 200, 80)
RED = (230, 90, 90)
BLUE = (120, 170, 250)
BACKGROUND = (24, 26, 32)


def shorten(text: str, limit: int = 200) -> str:
    """The line the log shows for a message: long ones are cut."""
    if len(text) > limit:
        return f"{text[:60]}… [{len(text)} characters]"
    return text


class ChatRoom:
    """The game state: the chat log, the line being typed, the connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.log: list[str] = []
        """What the chat log shows, oldest first."""
        self.typing = ""
        self.running = True
        self.frames = 0
        self.polls = 0
        self._leave_by: float | None = None

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

    def connect(self) -> None:
        self.ws.connect(self.url)

    def leave(self) -> None:
        """Close politely, then stop the loop once On closed has fired."""
        if self.ws.is_closed:
            self.running = False
            return
        self.ws.close(1000, "window closed")
        self._leave_by = time.monotonic() + 3.0  # in case the server never answers

    # One frame.

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.leave()
        elif event.type == pygame.TEXTINPUT:
            self.typing += event.text
        elif event.type == pygame.KEYDOWN:
            if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                self.send_typed()
            elif event.key == pygame.K_BACKSPACE:
                self.typing = self.typing[:-1]
            elif event.key == pygame.K_ESCAPE:
                self.leave()
            elif event.key == pygame.K_F5 and self.ws.is_closed:
                self.connect()

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

    def update(self) -> None:
        # The one call that makes the WebSocket work: I/O and triggers, now.
        self.polls += 1
        self.ws.poll()
        if self._leave_by is not None and time.monotonic() > self._leave_by:
            self.running = False

    def draw(self, screen: pygame.Surface, font: pygame.font.Font) -> None:
        screen.fill(BACKGROUND)
        line_height = font.get_linesize()
        width, height = screen.get_size()

        if self.ws.is_open:
            status, color = f"open: {self.url}", GREEN
        elif self.ws.is_connecting:
            status, color = f"connecting to {self.url}…", YELLOW
        elif self.ws.is_closed:
            status, color = f"closed ({self.ws.close_code}) - F5 reconnects", RED
        else:
            status, color = "closing…", YELLOW
        screen.blit(font.render(status, True, color), (8, 6))

        bottom = height - line_height - 10
        rows = max(1, (bottom - line_height - 16) // line_height)
        y = line_height + 12
        for line in self.log[-rows:]:
            color = {"<": WHITE, ">": BLUE, "!": RED}.get(line[:1], GREY)
            screen.blit(font.render(line, True, color), (8, y))
            y += line_height

        pygame.draw.line(screen, GREY, (0, bottom - 4), (width, bottom - 4))
        cursor = "_" if (self.frames // (FPS // 2)) % 2 == 0 else " "
        screen.blit(font.render(f"say: {self.typing}{cursor}", True, WHITE), (8, bottom))


def self_test(room: ChatRoom):  # a generator of steps
    """``--self-test``: yields a condition the game loop checks once a frame."""

    def received() -> list[str]:
        return [line[2:] for line in room.log if line.startswith("< ")]

    yield lambda: room.ws.is_open or room.ws.is_closed
    if not room.ws.is_open:
        raise ConnectionError(room.ws.error_msg)
    typed = ["hello from pygame", "ünïcödé ✓ 🐍"]
    for text in typed:
        # What the keyboard would produce: text input, then Enter.
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=text))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, mod=0))
    yield lambda: all(text in received() for text in typed)
    pygame.event.post(pygame.event.Event(pygame.QUIT))  # closes, then leaves the loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument("--self-test", action="store_true", help="run the scripted check")
    args = parser.parse_args(argv)

    pygame.init()
    screen = pygame.display.set_mode(SIZE)
    pygame.display.set_caption("wsloop chat")
    font = pygame.font.Font(None, 22)
    clock = pygame.time.Clock()

    room = ChatRoom(args.url)
    room.connect()

    report: dict[str, object] = {"ok": False}
    script = self_test(room) if args.self_test else None
    waiting_for = None
    deadline = time.monotonic() + 30.0
    error: str | None = None

    while room.running:
        for event in pygame.event.get():
            room.handle(event)
        room.update()  # ws.poll(), once per frame
        room.draw(screen, font)
        pygame.display.flip()
        room.frames += 1
        clock.tick(FPS)

        if script is not None and (waiting_for is None or waiting_for()):
            try:
                waiting_for = next(script)
            except StopIteration:
                script = None
            except ConnectionError as exc:
                error = f"could not connect: {exc}"
                break
        if script is not None and time.monotonic() > deadline:
            error = "timed out"
            break

    pygame.quit()
    if not args.self_test:
        return 0
    ok = error is None and script is None and room.ws.is_closed
    report.update(
        ok=ok,
        error=error,
        log=room.log,
        close_code=room.ws.close_code,
        frames=room.frames,
        polls=room.polls,
    )
    print("SELF-TEST " + json.dumps(report), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
