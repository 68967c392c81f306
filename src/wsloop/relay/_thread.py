"""A relay on its own thread: :class:`RelayThread` and :func:`serve`.

For tests, demos and programs that are not asyncio: the thread runs
``asyncio.run()`` with the relay on it, :meth:`RelayThread.call` runs a
function on that loop and returns its result, and stopping sets an
:class:`asyncio.Event` from the calling thread (``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import RelayError, RelayStateError
from .server import Relay

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._parts import RelayStats

__all__ = ["RelayThread", "serve"]

T = TypeVar("T")


class RelayThread:
    """A :class:`Relay` running on its own event loop in a background thread.

    Made for tests, demos and apps that are not asyncio: the relay serves
    while the calling thread does something else. Use it as a context
    manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        """The relay being run."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the relay listens on."""
        return self.relay.port

    @property
    def url(self) -> str:
        """The base URL, such as ``ws://127.0.0.1:40123``; add a room path."""
        return self.relay.url

    @property
    def stats(self) -> RelayStats:
        """The relay's counters (see :class:`RelayStats`)."""
        return self.call(lambda: self.relay.stats)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the relay's loop and return its result.

        Raises:
            RelayStateError: the relay is not running (not started yet, or
                it could not start).
        """
        loop = self._loop
        if loop is None:
            raise RelayStateError("the relay is not running")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def start(self, timeout: float = 30.0) -> RelayThread:
        """Start the thread and wait until the relay listens.

        Raises:
            RelayError: the relay could not start.
            RelayStateError: this relay thread was already started.
        """
        if self._thread is not None:
            raise RelayStateError("this relay thread was already started")
        self._thread = threading.Thread(target=self._run, name="wsloop-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RelayError(f"the relay did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close every client with 1001, stop the relay and join the thread."""
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        event = self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RelayError(f"the relay did not stop within {timeout:g} s")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        try:
            await self.relay.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._ready.set()
        stop = asyncio.create_task(self._stop_event.wait())
        ended = asyncio.create_task(self.relay.wait_closed())
        await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        ended.cancel()
        await self.relay.stop()

    def __enter__(self) -> RelayThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 0, **options: Any) -> RelayThread:
    """Start a relay in a background thread; return it running.

    Takes the arguments of :class:`Relay`, except that ``port`` defaults to
    ``0`` (a free port)::

        with wsloop.relay.serve(protocols=["chat"]) as relay:
            ws.connect(f"{relay.url}/room/lobby", "chat")

    Raises:
        RelayError: the relay could not start.
    """
    return RelayThread(Relay(host, port, **options)).start()
