"""Tests for :class:`wsloop.Session`, the Sans-I/O core, without sockets.

The server is the ``websockets`` package's Sans-I/O ``ServerProtocol`` (see
:mod:`sansio_helpers`); frames no sane server would send are written byte by
byte with :func:`sansio_helpers.frame`. After every test, each session made
through a :class:`~sansio_helpers.Pair` is ended with an EOF and its whole
event history is checked against the ordering contract of :mod:`wsloop.events`.
"""

from __future__ import annotations

import base64
import random
from typing import TYPE_CHECKING
from unittest.mock import patch

import pytest

from sansio_helpers import (
    BINARY,
    CLOSE,
    CONT,
    PAIRS,
    PING,
    PONG,
    TEXT,
    Pair,
    check_contract,
    close_payload,
    frame,
    messages,
)
from wsloop import (
    BinaryMessage,
    Closed,
    ConnectionClosedError,
    Error,
    HandshakeError,
    InvalidState,
    InvalidStatus,
    InvalidUTF8,
    MessageTooBig,
    NegotiationError,
    Opened,
    ProtocolError,
    Session,
    State,
    TextMessage,
    TimeoutError,
    WebSocketError,
    parse_url,
)
from wsloop.sansio import SEND_EOF, SEND_SLICE, SEND_SLICE_DEFLATE

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from websockets.http11 import Response

    from wsloop import Event


@pytest.fixture(autouse=True)
def _contract() -> Iterator[None]:
    """Check the ordering contract on every session a test made."""
    PAIRS.clear()
    yield
    for pair in PAIRS:
        pair.finish()
        check_contract(pair.history)
        assert pair.session.state is State.CLOSED
        assert pair.session.data_to_send() == []
    PAIRS.clear()


def only(events: Sequence[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def the_error(events: Sequence[Event]) -> Error:
    errors = only(events, Error)
    assert len(errors) == 1, events
    return errors[0]


def the_closed(events: Sequence[Event]) -> Closed:
    closed = only(events, Closed)
    assert len(closed) == 1, events
    return closed[0]


def set_header(response: Response, name: str, value: str) -> None:
    """Replace a response header (websockets' Headers appends on assignment)."""
    if name in response.headers:
        del response.headers[name]
    response.headers[name] = value


def open_pair(**options: object) -> Pair:
    pair = Pair(**options)  # type: ignore[arg-type]
    [opened] = pair.open()
    assert isinstance(opened, Opened)
    assert pair.session.state is State.OPEN
    return pair


# The opening handshake: the request.


def test_request_line_and_required_headers() -> None:
    pair = Pair("ws://game.example/room?id=7")
    raw = b"".join(pair.session.data_to_send())
    assert raw.startswith(b"GET /room?id=7 HTTP/1.1\r\n")
    assert raw.endswith(b"\r\n\r\n")
    pair.server.receive_data(raw)
    [request] = pair.server.events_received()
    headers = request.headers
    assert headers["Host"] == "game.example"
    assert headers["Upgrade"].lower() == "websocket"
    assert "upgrade" in headers["Connection"].lower()
    assert headers["Sec-WebSocket-Version"] == "13"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"], validate=True)) == 16
    # Nothing was asked for, so nothing is offered.
    assert "Sec-WebSocket-Protocol" not in headers
    assert "Origin" not in headers
    assert "User-Agent" not in headers


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://game.example:8080/", "game.example:8080"),
        ("wss://game.example/", "game.example"),
        ("ws://[::1]:9000/", "[::1]:9000"),
        ("ws://bücher.example/", "xn--bcher-kva.example"),
    ],
)
def test_host_header(url: str, host: str) -> None:
    assert Pair(url).request().headers["Host"] == host


def test_key_is_fresh_for_each_session() -> None:
    keys = {Pair().request().headers["Sec-WebSocket-Key"] for _ in range(3)}
    assert len(keys) == 3


def test_deflate_offered_by_default() -> None:
    offer = Pair().request().headers["Sec-WebSocket-Extensions"]
    assert offer.split(";")[0].strip() == "permessage-deflate"


def test_no_extension_offered_without_compression() -> None:
    assert "Sec-WebSocket-Extensions" not in Pair(compression=None).request().headers


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression"):
        Session(parse_url("ws://h/"), compression="gzip")


def test_origin_extra_headers_and_user_agent() -> None:
    pair = Pair(
        origin="https://game.example",
        headers=[("X-Player", "ada"), ("Cookie", "session=1")],
        user_agent="Game/1.0",
    )
    headers = pair.request().headers
    assert headers["Origin"] == "https://game.example"
    assert headers["X-Player"] == "ada"
    assert headers["Cookie"] == "session=1"
    assert headers["User-Agent"] == "Game/1.0"


def test_requested_subprotocols_are_listed_in_order() -> None:
    headers = Pair(subprotocols=["v2.game", "v1.game"]).request().headers
    offered = [p.strip() for p in headers["Sec-WebSocket-Protocol"].split(",")]
    assert offered == ["v2.game", "v1.game"]


# The opening handshake: the response.


def test_opened_fields_with_deflate() -> None:
    pair = Pair()
    [opened] = pair.open()
    assert isinstance(opened, Opened)
    assert opened.subprotocol is None
    assert opened.extensions == ("permessage-deflate",)
    assert type(opened.headers) is dict
    assert opened.headers["Upgrade"] == "websocket"
    assert "Sec-WebSocket-Accept" in opened.headers
    assert pair.session.state is State.OPEN
    assert pair.session.extensions == ("permessage-deflate",)
    assert pair.session.subprotocol is None


@pytest.mark.parametrize(("client", "server"), [("deflate", False), (None, True), (None, False)])
def test_opened_without_deflate(client: str | None, server: bool) -> None:
    pair = Pair(compression=client, server_deflate=server)
    [opened] = pair.open()
    assert isinstance(opened, Opened)
    assert opened.extensions == ()
    assert "Sec-WebSocket-Extensions" not in opened.headers


