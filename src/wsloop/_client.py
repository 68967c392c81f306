"""The :class:`WebSocket` façade: the Construct WebSocket plugin, in Python.

The façade owns the handlers and the Construct-style expressions
(``close_code``, ``error_msg``...). The driver it is given owns the I/O; the
façade never touches a socket, so a browser driver can stand behind it.
"""

from __future__ import annotations

import os
import ssl as _ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ._binary import BinaryData
from ._engine import header_items
from ._reconnect import Outbox, Reconnect, ReconnectState
from ._url import URL, parse_url
from .drivers._proxy import parse_proxy
from .drivers.base import DEFAULT_USER_AGENT, BaseDriver, Config
from .events import BinaryMessage, Closed, Error, Event, Opened, Reconnecting, TextMessage
from .sansio import DEFAULT_MAX_MESSAGE_SIZE, State

__all__ = ["WebSocket", "is_supported", "validate_close"]

F = TypeVar("F", bound=Callable[..., Any])

_HANDLERS = (
    "on_opened",
    "on_closed",
    "on_error",
    "on_text_message",
    "on_binary_message",
    "on_reconnecting",
)


def is_supported() -> bool:
    """Is supported: whether this platform can make WebSocket connections.

    True where TCP sockets exist (and ``wss://`` needs :mod:`ssl`, which
    :func:`is_supported_secure` reports). In a browser it is true when the
    page has a JavaScript ``WebSocket``.
    """
    if sys.platform == "emscripten":
        try:
            import js  # type: ignore[import-not-found]
        except ImportError:
            return False
        return hasattr(js, "WebSocket")
    try:
        import socket
    except ImportError:  # pragma: no cover - every desktop Python has it
        return False
    return hasattr(socket, "socket")


def validate_close(code: int, reason: str) -> None:
    """Check a close code and reason the way the browser's ``close()`` does.

    Raises:
        ValueError: the code is not 1000 or in 3000-4999, or the reason is
            longer than 123 bytes in UTF-8.
    """
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"close code must be an int, not {type(code).__name__}")
    if not (code == 1000 or 3000 <= code <= 4999):
        raise ValueError(
            f"close code must be 1000 or in 3000-4999 (the range applications may use), not {code}"
        )
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
    size = len(reason.encode())
    if size > 123:
        raise ValueError(f"close reason must be at most 123 bytes in UTF-8, not {size}")


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
        raise ValueError(f"unknown driver {driver!r}; available: 'poll', 'thread'")
    if isinstance(driver, type) and issubclass(driver, BaseDriver):
        return driver(config)
    raise TypeError(f"driver must be a name or a BaseDriver subclass, not {driver!r}")


