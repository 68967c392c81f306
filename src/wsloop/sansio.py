"""The Sans-I/O core: one client connection as bytes in, events and bytes out.

A :class:`Session` knows nothing of sockets, threads or clocks. A driver
creates one per ``connect()``, writes :meth:`Session.data_to_send` to the
network, feeds what it reads to :meth:`Session.receive_data` and
:meth:`Session.receive_eof`, reports failures of the transport with
:meth:`Session.abort`, and hands :meth:`Session.events_received` to the
application.

Theory of operation
-------------------
The wrapped engine runs the opening and closing handshakes and decides every
control frame and protocol error. While the connection is open without
extensions, the session reads plain data frames itself (the hot path,
:meth:`Session._receive_frames`) and hands the engine everything else from a
frame boundary; otherwise the engine parses every frame. The session adds
what a client object needs on top of it:

* message assembly, with UTF-8 checked frame by frame so that invalid text
  fails as soon as it arrives (code 1007);
* the ordering contract of :mod:`wsloop.events`: at most one :class:`Opened`,
  at most one :class:`Error`, and exactly one :class:`Closed`, last;
* the close code reported to the application: the server's close code when
  a close frame arrived (1005 if it had none), else the code the client sent
  when it failed the connection, else 1006;
* bounded sends: a message larger than one slice (:data:`SEND_SLICE`
  bytes, :data:`SEND_SLICE_DEFLATE` with compression) is queued whole and
  sent as fragments, one slice masked (or compressed) per
  :meth:`Session.data_to_send` call, so that no single call of the
  application or of the driver pays for all of it. Messages sent meanwhile
  wait behind it, control frames (pings, pongs) go between its fragments,
  and a close waits until it is sent. Drivers keep calling
  :meth:`Session.data_to_send` while :attr:`Session.sending` is true and
  the network takes the bytes.

The states and the changes between them (:class:`State`, :data:`TRANSITIONS`)
are drawn in :mod:`wsloop._sansio.state`; this module re-exports both.
"""

from __future__ import annotations

