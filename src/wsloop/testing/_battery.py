"""The driver battery: does a driver keep the contract of :class:`~wsloop.WebSocket`?

A driver for another loop (trio, a game engine's scheduler, a GUI toolkit)
subclasses :class:`~wsloop.drivers.base.BaseDriver` and is handed to
``WebSocket(driver=MyDriver)``. :func:`check_driver` then runs the checks
below, each on a new ``WebSocket`` polled like a game loop, against real
servers on ``127.0.0.1`` that it starts itself: the wsloop relay as an echo
server, and a :class:`ScriptedServer` for the servers that misbehave.

Each check looks at what an application sees: the triggers in their order,
the conditions (``is_connecting``, ``is_open``, ``is_closed``) and the
expressions (``close_code``, ``error_msg``...). Every attempt must follow the
life cycle the Construct plugin promises, whatever went wrong: at most one
On opened, first; messages only while open; at most one On error, right
before exactly one On closed, which is the last event. The first check that
fails raises :class:`DriverCheckError`, naming the check and listing the
events seen.

The built-in drivers run this battery in wsloop's own tests.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any, TypeVar

from ..events import BinaryMessage, Closed, Error, Opened, TextMessage
from ..exceptions import TimeoutError as WebSocketTimeout
from ._scripted import ScriptedServer
from ._servers import poll_until, record, serve_echo

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._client import WebSocket
    from ..drivers.base import BaseDriver
    from ..events import Event

_E = TypeVar("_E")

_SHORT = 0.5
"""The connect and close timeouts of the checks that wait for one, in seconds."""


class DriverCheckError(AssertionError):
    """A check of :func:`check_driver` failed."""

    def __init__(self, check: str, problem: str, events: Sequence[Event]) -> None:
        self.check = check
        """The name of the check that failed."""
        self.problem = problem
        """What was wrong."""
        self.events = list(events)
        """The events the WebSocket had fired, in order."""
        seen = "\n".join(f"  {event!r}" for event in events) or "  (none)"
        super().__init__(f"driver check {check!r} failed: {problem}\nevents:\n{seen}")


class _Attempt:
    """One WebSocket of a check, its events, and the waits a check needs."""

    def __init__(self, ws: WebSocket, timeout: float) -> None:
        self.ws = ws
        self.events = record(ws)
        self.timeout = timeout

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]

    def of(self, kind: type[_E]) -> list[_E]:
        return [event for event in self.events if isinstance(event, kind)]

    def until(self, condition: Callable[[], object], what: str) -> None:
        try:
            poll_until(condition, self.ws, timeout=self.timeout)
        except builtins.TimeoutError as exc:
            raise AssertionError(f"no {what} within {self.timeout:g} s") from exc

    def opened(self) -> Opened:
        self.until(lambda: self.of(Opened) or self.of(Closed), "On opened")
        opened = self.of(Opened)
        _need(opened, f"the connection ended instead of opening: {self.ws.error_msg!r}")
        return opened[0]

    def closed(self) -> Closed:
        """Wait for On closed; poll a little longer, to see that nothing follows."""
        self.until(lambda: self.of(Closed), "On closed")
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            self.ws.poll(0.01)
        check_life_cycle(self.events)
        _need(self.ws.is_closed, "is_closed is false after On closed")
        _need(not self.ws.is_open, "is_open is true after On closed")
        _need(not self.ws.is_connecting, "is_connecting is true after On closed")
        return self.of(Closed)[0]

    def expect(self, *kinds: str) -> None:
        _need(self.kinds() == list(kinds), f"expected the events {list(kinds)}")

    def error(self) -> Error:
        errors = self.of(Error)
        _need(errors, "no On error")
        _need(errors[0].message, "On error with an empty message")
        _need(self.ws.error_msg == errors[0].message, "error_msg is not the error's message")
        return errors[0]


def check_life_cycle(events: Sequence[Event]) -> None:
    """Assert that ``events`` are one attempt's life cycle, ended.

    At most one :class:`~wsloop.Opened`, first; messages only after it; at
    most one :class:`~wsloop.Error`, right before exactly one
    :class:`~wsloop.Closed`, the last event.
    """
    kinds = [type(event) for event in events]
    _need(kinds.count(Closed) == 1, "not exactly one On closed")
    _need(kinds[-1] is Closed, "an event came after On closed")
    _need(kinds.count(Opened) <= 1, "On opened twice")
    if Opened in kinds:
        _need(kinds[0] is Opened, "an event came before On opened")
    else:
        _need(not {TextMessage, BinaryMessage} & set(kinds), "a message before On opened")
    _need(kinds.count(Error) <= 1, "On error twice")
    if Error in kinds:
        _need(kinds[-2] is Error, "On error is not right before On closed")


def _need(condition: object, problem: str) -> None:
    """Fail the check with ``problem`` unless ``condition`` (an assert, kept under -O)."""
    if not condition:
        raise AssertionError(problem)


# The checks, in the order they run.

_CHECKS: dict[str, Callable[[Callable[..., _Attempt]], None]] = {}


def _check(name: str) -> Callable[[Any], Any]:
    def register(fn: Callable[[Callable[..., _Attempt]], None]) -> Any:
        _CHECKS[name] = fn
        return fn

    return register


def _conditions(ws: WebSocket) -> tuple[bool, bool]:
    """``is_connecting`` and ``is_open``, read afresh (not narrowed by mypy)."""
    return ws.is_connecting, ws.is_open


@_check("echo")
def _echo(new: Callable[..., _Attempt]) -> None:
    """Connect, echo a text and a binary message, close cleanly (1000)."""
    with serve_echo() as server:
        a = new()
        connecting, is_open = _conditions(a.ws)
        _need(not connecting, "a new WebSocket is connecting")
        _need(not is_open, "a new WebSocket is open")
        a.ws.connect(server.url + "/battery")
        _need(any(_conditions(a.ws)), "neither connecting nor open after connect()")
        a.opened()
        _need(a.ws.is_open, "is_open is false after On opened")
        _need(not a.ws.is_connecting, "is_connecting is true after On opened")
        text = "héllo, wsloop ✓"
        _need(a.ws.send_text(text) is True, "send_text() while open returned False")
        a.until(lambda: a.of(TextMessage), "echoed text message")
        _need(a.of(TextMessage)[0].text == text, "the text came back changed")
        _need(a.ws.message_text == text, "message_text is not the last text received")
        data = bytes(range(256)) * 4
        _need(a.ws.send_binary(data) is True, "send_binary() while open returned False")
        a.until(lambda: a.of(BinaryMessage), "echoed binary message")
        _need(bytes(a.of(BinaryMessage)[0].data) == data, "the bytes came back changed")
        a.ws.close()
        closed = a.closed()
        a.expect("Opened", "TextMessage", "BinaryMessage", "Closed")
        _need((closed.code, closed.was_clean) == (1000, True), "close() did not end cleanly")
        _need(a.ws.close_code == 1000, "close_code is not 1000 after close()")


@_check("large-and-many")
def _large(new: Callable[..., _Attempt]) -> None:
    """330,000 characters of text, 3 MiB of bytes, 300 small texts: back whole, in order."""
    with serve_echo(max_size=8 * 2**20) as server:
        a = new()
        a.ws.connect(server.url + "/battery")
        a.opened()
        big_text = "wsloop é ✓ " * 30_000
        big_data = os.urandom(3 * 2**20)
        small = [str(i) for i in range(300)]
        _need(a.ws.send_text(big_text), "send_text() of 330,000 characters returned False")
        _need(a.ws.send_binary(big_data), "send_binary() of 3 MiB returned False")
        for text in small:
            _need(a.ws.send_text(text), "send_text() while open returned False")
        a.until(lambda: len(a.of(TextMessage)) == 1 + len(small), "every echo")
        texts = [event.text for event in a.of(TextMessage)]
        _need(texts[0] == big_text, "the large text came back changed")
        _need(texts[1:] == small, "the small messages came back out of order")
        received = [bytes(event.data) for event in a.of(BinaryMessage)]
        _need(received == [big_data], "the 3 MiB came back changed")
        _need(a.ws.buffered_amount == 0, "buffered_amount is not 0 once all was echoed")
        a.ws.close()
        a.closed()


@_check("subprotocol")
def _subprotocol(new: Callable[..., _Attempt]) -> None:
    """The subprotocol the server selects is in On opened and ``protocol``."""
    with serve_echo(protocols=["battery.v1"]) as server:
        a = new()
        a.ws.connect(server.url + "/battery", "battery.v1")
        opened = a.opened()
        _need(opened.subprotocol == "battery.v1", "On opened does not name the subprotocol")
        _need(a.ws.protocol == "battery.v1", "protocol is not the one selected")
        a.ws.close()
        a.closed()


@_check("subprotocol-not-selected")
def _no_subprotocol(new: Callable[..., _Attempt]) -> None:
    """A server that selects no subprotocol when one was asked for: On error, On closed."""
    with ScriptedServer() as server:
        a = new()
        a.ws.connect(server.url, "battery.v1")
        a.closed()
        a.expect("Error", "Closed")
        a.error()


@_check("http-refused")
def _refused(new: Callable[..., _Attempt]) -> None:
    """A handshake answered with HTTP 403: On error naming the status, On closed 1006."""
    with ScriptedServer.refusing(403) as server:
        a = new()
        a.ws.connect(server.url)
        closed = a.closed()
        a.expect("Error", "Closed")
        _need("403" in a.error().message, "the error does not give the HTTP status")
        _need(closed.code == 1006, "a failed connection does not close with 1006")


@_check("nothing-listening")
def _nothing_listening(new: Callable[..., _Attempt]) -> None:
    """A port where nothing listens: On error, On closed 1006."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    a = new()
    a.ws.connect(f"ws://127.0.0.1:{port}/")
    closed = a.closed()
    a.expect("Error", "Closed")
    a.error()
    _need(closed.code == 1006, "a failed connection does not close with 1006")
    _need(a.ws.close_code == 1006, "close_code is not 1006")


