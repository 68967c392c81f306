"""A sync face for :class:`~wsloop.AsyncWebSocket`, so that the sync battery drives it.

tests/test_client.py speaks to a ``WebSocket``: ``connect()`` returns at once,
``poll()`` lets time pass, ``wait_open()`` and ``wait_closed()`` block. The
:class:`SyncAsyncWebSocket` here offers that surface over an ``AsyncWebSocket``
and an event loop that it runs itself, on the caller's thread, only while the
caller is inside one of its methods. So the battery runs the asyncio façade and
driver unchanged: the same servers, the same assertions.

Why not a loop running freely in a background thread: between two statements
of the caller, such a loop goes on (on loopback, a whole handshake fits
between ``connect()`` and the next line), so "``is_connecting`` right after
``connect()``" or "a send while connecting is refused" would hold only by luck
of timing. An asyncio program never sees that: nothing happens between two
statements of a coroutine unless it awaits. Running the loop only inside the
calls gives the battery exactly that cooperative model: each call is one
``await``.

How the calls map:

* ``connect()`` checks its arguments first (``ValueError`` at once, as
  ``WebSocket.connect`` raises it), then starts ``await ws.connect()`` as a
  task and runs the loop until that task has reached its first wait: the
  attempt has started (``is_connecting``) when it returns.
* ``send_*``, ``ping``, ``close`` run inside the loop (``close()`` needs it)
  and return its answer.
* ``poll(timeout)`` runs the loop for ``timeout`` seconds, then raises what
  went wrong meanwhile: an exception a handler raised, or one that a
  ``connect()`` task ended with and that is not a connection failure (those
  are reported through the events, as with every driver). It fires no handler
  itself and returns 0; the handlers ran inside the loop, on this thread.
* From a handler (the loop is running), calls go straight to the
  ``AsyncWebSocket``; ``connect()`` starts its task without waiting, and the
  blocking waits raise ``RuntimeError``.
* Handlers, expressions and conditions are those of the ``AsyncWebSocket``.

All the wrapped sockets share one event loop (:func:`client_loop`), so a
``poll()`` of one lets the others make progress too, as in an asyncio program.

For the tests written as coroutines (tests/test_async_*.py) there are also
:func:`loop_params` and :func:`runner` (each test on the default loop and on
uvloop), and :class:`Recorded`, which records every event of an
``AsyncWebSocket``, ``Reconnecting`` included.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import time
from typing import TYPE_CHECKING, Any

import pytest

from servers import WAIT
from wsloop import AsyncWebSocket, Closed, Reconnecting, WebSocketError, parse_url
from wsloop._facade import parse_protocols

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from wsloop import Event

__all__ = ["Recorded", "SyncAsyncWebSocket", "client_loop", "loop_params", "runner"]

_loop: asyncio.AbstractEventLoop | None = None


def client_loop() -> asyncio.AbstractEventLoop:
    """The event loop the wrapped clients share (made on first use, closed at exit)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        atexit.register(_close_loop, _loop)
    return _loop


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed() or loop.is_running():
        return
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


