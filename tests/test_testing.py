"""The testing kit: in-process servers, fixtures, helpers and the misbehaving ScriptedServer."""

from __future__ import annotations

import os
import time

import pytest

from wsloop import BinaryMessage, Closed, Error, Opened, TextMessage, WebSocket
from wsloop.testing import (
    Close,
    Drop,
    Hang,
    Receive,
    Refuse,
    ScriptedServer,
    SendBinary,
    SendInvalidUTF8,
    SendOversized,
    SendRaw,
    SendText,
    Silent,
    echo_server,  # noqa: F401 - the fixture, imported as a user's conftest would
    poll_until,
    record,
    relay_server,  # noqa: F401
    serve_echo,
    serve_relay,
)

TIMEOUT_FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
WAIT = 30.0 * TIMEOUT_FACTOR
SHORT = 0.5 * TIMEOUT_FACTOR


def run(url, *, send=(), protocol=None, close_after_open=False, **options):
    """Connect a recorded client, send ``send`` once open, poll until closed."""
    ws = WebSocket(**options)
    events = record(ws)
    ws.connect(url, protocol)
    poll_until(lambda: ws.is_open or ws.is_closed, ws, timeout=WAIT)
    for message in send:
        if isinstance(message, str):
            ws.send_text(message)
        else:
            ws.send_binary(message)
    if close_after_open and ws.is_open:
        ws.close()
    poll_until(lambda: ws.is_closed, ws, timeout=WAIT)
    return events


def kinds(events):
    return [type(e).__name__ for e in events]


def check_contract(events):
    names = kinds(events)
    assert names.count("Closed") == 1, names
    assert names[-1] == "Closed", names
    if "Error" in names:
        assert names[-2] == "Error", names
        assert not events[-1].was_clean, events
    else:
        assert events[-1].was_clean, events


# In-process servers and fixtures.


def test_serve_echo_runs_until_the_block_ends():
    with serve_echo() as server:
        assert server.url == f"ws://127.0.0.1:{server.port}"
        ws = WebSocket()
        events = record(ws)
        ws.connect(server.url + "/anything")
        assert ws.wait_open(WAIT)
        ws.send_text("one")
        ws.send_binary(b"\x02")
        poll_until(lambda: len(events) >= 3, ws, timeout=WAIT)
        assert events[1:] == [TextMessage("one"), BinaryMessage(b"\x02")]
        ws.close()
        assert ws.wait_closed(WAIT)
    later = run(server.url)
    check_contract(later)
    assert "refused" in later[0].message


def test_serve_relay_passes_its_options():
    with serve_relay(protocols=["game"]) as relay:
        a, b = WebSocket(), WebSocket()
        b_events = record(b)
        a.connect(relay.url + "/room/t", "game")
        b.connect(relay.url + "/room/t", "game")
        poll_until(lambda: a.is_open and b.is_open, a, b, timeout=WAIT)
        assert a.protocol == "game"
        a.send_text("to b")
        poll_until(lambda: len(b_events) >= 2, a, b, timeout=WAIT)
        assert b_events[1] == TextMessage("to b")
        assert relay.stats.connections == 2
        a.close()
        b.close()
        poll_until(lambda: a.is_closed and b.is_closed, a, b, timeout=WAIT)


def test_the_echo_server_fixture(echo_server):  # noqa: F811
    ws = WebSocket()
    events = record(ws)
    ws.connect(echo_server.url + "/f")
    assert ws.wait_open(WAIT)
    ws.send_text("fixture")
    poll_until(lambda: len(events) >= 2, ws, timeout=WAIT)
    assert events[1] == TextMessage("fixture")
    ws.close()
    assert ws.wait_closed(WAIT)


def test_the_relay_server_fixture(relay_server):  # noqa: F811
    ws = WebSocket()
    ws.connect(relay_server.url + "/room/f")
    assert ws.wait_open(WAIT)
    ws.close()
    assert ws.wait_closed(WAIT)
    assert ws.close_code == 1000


def test_poll_until_raises_when_the_condition_never_holds():
    ws = WebSocket()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        poll_until(lambda: False, ws, timeout=0.2)
    assert time.monotonic() - started >= 0.2


def test_record_keeps_existing_handlers():
    seen = []
    ws = WebSocket()
    ws.on_closed = seen.append
    events = record(ws)
    with ScriptedServer.closing(4001, "bye") as server:
        ws.connect(server.url)
        poll_until(lambda: ws.is_closed and seen, ws, timeout=WAIT)
    assert seen == [events[-1]]
    assert isinstance(events[0], Opened)


# The scripted server.


