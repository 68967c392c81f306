"""examples/tkinter/tk_chat.py, run headless under Xvfb against the echo server."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest
from example_helpers import run_example

if TYPE_CHECKING:
    from example_helpers import EchoServer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tkinter") is None, reason="this Python has no tkinter"
)


def test_tk_chat_self_test(busy_echo_server: EchoServer, xvfb_display: str) -> None:
    run = run_example(
        "tkinter/tk_chat.py",
        busy_echo_server.url("/room/tk"),
        "--self-test",
        env={"DISPLAY": xvfb_display},
    )
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run

    # The echoes went through the Tk loop into the Text widget.
    log = report["log"]
    assert isinstance(log, list)
    assert "< hello from Tk" in log, log
    assert "< ünïcödé ✓ 🐍" in log, log
    received_big = [line for line in log if line.startswith("< ") and "characters]" in line]
    assert received_big, log
    assert log[-1] == "* closed: 1000", log

    # A large send did wait in the buffer, and the watcher got it written.
    assert isinstance(report["buffered"], int) and report["buffered"] > 0, report

    # Two idle seconds, open: the socket is watched, not polled on a timer (a
    # 25 ms one would make 80 calls). Only the keepalive wakes the window, two
    # poll() calls per ping (every 1 s in the self-test): the single-shot timer
    # at ws.timeout() sends it, the pong's arrival reads it. At most three
    # pings fit in the two seconds.
    assert report["idle_polls"] <= 6, report
    assert isinstance(report["idle_cpu"], float) and report["idle_cpu"] < 0.3, report
    assert isinstance(report["latency_after"], float), report
    assert report["latency_after"] != report["latency_before"], report

    # The server's side of the story.
    conn = busy_echo_server.only_connection()
    assert conn.path == "/room/tk"
    assert conn.messages[:2] == ["hello from Tk", "ünïcödé ✓ 🐍"]
    assert conn.close_code == 1000


def test_tk_chat_connect_phase_polls_little(silent_server_url: str, xvfb_display: str) -> None:
    # The server accepts the TCP connection and never answers the handshake,
    # so the window stays in the connect phase until --connect-timeout
    # expires. Meanwhile the socket is watched and the timeout is one
    # single-shot timer at ws.timeout(): two poll() calls in all (TCP
    # connected, time is up), where a 25 ms timer would make 60.
    run = run_example(
        "tkinter/tk_chat.py",
        silent_server_url,
        "--self-test",
        "--connect-timeout",
        "1.5",
        env={"DISPLAY": xvfb_display},
    )
    assert run.returncode == 1, run
    report = run.report()
    assert report["ok"] is False, run
    log = report["log"]
    assert isinstance(log, list)
    assert len(log) == 2, log
    assert log[0].startswith("! connect (WebSocket handshake) timed out after 1.5 s"), log
    assert log[1] == "* closed: 1006", log
    assert isinstance(report["connect_seconds"], float), report
    assert report["connect_seconds"] >= 1.5, report
    assert report["connect_polls"] <= 3, report
