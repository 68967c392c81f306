"""What ``wsloop connect`` prints: received text made safe, binary data previewed.

:func:`escape` and :func:`preview` are public (``wsloop.cli.escape``,
``wsloop.cli.preview``); :class:`_Printer` writes one line per event, readable
or, with ``--json``, one JSON object, and stops quietly once the reader of a
pipe has gone.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["escape", "preview"]

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
