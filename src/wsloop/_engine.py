"""The one module that imports the wrapped protocol engine.

wsloop speaks RFC 6455 through the Sans-I/O layer of the ``websockets``
package (:class:`websockets.client.ClientProtocol`). Everything that touches
that package lives here: the adjustments wsloop makes to its behaviour, and
the translation of its exceptions into :mod:`wsloop.exceptions`. No engine
type crosses this module's public functions.

Adjustments, each with its reason:

* **Subprotocols are mandatory once requested.** The Construct plugin and the
  browser fail the connection when the server does not select one of the
  requested subprotocols; websockets accepts a missing header.
* **A close frame wins over an unfinished fragmented message.** RFC 6455
  section 5.5.1 lets a close frame arrive between fragments and its closing
  handshake proceeds; websockets answers 1002 (Autobahn case 7.1.5). The
  relay's server protocol makes the same adjustment through
  :func:`close_ends_fragmented_message`.
* **Data frames may be parsed by the caller.** While the connection is open
  and no extension but permessage-deflate is in use, :class:`wsloop.sansio.Session` reads plain
  data frames itself and feeds the engine the rest from a frame boundary
  (:meth:`Engine.feed`), so the engine still decides every control frame
  and every protocol error.
* **permessage-deflate makes its zlib objects on first use.** websockets
  makes a compressor and a decompressor (about 46 KiB) as soon as the
  extension is negotiated, on every connection, idle or not;
  :class:`_LazyPerMessageDeflate` makes each when the first message needs it.
* **One pong per batch of received bytes while the send buffer is backed
  up.** websockets queues a pong for every ping; a server that pings without
  reading would grow the send buffer without bound. RFC 6455 5.5.3 lets an
  endpoint answer only the latest ping; drivers set ``coalesce_pongs``.
"""

from __future__ import annotations

import logging
import secrets
import struct
import zlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from websockets import exceptions as _wsexc
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State as _EngineState
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a websockets built without its C extension
    from websockets.utils import apply_mask

from . import exceptions as exc_

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from websockets.extensions.base import ClientExtensionFactory

    from ._url import URL

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "Engine",
    "close_ends_fragmented_message",
    "map_engine_exceptions",
]

# Opcodes as plain ints: frame.opcode is an IntEnum and compares equal.
CONT = int(Opcode.CONT)
TEXT = int(Opcode.TEXT)
BINARY = int(Opcode.BINARY)
CLOSE = int(Opcode.CLOSE)
PING = int(Opcode.PING)
PONG = int(Opcode.PONG)

# Engine states as ints, so that callers need no engine type.
E_CONNECTING = int(_EngineState.CONNECTING)
E_OPEN = int(_EngineState.OPEN)
E_CLOSING = int(_EngineState.CLOSING)
E_CLOSED = int(_EngineState.CLOSED)

logger = logging.getLogger("wsloop.client")


def close_ends_fragmented_message(protocol: Protocol, frame: Frame) -> None:
    """Let a close frame that arrives between fragments close cleanly.

    RFC 6455 5.4: "Control frames MAY be injected in the middle of a
    fragmented message." A close frame ends the connection, so the
    unfinished message is abandoned and the closing handshake proceeds; the
    engine would answer 1002 "incomplete fragmented message" (Autobahn case
    7.1.5). Call it first in ``recv_frame`` of a protocol subclass, client
    or server (the relay's :mod:`wsloop.relay._conn` does).
    """
    if frame.opcode is Opcode.CLOSE:
        protocol.current_size = None


class _StrictClientProtocol(ClientProtocol):
    """ClientProtocol with the adjustments listed in the module docstring."""

    coalesce_pongs = False
    """Answer only the latest ping of each batch (set while the send buffer is backed up)."""
    pending_pong: bytes | None = None
    """The payload of the latest ping not answered yet."""

    def process_subprotocol(self, headers: Any) -> Subprotocol | None:
        subprotocol = super().process_subprotocol(headers)
        if subprotocol is None and self.available_subprotocols:
            raise _wsexc.NegotiationError("no subprotocol selected")
        return subprotocol

    def recv_frame(self, frame: Frame) -> None:
        close_ends_fragmented_message(self, frame)
        if frame.opcode is Opcode.PING and self.coalesce_pongs:
            # RFC 6455 5.5.3 allows answering only the latest of several
            # pings: while the send buffer is backed up, one pong per batch
            # of received bytes (Engine.receive_data), so a ping storm cannot
            # grow the buffer of a server that does not read.
            self.pending_pong = bytes(frame.data)
            return
        super().recv_frame(frame)