def test_opened_headers_join_repeated_fields() -> None:
    def tweak(response: Response) -> None:
        response.headers["X-Tag"] = "a"
        response.headers["X-Tag"] = "b"

    [opened] = Pair().open(tweak)
    assert isinstance(opened, Opened)
    assert opened.headers["X-Tag"] == "a, b"


def test_handshake_response_split_byte_by_byte_with_a_message_behind_it() -> None:
    pair = Pair(compression=None)
    response = pair.server.accept(pair.request())
    pair.server.send_response(response)
    pair.server.send_text("première".encode())
    raw = b"".join(pair.server.data_to_send())
    for i in range(len(raw)):
        pair.session.receive_data(raw[i : i + 1])
    events = pair.events()
    assert [type(e) for e in events] == [Opened, TextMessage]
    assert events[1] == TextMessage("première")


def test_hand_written_101_with_the_rfc_example_key() -> None:
    # RFC 6455 section 1.3: key "dGhlIHNhbXBsZSBub25jZQ==" (the bytes of
    # "the sample nonce") is answered with "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    with patch("secrets.token_bytes", return_value=b"the sample nonce"):
        pair = Pair(compression=None)
    raw = b"".join(pair.session.data_to_send())
    assert b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in raw
    [opened] = pair.feed(
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    assert opened == Opened(
        None,
        (),
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        },
    )


def test_masks_come_from_secrets() -> None:
    pair = open_pair(compression=None)
    with patch("secrets.token_bytes", return_value=b"\x01\x02\x03\x04"):
        assert pair.session.send_text("hi")
    # FIN + text, MASK + length 2, the mask, then "h" ^ 0x01 and "i" ^ 0x02.
    assert pair.session.data_to_send() == [b"\x81\x82\x01\x02\x03\x04\x69\x6b"]