import codecs
import importlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from ._sansio.state import TRANSITIONS, State
from .events import BinaryMessage, Closed, Error, Event, Opened, TextMessage
from .exceptions import (
    ConnectionClosedError,
    InvalidState,
    InvalidUTF8,
    ProtocolError,
    WebSocketError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from . import _engine  # noqa: TC004 - bound at run time by _load_engine()
    from ._url import URL

__all__ = ["SEND_EOF", "TRANSITIONS", "Session", "State"]

logger = logging.getLogger("wsloop.client")

SEND_EOF = b""
"""In :meth:`Session.data_to_send`, the signal to half-close the TCP connection."""

_STATE_OF_ENGINE: dict[object, State] = {}


def _load_engine() -> None:
    """Import the engine (and websockets) when the first Session is made.

    So ``import wsloop`` works without websockets, as in a browser, where the
    browser driver skips this core.
    """
    if "_engine" in globals():
        return
    engine = importlib.import_module("wsloop._engine")
    _STATE_OF_ENGINE.update(
        {
            engine.E_CONNECTING: State.CONNECTING,
            engine.E_OPEN: State.OPEN,
            engine.E_CLOSING: State.CLOSING,
            engine.E_CLOSED: State.CLOSING,  # CLOSED only once Closed is emitted
        }
    )
    globals()["_engine"] = engine


DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20

_COLLECT_MIN = 64 * 1024
"""Frames at least this large are collected read by read, not buffered."""

SEND_SLICE = 1 << 20
"""The largest message sent as one frame, and the fragment size of larger ones.

Masking a slice takes a fraction of a millisecond: a ``send_binary()`` and
each driver step stay inside a frame's budget whatever the message's size.
"""

SEND_SLICE_DEFLATE = 64 << 10
"""The same with permessage-deflate, where each byte costs far more (compressing)."""


class Session:
    """One client connection attempt, without I/O.

    Args:
        url: the parsed URL (see :func:`wsloop.parse_url`).
        subprotocols: subprotocols to request; the connection fails unless
            the server selects one of them.
        compression: ``"deflate"`` to offer permessage-deflate, ``None`` not to.
        max_message_size: the largest inbound message, in bytes; ``None``
            for no limit.
        origin: the ``Origin`` header.
        headers: extra request headers.
        user_agent: the ``User-Agent`` header; ``None`` sends none.

    The handshake request is ready in :meth:`data_to_send` at once.
    """

    def __init__(
        self,
        url: URL,
        *,
        subprotocols: Sequence[str] = (),
        compression: str | None = "deflate",
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        origin: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        user_agent: str | None = None,
    ) -> None:
        _load_engine()
        self.url = url
        """The URL this session connects to."""
        self._engine = _engine.Engine(
            url,
            subprotocols=subprotocols,
            compression=compression,
            max_message_size=max_message_size,
            origin=origin,
            headers=headers,
            user_agent=user_agent,
        )
        self.state = State.CONNECTING
        """The current :class:`State` (a plain attribute: drivers read it on every read)."""
        self._events: list[Event] = []
        self._error: WebSocketError | None = None
        self._opened = False
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
        # A whole text message being collected is decoded read by read, so
        # that the read completing it pays only for joining the text.
        self._collect_decoder: codecs.BufferedIncrementalDecoder | None = None
        self._collect_text: list[str] = []
        # Bounded sends: [opcode, payload, sent so far] of each queued message;
        # the close that waits behind them. Made on the first large message:
        # an empty deque costs 0.7 KiB, on every idle connection.
        self._outgoing: deque[list[object]] | None = None
        self._slice = SEND_SLICE
        self.unsent = 0
        """Bytes of queued messages not framed yet (a driver adds them to its buffered amount)."""
        self._close_after: tuple[int, str] | None = None
        self.subprotocol: str | None = None
        """The subprotocol the server selected, once open."""
        self.extensions: tuple[str, ...] = ()
        """The names of the extensions in use, once open."""
        self.pongs_received: list[bytes] = []
        """Payloads of the pongs received since the driver last cleared it."""
        self.coalesce_pongs = False
        """Answer only the latest ping of each :meth:`receive_data` call.

        Drivers set it while their send buffer is backed up (RFC 6455 5.5.3
        allows it), so that a server pinging without reading cannot grow it.
        """

    # State.

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("= state %s -> %s", self.state.name, state.name)
            self.state = state

    def _is_closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def error(self) -> WebSocketError | None:
        """The exception behind the :class:`Error` event, if one was emitted."""
        return self._error

    # Receiving.

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes read from the network.

        A memoryview must be of bytes that do not change afterwards: parts of
        a large frame are kept without a copy until it is complete.
        """
        if self._native:
            self._receive_frames(data)
            return
        if self.state is State.CLOSED:
            return
        if type(data) is not bytes:
            data = bytes(data)
        engine = self._engine
        engine.coalesce_pongs = self.coalesce_pongs
        if self.state is State.CONNECTING:
            # Frames may follow the response in the same read: the engine
            # gets the response alone, so that the data frames after it can
            # be read natively once it has accepted the handshake.
            end = self._end_of_response(data)
            if end is not None and end < len(data):
                engine.receive_data(data[:end])
                self._process(engine.events())
                data = data[end:]
                if self._reads_natively():
                    self._receive_frames(data)
                    return
                if self._is_closed():
                    return
        engine.receive_data(data)
        self._process(engine.events())

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
            if b1 & 0x80 or b0 & 0x70 or 2 < opcode < 8 or opcode > 10:
                odd = True  # a masked frame, reserved bits, a reserved opcode
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
                        # data itself is immutable, kept without a copy; the buffer is reused.
                        first: bytes | memoryview = (
                            memoryview(data)[head:size] if mv is None else bytes(mv[head:size])
                        )
                        self._collect_parts = [first]
                        self._collect_need = end - size
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

    def _collect(self, data: bytes | memoryview) -> bytes | memoryview:
        """Take the next part of a large frame from ``data``; return what follows it."""
        need = self._collect_need
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

    def _data_frame(self, b0: int, chunk: bytes | bytearray | memoryview) -> bool:
        """Take one complete data frame, read natively or by the engine.

        ``b0`` is the frame's first byte (FIN and opcode). Returns False when
        the frame failed the connection (invalid UTF-8).
        """
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

    def _leave_native(self) -> None:
        """Give the engine back the reading, with what is buffered of the next frame."""
        if not self._native:
            return
        self._native = False
        rest = self._collect_header + b"".join(self._collect_parts) + self._rbuf
        self._end_collect()
        self._collect_text = []
        self._rbuf.clear()
        self._engine.feed(rest, self._fragment_size)
        self._process(self._engine.events())

    def receive_eof(self) -> None:
        """Report that the server closed its side of the TCP connection.

        The session ends: a :class:`Closed` event (after an :class:`Error`
        when the close was not clean) is queued and the state is CLOSED.
        """
        if self.state is State.CLOSED:
            return
        self._leave_native()
        self._engine.receive_eof()
        self._process(self._engine.events())
        if self._is_closed():  # the handshake failed: already finished
            return
        rcvd = self._engine.close_rcvd
        sent = self._engine.close_sent
        if rcvd is None and self._error is None:
            if sent is not None:
                reason = "server closed the connection without answering the close frame"
            elif self._opened:
                reason = "server closed the connection without a close frame"
            else:
                reason = "server closed the connection during the handshake"
            err = ConnectionClosedError(1006, reason)
            self._emit_error(err, reason)
        self._finish()

    def abort(self, exc: WebSocketError | None = None) -> None:
        """End the session because the transport failed or a timeout expired.

        ``exc`` becomes the :class:`Error` event unless one was emitted
        already; then :class:`Closed` follows. Does nothing once CLOSED.
        """
        if self.state is State.CLOSED:
            return
        if exc is not None and self._error is None:
            self._emit_error(exc)
        elif self._error is None:
            err = ConnectionClosedError(1006, "connection aborted")
            self._emit_error(err, "connection aborted")
        self._finish()

    def _process(self, items: list[object]) -> None:
        for item in items:
            if type(item) is tuple:
                kind, value = item
                if kind == "open":
                    self._on_open(value)
                else:  # "fail": the handshake was refused
                    self._emit_error(value)
                    self._finish()
                    return
                continue
            opcode: int = item.opcode  # type: ignore[attr-defined]
            data: bytes = item.data  # type: ignore[attr-defined]
            if opcode <= _engine.BINARY:  # TEXT, BINARY or CONT: as the native reader does
                fin: bool = item.fin  # type: ignore[attr-defined]
                if not self._data_frame(opcode | 0x80 if fin else opcode, data):
                    return
            elif opcode == _engine.PONG:
                self.pongs_received.append(bytes(data))
            elif opcode == _engine.CLOSE:
                self._assembly = bytearray()
                self._text_decoder = None
                self._fragment_size = None
            # PING: the engine queued the pong already.
        failure = self._engine.parser_failure()
        if (
            failure is not None
            and self._error is None
            and not (isinstance(failure, ConnectionClosedError))
        ):
            self._emit_error(failure)
        self._sync_state()

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

    def _fail_utf8(self) -> None:
        self._assembly = bytearray()
        self._text_decoder = None
        self._native = False
        self._engine.fail(1007, "invalid UTF-8")
        self._emit_error(
            InvalidUTF8("server sent a text message that is not valid UTF-8 (closing with 1007)")
        )
        self._sync_state()

    def _on_open(self, headers: dict[str, str]) -> None:
        engine = self._engine
        self.subprotocol = engine.subprotocol
        self.extensions = engine.extension_names
        self._opened = True
        self._native = engine.reads_natively()
        self._slice = SEND_SLICE_DEFLATE if self.extensions else SEND_SLICE
        self._set_state(State.OPEN)
        self._events.append(Opened(self.subprotocol, self.extensions, headers))

    def _sync_state(self) -> None:
        if self.state is not State.CLOSED:
            state = _STATE_OF_ENGINE[self._engine.state]
            if state is State.OPEN and self._close_after is not None:
                state = State.CLOSING  # closed by the application, its close frame queued
            self._set_state(state)

    def _emit_error(self, exc: WebSocketError, message: str | None = None) -> None:
        if self._error is not None:
            return
        self._error = exc
        text = message if message is not None else str(exc)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("! error: %s", text)
        self._events.append(Error(text, exc))

    def _finish(self) -> None:
        rcvd = self._engine.close_rcvd
        sent = self._engine.close_sent
        if rcvd is not None:
            code, reason = rcvd
        elif sent is not None and isinstance(self._error, ProtocolError):
            # The client failed the connection (1002, 1007, 1009): say why.
            code, reason = sent
        else:
            code, reason = 1006, ""
        clean = rcvd is not None and sent is not None and self._error is None
        self._native = False
        self._rbuf.clear()
        self._end_collect()
        self._collect_text = []
        self._drop_outgoing()
        self._set_state(State.CLOSED)
        self._events.append(Closed(code, reason, clean))

    # Sending.

    def send_text(self, text: str) -> bool:
        """Queue a text message. Returns ``False`` (and sends nothing) unless OPEN.

        An ASCII text longer than a slice is encoded slice by slice as it is
        sent; any other text is encoded here (so that a lone surrogate
        raises ``UnicodeEncodeError`` to the caller, and the byte count is
        exact), then sent in slices if it is long.
        """
        if self.state is not State.OPEN:
            return False
        if len(text) > self._slice and text.isascii():
            self._queue(_engine.TEXT, text)
            return True
        data = text.encode()
        if self._outgoing or len(data) > self._slice:
            self._queue(_engine.TEXT, data)
        else:
            self._engine.send_text(data)
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue a binary message. Returns ``False`` (and sends nothing) unless OPEN.

        A large ``bytes`` object is kept as it is until sent; a large
        ``bytearray`` or ``memoryview`` is copied once here, so that changing
        it afterwards does not change what is sent.
        """
        if self.state is not State.OPEN:
            return False
        if self._outgoing or len(data) > self._slice:
            self._queue(_engine.BINARY, data if type(data) is bytes else bytes(data))
        else:
            self._engine.send_binary(data)
        return True

    @property
    def sending(self) -> bool:
        """True while a queued message has fragments left for :meth:`data_to_send`."""
        return bool(self._outgoing)

    def _queue(self, opcode: int, payload: bytes | str) -> None:
        if self._outgoing is None:
            self._outgoing = deque()
        self._outgoing.append([opcode, payload, 0])
        self.unsent += len(payload)

    def _send_slice(self) -> None:
        """Frame the next slice of the first queued message (the engine queues the bytes)."""
        engine = self._engine
        if engine.state != _engine.E_OPEN:
            self._drop_outgoing()  # the server closed first: the rest is never sent
            return
        outgoing = self._outgoing
        assert outgoing  # called only while sending
        entry = outgoing[0]
        opcode, payload, pos = entry
        assert isinstance(payload, (bytes, str))
        assert isinstance(pos, int)
        end = min(pos + self._slice, len(payload))
        if isinstance(payload, str):
            chunk: bytes | memoryview = payload[pos:end].encode("ascii")
        else:
            chunk = memoryview(payload)[pos:end]
        assert isinstance(opcode, int)
        with _engine.map_engine_exceptions():
            engine.send_fragment(opcode if pos == 0 else _engine.CONT, chunk, end == len(payload))
        self.unsent -= end - pos
        if end < len(payload):
            entry[2] = end
            return
        outgoing.popleft()
        if not outgoing and self._close_after is not None:
            code, reason = self._close_after
            self._close_after = None
            self._close_now(code, reason)

    def _drop_outgoing(self) -> None:
        self._outgoing = None
        self.unsent = 0
        self._close_after = None

    def send_ping(self, data: bytes = b"") -> bool:
        """Queue a ping. Returns ``False`` unless OPEN."""
        if self.state is not State.OPEN:
            return False
        self._engine.send_ping(data)
        return True

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake.

        In CONNECTING the attempt is abandoned at once (as a browser does):
        Error, then Closed with 1006. In CLOSING or CLOSED nothing happens.
        """
        if self.state is State.OPEN:
            if self._outgoing:
                self._close_after = (code, reason)  # after the queued messages
                self._set_state(State.CLOSING)
                return
            self._close_now(code, reason)
        elif self.state is State.CONNECTING:
            self.abort(
                InvalidState("the connection was closed before it was established"),
            )

    def _close_now(self, code: int, reason: str) -> None:
        with _engine.map_engine_exceptions():
            self._engine.send_close(code, reason)
        self._leave_native()
        self._sync_state()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection with a close code, as RFC 6455 section 7.1.7 says."""
        if self.state is State.OPEN or self._close_after is not None:
            self._drop_outgoing()
            self._engine.fail(code, reason)
            self._leave_native()
            self._sync_state()

    # Draining.

    def events_received(self) -> list[Event]:
        """Return and forget the events produced so far."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes to write; ``SEND_EOF`` means half-close.

        While :attr:`sending`, each call frames one more slice of the queued
        message first.
        """
        if self.state is State.CLOSED:
            self._engine.data_to_send()
            return []
        if self._outgoing:
            self._send_slice()
        return self._engine.data_to_send()

    @property
    def close_handshake_done(self) -> bool:
        """True once both close frames were exchanged: only the TCP close remains."""
        engine = self._engine
        return engine.close_rcvd is not None and engine.close_sent is not None

    def close_expected(self) -> bool:
        """True when the server is expected to close the TCP connection soon."""
        state = self.state
        if state is State.OPEN or self._close_after is not None:
            return False  # the engine agrees while open: checked on every read
        return state is State.CLOSING or self._engine.close_expected()
