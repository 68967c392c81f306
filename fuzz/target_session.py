"""Fuzz target ``session``: a client :class:`wsloop.Session` fed whatever a server sends.

The input is what a server writes, from its first byte: the handshake
response (any HTTP, any headers), then frames, then EOF. Two leading bytes
choose the session's options and how the bytes are cut into reads:

* byte 0, bit 0: offer permessage-deflate; bits 1-2: ``max_message_size``
  (None, 16, 1024, 1 MiB); bit 3: request the subprotocol ``chat``; bits 4-5:
  what the client does once open (nothing, send a text, ping, start the
  close); bit 6: end with ``abort()`` instead of an EOF.
* byte 1: the size of each read (0: one read).

``{ACCEPT}`` in the response is replaced by the ``Sec-WebSocket-Accept``
value of the request's key (a random key per session: the fuzzer could not
find it), so that the seeds open and the fuzzer can explore the open phase.

Properties: no call raises; the events keep the contract that
:func:`fuzz._common.check_client_events` checks; the session is CLOSED at
the end and writes nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import re

import wsloop._engine  # noqa: F401 - imported by the first Session: imported here to be instrumented
from fuzz._common import Finding, check_client_events, chunks
from wsloop import Session, State, parse_url

SIZES = (None, 16, 1024, 2**20)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(rb"Sec-WebSocket-Key: ([A-Za-z0-9+/=]+)\r\n")


def accept_of(request: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value that answers the key in ``request``."""
    match = _KEY.search(request)
    assert match is not None, request
    return base64.b64encode(hashlib.sha1(match.group(1) + _GUID).digest())


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, read_size, stream = data[0], data[1], data[2:]
    max_size = SIZES[(flags >> 1) & 3]
    session = Session(
        parse_url("ws://fuzz.example/room"),
        compression="deflate" if flags & 1 else None,
        max_message_size=max_size,
        subprotocols=("chat",) if flags & 8 else (),
    )
    request = b"".join(session.data_to_send())
    stream = stream.replace(b"{ACCEPT}", accept_of(request))
    events = []
    acted = False
    for chunk in chunks(stream, read_size):
        session.receive_data(chunk)
        if not acted and session.state is State.OPEN:
            acted = True
            action = (flags >> 4) & 3
            if action == 1:
                session.send_text("hello from the client")
            elif action == 2:
                session.send_ping(b"p")
            elif action == 3:
                session.send_close(4000, "bye")
        for item in session.data_to_send():
            if type(item) is not bytes:
                raise Finding(f"data_to_send gave {type(item).__name__}")
        events += session.events_received()
        check_client_events(events, max_size, finished=False)
        session.close_expected()
    if flags & 64:
        session.abort()
    else:
        session.receive_eof()
    events += session.events_received()
    check_client_events(events, max_size)
    if session.state is not State.CLOSED:
        raise Finding(f"state {session.state} after the end")
    if session.data_to_send():
        raise Finding("bytes to send after Closed")