@_check("connect-timeout")
def _connect_timeout(new: Callable[..., _Attempt]) -> None:
    """A server that never answers the handshake: a ``wsloop.TimeoutError`` in time."""
    with ScriptedServer.silent() as server:
        a = new(connect_timeout=_SHORT)
        started = time.monotonic()
        a.ws.connect(server.url)
        a.closed()
        took = time.monotonic() - started
        a.expect("Error", "Closed")
        _need(isinstance(a.error().exception, WebSocketTimeout), "not a wsloop.TimeoutError")
        _need(took < _SHORT + 5, f"the connect timeout of {_SHORT} s took {took:.1f} s")


@_check("sends-ignored")
def _sends_ignored(new: Callable[..., _Attempt]) -> None:
    """Sends before, while connecting and after return False; close() while connecting."""
    with ScriptedServer.silent() as server:
        a = new()
        _need(a.ws.send_text("early") is False, "send_text() before connect() returned True")
        a.ws.connect(server.url)
        _need(a.ws.is_connecting, "not connecting to a server that never answers")
        _need(a.ws.send_text("early") is False, "send_text() while connecting returned True")
        _need(a.ws.send_binary(b"early") is False, "send_binary() while connecting returned True")
        _need(a.ws.buffered_amount == 0, "a send while connecting was buffered")
        a.ws.close()
        closed = a.closed()
        a.expect("Error", "Closed")
        _need(closed.code == 1006, "close() while connecting did not end with 1006")
        _need(a.ws.send_text("late") is False, "send_text() after On closed returned True")
        _need(a.ws.send_binary(b"late") is False, "send_binary() after On closed returned True")


