"""The :class:`WebSocket` façade: the Construct WebSocket plugin, in Python.

The façade owns the handlers and the Construct-style expressions
(``close_code``, ``error_msg``...). The driver it is given owns the I/O; the
façade never touches a socket, so a browser driver can stand behind it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, ClassVar

from ._facade import HANDLERS, FacadeBase, config_from
from ._sansio.lifecycle import Lifecycle, validate_close
from .drivers.base import DEFAULT_USER_AGENT, BaseDriver, Config
from .events import Closed, Error, Event, Opened, Reconnecting
from .exceptions import InvalidState
from .sansio import DEFAULT_MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    import os
    import ssl as _ssl
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from ._binary import BinaryData
    from ._sansio.reconnect import Reconnect
    from ._url import URL

__all__ = ["WebSocket", "is_supported", "validate_close"]  # validate_close: for wsloop


def is_supported() -> bool:
    """Is supported: whether this platform can make WebSocket connections.

    True where TCP sockets exist (and ``wss://`` needs :mod:`ssl`, which
    :func:`is_supported_secure` reports). In a browser it is true when the
    page has a JavaScript ``WebSocket``.
    """
    if sys.platform == "emscripten":
        # Pyodide or pygbag with a JavaScript WebSocket; Emscripten's socket
        # emulation does not count.
        from .drivers.browser import is_available

        return is_available()
    try:
        import socket
    except ImportError:  # pragma: no cover - every desktop Python has it
        return False
    return hasattr(socket, "socket")


def _make_driver(
    driver: str | type[BaseDriver] | None, config: Config, deliver: str | None
) -> BaseDriver:
    if driver is None:
        driver = "browser" if sys.platform == "emscripten" else "poll"
    if isinstance(driver, str):
        if driver == "poll":
            if deliver not in (None, "caller"):
                raise ValueError("the poll driver always delivers events in poll()")
            from .drivers.poll import PollDriver

            return PollDriver(config)
        if driver == "thread":
            from .drivers.thread import ThreadDriver

            if deliver not in (None, "thread", "caller"):
                raise ValueError(f"deliver must be 'thread' or 'caller', not {deliver!r}")
            return ThreadDriver(config, "caller" if deliver == "caller" else "thread")
        if driver == "browser":
            if deliver not in (None, "caller"):
                raise ValueError("the browser driver always delivers events in poll()")
            from .drivers.browser import BrowserDriver

            return BrowserDriver(config)
        raise ValueError(f"unknown driver {driver!r}; available: 'poll', 'thread', 'browser'")
    if isinstance(driver, type) and issubclass(driver, BaseDriver):
        return driver(config)
    raise TypeError(f"driver must be a name or a BaseDriver subclass, not {driver!r}")


class WebSocket(FacadeBase):
    """A WebSocket client with triggers, driven by your loop.

    Call :meth:`connect`, then :meth:`poll` once per frame (or in any loop):
    the triggers fire inside :meth:`poll`, on the calling thread::

        ws = WebSocket()
        ws.on_text_message = lambda event: print(event.text)
        ws.connect("ws://127.0.0.1:8765/room/lobby")
        while running:
            ws.poll()
            ...

    Args:
        compression: ``"deflate"`` offers permessage-deflate (as browsers
            do); ``None`` turns it off.
        max_message_size: the largest message accepted from the server, in
            bytes; a larger one fails the connection with 1009. ``None``
            removes the limit.
        max_queue: how many received events may wait for the application
            before wsloop stops reading from the socket (TCP flow control
            then slows the server); ``None``: no limit.
        max_buffered_amount: while more than this many bytes wait to be
            written, ``send_*`` refuse new messages (return ``False``, with a
            warning in the log) instead of growing without bound; ``None``:
            no limit.
        connect_timeout: seconds for the name lookup, TCP, the proxy
            handshake, TLS and the WebSocket handshake together; ``None``
            waits forever.
        close_timeout: seconds to wait for the server to finish the closing
            handshake; ``None`` waits forever.
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
        driver: where the I/O runs: ``"poll"`` (the default on the desktop:
            inside :meth:`poll`), ``"thread"`` (a background thread), or a
            :class:`~wsloop.drivers.base.BaseDriver` subclass.
        deliver: with ``driver="thread"``, where handlers run: ``"thread"``
            (the I/O thread, the default) or ``"caller"`` (queued until
            :meth:`poll` runs them on the calling thread).
    """

    on_reconnecting: Callable[[Reconnecting], object] | None
    """With ``reconnect`` on: called with :class:`Reconnecting` before each retry."""

    _driver: BaseDriver
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
        # I/O
        driver: str | type[BaseDriver] | None = None,
        deliver: str | None = None,
    ) -> None:
        config = config_from(locals())
        self._driver = _make_driver(driver, config, deliver)
        # Sends may come from any thread while the I/O thread flushes the outbox.
        super().__init__(config, binary_data, Lifecycle(reconnect, threading.Lock()))
        self._driver.dispatcher = self._dispatch
        self.on_reconnecting = None
        self._reconnect_at: float | None = None
        self._reconnect_timer: threading.Timer | None = None
        self._parsed_url: URL | None = None
        self._protocols: tuple[str, ...] = ()
        self._dispatching = False
        self._opened = False  # on_opened fired for the current connection

    # Actions.

    def connect(self, url: str, protocol: str | Sequence[str] | None = None) -> None:
        """Connect: start connecting to ``url``; return at once.

        Progress, and the ``on_opened`` or ``on_error`` + ``on_closed``
        triggers, happen in later :meth:`poll` calls. Calling it while a
        connection is active ends that one first (its ``on_closed`` fires
        before anything of the new one).

        Args:
            url: ``ws://`` or ``wss://`` (``http(s)://`` are taken as
                ``ws(s)://``).
            protocol: a required subprotocol, or several in order of
                preference. The connection fails unless the server selects one.

        Raises:
            ValueError: the URL or a subprotocol name is malformed.
        """
        parsed, protocols = self._target(url, protocol)
        if not self._cancel_reconnect() and self._active:
            # The connection being replaced still has its Closed to deliver:
            # its handlers fire, but it must not end the new connection.
            self._life.supersede()
        self._parsed_url = parsed
        self._protocols = protocols
        self._opened = False
        self._begin(url)
        try:
            self._driver.connect(parsed, protocols)
        except BaseException:
            # e.g. InsecureWarning raised as an error: nothing was started.
            self._active = False
            raise

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: start closing the connection, whatever its state.

        ``on_closed`` fires from a later :meth:`poll` once the server answers
        (or ``close_timeout`` expires). While connecting, the attempt is
        abandoned (``on_error`` then ``on_closed`` with 1006, as in a
        browser). Does nothing when already closed.

        Raises:
            ValueError: ``code`` is not 1000 or 3000-4999, or ``reason`` is
                longer than 123 bytes in UTF-8.
        """
        self._life.close(code, reason)
        if self._cancel_reconnect():
            # Between two attempts: nothing is connected, the session ends here.
            self._active = False
        self._driver.close(code, reason)

    # The loop.

    def poll(self, timeout: float | None = 0.0) -> int:
        """Do pending I/O and fire the triggers it produced.

        Args:
            timeout: how long to wait for something to happen when nothing
                is pending, in seconds. ``0`` (the default) never blocks;
                ``None`` waits until something happens.

        Returns:
            The number of triggers fired.

        A handler's exception propagates out of ``poll()``; the events not yet
        dispatched stay queued for the next call. With the thread driver
        delivering on its own thread, ``poll()`` fires nothing: it raises what
        a handler raised there, if anything.
        """
        if self._dispatching:
            raise InvalidState("poll() called from inside an event handler")
        driver = self._driver
        if driver.delivers_itself:
            driver.raise_handler_error()
            if timeout:
                driver.wait_until(lambda: not self._active, timeout)
            return 0
        at = self._reconnect_at
        if at is not None:
            now = time.monotonic()
            if now >= at:
                self._start_retry()
            elif timeout is None or now + timeout > at:
                timeout = at - now
        if not driver.events:
            driver.poll(timeout)
            if not driver.events:
                return 0  # the common case in a game loop: nothing happened
        return self._dispatch_pending()

    def _dispatch_pending(self) -> int:
        events = self._driver.events
        count = 0
        # Internal flags bypass the handler-checking __setattr__ (hot path).
        object.__setattr__(self, "_dispatching", True)
        try:
            while events:
                self._dispatch(events.pop(0))
                count += 1
        finally:
            object.__setattr__(self, "_dispatching", False)
            if count:
                self._driver.events_taken()
        return count

    def _dispatch(self, event: Event) -> None:
        cls = type(event)
        if cls is Reconnecting:
            if self.on_reconnecting is not None:
                self.on_reconnecting(event)  # type: ignore[arg-type]
            return
        life = self._life
        if life.superseded and life.is_superseded(event):
            # A replaced connection ends: its handlers fire, but it leaves the
            # expressions (and the liveness) of the new connection alone.
            handler = self.on_error if cls is Error else self.on_closed
            if handler is not None:
                handler(event)  # type: ignore[arg-type]
            return
        if life.user_closed and life.drops(event):
            # "No more messages ... will be received after closing": what was
            # already read when the application called close() is dropped.
            return
        handler = self._apply(event)
        if cls is Opened:
            self._opened = True
            life.opened(self._driver)
        elif cls is Error:
            life.error(event)  # type: ignore[arg-type]
        elif cls is Closed:
            delay = life.closed(event)  # type: ignore[arg-type]
            if delay is not None:
                self._opened = False  # wait_open() now waits for the retry
                self._schedule_retry(delay)
                if handler is not None:
                    handler(event)
                if self.is_reconnecting:  # on_closed may have called close() or connect()
                    self._dispatch(Reconnecting(life.attempt, delay))
                return
            # A connect() from the handler starts the next connection.
            life.end()
        if handler is not None:
            handler(event)

    # Reconnection timers: a threading.Timer when the driver delivers on its
    # own thread, else a deadline checked by poll().

    def _schedule_retry(self, delay: float) -> None:
        if self._driver.delivers_itself:
            timer = threading.Timer(delay, self._start_retry)
            timer.daemon = True
            self._reconnect_timer = timer
            timer.start()
        else:
            self._reconnect_at = time.monotonic() + delay

    def _cancel_reconnect(self) -> bool:
        """Cancel a pending retry; return whether one was pending."""
        pending = self._reconnect_at is not None or self._reconnect_timer is not None
        self._reconnect_at = None
        timer, self._reconnect_timer = self._reconnect_timer, None
        if timer is not None:
            timer.cancel()
        return pending

    def _start_retry(self) -> None:
        self._reconnect_at = None
        self._reconnect_timer = None
        if self._life.user_closed or self._parsed_url is None:
            return
        self._driver.connect(self._parsed_url, self._protocols)

    def wait_open(self, timeout: float | None = None) -> bool:
        """Poll until ``on_opened`` has fired (True) or the attempt ended (False).

        True means the connection opened, even if it has closed again by the
        time this returns (with the thread driver, handlers may run that far
        before the waiting thread looks). For scripts and tests; a game loop
        calls :meth:`poll` instead.
        """
        return self._wait(until_open=True, timeout=timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Poll until ``on_closed`` has fired; False if ``timeout`` expired first."""
        return self._wait(until_open=False, timeout=timeout)

    def run_forever(self) -> None:
        """Poll, blocking, until the current connection is closed.

        The triggers fire as usual; call :meth:`close` from one to stop.
        """
        self._wait(until_open=False, timeout=None)

    def _wait(self, *, until_open: bool, timeout: float | None) -> bool:
        def done() -> bool:
            return not self._active or (until_open and self._opened)

        end = None if timeout is None else time.monotonic() + timeout
        driver = self._driver
        if not driver.can_block and not done():
            raise InvalidState(
                "cannot wait in a browser: events arrive only when Python returns to the "
                "JavaScript event loop. Call poll() once per frame, or use AsyncWebSocket"
            )
        while not done():
            wait = None
            if end is not None:
                wait = end - time.monotonic()
                if wait <= 0:
                    break
            if driver.delivers_itself:
                driver.wait_until(done, wait)
            else:
                self.poll(wait)
        if until_open:
            return self._opened
        if not self._active and driver.delivers_itself:
            # The I/O thread ends right after delivering on_closed.
            join = getattr(driver, "join", None)
            if join is not None:
                join(1.0)
        return not self._active

    # Conditions and expressions beyond the shared ones.

    @property
    def is_reconnecting(self) -> bool:
        """True while waiting to retry a dropped connection (``reconnect`` on)."""
        return self._reconnect_at is not None or self._reconnect_timer is not None

    @property
    def driver(self) -> BaseDriver:
        """The driver doing the I/O."""
        return self._driver

    def timeout(self) -> float | None:
        """Seconds until :meth:`poll` must be called even if the socket stays quiet.

        For loops that watch :meth:`fileno` instead of polling every frame (a
        Tk file handler, a Qt ``QSocketNotifier``, ``selectors``): call
        :meth:`poll` when the socket is readable (writable too while
        :attr:`wants_write`), or when this many seconds have passed. Timers
        live here: keepalive pings, the connect and close timeouts, the
        reconnect delay. ``0`` means now; ``None`` means only on socket activity.
        """
        timeout = self._driver.timeout()
        at = self._reconnect_at
        if at is not None:
            left = max(0.0, at - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    @property
    def wants_write(self) -> bool:
        """True while buffered data or a TCP connect waits for the socket to be writable."""
        return self._driver.wants_write

    def fileno(self) -> int:
        """The socket's file descriptor for a GUI loop to watch, -1 if none.

        It changes with each ``connect()``.
        """
        return self._driver.fileno()

    # Context manager: closing on exit.

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.is_closed:
            self.close()
            if not self._driver.can_block:
                return  # the browser finishes the close; on_closed fires in a later poll()
            self.wait_closed(timeout=(self._config.close_timeout or 5.0) + 1.0)