class WebSocket:
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
        connect_timeout: seconds for the name lookup, TCP, TLS and the
            WebSocket handshake together; ``None`` waits forever.
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
            :class:`Reconnect` retries a dropped connection with exponential
            backoff; ``on_reconnecting`` fires before each retry.
        driver: where the I/O runs: ``"poll"`` (the default on the desktop:
            inside :meth:`poll`), ``"thread"`` (a background thread), or a
            :class:`~wsloop.drivers.base.BaseDriver` subclass.
        deliver: with ``driver="thread"``, where handlers run: ``"thread"``
            (the I/O thread, the default) or ``"caller"`` (queued until
            :meth:`poll` runs them on the calling thread).
    """

    on_opened: Callable[[Opened], object] | None
    """On opened: called with :class:`Opened` once the connection is open."""
    on_closed: Callable[[Closed], object] | None
    """On closed: called with :class:`Closed`, exactly once per ``connect()``."""
    on_error: Callable[[Error], object] | None
    """On error: called with :class:`Error`; :class:`Closed` always follows."""
    on_text_message: Callable[[TextMessage], object] | None
    """On text message: called with :class:`TextMessage`."""
    on_binary_message: Callable[[BinaryMessage], object] | None
    """On binary message: called with :class:`BinaryMessage`."""
    on_reconnecting: Callable[[Reconnecting], object] | None
    """With ``reconnect`` on: called with :class:`Reconnecting` before each retry."""

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
        if compression not in ("deflate", None):
            raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")
        for name, limit in (
            ("max_message_size", max_message_size),
            ("max_queue", max_queue),
            ("max_buffered_amount", max_buffered_amount),
        ):
            if limit is not None and limit <= 0:
                raise ValueError(f"{name} must be positive or None")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("close_timeout", close_timeout),
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
            raise TypeError("ssl must be an ssl.SSLContext")
        if ssl is not None and (certfile or keyfile or insecure):
            raise ValueError(
                "give either ssl= or certfile=/keyfile=/insecure=, not both "
                "(set the client certificate or verification on the SSLContext)"
            )
        if keyfile and not certfile:
            raise ValueError("keyfile= needs certfile= (the certificate that goes with the key)")
        if isinstance(proxy, str):
            if proxy:
                parse_proxy(proxy)  # ValueError with the reason, password hidden
        elif proxy is not None and not isinstance(proxy, bool):
            raise TypeError(f"proxy must be a URL, None or a bool, not {type(proxy).__name__}")
        pairs = header_items(
            headers if headers is None or isinstance(headers, Mapping) else list(headers)
        )
        self._config = Config(
            compression=compression,
            max_message_size=max_message_size,
            origin=origin,
            headers=tuple(pairs),
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_queue=max_queue,
            max_buffered_amount=max_buffered_amount,
            ssl=ssl,
            cafile=cafile,
            certfile=None if certfile is None else os.fspath(certfile),
            keyfile=None if keyfile is None else os.fspath(keyfile),
            insecure=bool(insecure),
            proxy=proxy,
            user_agent=user_agent,
        )
        self._driver = _make_driver(driver, self._config, deliver)
        self._driver.dispatcher = self._dispatch
        self.binary_data = binary_data
        """The :class:`BinaryData` that binary messages are written into, or ``None``."""
        self.on_opened = None
        self.on_closed = None
        self.on_error = None
        self.on_text_message = None
        self.on_binary_message = None
        self.on_reconnecting = None
        if reconnect is True:
            reconnect = Reconnect()
        if (
            reconnect is not None
            and reconnect is not False
            and not isinstance(reconnect, Reconnect)
        ):
            raise TypeError("reconnect must be a bool or a wsloop.Reconnect")
        self._reconnect = ReconnectState(reconnect) if reconnect else None
        self._outbox = Outbox(reconnect.outbox) if reconnect and reconnect.outbox else None
        self._outbox_lock = threading.Lock()
        self._reconnect_at: float | None = None
        self._reconnect_timer: threading.Timer | None = None
        self._user_closed = False
        self._parsed_url: URL | None = None
        self._protocols: tuple[str, ...] = ()
        self._url = ""
        self._close_code = 0
        self._close_reason = ""
        self._error_msg = ""
        self._message_text = ""
        self._protocol = ""
        self._dispatching = False
        self._active = False  # between connect() and the dispatch of its Closed
        self._superseded = 0  # Closed events of replaced connections still to come
        self._opened = False  # on_opened fired for the current connection

    # Registration.

    def event(self, fn: F) -> F:
        """Decorator: register ``fn`` as the handler its name says.

        ::

            @ws.event
            def on_text_message(event): ...

        Raises:
            ValueError: the name is not one of the five handler names.
        """
        name = getattr(fn, "__name__", "")
        if name not in _HANDLERS:
            raise ValueError(
                f"unknown event handler name {name!r}; use one of: {', '.join(_HANDLERS)}"
            )
        setattr(self, name, fn)
        return fn

    def __setattr__(self, name: str, value: object) -> None:
        if name.startswith("on_") and name not in _HANDLERS:
            raise AttributeError(
                f"unknown event handler {name!r}; use one of: {', '.join(_HANDLERS)}"
            )
        if name in _HANDLERS and value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, not {value!r}")
        object.__setattr__(self, name, value)

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
        parsed = parse_url(url)
        if protocol is None:
            protocols: tuple[str, ...] = ()
        elif isinstance(protocol, str):
            protocols = (protocol,) if protocol else ()
        else:
            protocols = tuple(protocol)
        for name in protocols:
            if not isinstance(name, str) or not name or not _is_token(name):
                raise ValueError(f"invalid subprotocol name {name!r}: it must be an HTTP token")
        if len(set(protocols)) != len(protocols):
            raise ValueError(f"subprotocol names repeat: {protocols!r}")
        if not self._cancel_reconnect() and self._active:
            # The connection being replaced still has its Closed to deliver:
            # its handlers fire, but it must not end the new connection.
            self._superseded += 1
        if self._reconnect is not None:
            self._reconnect.attempt = 0
        self._user_closed = False
        self._parsed_url = parsed
        self._protocols = protocols
        self._url = url
        self._close_code = 0
        self._close_reason = ""
        self._error_msg = ""
        self._protocol = ""
        self._opened = False
        self._active = True
        try:
            self._driver.connect(parsed, protocols)
        except BaseException:
            # e.g. InsecureWarning raised as an error: nothing was started.
            self._active = False
            raise

    def send_text(self, text: str) -> bool:
        """Send text: send a text message if the connection is open.

        Returns:
            ``True`` if the message was accepted; ``False`` (and nothing is
            sent) when the connection is not open. Never blocks: what the
            network cannot take at once waits in :attr:`buffered_amount`.
        """
        if not isinstance(text, str):
            raise TypeError(f"send_text() takes a str, not {type(text).__name__}")
        if self._outbox is not None:
            return self._send_or_keep(text)
        return self._driver.send_text(text)

    def send_binary(self, data: bytes | bytearray | memoryview | BinaryData) -> bool:
        """Send binary: send a binary message if the connection is open.

        Args:
            data: bytes-like, or a :class:`BinaryData` (its whole contents).

        Returns:
            ``True`` if accepted, ``False`` when the connection is not open.
        """
        if isinstance(data, BinaryData):
            payload: bytes | bytearray | memoryview = bytes(data)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = data
        else:
            raise TypeError(
                f"send_binary() takes bytes, bytearray, memoryview or BinaryData, "
                f"not {type(data).__name__}"
            )
        if self._outbox is not None:
            return self._send_or_keep(bytes(payload))
        return self._driver.send_binary(payload)

    def _send_or_keep(self, message: str | bytes) -> bool:
        """With an outbox: send if open (after what waits), else keep it."""
        outbox = self._outbox
        assert outbox is not None
        with self._outbox_lock:
            if self._driver.state is State.OPEN:
                self._flush_outbox()
                if isinstance(message, str):
                    return self._driver.send_text(message)
                return self._driver.send_binary(message)
            if not self._active or self._user_closed:
                return False
            return outbox.put(message)

    def _flush_outbox(self) -> None:
        outbox = self._outbox
        if outbox is None or not len(outbox):
            return
        for item in outbox.take():
            if isinstance(item, str):
                self._driver.send_text(item)
            else:
                self._driver.send_binary(item)

    def ping(self, data: bytes = b"") -> bool:
        """Send a ping if the connection is open; return whether it was sent."""
        if len(data) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        return self._driver.send_ping(bytes(data))

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
        validate_close(code, reason)
        self._user_closed = True
        if self._outbox is not None:
            with self._outbox_lock:
                self._outbox.clear()
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
            raise RuntimeError("poll() called from inside an event handler")
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
                self._dispatch(events.popleft())
                count += 1
        finally:
            object.__setattr__(self, "_dispatching", False)
            if count:
                self._driver.events_taken()
        return count

    def _dispatch(self, event: Event) -> None:
        cls = type(event)
        if cls is TextMessage:
            self._message_text = event.text  # type: ignore[union-attr]
            handler: Callable[[Any], object] | None = self.on_text_message
        elif cls is BinaryMessage:
            if self.binary_data is not None:
                self.binary_data.set_from_bytes(event.data)  # type: ignore[union-attr]
            handler = self.on_binary_message
        elif cls is Opened:
            self._protocol = event.subprotocol or ""  # type: ignore[union-attr]
            self._opened = True
            if self._reconnect is not None:
                self._reconnect.opened()
                with self._outbox_lock:
                    self._flush_outbox()
            handler = self.on_opened
        elif cls is Error:
            if self._superseded:  # a replaced connection: leave the expressions alone
                if self.on_error is not None:
                    self.on_error(event)  # type: ignore[arg-type]
                return
            self._error_msg = event.message  # type: ignore[union-attr]
            if self._reconnect is not None:
                self._reconnect.error(event)  # type: ignore[arg-type]
            handler = self.on_error
        elif cls is Reconnecting:
            handler = self.on_reconnecting
        else:
            assert isinstance(event, Closed)
            if self._superseded:
                self._superseded -= 1
                if self.on_closed is not None:
                    self.on_closed(event)
                return
            self._close_code = event.code
            self._close_reason = event.reason
            delay = None
            if self._reconnect is not None:
                delay = self._reconnect.closed(event, user_closed=self._user_closed)
            if delay is None:
                # A connect() from the handler starts the next connection.
                self._active = False
                if self._outbox is not None:
                    with self._outbox_lock:
                        self._outbox.clear()
            handler = self.on_closed
            if delay is not None:
                assert self._reconnect is not None
                self._opened = False  # wait_open() now waits for the retry
                self._schedule_retry(delay)
                if handler is not None:
                    handler(event)
                self._dispatch(Reconnecting(self._reconnect.attempt, delay))
                return
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
        if self._user_closed or self._parsed_url is None:
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

    # Conditions.

    @property
    def is_connecting(self) -> bool:
        """Is connecting: true while the connection is being established."""
        return self._driver.state is State.CONNECTING

    @property
    def is_open(self) -> bool:
        """Is open: true while the connection is open for messages."""
        return self._driver.state is State.OPEN

    @property
    def is_reconnecting(self) -> bool:
        """True while waiting to retry a dropped connection (``reconnect`` on)."""
        return self._reconnect_at is not None or self._reconnect_timer is not None

    @property
    def is_closed(self) -> bool:
        """True before the first ``connect()`` and once ``on_closed`` has fired."""
        return not self._active

    @property
    def state(self) -> State | None:
        """The connection's :class:`~wsloop.State`; ``None`` before ``connect()``."""
        return self._driver.state

    # Expressions.

    @property
    def close_code(self) -> int:
        """CloseCode: the code of the last ``on_closed`` (0 before any)."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """CloseReason: the reason of the last ``on_closed``, possibly empty."""
        return self._close_reason

    @property
    def error_msg(self) -> str:
        """ErrorMsg: the message of the last ``on_error`` of this connection."""
        return self._error_msg

    @property
    def message_text(self) -> str:
        """MessageText: the text of the last text message."""
        return self._message_text

    @property
    def protocol(self) -> str:
        """The subprotocol the server selected, ``""`` if none."""
        return self._protocol

    @property
    def url(self) -> str:
        """The URL given to the last ``connect()``."""
        return self._url

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds (``None`` until one)."""
        return self._driver.latency

    @property
    def buffered_amount(self) -> int:
        """Bytes sent with ``send_*`` that still wait to be written."""
        return self._driver.buffered_amount

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
            self.wait_closed(timeout=(self._config.close_timeout or 5.0) + 1.0)

    def __repr__(self) -> str:
        state = self._driver.state
        name = "IDLE" if state is None else state.name
        return f"<WebSocket {name} {self._url!r}>"


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_token(name: str) -> bool:
    return all(c in _TOKEN_CHARS for c in name)
