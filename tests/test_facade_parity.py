"""WebSocket and AsyncWebSocket: the same options, and one lifecycle.

The first half compares the two façades' signatures and documentation, so
that an option added to one and forgotten in the other (or a default changed
in one) fails here. The second half drives :class:`wsloop._sansio.lifecycle.Lifecycle`
in memory, through a small recording stand-in for a driver: the decisions
both façades delegate to it (sends, outbox, close, superseded connections,
retries). The real-server tests (test_client.py, test_reconnect.py,
test_async_reconnect.py, drivers/test_asyncio.py) cover the same paths over
sockets.
"""

from __future__ import annotations

import inspect
import random
import re
import threading
from typing import TYPE_CHECKING

import pytest

from wsloop import (
    AsyncWebSocket,
    BinaryData,
    BinaryMessage,
    Closed,
    Error,
    InvalidState,
    InvalidStatus,
    Opened,
    Reconnect,
    State,
    TextMessage,
    WebSocket,
    WebSocketError,
)
from wsloop._facade import OPTIONS, FacadeBase, make_config
from wsloop._sansio.lifecycle import Lifecycle, validate_close

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers import WebsocketsServer

ONLY_SYNC = {"driver", "deliver"}
"""Where the I/O runs: only the loop-agnostic façade chooses."""
ONLY_ASYNC = {"max_backlog"}
"""The byte bound of the asyncio façade's event backlog (WebSocket has no backlog)."""
DIFFERENT_DOCS = {"max_queue"}
"""Options whose meaning really differs: the asyncio one also counts the iterator's events."""