@contextmanager
def map_engine_exceptions() -> Iterator[None]:
    """Turn engine exceptions raised inside the block into wsloop ones."""
    try:
        yield
    except _wsexc.InvalidState as exc:
        raise exc_.InvalidState(str(exc)) from exc
    except _wsexc.ProtocolError as exc:
        raise exc_.ProtocolError(str(exc)) from exc


def _describe_handshake(exc: BaseException, requested: Sequence[str]) -> exc_.WebSocketError:
    """Translate an engine handshake exception into a wsloop one."""
    new: exc_.WebSocketError
    if isinstance(exc, _wsexc.InvalidStatus):
        response = exc.response
        new = exc_.InvalidStatus(
            response.status_code,
            response.reason_phrase,
            dict(response.headers.raw_items()),
            bytes(response.body),
        )
    elif isinstance(exc, _wsexc.NegotiationError):
        text = str(exc)
        if text == "no subprotocol selected" or text.startswith("unsupported subprotocol"):
            offered = ", ".join(repr(p) for p in requested)
            if text == "no subprotocol selected":
                what = "selected none"
            else:
                what = "selected " + repr(text.split(": ", 1)[1])
            new = exc_.NegotiationError(
                f"server does not support the requested subprotocol {offered} ({what})"
            )
        elif text == "no subprotocols supported":
            new = exc_.NegotiationError(
                "server selected a subprotocol although none was requested"
            )
        else:
            new = exc_.NegotiationError(f"extension negotiation failed: {text}")
    elif isinstance(exc, _wsexc.InvalidUpgrade):
        new = exc_.HandshakeError(
            f"server did not upgrade to WebSocket ({exc}); is this a WebSocket endpoint?"
        )
    elif isinstance(exc, _wsexc.InvalidHeader) and exc.name == "Sec-WebSocket-Accept":
        new = exc_.HandshakeError(
            f"server sent a wrong Sec-WebSocket-Accept key ({exc}); it is not a "
            "WebSocket server, or something between changed the handshake"
        )
    elif isinstance(exc, _wsexc.InvalidHeader):
        new = exc_.HandshakeError(f"invalid handshake response: {exc}")
    elif isinstance(exc, _wsexc.InvalidMessage):
        cause = exc.__cause__
        if isinstance(cause, EOFError) and str(cause.__cause__) == "line without CRLF":
            # The engine words a line ended by LF alone as an EOF: it is not one.
            new = exc_.HandshakeError(
                "server did not send a valid HTTP response: a line ended without CRLF "
                "(is this an HTTP server?)"
            )
        elif isinstance(cause, EOFError):
            new = exc_.HandshakeError(
                "server closed the connection before answering the WebSocket upgrade"
            )
        else:
            detail = f": {cause}" if cause is not None else ""
            new = exc_.HandshakeError(f"server did not send a valid HTTP response{detail}")
    else:
        new = exc_.HandshakeError(f"WebSocket handshake failed: {exc}")
    new.__cause__ = exc
    return new


def _describe_parser_failure(exc: BaseException, limit: int | None) -> exc_.WebSocketError:
    """Translate the exception that stopped the engine's frame parser."""
    new: exc_.WebSocketError
    if isinstance(exc, _wsexc.PayloadTooBig):
        new = exc_.MessageTooBig(
            f"message too big: the server sent more than max_message_size={limit} bytes "
            "(closing with 1009)"
        )
    elif isinstance(exc, UnicodeDecodeError):
        new = exc_.InvalidUTF8(
            "server sent a close reason that is not valid UTF-8 (closing with 1007)"
        )
    elif isinstance(exc, _wsexc.ProtocolError):
        new = exc_.ProtocolError(f"protocol error: {exc} (closing with 1002)")
    elif isinstance(exc, EOFError):
        new = exc_.ConnectionClosedError(1006, "")
    else:
        new = exc_.ProtocolError(f"internal error while reading a frame: {exc!r}")
    new.__cause__ = exc
    return new