def test_wrong_accept_key() -> None:
    pair = Pair()
    pair.open(lambda r: set_header(r, "Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
    error = the_error(pair.history)
    assert type(error.exception) is HandshakeError
    assert "Sec-WebSocket-Accept" in error.message
    assert the_closed(pair.history) == Closed(1006, "", False)
    assert not only(pair.history, Opened)
    assert pair.session.state is State.CLOSED


def test_missing_upgrade_header() -> None:
    pair = Pair()
    pair.open(lambda r: r.headers.__delitem__("Upgrade"))
    error = the_error(pair.history)
    assert type(error.exception) is HandshakeError
    assert "upgrade" in error.message.lower()
    assert the_closed(pair.history).code == 1006


def test_non_101_response() -> None:
    pair = Pair()
    pair.request()
    pair.server.send_response(pair.server.reject(404, "No such room\nsecond line"))
    pair.server_to_client()
    events = pair.events()
    error = the_error(events)
    exc = error.exception
    assert isinstance(exc, InvalidStatus)
    assert exc.status == 404
    assert exc.body == b"No such room\nsecond line"
    assert "404" in error.message
    assert "No such room" in error.message
    assert "second line" not in error.message
    assert [type(e) for e in events] == [Error, Closed]
    assert events[-1] == Closed(1006, "", False)


def test_redirect_names_the_location() -> None:
    pair = Pair()
    pair.request()
    response = pair.server.reject(302, "")
    response.headers["Location"] = "wss://elsewhere.example/room"
    pair.server.send_response(response)
    pair.server_to_client()
    error = the_error(pair.events())
    assert isinstance(error.exception, InvalidStatus)
    assert "302" in error.message
    assert "wss://elsewhere.example/room" in error.message


def test_garbage_instead_of_http() -> None:
    events = Pair().feed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    error = the_error(events)
    assert isinstance(error.exception, HandshakeError)
    assert events[-1] == Closed(1006, "", False)


@pytest.mark.parametrize("partial", [b"", b"HTTP/1.1 101 Switching Pro", b"HTTP/1.1 101 OK\r\nUp"])
def test_eof_during_handshake(partial: bytes) -> None:
    pair = Pair()
    pair.client_to_server()
    pair.feed(partial)
    pair.session.receive_eof()
    events = pair.events()
    error = the_error(events)
    assert isinstance(error.exception, HandshakeError)
    assert "closed the connection" in error.message
    assert events == [error, Closed(1006, "", False)]


# Subprotocols.


def test_subprotocol_selected() -> None:
    pair = Pair(subprotocols=["v1.game", "v2.game"], server_subprotocols=["v2.game"])
    [opened] = pair.open()
    assert isinstance(opened, Opened)
    assert opened.subprotocol == "v2.game"
    assert pair.session.subprotocol == "v2.game"


def test_subprotocol_requested_but_none_selected() -> None:
    pair = Pair(subprotocols=["chat.v1"])
    events = pair.open()
    error = the_error(events)
    assert isinstance(error.exception, NegotiationError)
    assert "chat.v1" in error.message
    assert events[-1] == Closed(1006, "", False)
    assert not only(events, Opened)
    assert pair.session.state is State.CLOSED
    assert pair.session.subprotocol is None
    assert not pair.session.send_text("too late")


def test_server_selects_a_subprotocol_not_offered() -> None:
    pair = Pair(subprotocols=["chat.v1"])
    events = pair.open(lambda r: set_header(r, "Sec-WebSocket-Protocol", "chat.v9"))
    error = the_error(events)
    assert isinstance(error.exception, NegotiationError)
    assert "chat.v1" in error.message
    assert "chat.v9" in error.message
    assert not only(events, Opened)
    assert events[-1] == Closed(1006, "", False)


def test_server_sends_a_subprotocol_none_was_requested() -> None:
    pair = Pair()
    events = pair.open(lambda r: set_header(r, "Sec-WebSocket-Protocol", "chat.v1"))
    error = the_error(events)
    assert isinstance(error.exception, NegotiationError)
    assert "subprotocol" in error.message
    assert not only(events, Opened)
    assert events[-1].code == 1006  # type: ignore[union-attr]


def test_extension_not_offered_is_refused() -> None:
    pair = Pair(compression=None)
    events = pair.open(lambda r: set_header(r, "Sec-WebSocket-Extensions", "permessage-deflate"))
    error = the_error(events)
    assert isinstance(error.exception, NegotiationError)
    assert not only(events, Opened)


# Messages.


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize(
    "text", ["", "hello", "héllo wörld ✓ 🎮", "x" * 70_000], ids=["empty", "ascii", "utf8", "long"]
)
def test_text_round_trip(compression: str | None, text: str) -> None:
    pair = open_pair(compression=compression)
    assert pair.session.send_text(text)
    assert messages(pair.all_frames_to_server()) == [(TEXT, text.encode())]
    pair.server.send_text(text.encode())
    pair.server_to_client()
    assert pair.events() == [TextMessage(text)]


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_binary_round_trip(compression: str | None, kind: type) -> None:
    data = bytes(range(256)) * 40
    pair = open_pair(compression=compression)
    assert pair.session.send_binary(kind(data))
    [sent] = pair.frames_to_server()
    assert sent.opcode == BINARY
    assert sent.data == data
    pair.server.send_binary(data)
    pair.server_to_client()
    [message] = pair.events()
    assert message == BinaryMessage(data)
    assert type(message.data) is bytes


def test_client_compresses_when_deflate_is_agreed() -> None:
    pair = open_pair()
    pair.session.send_text("a" * 1000)
    [chunk] = pair.session.data_to_send()
    assert chunk[0] == 0x80 | 0x40 | TEXT  # FIN, RSV1 (compressed), text
    assert len(chunk) < 100


def test_client_does_not_compress_without_deflate() -> None:
    pair = open_pair(compression=None)
    pair.session.send_text("a" * 1000)
    [chunk] = pair.session.data_to_send()
    assert chunk[0] == 0x80 | TEXT
    assert len(chunk) == 1000 + 8  # 2 + 2 bytes of length + 4 of mask


def test_send_ping_reaches_the_server() -> None:
    pair = open_pair()
    assert pair.session.send_ping(b"t=1")
    [sent] = pair.frames_to_server()
    assert (sent.opcode, sent.data) == (PING, b"t=1")


@pytest.mark.parametrize("compression", ["deflate", None])
def test_fragmented_text_from_server(compression: str | None) -> None:
    pair = open_pair(compression=compression)
    encoded = "naïve ✓".encode()
    # Split inside the two-byte "ï" and inside the three-byte "✓".
    pair.server.send_text(encoded[:3], fin=False)
    pair.server.send_continuation(encoded[3:9], fin=False)
    pair.server.send_continuation(encoded[9:], fin=True)
    pair.server_to_client()
    assert pair.events() == [TextMessage("naïve ✓")]


@pytest.mark.parametrize("compression", ["deflate", None])
def test_fragmented_binary_from_server_with_a_ping_between(compression: str | None) -> None:
    pair = open_pair(compression=compression)
    pair.server.send_binary(b"\x00\x01", fin=False)
    pair.server_to_client()
    assert pair.events() == []
    pair.server.send_ping(b"between")
    pair.server.send_continuation(b"", fin=False)
    pair.server.send_continuation(b"\x02\x03", fin=True)
    pair.server_to_client()
    assert pair.events() == [BinaryMessage(b"\x00\x01\x02\x03")]
    [pong] = pair.frames_to_server()
    assert (pong.opcode, pong.data) == (PONG, b"between")


def test_compressed_frames_from_server_are_inflated() -> None:
    pair = open_pair()
    pair.server.send_text(b"ab" * 500)
    raw = pair.server.data_to_send()
    assert raw[0][0] & 0x40, "the server should have compressed this"
    for chunk in raw:
        pair.session.receive_data(chunk)
    assert pair.events() == [TextMessage("ab" * 500)]


def test_messages_split_at_every_byte() -> None:
    pair = open_pair()
    pair.server.send_text("héllo".encode())
    pair.server.send_binary(b"\xff\x00")
    raw = b"".join(pair.server.data_to_send())
    for i in range(len(raw)):
        pair.session.receive_data(raw[i : i + 1])
    assert pair.events() == [TextMessage("héllo"), BinaryMessage(b"\xff\x00")]


def test_ping_is_answered_with_a_pong() -> None:
    pair = open_pair()
    pair.feed(frame(PING, b"are you there?"))
    [pong] = pair.frames_to_server()
    assert (pong.opcode, pong.data) == (PONG, b"are you there?")
    assert pair.session.pongs_received == []
    assert pair.events() == []


def test_pongs_received_are_collected() -> None:
    pair = open_pair()
    pair.server.send_pong(b"one")
    pair.server.send_pong(b"")
    pair.server_to_client()
    assert pair.session.pongs_received == [b"one", b""]
    assert pair.events() == []
    assert pair.frames_to_server() == []


# The closing handshake.


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1000, "bye"), (4321, "game over"), (3000, "é" * 61)]
)
def test_client_initiated_close(code: int, reason: str) -> None:
    pair = open_pair()
    pair.session.send_close(code, reason)
    assert pair.session.state is State.CLOSING
    assert pair.session.close_expected()
    [close] = pair.frames_to_server()
    assert close.opcode == CLOSE
    assert close.data == close_payload(code, reason.encode())
    assert pair.events() == []
    pair.server_to_client()  # the echo, then EOF
    assert pair.events() == [Closed(code, reason, True)]
    assert pair.session.state is State.CLOSED


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1001, "going away"), (4321, "game over")]
)
def test_server_initiated_close(code: int, reason: str) -> None:
    pair = open_pair()
    pair.server.send_close(code, reason)
    pair.server_to_client()
    assert pair.events() == []  # Closed waits for the end of the TCP connection
    assert pair.session.state is State.CLOSING
    [echo] = pair.frames_to_server()
    assert echo.opcode == CLOSE
    assert echo.data == close_payload(code, reason.encode())
    assert not pair.session.send_text("late")
    pair.session.receive_eof()
    assert pair.events() == [Closed(code, reason, True)]


