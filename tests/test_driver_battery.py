"""wsloop.testing.check_driver: the public driver battery.

Every built-in desktop driver passes every check, and a driver that breaks
the contract is caught, with the check named and the events listed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import wsloop
from wsloop.drivers.poll import PollDriver
from wsloop.testing import CHECKS, DriverCheckError, check_driver, check_life_cycle

DRIVERS: dict[str, tuple[str, dict[str, Any]]] = {
    "poll": ("poll", {}),
    "thread": ("thread", {}),
    "thread-caller": ("thread", {"deliver": "caller"}),
}


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_built_in_drivers_pass_every_check(name: str, check: str) -> None:
    driver, options = DRIVERS[name]
    assert check_driver(driver, only=[check], **options) == [check]


def test_a_driver_class_passes_whole() -> None:
    class Subclassed(PollDriver):
        """A driver of one's own that changes nothing."""

    assert check_driver(Subclassed, only=["echo", "server-drops"]) == ["echo", "server-drops"]


# Broken drivers, each failing a check it should.


class _Filtering(PollDriver):
    """A poll driver that rewrites the events it has produced (by ``edit``)."""

    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        raise NotImplementedError

    def poll(self, timeout: float | None) -> None:
        super().poll(timeout)
        edited = self.edit(list(self.events))
        self.events.clear()
        self.events.extend(edited)


class _LosesErrors(_Filtering):
    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        return [event for event in events if not isinstance(event, wsloop.Error)]


class _ClosesTwice(_Filtering):
    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        doubled: list[wsloop.Event] = []
        for event in events:
            doubled.append(event)
            if isinstance(event, wsloop.Closed):
                doubled.append(event)
        return doubled


class _NeverCloses(_Filtering):
    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        return [event for event in events if not isinstance(event, wsloop.Closed)]


class _WrongCode(_Filtering):
    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        return [
            wsloop.Closed(1000, event.reason, event.was_clean)
            if isinstance(event, wsloop.Closed)
            else event
            for event in events
        ]


class _ChangesText(_Filtering):
    def edit(self, events: list[wsloop.Event]) -> list[wsloop.Event]:
        return [
            wsloop.TextMessage(event.text.encode("utf-8").decode("latin-1"))
            if isinstance(event, wsloop.TextMessage)
            else event
            for event in events
        ]


@pytest.mark.parametrize(
    ("driver", "check", "problem"),
    [
        (_LosesErrors, "server-drops", "expected the events ['Opened', 'Error', 'Closed']"),
        (_ClosesTwice, "server-closes", "not exactly one On closed"),
        (_NeverCloses, "nothing-listening", "no On closed within 1 s"),
        (_WrongCode, "invalid-utf8", "invalid UTF-8 did not close with 1007"),
        (_ChangesText, "echo", "the text came back changed"),
    ],
)
def test_a_broken_driver_fails_the_check_that_shows_it(
    driver: type[PollDriver], check: str, problem: str
) -> None:
    with pytest.raises(DriverCheckError) as caught:
        check_driver(driver, timeout=1.0, only=[check])
    error = caught.value
    assert error.check == check
    assert problem in error.problem
    assert f"driver check {check!r} failed" in str(error)
    assert all(isinstance(event, wsloop.Event) for event in error.events)


def test_the_whole_battery_stops_at_the_first_failed_check() -> None:
    # Losing On error shows first where a connection fails before opening.
    with pytest.raises(DriverCheckError) as caught:
        check_driver(_LosesErrors, timeout=1.0)
    assert caught.value.check == "subprotocol-not-selected"
    assert [type(event) for event in caught.value.events] == [wsloop.Closed]


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown checks \\['nope'\\]"):
        check_driver("poll", only=["nope"])


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ([], "not exactly one On closed"),
        ([wsloop.Closed(1006), wsloop.Error("x", wsloop.WebSocketError("x"))], "after On closed"),
        ([wsloop.Opened(), wsloop.Opened(), wsloop.Closed(1000)], "On opened twice"),
        ([wsloop.TextMessage("early"), wsloop.Closed(1006)], "a message before On opened"),
        (
            [
                wsloop.Opened(),
                wsloop.Error("x", wsloop.WebSocketError("x")),
                wsloop.TextMessage("late"),
                wsloop.Closed(1006),
            ],
            "not right before On closed",
        ),
    ],
)
def test_life_cycle_check_refuses_what_the_plugin_never_does(
    events: list[wsloop.Event], problem: str
) -> None:
    with pytest.raises(AssertionError, match=problem):
        check_life_cycle(events)


def test_life_cycle_check_accepts_every_ending() -> None:
    error = wsloop.Error("gone", wsloop.WebSocketError("gone"))
    check_life_cycle([wsloop.Closed(1006)])
    check_life_cycle([error, wsloop.Closed(1006)])
    check_life_cycle([wsloop.Opened(), wsloop.TextMessage("hi"), wsloop.Closed(1000)])
    check_life_cycle([wsloop.Opened(), error, wsloop.Closed(1006)])


def test_the_loops_page_lists_every_check_in_order() -> None:
    page = (Path(__file__).parent.parent / "docs" / "loops.md").read_text()
    section = page.split("## A loop wsloop has no driver for", 1)[1]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    assert listed == list(CHECKS)


def test_the_battery_still_checks_under_python_dash_o() -> None:
    # Its checks are not assert statements, which -O would strip.
    script = (
        "import wsloop\n"
        "from wsloop.drivers.poll import PollDriver\n"
        "from wsloop.testing import DriverCheckError, check_driver\n"
        "class Wrong(PollDriver):\n"
        "    def poll(self, timeout):\n"
        "        super().poll(timeout)\n"
        "        self.events.extend([e for e in self.events if isinstance(e, wsloop.Closed)])\n"
        "try:\n"
        "    check_driver(Wrong, only=['server-closes'], timeout=2.0)\n"
        "except DriverCheckError as exc:\n"
        "    print(exc.check, exc.problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "server-closes not exactly one On closed", done.stderr
