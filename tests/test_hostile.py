"""Hostile servers: scripted servers on loopback that break the rules, one case each.

Every case runs once per driver adapter of conftest.py and asserts the exact
outcome: the On error text, the close code, the ordering contract (the
``make_client`` fixture checks every attempt at teardown), no hang (every wait
is bounded), and, for the bombs and floods, bounded memory measured with
tracemalloc (which sees every thread, the server's too).

The cases that tests/test_client.py already covers (wrong accept key, HTTP
error statuses, subprotocols, masked frames, invalid UTF-8, RSV1/RSV3, the
terabyte frame under the default limit, FIN without a close frame, a close
never answered...) are not repeated here; docs/hostile.md lists every case,
those included, with the outcome wsloop gives.
"""

from __future__ import annotations

import contextlib
import functools
import struct
import threading
import time
import tracemalloc
import zlib
from typing import TYPE_CHECKING

import pytest

import wsloop
from servers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SHORT,
    WAIT,
    close_payload,
    encode_frame,
    upgrade_response,
)
from wsloop import BinaryMessage, TextMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Client, DriverAdapter
    from servers import RawConnection, RawServer

    MakeClient = Callable[..., Client]
    MakeRaw = Callable[[Callable[[RawConnection], object]], RawServer]

MiB = 2**20

DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate")]
"""The answer that accepts the client's permessage-deflate offer."""


# Helpers.


@contextlib.contextmanager
def traced() -> Iterator[dict[str, int]]:
    """Measure Python allocations (all threads) inside the block.

    Yields a dict that holds, after the block, ``peak``: the highest traced
    memory above what was allocated when the block started.
    """
    result: dict[str, int] = {}
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        yield result
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if started:
            tracemalloc.stop()
        result["peak"] = peak - base


def current_traced() -> int:
    """The Python memory traced right now."""
    return tracemalloc.get_traced_memory()[0]


def hold(conn: RawConnection) -> None:
    """Keep the connection open, reading and discarding, until the client hangs up."""
    conn.wait_eof()


def answer(data: bytes | Callable[[str], bytes]) -> Callable[[RawConnection], object]:
    """A handler that reads the request, writes ``data`` and keeps TCP open.

    ``data`` may be a function of the request's Sec-WebSocket-Key.
    """

    def handler(conn: RawConnection) -> None:
        headers = conn.read_request()
        try:
            conn.send(data(headers["sec-websocket-key"]) if callable(data) else data)
        except OSError:
            return  # the client hung up before reading it all
        hold(conn)

    return handler


def after_handshake(*frames: bytes, extensions: bool = False) -> Callable[[RawConnection], object]:
    """A handler that opens (accepting deflate if asked), writes ``frames``,
    and returns the client's close frame (``None`` if TCP closed first)."""

    def handler(conn: RawConnection) -> object:
        conn.handshake(extra_headers=DEFLATE if extensions else ())
        with contextlib.suppress(OSError):
            conn.send(b"".join(frames))
        return conn.expect_close()

    return handler


def fails_to_connect(
    client: Client, url: str, exc_type: type[BaseException], *words: str
) -> wsloop.Error:
    """Connect to ``url``; assert the attempt fails before opening, as told."""
    client.connect(url)
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]  # On opened never fires
    error = client.error()
    assert isinstance(error.exception, exc_type), error
    for word in words:
        assert word in error.message, error.message
    assert (closed.code, closed.reason, closed.was_clean) == (1006, "", False)
    assert client.ws.close_code == 1006
    assert client.ws.error_msg == error.message
    return error