@_check("server-closes")
def _server_closes(new: Callable[..., _Attempt]) -> None:
    """The server's close code and reason reach On closed, ``close_code`` and ``close_reason``."""
    with ScriptedServer.closing(4000, "game over") as server:
        a = new()
        a.ws.connect(server.url)
        closed = a.closed()
        a.expect("Opened", "Closed")
        seen = (closed.code, closed.reason, closed.was_clean)
        _need(seen == (4000, "game over", True), f"On closed has {seen}, not 4000, clean")
        expressions = (a.ws.close_code, a.ws.close_reason)
        _need(expressions == (4000, "game over"), f"close_code, close_reason: {expressions}")


@_check("server-drops")
def _server_drops(new: Callable[..., _Attempt]) -> None:
    """TCP cut without a close frame: On error, On closed 1006."""
    with ScriptedServer.dropping() as server:
        a = new()
        a.ws.connect(server.url)
        closed = a.closed()
        a.expect("Opened", "Error", "Closed")
        a.error()
        got = (closed.code, closed.was_clean)
        _need(got == (1006, False), f"On closed has {got}, not (1006, False)")


@_check("invalid-utf8")
def _invalid_utf8(new: Callable[..., _Attempt]) -> None:
    """A text message that is not UTF-8: On error, On closed 1007."""
    with ScriptedServer.invalid_utf8() as server:
        a = new()
        a.ws.connect(server.url)
        closed = a.closed()
        a.expect("Opened", "Error", "Closed")
        a.error()
        _need(closed.code == 1007, "invalid UTF-8 did not close with 1007")


