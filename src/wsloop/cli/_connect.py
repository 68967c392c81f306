"""``wsloop connect URL``: a terminal client on :class:`wsloop.WebSocket`.

Theory of operation
-------------------
The WebSocket (poll driver) is polled on the main thread, in
:meth:`_Client.run`, every 20 ms while stdin is read (100 ms with
``--no-stdin``), and every trigger prints one line through
:class:`~wsloop.cli._render._Printer`. Stdin is read on a daemon thread into a
bounded queue; the main thread takes lines from it only while the connection
is open and less than :data:`_STDIN_HIGH_WATER` bytes wait to be written, so
a fast pipe cannot fill memory. A line is sent as text unless it is a
``/command`` (binary data, ping, close). EOF on stdin closes with 1000 unless
``--wait`` counts messages; ``--timeout`` closes and exits 3; a first Ctrl-C
closes cleanly, a second quits at once.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import queue
import ssl
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .._client import WebSocket
from ._args import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    _header,
    _Parser,
    _positive_int,
    _seconds,
    _size,
)
from ._render import _Printer, escape, preview

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import BinaryMessage, Closed, Error, Opened, TextMessage

__all__ = ["COMMANDS_HELP", "add_parser"]

COMMANDS_HELP = """\
Commands (a line that does not start with / is sent as text):
  /binary HEX        send a binary message given in hex ("/binary 01 ff 7a")
  /base64 DATA       send a binary message given in base64
  /ping [TEXT]       send a ping (the server's pong is not shown)
  /close [CODE [REASON]]
                     close with CODE (1000, or 3000-4999) and REASON, then exit
  /quit              close with 1000 and exit (so does Ctrl-D, or EOF on a pipe)
  /help              this help
  //text             send "/text" (a leading // stands for a literal /)"""


def _expand_url(url: str) -> str:
    """Shorthands: ``:8765/room/x`` is ``ws://127.0.0.1:8765/room/x``, no scheme means ws."""
    if "://" in url:
        return url
    if url.startswith(":"):
        return f"ws://127.0.0.1{url}"
    return f"ws://{url}"


_STDIN_HIGH_WATER = 2**20
"""Bytes waiting to be sent above which stdin is not read further."""


class _Client:
    """One ``wsloop connect`` run: the WebSocket, stdin, the clock, the exit status."""

    def __init__(
        self, ws: WebSocket, args: argparse.Namespace, stdin: TextIO | None, err: TextIO
    ) -> None:
        self.ws = ws
        self.args = args
        self.err = err
        self.printer = _Printer(sys.stdout, args.json)
        self.interactive = stdin is not None and _isatty(stdin)
        self.lines: queue.Queue[str | None] | None = None
        self.stop_reading = threading.Event()
        self.received = 0
        self.closing = False
        self.closed = False
        self.clean = False
        self.error = False
        self.wait_done = False
        self.timed_out = False
        self.stdin_done = stdin is None
        self.url = ""
        ws.on_opened = self.on_opened
        ws.on_text_message = self.on_text_message
        ws.on_binary_message = self.on_binary_message
        ws.on_error = self.on_error
        ws.on_closed = self.on_closed
        if stdin is not None:
            self.lines = queue.Queue(maxsize=1024)
            thread = threading.Thread(
                target=self._read_stdin, args=(stdin,), daemon=True, name="wsloop-stdin"
            )
            thread.start()

    # stdin, on its own thread: the WebSocket is polled on the main thread.

    def _read_stdin(self, stdin: TextIO) -> None:
        lines = self.lines
        assert lines is not None
        raw = getattr(stdin, "buffer", None)
        readline: Callable[[], str]
        if raw is not None:
            readline = lambda: raw.readline().decode("utf-8", "replace")  # noqa: E731
        else:
            readline = stdin.readline
        item: str | None
        while True:
            try:
                line = readline()
            except (OSError, ValueError):
                line = ""
            if line:
                item = line[:-1] if line.endswith("\n") else line
                item = item[:-1] if item.endswith("\r") else item
            else:
                item = None
            while not self.stop_reading.is_set():
                try:
                    lines.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is None or self.stop_reading.is_set():
                return

    def _pump_stdin(self) -> None:
        lines = self.lines
        if lines is None or self.stdin_done or not self.ws.is_open or self.closing:
            return
        while not self.closing:
            if self.ws.buffered_amount > _STDIN_HIGH_WATER:
                return  # let the network catch up before reading more of stdin
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.stdin_done = True
                if self.args.wait is None:
                    self.begin_close(1000, "")
                return
            self.handle_line(line)

    # Lines and commands.

    def note(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"wsloop: {text}", file=self.err, flush=True)

    def _chatty(self, text: str) -> None:
        if self.interactive:
            self.note(text)

    def handle_line(self, line: str) -> None:
        if self.args.raw or not line.startswith("/"):
            self.send_text(line)
        elif line.startswith("//"):
            self.send_text(line[1:])
        else:
            self.command(line[1:])

    def send_text(self, text: str) -> None:
        if not self.ws.send_text(text):
            self._not_sent()

    def _not_sent(self) -> None:
        if self.ws.is_open:
            self.note("not sent: too much is waiting to be written")
        else:
            self.note("not sent: the connection is not open")

    def command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("binary", "hex", "b"):
            try:
                data = bytes.fromhex(rest)
            except ValueError:
                self.note(f"/binary takes hex digits, like '/binary 01 ff 7a', not {rest!r}")
                return
            self._send_binary(data)
        elif name in ("base64", "b64"):
            try:
                data = base64.b64decode(rest, validate=True)
            except (binascii.Error, ValueError):
                self.note(f"/base64 takes base64 data, not {rest!r}")
                return
            self._send_binary(data)
        elif name == "ping":
            payload = rest.encode()
            if len(payload) > 125:
                self.note("a ping carries at most 125 bytes")
            elif self.ws.ping(payload):
                self._chatty("ping sent")
            else:
                self.note("not sent: the connection is not open")
        elif name == "close":
            code_text, _, reason = rest.partition(" ")
            try:
                code = int(code_text) if code_text else 1000
                self.begin_close(code, reason.strip())
            except ValueError as exc:
                self.note(f"/close: {exc}")
        elif name in ("quit", "exit", "q"):
            self.begin_close(1000, "")
        elif name in ("help", "?", "h"):
            with contextlib.suppress(OSError, ValueError):
                print(COMMANDS_HELP, file=self.err, flush=True)
        else:
            self.note(f"unknown command /{name}; /help lists them (// sends a leading /)")

    def _send_binary(self, data: bytes) -> None:
        if self.ws.send_binary(data):
            self._chatty(f"sent {preview(data)}")
        else:
            self._not_sent()

    def begin_close(self, code: int, reason: str) -> None:
        """Close (validated like the browser's ``close()``: ValueError if wrong)."""
        if self.closing:
            return
        self.ws.close(code, reason)
        self.closing = True

    # The triggers.

    def on_opened(self, event: Opened) -> None:
        protocol = event.subprotocol
        extra = []
        if protocol:
            extra.append(f"protocol={protocol}")
        if event.extensions:
            extra.append("extensions=" + ",".join(event.extensions))
        self.printer.emit(
            "opened",
            " ".join([escape(self.url), *extra]),
            url=self.url,
            protocol=protocol,
            extensions=list(event.extensions),
        )
        for line in self.args.send:
            if self.closing:
                break
            self.handle_line(line)

    def on_text_message(self, event: TextMessage) -> None:
        self.printer.emit("text", escape(event.text), text=event.text)
        self._count()

    def on_binary_message(self, event: BinaryMessage) -> None:
        data = event.data
        self.printer.emit(
            "binary", preview(data), size=len(data), base64=base64.b64encode(data).decode()
        )
        self._count()

    def on_error(self, event: Error) -> None:
        self.error = True
        self.printer.emit("error", escape(event.message), message=event.message)

    def on_closed(self, event: Closed) -> None:
        self.closed = True
        self.clean = event.was_clean
        how = "clean" if event.was_clean else "not clean"
        reason = f" {escape(event.reason)}" if event.reason else ""
        text = f"{event.code}{reason} ({how})"
        self.printer.emit(
            "closed", text, code=event.code, reason=event.reason, clean=event.was_clean
        )

    def _count(self) -> None:
        self.received += 1
        wait = self.args.wait
        if wait is not None and self.received >= wait and not self.wait_done:
            self.wait_done = True
            self.begin_close(1000, "")

    # The loop.

    def run(self, url: str) -> int:
        self.url = url
        args = self.args
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        give_up: float | None = None
        interrupted = False
        if self.interactive:
            self.note(f"connecting to {url}; type lines to send them, /help for commands")
        step = 0.02 if self.lines is not None else 0.1
        try:
            while not self.closed:
                try:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline and not self.timed_out:
                        self.timed_out = True
                        self.note(f"timed out after {args.timeout:g} s")
                        self.begin_close(1000, "")
                        give_up = now + 2.0
                    if give_up is not None and now >= give_up:
                        break
                    wait = step
                    if deadline is not None and not self.timed_out:
                        wait = max(0.0, min(wait, deadline - now))
                    self.ws.poll(wait)
                    self._pump_stdin()
                    if self.printer.broken and not self.closing:
                        self.begin_close(1000, "")
                except KeyboardInterrupt:
                    if interrupted or self.closing:
                        return 130
                    interrupted = True
                    self.note("interrupted: closing (Ctrl-C again to quit at once)")
                    self.begin_close(1000, "")
                    give_up = time.monotonic() + 5.0
        finally:
            self.stop_reading.set()
        if self.timed_out and not self.wait_done:
            return EXIT_TIMEOUT
        if self.wait_done:
            return EXIT_OK
        if self.error or not self.clean:
            return EXIT_ERROR
        return EXIT_OK


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _run_connect(args: argparse.Namespace) -> int:
    err = sys.stderr
    if args.insecure:
        print(
            "wsloop: WARNING: --insecure: the server's TLS certificate is NOT verified. "
            "Anyone on the network path can read and change this connection.",
            file=err,
            flush=True,
        )
    url = _expand_url(args.url)
    try:
        ws = WebSocket(
            compression=None if args.no_compression else "deflate",
            max_message_size=args.max_size,
            headers=args.header,
            origin=args.origin,
            connect_timeout=args.connect_timeout,
            ssl=_insecure_context() if args.insecure else None,
            cafile=args.cafile,
        )
    except (ValueError, TypeError) as exc:
        print(f"wsloop connect: error: {exc}", file=err)
        return EXIT_USAGE
    stdin = None if args.no_stdin else sys.stdin
    if stdin is not None and stdin.closed:
        stdin = None
    client = _Client(ws, args, stdin, err)
    try:
        ws.connect(url, args.protocol or None)
    except ValueError as exc:
        client.stop_reading.set()
        print(f"wsloop connect: error: {exc}", file=err)
        return EXIT_USAGE
    return client.run(url)


def add_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    """Add ``wsloop connect`` and its options to the subcommands."""
    connect = commands.add_parser(
        "connect",
        help="talk to a WebSocket server from the terminal",
        description="Connect to URL; send each line of stdin as a text message; print every "
        "event as it happens. URL shorthands: ':8765/room/x' means "
        "ws://127.0.0.1:8765/room/x, and no scheme means ws://.",
        epilog=COMMANDS_HELP
        + "\n\nExit status: 0 clean close or --wait satisfied, 1 error, 2 usage, 3 timeout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connect.add_argument("url", metavar="URL")
    connect.add_argument(
        "-p",
        "--protocol",
        action="append",
        default=[],
        metavar="NAME",
        help="request a subprotocol (repeat for several, in order of preference)",
    )
    connect.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="'NAME: VALUE'",
        help="add a handshake header (repeatable)",
    )
    connect.add_argument("-o", "--origin", help="the Origin header")
    tls = connect.add_mutually_exclusive_group()
    tls.add_argument("--cafile", metavar="PEM", help="trust these CA certificates for wss://")
    tls.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="do NOT verify the server's TLS certificate (loudly warned)",
    )
    connect.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    connect.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    connect.add_argument(
        "--max-size",
        type=_size,
        default=16 * 2**20,
        metavar="BYTES",
        help="the largest message accepted (default 16m)",
    )
    connect.add_argument(
        "-s",
        "--send",
        action="append",
        default=[],
        metavar="TEXT",
        help="once open, handle TEXT like a typed line (repeatable, in order)",
    )
    connect.add_argument(
        "-w",
        "--wait",
        type=_positive_int,
        metavar="N",
        help="close and exit 0 after N messages are received (EOF on stdin no longer closes)",
    )
    connect.add_argument(
        "-t",
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close and exit 3 after this long",
    )
    connect.add_argument(
        "-j", "--json", action="store_true", help="print each event as one JSON object per line"
    )
    connect.add_argument(
        "-n",
        "--no-stdin",
        action="store_true",
        help="do not read stdin: just print what arrives (until closed, --wait or --timeout)",
    )
    connect.add_argument(
        "--raw", action="store_true", help="send every line as text, with no /commands"
    )
    connect.set_defaults(run=_run_connect)
