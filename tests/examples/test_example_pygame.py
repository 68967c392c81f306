"""examples/poll/pygame_chat.py, run headless (SDL dummy drivers) against the echo server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from example_helpers import run_example

if TYPE_CHECKING:
    from example_helpers import EchoServer

pytest.importorskip("pygame", reason="pygame-ce is not installed")

HEADLESS = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


def test_pygame_chat_self_test(echo_server: EchoServer) -> None:
    run = run_example(
        "poll/pygame_chat.py", echo_server.url("/room/pygame"), "--self-test", env=HEADLESS
    )
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run

    # The lines typed into the window came back through poll() into the chat log.
    log = report["log"]
    assert isinstance(log, list)
    assert log[0].startswith("* connected to ws://127.0.0.1:"), log
    assert "< hello from pygame" in log, log
    assert "< ünïcödé ✓ 🐍" in log, log
    assert log.index("> hello from pygame") < log.index("< hello from pygame"), log
    # Closing the window closed the connection cleanly before the loop ended.
    assert report["close_code"] == 1000, report
    assert log[-1].startswith("* closed: 1000"), log

    conn = echo_server.only_connection()
    assert conn.path == "/room/pygame"
    assert conn.messages == ["hello from pygame", "ünïcödé ✓ 🐍"]
    assert conn.close_code == 1000


def test_pygame_chat_reports_a_refused_connection(echo_server: EchoServer) -> None:
    # Nobody listens on the port of a stopped server: On error, then On closed
    # (1006), shown in the chat log, and the self-test fails instead of hanging.
    url = echo_server.url("/room/pygame")
    echo_server.stop()
    run = run_example("poll/pygame_chat.py", url, "--self-test", env=HEADLESS)
    assert run.returncode == 1, run
    report = run.report()
    assert report["ok"] is False
    log = report["log"]
    assert isinstance(log, list)
    assert any(line.startswith("! could not connect to 127.0.0.1:") for line in log), log
    assert "* closed: 1006" in log, log
