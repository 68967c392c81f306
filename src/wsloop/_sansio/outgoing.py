"""Large outgoing messages, cut into fragments of a bounded size.

Theory of operation
-------------------
A message larger than one slice is queued as it was given and framed later,
one fragment per :meth:`Outgoing.next_fragment` call (the session calls it
from ``data_to_send()``), so that neither the send nor any later step pays
for the whole message: ``bytes`` are masked a slice at a time, ``str`` is
encoded a slice of characters at a time. The UTF-8 encodings of consecutive
slices of a string concatenate to the encoding of the whole string, and each
fragment ends on a character boundary (RFC 6455 would allow splitting a
character between fragments; not doing it keeps every fragment valid UTF-8
on its own, which is easier on peers and on whoever reads a capture).

A text that is not ASCII is sliced by :data:`MAX_UTF8` characters fewer than
the slice: no character takes more than 4 bytes in UTF-8, so a fragment is
never larger than the slice, whatever the text.

Only one thing would make a ``str`` fail to encode: a lone surrogate (UTF-8
has no encoding for U+D800 to U+DFFF). ``send_text()`` raised
``UnicodeEncodeError`` for it when it encoded the whole text, and still does:
:func:`check_encodable` looks for surrogates without building the UTF-8
(a UTF-16 encoding of bounded slices, which rejects exactly the same code
points, runs 5 to 10 times faster than UTF-8 on Latin-1 text and about 3
times faster on other scripts, and keeps no copy of the text).

How many bytes a text will take is only known once encoded: until then a
queued text counts as its length in characters times the bytes per
character of what was encoded so far (first estimated on a short sample),
which is exact for text of one script and corrected slice by slice for any
other (see :attr:`Outgoing.counted`).
"""

from __future__ import annotations

__all__ = ["MAX_UTF8", "Outgoing", "check_encodable"]

MAX_UTF8 = 4
"""The most bytes one character takes in UTF-8."""

_CHECK_STEP = 1 << 15
"""Characters checked per step by :func:`check_encodable`.

Its copies (at most 128 KiB) stay in the cache and below the allocator's mmap
threshold: with 64 Ki characters each step maps fresh pages, 3 to 10 times slower.
"""

_SAMPLE = 4096
"""Characters encoded to estimate the size of a text before its first slice."""


def check_encodable(text: str) -> None:
    """Raise the ``UnicodeEncodeError`` that ``text.encode()`` would raise, if any.

    Raises:
        UnicodeEncodeError: ``text`` holds a lone surrogate; the error is the
            one of the UTF-8 codec on the whole text (same position and object).
    """
    for start in range(0, len(text), _CHECK_STEP):
        try:
            text[start : start + _CHECK_STEP].encode("utf-16-le")
        except UnicodeEncodeError:
            text.encode()  # raises the UTF-8 codec's error, for the caller
            raise  # pragma: no cover - UTF-16 and UTF-8 reject the same code points


class Outgoing:
    """One large message being sent as fragments.

    Args:
        opcode: the message's opcode (TEXT or BINARY), used for its first frame.
        payload: its content: ``bytes`` or a ``str`` checked by
            :func:`check_encodable` (or ASCII).
        step: the largest fragment, in bytes.
    """

    __slots__ = ("_bytes_done", "_chars_done", "_payload", "_pos", "_step", "counted", "opcode")

    def __init__(self, opcode: int, payload: bytes | str, step: int) -> None:
        self.opcode = opcode
        """The opcode of the first frame (later ones are continuations)."""
        self._payload = payload
        self._pos = 0
        self._chars_done = 0
        self._bytes_done = 0
        if isinstance(payload, str) and not payload.isascii():
            step //= MAX_UTF8
            sample = payload[:_SAMPLE]
            self._chars_done = len(sample)  # the estimate's basis only, until a slice is sent
            self._bytes_done = len(sample.encode())
        self._step = step
        self.counted = self._estimate(len(payload))
        """The bytes this message adds to ``Session.unsent``: exact for ``bytes``
        and ASCII, an estimate for the part of other text not encoded yet."""

    def _estimate(self, chars_left: int) -> int:
        if not self._chars_done:
            return chars_left
        return chars_left * self._bytes_done // self._chars_done

    @property
    def started(self) -> bool:
        """True once the first fragment has been produced."""
        return self._pos > 0

    def next_fragment(self) -> tuple[bytes | memoryview, bool]:
        """The next fragment's payload and whether it is the last one.

        :attr:`counted` is updated: the caller subtracts what it was before
        and adds what it is after.
        """
        payload = self._payload
        pos = self._pos
        end = min(pos + self._step, len(payload))
        self._pos = end
        last = end == len(payload)
        chunk: bytes | memoryview
        if isinstance(payload, str):
            chunk = payload[pos:end].encode()
            if pos == 0:
                self._chars_done = self._bytes_done = 0  # drop the sample: the slice is exact
            self._chars_done += end - pos
            self._bytes_done += len(chunk)
            self.counted = 0 if last else self._estimate(len(payload) - end)
        else:
            chunk = memoryview(payload)[pos:end]
            self.counted = len(payload) - end
        return chunk, last
