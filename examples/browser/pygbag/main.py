"""Dots: a tiny multiplayer pygame game for pygbag, the same code on the desktop.

Every player is a dot; arrow keys move yours. Positions go through the relay
(``wsloop serve``) to everyone in the room as JSON text messages. The game
loop is the one pygbag wants (``async``, ``await asyncio.sleep(0)`` once per
frame) and calls ``ws.poll()`` once per frame, which fires the triggers of
whatever arrived. On the desktop the same loop runs under ``asyncio.run``.

Desktop::

    pip install pygame-ce
    python -m wsloop serve --port 8765
    python examples/browser/pygbag/main.py ws://127.0.0.1:8765/dots

Browser (pygbag): copy the ``wsloop`` package folder (``src/wsloop``) next to
this file, then ``pygbag examples/browser/pygbag``. In the page,
``sys.platform == "emscripten"`` and wsloop talks through the page's
JavaScript WebSocket (see docs/browser.md for what is tested there and what
is not). The relay's URL defaults to port 8765 of the page's host.

``--frames N`` stops after N frames and prints a JSON report (for tests,
with ``SDL_VIDEODRIVER=dummy``); ``--bot`` moves the dot by itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sys

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

import wsloop

SIZE = (480, 320)
SPEED = 4
COLORS = [(230, 90, 90), (90, 160, 230), (110, 200, 120), (230, 180, 70), (180, 110, 220)]


def default_url() -> str:
    if sys.platform == "emscripten":  # pygbag: the relay on the page's host
        import platform

        host = str(platform.window.location.hostname) or "127.0.0.1"  # type: ignore[attr-defined]
        return f"ws://{host}:8765/dots"
    return "ws://127.0.0.1:8765/dots"


class Game:
    def __init__(self, url: str, *, bot: bool) -> None:
        self.url = url
        self.bot = bot
        self.me = f"p{random.randint(1000, 9999)}"
        self.x, self.y = SIZE[0] // 2, SIZE[1] // 2
        self.others: dict[str, tuple[int, int]] = {}
        self.status = "connecting…"
        self.received = 0
        self.ws = wsloop.WebSocket()
        self.ws.on_opened = self.on_opened
        self.ws.on_text_message = self.on_text_message
        self.ws.on_error = lambda event: setattr(self, "status", event.message)
        self.ws.on_closed = self.on_closed
        self.ws.connect(url)

    # Triggers: they run inside ws.poll(), in the game loop.

    def on_opened(self, event: wsloop.Opened) -> None:
        self.status = f"{self.me} in {self.url}"
        self.send_position()

    def on_text_message(self, event: wsloop.TextMessage) -> None:
        try:
            message = json.loads(event.text)
            who, x, y = str(message["id"]), int(message["x"]), int(message["y"])
        except (ValueError, KeyError, TypeError):
            return
        self.received += 1
        if who != self.me:  # an echo server sends ours back
            self.others[who] = (x, y)

    def on_closed(self, event: wsloop.Closed) -> None:
        self.status = f"disconnected ({event.code}); R reconnects"

    def send_position(self) -> None:
        self.ws.send_text(json.dumps({"id": self.me, "x": self.x, "y": self.y}))

    # The frame.

    def update(self, frame: int) -> None:
        dx = dy = 0
        if self.bot:
            dx = round(SPEED * math.cos(frame / 10))
            dy = round(SPEED * math.sin(frame / 10))
        else:
            keys = pygame.key.get_pressed()
            dx = (keys[pygame.K_RIGHT] - keys[pygame.K_LEFT]) * SPEED
            dy = (keys[pygame.K_DOWN] - keys[pygame.K_UP]) * SPEED
        if dx or dy:
            self.x = max(0, min(SIZE[0], self.x + dx))
            self.y = max(0, min(SIZE[1], self.y + dy))
            self.send_position()  # False (nothing sent) while not connected

    def draw(self, screen: pygame.Surface, font: pygame.font.Font) -> None:
        screen.fill((24, 28, 38))
        for i, (who, (x, y)) in enumerate(sorted(self.others.items())):
            pygame.draw.circle(screen, COLORS[i % len(COLORS)], (x, y), 10)
            screen.blit(font.render(who, True, (200, 200, 200)), (x + 12, y - 8))
        pygame.draw.circle(screen, (255, 255, 255), (self.x, self.y), 12)
        screen.blit(font.render(self.status, True, (200, 200, 200)), (8, 8))


async def main(url: str, *, frames: int | None = None, bot: bool = False) -> dict[str, object]:
    pygame.init()
    screen = pygame.display.set_mode(SIZE)
    pygame.display.set_caption("wsloop dots")
    font = pygame.font.Font(None, 20)
    clock = pygame.time.Clock()
    game = Game(url, bot=bot)
    frame = 0
    running = True
    while running and (frames is None or frame < frames):
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (
                event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
            ):
                running = False
            elif event.type == pygame.KEYDOWN and event.key == pygame.K_r and game.ws.is_closed:
                game.ws.connect(url)
        game.ws.poll()  # the triggers of whatever arrived since the last frame
        game.update(frame)
        game.draw(screen, font)
        pygame.display.flip()
        frame += 1
        clock.tick(30)
        await asyncio.sleep(0)  # pygbag: let the browser run (JavaScript events too)
    game.ws.close()
    for _ in range(100):  # let the close finish, still frame by frame
        if game.ws.is_closed:
            break
        game.ws.poll()
        await asyncio.sleep(0.02)
    pygame.quit()
    return {
        "frames": frame,
        "received": game.received,
        "close_code": game.ws.close_code,
        "status": game.status,
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    limit = None
    if "--frames" in args:
        at = args.index("--frames")
        limit = int(args[at + 1])
        del args[at : at + 2]
    bot = "--bot" in args
    if bot:
        args.remove("--bot")
    report = asyncio.run(main(args[0] if args else default_url(), frames=limit, bot=bot))
    if limit is not None:
        print(json.dumps(report))
