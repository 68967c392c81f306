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
  fails as soon as it arrives (code 1007). This and the native reading are
  :class:`~wsloop._sansio.reader.FrameReader`, which ``Session`` inherits
  (the module :mod:`wsloop._sansio.reader` says how they work);
* the ordering contract of :mod:`wsloop.events`: at most one :class:`Opened`,
  at most one :class:`Error`, and exactly one :class:`Closed`, last;
* the close code reported to the application: the server's close code when
  a close frame arrived (1005 if it had none), else the code the client sent
  when it failed the connection, else 1006;
* bounded sends: a message larger than one slice (:data:`SEND_SLICE`
  bytes, :data:`SEND_SLICE_DEFLATE` with compression) is queued whole and
  sent as fragments, one slice encoded (for text), masked (or compressed)
  per :meth:`Session.data_to_send` call, so that no single call of the
  application or of the driver pays for all of it. Messages sent meanwhile
  wait behind it, control frames (pings, pongs) go between its fragments,
  and a close waits until it is sent. Drivers keep calling
  :meth:`Session.data_to_send` while :attr:`Session.sending` is true and
  the network takes the bytes. How a message is cut, and how a long text
  is checked for lone surrogates without encoding it, is
  :mod:`wsloop._sansio.outgoing`.

The states and the changes between them (:class:`State`, :data:`TRANSITIONS`)
are drawn in :mod:`wsloop._sansio.state`; this module re-exports both.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from ._sansio.outgoing import MAX_UTF8, Outgoing, check_encodable
from ._sansio.reader import FrameReader
from ._sansio.state import TRANSITIONS, State
from .events import Closed, Error, Event, Opened
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

SEND_SLICE = 1 << 20
"""The largest message sent as one frame, and the fragment size of larger ones.

Masking a slice takes a fraction of a millisecond: a ``send_binary()`` and
each driver step stay inside a frame's budget whatever the message's size.
"""

SEND_SLICE_DEFLATE = 64 << 10
"""The same with permessage-deflate, where each byte costs far more (compressing)."""


class Session(FrameReader):
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
        self._init_reader(max_message_size)
        # Bounded sends: the queued messages (see _sansio/outgoing.py) and
        # the close that waits behind them. Made on the first large message:
        # an empty deque costs 0.7 KiB, on every idle connection.
        self._outgoing: deque[Outgoing] | None = None
        self._slice = SEND_SLICE
        self._text_slice = SEND_SLICE // MAX_UTF8  # longer non-ASCII text is encoded in slices
        self.unsent = 0
        """Bytes of queued messages not framed yet (a driver adds them to its buffered amount).

        Exact for binary and ASCII messages; for other text not encoded yet,
        an estimate from what was encoded so far, corrected slice by slice.
        """
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
        if self._native and self.extensions:
            self._inflater = engine.inflater  # permessage-deflate, read natively too
        self._slice = SEND_SLICE_DEFLATE if self.extensions else SEND_SLICE
        self._text_slice = self._slice // MAX_UTF8
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
        self._stop_native()
        self._drop_outgoing()
        self._set_state(State.CLOSED)
        self._events.append(Closed(code, reason, clean))

    # Sending.

    def send_text(self, text: str) -> bool:
        """Queue a text message. Returns ``False`` (and sends nothing) unless OPEN.

        A text that could take more than a slice in UTF-8 is encoded slice by
        slice as it is sent (:mod:`wsloop._sansio.outgoing`); a shorter one
        is encoded here.

        Raises:
            UnicodeEncodeError: the text holds a lone surrogate (checked here
                for a long text too, without encoding it).
        """
        if self.state is not State.OPEN:
            return False
        if len(text) > self._text_slice:
            if not text.isascii():
                check_encodable(text)
                self._queue(_engine.TEXT, text)
                return True
            if len(text) > self._slice:
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
        message = Outgoing(opcode, payload, self._slice)
        self._outgoing.append(message)
        self.unsent += message.counted

    def _send_slice(self) -> None:
        """Frame the next slice of the first queued message (the engine queues the bytes)."""
        engine = self._engine
        if engine.state != _engine.E_OPEN:
            self._drop_outgoing()  # the server closed first: the rest is never sent
            return
        outgoing = self._outgoing
        assert outgoing  # called only while sending
        message = outgoing[0]
        opcode = _engine.CONT if message.started else message.opcode
        before = message.counted
        chunk, last = message.next_fragment()
        with _engine.map_engine_exceptions():
            engine.send_fragment(opcode, chunk, last)
        self.unsent += message.counted - before
        if not last:
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
