"""The ``wsloop`` command line.

``wsloop connect URL``
    A terminal client built on :class:`wsloop.WebSocket` (poll driver): every
    line typed (or piped) is sent as text, ``/commands`` send binary data,
    pings and close frames, and every trigger is printed as it fires.
``wsloop serve``
    The relay server of :mod:`wsloop.relay`: rooms by URL path, echo mode,
    Redis scale-out.
``wsloop demo``
    Two scripted clients play a game through an embedded relay, offline.

Exit status of ``connect``: 0 after a clean close (or once ``--wait`` is
satisfied), 1 after an error, 2 for a usage error, 3 on ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import queue
import signal
import ssl
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .._client import WebSocket
from .._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import BinaryMessage, Closed, Error, Opened, TextMessage
    from ..relay import Relay, RoomConfig

__all__ = ["escape", "main", "preview"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

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


# Rendering.

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """Make received text safe for a terminal: control characters become escapes.

    Newlines, tabs, escape sequences, bidirectional overrides and other
    invisible characters are shown as ``\\n``, ``\\t``, ``\\x1b``,
    ``\\u202e``...; a backslash is doubled so the output stays unambiguous.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


def preview(data: bytes, width: int = 16) -> str:
    """A one-line view of binary data: its size, the first bytes in hex and ASCII."""
    head = data[:width]
    hex_part = " ".join(f"{byte:02x}" for byte in head)
    text_part = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in head)
    more = " ..." if len(data) > width else ""
    unit = "byte" if len(data) == 1 else "bytes"
    if not data:
        return "0 bytes"
    return f"{len(data)} {unit}: {hex_part}{more} |{text_part}|"


class _Printer:
    """Writes one line per event: readable, or one JSON object with ``--json``."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.broken = False

    def emit(self, kind: str, text: str, /, **fields: Any) -> None:
        if self.broken:
            return
        if self.as_json:
            line = json.dumps({"time": round(time.time(), 3), "event": kind, **fields})
        else:
            stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
            line = f"{stamp} {kind:<7} {text}".rstrip()
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.broken = True


# wsloop connect.


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


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in ' \t\r\n()<>@,;\\"/[]?={}'):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', not {value!r}")
    if "\r" in content or "\n" in content:
        raise argparse.ArgumentTypeError("a header value cannot contain a line break")
    return name, content.strip()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {value}")
    return number


def _number(value: str, what: str, *, zero: bool = False) -> float:
    """A positive number of ``what`` (or 0 too, with ``zero``); NaN and inf are refused."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, not {value!r}") from None
    if not (number >= 0 if zero else number > 0) or number == float("inf"):
        least = "0 or more" if zero else "a positive number of"
        raise argparse.ArgumentTypeError(f"expected {least} {what}, not {value}")
    return number


def _seconds(value: str) -> float:
    return _number(value, "seconds")