def test_empty_close_frame_is_1005() -> None:
    pair = open_pair()
    pair.feed(frame(CLOSE))
    [echo] = pair.frames_to_server()
    assert (echo.opcode, echo.data) == (CLOSE, b"")
    pair.session.receive_eof()
    assert pair.events() == [Closed(1005, "", True)]


def test_close_inside_a_fragmented_message() -> None:
    # RFC 6455 5.4: control frames may come between fragments; the closing
    # handshake proceeds and the unfinished message is dropped (no 1002).
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"half a mess", fin=False), frame(CLOSE, close_payload(1000, b"bye")))
    [echo] = pair.frames_to_server()
    assert (echo.opcode, echo.data) == (CLOSE, close_payload(1000, b"bye"))
    pair.session.receive_eof()
    assert pair.events() == [Closed(1000, "bye", True)]


def test_data_after_the_close_frame_is_ignored() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(CLOSE, close_payload(1000)), frame(TEXT, b"\xff"), frame(PING))
    [echo] = pair.frames_to_server()
    assert echo.opcode == CLOSE
    pair.session.receive_eof()
    assert pair.events() == [Closed(1000, "", True)]


def test_send_close_twice_sends_one_frame() -> None:
    pair = open_pair()
    pair.session.send_close(1000)
    pair.session.send_close(4000, "again")
    frames = pair.frames_to_server()
    assert [f.opcode for f in frames] == [CLOSE]


def test_close_frame_never_answered_is_1006() -> None:
    pair = open_pair()
    pair.session.send_close(4000, "bye")
    pair.client_to_server()
    pair.session.receive_eof()  # the server hangs up without a close frame
    events = pair.events()
    error = the_error(events)
    assert isinstance(error.exception, ConnectionClosedError)
    assert error.exception.code == 1006
    assert events[-1] == Closed(1006, "", False)


def test_close_timeout_is_1006() -> None:
    pair = open_pair()
    pair.session.send_close(1000)
    pair.client_to_server()
    pair.session.abort(TimeoutError("closing handshake", 5.0))
    assert pair.events()[-1] == Closed(1006, "", False)


def test_unanswered_close_is_not_clean() -> None:
    # The half of the behaviour above that holds today.
    pair = open_pair()
    pair.session.send_close(4000, "bye")
    pair.client_to_server()
    pair.session.receive_eof()
    events = pair.events()
    assert isinstance(the_error(events).exception, ConnectionClosedError)
    assert events[-1].was_clean is False  # type: ignore[union-attr]


def test_fail_sends_the_close_code() -> None:
    pair = open_pair()
    pair.session.fail(1011, "internal error")
    assert pair.session.state is State.CLOSING
    [close] = pair.frames_to_server()
    assert close.data == close_payload(1011, b"internal error")


# Failures while open: the client fails the connection with the right code.


def assert_failed(pair: Pair, exc_type: type[WebSocketError], code: int) -> Error:
    """The session reported ``exc_type``, sent a close frame with ``code``, then ended."""
    pair.events()
    error = the_error(pair.history)
    assert type(error.exception) is exc_type, error
    assert pair.session.state is State.CLOSING
    assert not only(pair.history, Closed), "Closed must wait for the EOF"
    frames = pair.frames_to_server()
    assert [f.opcode for f in frames] == [CLOSE]
    assert frames[0].data[:2] == close_payload(code)
    pair.session.receive_eof()
    closed = the_closed(pair.events())
    assert (closed.code, closed.was_clean) == (code, False)
    return error


def test_invalid_utf8_in_one_frame() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"caf\xe9"))  # Latin-1, not UTF-8
    error = assert_failed(pair, InvalidUTF8, 1007)
    assert "UTF-8" in error.message


def test_invalid_utf8_fails_at_the_bad_fragment() -> None:
    pair = open_pair(compression=None)
    assert pair.feed(frame(TEXT, b"ok \xc3", fin=False)) == []  # incomplete, still fine
    pair.feed(frame(CONT, b"\x28", fin=False))  # 0xc3 0x28 is invalid; fin not yet set
    assert_failed(pair, InvalidUTF8, 1007)


def test_invalid_utf8_in_the_first_fragment() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"\xff", fin=False))
    assert_failed(pair, InvalidUTF8, 1007)


def test_text_ending_inside_a_character() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"ab", fin=False), frame(CONT, b"\xe2\x9c"))
    assert_failed(pair, InvalidUTF8, 1007)


def test_invalid_utf8_in_a_compressed_message() -> None:
    pair = open_pair()
    pair.server.send_text(b"caf\xe9 " * 50)  # websockets does not check what it sends
    pair.server_to_client()
    assert_failed(pair, InvalidUTF8, 1007)


def test_invalid_utf8_in_close_reason() -> None:
    pair = open_pair()
    pair.feed(frame(CLOSE, close_payload(1000, b"\xc3\x28")))
    assert_failed(pair, InvalidUTF8, 1007)


def test_binary_is_not_checked_for_utf8() -> None:
    pair = open_pair(compression=None)
    assert pair.feed(frame(BINARY, b"\xff\xfe")) == [BinaryMessage(b"\xff\xfe")]


def test_message_at_the_limit_is_accepted() -> None:
    pair = open_pair(compression=None, max_message_size=10)
    assert pair.feed(frame(BINARY, b"x" * 10)) == [BinaryMessage(b"x" * 10)]


