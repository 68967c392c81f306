"""Fixtures shared by the tests: drivers, recorded clients, and real servers.

The integration battery runs once per driver. A driver is described by a
:class:`DriverAdapter` in :data:`ADAPTERS`: how to make a WebSocket that
uses it and how to let it make progress while a test waits. Adding a driver
to the battery means adding an adapter there; no test changes.

Tests reach all of this through fixtures (``driver_name``, ``adapter``,
``make_ws``, ``pump``, ``make_client``, ``client``) and never import this
module: another directory's conftest.py would shadow the name.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from servers import (
    WAIT,
    LoopThread,
    NodeServer,
    RawServer,
    WebsocketsServer,
    node_available,
)
from wsloop import BinaryMessage, Closed, Error, Opened, State, TextMessage, WebSocket

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers import RawConnection
    from wsloop import Event

# Drivers.


class DriverAdapter:
    """How the battery makes and drives a WebSocket for one driver."""

    name = "poll"
    io_in_poll = True
    """All I/O and every handler happen inside ``ws.poll()``, and ``fileno()``
    is the connection's socket (a test checks this when true)."""

    handlers_in_poll = True
    """Handlers run inside ``ws.poll()`` on the calling thread."""

    def make(self, **options: Any) -> WebSocket:
        return WebSocket(driver=self.name, **options)

    def step(self, ws: WebSocket) -> None:
        """Let ``ws`` make progress for a short while and fire its handlers."""
        ws.poll(0.01)


class ThreadAdapter(DriverAdapter):
    """The thread driver; handlers on its I/O thread (``deliver="thread"``)."""

    name = "thread"
    io_in_poll = False
    handlers_in_poll = False
    deliver = "thread"

    def make(self, **options: Any) -> WebSocket:
        return WebSocket(driver="thread", deliver=self.deliver, **options)

    def step(self, ws: WebSocket) -> None:
        ws.poll(0.01)  # with deliver="thread": waits, and raises a handler's exception


class ThreadCallerAdapter(ThreadAdapter):
    """The thread driver with handlers queued for ``poll()`` (``deliver="caller"``)."""

    name = "thread-caller"
    handlers_in_poll = True
    deliver = "caller"


class AsyncioAdapter(DriverAdapter):
    """AsyncWebSocket (the asyncio driver) behind the sync face of tests/async_adapter.py.

    The loop runs only inside the wrapper's calls, on the caller's thread. The
    poll-specific tests skip: I/O also happens in the other calls, and a
    handler's exception does not hold back the next event (the dispatcher
    goes on, docs/asyncio.md).
    """

    name = "asyncio"
    io_in_poll = False
    handlers_in_poll = False

    def make(self, **options: Any) -> WebSocket:
        from async_adapter import SyncAsyncWebSocket

        return SyncAsyncWebSocket(**options)  # type: ignore[return-value]

    def step(self, ws: WebSocket) -> None:
        ws.poll(0.01)  # waits, and raises a handler's exception


ADAPTERS: dict[str, DriverAdapter] = {
    "poll": DriverAdapter(),
    "thread": ThreadAdapter(),
    "thread-caller": ThreadCallerAdapter(),
    "asyncio": AsyncioAdapter(),
}

_adapter_of: weakref.WeakKeyDictionary[WebSocket, DriverAdapter] = weakref.WeakKeyDictionary()


def new_ws(driver_name: str, **options: Any) -> WebSocket:
    """A WebSocket with ``options`` on the named driver."""
    adapter = ADAPTERS[driver_name]
    ws = adapter.make(**options)
    _adapter_of[ws] = adapter
    return ws


def pump(
    ws: WebSocket,
    until: Callable[[], bool],
    *,
    timeout: float = WAIT,
    what: str = "the condition",
) -> None:
    """Drive ``ws`` until ``until()`` is true; fail the test after ``timeout``."""
    step = _adapter_of[ws].step
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        step(ws)


# Recording.


HANDLER_NAMES = ("on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message")


