"""The GUI-loop chat examples (Qt, Tk), each run headless against the echo server.

Both watch the socket with the toolkit's own machinery (a ``QSocketNotifier``,
Tk's ``createfilehandler``) and time the keepalive and the connect timeout
with one single-shot timer at ``ws.timeout()``, so the battery checks the
same things of both: the echoes reach the window, a large send waits in the
buffer and is written when the socket is ready, idle seconds cost a handful
of ``poll()`` calls, and a server that never answers the handshake costs two.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, NamedTuple

import pytest
from example_helpers import run_example

if TYPE_CHECKING:
    from example_helpers import EchoServer


class Gui(NamedTuple):
    example: str
    label: str
    module: str
    env: dict[str, str]


GUIS = [
    Gui("qt/qt_chat.py", "Qt", "PySide6.QtWidgets", {"QT_QPA_PLATFORM": "offscreen"}),
    Gui("tkinter/tk_chat.py", "Tk", "tkinter", {}),
]


@pytest.fixture(params=GUIS, ids=[gui.label for gui in GUIS])
def gui(request: pytest.FixtureRequest) -> tuple[Gui, dict[str, str]]:
    spec: Gui = request.param
    try:
        found = importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        found = False
    if not found:
        pytest.skip(f"{spec.module} is not available")
    if spec.label == "Tk":  # Tk needs an X display; Qt has its offscreen platform
        return spec, {"DISPLAY": request.getfixturevalue("xvfb_display")}
    return spec, spec.env


def test_self_test_echoes_and_idles_cheaply(
    gui: tuple[Gui, dict[str, str]], busy_echo_server: EchoServer
) -> None:
    spec, env = gui
    path = f"/room/{spec.label.lower()}"
    run = run_example(spec.example, busy_echo_server.url(path), "--self-test", env=env)
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run

    # The echoes went through the toolkit's loop into the window.
    log = report["log"]
    assert isinstance(log, list)
    assert f"< hello from {spec.label}" in log, log
    assert "< ünïcödé ✓ 🐍" in log, log
    received_big = [line for line in log if line.startswith("< ") and "characters]" in line]
    assert received_big, log
    assert log[-1] == "* closed: 1000", log

    # A large send did wait in the buffer, and the socket watcher got it written.
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
    assert conn.path == path
    assert conn.messages[:2] == [f"hello from {spec.label}", "ünïcödé ✓ 🐍"]
    assert conn.close_code == 1000


def test_the_connect_phase_polls_little(
    gui: tuple[Gui, dict[str, str]], silent_server_url: str
) -> None:
    # The server accepts the TCP connection and never answers the handshake,
    # so the window stays in the connect phase until --connect-timeout
    # expires. Meanwhile the socket is watched and the timeout is one
    # single-shot timer at ws.timeout(): two poll() calls in all (TCP
    # connected, time is up), where a 25 ms timer would make 60.
    spec, env = gui
    run = run_example(
        spec.example, silent_server_url, "--self-test", "--connect-timeout", "1.5", env=env
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