class _LazyPerMessageDeflate(PerMessageDeflate):
    """websockets' permessage-deflate, its zlib objects made when first used.

    The parent makes ``decoder`` and ``encoder`` in ``__init__`` unless the
    context is reset for every message (and then at the start of each
    message). Here ``__init__`` makes neither and :meth:`__getattr__`, which
    runs only while the attribute is missing, makes each on first use, with
    the parameters the parent would have used: an idle connection holds no
    zlib state.
    """

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: dict[Any, Any] | None = None,
    ) -> None:
        # As if the context were reset per message, so that nothing is made
        # (the parent still checks the parameters), then the real settings.
        super().__init__(
            True, True, remote_max_window_bits, local_max_window_bits, compress_settings
        )
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover

    def __getattr__(self, name: str) -> Any:
        if name == "decoder":
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            return self.decoder
        if name == "encoder":
            self.encoder = zlib.compressobj(
                wbits=-self.local_max_window_bits, **self.compress_settings
            )
            return self.encoder
        raise AttributeError(name)


class _LazyClientPerMessageDeflateFactory(ClientPerMessageDeflateFactory):
    """The client offer of permessage-deflate, accepted as :class:`_LazyPerMessageDeflate`."""

    def process_response_params(
        self, params: Sequence[tuple[str, str | None]], accepted_extensions: Sequence[Any]
    ) -> PerMessageDeflate:
        ext = super().process_response_params(params, accepted_extensions)
        return _LazyPerMessageDeflate(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
        )


def _extensions(compression: str | None) -> list[ClientExtensionFactory] | None:
    if compression is None:
        return None
    if compression == "deflate":
        # The offer browsers make: permessage-deflate; client_max_window_bits.
        return [_LazyClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})]
    raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")