class Recorder:
    """Registers all five handlers of a WebSocket and records every event in order.

    With each event it records the expressions as the handler saw them. A
    test adds behaviour with :meth:`also`; it runs after the recording.
    """

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.events: list[Event] = []
        self.seen: list[dict[str, Any]] = []
        """The expressions and conditions at the time of each event."""
        self.extra: dict[str, Callable[[Any], object]] = {}
        for name in HANDLER_NAMES:
            setattr(ws, name, self._handler(name))

    def _handler(self, name: str) -> Callable[[Event], None]:
        def record(event: Event) -> None:
            self._record(event)
            extra = self.extra.get(name)
            if extra is not None:
                extra(event)

        record.__name__ = name
        return record

    def also(self, name: str, fn: Callable[[Any], object]) -> None:
        """Call ``fn`` from handler ``name`` after recording the event."""
        assert name in HANDLER_NAMES, name
        self.extra[name] = fn

    def _record(self, event: Event) -> None:
        ws = self.ws
        self.events.append(event)
        self.seen.append(
            {
                "message_text": ws.message_text,
                "error_msg": ws.error_msg,
                "close_code": ws.close_code,
                "close_reason": ws.close_reason,
                "protocol": ws.protocol,
                "is_open": ws.is_open,
                "is_connecting": ws.is_connecting,
                "binary_data": None if ws.binary_data is None else bytes(ws.binary_data),
            }
        )


def check_attempt(events: list[Event]) -> None:
    """Assert the ordering contract on the events of one connect() attempt."""
    assert events, "no events at all"
    kinds = [type(e).__name__ for e in events]
    assert isinstance(events[-1], Closed), f"the last event is not Closed: {kinds}"
    assert kinds.count("Closed") == 1, f"not exactly one Closed: {kinds}"
    assert kinds.count("Opened") <= 1, f"more than one Opened: {kinds}"
    if "Opened" in kinds:
        assert kinds[0] == "Opened", f"Opened is not first: {kinds}"
    errors = kinds.count("Error")
    assert errors <= 1, f"more than one Error: {kinds}"
    closed = events[-1]
    if errors:
        assert kinds[-2] == "Error", f"Error does not come right before Closed: {kinds}"
        assert not closed.was_clean, f"an Error but a clean close: {events}"
    else:
        assert closed.was_clean, f"an unclean close without an Error before it: {events}"


class Client:
    """A WebSocket under test, with a :class:`Recorder` and its driver's pump."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.recorder = Recorder(ws)
        self.starts: list[int] = []
        """How many events there were when each connect() was called."""

    @property
    def events(self) -> list[Event]:
        return self.recorder.events

    def attempts(self) -> list[list[Event]]:
        """The events of each connect() attempt, in order.

        An attempt ends with its Closed event. A connect() made while the
        previous connection is active ends that one first, so the events are
        split at Closed events rather than at connect() calls.
        """
        attempts: list[list[Event]] = [[]]
        for event in self.events:
            attempts[-1].append(event)
            if isinstance(event, Closed):
                attempts.append([])
        if not attempts[-1]:
            attempts.pop()
        return attempts

    @property
    def attempt(self) -> list[Event]:
        """The events of the latest connect() attempt so far."""
        index = len(self.starts) - 1
        attempts = self.attempts()
        return attempts[index] if 0 <= index < len(attempts) else []

    def of(self, cls: type[Any]) -> list[Any]:
        """The events of the latest attempt of class ``cls``."""
        return [e for e in self.attempt if isinstance(e, cls)]

    def also(self, name: str, fn: Callable[[Any], object]) -> None:
        """Run ``fn`` from handler ``name`` too (see :meth:`Recorder.also`)."""
        self.recorder.also(name, fn)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.attempt]

    def connect(self, url: str, protocol: str | list[str] | None = None) -> None:
        self.starts.append(len(self.events))
        self.ws.connect(url, protocol)

    def pump(self, until: Callable[[], bool], *, timeout: float = WAIT, what: str = "") -> None:
        pump(self.ws, until, timeout=timeout, what=what or "the condition")

    def wait_open(self, timeout: float = WAIT) -> Opened:
        self.pump(
            lambda: bool(self.of(Opened) or self.of(Closed)),
            timeout=timeout,
            what="On opened",
        )
        assert self.of(Opened), f"the connection failed: {self.attempt}"
        return self.of(Opened)[0]

    def wait_closed(self, timeout: float = WAIT) -> Closed:
        """Wait for On closed of the latest attempt; check the ordering contract."""
        self.pump(lambda: bool(self.of(Closed)), timeout=timeout, what="On closed")
        check_attempt(self.attempt)
        assert self.ws.is_closed
        return self.of(Closed)[0]

    def wait_messages(self, count: int, timeout: float = WAIT) -> list[Any]:
        """Wait for ``count`` messages (text or binary) in this attempt; return their data."""

        def messages() -> list[Any]:
            return [
                e.text if isinstance(e, TextMessage) else e.data
                for e in self.attempt
                if isinstance(e, (TextMessage, BinaryMessage))
            ]

        self.pump(
            lambda: len(messages()) >= count or bool(self.of(Closed)),
            timeout=timeout,
            what=f"{count} message(s)",
        )
        got = messages()
        assert len(got) >= count, f"the connection ended first: {self.attempt}"
        return got

    def error(self) -> Error:
        errors = self.of(Error)
        assert len(errors) == 1, f"expected one Error: {self.attempt}"
        return errors[0]

    def shutdown(self) -> None:
        """End whatever is left, without raising from a test's own handlers."""
        ws = self.ws
        self.recorder.extra.clear()

        def finished() -> bool:
            # The state too: is_closed alone once hid a live connection.
            return ws.is_closed and ws.state in (None, State.CLOSED)

        if finished():
            return
        if ws.is_open or ws.is_connecting:
            ws.close()
        pump(ws, finished, timeout=WAIT, what="the final close")


