"""What runs behind :class:`~wsloop.AsyncWebSocket`: its attempts, the dispatcher, retries.

The façade (:mod:`wsloop._async_client`) has what the application calls;
:class:`_AsyncDispatch`, a base class of the façade, has what runs between
the driver and the handlers: the state of each connection attempt, the
dispatcher task, backpressure, reconnection, and the waiting that every
awaited call does. The channel that ``recv()`` and ``async for`` read is in
:mod:`wsloop._async_channel`.

Theory of operation
-------------------
Each ``connect()`` starts a :class:`_Session`: that connection and, with
``reconnect`` on, the retries that follow it until the session ends for good
(the application closed, a final close code or error, ``max_attempts``).
Each connection attempt of the session is an :class:`_Attempt`. The driver
(:class:`~wsloop.drivers.asyncio.AsyncioDriver`) hands the attempt's events to
its ``pending`` queue from the transport's callbacks. One dispatcher task per
attempt takes them in order and, for each one: updates the expressions, runs
the handler (awaiting it when it returns an awaitable, so an ``async def``
handler finishes before the next event starts), then appends the event to the
attempt's ``channel`` if an iterator or :meth:`AsyncWebSocket.recv` is
attached. Without one there is no channel: nothing is kept for a reader that
does not exist.

Backpressure: the *backlog* is what waits in ``pending`` and ``channel``,
counted in events and weighed in bytes. At ``max_queue`` events or above
``max_backlog`` bytes the driver stops reading from the network; once both
are down to a quarter, reading resumes. A slow handler or a slow iterator
thus slows the server down (TCP flow control) instead of filling memory.

Reconnection reuses :mod:`wsloop._sansio.lifecycle`: after dispatching a
``Closed``, the session either ends (``is_closed`` turns true before
``on_closed`` runs) or a retry is armed with ``loop.call_later()``; then
``on_reconnecting`` runs. When the timer fires while that dispatcher is still
running a handler, the retry starts as soon as the dispatcher ends, so the
handlers of two attempts never interleave. ``close()`` cancels the timer.

After dispatching the session's first ``Opened``, the dispatcher waits until
the task awaiting ``connect()`` has resumed. That task runs on until its next
``await``, so an iterator it creates there (``await ws.connect(url)`` then
``async for``) sees every event after ``Opened``.

Waiting is one broadcast: every change calls :meth:`_AsyncDispatch._changed`,
which wakes all waiters; each checks its own condition again, and raises a
handler's exception if one was stored meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ._facade import FacadeBase
from .events import BinaryMessage, Closed, Error, Event, Opened, Reconnecting, TextMessage

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._url import URL
    from .drivers.base import AsyncBaseDriver

logger = logging.getLogger("wsloop.client")

_EVENT_OVERHEAD = 64
"""What an event weighs in the backlog besides its payload, in bytes."""

_YIELD_EVERY = 256
"""Events dispatched in a row before the dispatcher lets other tasks run."""


def _weight(event: Event) -> int:
    if type(event) is TextMessage:
        return len(event.text) + _EVENT_OVERHEAD
    if type(event) is BinaryMessage:
        return len(event.data) + _EVENT_OVERHEAD
    return _EVENT_OVERHEAD


class _Attempt:
    """One connection attempt as the façade sees it: queues and progress."""

    def __init__(self) -> None:
        self.pending: deque[Event] = deque()
        """Events from the driver not dispatched yet."""
        self.pending_size = 0
        self.channel: deque[Event] | None = None
        """Dispatched events not taken by the iterator or recv() yet; None: no reader."""
        self.channel_size = 0
        self.readers = 0
        """Live iterators using the channel."""
        self.recv_attached = False
        """recv() was called: keep the channel until Closed is taken."""
        self.consumed = False
        """Closed was taken from the channel."""
        self.dispatcher: asyncio.Task[None] | None = None
        self.opened: Opened | None = None
        self.error: Error | None = None
        self.closed: Closed | None = None
        self.done = False
        """on_closed (and on_reconnecting) returned, or the dispatcher ended otherwise."""

    @property
    def backlog(self) -> int:
        """Bytes waiting, message data weighed with a small overhead per event."""
        return self.pending_size + self.channel_size

    @property
    def queued(self) -> int:
        """Events waiting."""
        return len(self.pending) + (0 if self.channel is None else len(self.channel))


class _Session:
    """One ``connect()``: its first attempt and, with ``reconnect``, the retries."""

    def __init__(self, url: URL, protocols: tuple[str, ...], attempt: _Attempt) -> None:
        self.url = url
        self.protocols = protocols
        self.attempt = attempt
        """The latest attempt."""
        self.opened = False
        """An attempt of this session opened: connect() can return."""
        self.error: Error | None = None
        """The latest Error, which connect() raises when the session never opened."""
        self.ended = False
        """Closed for good: no retry pending or to come."""
        self.handed_off = False
        """The task awaiting connect() has resumed."""

    @property
    def settled(self) -> bool:
        """connect() can return (opened) or raise (ended without opening)."""
        return self.opened or self.ended

    @property
    def finished(self) -> bool:
        """Ended, and the handlers of its last attempt have returned."""
        return self.ended and self.attempt.done


class _AsyncDispatch(FacadeBase):
    """The dispatcher, reconnection, backpressure and waiting of :class:`~wsloop.AsyncWebSocket`.

    Its attributes are set by ``AsyncWebSocket.__init__``.
    """

    on_reconnecting: Callable[[Reconnecting], object] | None
    _driver: AsyncBaseDriver
    _max_backlog: int | None
    _attempt: _Attempt | None
    _session: _Session | None
    _handler_error: BaseException | None
    _waiters: list[asyncio.Future[None]]
    _retry_timer: asyncio.TimerHandle | None
    _retry_due: bool

    if TYPE_CHECKING:

        @property
        def is_reconnecting(self) -> bool: ...

    # Dispatching.

    def _deliver(self, events: list[Event]) -> None:
        """The driver's callback: new events of the current attempt."""
        att = self._attempt
        if att is None:  # pragma: no cover - the driver only runs after connect()
            return
        for event in events:
            att.pending.append(event)
            att.pending_size += _weight(event)
        self._flow(att)
        self._changed()

    async def _dispatch_loop(self, att: _Attempt, sess: _Session) -> None:
        in_a_row = 0
        try:
            while True:
                if not att.pending:
                    in_a_row = 0
                    await self._wait_for(lambda: bool(att.pending), raise_errors=False)
                event = att.pending.popleft()
                att.pending_size -= _weight(event)
                cls = type(event)
                life = self._life
                if life.user_closed and life.drops(event):
                    # "No more messages ... will be received after closing": what
                    # was already read when the application called close() is dropped.
                    self._flow(att)
                    continue
                delay: float | None = None
                if cls is Closed:
                    assert isinstance(event, Closed)
                    att.closed = event  # before the handler: wait_closed() there returns
                    # Before the handler too: is_closed, is_reconnecting, and a
                    # connect() from on_closed starts the next connection.
                    delay = self._after_closed(sess, event)
                elif sess is self._session:
                    if cls is Opened:
                        life.opened(self._driver)
                    elif cls is Error:
                        assert isinstance(event, Error)
                        life.error(event)
                handler = self._apply(event)
                if handler is not None:
                    await self._run_handler(handler, event)
                if att.channel is not None:
                    att.channel.append(event)
                    att.channel_size += _weight(event)
                if cls is Opened:
                    assert isinstance(event, Opened)
                    att.opened = event  # after the channel: _attach() replays it once
                    sess.opened = True
                elif cls is Error:
                    assert isinstance(event, Error)
                    att.error = sess.error = event
                self._flow(att)
                self._changed()
                if cls is Closed:
                    if (
                        delay is not None
                        and sess is self._session
                        and not sess.ended  # on_closed did not close() or connect()
                    ):
                        await self._run_reconnecting(Reconnecting(life.attempt, delay))
                    return
                if cls is Opened and not sess.handed_off:
                    await self._wait_for(lambda: sess.handed_off, raise_errors=False)
                in_a_row += 1
                if in_a_row >= _YIELD_EVERY:
                    in_a_row = 0
                    await asyncio.sleep(0)
        finally:
            att.done = True
            self._changed()
            self._retry_if_due()

    async def _run_reconnecting(self, event: Reconnecting) -> None:
        handler = self.on_reconnecting
        if handler is not None:
            await self._run_handler(handler, event)

    async def _run_handler(self, handler: Callable[[Any], object], event: Event) -> None:
        try:
            result = handler(event)
            if result is not None and inspect.isawaitable(result):
                await result
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            self._handler_failed(handler, exc)
        except Exception as exc:
            self._handler_failed(handler, exc)

    def _handler_failed(self, handler: Callable[[Any], object], exc: BaseException) -> None:
        name = getattr(handler, "__name__", repr(handler))
        logger.error("event handler %s raised %s", name, type(exc).__name__, exc_info=exc)
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        """Keep ``exc`` for the next awaited call to raise."""
        if self._handler_error is None:
            self._handler_error = exc
        self._changed()

    def _raise_handler_error(self) -> None:
        exc = self._handler_error
        if exc is not None:
            self._handler_error = None
            raise exc

    def _in_dispatcher(self, att: _Attempt) -> bool:
        task = att.dispatcher
        return task is not None and asyncio.current_task() is task

    # Reconnection.

    def _after_closed(self, sess: _Session, event: Closed) -> float | None:
        """The attempt closed: end the session, or arm a retry and return its delay."""
        delay = None
        if sess is self._session and not sess.ended:
            delay = self._life.closed(event)
        if delay is None:
            self._end(sess)
            return None
        loop = asyncio.get_running_loop()
        self._retry_timer = loop.call_later(delay, self._retry_fired)
        return delay

    def _end(self, sess: _Session) -> None:
        """The session ends for good: nothing more will be tried."""
        sess.ended = True
        if sess is self._session:
            self._life.end()

    def _cancel_retry(self) -> bool:
        """Cancel a pending retry; return whether one was pending."""
        pending = self.is_reconnecting
        timer, self._retry_timer = self._retry_timer, None
        if timer is not None:
            timer.cancel()
        self._retry_due = False
        return pending

    def _retry_fired(self) -> None:
        self._retry_timer = None
        self._retry_due = True
        self._retry_if_due()

    def _retry_if_due(self) -> None:
        """Start the retry that is due, unless handlers of the last attempt still run."""
        sess = self._session
        if not self._retry_due or sess is None:
            return
        if not sess.attempt.done:
            return  # its dispatcher calls this again when it ends
        self._retry_due = False
        if sess.ended or self._life.user_closed:
            return
        loop = asyncio.get_running_loop()
        att = _Attempt()
        sess.attempt = att
        self._attempt = att
        try:
            self._driver.connect(sess.url, sess.protocols)
        except Exception as exc:
            # e.g. InsecureWarning as an error: the session cannot go on.
            att.done = True
            self._end(sess)
            logger.error("could not start the retry: %s", exc, exc_info=exc)
            self._report(exc)
            return
        att.dispatcher = loop.create_task(self._dispatch_loop(att, sess), name="wsloop-dispatch")

    # Flow control.

    def _flow(self, att: _Attempt) -> None:
        """Pause or resume reading as the backlog crosses the marks."""
        if att is not self._attempt:
            return
        driver = self._driver
        max_bytes = self._max_backlog
        max_events = self._config.max_queue
        backlog = att.backlog
        queued = att.queued
        if (max_bytes is not None and backlog > max_bytes) or (
            max_events is not None and queued >= max_events
        ):
            if not driver.reading_paused:
                driver.pause_reading()
        elif (
            driver.reading_paused
            and (max_bytes is None or backlog <= max_bytes // 4)
            and (max_events is None or queued <= max_events // 4)
        ):
            driver.resume_reading()

    # Waiting.

    def _changed(self) -> None:
        """Something changed: wake every waiter to check its condition."""
        waiters = self._waiters
        if waiters:
            woken = waiters.copy()
            waiters.clear()  # the same list: no call to the checking __setattr__
            for fut in woken:
                if not fut.done():
                    fut.set_result(None)

    async def _wait_for(self, predicate: Callable[[], bool], *, raise_errors: bool = True) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if raise_errors:
                self._raise_handler_error()
            if predicate():
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
                    if fut in self._waiters:
                        self._waiters.remove(fut)
