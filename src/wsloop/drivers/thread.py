"""The thread driver: the I/O runs on a background thread.

For scripts and GUI programs that do not want to call ``poll()``. The thread
runs the same non-blocking machinery as the poll driver (phases, timeouts,
buffering), behind one lock that it releases whenever it waits, so ``send_*``,
``close()`` and ``connect()`` are safe from any thread and never wait for the
network.

Where handlers run is the user's choice (``deliver=``):

``"thread"`` (the default)
    On the I/O thread, as soon as the event arrives, never while the lock is
    held, so a handler may send or close. An exception from a handler is
    logged with its traceback, kept, and raised again from the next call the
    application makes on the WebSocket from its own thread (``poll()``,
    ``send_*()``, ``close()``, ``connect()``, ``wait_*()``).
``"caller"``
    Queued, and run by ``poll()`` on the thread that calls it, the way a game
    engine drains its message queue once a frame.

The thread starts with ``connect()`` and ends once ``on_closed`` has been
delivered (or queued): no thread outlives a closed connection. It is a daemon
thread, so interpreter exit never waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._tls import CONTEXTS, ContextCache
from .base import BaseDriver, Config
from .poll import PollDriver

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._url import URL
    from ..events import Event
    from ..sansio import State

__all__ = ["ThreadDriver"]

logger = logging.getLogger("wsloop.client")

T = TypeVar("T")

Deliver = Literal["thread", "caller"]


class _LockedPollDriver(PollDriver):
    """The poll machinery, releasing its owner's lock while it blocks."""

    def __init__(self, config: Config, lock: threading.Lock, owner: ThreadDriver) -> None:
        super().__init__(config)
        self._lock = lock
        self._owner = owner

    def _queued(self) -> int:
        # Events wait in the owner's queue (deliver="caller") until poll().
        return len(self.events) + len(self._owner.events)

    def _block(self, fn: Callable[..., T], *args: Any) -> T:
        self._lock.release()
        try:
            return fn(*args)
        finally:
            self._lock.acquire()


