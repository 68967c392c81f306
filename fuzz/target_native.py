"""Fuzz target ``native``: the open phase's frame reading, native and by the engine.

While a connection is open, :class:`wsloop.Session` reads data frames itself
(``Session._receive_frames``, the *native* reader; whole compressed messages
too, with permessage-deflate) and hands the engine only control frames and
what it does not accept.

The input is what the server writes after its ``101`` response (which the
target makes, so every input starts open). Three leading bytes:

* byte 0, bit 0: negotiate permessage-deflate; bits 1-2: ``max_message_size``
  (None, 5, 32, 1 MiB);
* byte 1: the size of each read (0: one read);
* byte 2: what the client does after each read, two bits a read, in turn:
  nothing, send a text, ping, start the close.

Properties, with and without deflate, a differential one: the native
session, fed the reads (byte by byte once it has given the reading back to
the engine; see :func:`run`), produces exactly the events (messages, error
texts and types, close codes) and writes exactly the frames of a session
whose native reader is off, fed one byte at a time (as
``tests/test_native_reader.py`` states it); and both keep the event contract
(:func:`fuzz._common.check_client_events`; decompressed messages within
``max_message_size`` included). The native reader is on once open. Two
differences are allowed, each explained where it is checked:
:func:`_fails_utf8_earlier` and :func:`_later_error_closes`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import wsloop._engine  # noqa: F401 - imported by the first Session: imported here to be instrumented
from fuzz._common import Finding, check_client_events, chunks
from fuzz.target_session import accept_of
from wsloop import Closed, Error, InvalidUTF8, Opened, Session, State, parse_url

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wsloop import Event

SIZES = (None, 5, 32, 2**20)


def open_session(deflate: bool, max_size: int | None, native: bool) -> Session:
    """A session opened by a hand-made 101 response."""
    session = Session(
        parse_url("ws://fuzz.example/room"),
        compression="deflate" if deflate else None,
        max_message_size=max_size,
    )
    request = b"".join(session.data_to_send())
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_of(request) + b"\r\n"
    )
    if deflate:
        response += b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    session.receive_data(response + b"\r\n")
    if session.state is not State.OPEN:
        raise Finding(f"the handshake failed: {session.events_received()}")
    if not session._native:
        raise Finding(f"the native reader is off once open (deflate={deflate})")
    session._native = native
    return session


def act(session: Session, action: int) -> None:
    if action == 1:
        session.send_text("from the client")
    elif action == 2:
        session.send_ping(b"p")
    elif action == 3:
        session.send_close(4000, "bye")


def client_frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """The frames a client wrote (masked; the masks are random, the payloads not)."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            (length,), pos = struct.unpack_from("!H", data, pos), pos + 2
        elif length == 127:
            (length,), pos = struct.unpack_from("!Q", data, pos), pos + 8
        mask, pos = data[pos : pos + 4], pos + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[pos : pos + length]))
        pos += length
        out.append((b0 & 0x0F, bool(b0 & 0x80), payload))
    return out


def run(
    session: Session, reads: Sequence[bytes], actions: int, max_size: int | None, bytewise: bool
) -> tuple[list[Event], list[tuple[int, bool, bytes]], bool]:
    """Feed the reads (acting after each), then EOF; the events, frames sent, and EOF sent."""
    sent = bytearray()
    eof = False
    events: list[Event] = []
    for i, read in enumerate(reads):
        # Once the native reader has given the reading back (a close sent,
        # a frame it leaves to the engine), the engine reads the rest; it
        # parses every frame of a read before the session checks the UTF-8
        # of the first, so that with a bad text and a close frame in one
        # read it reports the close it read after the bad text. Fed byte by
        # byte, as the reference session is, it reads in stream order
        # (tests/test_native_reader.py compares the same way).
        if bytewise or not session._native:
            for k in range(len(read)):
                session.receive_data(read[k : k + 1])
        else:
            session.receive_data(read)
        act(session, (actions >> (2 * (i % 4))) & 3)
        events += session.events_received()
        check_client_events(events, max_size, finished=False)
    session.receive_eof()
    events += session.events_received()
    check_client_events(events, max_size)
    for chunk in session.data_to_send():
        if chunk:
            sent += chunk
        else:
            eof = True
    return events, client_frames(bytes(sent)), eof


def comparable(events: Sequence[Event]) -> list[object]:
    """Errors as text and type (exceptions compare by identity), Opened without its headers."""
    out: list[object] = []
    for e in events:
        if isinstance(e, Error):
            out.append(("Error", e.message, type(e.exception).__name__))
        elif isinstance(e, Opened):
            out.append(("Opened", e.subprotocol, e.extensions))  # the accept key is random
        else:
            out.append(e)
    return out


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, read_size, actions, stream = data[0], data[1], data[2], data[3:]
    deflate = bool(flags & 1)
    max_size = SIZES[(flags >> 1) & 3]
    reads = chunks(stream, read_size)
    native = run(open_session(deflate, max_size, True), reads, actions, max_size, False)
    engine = run(open_session(deflate, max_size, False), reads, actions, max_size, True)
    if _fails_utf8_earlier(native[0], engine[0]) or _later_error_closes(native[0], engine[0]):
        return
    if comparable(native[0]) != comparable(engine[0]):
        raise Finding(f"events differ:\n native {native[0]}\n engine {engine[0]}")
    if native[1:] != engine[1:]:
        raise Finding(f"frames sent differ:\n native {native[1:]}\n engine {engine[1:]}")


def _fails_utf8_earlier(native: Sequence[Event], engine: Sequence[Event]) -> bool:
    """The one allowed difference: invalid UTF-8 inside a large text frame.

    The native reader decodes a large text frame read by read, so it fails
    with 1007 as soon as the invalid bytes arrive; the engine fails only once
    the whole frame is in (or reports what came first: an EOF, a close). The
    messages before the error must be the same.
    """
    first = next((i for i, e in enumerate(native) if isinstance(e, Error)), None)
    if first is None or not isinstance(native[first].exception, InvalidUTF8):  # type: ignore[union-attr]
        return False
    other = next((i for i, e in enumerate(engine) if isinstance(e, Error)), None)
    if other is None or isinstance(engine[other].exception, InvalidUTF8):  # type: ignore[union-attr]
        return False  # the engine failed it too: they must agree on everything
    return comparable(native[:first]) == comparable(engine[:other])


def _later_error_closes(native: Sequence[Event], engine: Sequence[Event]) -> bool:
    """A known difference after the native reader hands a read back to the engine.

    A fragmented compressed message is left to the engine, which is given the
    rest of that read at once: it parses every frame in it before the session
    checks the UTF-8 of the first, so when a bad text is followed by a broken
    frame in the same read, both report the 1007 error, but the engine has
    already closed with the broken frame's code (the reference session, fed
    byte by byte, closes with 1007). Everything up to and including the error
    must agree; only the code and reason of the final Closed may differ.
    """
    if len(native) != len(engine) or len(native) < 2:
        return False
    error, closed = native[-2], native[-1]
    if not isinstance(error, Error) or not isinstance(error.exception, InvalidUTF8):
        return False
    if not isinstance(closed, Closed) or not isinstance(engine[-1], Closed):
        return False
    return comparable(native[:-1]) == comparable(engine[:-1]) and closed.code != 1000
