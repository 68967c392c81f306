"""The WebSocket façade against real servers on loopback: issue 2's semantics.

Every test here runs once per driver (the ``driver_name`` fixture of
conftest.py) and talks to a real server: the ``websockets`` asyncio server,
the npm ``ws`` server, or a hand-written raw server for misbehaviour. Each
connect() attempt is checked against the ordering contract (at most one On
opened, first; On error right before On closed when the end was not clean;
exactly one On closed, last) when the test ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import select
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import wsloop
from servers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    SHORT,
    WAIT,
    close_payload,
    encode_frame,
    free_port,
    unique_path,
)
from wsloop import (
    BinaryData,
    BinaryMessage,
    Closed,
    Error,
    Opened,
    TextMessage,
)
from wsloop.sansio import SEND_SLICE_DEFLATE

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Client, DriverAdapter
    from servers import NodeServer, RawConnection, RawServer, WebsocketsServer

    MakeClient = Callable[..., Client]
    MakeWs = Callable[..., wsloop.WebSocket]
    Pump = Callable[..., None]
    MakeRaw = Callable[[Callable[[RawConnection], object]], RawServer]
    EchoServer = WebsocketsServer | NodeServer

SIZES = [0, 1, 125, 126, 65535, 65536, 2**20]


def text_of_size(size: int, seed: int) -> str:
    """Text of exactly ``size`` UTF-8 bytes, with 1- to 4-byte characters."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz 0123456789éüß€✓😀"

    def chars(budget: int) -> str:
        out = []
        while budget > 0:
            char = rng.choice(alphabet)
            width = len(char.encode())
            if width > budget:
                char, width = "a", 1
            out.append(char)
            budget -= width
        return "".join(out)

    block = chars(min(size, 4096))
    width = len(block.encode())
    if width == 0:
        return ""
    repeat, rest = divmod(size, width)
    text = block * repeat + chars(rest)
    assert len(text.encode()) == size
    return text


def digest(data: str | bytes) -> tuple[int, str]:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw), hashlib.sha256(raw).hexdigest()[:16]


def open_echo(make_client: MakeClient, server: EchoServer, **options: Any) -> Client:
    client = make_client(**options)
    client.connect(server.url(unique_path()))
    client.wait_open()
    return client


# The object itself.


def test_is_supported() -> None:
    assert wsloop.is_supported() is True


def test_state_before_connect(client: Client) -> None:
    ws = client.ws
    assert ws.is_closed
    assert not ws.is_open
    assert not ws.is_connecting
    assert (ws.close_code, ws.close_reason, ws.error_msg, ws.message_text) == (0, "", "", "")
    assert (ws.protocol, ws.url, ws.buffered_amount) == ("", "", 0)
    assert ws.fileno() == -1
    assert ws.poll(0.0) == 0
    assert client.events == []


def test_event_decorator_picks_the_handler_by_name(
    make_ws: MakeWs, pump: Pump, ws_server: WebsocketsServer
) -> None:
    ws = make_ws()
    got: list[object] = []

    @ws.event
    def on_opened(event: Opened) -> None:
        got.append(event)
        ws.send_text("decorated")

    @ws.event
    def on_text_message(event: TextMessage) -> None:
        got.append(event.text)
        ws.close(4000, "done")

    @ws.event
    def on_closed(event: Closed) -> None:
        got.append(event.code)

    assert ws.on_text_message is on_text_message  # the decorator returns the function
    ws.connect(ws_server.url(unique_path()))
    pump(ws, lambda: len(got) == 3, what="the decorated handlers")
    assert isinstance(got[0], Opened)
    assert got[1:] == ["decorated", 4000]


def test_event_decorator_rejects_unknown_names(make_ws: MakeWs) -> None:
    ws = make_ws()

    def on_message(event: object) -> None:
        pass

    with pytest.raises(ValueError, match="on_message") as info:
        ws.event(on_message)
    assert "on_text_message" in str(info.value)  # it lists the valid names
    with pytest.raises(AttributeError, match="on_open"):
        ws.on_open = lambda event: None  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        ws.on_opened = "not callable"  # type: ignore[assignment]


# Sends while not open are ignored.


def test_sends_before_connect_return_false(client: Client) -> None:
    ws = client.ws
    assert ws.send_text("hello") is False
    assert ws.send_binary(b"hello") is False
    assert ws.send_binary(BinaryData(b"hello")) is False
    assert ws.ping() is False
    assert ws.buffered_amount == 0
    ws.close()  # closing what was never opened does nothing
    assert ws.poll(0.0) == 0
    assert client.events == []


def test_sends_while_connecting_are_dropped(client: Client, raw_server: MakeRaw) -> None:
    # The server holds its answer to the upgrade until the early sends are
    # done, so the connection is surely still connecting, whatever the driver.
    release = threading.Event()

    def handler(conn: RawConnection) -> object:
        assert release.wait(WAIT)
        conn.handshake()  # reads the request that waited meanwhile, answers 101
        return [conn.recv_frame() for _ in range(2)]

    server = raw_server(handler)
    client.connect(server.url())
    assert client.ws.is_connecting
    assert client.ws.send_text("early") is False
    assert client.ws.send_binary(b"early") is False
    assert client.ws.buffered_amount == 0
    release.set()
    client.wait_open()
    assert client.ws.send_text("after") is True
    client.ws.close()
    frames = server.wait_result(WAIT)
    # The first frame the server sees is "after": nothing sent early leaked out.
    assert frames[0] == (True, OP_TEXT, b"after")
    assert frames[1][1] == OP_CLOSE
    client.pump(lambda: client.ws.is_closed)