def _params(fn: Callable[..., object]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def _args_doc(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of a class docstring, each on one line."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    section = doc[doc.index("Args:") :]
    entries: dict[str, str] = {}
    name = None
    for line in section.splitlines()[1:]:
        match = re.match(r"    (\w+): (.*)", line)
        if match:
            name = match.group(1)
            entries[name] = match.group(2)
        elif name is not None and line.strip():
            entries[name] += " " + line.strip()
    return entries


# The options.


def test_both_facades_take_every_driver_option_with_the_same_default_and_type() -> None:
    sync, asyn = _params(WebSocket.__init__), _params(AsyncWebSocket.__init__)
    assert set(sync) - set(asyn) == ONLY_SYNC
    assert set(asyn) - set(sync) == ONLY_ASYNC
    for name in set(sync) & set(asyn):
        if name == "self":
            continue
        a, b = sync[name], asyn[name]
        assert a.kind is b.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert a.default == b.default, f"{name}: {a.default!r} != {b.default!r}"
        assert a.annotation == b.annotation, name


def test_the_options_handed_to_the_driver_are_make_configs_parameters() -> None:
    assert tuple(_params(make_config)) == OPTIONS
    assert len(OPTIONS) == 17
    for cls in (WebSocket, AsyncWebSocket):
        params = _params(cls.__init__)
        missing = [name for name in OPTIONS if name not in params]
        assert not missing, (cls.__name__, missing)


def test_the_defaults_reach_the_driver_equally() -> None:
    assert WebSocket()._config == AsyncWebSocket()._config


def test_both_facades_check_the_options_alike() -> None:
    for bad, words in (
        ({"max_queue": 0}, "positive"),
        ({"compression": "gzip"}, "deflate"),
        ({"keyfile": "k.pem"}, "certfile"),
    ):
        with pytest.raises(ValueError, match=words) as sync_error:
            WebSocket(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=words) as async_error:
            AsyncWebSocket(**bad)  # type: ignore[arg-type]
        assert str(sync_error.value) == str(async_error.value)
    with pytest.raises(TypeError, match="reconnect"):
        AsyncWebSocket(reconnect="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reconnect"):
        WebSocket(reconnect="yes")  # type: ignore[arg-type]


def test_the_shared_options_are_documented_with_the_same_words() -> None:
    sync, asyn = _args_doc(WebSocket), _args_doc(AsyncWebSocket)
    params = set(_params(WebSocket.__init__)) - {"self"}
    assert set(sync) == params
    assert set(asyn) == set(_params(AsyncWebSocket.__init__)) - {"self"}
    for name in (set(sync) & set(asyn)) - DIFFERENT_DOCS:
        assert sync[name] == asyn[name], name


def test_the_actions_have_the_same_signatures() -> None:
    for name in ("connect", "close", "send_text", "send_binary", "ping", "event"):
        a, b = _params(getattr(WebSocket, name)), _params(getattr(AsyncWebSocket, name))
        assert [(p.name, p.default, p.kind) for p in a.values()] == [
            (p.name, p.default, p.kind) for p in b.values()
        ], name
    # The sends are one implementation, not two copies.
    for name in ("send_text", "send_binary", "ping"):
        assert getattr(WebSocket, name) is getattr(FacadeBase, name)
        assert getattr(AsyncWebSocket, name) is getattr(FacadeBase, name)


# The lifecycle, in memory.


class _Driver:
    """A stand-in for a driver's send side: refuses unless open, records what it sends."""

    def __init__(self) -> None:
        self.state: State | None = None
        self.sent: list[str | bytes] = []
        self.pings: list[bytes] = []

    def send_text(self, text: str) -> bool:
        if self.state is not State.OPEN:
            return False
        self.sent.append(text)
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        if self.state is not State.OPEN:
            return False
        self.sent.append(bytes(data))
        return True

    def send_ping(self, data: bytes = b"") -> bool:
        if self.state is not State.OPEN:
            return False
        self.pings.append(data)
        return True


def _binary(data: bytes) -> BinaryData:
    binary = BinaryData()
    binary.set_from_bytes(data)
    return binary


def _dropped(code: int = 1006) -> Closed:
    return Closed(code, "", was_clean=False)


def test_sends_while_not_open_are_ignored_without_an_outbox() -> None:
    life, driver = Lifecycle(None), _Driver()
    life.begin()
    assert life.outbox is None and life.reconnect is None
    assert not life.send_text(driver, "early")
    assert not life.send_binary(driver, b"early")
    assert not life.ping(driver, b"")
    driver.state = State.OPEN
    assert life.send_text(driver, "a")
    assert life.send_binary(driver, bytearray(b"b"))
    assert life.send_binary(driver, _binary(b"c"))
    assert life.ping(driver, b"p")
    assert driver.sent == ["a", b"b", b"c"]
    assert driver.pings == [b"p"]


def test_send_arguments_are_checked_before_anything_is_sent() -> None:
    life, driver = Lifecycle(None), _Driver()
    driver.state = State.OPEN
    with pytest.raises(TypeError, match="takes a str"):
        life.send_text(driver, b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="BinaryData"):
        life.send_binary(driver, "text")
    with pytest.raises(ValueError, match="125 bytes"):
        life.ping(driver, bytes(126))
    assert driver.sent == [] and driver.pings == []


def test_the_outbox_keeps_sends_until_open_then_sends_them_first_in_order() -> None:
    life, driver = Lifecycle(Reconnect(outbox=2), threading.Lock()), _Driver()
    assert not life.send_text(driver, "before connect()")  # no session: nothing kept
    life.begin()
    assert life.send_text(driver, "one")
    assert life.send_binary(driver, memoryview(b"two"))
    assert not life.send_text(driver, "three")  # the outbox is full
    assert life.outbox is not None and life.outbox.dropped == 1
    driver.state = State.OPEN
    assert life.send_text(driver, "four")  # what waits goes first
    assert driver.sent == ["one", b"two", "four"]
    assert len(life.outbox) == 0


def test_opened_flushes_the_outbox() -> None:
    life, driver = Lifecycle(Reconnect(outbox=5)), _Driver()
    life.begin()
    life.send_text(driver, "kept")
    driver.state = State.OPEN
    life.opened(driver)
    assert driver.sent == ["kept"]


def test_close_empties_the_outbox_refuses_sends_and_drops_received_messages() -> None:
    life, driver = Lifecycle(Reconnect(outbox=5)), _Driver()
    life.begin()
    life.send_text(driver, "kept")
    message = TextMessage("late")
    assert not life.drops(message)
    life.close(1000, "bye")
    assert life.user_closed
    assert life.outbox is not None and len(life.outbox) == 0
    assert not life.send_text(driver, "after close()")
    assert life.drops(message)
    assert life.drops(BinaryMessage(b"late"))
    assert not life.drops(_dropped())  # Closed (and Error) still reach the handlers
    assert life.closed(_dropped()) is None  # closed by the application: no retry
    life.begin()  # the next connect()
    assert not life.user_closed and not life.drops(message)


def test_close_checks_code_and_reason_first() -> None:
    life = Lifecycle(Reconnect(outbox=5))
    life.begin()
    life.send_text(_Driver(), "kept")
    with pytest.raises(ValueError, match="3000-4999"):
        life.close(1001, "")
    assert not life.user_closed
    assert life.outbox is not None and len(life.outbox) == 1
    for code, reason, error in ((True, "", TypeError), (1000, "x" * 124, ValueError)):
        with pytest.raises(error):
            validate_close(code, reason)


def test_a_superseded_connection_ends_apart_from_the_new_one() -> None:
    life = Lifecycle(None)
    life.begin()
    life.supersede()  # connect() while active
    life.begin()
    assert not life.is_superseded(TextMessage("x"))
    assert life.is_superseded(Error("gone", WebSocketError("gone")))
    assert life.is_superseded(_dropped())  # the old connection's Closed
    assert not life.is_superseded(_dropped())  # this one is the new connection's
    assert life.active


def test_retry_decisions_and_their_bookkeeping() -> None:
    life = Lifecycle(Reconnect(initial_delay=1, factor=2, jitter=0, max_attempts=2), None)
    life.begin()
    driver = _Driver()
    assert life.closed(_dropped()) == 1
    assert life.closed(_dropped()) == 2
    assert life.attempt == 2
    assert life.closed(_dropped()) is None  # max_attempts
    life.opened(driver)  # an open connection resets the count
    assert life.attempt == 0
    assert life.closed(Closed(1000, "", was_clean=True)) is None  # a final code
    life.error(Error("HTTP 404", InvalidStatus(404, "Not Found", {})))
    assert life.closed(_dropped()) is None  # a hopeless error
    assert life.closed(_dropped()) == 1  # the error counted only for its own Closed
    life.begin()
    assert life.attempt == 0


def test_jitter_comes_from_the_given_randomness() -> None:
    policy = Reconnect(initial_delay=1, jitter=1)
    delays = []
    for _ in range(2):
        life = Lifecycle(policy, rng=random.Random(7))
        life.begin()
        delays.append(life.closed(_dropped()))
    assert delays[0] == delays[1]
    assert delays[0] is not None and 0 <= delays[0] <= 1


def test_end_forgets_the_session() -> None:
    life, driver = Lifecycle(Reconnect(outbox=3)), _Driver()
    life.begin()
    life.send_text(driver, "kept")
    life.end()
    assert not life.active
    assert life.outbox is not None and len(life.outbox) == 0
    assert not life.send_text(driver, "after the end")
    assert Lifecycle(None).closed(_dropped()) is None  # reconnection off: never a retry


def test_the_facades_run_on_the_lifecycle() -> None:
    ws, aws = WebSocket(reconnect=Reconnect(outbox=1)), AsyncWebSocket(reconnect=True)
    for facade in (ws, aws):
        assert isinstance(facade._life, Lifecycle)
        assert facade.is_closed
    assert ws._life.outbox is not None and aws._life.outbox is None
    assert not ws.send_text("not connected")  # ignored: no session yet


# Misuse raises InvalidState, still a RuntimeError.


def test_poll_from_a_handler_raises_invalid_state(ws_server: WebsocketsServer) -> None:
    ws = WebSocket()
    seen: list[BaseException] = []

    def on_opened(event: Opened) -> None:
        try:
            ws.poll()
        except RuntimeError as exc:
            seen.append(exc)
        ws.close()

    ws.on_opened = on_opened
    ws.connect(ws_server.url("/parity"))
    assert ws.wait_closed(timeout=10)
    assert len(seen) == 1
    assert isinstance(seen[0], InvalidState)
    assert "inside an event handler" in str(seen[0])
