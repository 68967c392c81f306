"""An AsyncWebSocket bot and a web page, sharing one asyncio event loop.

The bot joins a room on a relay (``wsloop serve``) and keeps the last
messages; a small HTTP server (asyncio's own streams, standing in for any
asyncio web framework) shows them at ``http://127.0.0.1:8080/``. Neither
blocks the other: they are two tasks on the same loop.

    python examples/asyncio/status_page.py ws://127.0.0.1:8765/room/lobby
    python examples/asyncio/status_page.py URL --http-port 0 --say hello --exit-after 1

With ``--exit-after N`` it prints the page's port on the first line, sends
``--say`` texts once open, and exits 0 once it has received N messages and
then served the page (what the test does).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import html
import sys

import wsloop


class StatusPage:
    """The last messages of a room, served as a web page."""

    def __init__(self, keep: int = 20, wanted: int = 0) -> None:
        self.messages: collections.deque[str] = collections.deque(maxlen=keep)
        self.state = "connecting"
        self.wanted = wanted
        self.served = asyncio.Event()
        """Set once the page was served showing at least ``wanted`` messages."""

    def render(self) -> bytes:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in self.messages)
        body = (
            "<!doctype html><meta charset=utf-8><title>room</title>"
            f"<p>connection: {html.escape(self.state)}</p><ul>{items}</ul>"
        )
        return body.encode()

    async def handle_http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")  # any request gets the page
        body = self.render()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()
        if self.wanted and len(self.messages) >= self.wanted:
            self.served.set()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8765/room/lobby")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--say", action="append", default=[])
    parser.add_argument("--exit-after", type=int, default=0)
    args = parser.parse_args(argv)

    page = StatusPage(wanted=args.exit_after)
    http = await asyncio.start_server(page.handle_http, "127.0.0.1", args.http_port)
    print(http.sockets[0].getsockname()[1], flush=True)

    ws = wsloop.AsyncWebSocket(reconnect=True)

    @ws.event
    def on_text_message(event: wsloop.TextMessage) -> None:
        page.messages.append(event.text)

    @ws.event
    def on_reconnecting(event: wsloop.Reconnecting) -> None:
        page.state = f"reconnecting (attempt {event.attempt})"

    @ws.event
    def on_opened(event: wsloop.Opened) -> None:
        page.state = "open"

    async with http, ws:
        try:
            await ws.connect(args.url)
        except wsloop.WebSocketError as exc:
            print(f"could not connect: {exc}", file=sys.stderr)
            return 1
        for text in args.say:
            ws.send_text(text)
        if args.exit_after:
            await page.served.wait()  # the page was seen with the messages on it
            return 0
        await ws.wait_closed()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