def test_message_over_the_limit() -> None:
    pair = open_pair(compression=None, max_message_size=10)
    pair.feed(frame(TEXT, b"x" * 11))
    error = assert_failed(pair, MessageTooBig, 1009)
    assert "10" in error.message


def test_fragmented_message_over_the_limit() -> None:
    pair = open_pair(compression=None, max_message_size=10)
    assert pair.feed(frame(BINARY, b"x" * 6, fin=False)) == []
    pair.feed(frame(CONT, b"x" * 5))
    assert_failed(pair, MessageTooBig, 1009)


def test_compressed_message_over_the_limit_after_inflating() -> None:
    pair = open_pair(max_message_size=1000)
    pair.server.send_binary(b"\x00" * 5000)
    raw = pair.server.data_to_send()
    assert sum(map(len, raw)) < 100  # small on the wire
    for chunk in raw:
        pair.session.receive_data(chunk)
    assert_failed(pair, MessageTooBig, 1009)


def test_no_limit() -> None:
    pair = open_pair(compression=None, max_message_size=None)
    data = b"y" * (2**20 + 1)
    assert pair.feed(frame(BINARY, data)) == [BinaryMessage(data)]


def test_masked_frame_from_server() -> None:
    pair = open_pair()
    pair.feed(frame(TEXT, b"hi", mask=b"abcd"))
    assert_failed(pair, ProtocolError, 1002)


@pytest.mark.parametrize("rsv", [1, 2, 4])
def test_reserved_bits_without_extension(rsv: int) -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"hi", rsv=rsv))
    assert_failed(pair, ProtocolError, 1002)


def test_protocol_error_message_names_the_code() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(0x3, b""))
    error = assert_failed(pair, ProtocolError, 1002)
    assert "1002" in error.message


def test_messages_before_a_failure_are_delivered() -> None:
    pair = open_pair(compression=None)
    events = pair.feed(frame(TEXT, b"first") + frame(BINARY, b"second") + frame(TEXT, b"\xff"))
    assert events[:2] == [TextMessage("first"), BinaryMessage(b"second")]
    assert isinstance(events[2], Error)
    assert isinstance(events[2].exception, InvalidUTF8)


def test_nothing_is_delivered_after_a_failure() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"\xff"))
    assert pair.feed(frame(TEXT, b"ignored"), frame(PING, b"ignored")) == []
    frames = pair.frames_to_server()
    assert [f.opcode for f in frames] == [CLOSE]  # no pong


# Hand-crafted server byte sequences after the handshake: (Error type, close code).

# compression=None and max_message_size=1024 (deflate cases rerun with deflate below).
OUTCOMES = [
    # Well-formed.
    ("close-1000", frame(CLOSE, close_payload(1000)), None, 1000),
    ("close-1001", frame(CLOSE, close_payload(1001, b"going")), None, 1001),
    ("close-1011", frame(CLOSE, close_payload(1011)), None, 1011),
    ("close-3000", frame(CLOSE, close_payload(3000)), None, 3000),
    ("close-4999", frame(CLOSE, close_payload(4999)), None, 4999),
    ("close-empty", frame(CLOSE), None, 1005),
    ("ping-pong-close", frame(PING) + frame(PONG) + frame(CLOSE, close_payload(4000)), None, 4000),
    ("text-then-eof", frame(TEXT, b"hi"), ConnectionClosedError, 1006),
    ("nothing", b"", ConnectionClosedError, 1006),
    ("half-a-header", b"\x81", ConnectionClosedError, 1006),
    ("half-a-payload", frame(TEXT, b"hello")[:4], ConnectionClosedError, 1006),
    ("half-a-close", frame(CLOSE, close_payload(1000))[:3], ConnectionClosedError, 1006),
    ("unfinished-message", frame(TEXT, b"a", fin=False), ConnectionClosedError, 1006),
    # Framing errors: 1002.
    ("masked", frame(BINARY, b"x", mask=b"\x00\x00\x00\x00"), ProtocolError, 1002),
    ("rsv1", frame(BINARY, b"x", rsv=4), ProtocolError, 1002),
    ("rsv2", frame(BINARY, b"x", rsv=2), ProtocolError, 1002),
    ("rsv3", frame(BINARY, b"x", rsv=1), ProtocolError, 1002),
    ("opcode-3", frame(0x3), ProtocolError, 1002),
    ("opcode-7", frame(0x7), ProtocolError, 1002),
    ("opcode-b", frame(0xB), ProtocolError, 1002),
    ("opcode-f", frame(0xF), ProtocolError, 1002),
    ("lone-continuation", frame(CONT, b"x"), ProtocolError, 1002),
    ("text-inside-text", frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), ProtocolError, 1002),
    ("binary-inside-text", frame(TEXT, b"a", fin=False) + frame(BINARY), ProtocolError, 1002),
    ("fragmented-ping", frame(PING, b"x", fin=False), ProtocolError, 1002),
    ("fragmented-close", frame(CLOSE, close_payload(1000), fin=False), ProtocolError, 1002),
    ("long-ping", frame(PING, b"p" * 126), ProtocolError, 1002),
    ("long-close", frame(CLOSE, close_payload(1000, b"r" * 124)), ProtocolError, 1002),
    ("close-1-byte", frame(CLOSE, b"\x03"), ProtocolError, 1002),
    ("close-0", frame(CLOSE, close_payload(0)), ProtocolError, 1002),
    ("close-999", frame(CLOSE, close_payload(999)), ProtocolError, 1002),
    ("close-1004", frame(CLOSE, close_payload(1004)), ProtocolError, 1002),
    ("close-1005", frame(CLOSE, close_payload(1005)), ProtocolError, 1002),
    ("close-1006", frame(CLOSE, close_payload(1006)), ProtocolError, 1002),
    ("close-1015", frame(CLOSE, close_payload(1015)), ProtocolError, 1002),
    ("close-2999", frame(CLOSE, close_payload(2999)), ProtocolError, 1002),
    ("close-5000", frame(CLOSE, close_payload(5000)), ProtocolError, 1002),
    ("deflate-garbage", frame(TEXT, b"\xff\xff\xff\xff", rsv=4), ProtocolError, 1002),
    ("deflate-rsv1-ping", frame(PING, rsv=4), ProtocolError, 1002),
    ("deflate-rsv1-cont", frame(TEXT, b"", fin=False) + frame(CONT, rsv=4), ProtocolError, 1002),
    ("deflate-rsv2", frame(TEXT, b"", rsv=2), ProtocolError, 1002),
    # Invalid UTF-8: 1007.
    ("utf8-latin1", frame(TEXT, b"\xe9t\xe9"), InvalidUTF8, 1007),
    ("utf8-overlong", frame(TEXT, b"\xc0\xaf"), InvalidUTF8, 1007),
    ("utf8-surrogate", frame(TEXT, b"\xed\xa0\x80"), InvalidUTF8, 1007),
    ("utf8-above-max", frame(TEXT, b"\xf4\x90\x80\x80"), InvalidUTF8, 1007),
    ("utf8-truncated", frame(TEXT, b"ok\xe2\x82"), InvalidUTF8, 1007),
    (
        "utf8-fragment",
        frame(TEXT, b"\xce", fin=False) + frame(CONT, b"\xba\xff"),
        InvalidUTF8,
        1007,
    ),
    ("utf8-close-reason", frame(CLOSE, close_payload(1000, b"\xff")), InvalidUTF8, 1007),
    # Too big: 1009.
    ("too-big", frame(BINARY, b"z" * 1025), MessageTooBig, 1009),
    ("too-big-announced", frame(BINARY, length=2**40), MessageTooBig, 1009),
    (
        "too-big-fragments",
        frame(TEXT, b"a" * 1000, fin=False) + frame(CONT, b"a" * 25),
        MessageTooBig,
        1009,
    ),
]