def _size(value: str) -> int:
    """Bytes, with an optional k or m suffix (KiB, MiB)."""
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    scale = 1
    if text.endswith("k"):
        scale, text = 2**10, text[:-1]
    elif text.endswith("m"):
        scale, text = 2**20, text[:-1]
    try:
        number = int(float(text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size like 65536, 64k or 1m, not {value!r}"
        ) from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive size, not {value}")
    return number


def _count_or_off(value: str) -> int:
    """A whole number, 0 meaning no limit."""
    if value.strip() == "0":
        return 0
    return _positive_int(value)


def _size_or_off(value: str) -> int:
    """A size like ``_size``, 0 meaning no limit."""
    if value.strip() == "0":
        return 0
    return _size(value)


def _grace(value: str) -> float:
    return _number(value, "seconds", zero=True)


def _rate(value: str) -> float:
    return _number(value, "messages per second")


# The --room-* options of wsloop serve: (flag, RoomConfig field, type, metavar, help).
_ROOM_OPTIONS: tuple[tuple[str, str, Callable[[str], Any], str, str], ...] = (
    ("--room-history", "history", _positive_int, "N", "messages each room keeps"),
    ("--room-history-bytes", "history_bytes", _size, "BYTES", "bytes each room keeps, as 1m"),
    ("--room-grace", "grace", _grace, "SECONDS", "seconds a dropped seat waits (0: none)"),
    ("--room-max-members", "max_members", _positive_int, "N", "seats per room"),
    ("--room-max-name", "max_name", _positive_int, "N", "characters of a member's name"),
    ("--room-max-meta", "max_meta", _size, "BYTES", "bytes of a member's meta (JSON)"),
    ("--room-rate", "rate", _rate, "N", "messages per second a member may send"),
    ("--room-burst", "burst", _positive_int, "N", "messages at once above the rate"),
    ("--room-dedupe", "dedupe", _positive_int, "N", "message ids remembered per member"),
)


def _room_config(args: argparse.Namespace) -> RoomConfig:
    from ..relay import RoomConfig

    changes = {
        field: getattr(args, field)
        for _, field, *_ in _ROOM_OPTIONS
        if getattr(args, field) is not None
    }
    if args.room_quiet_drops:
        changes["announce_drops"] = False
    return dataclasses.replace(RoomConfig(), **changes)


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


# wsloop serve.


def _run_serve(args: argparse.Namespace) -> int:
    from ..relay import Relay

    err = sys.stderr
    if args.key and not args.cert:
        print("wsloop serve: error: --key needs --cert", file=err)
        return EXIT_USAGE
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            print(f"wsloop serve: error: cannot load the certificate or key: {exc}", file=err)
            return EXIT_ERROR
    guard = _guard_options(args)
    if isinstance(guard, str):
        print(f"wsloop serve: error: {guard}", file=err)
        return EXIT_USAGE
    try:
        relay = Relay(
            args.host,
            args.port,
            echo=args.echo,
            protocols=args.protocol,
            allowed_origins=args.allow_origin or None,
            max_size=args.max_size,
            max_fragments=args.max_fragments,
            max_connections=args.max_connections,
            send_queue=args.send_queue,
            send_queue_bytes=args.send_queue_bytes,
            ping_interval=args.ping_interval or None,
            open_timeout=args.open_timeout,
            ssl=context,
            redis_url=args.redis,
            redis_prefix=args.redis_prefix,
            **guard,
            rooms=_room_config(args),
        )
    except (ValueError, TypeError) as exc:
        print(f"wsloop serve: error: {exc}", file=err)
        return EXIT_USAGE
    log = logging.getLogger("wsloop.relay")
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    log.propagate = False
    try:
        return asyncio.run(_serve(relay, log))
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _guard_options(args: argparse.Namespace) -> dict[str, Any] | str:
    """The Relay options of auth, limits and monitoring; an error message if wrong."""
    token = args.token if args.token is not None else os.environ.get("WSLOOP_TOKEN") or None
    options: dict[str, Any] = {
        "token": token,
        "rate_messages": args.rate_messages or None,
        "rate_bytes": args.rate_bytes or None,
        "max_connections_per_address": args.max_per_address or None,
        "monitoring": not args.no_monitoring,
    }
    if args.exempt is not None:
        options["exempt_networks"] = [net for net in args.exempt if net]
    if args.game:
        games: dict[str, Any] = {}
        for spec in args.game:
            pattern, sep, target = spec.partition("=")
            if not sep or not pattern or not target:
                return f"--game expects PATTERN=MODULE:CLASS, not {spec!r}"
            loaded = _load(target, "game room")
            if isinstance(loaded, str):
                return loaded
            games[pattern] = loaded
        options["games"] = games
    if args.auth:
        if token is not None:
            return "--auth and --token (or WSLOOP_TOKEN) cannot be used together"
        hook = _load(args.auth, "auth hook")
        if isinstance(hook, str):
            return hook
        if not callable(hook):
            return f"the auth hook {args.auth!r} is not callable"
        options["auth"] = hook
    return options


def _load(target: str, what: str) -> Any:
    """``module:name`` imported (the current directory first); an error message if not."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        return f"the {what} must be given as MODULE:NAME, not {target!r}"
    import importlib

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: your module beside you
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        return f"cannot load the {what} {target!r}: {exc}"


async def _serve(relay: Relay, log: logging.Logger) -> int:
    from ..relay import RelayError

    try:
        await relay.start()
    except RelayError as exc:
        log.error("wsloop serve: error: %s", exc)
        return EXIT_ERROR
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
            pass  # not the main thread, or not a Unix loop
    what = "echo server" if relay.echo else "relay (a room per URL path)"
    # Always shown, --quiet or not: scripts read the URL from this line.
    log.log(max(logging.INFO, log.level), "wsloop %s listening on %s", what, relay.url)
    details = []
    if relay.protocols:
        details.append("subprotocols " + ", ".join(relay.protocols))
    if relay.allowed_origins:
        details.append("origins " + ", ".join(relay.allowed_origins))
    details.append(f"max message {relay.max_size} bytes in {relay.max_fragments} fragments")
    details.append(f"max {relay.max_connections} connections")
    if relay.token is not None:
        details.append("token required")
    elif relay.auth is not None:
        details.append("auth hook")
    if relay.rate_messages or relay.rate_bytes:
        rates = []
        if relay.rate_messages:
            rates.append(f"{relay.rate_messages:g} msg/s")
        if relay.rate_bytes:
            rates.append(f"{relay.rate_bytes:g} B/s")
        details.append("per client " + " and ".join(rates))
    if relay.games:
        details.append("game rooms " + ", ".join(relay.games.classes))
    if relay.monitoring:
        details.append("/healthz /metrics /status")
    log.info("%s; Ctrl-C stops", "; ".join(details))
    waiter = asyncio.create_task(stop.wait())
    ended = asyncio.create_task(relay.wait_closed())
    try:
        await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("shutting down: closing every client with 1001")
        await relay.stop()
    finally:
        waiter.cancel()
        ended.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return EXIT_ERROR if relay.failure else EXIT_OK


# wsloop demo.


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(seed=args.seed, timeout=args.timeout)


# The parser.


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors returned as status 2 instead of exiting."""

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    from ..relay import DEFAULT_MAX_SIZE, DEFAULT_PORT, RoomConfig
    from ..relay.server import (
        DEFAULT_MAX_FRAGMENTS,
        DEFAULT_MAX_PER_ADDRESS,
        DEFAULT_OPEN_TIMEOUT,
        DEFAULT_RATE_BYTES,
        DEFAULT_RATE_MESSAGES,
    )

    parser = _Parser(
        prog="wsloop",
        description="WebSocket tools: a terminal client, a relay server and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"wsloop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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

    serve = commands.add_parser(
        "serve",
        help="run the relay server (rooms by URL path)",
        description="Run the relay: a client connected to ws://HOST:PORT/room/lobby hears "
        "every message the other members of /room/lobby send (any path names a room). "
        "SIGINT/SIGTERM close every client with 1001 and exit.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    serve.add_argument(
        "--echo", action="store_true", help="echo mode: send every message back to its sender"
    )
    serve.add_argument(
        "-p",
        "--protocol",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this subprotocol (repeatable); clients asking only for others get 400",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept browsers from this Origin only (repeatable); others get 403",
    )
    serve.add_argument(
        "--max-size",
        type=_size,
        default=DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest message a client may send; larger closes it with 1009 (default 1m)",
    )
    serve.add_argument(
        "--max-fragments",
        type=_positive_int,
        default=DEFAULT_MAX_FRAGMENTS,
        metavar="N",
        help="most frames one message may be split into; more closes it with 1009 "
        f"(default {DEFAULT_MAX_FRAGMENTS})",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="refuse clients beyond N with HTTP 503 (default 1000)",
    )
    serve.add_argument(
        "--send-queue",
        type=_positive_int,
        default=1024,
        metavar="N",
        help="messages waiting for one client before it is closed as too slow, 1008 "
        "(default 1024)",
    )
    serve.add_argument(
        "--send-queue-bytes",
        type=_size,
        default=4 * 2**20,
        metavar="BYTES",
        help="bytes waiting for one client before it is closed as too slow (default 4m)",
    )
    serve.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="keepalive ping interval; 0 disables (default 20)",
    )
    serve.add_argument(
        "--open-timeout",
        type=_seconds,
        default=DEFAULT_OPEN_TIMEOUT,
        metavar="SECONDS",
        help="time a client has to finish its opening handshake before it is dropped "
        f"(default {DEFAULT_OPEN_TIMEOUT:g})",
    )
    serve.add_argument("--cert", metavar="PEM", help="TLS certificate chain: serve wss://")
    serve.add_argument("--key", metavar="PEM", help="TLS private key (if not in --cert)")
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share rooms with other relay processes through Redis (redis://host:6379/0)",
    )
    serve.add_argument(
        "--redis-prefix",
        default="wsloop:",
        metavar="PREFIX",
        help="prefix of the Redis channel names (default wsloop:)",
    )
    rooms = serve.add_argument_group(
        "the room protocol",
        "limits of the rooms of clients that ask for wsloop.room.v1 (docs/rooms.md)",
    )
    defaults = RoomConfig()
    for flag, field, kind, metavar, text in _ROOM_OPTIONS:
        rooms.add_argument(
            flag,
            dest=field,
            type=kind,
            metavar=metavar,
            help=f"{text} (default {getattr(defaults, field)})",
        )
    rooms.add_argument(
        "--room-quiet-drops",
        action="store_true",
        help="do not tell the others when a member drops or comes back (only timeouts)",
    )
    serve.add_argument(
        "--token",
        metavar="SECRET",
        help="clients must present this token (?token=SECRET or a Bearer header), else 401/403; "
        "also guards /metrics and /status (or set WSLOOP_TOKEN, which ps does not show)",
    )
    serve.add_argument(
        "--auth",
        metavar="MODULE:FUNCTION",
        help="an auth hook: called with each client's wsloop.relay.Handshake, returns its "
        "identity, None (401) or raises wsloop.relay.Refuse",
    )
    serve.add_argument(
        "--rate-messages",
        type=_count_or_off,
        default=DEFAULT_RATE_MESSAGES,
        metavar="N",
        help=f"messages/s one client may send on average, bursts of twice that; over it: 1008 "
        f"(default {DEFAULT_RATE_MESSAGES:g}; 0: no limit)",
    )
    serve.add_argument(
        "--rate-bytes",
        type=_size_or_off,
        default=int(DEFAULT_RATE_BYTES),
        metavar="BYTES",
        help="payload bytes/s one client may send on average (default 16m; 0: no limit)",
    )
    serve.add_argument(
        "--max-per-address",
        type=_count_or_off,
        default=DEFAULT_MAX_PER_ADDRESS,
        metavar="N",
        help=f"connections from one address beyond N get HTTP 429 "
        f"(default {DEFAULT_MAX_PER_ADDRESS}; 0: no limit)",
    )
    serve.add_argument(
        "--exempt",
        action="append",
        default=None,
        metavar="NET",
        help="a network not counted against --max-per-address, such as your reverse proxy's "
        "(repeatable; replaces the default, loopback)",
    )
    serve.add_argument(
        "--game",
        action="append",
        default=[],
        metavar="PATTERN=MODULE:CLASS",
        help="host authoritative rooms: paths matching PATTERN (such as '/ttt/*') run this "
        "wsloop.relay.GameRoom subclass; '/ttt/' is quick match (repeatable)",
    )
    serve.add_argument(
        "--no-monitoring",
        action="store_true",
        help="do not serve /metrics and /status (/healthz stays)",
    )
    serve.add_argument(
        "-q", "--quiet", action="store_true", help="log warnings only, not every connection"
    )
    serve.set_defaults(run=_run_serve)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``wsloop`` command; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _Exit as exc:
        return exc.status
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    run: Callable[[argparse.Namespace], int] = args.run
    status = run(args)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Piped into `head` or the like: what is left unwritten is not wanted.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return status
