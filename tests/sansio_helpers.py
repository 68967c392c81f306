"""In-memory helpers for testing :class:`wsloop.Session` without sockets.

A :class:`Pair` connects a client session to a server built from the
``websockets`` package's Sans-I/O :class:`~websockets.server.ServerProtocol`:
each side's ``data_to_send()`` is fed to the other by hand, so a test decides
exactly when bytes travel. :func:`frame` builds server frames byte by byte,
for the cases a well-behaved server would never send.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame
from websockets.server import ServerProtocol

from wsloop import (
    BinaryMessage,
    Closed,
    Error,
    Opened,
    Session,
    State,
    TextMessage,
    WebSocketError,
    parse_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from websockets.http11 import Request, Response

    from wsloop import Event

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PAIRS",
    "PING",
    "PONG",
    "TEXT",
    "Pair",
    "check_contract",
    "close_payload",
    "frame",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

PAIRS: list[Pair] = []
"""Every tracked :class:`Pair` made since a fixture last cleared the list."""


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """Serialize one frame as RFC 6455 section 5.2 draws it.

    ``rsv`` is the three reserved bits as a number from 0 to 7 (RSV1 is 4).
    ``length`` overrides the announced payload length.
    """
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes([first, mask_bit | size])
    elif size < 2**16:
        header = bytes([first, mask_bit | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack("!Q", size)
    if mask is not None:
        header += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The payload of a close frame: a 2-byte code, then the reason."""
    return struct.pack("!H", code) + reason


def check_contract(events: Sequence[Event]) -> None:
    """Assert the ordering contract of :mod:`wsloop.events` on a finished session."""
    kinds = [type(e).__name__ for e in events]
    closed = [i for i, e in enumerate(events) if isinstance(e, Closed)]
    assert len(closed) == 1, f"expected exactly one Closed: {kinds}"
    assert closed[0] == len(events) - 1, f"Closed is not last: {kinds}"
    last = events[-1]
    assert isinstance(last, Closed)
    errors = [i for i, e in enumerate(events) if isinstance(e, Error)]
    assert len(errors) <= 1, f"more than one Error: {kinds}"
    for i in errors:
        error = events[i]
        assert isinstance(error, Error)
        assert isinstance(error.exception, WebSocketError), repr(error.exception)
        assert error.message, "an Error needs a message"
    # Error before Closed whenever the close handshake did not complete.
    assert last.was_clean == (not errors), f"was_clean={last.was_clean} but events {kinds}"
    opened = [i for i, e in enumerate(events) if isinstance(e, Opened)]
    assert len(opened) <= 1, f"more than one Opened: {kinds}"
    messages = [i for i, e in enumerate(events) if isinstance(e, TextMessage | BinaryMessage)]
    if messages:
        assert opened, f"a message without Opened: {kinds}"
        assert opened[0] < messages[0], f"a message before Opened: {kinds}"
    if errors and messages:
        assert messages[-1] < errors[0], f"a message after Error: {kinds}"


class Pair:
    """A :class:`wsloop.Session` wired by hand to an in-memory websockets server.

    Args:
        url: the URL the client connects to.
        server_deflate: whether the server accepts permessage-deflate.
        server_subprotocols: what the server supports (``None``: nothing).
        track: add the pair to :data:`PAIRS`, for a fixture to check at the end.
        session_options: passed to :class:`wsloop.Session`.
    """

    def __init__(
        self,
        url: str = "ws://game.example/room?id=7",
        *,
        server_deflate: bool = True,
        server_subprotocols: Sequence[str] | None = None,
        track: bool = True,
        **session_options: object,
    ) -> None:
        self.session = Session(parse_url(url), **session_options)  # type: ignore[arg-type]
        self.server = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()] if server_deflate else None,
            subprotocols=list(server_subprotocols) if server_subprotocols else None,  # type: ignore[arg-type]
            max_size=None,
        )
        self.history: list[Event] = []
        """Every event the session produced, in order."""
        self.client_sent_eof = False
        if track:
            PAIRS.append(self)

    # Moving bytes.

    def client_to_server(self) -> list[bytes]:
        """Feed what the client wrote to the server; return those chunks."""
        chunks = self.session.data_to_send()
        for chunk in chunks:
            if chunk == b"":
                self.client_sent_eof = True
                self.server.receive_eof()
            elif not self.client_sent_eof:
                self.server.receive_data(chunk)
        return chunks

    def server_to_client(self) -> None:
        """Feed what the server wrote to the client (an EOF included)."""
        for chunk in self.server.data_to_send():
            if chunk == b"":
                self.session.receive_eof()
            else:
                self.session.receive_data(chunk)

    def feed(self, *chunks: bytes) -> list[Event]:
        """Feed raw bytes to the client as if the server sent them."""
        for chunk in chunks:
            self.session.receive_data(chunk)
        return self.events()

    def events(self) -> list[Event]:
        """The session's new events (also kept in :attr:`history`)."""
        new = self.session.events_received()
        self.history.extend(new)
        return new

    def frames_to_server(self) -> list[Frame]:
        """Deliver the client's bytes and return the frames the server parsed."""
        self.client_to_server()
        return [e for e in self.server.events_received() if isinstance(e, Frame)]

    def all_frames_to_server(self) -> list[Frame]:
        """:meth:`frames_to_server` until the session has no queued fragment left."""
        frames = self.frames_to_server()
        while self.session.sending:
            frames += self.frames_to_server()
        return frames

    # The opening handshake.

    def request(self) -> Request:
        """Deliver the client's handshake request; return it as the server parsed it."""
        self.client_to_server()
        received = self.server.events_received()
        assert len(received) == 1, received
        request = received[0]
        assert self.server.handshake_exc is None, self.server.handshake_exc
        return request  # type: ignore[return-value]

    def open(self, tweak: Callable[[Response], object] | None = None) -> list[Event]:
        """Run the opening handshake; ``tweak`` may edit the 101 response first."""
        request = self.request()
        response = self.server.accept(request)
        if tweak is not None:
            tweak(response)
        self.server.send_response(response)
        self.server_to_client()
        return self.events()

    def finish(self) -> list[Event]:
        """End the session with an EOF if it is not over; return the new events."""
        if self.session.state is not State.CLOSED:
            self.session.receive_eof()
        return self.events()


def messages(frames: list[Frame]) -> list[tuple[int, bytes]]:
    """The data messages that ``frames`` carry, fragments joined: (opcode, payload)."""
    out: list[tuple[int, bytes]] = []
    parts: list[bytes] = []
    first = 0
    for frame in frames:
        if frame.opcode > 2:
            continue  # control frames may come between fragments
        if frame.opcode != 0:
            first, parts = int(frame.opcode), []
        parts.append(frame.data)
        if frame.fin:
            out.append((first, b"".join(parts)))
    return out
