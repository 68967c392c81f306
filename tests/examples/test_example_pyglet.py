"""examples/pyglet/pyglet_chat.py, run headless under Xvfb against the wsloop relay."""

from __future__ import annotations

import pytest
from example_helpers import run_example

from wsloop.testing import serve_echo

pytest.importorskip("pyglet", reason="pyglet is not installed")


def test_pyglet_chat_self_test(xvfb_display: str) -> None:
    # The relay in echo mode: each message comes back to its sender.
    with serve_echo() as relay:
        run = run_example(
            "pyglet/pyglet_chat.py",
            relay.url + "/room/pyglet",
            "--self-test",
            env={"DISPLAY": xvfb_display},
        )
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run

    # The lines typed into the window went out, came back through the relay
    # and poll() (called from pyglet.clock) into the chat log, then a clean close.
    log = report["log"]
    assert isinstance(log, list)
    assert log[0].startswith("* connected to ws://127.0.0.1:"), log
    assert log.index("> hello from pyglet") < log.index("< hello from pyglet"), log
    assert "< ünïcödé ✓ 🐍" in log, log
    assert report["close_code"] == 1000, report
    assert log[-1].startswith("* closed: 1000"), log
    assert isinstance(report["polls"], int) and report["polls"] > 0, report


def test_pyglet_chat_reports_a_refused_connection(xvfb_display: str) -> None:
    with serve_echo() as relay:
        url = relay.url + "/room/pyglet"
    # The relay has stopped: nobody listens on its port any more.
    run = run_example("pyglet/pyglet_chat.py", url, "--self-test", env={"DISPLAY": xvfb_display})
    assert run.returncode == 1, run
    report = run.report()
    assert report["ok"] is False
    log = report["log"]
    assert isinstance(log, list)
    assert any(line.startswith("! ") for line in log), log
    assert "* closed: 1006" in log, log