@_check("close-timeout")
def _close_timeout(new: Callable[..., _Attempt]) -> None:
    """A server that never answers the close frame: a ``wsloop.TimeoutError``, On closed 1006."""
    with ScriptedServer.hanging() as server:
        a = new(close_timeout=_SHORT)
        a.ws.connect(server.url)
        a.opened()
        a.ws.close(4000, "bye")
        closed = a.closed()
        a.expect("Opened", "Error", "Closed")
        _need(isinstance(a.error().exception, WebSocketTimeout), "not a wsloop.TimeoutError")
        got = (closed.code, closed.was_clean)
        _need(got == (1006, False), f"On closed has {got}, not (1006, False)")


@_check("connect-again")
def _again(new: Callable[..., _Attempt]) -> None:
    """One WebSocket connects, echoes and closes three times in a row."""
    with serve_echo() as server:
        a = new()
        for round_ in range(3):
            a.events.clear()
            a.ws.connect(f"{server.url}/battery-{round_}")
            a.opened()
            _need(a.ws.send_text(f"round {round_}"), "send_text() while open returned False")
            a.until(lambda: a.of(TextMessage), "echoed text message")
            a.ws.close()
            a.closed()
            a.expect("Opened", "TextMessage", "Closed")
            _need(a.of(TextMessage)[0].text == f"round {round_}", "the text came back changed")


CHECKS: tuple[str, ...] = tuple(_CHECKS)
"""The names of the checks :func:`check_driver` runs, in order."""


def check_driver(
    driver: str | type[BaseDriver],
    *,
    timeout: float = 10.0,
    only: Sequence[str] | None = None,
    **options: Any,
) -> list[str]:
    """Run the driver battery on ``driver``; return the names of the checks passed.

    Args:
        driver: a :class:`~wsloop.drivers.base.BaseDriver` subclass, or the
            name of a built-in driver; passed to ``WebSocket(driver=...)``.
        timeout: how long one wait of a check may take, in seconds.
        only: run just these checks (names from :data:`CHECKS`).
        **options: more options for every ``WebSocket`` (``deliver=...``,
            ``compression=None``...).

    Raises:
        DriverCheckError: the first check that failed, with what was wrong
            and the events seen.

    For example, in a test of your own driver::

        def test_my_driver_keeps_the_contract():
            check_driver(MyDriver)
    """
    from .._client import WebSocket

    names = list(CHECKS if only is None else only)
    unknown = [name for name in names if name not in _CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; available: {list(CHECKS)}")
    for name in names:
        _run(name, lambda **extra: WebSocket(driver=driver, **{**options, **extra}), timeout)
    return names


def _run(name: str, make: Callable[..., WebSocket], timeout: float) -> None:
    """Run one check with WebSockets from ``make``; shut what it left open."""
    attempts: list[_Attempt] = []

    def new(**extra: Any) -> _Attempt:
        attempt = _Attempt(make(**extra), timeout)
        attempts.append(attempt)
        return attempt

    try:
        _CHECKS[name](new)
    except AssertionError as exc:
        events = attempts[-1].events if attempts else []
        raise DriverCheckError(name, str(exc) or "assertion failed", events) from exc
    finally:
        for attempt in attempts:
            _shut(attempt)


def _shut(attempt: _Attempt) -> None:
    """Close what a check left open (it failed half-way), without waiting long."""
    ws = attempt.ws
    if not (ws.is_open or ws.is_connecting):
        return
    with contextlib.suppress(Exception):
        ws.close()
        poll_until(lambda: ws.is_closed, ws, timeout=2.0)
