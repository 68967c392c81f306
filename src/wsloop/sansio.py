"""The Sans-I/O core: one client connection as bytes in, events and bytes out.

A :class:`Session` knows nothing of sockets, threads or clocks. A driver
creates one per ``connect()``, writes :meth:`Session.data_to_send` to the
network, feeds what it reads to :meth:`Session.receive_data` and
:meth:`Session.receive_eof`, reports failures of the transport with
:meth:`Session.abort`, and hands :meth:`Session.events_received` to the
application.

Theory of operation
-------------------
The wrapped engine parses frames and runs the opening and closing handshakes.
The session adds what a client object needs on top of it:

* message assembly, with UTF-8 checked frame by frame so that invalid text
  fails as soon as it arrives (code 1007);
* the ordering contract of :mod:`wsloop.events`: at most one :class:`Opened`,
  at most one :class:`Error`, and exactly one :class:`Closed`, last;
* the close code reported to the application: the server's close code when
  a close frame arrived (1005 if it had none), else the code the client sent
  when it failed the connection, else 1006.

State transitions (the docs diagram is drawn from :data:`TRANSITIONS`)::

    CONNECTING --handshake accepted--> OPEN --send_close/close rcvd--> CLOSING
    CONNECTING/OPEN/CLOSING --EOF or abort--> CLOSED
"""

from __future__ import annotations

import codecs
import enum
import importlib
import logging
from typing import TYPE_CHECKING

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


