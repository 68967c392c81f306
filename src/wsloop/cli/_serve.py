"""``wsloop serve``: the relay of :mod:`wsloop.relay` from the command line.

The options map one to one onto :class:`wsloop.relay.Relay`'s arguments
(``--room-*`` onto :class:`wsloop.relay.RoomConfig`, from one table,
:data:`_ROOM_OPTIONS`, that builds both the options and the config). A wrong
combination is a usage error (status 2) before anything listens;
``--game`` and ``--auth`` load ``MODULE:NAME`` with the current directory
first on ``sys.path``. :func:`_serve` runs the relay until SIGINT or SIGTERM,
which close every client with 1001, and logs one line with the URL (scripts
read it) and one with the limits in force.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import ssl
import sys
from typing import TYPE_CHECKING, Any

from ._args import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    _count_or_off,
    _grace,
    _Parser,
    _positive_int,
    _rate,
    _seconds,
    _size,
    _size_or_off,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from ..relay import Relay, RoomConfig

__all__ = ["add_parser"]

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
    from ..relay._guard import size_text

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
    details.append(f"max message {size_text(relay.max_size)} in {relay.max_fragments} fragments")
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
            rates.append(f"{size_text(relay.rate_bytes)}/s")
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


def add_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    """Add ``wsloop serve`` and its options to the subcommands."""
    from ..relay import DEFAULT_MAX_SIZE, DEFAULT_PORT, RoomConfig
    from ..relay.server import (
        DEFAULT_MAX_FRAGMENTS,
        DEFAULT_MAX_PER_ADDRESS,
        DEFAULT_OPEN_TIMEOUT,
        DEFAULT_RATE_BYTES,
        DEFAULT_RATE_MESSAGES,
    )

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
