"""examples/qt/qt_chat.py, run headless (QT_QPA_PLATFORM=offscreen) against the echo server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from example_helpers import run_example

if TYPE_CHECKING:
    from example_helpers import EchoServer

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed")


def test_qt_chat_self_test(busy_echo_server: EchoServer) -> None:
    run = run_example(
        "qt/qt_chat.py",
        busy_echo_server.url("/room/qt"),
        "--self-test",
        env={"QT_QPA_PLATFORM": "offscreen"},
    )
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run

    # The echoes went through the Qt loop into the QListWidget.
    log = report["log"]
    assert isinstance(log, list)
    assert "< hello from Qt" in log, log
    assert "< ünïcödé ✓ 🐍" in log, log
    received_big = [line for line in log if line.startswith("< ") and "characters]" in line]
    assert received_big, log
    assert log[-1] == "* closed: 1000", log

    # A large send did wait in the buffer, and the write notifier got it out.
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
    assert conn.path == "/room/qt"
    assert conn.messages[:2] == ["hello from Qt", "ünïcödé ✓ 🐍"]
    assert conn.close_code == 1000


def test_qt_chat_connect_phase_polls_little(silent_server_url: str) -> None:
    # The server accepts the TCP connection and never answers the handshake,
    # so the window stays in the connect phase until --connect-timeout
    # expires. Meanwhile the socket is watched and the timeout is one
    # single-shot timer at ws.timeout(): two poll() calls in all (TCP
    # connected, time is up), where a 25 ms timer would make 60.
    run = run_example(
        "qt/qt_chat.py",
        silent_server_url,
        "--self-test",
        "--connect-timeout",
        "1.5",
        env={"QT_QPA_PLATFORM": "offscreen"},
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