@pytest.mark.parametrize(
    ("data", "exc_type", "code"), [case[1:] for case in OUTCOMES], ids=[c[0] for c in OUTCOMES]
)
def test_server_bytes_outcome(data: bytes, exc_type: type | None, code: int) -> None:
    pair = open_pair(compression=None, max_message_size=1024)
    pair.feed(data)
    pair.client_to_server()
    pair.server_to_client()
    pair.session.receive_eof()
    pair.events()
    events = pair.history
    closed = the_closed(events)
    errors = only(events, Error)
    if exc_type is None:
        assert errors == []
        assert closed.was_clean
    else:
        assert len(errors) == 1
        assert type(errors[0].exception) is exc_type, errors[0]
        assert not closed.was_clean
    assert closed.code == code


@pytest.mark.parametrize(
    ("data", "exc_type", "code"),
    [case[1:] for case in OUTCOMES if case[0].startswith("deflate")],
    ids=[c[0] for c in OUTCOMES if c[0].startswith("deflate")],
)
def test_server_bytes_outcome_with_deflate(data: bytes, exc_type: type, code: int) -> None:
    pair = open_pair(max_message_size=1024)
    pair.feed(data)
    pair.session.receive_eof()
    pair.events()
    events = pair.history
    assert type(the_error(events).exception) is exc_type
    assert the_closed(events).code == code


# EOF and abort.


def test_eof_without_close() -> None:
    pair = open_pair()
    pair.session.receive_eof()
    events = pair.events()
    error = the_error(events)
    assert isinstance(error.exception, ConnectionClosedError)
    assert error.exception.code == 1006
    assert "without a close frame" in error.message
    assert events[-1] == Closed(1006, "", False)


def test_abort_without_an_exception() -> None:
    pair = open_pair()
    pair.session.abort()
    events = pair.events()
    error = the_error(events)
    assert isinstance(error.exception, ConnectionClosedError)
    assert events == [error, Closed(1006, "", False)]
    assert pair.session.error is error.exception


@pytest.mark.parametrize("state", ["connecting", "open"])
def test_abort_with_an_exception(state: str) -> None:
    pair = Pair()
    if state == "open":
        pair.open()
    reason = TimeoutError("connect", 10.0)
    pair.session.abort(reason)
    events = pair.events()
    assert events == [Error(str(reason), reason), Closed(1006, "", False)]
    assert pair.session.state is State.CLOSED


def test_abort_after_an_error_keeps_the_first_error() -> None:
    pair = open_pair(compression=None)
    pair.feed(frame(TEXT, b"\xff"))
    pair.session.abort(TimeoutError("closing handshake", 5.0))
    events = pair.events()
    assert isinstance(the_error(pair.history).exception, InvalidUTF8)
    assert isinstance(events[-1], Closed)


def test_nothing_happens_after_closed() -> None:
    pair = open_pair()
    pair.session.abort()
    pair.events()
    pair.session.abort(TimeoutError("x", 1))
    pair.session.receive_data(frame(TEXT, b"late"))
    pair.session.receive_eof()
    pair.session.send_close(1000)
    pair.session.fail(1002)
    assert pair.events() == []
    assert pair.session.data_to_send() == []


def test_data_to_send_is_empty_once_closed() -> None:
    pair = open_pair()
    assert pair.session.send_text("queued but never written")
    pair.session.abort()
    assert pair.session.data_to_send() == []


def test_pending_bytes_are_flushed_until_closed() -> None:
    pair = open_pair()
    pair.session.send_text("a")
    pair.session.send_binary(b"b")
    assert len(pair.session.data_to_send()) == 2
    assert pair.session.data_to_send() == []


# Sending in the wrong state.


def test_sends_return_false_while_connecting() -> None:
    pair = Pair()
    session = pair.session
    assert session.state is State.CONNECTING
    assert session.send_text("x") is False
    assert session.send_binary(b"x") is False
    assert session.send_ping(b"x") is False
    request = b"".join(session.data_to_send())
    assert request.startswith(b"GET ")  # only the handshake request was queued
    assert session.data_to_send() == []


