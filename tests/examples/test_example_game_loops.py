"""The game-loop chat examples (pygame, arcade, pyglet), each run headless against a real server.

One battery for the three: each example's ``--self-test`` types two lines
into its window, which must go out, come back through ``poll()`` (called
from the library's own frame loop) into the chat log, and end in a clean
close; against a port nobody listens on it must show the error and a 1006
close and exit 1 instead of hanging. pygame runs on SDL's dummy drivers,
arcade and pyglet under Xvfb (OpenGL by Mesa's llvmpipe).
"""

from __future__ import annotations

import importlib.util
from typing import NamedTuple

import pytest
from example_helpers import run_example

from wsloop.testing import serve_echo


class Loop(NamedTuple):
    example: str
    label: str
    module: str
    display: bool  # needs an X display (Xvfb)


LOOPS = [
    Loop("poll/pygame_chat.py", "pygame", "pygame", display=False),
    Loop("arcade/arcade_chat.py", "arcade", "arcade", display=True),
    Loop("pyglet/pyglet_chat.py", "pyglet", "pyglet", display=True),
]
HEADLESS_SDL = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}


@pytest.fixture(params=LOOPS, ids=[loop.label for loop in LOOPS])
def loop(request: pytest.FixtureRequest) -> tuple[Loop, dict[str, str]]:
    spec: Loop = request.param
    if importlib.util.find_spec(spec.module) is None:
        pytest.skip(f"{spec.module} is not installed")
    if spec.display:
        return spec, {"DISPLAY": request.getfixturevalue("xvfb_display")}
    return spec, HEADLESS_SDL


def test_self_test_echoes_through_the_frame_loop(loop: tuple[Loop, dict[str, str]]) -> None:
    spec, env = loop
    with serve_echo() as relay:  # the relay in echo mode: each message back to its sender
        run = run_example(spec.example, f"{relay.url}/room/{spec.label}", "--self-test", env=env)
    assert run.returncode == 0, run
    report = run.report()
    assert report["ok"] is True, run
    log = report["log"]
    assert isinstance(log, list)
    assert log[0].startswith("* connected to ws://127.0.0.1:"), log
    hello = f"hello from {spec.label}"
    assert log.index(f"> {hello}") < log.index(f"< {hello}"), log
    assert "< ünïcödé ✓ 🐍" in log, log
    # Closing the window closed the connection cleanly before the loop ended.
    assert report["close_code"] == 1000, report
    assert log[-1].startswith("* closed: 1000"), log
    assert isinstance(report["polls"], int) and report["polls"] > 0, report


def test_a_refused_connection_is_shown_and_fails_the_self_test(
    loop: tuple[Loop, dict[str, str]],
) -> None:
    spec, env = loop
    with serve_echo() as relay:
        url = f"{relay.url}/room/{spec.label}"
    # The relay has stopped: nobody listens on its port any more.
    run = run_example(spec.example, url, "--self-test", env=env)
    assert run.returncode == 1, run
    report = run.report()
    assert report["ok"] is False
    log = report["log"]
    assert isinstance(log, list)
    assert any(line.startswith("! could not connect to 127.0.0.1:") for line in log), log
    assert "* closed: 1006" in log, log