class SyncAsyncWebSocket:
    """The sync ``WebSocket`` surface over an :class:`AsyncWebSocket`.

    Takes the options of ``AsyncWebSocket``.
    """

    _loop: asyncio.AbstractEventLoop
    _ws: AsyncWebSocket
    _tasks: list[asyncio.Task[None]]
    """connect() tasks whose outcome has not been looked at yet."""
    _last_connect: asyncio.Task[None] | None

    def __init__(self, **options: Any) -> None:
        object.__setattr__(self, "_loop", client_loop())
        object.__setattr__(self, "_ws", AsyncWebSocket(**options))
        object.__setattr__(self, "_tasks", [])
        object.__setattr__(self, "_last_connect", None)

    # Running the loop.

    def _in_loop(self) -> bool:
        """True inside a handler (or anything else the loop is running)."""
        return self._loop.is_running()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run the loop until ``coro`` is done; return its result or raise its exception."""
        if self._in_loop():
            coro.close()
            raise RuntimeError("a blocking call from an event handler would wait forever")
        return self._loop.run_until_complete(coro)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` inside the loop: directly from a handler, else as one loop step."""
        if self._in_loop():
            return fn(*args)

        async def call() -> Any:
            return fn(*args)

        return self._run(call())

    def _check(self) -> None:
        """Raise a handler's exception, or a connect() task's unexpected one."""
        tasks = self._tasks
        for task in [t for t in tasks if t.done()]:
            tasks.remove(task)
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketError):
                raise exc
        self._ws._raise_handler_error()

    # Actions.

    def connect(self, url: str, protocol: str | Sequence[str] | None = None) -> None:
        parse_url(url)  # ValueError now, before any I/O, as WebSocket.connect()
        parse_protocols(protocol)
        if self._in_loop():
            self._start(url, protocol)
            return

        async def start() -> None:
            self._start(url, protocol)
            await asyncio.sleep(0)  # connect() runs up to its first wait
            self._check()

        self._run(start())

    def _start(self, url: str, protocol: str | Sequence[str] | None) -> None:
        task = self._loop.create_task(self._ws.connect(url, protocol))
        # Marks the outcome as seen for asyncio; _check() still reports it.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._tasks.append(task)
        object.__setattr__(self, "_last_connect", task)

    def send_text(self, text: str) -> bool:
        return bool(self._call(self._ws.send_text, text))

    def send_binary(self, data: Any) -> bool:
        return bool(self._call(self._ws.send_binary, data))

    def ping(self, data: bytes = b"") -> bool:
        return bool(self._call(self._ws.ping, data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._call(self._ws.close, code, reason)

    def fileno(self) -> int:
        return self._ws.driver.fileno()

    # Waiting.

    def poll(self, timeout: float | None = 0.0) -> int:
        """Run the loop for ``timeout`` seconds (``None``: one step); always 0."""
        if self._in_loop():
            raise RuntimeError("poll() called from inside an event handler")
        self._run(asyncio.sleep(timeout or 0.0))
        self._check()
        return 0

    def wait_open(self, timeout: float | None = None) -> bool:
        """Run the loop until the last connect() has returned (True) or raised (False)."""
        task = self._last_connect
        if task is None:
            return False
        self._run(asyncio.wait({task}, timeout=timeout))
        self._check()
        return task.done() and not task.cancelled() and task.exception() is None

    def wait_closed(self, timeout: float | None = None) -> bool:
        """``await ws.wait_closed()``; False if ``timeout`` expired first."""

        async def wait() -> bool:
            try:
                async with asyncio.timeout(timeout):
                    await self._ws.wait_closed()
            except TimeoutError:
                return False
            return True

        return bool(self._run(wait()))

    def run_forever(self) -> None:
        self.wait_closed(None)

    # Handlers, expressions and conditions: those of the AsyncWebSocket.

    def event(self, fn: Any) -> Any:
        return self._ws.event(fn)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (in __init__), or really missing
            raise AttributeError(name)
        return getattr(self._ws, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._ws, name, value)

    def __repr__(self) -> str:
        return f"<SyncAsyncWebSocket {self._ws!r}>"


# For tests written as coroutines.


def loop_params() -> list[Any]:
    """``pytest.param`` for the default loop and for uvloop (skipped without it)."""
    params: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the test group
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("no uvloop")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


def runner(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``run(coro)``: run a test body on a fresh loop, bounded by a generous timeout."""

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        async def bounded() -> Any:
            try:
                async with asyncio.timeout(WAIT * 3):
                    return await coro
            except BaseException:
                # A failed test must not leave sockets for the garbage
                # collector to warn about in a later test.
                await _close_left_open()
                raise
            finally:
                _recorded.clear()

        with asyncio.Runner(loop_factory=loop_factory) as r:
            return r.run(bounded())

    return run


_recorded: list[AsyncWebSocket] = []
"""What :class:`Recorded` wraps during the current ``run()``."""


async def _close_left_open() -> None:
    for ws in _recorded:
        if ws.is_closed and ws.state is None:
            continue
        with contextlib.suppress(Exception):
            ws.close()
            async with asyncio.timeout(WAIT / 4):
                await ws.wait_closed()


class Recorded:
    """Sets every handler of an ``AsyncWebSocket``, ``on_reconnecting`` too, and records."""

    NAMES = (
        "on_opened",
        "on_closed",
        "on_error",
        "on_text_message",
        "on_binary_message",
        "on_reconnecting",
    )

    def __init__(self, ws: AsyncWebSocket) -> None:
        self.ws = ws
        _recorded.append(ws)
        self.events: list[Event] = []
        for name in self.NAMES:
            setattr(ws, name, self.events.append)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def attempts(self) -> list[list[Event]]:
        """The events of each connection attempt, split after each Closed."""
        out: list[list[Event]] = [[]]
        for event in self.events:
            if isinstance(event, Reconnecting):
                continue
            out[-1].append(event)
            if isinstance(event, Closed):
                out.append([])
        return [a for a in out if a]

    async def until(self, predicate: Callable[[], bool], what: str = "the condition") -> None:
        """Wait for ``predicate()``: the handlers run meanwhile (and nothing signals it)."""
        deadline = time.monotonic() + WAIT
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.kinds()}"
            await asyncio.sleep(0.005)