def fails_when_open(
    client: Client,
    server: RawServer,
    code: int,
    exc_type: type[BaseException],
    *words: str,
    before: list[str] | None = None,
) -> wsloop.Error:
    """Connect; assert it opens, then fails with ``code`` for the reason told.

    When ``code`` is 1002, 1007 or 1009 the client fails the connection: the
    server must have received a close frame with that code.
    """
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", *(before or []), "Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, exc_type), error
    for word in words:
        assert word in error.message, error.message
    assert (closed.code, closed.was_clean) == (code, False)
    assert client.ws.close_code == code
    if code != 1006:
        assert str(code) in error.message
        sent = server.wait_result(WAIT)
        assert isinstance(sent, tuple), sent
        assert sent[0] == code  # the client's close frame says why
    return error


# The opening handshake.


@pytest.mark.parametrize(
    ("status", "location"),
    [
        ("301 Moved Permanently", "absolute"),
        ("302 Found", "absolute"),
        ("307 Temporary Redirect", "absolute"),
        ("308 Permanent Redirect", "absolute"),
        ("302 Found", "/lobby/2"),
    ],
)
def test_redirect_is_reported_with_its_target_and_not_followed(
    client: Client, raw_server: MakeRaw, status: str, location: str
) -> None:
    target = raw_server(hold)  # where the redirect points: nobody may come
    if location == "absolute":
        location = target.url("/elsewhere")
    server = raw_server(
        answer(f"HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
    )
    error = fails_to_connect(
        client,
        server.url(),
        wsloop.InvalidStatus,
        f"server rejected the WebSocket upgrade: HTTP {status}",
        f"(redirect to {location}; connect to that URL instead)",
    )
    assert isinstance(error.exception, wsloop.InvalidStatus)
    assert error.exception.status == int(status[:3])
    assert error.exception.headers["Location"] == location
    assert target.connections == []  # wsloop does not follow redirects


@pytest.mark.parametrize(
    ("compression", "extensions", "words"),
    [
        pytest.param(None, "permessage-deflate", [], id="deflate-not-offered"),
        pytest.param(
            "deflate", "x-webkit-deflate-frame", ["x-webkit-deflate-frame"], id="unknown"
        ),
        pytest.param(
            "deflate",
            "permessage-deflate; server_max_window_bits=7",
            ["permessage-deflate", "server_max_window_bits"],
            id="deflate-bad-parameter",
        ),
        pytest.param(
            "deflate",
            "permessage-deflate, permessage-deflate",
            ["permessage-deflate"],
            id="deflate-twice",
        ),
    ],
)
def test_unsolicited_extension_fails_the_handshake(
    make_client: MakeClient,
    raw_server: MakeRaw,
    compression: str | None,
    extensions: str,
    words: list[str],
) -> None:
    server = raw_server(
        answer(
            lambda key: upgrade_response(
                key, extra_headers=[("Sec-WebSocket-Extensions", extensions)]
            )
        )
    )
    client = make_client(compression=compression)
    fails_to_connect(
        client, server.url(), wsloop.NegotiationError, "extension negotiation failed", *words
    )


@pytest.mark.parametrize(
    ("response", "words"),
    [
        pytest.param(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\n\r\n",
            ["server did not upgrade to WebSocket (missing Upgrade header)"],
            id="101-without-upgrade",
        ),
        pytest.param(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\n\r\n",
            ["server did not upgrade to WebSocket (invalid Upgrade header: h2c)"],
            id="101-upgrade-h2c",
        ),
        pytest.param(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Accept: {accept}\r\n\r\n",
            ["server did not upgrade to WebSocket (missing Connection header)"],
            id="101-without-connection",
        ),
        pytest.param(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n\r\n",
            ["wrong Sec-WebSocket-Accept key (missing Sec-WebSocket-Accept header)"],
            id="101-without-accept",
        ),
        pytest.param(
            "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: {accept}\r\n\r\n",
            ["server did not send a valid HTTP response", "expected HTTP/1.1"],
            id="http-1.0",
        ),
    ],
)
def test_broken_upgrade_response(
    client: Client, raw_server: MakeRaw, response: str, words: list[str]
) -> None:
    def build(key: str) -> bytes:
        accept = upgrade_response(key).split(b"Sec-WebSocket-Accept: ")[1].split(b"\r\n")[0]
        return response.format(accept=accept.decode()).encode()

    server = raw_server(answer(build))
    fails_to_connect(client, server.url(), wsloop.HandshakeError, *words)


def test_ssh_banner_is_not_http(make_client: MakeClient, raw_server: MakeRaw) -> None:
    # An SSH server speaks first and then waits: the banner alone must fail
    # the attempt, well before the connect timeout.
    server = raw_server(answer(b"SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n"))
    client = make_client(connect_timeout=WAIT)
    error = fails_to_connect(
        client,
        server.url(),
        wsloop.HandshakeError,
        "server did not send a valid HTTP response: "
        "invalid HTTP status line: SSH-2.0-OpenSSH_9.6p1 Debian-3",
    )
    assert not isinstance(error.exception, wsloop.TimeoutError)


def test_ws_url_on_a_tls_server(client: Client, raw_server: MakeRaw) -> None:
    # What a TLS server does with a plain HTTP request: an alert, then close.
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(bytes.fromhex("15030300020246"))  # fatal alert: protocol_version

    server = raw_server(handler)
    fails_to_connect(
        client,
        server.url(),
        wsloop.HandshakeError,
        "server closed the connection before answering the WebSocket upgrade",
    )


@pytest.mark.parametrize(
    "greeting",
    [
        pytest.param(b"Welcome to the chat server!\n", id="lf-banner"),
        pytest.param(bytes(range(256)), id="binary"),
    ],
)
def test_not_http_without_crlf(
    make_client: MakeClient, raw_server: MakeRaw, greeting: bytes
) -> None:
    server = raw_server(answer(greeting))
    client = make_client(connect_timeout=WAIT)
    error = fails_to_connect(
        client, server.url(), wsloop.HandshakeError, "server did not send a valid HTTP response"
    )
    assert "closed" not in error.message


def endless(first: bytes, more: bytes, total: int) -> Callable[[RawConnection], object]:
    """Answer ``first``, then ``more`` again and again, ``total`` bytes in all.

    Returns ``"client hung up"`` when the client stopped listening first.
    """

    def handler(conn: RawConnection) -> str:
        conn.read_request()
        block = more * (64 * 1024 // len(more) + 1)
        try:
            conn.send(first)
            for _ in range(total // len(block) + 1):
                conn.send(block)
        except OSError:
            return "client hung up"
        return "sent everything"

    return handler


@pytest.mark.parametrize(
    ("more", "words"),
    [
        pytest.param(
            b"X-Filler: " + b"f" * 90 + b"\r\n",
            "server did not send a valid HTTP response: expected no more than 128 headers",
            id="too-many-headers",
        ),
        pytest.param(
            b"f" * 100,
            "server did not send a valid HTTP response: read ",
            id="endless-header-line",
        ),
    ],
)
def test_oversized_header_block(
    client: Client, raw_server: MakeRaw, more: bytes, words: str
) -> None:
    first = b"HTTP/1.1 101 Switching Protocols\r\n"
    if not more.endswith(b"\r\n"):
        first += b"X-Endless: "
    server = raw_server(endless(first, more, 32 * MiB))
    error = fails_to_connect(client, server.url(), wsloop.HandshakeError, words)
    if b"X-Endless" in first:
        assert "expected no more than 8192 bytes" in error.message
    # The client gave up early instead of swallowing 32 MiB of headers.
    assert server.wait_result(WAIT) == "client hung up"


def test_error_status_with_a_body_over_1_mib(client: Client, raw_server: MakeRaw) -> None:
    body = b"<html>" + b"x" * (2 * MiB) + b"</html>"
    server = raw_server(
        answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    )
    # The status is lost: the engine refuses the response before it is parsed.
    fails_to_connect(
        client,
        server.url(),
        wsloop.HandshakeError,
        f"server did not send a valid HTTP response: body too large: {len(body)} bytes",
    )


def test_error_status_without_length_on_a_connection_kept_open(
    make_client: MakeClient, raw_server: MakeRaw
) -> None:
    # Without Content-Length the body ends when the server closes; this one never does.
    server = raw_server(answer(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno\n"))
    client = make_client(connect_timeout=SHORT)
    error = fails_to_connect(
        client,
        server.url(),
        wsloop.TimeoutError,
        f"connect (WebSocket handshake) timed out after {SHORT:g} s",
    )
    assert isinstance(error.exception, wsloop.TimeoutError)
    assert error.exception.phase == "connect (WebSocket handshake)"


def test_handshake_answered_one_byte_at_a_time(
    make_client: MakeClient, raw_server: MakeRaw
) -> None:
    timeout = SHORT
    interval = timeout / 5  # each byte comes well within the timeout: no idle timer fires

    def handler(conn: RawConnection) -> tuple[int, int]:
        headers = conn.read_request()
        response = upgrade_response(
            headers["sec-websocket-key"], extra_headers=[("X-Padding", "p" * 200)]
        )
        sent = 0
        try:
            for byte in response:
                conn.send(bytes([byte]))
                sent += 1
                if conn.stopping.wait(interval):
                    break
        except OSError:
            pass  # the client gave up
        return sent, len(response)

    server = raw_server(handler)
    client = make_client(connect_timeout=timeout)
    error = fails_to_connect(
        client,
        server.url(),
        wsloop.TimeoutError,
        f"connect (WebSocket handshake) timed out after {timeout:g} s",
    )
    assert isinstance(error.exception, wsloop.TimeoutError)
    assert error.exception.phase == "connect (WebSocket handshake)"
    sent, total = server.wait_result(WAIT)  # type: ignore[misc]
    assert 1 <= sent < total  # bytes were still arriving when the timer fired


# TCP resets (SO_LINGER 0: RST instead of FIN).


def test_reset_as_soon_as_tcp_is_accepted(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(lambda conn: conn.reset())
    # Depending on when the RST lands, the TCP connect itself or the
    # handshake that follows it fails: either way the reason is the reset.
    fails_to_connect(client, server.url(), wsloop.WebSocketError, "connection reset by the server")


def test_reset_during_the_handshake(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        conn.reset()

    server = raw_server(handler)
    error = fails_to_connect(
        client,
        server.url(),
        wsloop.ConnectionClosedError,
        "connection reset by the server (close code 1006)",
    )
    assert error.message == "connection reset by the server (close code 1006)"


def test_reset_while_open(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> bytes:
        conn.handshake()
        conn.send_frame(OP_TEXT, b"before the reset")
        _, _, ack = conn.recv_frame()  # the client read it: now reset
        conn.reset()
        return ack

    server = raw_server(handler)
    client.connect(server.url())
    assert client.wait_messages(1) == ["before the reset"]
    assert client.ws.send_text("ack")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "TextMessage", "Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.ConnectionClosedError)
    assert error.message == "connection reset by the server (close code 1006)"
    assert (closed.code, closed.reason, closed.was_clean) == (1006, "", False)
    assert server.wait_result(WAIT) == b"ack"


def close_what_a_dead_io_thread_left(ws: wsloop.WebSocket) -> None:
    """Close the wake-up sockets of a thread driver whose I/O thread died.

    Only the bug below kills that thread; then nothing else closes them.
    """
    driver = getattr(ws, "driver", None)
    for owner, name in ((driver, "_wake_w"), (getattr(driver, "_io", None), "wake_socket")):
        sock = getattr(owner, name, None)
        if sock is not None and getattr(driver, "thread", None) is None:
            sock.close()


POLL_MACHINERY = {"poll", "thread", "thread-caller"}
"""The adapters whose driver runs drivers/poll.py (the thread driver wraps it)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_reset_while_the_client_has_data_to_send(
    adapter: DriverAdapter, raw_server: MakeRaw, request: pytest.FixtureRequest
) -> None:
    go = threading.Event()

    def handler(conn: RawConnection) -> None:
        conn.handshake()
        go.wait(WAIT)  # read nothing: the client's sends pile up, then reset
        conn.reset()

    server = raw_server(handler)
    # Not make_client: when the bug kills the I/O thread, its teardown would
    # wait for an On closed that never comes.
    ws = adapter.make(close_timeout=SHORT)
    events: list[wsloop.Event] = []
    for name in ("on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message"):
        setattr(ws, name, events.append)

    def drive(until: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            adapter.step(ws)

    def closed() -> bool:
        return any(isinstance(e, wsloop.Closed) for e in events)

    try:
        ws.connect(server.url())
        drive(lambda: bool(events), WAIT)
        for _ in range(12):
            assert ws.send_binary(bytes(MiB))
        assert ws.buffered_amount > 0  # the server reads nothing
        go.set()
        drive(closed, 4 * SHORT)  # a reset is noticed at once: seconds are plenty
    finally:
        go.set()
        close_what_a_dead_io_thread_left(ws)
    assert closed(), f"no On closed: {events}"
    assert [type(e).__name__ for e in events] == ["Opened", "Error", "Closed"]
    error, end = events[1], events[2]
    assert isinstance(error, wsloop.Error)
    assert "connection reset by the server" in error.message
    assert isinstance(end, wsloop.Closed)
    assert (end.code, end.was_clean) == (1006, False)


# Frames that break RFC 6455.


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(encode_frame(OP_PING, b"half a ping", fin=False), id="ping"),
        pytest.param(encode_frame(OP_PONG, b"half a pong", fin=False), id="pong"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(1000), fin=False), id="close"),
    ],
)
def test_fragmented_control_frame(client: Client, raw_server: MakeRaw, frame: bytes) -> None:
    server = raw_server(after_handshake(frame))
    fails_when_open(
        client,
        server,
        1002,
        wsloop.ProtocolError,
        "protocol error: fragmented control frame (closing with 1002)",
    )


@pytest.mark.parametrize(
    ("frames", "extensions", "words"),
    [
        pytest.param(
            [encode_frame(OP_TEXT, b"reserved", rsv=2)],
            False,
            "protocol error: reserved bits must be 0",
            id="rsv2",
        ),
        pytest.param(
            [encode_frame(OP_PING, b"compressed?", rsv=4)],
            True,
            "protocol error: reserved bits must be 0",
            id="rsv1-on-a-ping-with-deflate",
        ),
        pytest.param(
            [encode_frame(OP_TEXT, b"a", fin=False), encode_frame(OP_CONT, b"b", rsv=4)],
            True,
            "protocol error: reserved bits must be 0",
            id="rsv1-on-a-continuation-with-deflate",
        ),
        pytest.param(
            [encode_frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=4)],
            True,
            "protocol error: decompression failed",
            id="corrupt-deflate-data",
        ),
    ],
)
def test_reserved_bits_and_bad_compressed_data(
    client: Client, raw_server: MakeRaw, frames: list[bytes], extensions: bool, words: str
) -> None:
    server = raw_server(after_handshake(*frames, extensions=extensions))
    fails_when_open(client, server, 1002, wsloop.ProtocolError, words, "(closing with 1002)")


def test_terabyte_continuation_frame(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(
        after_handshake(
            encode_frame(OP_BINARY, b"x", fin=False),
            bytes([0x80, 127]) + struct.pack("!Q", 2**40),  # a continuation claiming 1 TiB
        )
    )
    fails_when_open(
        client,
        server,
        1009,
        wsloop.MessageTooBig,
        f"message too big: the server sent more than max_message_size={16 * MiB} bytes",
    )
    assert client.ws.close_reason.startswith("frame with 1099511627776 bytes")


def test_terabyte_frame_without_a_limit_allocates_nothing_ahead(
    make_client: MakeClient, raw_server: MakeRaw
) -> None:
    # With max_message_size=None the client believes the header and waits
    # for the payload; it must not reserve memory for it.
    def handler(conn: RawConnection) -> None:
        conn.handshake()
        conn.send(bytes([0x82, 127]) + struct.pack("!Q", 2**40) + b"t" * MiB)
        # then TCP closes, 1 TiB short

    server = raw_server(handler)
    client = make_client(max_message_size=None)
    with traced() as memory:
        error = fails_when_open(
            client,
            server,
            1006,
            wsloop.ConnectionClosedError,
            "server closed the connection without a close frame",
        )
    assert isinstance(error.exception, wsloop.ConnectionClosedError)
    assert memory["peak"] < 16 * MiB, f"peak {memory['peak'] / MiB:.1f} MiB"


@functools.cache
def deflated_mib_of_zeros() -> bytes:
    """One MiB of zeros, raw-deflated and byte-aligned (a full flush): about 1 KiB.

    Copies of it concatenate into a valid deflate stream of as many MiB.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block.endswith(b"\x00\x00\xff\xff")
    return block


def deflate_bomb(mib: int) -> bytes:
    """A permessage-deflate payload that inflates to ``mib`` MiB of zeros."""
    return (deflated_mib_of_zeros() * mib)[:-4]  # the message's tail goes, per RFC 7692


@pytest.mark.parametrize(
    ("frames", "limit"),
    [
        pytest.param(
            lambda: [encode_frame(OP_BINARY, deflate_bomb(1024), rsv=4)], MiB, id="1-frame"
        ),
        pytest.param(
            lambda: [encode_frame(OP_TEXT, deflate_bomb(1024), rsv=4)], MiB, id="1-frame-text"
        ),
        pytest.param(
            lambda: [
                encode_frame(OP_BINARY, deflated_mib_of_zeros(), rsv=4, fin=False),
                *[encode_frame(OP_CONT, deflated_mib_of_zeros(), fin=False)] * 1023,
            ],
            4 * MiB,
            id="fragments",
        ),
    ],
)
def test_deflate_bomb(
    make_client: MakeClient,
    raw_server: MakeRaw,
    frames: Callable[[], list[bytes]],
    limit: int,
) -> None:
    # About 1 MiB on the wire that inflates to 1 GiB.
    data = b"".join(frames())
    assert len(data) < 2 * MiB
    server = raw_server(after_handshake(data, extensions=True))
    client = make_client(max_message_size=limit)
    with traced() as memory:
        fails_when_open(
            client,
            server,
            1009,
            wsloop.MessageTooBig,
            f"message too big: the server sent more than max_message_size={limit} bytes "
            "(closing with 1009)",
        )
    assert client.of(wsloop.Opened)[0].extensions == ("permessage-deflate",)
    assert memory["peak"] < 16 * MiB, f"peak {memory['peak'] / MiB:.1f} MiB for a 1 GiB bomb"


@pytest.mark.parametrize("opcode", [OP_BINARY, OP_TEXT], ids=["binary", "text"])
def test_message_in_tiny_fragments_costs_about_its_size(
    client: Client, raw_server: MakeRaw, opcode: int
) -> None:
    size = 16 * 1024  # in 2-byte fragments: 8192 frames
    middle = encode_frame(OP_CONT, b"ab", fin=False)
    head = encode_frame(opcode, b"ab", fin=False) + middle * (size // 2 - 2)
    tail = encode_frame(OP_CONT, b"ab")
    start, processed, go = threading.Event(), threading.Event(), threading.Event()

    def handler(conn: RawConnection) -> object:
        conn.handshake()
        start.wait(WAIT)
        # A ping after the fragments: its pong says the client has read them all.
        conn.send(head + encode_frame(OP_PING, b"mark"))
        while conn.recv_frame()[1:] != (OP_PONG, b"mark"):
            pass
        processed.set()
        go.wait(WAIT)
        conn.send(tail + encode_frame(OP_CLOSE, close_payload(1000)))
        return conn.expect_close()

    server = raw_server(handler)
    with traced():
        client.connect(server.url())
        client.wait_open()
        base = current_traced()
        start.set()
        client.pump(processed.is_set, what="the client to read every fragment")
        held = current_traced() - base
        go.set()
    [message] = client.wait_messages(1)
    assert message == ("ab" if opcode == OP_TEXT else b"ab") * (size // 2)
    assert client.wait_closed().code == 1000
    assert held < 4 * size, f"{held / 1024:.0f} KiB held for a {size // 1024} KiB message"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x82", id="mid-header"),
        pytest.param(encode_frame(OP_BINARY, b"x" * 1000)[:500], id="mid-payload"),
        pytest.param(encode_frame(OP_TEXT, b"unfinished ", fin=False), id="mid-message"),
    ],
)
def test_fin_in_the_middle(client: Client, raw_server: MakeRaw, data: bytes) -> None:
    def handler(conn: RawConnection) -> None:
        conn.handshake()
        conn.send(data)  # then FIN, without a close frame

    server = raw_server(handler)
    error = fails_when_open(
        client,
        server,
        1006,
        wsloop.ConnectionClosedError,
        "server closed the connection without a close frame",
    )
    assert error.message == "server closed the connection without a close frame"


# The closing handshake.


@pytest.mark.parametrize("initiator", ["server", "client"])
def test_close_handshake_done_but_tcp_left_open(
    make_client: MakeClient, raw_server: MakeRaw, initiator: str
) -> None:
    # RFC 6455 7.1.1: once both close frames are exchanged the client may
    # close TCP itself if the server does not; the close is still clean.
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        if initiator == "server":
            conn.send_frame(OP_CLOSE, close_payload(4000, "bye"))
            got = conn.expect_close()
        else:
            got = conn.expect_close()
            assert got is not None
            conn.send_frame(OP_CLOSE, close_payload(*got))
        hold(conn)  # never close TCP: wait for the client to do it
        return got

    server = raw_server(handler)
    client = make_client(close_timeout=SHORT / 2)
    client.connect(server.url())
    client.wait_open()
    if initiator == "client":
        client.ws.close(4000, "bye")
    closed = client.wait_closed()
    assert server.wait_result(WAIT) == (4000, "bye")  # the client closed TCP
    assert client.kinds() == ["Opened", "Closed"]
    assert (closed.code, closed.reason, closed.was_clean) == (4000, "bye", True)


# Storms and floods.


def test_ping_storm(client: Client, raw_server: MakeRaw) -> None:
    pings, every = 5000, 500

    def payload(i: int) -> bytes:
        return b"%06d" % i + b"." * 119  # 125 bytes, the most a ping may carry

    storm = b"".join(
        encode_frame(OP_PING, payload(i))
        + (encode_frame(OP_TEXT, b"message %d" % i) if i % every == every - 1 else b"")
        for i in range(pings)
    )

    def handler(conn: RawConnection) -> object:
        conn.handshake()
        writer = threading.Thread(target=conn.send, args=(storm,), daemon=True)
        writer.start()  # the pongs are read while the pings go out
        pongs = []
        while not pongs or pongs[-1] != payload(pings - 1):
            fin, opcode, data = conn.recv_frame()
            assert (fin, opcode) == (True, OP_PONG), (fin, opcode, data)
            pongs.append(data)
        writer.join(WAIT)
        conn.send_frame(OP_CLOSE, close_payload(1000))
        return pongs, conn.expect_close()

    server = raw_server(handler)
    with traced() as memory:
        client.connect(server.url())
        closed = client.wait_closed()
    assert client.kinds() == ["Opened"] + ["TextMessage"] * (pings // every) + ["Closed"]
    assert [e.text for e in client.of(TextMessage)] == [
        f"message {i}" for i in range(every - 1, pings, every)
    ]
    assert (closed.code, closed.was_clean) == (1000, True)
    pongs, close = server.wait_result(WAIT)  # type: ignore[misc]
    assert close == (1000, "")
    # Each pong echoes a ping, in order, and the last ping is answered (RFC
    # 6455 5.5.3 lets a client answer only the latest of several pings).
    indices = [int(p[:6]) for p in pongs]
    assert pongs == [payload(i) for i in indices]
    assert indices == sorted(set(indices))
    assert indices[-1] == pings - 1
    assert memory["peak"] < 16 * MiB, f"peak {memory['peak'] / MiB:.1f} MiB"


def test_ping_storm_from_a_server_that_never_reads(
    make_client: MakeClient, raw_server: MakeRaw
) -> None:
    # The expected behaviour answers only the latest ping when pongs cannot
    # be written (RFC 6455 5.5.3), so the storm is read to its end.
    storm = encode_frame(OP_PING, b"p" * 125) * (16 * 8192)  # 16 MiB of pings
    release = threading.Event()

    def handler(conn: RawConnection) -> str:
        conn.handshake()
        try:
            conn.send(storm + encode_frame(OP_TEXT, b"end of the storm"))
        except OSError:
            return "client hung up"
        release.wait(WAIT)  # still not reading
        return "sent everything"

    server = raw_server(handler)
    limit = MiB
    client = make_client(max_buffered_amount=limit, close_timeout=SHORT)
    try:
        client.connect(server.url())
        client.pump(
            lambda: bool(client.of(TextMessage)) or client.ws.buffered_amount > limit,
            what="the end of the storm or a growing send buffer",
        )
        buffered = client.ws.buffered_amount
        assert buffered <= limit, f"{buffered / MiB:.1f} MiB of pongs wait to be sent"
        assert client.kinds() == ["Opened", "TextMessage"]  # no error: just a rude server
        assert client.ws.send_text("still usable")
    finally:
        release.set()


def test_flood_faster_than_the_app_polls(
    adapter: DriverAdapter, make_client: MakeClient, raw_server: MakeRaw
) -> None:
    count, size, queue = 1024, 64 * 1024, 16  # 64 MiB offered
    filler = b"\xab" * (size - 4)
    progress = {"sent": 0}

    def handler(conn: RawConnection) -> object:
        conn.handshake()
        for i in range(count):
            conn.send(encode_frame(OP_BINARY, struct.pack("!I", i) + filler))
            progress["sent"] = i + 1
        conn.send_frame(OP_CLOSE, close_payload(1000))
        return conn.expect_close()

    server = raw_server(handler)
    client = make_client(max_queue=queue, compression=None)
    received: list[int] = []
    slow = threading.Event()
    slow.set()

    def on_binary_message(event: BinaryMessage) -> None:
        # Keep the sequence number only: the test must not hold the flood itself.
        assert len(event.data) == size
        received.append(struct.unpack_from("!I", event.data)[0])
        if slow.is_set() and not adapter.handlers_in_poll and len(received) % queue == 0:
            time.sleep(0.05)  # handlers on the I/O thread: a slow one is a slow app

    client.ws.on_binary_message = on_binary_message
    with traced() as memory:
        client.connect(server.url())
        client.wait_open()
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            client.ws.poll(0)  # a game that polls once per 50 ms frame
            time.sleep(0.05)
        sent, taken = progress["sent"], len(received)
    slow.clear()
    closed = client.wait_closed()  # now the app keeps up: everything arrives
    assert taken < count and sent < count  # TCP flow control held the server back
    assert memory["peak"] < 16 * MiB, f"peak {memory['peak'] / MiB:.1f} MiB with 64 MiB offered"
    assert received == list(range(count))
    assert client.kinds() == ["Opened", "Closed"]  # messages went to the handler above
    assert (closed.code, closed.was_clean) == (1000, True)
    assert server.wait_result(WAIT) == (1000, "")
