"""A console chat on the thread driver: triggers without a single poll() call.

Run it against the relay (``wsloop serve``) or any echo server::

    python examples/thread/console_chat.py ws://127.0.0.1:8765/room/lobby

Type a line and press Enter to send it; ``/quit`` or the end of the input
(Ctrl-D) leaves. Lines can also come from a pipe::

    printf 'hello\\nworld\\n' | python examples/thread/console_chat.py

The main thread spends its life blocked reading standard input, so it could
never call ``poll()``. With ``driver="thread"``, wsloop's I/O runs on a
background thread and the triggers fire there, as soon as a message arrives.
Two consequences, visible below:

* a handler runs on the I/O thread, at the same time as the main thread: it
  shares data with it only through something thread-safe (here, a lock
  around printing), and it returns quickly, since the next message waits
  for it;
* ``send_text()`` and ``close()`` are safe from any thread, the main thread
  included, and never wait for the network.
"""

from __future__ import annotations

import argparse
import sys
import threading

import wsloop

DEFAULT_URL = "ws://127.0.0.1:8765/room/lobby"

_print_lock = threading.Lock()


def say(line: str) -> None:
    """Print one whole line, whichever thread calls."""
    with _print_lock:
        print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    args = parser.parse_args(argv)

    ws = wsloop.WebSocket(driver="thread")

    # The triggers: they run on the I/O thread.

    @ws.event
    def on_opened(event: wsloop.Opened) -> None:
        thread = threading.current_thread().name
        say(f"* connected to {args.url} (handlers run on thread {thread!r})")

    @ws.event
    def on_text_message(event: wsloop.TextMessage) -> None:
        say(f"< {event.text}")

    @ws.event
    def on_binary_message(event: wsloop.BinaryMessage) -> None:
        say(f"< [{len(event.data)} bytes of binary data] {event.data[:16].hex(' ')}")

    @ws.event
    def on_error(event: wsloop.Error) -> None:
        say(f"! {event.message}")

    @ws.event
    def on_closed(event: wsloop.Closed) -> None:
        reason = f" {event.reason}" if event.reason else ""
        say(f"* closed: {event.code}{reason}")

    # The main thread: connect, then read lines and send them.

    ws.connect(args.url)
    if not ws.wait_open(timeout=30):
        return 1  # on_error and on_closed have said why

    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if text == "/quit":
            break
        if text and not ws.send_text(text):
            say("! not connected: the server has closed the connection")
            break

    ws.close()
    # Waits for On closed; the I/O thread has ended when it returns True.
    ws.wait_closed(timeout=10)
    return 0 if ws.close_code == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