def test_no_message_is_delivered_after_close(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        # One write: "two" is read together with "one", before close() is called.
        conn.send(
            encode_frame(OP_TEXT, b"one")
            + encode_frame(OP_TEXT, b"two")
            + encode_frame(OP_BINARY, b"three")
        )
        return clean_close(conn)

    server = raw_server(handler)
    client.recorder.also("on_text_message", lambda event: client.ws.close(4000, "enough"))
    client.connect(server.url())
    client.wait_closed()
    assert [e.text for e in client.of(TextMessage)] == ["one"]
    assert not client.of(BinaryMessage)
    assert client.ws.message_text == "one"
    server.wait_result(WAIT)


def test_sends_after_close_return_false(client: Client, ws_server: WebsocketsServer) -> None:
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    client.ws.close()
    # Closing: the handshake has started, so nothing more may be sent.
    assert client.ws.send_text("late") is False
    client.wait_closed()
    assert client.ws.send_text("late") is False
    assert client.ws.send_binary(b"late") is False
    assert client.ws.send_binary(BinaryData(b"late")) is False
    assert client.ws.ping() is False
    assert client.ws.buffered_amount == 0
    assert client.ws.poll(0.0) == 0
    assert not client.of(TextMessage)


# URLs.


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("127.0.0.1:8765/path", "scheme"),
        ("localhost", "scheme"),
        ("ftp://127.0.0.1/", "ftp"),
        ("file:///tmp/socket", "file"),
        ("tcp://127.0.0.1:80", "tcp"),
        ("ws://", "host"),
        ("ws:///path", "host"),
        ("ws://127.0.0.1:99999/", "port"),
        ("ws://127.0.0.1:0/", "port"),
        ("ws://127.0.0.1:port/", "port"),
        ("ws://127.0.0.1/#fragment", "fragment"),
        ("ws://127.0.0.1/a path", "white space"),
        ("ws://[::1/", "IPv6"),
    ],
)
def test_malformed_urls_are_value_errors_at_connect(client: Client, url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        client.ws.connect(url)
    assert isinstance(info.value, wsloop.InvalidURI)
    assert client.ws.is_closed
    assert client.ws.url == ""
    assert client.ws.poll(0.0) == 0
    assert client.events == []


def test_http_scheme_maps_to_ws(client: Client, ws_server: WebsocketsServer) -> None:
    url = ws_server.url(unique_path(), scheme="http")
    assert url.startswith("http://")
    client.connect(url)
    client.wait_open()
    assert client.ws.url == url
    client.ws.send_text("over http://")
    assert client.wait_messages(1) == ["over http://"]


def test_connect_by_host_name(client: Client, ws_server: WebsocketsServer) -> None:
    client.connect(ws_server.url(unique_path(), host="localhost"))
    client.wait_open()
    client.ws.send_text("hi")
    assert client.wait_messages(1) == ["hi"]


@pytest.mark.parametrize(
    "protocols", [["chat", ""], ["a b"], ["chat,superchat"], ["chät"], ["chat", "chat"]]
)
def test_malformed_subprotocol_names_are_value_errors(
    client: Client, protocols: list[str]
) -> None:
    with pytest.raises(ValueError, match="subprotocol"):
        client.ws.connect("ws://127.0.0.1:1/", protocols)
    assert client.ws.is_closed
    assert client.ws.poll(0.0) == 0


# Round trips.


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("compression", ["deflate", None])
def test_round_trip(
    make_client: MakeClient,
    echo_server: EchoServer,
    compression: str | None,
    kind: str,
    size: int,
) -> None:
    client = open_echo(make_client, echo_server, compression=compression)
    ws = client.ws
    if kind == "text":
        payload: str | bytes = text_of_size(size, seed=size)
        assert ws.send_text(payload) is True
    else:
        payload = random.Random(size).randbytes(size)
        assert ws.send_binary(payload) is True
    [got] = client.wait_messages(1)
    event_type = TextMessage if kind == "text" else BinaryMessage
    assert [type(e) for e in client.attempt[1:]] == [event_type]
    assert type(got) is type(payload)
    assert digest(got) == digest(payload)
    if kind == "text":
        assert ws.message_text == payload
    ws.close()
    assert client.wait_closed().code == 1000


@pytest.mark.parametrize("compression", ["deflate", None])
def test_compression_is_offered_by_default_and_can_be_turned_off(
    make_client: MakeClient, echo_server: EchoServer, compression: str | None
) -> None:
    options = {} if compression == "deflate" else {"compression": None}
    client = make_client(**options)
    client.connect(echo_server.url(unique_path()))
    opened = client.wait_open()
    if compression == "deflate":
        assert opened.extensions == ("permessage-deflate",)
    else:
        assert opened.extensions == ()


def test_messages_keep_their_order_and_type(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    sent: list[str | bytes] = []
    for i in range(50):
        item: str | bytes = f"text {i}" if i % 3 else bytes([i]) * i
        sent.append(item)
        if isinstance(item, str):
            assert client.ws.send_text(item)
        else:
            assert client.ws.send_binary(item)
    assert client.wait_messages(len(sent)) == sent


def test_binary_data_option_receives_the_message(
    make_client: MakeClient, echo_server: EchoServer
) -> None:
    buffer = BinaryData(b"old contents that are longer than the message")
    client = open_echo(make_client, echo_server, binary_data=buffer)
    payload = struct.pack("<iHd", -7, 513, 2.5)
    client.ws.send_binary(payload)
    client.wait_messages(1)
    [event] = client.of(BinaryMessage)
    assert event.data == payload
    # The buffer held the message already when the trigger fired.
    assert client.recorder.seen[client.events.index(event)]["binary_data"] == payload
    assert bytes(buffer) == payload
    assert buffer.get_int32(0) == -7
    assert buffer.get_uint16(4) == 513
    assert buffer.get_float64(6) == 2.5
    # A text message leaves the buffer alone.
    client.ws.send_text("text")
    client.wait_messages(2)
    assert bytes(buffer) == payload


def test_send_binary_accepts_binary_data(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    data = BinaryData(12)
    data.set_uint32(0, 0xDEADBEEF)
    data.set_float32(4, 1.5)
    data.set_int32(8, -2, little_endian=False)
    assert client.ws.send_binary(data) is True
    assert client.ws.send_binary(BinaryData()) is True
    assert client.wait_messages(2) == [bytes(data), b""]


def test_send_binary_accepts_bytes_like(client: Client, ws_server: WebsocketsServer) -> None:
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    assert client.ws.send_binary(bytearray(b"array"))
    assert client.ws.send_binary(memoryview(b"xxview")[2:])
    assert client.wait_messages(2) == [b"array", b"view"]
    with pytest.raises(TypeError):
        client.ws.send_binary("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.ws.send_text(b"bytes")  # type: ignore[arg-type]


def test_big_send_is_buffered_and_drains(client: Client, ws_server: WebsocketsServer) -> None:
    client = client
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    payload = random.Random(4).randbytes(8 * 2**20)
    assert client.ws.send_binary(payload) is True  # returns without waiting for the network
    # The payload not framed yet, plus the framed part's headers (and, with
    # deflate, what compressing random bytes adds): a few bytes per fragment.
    fragments = len(payload) // SEND_SLICE_DEFLATE + 1
    assert 0 <= client.ws.buffered_amount <= len(payload) + 32 * fragments
    [got] = client.wait_messages(1)
    assert digest(got) == digest(payload)
    assert client.ws.buffered_amount == 0


@pytest.mark.parametrize("compression", ["deflate", None])
def test_close_right_after_large_sends_loses_nothing(
    make_client: MakeClient, ws_server: WebsocketsServer, compression: str | None
) -> None:
    """Large messages go out in slices after send returns; close() waits behind them."""
    client = make_client(compression=compression)
    path = "/sink" + unique_path()
    client.connect(ws_server.url(path))
    client.wait_open()
    ws = client.ws
    big = random.Random(9).randbytes(3 * 2**20 + 5)
    text = "ascii " * (2**20 // 3)
    assert ws.send_binary(big) is True
    assert ws.send_text(text) is True
    assert ws.send_text("last") is True
    ws.close(1000, "done")
    assert ws.send_text("too late") is False
    closed = client.wait_closed()
    assert (closed.code, closed.was_clean) == (1000, True)
    entry = ws_server.log.wait_for(path, "closed", WAIT)
    assert ws_server.log.entries(path)[1:] == [
        ("binary", len(big)),
        ("text", len(text)),
        ("text", 4),
        entry,
    ]
    assert entry[:2] == ("closed", 1000)


def test_unlimited_max_message_size(make_client: MakeClient, ws_server: WebsocketsServer) -> None:
    client = make_client(max_message_size=None, compression=None)
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    payload = random.Random(17).randbytes(17 * 2**20)  # over the 16 MiB default
    client.ws.send_binary(payload)
    [got] = client.wait_messages(1)
    assert digest(got) == digest(payload)


def test_ping_while_open(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    assert client.ws.ping(b"are you there") is True
    assert client.ws.ping() is True
    client.ws.send_text("still open")
    assert client.wait_messages(1) == ["still open"]
    with pytest.raises(ValueError, match="125"):
        client.ws.ping(b"x" * 126)


# Expressions and conditions.


def test_expressions_during_triggers(
    adapter: DriverAdapter, client: Client, ws_server: WebsocketsServer
) -> None:
    url = ws_server.url(unique_path())
    client.connect(url, "chat")
    if adapter.io_in_poll:  # elsewhere the handshake may already be done on loopback
        assert client.ws.is_connecting and not client.ws.is_open
    assert client.ws.url == url
    client.wait_open()
    client.ws.send_text("first")
    client.ws.send_text("second")
    client.wait_messages(2)
    client.ws.send_text("close 4321 game over")
    client.wait_closed()
    seen = client.recorder.seen
    assert client.kinds() == ["Opened", "TextMessage", "TextMessage", "Closed"]
    assert seen[0]["protocol"] == "chat"
    assert seen[0]["is_open"] and not seen[0]["is_connecting"]
    assert [s["message_text"] for s in seen[1:3]] == ["first", "second"]
    assert (seen[3]["close_code"], seen[3]["close_reason"]) == (4321, "game over")
    assert not seen[3]["is_open"] and not seen[3]["is_connecting"]
    ws = client.ws
    assert (ws.close_code, ws.close_reason, ws.message_text) == (4321, "game over", "second")
    assert ws.protocol == "chat"
    assert ws.error_msg == ""
    assert ws.url == url


def test_error_msg_during_on_error(client: Client) -> None:
    port = free_port()
    client.connect(f"ws://127.0.0.1:{port}/")
    client.wait_closed()
    error = client.error()
    index = client.events.index(error)
    assert client.recorder.seen[index]["error_msg"] == error.message
    assert client.ws.error_msg == error.message
    assert client.ws.close_code == 1006


def test_fileno(client: Client, ws_server: WebsocketsServer) -> None:
    assert client.ws.fileno() == -1
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    fd = client.ws.fileno()
    assert isinstance(fd, int)
    assert fd >= 0
    client.ws.close()
    client.wait_closed()


def test_handlers_fire_only_inside_poll(
    adapter: DriverAdapter, client: Client, ws_server: WebsocketsServer
) -> None:
    if not adapter.io_in_poll:
        pytest.skip("this driver does its I/O outside poll()")
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    client.ws.send_text("wake me")
    readable, _, _ = select.select([client.ws.fileno()], [], [], WAIT)
    assert readable, "the echo never made the socket readable"
    assert not client.of(TextMessage)  # arrived, but no poll() yet
    client.wait_messages(1)


def test_wait_open_wait_closed_and_run_forever(make_ws: MakeWs, echo_server: EchoServer) -> None:
    ws = make_ws()
    got: list[str] = []
    ws.on_opened = lambda event: ws.send_text("ping-pong")

    def on_text_message(event: TextMessage) -> None:
        got.append(event.text)
        ws.close(4000, "done")

    ws.on_text_message = on_text_message
    ws.connect(echo_server.url(unique_path()))
    assert ws.wait_open(WAIT) is True
    ws.run_forever()
    assert got == ["ping-pong"]
    assert ws.is_closed
    assert (ws.close_code, ws.close_reason) == (4000, "done")
    assert ws.wait_closed(0.0) is True
    # wait_open on a failing connection answers False.
    ws.connect(f"ws://127.0.0.1:{free_port()}/")
    assert ws.wait_open(WAIT) is False
    assert ws.close_code == 1006


# Close codes.


def test_client_close_code_reaches_the_server(client: Client, echo_server: EchoServer) -> None:
    path = unique_path()
    client.connect(echo_server.url(path))
    client.wait_open()
    client.ws.close(4000, "bye")
    assert not client.ws.is_open
    closed = client.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (4000, "bye", True)
    assert (client.ws.close_code, client.ws.close_reason) == (4000, "bye")
    assert echo_server.log.wait_for(path, "closed", WAIT) == ("closed", 4000, "bye")


def test_client_close_defaults_to_1000(client: Client, echo_server: EchoServer) -> None:
    path = unique_path()
    client.connect(echo_server.url(path))
    client.wait_open()
    client.ws.close()
    closed = client.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (1000, "", True)
    assert echo_server.log.wait_for(path, "closed", WAIT) == ("closed", 1000, "")


@pytest.mark.parametrize("code", [1000, 3000, 4999])
def test_close_accepts_the_allowed_codes(
    client: Client, ws_server: WebsocketsServer, code: int
) -> None:
    path = unique_path()
    reason = "é" * 61 + "a"  # 123 bytes in UTF-8: the longest allowed
    assert len(reason.encode()) == 123
    client.connect(ws_server.url(path))
    client.wait_open()
    client.ws.close(code, reason)
    assert client.wait_closed().code == code
    assert ws_server.log.wait_for(path, "closed", WAIT) == ("closed", code, reason)


def test_server_close_code_round_trips(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    client.ws.send_text("close 4321 game over")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Closed"]
    assert (closed.code, closed.reason, closed.was_clean) == (4321, "game over", True)
    assert (client.ws.close_code, client.ws.close_reason) == (4321, "game over")


def test_server_close_with_unicode_reason(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    client.ws.send_text("close 3999 partie terminée ✓")
    closed = client.wait_closed()
    assert (closed.code, closed.reason) == (3999, "partie terminée ✓")


CLOSE_CODE_RULE = "1000 or in 3000-4999"


@pytest.mark.parametrize(
    ("code", "reason", "rule"),
    [
        (999, "", CLOSE_CODE_RULE),
        (1001, "", CLOSE_CODE_RULE),
        (1005, "", CLOSE_CODE_RULE),
        (1006, "", CLOSE_CODE_RULE),
        (2999, "", CLOSE_CODE_RULE),
        (5000, "", CLOSE_CODE_RULE),
        (-1, "", CLOSE_CODE_RULE),
        (1000, "x" * 124, "at most 123 bytes"),
        (4000, "é" * 62, "at most 123 bytes"),  # 62 characters, 124 bytes
    ],
)
def test_close_validation(
    client: Client, ws_server: WebsocketsServer, code: int, reason: str, rule: str
) -> None:
    # Refused before any connection ...
    with pytest.raises(ValueError, match=rule):
        client.ws.close(code, reason)
    # ... and on an open one, which stays open.
    path = unique_path()
    client.connect(ws_server.url(path))
    client.wait_open()
    with pytest.raises(ValueError, match=rule) as info:
        client.ws.close(code, reason)
    assert str(code) in str(info.value) or "124" in str(info.value)
    assert client.ws.is_open
    client.ws.send_text("still open")
    assert client.wait_messages(1) == ["still open"]
    client.ws.close()
    client.wait_closed()
    assert ws_server.log.wait_for(path, "closed", WAIT) == ("closed", 1000, "")


def test_close_rejects_wrong_types(client: Client) -> None:
    with pytest.raises(TypeError):
        client.ws.close("1000")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.ws.close(1000, b"bytes")  # type: ignore[arg-type]


def test_server_drops_tcp_without_close_frame(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    client.wait_open()
    client.ws.send_text("drop")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Error", "Closed"]
    assert (closed.code, closed.was_clean) == (1006, False)
    assert client.ws.close_code == 1006
    assert "without a close frame" in client.error().message


@pytest.mark.node
def test_close_frame_without_code_from_node(client: Client, node_server: NodeServer) -> None:
    client.connect(node_server.url(unique_path()))
    client.wait_open()
    client.ws.send_text("close")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Closed"]
    assert (closed.code, closed.reason, closed.was_clean) == (1005, "", True)


def test_close_twice_and_after_closed_does_nothing(
    client: Client, ws_server: WebsocketsServer
) -> None:
    path = unique_path()
    client.connect(ws_server.url(path))
    client.wait_open()
    client.ws.close(4001, "first")
    client.ws.close(4002, "second")
    closed = client.wait_closed()
    assert (closed.code, closed.reason) == (4001, "first")
    client.ws.close(4003, "third")
    assert client.ws.poll(0.0) == 0
    assert client.kinds() == ["Opened", "Closed"]
    assert ws_server.log.wait_for(path, "closed", WAIT) == ("closed", 4001, "first")


# Raw servers: endings.


def clean_close(conn: RawConnection) -> tuple[int | None, str] | None:
    """Answer the client's close frame with the same code, then close TCP."""
    got = conn.expect_close()
    if got is not None:
        code, reason = got
        conn.send_frame(OP_CLOSE, close_payload(code, reason))
    return got


def test_tcp_closed_without_close_frame_is_1006(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> None:
        conn.handshake()
        conn.send_frame(OP_TEXT, b"last words")

    server = raw_server(handler)
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "TextMessage", "Error", "Closed"]
    assert (closed.code, closed.reason, closed.was_clean) == (1006, "", False)
    assert client.ws.message_text == "last words"


def test_close_frame_without_code_is_1005(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        conn.send_frame(OP_CLOSE)
        return conn.expect_close()

    server = raw_server(handler)
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Closed"]
    assert (closed.code, closed.reason, closed.was_clean) == (1005, "", True)
    assert client.ws.close_code == 1005
    # The client answered with a close frame that has no code either.
    assert server.wait_result(WAIT) == (None, "")


def test_close_frame_with_application_code_raw(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        conn.send_frame(OP_CLOSE, close_payload(4321, "game over"))
        return conn.expect_close()

    server = raw_server(handler)
    client.connect(server.url())
    closed = client.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (4321, "game over", True)
    assert (client.ws.close_code, client.ws.close_reason) == (4321, "game over")
    assert server.wait_result(WAIT) == (4321, "game over")  # the client echoed it


def test_close_timeout(make_client: MakeClient, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        got = conn.expect_close()
        conn.wait_eof()  # never answer; wait for the client to give up
        return got

    server = raw_server(handler)
    client = make_client(close_timeout=SHORT)
    client.connect(server.url())
    client.wait_open()
    client.ws.close(4000, "bye")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TimeoutError)
    assert "clos" in error.message and "timed out" in error.message
    # No close frame arrived: 1006, not the code the client sent.
    assert (closed.code, closed.reason, closed.was_clean) == (1006, "", False)
    # The client gave up: the server saw the close frame, then TCP closed.
    assert server.wait_result(WAIT) == (4000, "bye")


def test_server_never_answering_close_then_closing_tcp(
    client: Client, raw_server: MakeRaw
) -> None:
    def handler(conn: RawConnection) -> object:
        conn.handshake()
        return conn.expect_close()  # then TCP closes, without a close frame

    server = raw_server(handler)
    client.connect(server.url())
    client.wait_open()
    client.ws.close(4000, "bye")
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Error", "Closed"]
    assert not closed.was_clean
    assert server.wait_result(WAIT) == (4000, "bye")


# Raw servers: protocol violations.


def violation(*frames: bytes) -> Callable[[RawConnection], object]:
    """A handler that opens, writes ``frames`` and returns the client's close."""

    def handler(conn: RawConnection) -> object:
        conn.handshake()
        conn.send(b"".join(frames))
        return conn.expect_close()

    return handler


@pytest.mark.parametrize(
    ("frames", "code", "options", "words"),
    [
        pytest.param(
            [encode_frame(OP_TEXT, b"hidden", mask=b"\x01\x02\x03\x04")],
            1002,
            {},
            "protocol error",
            id="masked-frame",
        ),
        pytest.param(
            [encode_frame(OP_TEXT, b"reserved", rsv=4)], 1002, {}, "protocol error", id="rsv1"
        ),
        pytest.param(
            [encode_frame(OP_TEXT, b"reserved", rsv=1)], 1002, {}, "protocol error", id="rsv3"
        ),
        pytest.param([encode_frame(3, b"")], 1002, {}, "protocol error", id="unknown-opcode"),
        pytest.param(
            [encode_frame(OP_CONT, b"orphan")], 1002, {}, "protocol error", id="orphan-cont"
        ),
        pytest.param(
            [encode_frame(9, b"p" * 126)], 1002, {}, "protocol error", id="ping-too-long"
        ),
        pytest.param([encode_frame(OP_TEXT, b"caf\xc3(")], 1007, {}, "UTF-8", id="invalid-utf8"),
        pytest.param(
            [
                encode_frame(OP_TEXT, b"caf", fin=False),
                encode_frame(OP_CONT, b"\xff", fin=False),
            ],
            1007,
            {},
            "UTF-8",
            id="invalid-utf8-fragment",
        ),
        pytest.param(
            [encode_frame(OP_CLOSE, close_payload(1000) + b"\xff\xfe")],
            1007,
            {},
            "UTF-8",
            id="invalid-utf8-close-reason",
        ),
        pytest.param(
            [encode_frame(OP_BINARY, b"x" * 1001)],
            1009,
            {"max_message_size": 1000},
            "too big",
            id="too-big",
        ),
        pytest.param(
            [
                encode_frame(OP_BINARY, b"x" * 600, fin=False),
                encode_frame(OP_CONT, b"x" * 600),
            ],
            1009,
            {"max_message_size": 1000},
            "too big",
            id="too-big-fragmented",
        ),
        pytest.param(
            # A header announcing 1 TiB, with no payload: refused at once,
            # under the default limit, without waiting or allocating.
            [bytes([0x82, 127]) + struct.pack("!Q", 2**40)],
            1009,
            {},
            "too big",
            id="huge-length-default-limit",
        ),
    ],
)
def test_protocol_violations_close_with_the_right_code(
    make_client: MakeClient,
    raw_server: MakeRaw,
    frames: list[bytes],
    code: int,
    options: dict[str, Any],
    words: str,
) -> None:
    server = raw_server(violation(*frames))
    client = make_client(**options)
    client.connect(server.url())
    closed = client.wait_closed()  # poll() never raised
    assert client.kinds() == ["Opened", "Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.ProtocolError)
    assert error.exception.close_code == code
    assert words in error.message
    assert str(code) in error.message
    assert (closed.code, closed.was_clean) == (code, False)
    assert client.ws.close_code == code
    sent = server.wait_result(WAIT)
    assert isinstance(sent, tuple)
    assert sent[0] == code  # the close frame the client sent says why


def test_message_at_the_limit_is_accepted(make_client: MakeClient, raw_server: MakeRaw) -> None:
    server = raw_server(
        violation(
            encode_frame(OP_BINARY, b"y" * 1000),
            encode_frame(OP_TEXT, b"a" * 600, fin=False),
            encode_frame(OP_CONT, b"b" * 400),
            encode_frame(OP_CLOSE, close_payload(1000)),
        )
    )
    client = make_client(max_message_size=1000)
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "BinaryMessage", "TextMessage", "Closed"]
    assert client.of(BinaryMessage)[0].data == b"y" * 1000
    assert client.of(TextMessage)[0].text == "a" * 600 + "b" * 400
    assert (closed.code, closed.was_clean) == (1000, True)


def test_fragmented_and_interleaved_messages(client: Client, raw_server: MakeRaw) -> None:
    euro = "€".encode()
    server = raw_server(
        violation(
            encode_frame(OP_TEXT, b"price: 5" + euro[:1], fin=False),
            encode_frame(9, b"ping in the middle"),
            encode_frame(OP_CONT, euro[1:], fin=False),
            encode_frame(OP_CONT, b"!", fin=True),
            encode_frame(OP_BINARY, b"\x00\x01", fin=False),
            encode_frame(OP_CONT, b"\x02", fin=True),
            encode_frame(OP_CLOSE, close_payload(4000, "done")),
        )
    )
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "TextMessage", "BinaryMessage", "Closed"]
    assert client.of(TextMessage)[0].text == "price: 5€!"
    assert client.of(BinaryMessage)[0].data == b"\x00\x01\x02"
    assert (closed.code, closed.reason) == (4000, "done")


# Connecting.


def hold(conn: RawConnection) -> None:
    """Accept TCP, read the request, never answer."""
    with contextlib.suppress(EOFError):
        conn.read_request()
    conn.wait_eof()


def test_connect_never_blocks_on_a_silent_server(
    make_client: MakeClient, raw_server: MakeRaw
) -> None:
    timeout = 5.0
    server = raw_server(hold)
    client = make_client(connect_timeout=timeout)
    started = time.monotonic()
    client.connect(server.url())
    assert time.monotonic() - started < timeout, "connect() waited for the server"
    assert client.ws.is_connecting
    for _ in range(20):
        started = time.monotonic()
        client.ws.poll(0.0)
        assert time.monotonic() - started < timeout, "poll(0) waited for the server"
    assert client.ws.is_connecting
    assert client.events == []
    client.ws.close()  # abandon the attempt, as a browser does
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert (closed.code, closed.was_clean) == (1006, False)


def test_connect_timeout(make_client: MakeClient, raw_server: MakeRaw) -> None:
    server = raw_server(hold)
    client = make_client(connect_timeout=SHORT)
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TimeoutError)
    assert isinstance(error.exception, TimeoutError)
    assert "connect" in error.message and "timed out" in error.message
    assert (closed.code, closed.was_clean) == (1006, False)


def test_close_while_connecting(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(hold)
    client.connect(server.url())
    assert client.ws.is_connecting
    client.ws.close(4000, "never mind")
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert closed.code == 1006
    assert not client.ws.is_connecting


def test_refused_connection(client: Client) -> None:
    port = free_port()
    client.connect(f"ws://127.0.0.1:{port}/")
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.ConnectError)
    assert "refused" in error.message
    assert str(port) in error.message
    assert closed.code == 1006


def test_unresolvable_host(client: Client) -> None:
    started = time.monotonic()
    client.connect("ws://nonexistent.invalid/")
    assert time.monotonic() - started < WAIT
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.ConnectError)
    assert "nonexistent.invalid" in error.message
    assert "resolve" in error.message
    assert closed.code == 1006


@pytest.mark.parametrize(("status", "phrase"), [(404, "Not Found"), (403, "Forbidden")])
def test_non_101_status(
    client: Client, ws_server: WebsocketsServer, status: int, phrase: str
) -> None:
    client.connect(ws_server.url(f"/status/{status}"))
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.InvalidStatus)
    assert error.exception.status == status
    assert f"{status} {phrase}" in error.message
    assert closed.code == 1006


@pytest.mark.parametrize("status", ["404 Not Found", "403 Forbidden", "500 Internal Server Error"])
def test_non_101_status_raw(client: Client, raw_server: MakeRaw, status: str) -> None:
    server = raw_server(lambda conn: conn.respond(status, b"no game here\n"))
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.InvalidStatus)
    assert status in error.message
    assert "no game here" in error.message
    assert closed.code == 1006


def test_wrong_accept_key(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(lambda conn: conn.handshake(accept="d3JvbmcgYWNjZXB0IGtleSE="))
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.HandshakeError)
    assert "Sec-WebSocket-Accept" in error.message
    assert closed.code == 1006


def test_server_closes_during_handshake(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(lambda conn: conn.read_request())
    client.connect(server.url())
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert "before answering" in client.error().message


def test_not_a_websocket_server(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(lambda conn: conn.respond("200 OK", b"<html></html>"))
    client.connect(server.url())
    client.wait_closed()
    assert "200" in client.error().message


def test_handshake_sends_options_headers(make_client: MakeClient, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        headers = conn.handshake()
        clean_close(conn)
        return headers

    server = raw_server(handler)
    client = make_client(
        headers={"X-Game": "tetris"},
        origin="https://game.example",
        user_agent="my-game/1.0",
        compression=None,
    )
    client.connect(server.url("/room?id=7"))
    client.wait_open()
    client.ws.close()
    client.wait_closed()
    headers = server.wait_result(WAIT)
    assert isinstance(headers, dict)
    assert headers["x-game"] == "tetris"
    assert headers["origin"] == "https://game.example"
    assert headers["user-agent"] == "my-game/1.0"
    assert "sec-websocket-extensions" not in headers
    assert "sec-websocket-protocol" not in headers


def test_default_handshake_offers_deflate(client: Client, raw_server: MakeRaw) -> None:
    def handler(conn: RawConnection) -> object:
        headers = conn.handshake()
        clean_close(conn)
        return headers

    server = raw_server(handler)
    client.connect(server.url())
    client.wait_open()
    client.ws.close()
    client.wait_closed()
    headers = server.wait_result(WAIT)
    assert isinstance(headers, dict)
    assert "permessage-deflate" in headers["sec-websocket-extensions"]


# Subprotocols.


def test_subprotocol_selected(client: Client, echo_server: EchoServer) -> None:
    path = unique_path()
    client.connect(echo_server.url(path), "superchat")
    opened = client.wait_open()
    assert opened.subprotocol == "superchat"
    assert client.ws.protocol == "superchat"
    assert echo_server.log.wait_for(path, "open", WAIT) == ("open", "superchat")


def test_subprotocol_from_a_list(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()), ["unknown", "chat"])
    assert client.wait_open().subprotocol == "chat"
    assert client.ws.protocol == "chat"


def test_no_subprotocol_requested(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()))
    assert client.wait_open().subprotocol is None
    assert client.ws.protocol == ""


def test_subprotocol_server_selects_none(client: Client, echo_server: EchoServer) -> None:
    client.connect(echo_server.url(unique_path()), "tetris")
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]  # On opened never fires
    error = client.error()
    assert isinstance(error.exception, wsloop.NegotiationError)
    assert "subprotocol" in error.message
    assert "tetris" in error.message
    assert not closed.was_clean
    assert client.ws.protocol == ""


def test_subprotocol_server_selects_one_not_offered(
    client: Client, ws_server: WebsocketsServer
) -> None:
    client.connect(ws_server.url(unique_path("bogus-protocol")), ["chat", "superchat"])
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert "subprotocol" in error.message
    assert "bogus" in error.message
    assert client.ws.protocol == ""


def test_subprotocol_selected_though_none_requested(client: Client, raw_server: MakeRaw) -> None:
    server = raw_server(
        lambda conn: conn.handshake(extra_headers=[("Sec-WebSocket-Protocol", "chat")])
    )
    client.connect(server.url())
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert "subprotocol" in client.error().message


# Lifecycle.


@pytest.mark.node
def test_reconnect_after_on_closed(
    client: Client, ws_server: WebsocketsServer, node_server: NodeServer
) -> None:
    for server in (ws_server, node_server, ws_server):
        client.connect(server.url(unique_path()), "chat")
        client.wait_open()
        assert client.ws.protocol == "chat"
        client.ws.send_text("again")
        assert client.wait_messages(1) == ["again"]
        client.ws.close(4000, "next")
        assert client.wait_closed().code == 4000
    assert [type(e).__name__ for e in client.events].count("Closed") == 3


def test_reconnect_after_failure(client: Client, ws_server: WebsocketsServer) -> None:
    client.connect(f"ws://127.0.0.1:{free_port()}/")
    client.wait_closed()
    assert client.ws.error_msg
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    assert client.ws.error_msg == ""  # expressions start afresh
    client.ws.send_text("works")
    assert client.wait_messages(1) == ["works"]


def test_reconnect_from_the_on_closed_handler(client: Client, ws_server: WebsocketsServer) -> None:
    urls = [ws_server.url(unique_path()), ws_server.url(unique_path())]

    def on_closed(event: Closed) -> None:
        if len(client.starts) < 2:
            client.connect(urls[1])

    client.also("on_closed", on_closed)
    client.connect(urls[0])
    client.wait_open()
    client.ws.send_text("close 4321 game over")
    client.pump(lambda: len(client.starts) == 2, what="the second connect()")
    opened = client.wait_open()
    assert isinstance(opened, Opened)
    first = client.attempts()[0]
    assert [type(e).__name__ for e in first] == ["Opened", "Closed"]
    assert first[-1].code == 4321  # type: ignore[union-attr]


def test_connect_while_open_ends_the_previous_connection(
    client: Client, ws_server: WebsocketsServer
) -> None:
    first_path = unique_path()
    client.connect(ws_server.url(first_path))
    client.wait_open()
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    first, second = client.attempts()
    assert isinstance(first[0], Opened)
    assert isinstance(first[-1], Closed)
    assert [type(e).__name__ for e in second] == ["Opened"]
    ws_server.log.wait_for(first_path, "closed", WAIT)
    client.ws.send_text("second")
    assert client.wait_messages(1) == ["second"]


def test_connect_while_open_keeps_the_new_connection_active(
    make_ws: MakeWs, ws_server: WebsocketsServer
) -> None:
    ws = make_ws()
    closed: list[Closed] = []
    ws.on_closed = closed.append
    ws.connect(ws_server.url(unique_path()))
    assert ws.wait_open(WAIT) is True
    ws.connect(ws_server.url(unique_path()))
    assert ws.wait_open(WAIT) is True
    assert not ws.is_closed
    # The replaced connection still got its one On closed...
    assert len(closed) == 1
    # ...without touching the new connection's expressions.
    assert ws.close_code == 0
    assert ws.error_msg == ""
    ws.close()
    assert ws.wait_closed(WAIT)
    assert len(closed) == 2
    assert ws.close_code == 1000


def test_exactly_one_on_closed_per_attempt(
    client: Client, ws_server: WebsocketsServer, raw_server: MakeRaw
) -> None:
    bad = raw_server(violation(encode_frame(OP_TEXT, b"\xff")))
    urls = [
        ws_server.url(unique_path()),
        f"ws://127.0.0.1:{free_port()}/",
        ws_server.url("/status/404"),
        bad.url(),
        ws_server.url(unique_path()),
    ]
    for url in urls:
        client.connect(url)
        client.pump(lambda: bool(client.of(Opened) or client.of(Closed)))
        if client.ws.is_open:
            client.ws.send_text("drop")
        client.wait_closed()
        # Nothing more arrives for a finished attempt.
        assert client.ws.poll(0.05) == 0
    closes = [e for e in client.events if isinstance(e, Closed)]
    assert len(closes) == len(urls)
    assert [c.code for c in closes] == [1006, 1006, 1006, 1007, 1006]


def test_handler_exception_propagates_and_the_rest_is_delivered_later(
    adapter: DriverAdapter, client: Client, raw_server: MakeRaw
) -> None:
    if not adapter.handlers_in_poll:
        pytest.skip("handlers run on the driver's thread (tests/drivers/test_thread.py)")

    def handler(conn: RawConnection) -> object:
        conn.handshake()
        # One write, so that the three messages arrive in one read.
        conn.send(
            encode_frame(OP_TEXT, b"one")
            + encode_frame(OP_TEXT, b"two")
            + encode_frame(OP_TEXT, b"three")
        )
        return clean_close(conn)

    class Boom(Exception):
        pass

    def explode(event: TextMessage) -> None:
        if event.text == "one":
            raise Boom("a bug in the game")

    server = raw_server(handler)
    client.also("on_text_message", explode)
    client.connect(server.url())
    with pytest.raises(Boom, match="a bug in the game"):
        client.pump(lambda: False, what="the handler's exception")
    assert [e.text for e in client.of(TextMessage)] == ["one"]
    # The next poll() delivers what was already received, in order.
    assert client.ws.poll(0.0) == 2
    assert [e.text for e in client.of(TextMessage)] == ["one", "two", "three"]
    assert client.ws.is_open  # a bug in a handler is not a connection error
    assert not client.of(Error)
    client.ws.close()
    closed = client.wait_closed()
    assert closed.was_clean
    assert server.wait_result(WAIT) == (1000, "")


def test_handler_exception_in_on_opened(client: Client, ws_server: WebsocketsServer) -> None:
    def explode(event: Opened) -> None:
        raise KeyError("oops")

    client.also("on_opened", explode)
    client.connect(ws_server.url(unique_path()))
    with pytest.raises(KeyError):
        client.pump(lambda: False)
    assert client.ws.is_open
    client.ws.send_text("fine")
    assert client.wait_messages(1) == ["fine"]


def test_poll_from_a_handler_is_refused(
    adapter: DriverAdapter, client: Client, ws_server: WebsocketsServer
) -> None:
    if not adapter.handlers_in_poll:
        pytest.skip("handlers run on the driver's thread (tests/drivers/test_thread.py)")
    caught: list[BaseException] = []

    def nested(event: Opened) -> None:
        try:
            client.ws.poll(0.0)
        except RuntimeError as exc:
            caught.append(exc)

    client.also("on_opened", nested)
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    assert len(caught) == 1


def test_send_from_handlers(client: Client, echo_server: EchoServer) -> None:
    def on_opened(event: Opened) -> None:
        assert client.ws.send_text("0")

    def on_text(event: TextMessage) -> None:
        n = int(event.text)
        if n < 10:
            assert client.ws.send_text(str(n + 1))
        else:
            client.ws.close(4000, "counted")

    client.also("on_opened", on_opened)
    client.also("on_text_message", on_text)
    client.connect(echo_server.url(unique_path()))
    closed = client.wait_closed()
    assert [e.text for e in client.of(TextMessage)] == [str(i) for i in range(11)]
    assert (closed.code, closed.reason) == (4000, "counted")


def test_connecting_and_open_conditions(client: Client, raw_server: MakeRaw) -> None:
    # The server holds its 101 until the connecting state has been looked at:
    # a background thread (the thread driver) would otherwise often be open
    # before the first assertion.
    release = threading.Event()

    def handler(conn: RawConnection) -> object:
        assert release.wait(WAIT)
        conn.handshake()
        return clean_close(conn)

    server = raw_server(handler)
    assert not client.ws.is_connecting
    client.connect(server.url())
    assert client.ws.is_connecting
    assert not client.ws.is_open
    assert not client.ws.is_closed
    release.set()
    client.wait_open()
    assert client.ws.is_open
    assert not client.ws.is_connecting
    client.ws.close()
    assert not client.ws.is_open
    client.wait_closed()
    assert not client.ws.is_open
    assert not client.ws.is_connecting
    assert client.ws.is_closed
    assert server.wait_result(WAIT) == (1000, "")


def test_pump_helper_reports_timeouts(client: Client, pump: Pump) -> None:
    with pytest.raises(AssertionError, match="timed out"):
        pump(client.ws, lambda: False, timeout=0.05, what="nothing")