class ThreadDriver(BaseDriver):
    """Runs the connection on a background thread.

    Args:
        config: the WebSocket's options.
        deliver: ``"thread"`` runs handlers on the I/O thread; ``"caller"``
            queues events for ``poll()``.
    """

    tls_contexts: ContextCache = CONTEXTS
    """Where ``wss://`` contexts come from; a subclass may bring its own cache."""

    def __init__(self, config: Config, deliver: Deliver = "thread") -> None:
        super().__init__(config)
        if deliver not in ("thread", "caller"):
            raise ValueError(f"deliver must be 'thread' or 'caller', not {deliver!r}")
        self.deliver: Deliver = deliver
        """Where handlers run: ``"thread"`` or ``"caller"``."""
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._wake_w: socket.socket | None = None
        self._io = _LockedPollDriver(config, self._lock, self)
        self._io.tls_contexts = self.tls_contexts
        self._thread: threading.Thread | None = None
        self.dispatcher: Callable[[Event], None] | None = None
        """Set by the façade: runs the handler of one event (``deliver="thread"``)."""
        self._handler_error: BaseException | None = None

    # What the façade reads.

    @property
    def state(self) -> State | None:
        return self._io.state

    @property
    def subprotocol(self) -> str | None:
        return self._io.subprotocol

    @property
    def buffered_amount(self) -> int:
        return self._io.buffered_amount

    def fileno(self) -> int:
        return self._io.fileno()

    @property
    def latency(self) -> float | None:
        return self._io.latency

    @property
    def thread(self) -> threading.Thread | None:
        """The I/O thread while a connection is active, else ``None``."""
        return self._thread

    @property
    def delivers_itself(self) -> bool:
        return self.deliver == "thread"

    # Actions, from any thread.

    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        self.raise_handler_error()
        with self._lock:
            self._io.connect(url, subprotocols)
            if self._thread is None:
                # A socket pair wakes the I/O thread from its wait when the
                # application sends or closes; it lives as long as the thread.
                wake_r, self._wake_w = socket.socketpair()
                wake_r.setblocking(False)
                self._wake_w.setblocking(False)
                self._io.set_wake_socket(wake_r)
                self._thread = threading.Thread(target=self._run, name="wsloop-io", daemon=True)
                self._thread.start()
        self._wake()

    def send_text(self, text: str) -> bool:
        self.raise_handler_error()
        with self._lock:
            ok = self._io.send_text(text)
            pending = self._io.buffered_amount > 0
        if pending:
            self._wake()
        return ok

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        self.raise_handler_error()
        with self._lock:
            ok = self._io.send_binary(data)
            pending = self._io.buffered_amount > 0
        if pending:
            self._wake()
        return ok

    def send_ping(self, data: bytes = b"") -> bool:
        self.raise_handler_error()
        with self._lock:
            ok = self._io.send_ping(data)
        self._wake()
        return ok

    def close(self, code: int, reason: str) -> None:
        self.raise_handler_error()
        with self._lock:
            self._io.close(code, reason)
        self._wake()

    def poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for queued events (``deliver="caller"``)."""
        self.raise_handler_error()
        with self._cond:
            self._cond.wait_for(lambda: bool(self.events) or self._thread is None, timeout)
        self.raise_handler_error()

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` is true after a delivery, or the timeout."""
        self.raise_handler_error()
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
        self.raise_handler_error()
        return result

    def events_taken(self) -> None:
        # Reading may have stopped because the queue was full: let it resume.
        limit = self.config.max_queue
        if limit is not None and self._thread is not None and len(self.events) < limit:
            self._wake()

    def raise_handler_error(self) -> None:
        """Raise, once, an exception a handler raised on the I/O thread."""
        if self._handler_error is not None and threading.current_thread() is not self._thread:
            exc, self._handler_error = self._handler_error, None
            raise exc

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the I/O thread to end; return whether it did."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    # The I/O thread.

    def _wake(self) -> None:
        wake_w = self._wake_w
        if wake_w is None:
            return
        # OSError: full (a wake-up is pending already) or closed (the thread ended).
        with contextlib.suppress(OSError):
            wake_w.send(b"\0")

    def _run(self) -> None:
        io = self._io
        lock = self._lock
        lock.acquire()
        try:
            while True:
                if io.phase == "idle" and not io.events:
                    self._thread = None
                    wake_r, wake_w = io.wake_socket, self._wake_w
                    io.set_wake_socket(None)
                    self._wake_w = None
                    for sock in (wake_r, wake_w):
                        if sock is not None:
                            sock.close()
                    break
                if io.phase != "idle":
                    io.step(wait=0.0)
                    if not io.events and io.phase != "idle":
                        # Deadlines as they are after that step: it may have
                        # armed one (a close frame read starts the close timer).
                        deadline = io.next_deadline()
                        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                        io.step(wait=wait)
                if io.events:
                    batch = list(io.events)
                    io.events.clear()
                    lock.release()
                    try:
                        self._deliver(batch)
                    finally:
                        lock.acquire()
        except BaseException:  # pragma: no cover - a bug in wsloop itself
            logger.exception("wsloop I/O thread failed")
            self._thread = None
            raise
        finally:
            lock.release()
            with self._cond:
                self._cond.notify_all()

    def _deliver(self, batch: list[Event]) -> None:
        if self.deliver == "caller" or self.dispatcher is None:
            with self._cond:
                self.events.extend(batch)
                self._cond.notify_all()
            return
        dispatcher = self.dispatcher
        for event in batch:
            try:
                dispatcher(event)
            except Exception as exc:
                logger.error(
                    "exception in the %s handler (raised again in the application's thread)",
                    type(event).__name__,
                    exc_info=True,
                )
                if self._handler_error is None:
                    self._handler_error = exc
        with self._cond:
            self._cond.notify_all()
