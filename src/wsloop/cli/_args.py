"""The argument types and exit statuses of the ``wsloop`` command line.

Each type turns one option's text into a value, or raises
:class:`argparse.ArgumentTypeError` with the reason, which argparse prints
under the usage line before exiting with status 2. Sizes take a ``k`` or ``m``
suffix; for the ``*_or_off`` types, 0 means "no limit"; NaN and infinity are
never a number of seconds. :class:`_Parser` makes argparse raise
:class:`_Exit` instead of exiting, so that ``main(argv)`` returns the status
(and a test can call it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


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