def test_sends_return_true_while_open() -> None:
    session = open_pair().session
    assert session.send_text("x") is True
    assert session.send_binary(b"x") is True
    assert session.send_ping(b"x") is True


@pytest.mark.parametrize("how", ["send_close", "close_rcvd", "closed"])
def test_sends_return_false_after_close(how: str) -> None:
    pair = open_pair()
    if how == "send_close":
        pair.session.send_close()
    elif how == "close_rcvd":
        pair.feed(frame(CLOSE, close_payload(1000)))
    else:
        pair.session.abort()
    pair.session.data_to_send()
    assert pair.session.send_text("x") is False
    assert pair.session.send_binary(b"x") is False
    assert pair.session.send_ping(b"x") is False
    assert pair.session.data_to_send() == []


def test_send_close_while_connecting() -> None:
    pair = Pair()
    pair.session.send_close(1000)
    events = pair.events()
    error = the_error(events)
    assert isinstance(error.exception, InvalidState)
    assert events == [error, Closed(1006, "", False)]
    assert pair.session.state is State.CLOSED
    assert pair.session.data_to_send() == []


def test_send_close_while_connecting_then_the_response_arrives() -> None:
    pair = Pair()
    pair.client_to_server()
    pair.session.send_close(1000)
    response = pair.server.accept(pair.server.events_received()[0])
    pair.server.send_response(response)
    pair.server_to_client()
    assert [type(e) for e in pair.events()] == [Error, Closed]


def test_fail_is_ignored_unless_open() -> None:
    pair = Pair()
    pair.session.fail(1002, "nope")
    assert pair.session.state is State.CONNECTING
    request = b"".join(pair.session.data_to_send())
    assert request.startswith(b"GET ")


def test_send_eof_marker_after_clean_close_is_not_leaked() -> None:
    # The engine half-closes after the server's EOF; once CLOSED, nothing is handed out.
    pair = open_pair()
    pair.server.send_close(1000)
    pair.server_to_client()
    pair.client_to_server()
    pair.server_to_client()  # server EOF
    assert pair.session.state is State.CLOSED
    assert SEND_EOF not in pair.session.data_to_send()


def test_error_cause_is_kept() -> None:
    pair = open_pair(compression=None)
    error = the_error(pair.feed(frame(TEXT, b"x", rsv=2)))
    assert error.exception.__cause__ is not None