class Engine:
    """A client connection of the wrapped engine, seen through plain types.

    Args:
        url: the parsed URL.
        subprotocols: the requested subprotocols, possibly empty.
        compression: ``"deflate"`` or ``None``.
        max_message_size: the largest inbound message in bytes, ``None`` for no limit.
        origin: the ``Origin`` header, if any.
        headers: extra handshake request headers.
        user_agent: the ``User-Agent`` header, ``None`` to send none.
    """

    __slots__ = (
        "_mask_pos",
        "_masks",
        "_plain",
        "_proto",
        "_requested",
        "data_to_send",
        "handshake_exc",
    )

    def __init__(
        self,
        url: URL,
        *,
        subprotocols: Sequence[str],
        compression: str | None,
        max_message_size: int | None,
        origin: str | None,
        headers: Sequence[tuple[str, str]],
        user_agent: str | None,
    ) -> None:
        self._requested = tuple(subprotocols)
        self._proto = _StrictClientProtocol(
            parse_uri(url.ws_url),
            origin=Origin(origin) if origin is not None else None,
            extensions=_extensions(compression),
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            max_size=max_message_size,
            logger=logger,
        )
        self.handshake_exc: exc_.WebSocketError | None = None
        self._plain = False  # open with no extension: data frames are encoded here
        self.data_to_send: Callable[[], list[bytes]] = self._proto.data_to_send
        """Return and forget the bytes to write (the engine's own method: no extra call)."""
        self._masks = b""
        self._mask_pos = 0
        request = self._proto.connect()
        if user_agent is not None:
            request.headers["User-Agent"] = user_agent
        for name, value in headers:
            request.headers[name] = value
        self._proto.send_request(request)

    # State and results of the handshake.

    @property
    def state(self) -> int:
        """The engine state, one of the ``E_*`` constants."""
        return int(self._proto.state)

    @property
    def subprotocol(self) -> str | None:
        return self._proto.subprotocol

    @property
    def extension_names(self) -> tuple[str, ...]:
        return tuple(ext.name for ext in self._proto.extensions)

    @property
    def close_rcvd(self) -> tuple[int, str] | None:
        close = self._proto.close_rcvd
        return None if close is None else (int(close.code), close.reason)

    @property
    def close_sent(self) -> tuple[int, str] | None:
        close = self._proto.close_sent
        return None if close is None else (int(close.code), close.reason)

    def parser_failure(self) -> exc_.WebSocketError | None:
        """The translated reason the frame parser stopped, if it did."""
        exc = self._proto.parser_exc
        if exc is None:
            return None
        return _describe_parser_failure(exc, self._proto.max_message_size)

    # Feeding and draining.

    @property
    def coalesce_pongs(self) -> bool:
        return self._proto.coalesce_pongs

    @coalesce_pongs.setter
    def coalesce_pongs(self, value: bool) -> None:
        self._proto.coalesce_pongs = value

    def receive_data(self, data: bytes) -> None:
        self._proto.receive_data(data)
        self.flush_pong()

    def feed(self, data: bytes, fragment_size: int | None) -> None:
        """Feed bytes that start at a frame boundary, after frames read natively.

        ``fragment_size`` is what the caller has received so far of an
        unfinished fragmented message (``None`` when none is unfinished), so
        that the engine checks continuation and size rules as if it had read
        those frames itself. Pongs owed are not sent until :meth:`flush_pong`.
        """
        proto = self._proto
        proto.current_size = fragment_size
        proto.receive_data(data)

    def flush_pong(self) -> None:
        """Send the pong owed for the latest ping held back by ``coalesce_pongs``."""
        proto = self._proto
        pong = proto.pending_pong
        if pong is not None:
            proto.pending_pong = None
            if proto.state is _EngineState.OPEN:
                proto.send_pong(pong)

    def reads_natively(self) -> bool:
        """True when the caller may parse data frames itself from now on.

        The connection is open, no extension transforms frames but
        permessage-deflate (see :meth:`inflater`), and frame debug logging
        is off. The caller then hands the engine every control frame and
        anything it does not accept, from a frame boundary, with :meth:`feed`.
        """
        proto = self._proto
        if proto.state is not _EngineState.OPEN or proto.debug:
            return False
        return not proto.extensions or self._deflate() is not None

    def _deflate(self) -> _LazyPerMessageDeflate | None:
        extensions = self._proto.extensions
        if len(extensions) == 1 and type(extensions[0]) is _LazyPerMessageDeflate:
            return extensions[0]
        return None

    def inflater(self) -> Any:
        """The decompressor of the next compressed message, or ``None`` without deflate.

        With context takeover it is the one the engine uses too (made on
        first use, see :class:`_LazyPerMessageDeflate`), so that the engine
        reads on with the same context once the caller gives it the reading
        back; without, a fresh one (RFC 7692 7.2.2), sized by the
        negotiated window bits.
        """
        ext = self._deflate()
        if ext is None:
            return None
        if ext.remote_no_context_takeover:
            return zlib.decompressobj(wbits=-ext.remote_max_window_bits)
        return ext.decoder

    def fail_inflate(self, too_big: bool) -> None:
        """Fail as the engine does when inflating a message read by the caller fails.

        ``too_big``: the message inflates past ``max_message_size`` (1009);
        else the compressed data is invalid (1002).
        """
        proto = self._proto
        exc: Exception
        if too_big:
            exc = _wsexc.PayloadTooBig(None, proto.max_message_size)
            exc.set_current_size(proto.current_size)
            proto.fail(1009, str(exc))
        else:
            exc = _wsexc.ProtocolError("decompression failed")
            proto.fail(1002, str(exc))
        proto.parser_exc = exc

    def receive_eof(self) -> None:
        self._proto.receive_eof()

    def events(self) -> list[Any]:
        """Return what arrived: ``("open", headers)``, ``("fail", exc)`` or frames.

        Frames are returned as the engine's frame objects, read only through
        ``.opcode``, ``.data`` and ``.fin``, to keep the hot path free of copies.
        """
        out: list[Any] = []
        for event in self._proto.events_received():
            if isinstance(event, Response):
                if self._proto.handshake_exc is not None:
                    self.handshake_exc = _describe_handshake(
                        self._proto.handshake_exc, self._requested
                    )
                    out.append(("fail", self.handshake_exc))
                else:
                    proto = self._proto
                    self._plain = not proto.extensions and not proto.debug
                    self._drop_handshake_parser()
                    headers: dict[str, str] = {}
                    for name, value in event.headers.raw_items():
                        headers[name] = f"{headers[name]}, {value}" if name in headers else value
                    out.append(("open", headers))
            else:
                out.append(event)
        if self._proto.handshake_exc is not None and self.handshake_exc is None:
            # No response could be parsed at all.
            self.handshake_exc = _describe_handshake(self._proto.handshake_exc, self._requested)
            out.append(("fail", self.handshake_exc))
        return out

    def close_expected(self) -> bool:
        return self._proto.close_expected()

    def _drop_handshake_parser(self) -> None:
        """Swap the engine's parser for a fresh frame parser once the handshake is done.

        The client parser reads the response, then runs the frame parser from
        inside itself, so the response (headers, body: ~2 KiB) stays alive as
        one of its locals for the whole connection. Swapped at a frame
        boundary with nothing buffered, the fresh parser is in the same state.
        """
        proto = self._proto
        if proto.reader.buffer or proto.state is not _EngineState.OPEN:
            return
        parser = Protocol.parse(proto)
        next(parser)
        proto.parser = parser

    # Sending.

    def send_text(self, data: bytes) -> None:
        proto = self._proto
        if self._plain and _can_encode(proto):
            proto.writes.extend(_encode_frame(0x81, data, self._mask()))
        else:
            proto.send_text(data)

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        proto = self._proto
        if self._plain and _can_encode(proto):
            proto.writes.extend(_encode_frame(0x82, data, self._mask()))
        else:
            proto.send_binary(data)

    def send_fragment(self, opcode: int, data: bytes | memoryview, fin: bool) -> None:
        """One frame of a message sent in parts: ``opcode`` TEXT or BINARY first, then CONT.

        The session sends a large message this way, a bounded slice per
        :meth:`data_to_send` call. While the connection is plain, every frame
        of the message is encoded here; otherwise the engine encodes (and
        compresses) each, keeping its compression context across them.
        """
        proto = self._proto
        if self._plain:
            proto.writes.extend(_encode_frame((0x80 if fin else 0) | opcode, data, self._mask()))
        elif opcode == CONT:
            proto.send_continuation(data, fin)
        elif opcode == TEXT:
            proto.send_text(data, fin)
        else:
            proto.send_binary(data, fin)

    def _mask(self) -> bytes:
        """A frame mask: 4 bytes of 64 masks drawn at once from the OS CSPRNG."""
        pos = self._mask_pos
        if pos >= len(self._masks):
            self._masks = secrets.token_bytes(256)
            pos = 0
        self._mask_pos = pos + 4
        return self._masks[pos : pos + 4]

    def send_ping(self, data: bytes) -> None:
        self._proto.send_ping(data)

    def send_close(self, code: int, reason: str) -> None:
        self._proto.send_close(code, reason)

    def fail(self, code: int, reason: str) -> None:
        self._proto.fail(code, reason)


def _can_encode(proto: ClientProtocol) -> bool:
    """True when a whole data frame may be encoded here instead of by the engine.

    The engine's encoder builds a Frame, checks it, copies the payload
    through a BytesIO and draws each 4-byte mask from the OS; for an
    unfragmented frame without extensions the result is the same bytes.
    Callers check ``Engine._plain`` (open, no extension, no debug logging)
    first; this adds what may change while open.
    """
    return proto.state is _EngineState.OPEN and not proto.expect_continuation_frame


_BIG_FRAME = 16 * 1024


def _encode_frame(head1: int, data: bytes | bytearray | memoryview, mask: bytes) -> list[bytes]:
    """A masked frame: header and payload in one chunk, or two for a large payload."""
    length = len(data)
    if length < 126:
        header = bytes((head1, 0x80 | length)) + mask
    elif length < 65536:
        header = struct.pack("!BBH", head1, 0xFE, length) + mask
    else:
        header = struct.pack("!BBQ", head1, 0xFF, length) + mask
    body = apply_mask(data, mask)
    return [header, body] if length >= _BIG_FRAME else [header + body]
