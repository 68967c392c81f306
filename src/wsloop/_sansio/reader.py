"""The native frame reader: data frames in, messages out, without the engine.

:class:`FrameReader` is the part of :class:`wsloop.sansio.Session` that turns
received frames into :class:`~wsloop.events.TextMessage` and
:class:`~wsloop.events.BinaryMessage` events. ``Session`` inherits it rather
than holding a reader object: the hot path reads and writes the session's own
attributes, with no extra attribute lookup or call per frame.

Theory of operation
-------------------
The wrapped engine (:mod:`wsloop._engine`) runs the handshakes and decides
every control frame and protocol error. While the connection is open without
extensions (:meth:`wsloop._engine.Engine.reads_natively`), the session reads
plain data frames itself (:meth:`FrameReader._receive_frames`) and hands the
engine everything else from a frame boundary; otherwise the engine parses
every frame. So:

* **Where native reading starts.** Frames may follow the handshake response
  in the same read: :meth:`FrameReader._end_of_response` finds where the
  response's head ends, the engine gets the response alone, and what follows
  is read natively once the engine has accepted the handshake.
* **What is read natively.** A data frame with no reserved bits, no mask, a
  valid place in the fragment sequence and a size within
  ``max_message_size``. A small frame waits in one buffer until complete; a
  frame of at least :data:`_COLLECT_MIN` bytes is collected as the reads that
  carry it and joined once (one copy of its payload); a whole text message
  being collected is decoded read by read, so that the read completing it
  pays only for joining the text.
* **What the engine gets.** A complete control frame, fed alone (the engine
  answers pings and records close frames); any other frame, and everything
  after it, after which the engine reads every frame: it fails the
  connection exactly as if it had read them all. Closing or failing the
  connection gives the engine back the reading too
  (:meth:`FrameReader._leave_native`), with what is buffered of the next
  frame.
* **Message assembly.** :meth:`FrameReader._data_frame` takes each complete
  data frame, read natively or parsed by the engine: the fragments' bytes go
  into one buffer whatever their number, and text is checked for UTF-8 frame
  by frame, so that invalid text fails the connection (1007) as soon as it
  arrives.
"""

from __future__ import annotations

import codecs
import zlib
from typing import TYPE_CHECKING, Any

from ..events import BinaryMessage, TextMessage
from .state import State

if TYPE_CHECKING:
    from collections.abc import Callable

    from .. import _engine
    from ..events import Event

__all__ = ["FrameReader"]

_COLLECT_MIN = 64 * 1024
"""Frames at least this large are collected read by read, not buffered."""

_EMPTY_BLOCK = b"\x00\x00\xff\xff"
"""RFC 7692 7.2.2: the tail the sender removed from each compressed message."""

_FILL_MAX = 64 * 2**20
"""The largest message filled in place when ``max_message_size`` is ``None``.

The object is made at the size the frame header announces, before the bytes
arrive: with no limit, a larger announced frame is collected and joined
instead, so that a header alone never reserves more than this.
"""


def _bytes_maker() -> Any:
    """CPython's ``PyBytes_FromStringAndSize(NULL, n)`` and a writable view of it, or ``None``.

    The C API makes a ``bytes`` object whose contents are to be filled by its
    maker before anyone else sees it (as ``bytes.join`` does). The reader
    fills it through a writable memoryview of its storage
    (``PyMemoryView_FromMemory``), released before the object is handed
    over; until then only the reader holds it.
    """
    try:
        import ctypes
        import sys

        if sys.implementation.name != "cpython":
            return None
        api = ctypes.pythonapi
        make = api.PyBytes_FromStringAndSize
        make.restype = ctypes.py_object
        make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        storage = api.PyBytes_AsString
        storage.restype = ctypes.c_void_p
        storage.argtypes = (ctypes.py_object,)
        over = api.PyMemoryView_FromMemory
        over.restype = ctypes.py_object
        over.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    except (ImportError, AttributeError, OSError):  # pragma: no cover - no ctypes or C API
        return None
    pybuf_write = 0x200

    def new_bytes(size: int) -> tuple[bytes, memoryview]:
        # size >= _COLLECT_MIN: never the shared empty or one-byte objects.
        obj: bytes = make(None, size)
        return obj, over(storage(obj), size, pybuf_write)

    return new_bytes


_new_bytes = _bytes_maker()
"""``size -> (bytes, writable view of it)``, or ``None`` where it cannot be made."""