def test_binary_body_of_a_refusal_is_not_quoted() -> None:
    pair = Pair()
    pair.client_to_server()
    events = pair.feed(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n\x00\xff")
    error = the_error(events)
    assert isinstance(error.exception, InvalidStatus)
    assert error.exception.body == b"\x00\xff"
    assert error.message.endswith("HTTP 500 Internal Server Error")


# Bounded sends: a large message goes out one slice per data_to_send().


def _slice(compression: str | None) -> int:
    return SEND_SLICE_DEFLATE if compression else SEND_SLICE


@pytest.mark.parametrize("compression", ["deflate", None])
def test_a_large_message_is_framed_one_slice_per_call(compression: str | None) -> None:
    pair = open_pair(compression=compression, max_message_size=None)
    step = _slice(compression)
    payload = random.Random(1).randbytes(3 * step + 5)
    assert pair.session.send_binary(payload)
    assert pair.session.sending
    assert pair.session.unsent == len(payload)  # nothing masked or compressed yet
    frames = []
    while pair.session.sending:
        before = pair.session.unsent
        got = pair.frames_to_server()
        assert len(got) == 1
        assert before - pair.session.unsent == len(got[0].data) <= step
        frames += got
    assert [(f.opcode, f.fin) for f in frames] == [
        (BINARY, False),
        (CONT, False),
        (CONT, False),
        (CONT, True),
    ]
    assert messages(frames) == [(BINARY, payload)]
    assert pair.session.unsent == 0
    assert pair.frames_to_server() == []


def test_a_message_at_most_one_slice_goes_out_whole_at_once() -> None:
    pair = open_pair(compression=None)
    assert pair.session.send_binary(b"x" * SEND_SLICE)
    assert not pair.session.sending
    [sent] = pair.frames_to_server()
    assert (sent.opcode, sent.fin, len(sent.data)) == (BINARY, True, SEND_SLICE)


@pytest.mark.parametrize("compression", ["deflate", None])
def test_a_long_ascii_text_is_encoded_slice_by_slice(compression: str | None) -> None:
    pair = open_pair(compression=compression)
    text = "abc" * _slice(compression)
    assert pair.session.send_text(text)
    assert pair.session.unsent == len(text)
    frames = pair.all_frames_to_server()
    assert len(frames) == 3
    assert messages(frames) == [(TEXT, text.encode())]


# Characters of 1, 2, 3 and 4 bytes in UTF-8, in a run of 7 that no slice
# length divides: slice boundaries fall after each kind in turn.
MIXED = "aé✓🎮é✓🎮"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_a_long_non_ascii_text_is_encoded_slice_by_slice(compression: str | None) -> None:
    pair = open_pair(compression=compression, max_message_size=None)
    step = _slice(compression)
    text = (MIXED * (3 * step // len(MIXED)))[: 3 * step + 5]
    assert pair.session.send_text(text)
    assert pair.session.sending
    frames = []
    while pair.session.sending:
        got = pair.frames_to_server()
        assert len(got) == 1  # one slice per call, the first one included
        assert len(got[0].data) <= step
        frames += got
    assert len(frames) > 3
    assert [(f.opcode, f.fin) for f in frames] == [(TEXT, False)] + [(CONT, False)] * (
        len(frames) - 2
    ) + [(CONT, True)]
    # Each fragment ends on a character boundary, and together they are the text.
    assert "".join(f.data.decode() for f in frames) == text
    assert messages(frames) == [(TEXT, text.encode())]
    assert pair.session.unsent == 0


@pytest.mark.parametrize("char", ["é", "✓", "🎮"])
def test_the_unsent_count_of_a_text_of_one_script_is_exact(char: str) -> None:
    pair = open_pair(compression=None)
    text = char * SEND_SLICE
    assert pair.session.send_text(text)
    assert pair.session.unsent == len(text.encode())
    while pair.session.sending:
        before = pair.session.unsent
        [sent] = pair.frames_to_server()
        assert before - pair.session.unsent == len(sent.data)
    assert pair.session.unsent == 0


def test_the_unsent_count_of_a_mixed_text_ends_at_zero() -> None:
    pair = open_pair(compression=None)
    text = "x" * (SEND_SLICE // 2) + "🎮" * SEND_SLICE  # the sample sees only ASCII
    assert pair.session.send_text(text)
    assert 0 < pair.session.unsent < len(text.encode())  # an estimate until encoded
    assert messages(pair.all_frames_to_server()) == [(TEXT, text.encode())]
    assert pair.session.unsent == 0


@pytest.mark.parametrize("where", [0, SEND_SLICE // 2, 3 * SEND_SLICE - 1])
def test_a_lone_surrogate_in_a_long_text_raises_at_send_time(where: int) -> None:
    pair = open_pair(compression=None)
    text = "é" * where + "\ud800" + "é" * (3 * SEND_SLICE - where)
    with pytest.raises(UnicodeEncodeError) as raised:
        pair.session.send_text(text)
    with pytest.raises(UnicodeEncodeError) as whole:
        text.encode()
    assert raised.value.args == whole.value.args  # the error of encoding it whole, as before
    assert not pair.session.sending
    assert pair.session.unsent == 0
    assert pair.frames_to_server() == []
    assert pair.session.send_text("still open")
    assert messages(pair.frames_to_server()) == [(TEXT, b"still open")]


def test_a_surrogate_pair_in_a_str_is_refused_like_any_lone_surrogate() -> None:
    pair = open_pair(compression=None)
    with pytest.raises(UnicodeEncodeError):
        pair.session.send_text("é" * SEND_SLICE + "\ud83c\udfae")
    with pytest.raises(UnicodeEncodeError):
        pair.session.send_text("\udfff")  # short texts: encoded at once, as before


def test_a_short_non_ascii_text_goes_out_whole_at_once() -> None:
    pair = open_pair(compression=None)
    text = "é" * (SEND_SLICE // 4)  # at most a slice whatever its characters
    assert pair.session.send_text(text)
    assert not pair.session.sending
    [sent] = pair.frames_to_server()
    assert (sent.opcode, sent.fin, sent.data) == (TEXT, True, text.encode())


def test_a_mutable_buffer_changed_after_send_does_not_change_what_is_sent() -> None:
    pair = open_pair(compression=None)
    buffer = bytearray(b"a" * (SEND_SLICE + 10))
    assert pair.session.send_binary(buffer)
    buffer[:] = b"b" * len(buffer)
    assert messages(pair.all_frames_to_server()) == [(BINARY, b"a" * (SEND_SLICE + 10))]


def test_later_messages_wait_behind_a_large_one_and_pings_go_between() -> None:
    pair = open_pair(compression=None)
    big = b"z" * (2 * SEND_SLICE + 1)
    assert pair.session.send_binary(big)
    first = pair.frames_to_server()
    assert pair.session.send_text("after")
    assert pair.session.send_ping(b"still here")
    frames = first + pair.all_frames_to_server()
    ping_at = next(i for i, f in enumerate(frames) if f.opcode == PING)
    assert 0 < ping_at < len(frames) - 2  # between the fragments, not after the message
    assert messages(frames) == [(BINARY, big), (TEXT, b"after")]


def test_close_waits_for_the_queued_message_then_closes() -> None:
    pair = open_pair(compression=None)
    big = b"q" * (2 * SEND_SLICE + 1)
    assert pair.session.send_binary(big)
    pair.session.send_close(1000, "bye")
    assert pair.session.state is State.CLOSING  # at once, for the application
    assert not pair.session.send_text("too late")  # dropped, as after any close()
    assert not pair.session.close_expected()  # no close timer before the frame is out
    frames = pair.all_frames_to_server()
    assert [f.opcode for f in frames] == [BINARY, CONT, CONT, CLOSE]
    assert messages(frames) == [(BINARY, big)]
    assert frames[-1].data == close_payload(1000, b"bye")
    assert pair.session.close_expected()
    pair.server_to_client()  # the server's answer, then its end of TCP
    assert pair.events()[-1] == Closed(1000, "bye", True)


def test_the_queued_rest_is_dropped_when_the_server_closes_first() -> None:
    pair = open_pair(compression=None)
    assert pair.session.send_binary(b"r" * (3 * SEND_SLICE))
    first = pair.frames_to_server()
    assert [(f.opcode, f.fin) for f in first] == [(BINARY, False)]
    pair.server.send_close(1001, "going away")
    pair.server_to_client()
    # Only the echo of the close follows (the engine under test, like many,
    # fails a close between fragments, so the bytes are checked here).
    [echo] = pair.session.data_to_send()
    assert echo[0] == 0x80 | CLOSE
    assert not pair.session.sending
    assert pair.session.unsent == 0
    assert pair.session.data_to_send() == []


def test_failing_the_connection_drops_the_queued_message() -> None:
    pair = open_pair(compression=None)
    assert pair.session.send_binary(b"f" * (3 * SEND_SLICE))
    pair.session.send_close()
    pair.session.fail(1002, "broken")  # e.g. a protocol error while the close waits
    frames = pair.all_frames_to_server()
    assert [f.opcode for f in frames] == [CLOSE]
    assert frames[0].data == close_payload(1002, b"broken")
    assert not pair.session.sending
