"""The :class:`AsyncWebSocket` façade: the WebSocket object for asyncio programs.

It has the options, triggers, conditions and expressions of
:class:`~wsloop.WebSocket`, with the same names; what waits is awaited.

This module has what the application calls: the options, ``connect()``,
``close()``, the waits, ``recv()`` and ``async for``. Behind them, in the
façade's base classes: :mod:`wsloop._async_dispatch` (each connection attempt,
the dispatcher task that runs the handlers, backpressure, reconnection,
waiting; with the theory of operation) and :mod:`wsloop._async_channel` (the
events kept for ``recv()`` and the iterator).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._async_channel import _AsyncChannel, _EventIterator
from ._async_dispatch import _Attempt, _Session
from ._facade import HANDLERS, config_from
from ._sansio.lifecycle import Lifecycle
from .drivers.asyncio import AsyncioDriver
from .drivers.base import DEFAULT_USER_AGENT, AsyncBaseDriver
from .exceptions import ConnectionClosedError, InvalidState
from .sansio import DEFAULT_MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    import os
    import ssl as _ssl
    from types import TracebackType

    from ._binary import BinaryData
    from ._sansio.reconnect import Reconnect
    from .events import Event, Reconnecting


__all__ = ["DEFAULT_MAX_BACKLOG", "AsyncWebSocket"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_BACKLOG = 2**20
"""Bytes of undelivered events above which reading pauses (``max_backlog``)."""


class AsyncWebSocket(_AsyncChannel):
    """A WebSocket client with triggers, for asyncio programs.

    The same object as :class:`~wsloop.WebSocket`, with the I/O on the running
    event loop. Handlers may be plain functions or ``async def``; one task per
    connection runs them in order. The events can also be read with
    ``async for`` or :meth:`recv`::

        async with AsyncWebSocket() as ws:
            ws.on_text_message = lambda event: print(event.text)
            await ws.connect("ws://127.0.0.1:8765/room/lobby")
            ws.send_text("hello")
            await ws.wait_closed()

    Args:
        compression: ``"deflate"`` offers permessage-deflate (as browsers
            do); ``None`` turns it off.
        max_message_size: the largest message accepted from the server, in
            bytes; a larger one fails the connection with 1009. ``None``
            removes the limit.
        connect_timeout: seconds for the name lookup, TCP, the proxy
            handshake, TLS and the WebSocket handshake together; ``None``
            waits forever.
        close_timeout: seconds to wait for the server to finish the closing
            handshake; ``None`` waits forever.
        max_queue: how many received events may wait (for their handlers,
            and for the iterator when one is active) before wsloop stops
            reading from the socket (TCP flow control then slows the server);
            reading resumes below a quarter of it. ``None``: no limit.
        max_backlog: the same limit in bytes of message data; both apply.
        max_buffered_amount: while more than this many bytes wait to be
            written, ``send_*`` refuse new messages (return ``False``, with a
            warning in the log) instead of growing without bound; ``None``:
            no limit.
        ping_interval: seconds between keepalive pings on an open connection;
            ``None`` sends none.
        ping_timeout: seconds to wait for the pong; when it does not come,
            the connection fails with "keepalive timeout" and 1006. ``None``
            waits forever.
        proxy: ``None`` (the default) reads ``HTTPS_PROXY``/``HTTP_PROXY``/
            ``ALL_PROXY``/``NO_PROXY``; a URL (``http://user:pass@host:port``,
            ``socks5://…``, ``socks5h://…``) always uses that proxy;
            ``False`` never uses one. See ``docs/proxies.md``.
        ssl: an :class:`ssl.SSLContext` for ``wss://``; by default one that
            verifies certificates and host names against the system's CAs.
        cafile: a PEM file of CA certificates to trust instead of the
            system's (ignored when ``ssl`` is given).
        certfile: a PEM file with the client certificate (and its key, unless
            ``keyfile`` is given), for servers that require one.
        keyfile: a PEM file with the client certificate's private key.
        insecure: ``True`` checks neither the server's certificate nor its
            host name, and warns with :class:`InsecureWarning` at each
            ``connect()`` to a ``wss://`` URL. For test servers only.
        headers: extra HTTP headers for the handshake request.
        origin: the ``Origin`` header.
        user_agent: the ``User-Agent`` header; ``None`` sends none.
        binary_data: a :class:`BinaryData` that every binary message is
            written into before ``on_binary_message`` runs, like the Binary
            Data object of the Construct plugin.
        reconnect: off by default, as in the plugin. ``True`` or a
            :class:`~wsloop.Reconnect` retries a dropped connection with
            exponential backoff; ``on_reconnecting`` fires before each retry.
    """

    on_reconnecting: Callable[[Reconnecting], object] | None
    """With ``reconnect`` on: called with :class:`Reconnecting` before each retry."""

    _driver: AsyncBaseDriver
    _handler_names: ClassVar[tuple[str, ...]] = (*HANDLERS, "on_reconnecting")

    def __init__(
        self,
        *,
        # Protocol
        compression: str | None = "deflate",
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        origin: str | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        # Timeouts
        connect_timeout: float | None = 10.0,
        close_timeout: float | None = 5.0,
        # Limits
        max_queue: int | None = 1024,
        max_backlog: int | None = DEFAULT_MAX_BACKLOG,
        max_buffered_amount: int | None = 16 * 2**20,
        # Keepalive
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        # Proxy
        proxy: str | bool | None = None,
        # TLS
        ssl: _ssl.SSLContext | None = None,
        cafile: str | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        # Messages
        binary_data: BinaryData | None = None,
        # Reconnection
        reconnect: bool | Reconnect | None = None,
    ) -> None:
        config = config_from(locals())
        if max_backlog is not None and max_backlog <= 0:
            raise ValueError("max_backlog must be positive or None")
        # One thread (the event loop's): the outbox needs no lock.
        super().__init__(config, binary_data, Lifecycle(reconnect))
        self.on_reconnecting = None
        self._max_backlog = max_backlog
        if sys.platform == "emscripten":
            # Pyodide's event loop is the browser's: the JavaScript WebSocket
            # delivers through the same callbacks.
            from .drivers.browser import BrowserDriver

            self._driver = BrowserDriver(self._config, self._deliver, self._changed)
        else:
            self._driver = AsyncioDriver(self._config, self._deliver, self._changed)
        self._attempt: _Attempt | None = None
        self._session: _Session | None = None
        self._handler_error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._receiving = False
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_due = False
        """The retry timer fired while the dispatcher was still busy."""

    # Actions.

    async def connect(self, url: str, protocol: str | Sequence[str] | None = None) -> None:
        """Connect: open a connection to ``url``; return once it is open.

        ``on_opened`` has run when this returns. When the connection fails,
        ``on_error`` then ``on_closed`` run, and this raises the exception of
        the :class:`~wsloop.Error` event (its text is ``error_msg``). A
        connection still active is closed first, and waited for.

        With ``reconnect`` on, a failed attempt is retried as a dropped
        connection would be: this returns once an attempt opens, and raises
        the last attempt's exception only when the retries end without one
        (a final error such as HTTP 404, ``max_attempts``, or :meth:`close`).

        Args:
            url: ``ws://`` or ``wss://`` (``http(s)://`` are taken as
                ``ws(s)://``).
            protocol: a required subprotocol, or several in order of
                preference. The connection fails unless the server selects one.

        Raises:
            ValueError: the URL or a subprotocol name is malformed.
            WebSocketError: the connection failed; a subclass says how.
            InvalidState: called from a handler while the connection is active.
            InsecureWarning: with ``insecure=True``, a ``wss://`` URL and
                warnings turned into errors; nothing was started.

        Cancelling the call abandons the attempt, and any retry, as
        :meth:`close` does (``on_error`` and ``on_closed`` still fire).
        """
        self._raise_handler_error()
        parsed, protocols = self._target(url, protocol)
        loop = asyncio.get_running_loop()
        old = self._session
        if old is not None and self._cancel_retry():
            # Between two attempts: nothing is connected, that session ends here.
            self._end(old)
        if self._active:
            att = self._attempt
            if att is not None and self._in_dispatcher(att):
                raise InvalidState(
                    "connect() from an event handler while the connection is active would "
                    "wait forever: call close() and connect again from on_closed"
                )
            self.close()
            await self.wait_closed()
        att = _Attempt()
        sess = _Session(parsed, protocols, att)
        previous = self._attempt, self._session
        self._attempt, self._session = att, sess
        try:
            self._driver.connect(parsed, protocols)
        except BaseException:
            # e.g. InsecureWarning raised as an error: nothing was started.
            self._attempt, self._session = previous
            raise
        self._begin(url)
        att.dispatcher = loop.create_task(self._dispatch_loop(att, sess), name="wsloop-dispatch")
        try:
            await self._wait_for(lambda: sess.settled)
        except asyncio.CancelledError:
            if not sess.settled and sess is self._session:
                self.close()
            raise
        finally:
            sess.handed_off = True
            self._changed()
        if sess.opened:
            return
        if sess.error is not None:
            raise sess.error.exception
        closed = sess.attempt.closed  # pragma: no cover - the contract puts an Error first
        code, reason = (1006, "") if closed is None else (closed.code, closed.reason)
        raise ConnectionClosedError(code, reason or "the connection closed before it opened")

    async def drain(self) -> None:
        """Wait until at most 64 KiB (``WRITE_LIMIT``) of sent data waits to be written.

        Returns at once when that is already so, or when the connection is
        not open. A producer that sends a lot calls it between sends.
        """
        driver = self._driver
        await self._wait_for(lambda: not driver.writing_paused)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: start closing the connection, whatever its state; return at once.

        ``on_closed`` fires once the server answers (or ``close_timeout``
        expires); await :meth:`wait_closed` for it, or use :meth:`aclose`.
        While connecting, the attempt is abandoned (``on_error`` then
        ``on_closed`` with 1006, as in a browser). Between two attempts of
        ``reconnect``, the pending retry is cancelled and the session ends at
        once. No message is delivered after this call, not even one already
        received. Does nothing when closed.

        Raises:
            ValueError: ``code`` is not 1000 or 3000-4999, or ``reason`` is
                longer than 123 bytes in UTF-8.
        """
        self._life.close(code, reason)
        sess = self._session
        if self._cancel_retry() and sess is not None:
            self._end(sess)
            self._changed()
        self._driver.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the session has ended for good and its ``on_closed`` has returned.

        Without ``reconnect``, that is the ``on_closed`` of the current
        connection; with it, the one after which no retry follows. Returns at
        once before any ``connect()``. Raises what a handler raised, if one
        did since the last call that reported it.

        Raises:
            InvalidState: called from a handler of the connection it would
                wait for (it would wait forever); from ``on_closed`` or
                ``on_reconnecting`` only while a retry is pending.
        """
        sess = self._session
        if sess is not None and not sess.finished:
            att = sess.attempt
            if self._in_dispatcher(att):
                if att.closed is None:
                    raise InvalidState(
                        "wait_closed() from an event handler would wait forever: "
                        "call close() and let the handler return"
                    )
                if not sess.ended:
                    raise InvalidState(
                        "wait_closed() from on_closed while a retry is pending would wait "
                        "forever: call close() first to end the session"
                    )
            else:
                await self._wait_for(lambda: sess.finished)
        self._raise_handler_error()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """:meth:`close`, then :meth:`wait_closed`."""
        self.close(code, reason)
        await self.wait_closed()

    @property
    def is_reconnecting(self) -> bool:
        """True while waiting to retry a dropped connection (``reconnect`` on)."""
        return self._retry_timer is not None or self._retry_due

    # Reading events instead of (or besides) handling them.

    async def recv(self) -> Event:
        """Return the next event of the current connection.

        The first call attaches a reader to the connection: from then on,
        every event is kept for ``recv()`` (after its handler ran) until
        ``Closed`` is returned, so keep calling it. A reader attached once the
        connection is open gets its :class:`~wsloop.Opened` first. After
        ``Closed``, every call returns that ``Closed`` again (until a retry
        of ``reconnect`` starts the next connection, which the next call
        then reads).

        Raises:
            InvalidState: no ``connect()`` yet, or called from a handler (it
                would wait forever).
            ConcurrencyError: another task is already waiting for an event.
        """
        self._raise_handler_error()
        att = self._attempt
        if att is None:
            raise InvalidState("recv() called before connect()")
        if self._in_dispatcher(att):
            raise InvalidState("recv() from an event handler would wait forever")
        if not att.consumed and not att.done and att.channel is None:
            self._attach(att)
        if att.channel is not None:
            att.recv_attached = True
            event = await self._take(att)
            if event is not None:
                return event
        if att.closed is None:  # pragma: no cover - only if the loop cancelled the dispatcher
            raise InvalidState("the connection ended without a Closed event")
        return att.closed

    def __aiter__(self) -> _EventIterator:
        """``async for event in ws``: the events of the current connection.

        Starts with :class:`~wsloop.Opened` (also when created after
        ``connect()`` returned), then every event dispatched while the
        iterator lives, and ends after :class:`~wsloop.Closed`. Handlers run
        first. Over a closed connection (or before any), it yields nothing.
        With ``reconnect``, one iterator covers one connection: make a new
        one for the next.
        """
        return _EventIterator(self, self._attempt)

    # Context manager: closing on exit.

    async def __aenter__(self) -> AsyncWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # What the handlers and the iterator run on.

    @property
    def driver(self) -> AsyncBaseDriver:
        """The driver doing the I/O."""
        return self._driver