class State(enum.Enum):
    """Where a connection stands. Compare with ``is``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


TRANSITIONS: dict[State, dict[str, State]] = {
    State.CONNECTING: {
        "handshake accepted": State.OPEN,
        "handshake failed": State.CLOSED,
        "abort": State.CLOSED,
    },
    State.OPEN: {
        "send_close": State.CLOSING,
        "close frame received": State.CLOSING,
        "protocol error": State.CLOSING,
        "EOF": State.CLOSED,
        "abort": State.CLOSED,
    },
    State.CLOSING: {"EOF": State.CLOSED, "abort": State.CLOSED},
    State.CLOSED: {},
}
"""Every state change a session makes, by the cause."""

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
        self._state = State.CONNECTING
        self._events: list[Event] = []
        self._error: WebSocketError | None = None
        self._opened = False
        # Message assembly: the fragments' bytes in one buffer, whatever their number.
        self._assembly = bytearray()
        self._text_decoder: codecs.BufferedIncrementalDecoder | None = None
        self._fragmented_text = False
        self.subprotocol: str | None = None
        """The subprotocol the server selected, once open."""
        self.extensions: tuple[str, ...] = ()
        """The names of the extensions in use, once open."""
        self.pongs_received: list[bytes] = []
        """Payloads of the pongs received since the driver last cleared it."""

    # State.

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("= state %s -> %s", self._state.name, state.name)
            self._state = state

    def _is_closed(self) -> bool:
        return self._state is State.CLOSED

    @property
    def error(self) -> WebSocketError | None:
        """The exception behind the :class:`Error` event, if one was emitted."""
        return self._error

    # Receiving.

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the network."""
        if self._state is State.CLOSED:
            return
        engine = self._engine
        engine.receive_data(data)
        self._process(engine.events())

    def receive_eof(self) -> None:
        """Report that the server closed its side of the TCP connection.

        The session ends: a :class:`Closed` event (after an :class:`Error`
        when the close was not clean) is queued and the state is CLOSED.
        """
        if self._state is State.CLOSED:
            return
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
        if self._state is State.CLOSED:
            return
        if exc is not None and self._error is None:
            self._emit_error(exc)
        elif self._error is None:
            err = ConnectionClosedError(1006, "connection aborted")
            self._emit_error(err, "connection aborted")
        self._finish()

    def _process(self, items: list[object]) -> None:
        events = self._events
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
            fin: bool = item.fin  # type: ignore[attr-defined]
            if opcode == _engine.TEXT:
                if fin:
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        self._fail_utf8()
                        return
                    events.append(TextMessage(text))
                else:
                    self._fragmented_text = True
                    self._text_decoder = codecs.getincrementaldecoder("utf-8")()
                    self._assembly = bytearray()
                    if not self._decode_part(data, False):
                        return
            elif opcode == _engine.BINARY:
                if fin:
                    events.append(BinaryMessage(bytes(data)))
                else:
                    self._fragmented_text = False
                    self._assembly = bytearray(data)
            elif opcode == _engine.CONT:
                if self._fragmented_text:
                    if not self._decode_part(data, fin):
                        return
                    if fin:
                        events.append(TextMessage(self._assembly.decode()))
                        self._assembly = bytearray()
                        self._text_decoder = None
                else:
                    self._assembly += data
                    if fin:
                        events.append(BinaryMessage(bytes(self._assembly)))
                        self._assembly = bytearray()
            elif opcode == _engine.PONG:
                self.pongs_received.append(bytes(data))
            elif opcode == _engine.CLOSE:
                self._assembly = bytearray()
                self._text_decoder = None
            # PING: the engine queued the pong already.
        failure = self._engine.parser_failure()
        if (
            failure is not None
            and self._error is None
            and not (isinstance(failure, ConnectionClosedError))
        ):
            self._emit_error(failure)
        self._sync_state()

    def _decode_part(self, data: bytes, final: bool) -> bool:
        decoder = self._text_decoder
        assert decoder is not None
        try:
            decoder.decode(data, final)  # checks; the text is decoded once, when complete
        except UnicodeDecodeError:
            self._fail_utf8()
            return False
        self._assembly += data
        return True

    def _fail_utf8(self) -> None:
        self._assembly = bytearray()
        self._text_decoder = None
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
        self._set_state(State.OPEN)
        self._events.append(Opened(self.subprotocol, self.extensions, headers))

    def _sync_state(self) -> None:
        if self._state is not State.CLOSED:
            self._set_state(_STATE_OF_ENGINE[self._engine.state])

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
        self._set_state(State.CLOSED)
        self._events.append(Closed(code, reason, clean))

    # Sending.

    def send_text(self, text: str) -> bool:
        """Queue a text message. Returns ``False`` (and sends nothing) unless OPEN."""
        if self._state is not State.OPEN:
            return False
        self._engine.send_text(text.encode())
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue a binary message. Returns ``False`` (and sends nothing) unless OPEN."""
        if self._state is not State.OPEN:
            return False
        self._engine.send_binary(data)
        return True

    def send_ping(self, data: bytes = b"") -> bool:
        """Queue a ping. Returns ``False`` unless OPEN."""
        if self._state is not State.OPEN:
            return False
        self._engine.send_ping(data)
        return True

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake.

        In CONNECTING the attempt is abandoned at once (as a browser does):
        Error, then Closed with 1006. In CLOSING or CLOSED nothing happens.
        """
        if self._state is State.OPEN:
            with _engine.map_engine_exceptions():
                self._engine.send_close(code, reason)
            self._sync_state()
        elif self._state is State.CONNECTING:
            self.abort(
                InvalidState("the connection was closed before it was established"),
            )

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection with a close code, as RFC 6455 section 7.1.7 says."""
        if self._state is State.OPEN:
            self._engine.fail(code, reason)
            self._sync_state()

    # Draining.

    def events_received(self) -> list[Event]:
        """Return and forget the events produced so far."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes to write; ``SEND_EOF`` means half-close."""
        if self._state is State.CLOSED:
            self._engine.data_to_send()
            return []
        return self._engine.data_to_send()

    @property
    def coalesce_pongs(self) -> bool:
        """Answer only the latest ping of each :meth:`receive_data` call.

        Drivers set it while their send buffer is backed up (RFC 6455 5.5.3
        allows it), so that a server pinging without reading cannot grow it.
        """
        return self._engine.coalesce_pongs

    @coalesce_pongs.setter
    def coalesce_pongs(self, value: bool) -> None:
        self._engine.coalesce_pongs = value

    @property
    def close_handshake_done(self) -> bool:
        """True once both close frames were exchanged: only the TCP close remains."""
        engine = self._engine
        return engine.close_rcvd is not None and engine.close_sent is not None

    def close_expected(self) -> bool:
        """True when the server is expected to close the TCP connection soon."""
        return self._state is State.CLOSING or self._engine.close_expected()