@pytest.mark.parametrize(
    ("server", "options", "expected", "code", "message"),
    [
        (ScriptedServer.closing(4000, "game over"), {}, ["Opened", "Closed"], 4000, None),
        (ScriptedServer.closing(None), {}, ["Opened", "Closed"], 1005, None),
        (ScriptedServer.dropping(), {}, ["Opened", "Error", "Closed"], 1006, "reset"),
        (
            ScriptedServer.silent(),
            {"connect_timeout": SHORT},
            ["Error", "Closed"],
            1006,
            "timed out",
        ),
        (
            ScriptedServer.refusing(404, "no such room"),
            {},
            ["Error", "Closed"],
            1006,
            "HTTP 404 Not Found: no such room",
        ),
        (
            ScriptedServer.oversized(),
            {"max_message_size": 1024},
            ["Opened", "Error", "Closed"],
            1009,
            "too big",
        ),
        (
            ScriptedServer(SendOversized(2000), SendText("after")),
            {"max_message_size": 1000},
            ["Opened", "Error", "Closed"],
            1009,
            "too big",
        ),
        (ScriptedServer.invalid_utf8(), {}, ["Opened", "Error", "Closed"], 1007, "UTF-8"),
        (
            ScriptedServer.raw(b"\x83\x00"),  # a reserved opcode
            {},
            ["Opened", "Error", "Closed"],
            1002,
            "opcode",
        ),
        (
            ScriptedServer(Refuse(503, "full")),
            {},
            ["Error", "Closed"],
            1006,
            "HTTP 503",
        ),
        (ScriptedServer(Silent()), {"connect_timeout": SHORT}, ["Error", "Closed"], 1006, None),
        (
            ScriptedServer(SendText("hi"), Drop()),
            {},
            ["Opened", "TextMessage", "Error", "Closed"],
            1006,
            None,
        ),
    ],
    ids=[
        "close-with-code",
        "close-without-code",
        "drop",
        "silent",
        "refuse",
        "oversized",
        "oversized-then-more",
        "invalid-utf8",
        "raw-bytes",
        "refuse-503",
        "silent-step",
        "text-then-drop",
    ],
)
def test_misbehaviours_end_in_on_error_and_on_closed(server, options, expected, code, message):
    with server:
        events = run(server.url, **options)
    check_contract(events)
    assert kinds(events) == expected
    assert events[-1].code == code
    if message is not None:
        (error,) = [e for e in events if isinstance(e, Error)]
        assert message in error.message


def test_a_close_the_server_never_answers_times_out():
    with ScriptedServer.hanging() as server:
        started = time.monotonic()
        events = run(server.url, close_after_open=True, close_timeout=SHORT)
        took = time.monotonic() - started
        server_stopped = time.monotonic()
    assert time.monotonic() - server_stopped < WAIT
    check_contract(events)
    assert "timed out" in events[-2].message
    assert took >= SHORT


def test_a_script_in_order():
    with ScriptedServer(
        SendText("welcome"),
        SendBinary(b"\x00\x01"),
        Receive(2),
        SendText("got two"),
        Close(4001, "done"),
        subprotocol="chat",
    ) as server:
        ws = WebSocket()
        ws.on_opened = lambda e: (ws.send_text("one"), ws.send_binary(b"two"))
        events = record(ws)
        ws.connect(server.url + "game?id=3", "chat")
        poll_until(lambda: ws.is_closed, ws, timeout=WAIT)
    check_contract(events)
    assert events[0].subprotocol == "chat"
    assert events[1:] == [
        TextMessage("welcome"),
        BinaryMessage(b"\x00\x01"),
        TextMessage("got two"),
        Closed(4001, "done", True),
    ]
    assert [(f.kind, f.data) for f in server.received] == [
        ("text", b"one"),
        ("binary", b"two"),
        ("close", (4001).to_bytes(2, "big") + b"done"),
    ]
    (request,) = server.requests
    assert request.path == "/game?id=3"
    assert request.headers["sec-websocket-protocol"] == "chat"


def test_raw_bytes_go_out_as_given():
    # A fragmented text message written by hand: "he" + "llo".
    with ScriptedServer(SendRaw(b"\x01\x02he" + b"\x80\x03llo"), Close()) as server:
        events = run(server.url)
    assert events[1] == TextMessage("hello")


def test_selecting_a_subprotocol_the_client_did_not_ask_for_fails_it():
    with ScriptedServer(Close(), subprotocol="other") as server:
        asked = run(server.url, protocol="chat")
        check_contract(asked)
        assert kinds(asked) == ["Error", "Closed"]
        assert "subprotocol" in asked[0].message
    with ScriptedServer(Close(), subprotocol="chat") as server:
        agreed = run(server.url, protocol="chat")
        assert agreed[0] == Opened("chat", (), agreed[0].headers)


def test_send_invalid_utf8_step_and_hang_step_compose():
    with ScriptedServer(SendInvalidUTF8(), Hang()) as server:
        events = run(server.url, close_timeout=SHORT)
    check_contract(events)
    assert events[-1].code == 1007


def test_stop_ends_connections_that_hang():
    server = ScriptedServer(Hang()).start()
    ws = WebSocket()
    ws.connect(server.url)
    assert ws.wait_open(WAIT)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < WAIT
    assert ws.wait_closed(WAIT)