# Fixtures: clients.


@pytest.fixture(params=sorted(ADAPTERS))
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter(driver_name: str) -> DriverAdapter:
    """The adapter of the driver under test."""
    return ADAPTERS[driver_name]


@pytest.fixture
def make_ws(driver_name: str) -> Iterator[Callable[..., WebSocket]]:
    """``make_ws(**options)``: a bare WebSocket on the driver under test, closed at the end."""
    made: list[WebSocket] = []

    def factory(**options: Any) -> WebSocket:
        ws = new_ws(driver_name, **options)
        made.append(ws)
        return ws

    yield factory
    for ws in made:
        for name in HANDLER_NAMES:
            setattr(ws, name, None)
        if ws.is_open or ws.is_connecting:
            ws.close()
        pump(ws, lambda ws=ws: ws.state in (None, State.CLOSED) and ws.is_closed)


@pytest.fixture(name="pump")
def pump_fixture() -> Callable[..., None]:
    """``pump(ws, until, timeout=..., what=...)``: drive ``ws`` until ``until()``."""
    return pump


@pytest.fixture
def make_client(driver_name: str) -> Iterator[Callable[..., Client]]:
    """``make_client(**options)``: a recorded WebSocket on the driver under test.

    Every attempt is checked against the ordering contract at the end.
    """
    clients: list[Client] = []

    def factory(**options: Any) -> Client:
        client = Client(new_ws(driver_name, **options))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.shutdown()
    for client in clients:
        for attempt in client.attempts():
            check_attempt(attempt)


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    """A recorded WebSocket with default options."""
    return make_client()


# Fixtures: servers.


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def ws_server(loop_thread: LoopThread) -> Iterator[WebsocketsServer]:
    """The websockets asyncio server (plain TCP), shared by all tests."""
    server = WebsocketsServer(loop_thread)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_server() -> Iterator[NodeServer]:
    """The npm ws server, shared by all tests."""
    if not node_available():
        pytest.skip("needs node and tests/node/node_modules (run: make install)")
    server = NodeServer()
    yield server
    server.stop()


@pytest.fixture(params=["websockets", "node"])
def echo_server(request: pytest.FixtureRequest) -> WebsocketsServer | NodeServer:
    """Each echo server in turn."""
    if request.param == "node":
        request.applymarker(pytest.mark.node)
        return request.getfixturevalue("node_server")  # type: ignore[no-any-return]
    return request.getfixturevalue("ws_server")  # type: ignore[no-any-return]


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[RawConnection], object]], RawServer]]:
    """``raw_server(handler)``: a hand-written server; stopped (and checked) at teardown."""
    servers: list[RawServer] = []

    def factory(handler: Callable[[RawConnection], object]) -> RawServer:
        server = RawServer(handler, timeout=WAIT)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
