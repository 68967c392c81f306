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

Layout: :mod:`._args` (argument types, exit statuses), :mod:`._render`
(:func:`escape`, :func:`preview`, one line per event), one module per
command (:mod:`._connect`, :mod:`._serve`, :mod:`._demo`), each adding its
subcommand to the parser built here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from .._version import __version__
from . import _connect, _serve
from ._args import EXIT_USAGE, _Exit, _Parser
from ._render import escape, preview

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

__all__ = ["escape", "main", "preview"]


def _parser() -> argparse.ArgumentParser:
    from . import _demo  # imports the relay and the room client: only when a command runs

    parser = _Parser(
        prog="wsloop",
        description="WebSocket tools: a terminal client, a relay server and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"wsloop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _connect.add_parser(commands)
    _serve.add_parser(commands)
    _demo.add_parser(commands)
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