class FrameReader:
    """Frames in, messages out: the reading half of :class:`wsloop.sansio.Session`.

    A mixin: it keeps its state on the session (set up by :meth:`_init_reader`)
    and uses what the session provides, declared below.
    """

    # Provided by Session.
    state: State
    coalesce_pongs: bool
    _engine: _engine.Engine
    _events: list[Event]

    if TYPE_CHECKING:

        def _process(self, items: list[object]) -> None: ...
        def _fail_utf8(self) -> None: ...

    def _init_reader(self, max_message_size: int | None) -> None:
        """Set up the reading state (called by ``Session.__init__``)."""
        # Message assembly: the fragments' bytes in one buffer, whatever their number.
        self._assembly = bytearray()
        self._text_decoder: codecs.BufferedIncrementalDecoder | None = None
        self._fragmented_text = False
        # Native frame reading (the open-phase hot path, see _receive_frames).
        self._native = False
        self._max_size = max_message_size
        self._rbuf = bytearray()  # the start of the next frame
        self._fragment_size: int | None = None  # received of an unfinished message
        self._response_tail = b""  # the last bytes of the response head seen
        # A large frame being collected: its first byte, header, parts, bytes missing.
        self._collect_b0 = 0
        self._collect_header = b""
        self._collect_parts: list[bytes | memoryview] = []
        self._collect_need = 0
        # A whole binary message filled in place instead: the object handed
        # over, a writable view of it, and how much of it is filled.
        self._fill: bytes | None = None
        self._fill_view: memoryview | None = None
        self._fill_pos = 0
        # A whole text message being collected is decoded read by read, so
        # that the read completing it pays only for joining the text.
        self._collect_decoder: codecs.BufferedIncrementalDecoder | None = None
        self._collect_text: list[str] = []
        # permessage-deflate: the engine's decompressor getter, once open with it.
        self._inflater: Callable[[], Any] | None = None

    def _reads_natively(self) -> bool:
        return self._native

    def _end_of_response(self, data: bytes) -> int | None:
        """Where in ``data`` the HTTP response's head ends, if it ends in it."""
        tail = self._response_tail
        seen = tail + data if tail else data
        index = seen.find(b"\r\n\r\n")
        if index < 0:
            self._response_tail = seen[-3:]
            return None
        self._response_tail = b""
        return index + 4 - len(tail)

    def _receive_frames(self, data: bytes | memoryview) -> None:
        """Read data frames natively; hand control frames and anything odd to the engine.

        The open-phase hot path: a data frame with no reserved bits, no mask,
        a valid place in the fragment sequence and a size within
        ``max_message_size`` becomes an event here. A small frame waits in
        one buffer until complete; a large one is collected as the reads
        that carry it and joined once (one copy of its payload). A complete
        control frame is fed to the engine alone. Any other frame, and
        everything after it, goes to the engine, which fails the connection
        exactly as if it had read every frame.
        """
        if self._collect_need:
            data = self._collect(data)
            if not data or not self._native:
                return
        buf = self._rbuf
        view: bytes | bytearray | memoryview
        if buf:
            buf += data
            view = buf
            mv: memoryview | None = memoryview(buf)
        else:
            view = data
            mv = None
        size = len(view)
        pos = 0
        events = self._events
        limit = self._max_size
        engine = self._engine
        handed_control = False
        odd = False
        chunk: bytes | bytearray | memoryview
        while size - pos >= 2:
            b0 = view[pos]
            b1 = view[pos + 1]
            opcode = b0 & 0x0F
            # What the engine refuses from the first two bytes, it is given at
            # once; what it refuses later, it is given too: it waits for the
            # rest of the frame itself, so errors come exactly when it says.
            if b1 & 0x80 or 2 < opcode < 8 or opcode > 10:
                odd = True  # a masked frame, a reserved opcode
                break
            if b0 & 0x70 and (
                b0 & 0x70 != 0x40 or self._inflater is None or b0 & 0x8F not in (0x81, 0x82)
            ):
                # Reserved bits, or a compressed frame read here only when it
                # is a whole message: the engine reads a compressed fragment.
                odd = True
                break
            length = b1 & 0x7F
            head = pos + 2
            if length > 125:
                if length == 126:
                    if size - pos < 4:
                        break
                    length = (view[pos + 2] << 8) | view[pos + 3]
                    head = pos + 4
                else:
                    if size - pos < 10:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                    head = pos + 10
            fragment = self._fragment_size
            if limit is not None and length > limit - (fragment or 0):
                odd = True  # too big
                break
            end = head + length
            if opcode < 3:
                if (opcode == 0) is (fragment is None):
                    odd = True  # out of sequence: the engine fails it
                    break
                if end > size:
                    if length >= _COLLECT_MIN:
                        # Collect the reads that carry it rather than growing
                        # the buffer: they are joined once when complete.
                        self._collect_b0 = b0
                        self._collect_header = bytes(view[pos:head])
                        self._collect_need = end - size
                        if b0 == 0x82 and self._start_fill(
                            length, memoryview(data) if mv is None else mv, head, size
                        ):
                            pos = size
                            break
                        # data itself is immutable, kept without a copy; the buffer is reused.
                        first: bytes | memoryview = (
                            memoryview(data)[head:size] if mv is None else bytes(mv[head:size])
                        )
                        self._collect_parts = [first]
                        pos = size
                        if b0 == 0x81 and not self._start_collecting_text(first):
                            break
                    break
                chunk = view[head:end] if mv is None else mv[head:end]
                pos = end
                if b0 == 0x81:  # a whole text message
                    try:
                        text = str(chunk, "utf-8")
                    except UnicodeDecodeError:
                        self._fail_utf8()
                        break
                    events.append(TextMessage(text))
                elif b0 == 0x82:  # a whole binary message
                    events.append(BinaryMessage(bytes(chunk)))
                elif not self._data_frame(b0, chunk):
                    break
            elif b0 & 0x80 and length <= 125:
                if end > size:
                    break
                engine.coalesce_pongs = self.coalesce_pongs
                engine.feed(bytes(view[pos:end]), self._fragment_size)
                handed_control = True
                pos = end
                self._process(engine.events())
                if self.state is not State.OPEN:
                    self._native = False  # a close frame, or the engine failed the connection
                    break
            else:
                odd = True  # a fragmented or long control frame
                break
        if mv is not None:
            chunk = b""  # no slice of the buffer may outlive the loop: it is resized below
            mv.release()
        if self._native and not odd:
            if view is buf:
                del buf[:pos]
            elif pos < size:
                buf += data[pos:] if type(data) is memoryview else memoryview(data)[pos:]
        else:
            self._native = False
            rest = bytes(view[pos:])
            buf.clear()
            if self.state is not State.CLOSED:
                engine.coalesce_pongs = self.coalesce_pongs
                engine.feed(rest, self._fragment_size)
                handed_control = True
                self._process(engine.events())
        if handed_control:
            engine.flush_pong()

    def _start_fill(self, length: int, src: memoryview, head: int, size: int) -> bool:
        """Start filling a whole binary message in place, with ``src[head:size]`` first."""
        limit = self._max_size
        if _new_bytes is None or length > (_FILL_MAX if limit is None else limit):
            return False
        try:
            self._fill, into = _new_bytes(length)
        except MemoryError:  # pragma: no cover - an address space that refuses it
            return False
        self._fill_view = into
        into[: size - head] = src[head:size]
        self._fill_pos = size - head
        return True

    def _collect(self, data: bytes | memoryview) -> bytes | memoryview:
        """Take the next part of a large frame from ``data``; return what follows it."""
        need = self._collect_need
        into = self._fill_view
        if into is not None:
            pos = self._fill_pos
            if len(data) < need:
                into[pos : pos + len(data)] = data
                self._fill_pos = pos + len(data)
                self._collect_need = need - len(data)
                return b""
            mv = data if type(data) is memoryview else memoryview(data)
            into[pos:] = mv[:need]
            message = self._fill
            assert message is not None
            self._end_collect()  # releases the view: nothing can change the message now
            self._events.append(BinaryMessage(message))
            return mv[need:]
        decoder = self._collect_decoder
        if len(data) < need:
            self._collect_parts.append(data)
            self._collect_need = need - len(data)
            if decoder is not None:
                self._decode_collected(decoder, data, False)
            return b""
        parts = self._collect_parts
        mv = data if type(data) is memoryview else memoryview(data)
        last = mv[:need]
        parts.append(last)
        if decoder is not None:
            self._end_collect()
            if not self._decode_collected(decoder, last, True):
                return b""
            text, self._collect_text = "".join(self._collect_text), []
            self._events.append(TextMessage(text))
            return mv[need:]
        payload = b"".join(parts)
        self._end_collect()
        if self._data_frame(self._collect_b0, payload):
            return mv[need:]
        return b""

    def _start_collecting_text(self, first: bytes | memoryview) -> bool:
        self._collect_decoder = decoder = codecs.getincrementaldecoder("utf-8")()
        self._collect_text = []
        return self._decode_collected(decoder, first, False)

    def _decode_collected(
        self, decoder: codecs.BufferedIncrementalDecoder, data: bytes | memoryview, final: bool
    ) -> bool:
        try:
            self._collect_text.append(decoder.decode(data, final))
        except UnicodeDecodeError:
            self._end_collect()
            self._fail_utf8()
            return False
        return True

    def _end_collect(self) -> None:
        self._collect_parts = []
        self._collect_need = 0
        self._collect_header = b""
        self._collect_decoder = None
        if self._fill_view is not None:
            self._fill_view.release()
            self._fill_view = None
        self._fill = None
        self._fill_pos = 0

    def _collected(self) -> bytes:
        """The bytes of the large frame collected so far, its header first."""
        if self._fill_view is not None:
            return self._collect_header + self._fill_view[: self._fill_pos]
        return self._collect_header + b"".join(self._collect_parts)

    def _data_frame(self, b0: int, chunk: bytes | bytearray | memoryview) -> bool:
        """Take one complete data frame, read natively or by the engine.

        ``b0`` is the frame's first byte (FIN and opcode). Returns False when
        the frame failed the connection (invalid UTF-8).
        """
        if b0 & 0x40:  # RSV1: a whole compressed message read natively
            return self._inflate(b0 & 0x8F, chunk)
        opcode = b0 & 0x0F
        events = self._events
        if b0 & 0x80:  # FIN
            if opcode == 1:
                try:
                    text = str(chunk, "utf-8")
                except UnicodeDecodeError:
                    self._fail_utf8()
                    return False
                events.append(TextMessage(text))
            elif opcode == 2:
                events.append(BinaryMessage(bytes(chunk)))
            else:
                self._fragment_size = None
                if self._fragmented_text:
                    if not self._decode_part(chunk, True):
                        return False
                    events.append(TextMessage(self._assembly.decode()))
                    self._text_decoder = None
                else:
                    self._assembly += chunk
                    events.append(BinaryMessage(bytes(self._assembly)))
                self._assembly = bytearray()
        elif opcode == 0:
            self._fragment_size = (self._fragment_size or 0) + len(chunk)
            if self._fragmented_text:
                return self._decode_part(chunk, False)
            self._assembly += chunk
        else:
            self._fragment_size = len(chunk)
            self._assembly = bytearray()
            if opcode == 1:
                self._fragmented_text = True
                self._text_decoder = codecs.getincrementaldecoder("utf-8")()
                return self._decode_part(chunk, False)
            self._fragmented_text = False
            self._assembly += chunk
        return True

    def _inflate(self, b0: int, data: bytes | bytearray | memoryview) -> bool:
        """Inflate a whole compressed message (RFC 7692 7.2.2) and take it as a frame.

        The same checks as the engine's: output is bounded by
        ``max_message_size`` (a deflate bomb stops there, 1009) and invalid
        compressed data fails the connection (1002).
        """
        inflater = self._inflater
        assert inflater is not None
        decoder = inflater()
        limit = self._max_size
        try:
            out = decoder.decompress(data, limit or 0)
            if decoder.unconsumed_tail:
                return self._fail_inflate(True)
            if limit is not None and len(out) == limit:
                # Full: anything more the final empty block yields is too much.
                if decoder.decompress(_EMPTY_BLOCK, 1):
                    return self._fail_inflate(True)
            else:
                tail = decoder.decompress(_EMPTY_BLOCK, 0 if limit is None else limit - len(out))
                if tail:  # pragma: no cover - zlib emits what it decodes at once
                    out += tail
        except zlib.error:
            return self._fail_inflate(False)
        return self._data_frame(b0, out)

    def _fail_inflate(self, too_big: bool) -> bool:
        self._native = False
        self._engine.fail_inflate(too_big)
        self._process([])
        return False

    def _decode_part(self, data: bytes | bytearray | memoryview, final: bool) -> bool:
        decoder = self._text_decoder
        assert decoder is not None
        try:
            # Checked as it arrives, decoded once when complete: the bytes of
            # many small fragments take less room than as many strings would.
            decoder.decode(data, final)
        except UnicodeDecodeError:
            self._fail_utf8()
            return False
        self._assembly += data
        return True

    def _leave_native(self) -> None:
        """Give the engine back the reading, with what is buffered of the next frame."""
        if not self._native:
            return
        self._native = False
        rest = self._collected() + self._rbuf
        self._end_collect()
        self._collect_text = []
        self._rbuf.clear()
        self._engine.feed(rest, self._fragment_size)
        self._process(self._engine.events())

    def _stop_native(self) -> None:
        """Stop reading natively and forget what is buffered: the session is finished."""
        self._native = False
        self._rbuf.clear()
        self._end_collect()
        self._collect_text = []
