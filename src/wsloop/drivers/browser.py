"""The browser driver: the page's JavaScript ``WebSocket`` behind the façade.

In a browser (Pyodide, or pygbag for pygame games) Python has no sockets: the
browser speaks the WebSocket protocol itself. This driver skips the sans-I/O
core and maps the JavaScript object's ``open``, ``message``, ``error`` and
``close`` events straight to :mod:`wsloop.events`, keeping their ordering
contract. :func:`wsloop.WebSocket` picks it when ``sys.platform ==
"emscripten"``.

Theory of operation
-------------------
Each ``connect()`` makes one :class:`_Connection`: the JavaScript WebSocket
(``binaryType = "arraybuffer"``), the four listeners given to it, and the
deadlines this driver emulates. JavaScript calls a listener only while Python
is not running (between two frames of a game loop, or at an ``await``); the
listener turns the JavaScript event into a wsloop event and queues it in
:attr:`BrowserDriver.events` for ``WebSocket.poll()`` to dispatch, or hands
it to the ``deliver`` callback of an asyncio façade at once.

A connection ends in exactly one place, :meth:`BrowserDriver._finish`: its
close event, an expired timeout, ``close()`` while connecting, or a new
``connect()``. That removes the listeners and destroys their proxies *before*
the :class:`~wsloop.Closed` event is queued, so a late JavaScript event
reaches nothing and no proxy outlives its connection.

Nothing can wait in a browser. JavaScript runs the listeners only after
Python returns to the event loop, so a Python call that blocked would wait
forever for events that cannot arrive. ``poll(timeout)`` therefore never
blocks: it checks the emulated deadlines and returns. Call ``ws.poll()``
once per frame, or use ``AsyncWebSocket``.

What the browser decides, and what this driver emulates:

* The browser fails the connection itself when the server selects none of
  the requested subprotocols, when the handshake is refused, and when the
  server cannot be reached; it says nothing about which. The Error event
  says what is known.
* ``connect_timeout``, ``close_timeout``, ``max_message_size`` and
  ``max_buffered_amount`` are emulated here (deadlines checked by
  ``poll()`` or by loop timers; sizes checked per message).
* Options the browser cannot honour (extra headers, ``origin``,
  ``user_agent``, TLS settings, ``compression=None``, keepalive and queue
  settings other than their defaults, credentials in the URL) are refused
  by ``connect()`` with a :class:`ValueError` naming each one.

Runtimes: :mod:`wsloop.drivers._js` (Pyodide and pygbag), which everything
crossing into JavaScript goes through.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from .._sansio.sendlimit import SendLimit
from ..events import BinaryMessage, Closed, Error, Event, Opened, TextMessage
from ..exceptions import (
    ConnectError,
    ConnectionClosedError,
    InvalidState,
    MessageTooBig,
    NegotiationError,
    TimeoutError,
    WebSocketError,
)
from ..sansio import State
from ._js import _detect_runtime, _Runtime, is_available
from .base import AsyncBaseDriver, BaseDriver, Config

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._url import URL

__all__ = ["WRITE_LIMIT", "BrowserDriver", "is_available"]

logger = logging.getLogger("wsloop.client")

WRITE_LIMIT = 64 * 1024
"""Bytes in ``bufferedAmount`` above which :attr:`BrowserDriver.writing_paused` is true."""

_DRAIN_CHECK = 0.02
"""Seconds between looks at ``bufferedAmount`` while writing is paused (no event tells)."""

_DEFAULTS = Config()

_EMULATED = frozenset(
    {"connect_timeout", "close_timeout", "max_message_size", "max_buffered_amount"}
)
"""Options this driver honours itself; every other one must be left as the browser does it."""

_ALSO_ACCEPTED: dict[str, tuple[object, ...]] = {
    # "Disabled" is what the browser does anyway.
    "ping_interval": (None,),
    "ping_timeout": (None,),
    "max_queue": (None,),
    # The platform's proxy settings (in a browser, the browser's) or none:
    # which one is the browser's choice, not a URL it could be told to use.
    "proxy": (True, False, ""),
}

_WHY: dict[str, str] = {
    "headers": "the browser sends its own handshake headers; pass data in the URL instead",
    "origin": "the browser sends the page's origin",
    "user_agent": "the browser sends its own User-Agent",
    "compression": "the browser always offers permessage-deflate",
    "ping_interval": "the browser sends no pings (it answers the server's)",
    "ping_timeout": "the browser sends no pings (it answers the server's)",
    "max_queue": "the browser reads every message at once; it has no flow control",
    "proxy": "the browser uses its own proxy settings",
    "ssl": "the browser verifies TLS with its own trust store",
    "cafile": "the browser verifies TLS with its own trust store",
    "certfile": "the browser picks client certificates itself",
    "keyfile": "the browser picks client certificates itself",
    "insecure": "the browser always verifies certificates",
}


def _refused_options(config: Config) -> list[str]:
    """Each option set to something the browser cannot do, with the reason.

    An option left at its default means "what the browser does"
    (docs/browser.md lists those differences). Options added to
    :class:`Config` later are refused unless left at their default: never
    silently ignored.
    """
    found = []
    for field in dataclasses.fields(config):
        name = field.name
        if name in _EMULATED:
            continue
        value = getattr(config, name)
        if value == getattr(_DEFAULTS, name) or value in _ALSO_ACCEPTED.get(name, ()):
            continue
        why = _WHY.get(name, "the browser driver cannot honour it")
        found.append(f"{name}={value!r} ({why})")
    return found


# The driver.


def _extension_names(header: str) -> tuple[str, ...]:
    names = []
    for item in header.split(","):
        name = item.split(";", 1)[0].strip()
        if name:
            names.append(name)
    return tuple(names)


class _Connection:
    """One ``connect()``: the JavaScript WebSocket, its listeners, its deadlines."""

    def __init__(self, url: URL, protocols: tuple[str, ...]) -> None:
        self.url = url
        self.text_url = url.ws_url
        self.protocols = protocols
        self.sock: Any = None
        self.listeners: list[Any] = []
        self.state = State.CONNECTING
        self.opened = False
        self.protocol: str | None = None
        """The subprotocol the server selected, once open."""
        self.js_error = False
        """The JavaScript ``error`` event fired (the browser failed the connection)."""
        self.failure: tuple[int, str] | None = None
        """Code and reason when this driver failed the connection (1009)."""
        self.sent: tuple[int, str] | None = None
        """Code and reason of the close this side started."""
        self.connect_deadline: float | None = None
        self.close_deadline: float | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.done = False


class BrowserDriver(BaseDriver, AsyncBaseDriver):
    """Runs a connection on the browser's JavaScript ``WebSocket``.

    Both a :class:`~wsloop.drivers.base.BaseDriver` (for ``WebSocket``) and an
    :class:`~wsloop.drivers.base.AsyncBaseDriver` (for ``AsyncWebSocket``,
    when made with ``deliver``).

    Args:
        config: the options of the WebSocket; those the browser cannot honour
            are refused by :meth:`connect`.
        deliver: for an asyncio façade: called with each new batch of events
            from the JavaScript listeners, instead of queueing them in
            :attr:`events` for ``poll()``.
        wake: for an asyncio façade: called when :attr:`writing_paused`
            turns false or the connection ends.

    ``poll(timeout)`` never blocks (see the module docstring); with
    ``timeout=None``, which would wait forever, it raises
    :class:`~wsloop.InvalidState`.
    """

    runtime_name: str | None = None
    """``"pyodide"`` or ``"pygbag"`` to force a runtime; ``None`` detects it."""

    can_block = False
    """A browser cannot wait: nothing may block the JavaScript event loop."""

    def __init__(
        self,
        config: Config,
        deliver: Callable[[list[Event]], None] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._deliver = deliver
        self._wake = wake
        self._conn: _Connection | None = None
        self._runtime: _Runtime | None = None
        self._reading_paused = False
        self._held: list[Event] = []
        self._drain_timer: asyncio.TimerHandle | None = None
        self._send_limit = SendLimit(config.max_buffered_amount)
        self._warned_ping = False

    # What the façade reads.

    @property
    def state(self) -> State | None:
        conn = self._conn
        return None if conn is None else conn.state

    @property
    def subprotocol(self) -> str | None:
        conn = self._conn
        return None if conn is None else conn.protocol

    @property
    def buffered_amount(self) -> int:
        conn = self._conn
        if conn is None or conn.done or conn.sock is None:
            return 0
        return int(conn.sock.bufferedAmount)

    @property
    def phase(self) -> str:
        """``"ws"`` while a connection is active (the browser does every step), else ``"idle"``."""
        conn = self._conn
        return "idle" if conn is None or conn.done else "ws"

    @property
    def writing_paused(self) -> bool:
        """True while more than :data:`WRITE_LIMIT` bytes wait in ``bufferedAmount``."""
        conn = self._conn
        return conn is not None and conn.state is State.OPEN and self.buffered_amount > WRITE_LIMIT

    @property
    def reading_paused(self) -> bool:
        """True between :meth:`pause_reading` and :meth:`resume_reading` (or a new connect)."""
        return self._reading_paused

    @property
    def runtime(self) -> str | None:
        """``"pyodide"`` or ``"pygbag"`` once known, else ``None``."""
        runtime = self._runtime or _detect_runtime(self.runtime_name)
        return None if runtime is None else runtime.name

    def _js(self) -> _Runtime:
        runtime = self._runtime
        if runtime is None:
            runtime = _detect_runtime(self.runtime_name)
            if runtime is None or runtime.websocket_class() is None:
                raise InvalidState(
                    "the browser driver needs a JavaScript WebSocket (Pyodide or pygbag "
                    "in a page, a worker, or Node.js 22+); none is here"
                )
            self._runtime = runtime
        return runtime

    # Actions.

    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        refused = _refused_options(self.config)
        if url.user_info is not None:
            refused.append(
                "a user name and password in the URL (browsers do not send them "
                "with a WebSocket handshake; pass a token in the query string)"
            )
        if refused:
            raise ValueError(
                "the browser cannot honour these options, so the browser driver refuses them: "
                + "; ".join(refused)
            )
        runtime = self._js()
        old = self._conn
        if old is not None and not old.done:
            self._abort(old)
        self._flush_held()
        self._reading_paused = False
        self._send_limit = SendLimit(self.config.max_buffered_amount)
        conn = _Connection(url, subprotocols)
        self._conn = conn
        timeout = self.config.connect_timeout
        if timeout is not None:
            conn.connect_deadline = time.monotonic() + timeout
            self._arm(conn, timeout)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("= connecting to %s (browser WebSocket)", conn.text_url)
        try:
            sock = runtime.new_websocket(conn.text_url, subprotocols)
        except Exception as exc:
            # SyntaxError for a URL the browser rejects, SecurityError for ws://
            # from an https:// page (mixed content) or a blocked port.
            error = ConnectError(
                f"the browser refused to open {conn.text_url}: {runtime.error_text(exc)}"
            )
            error.__cause__ = exc
            self._end(conn, error, 1006, "")
            return
        sock.binaryType = "arraybuffer"
        conn.sock = sock
        conn.listeners = runtime.listen(
            sock,
            {
                "open": lambda event: self._on_open(conn, event),
                "message": lambda event: self._on_message(conn, event),
                "error": lambda event: self._on_error(conn, event),
                "close": lambda event: self._on_close(conn, event),
            },
        )

    def send_text(self, text: str) -> bool:
        conn = self._conn
        if conn is None or conn.state is not State.OPEN or self._send_buffer_full(conn):
            return False
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> TEXT %d chars", len(text))
        conn.sock.send(text)
        self._watch_drain(conn)
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        conn = self._conn
        if conn is None or conn.state is not State.OPEN or self._send_buffer_full(conn):
            return False
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B" or not view.c_contiguous:
            view = memoryview(view.tobytes())
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> BINARY %d bytes", len(view))
        self._js().send_bytes(conn.sock, view)
        self._watch_drain(conn)
        return True

    def send_ping(self, data: bytes = b"") -> bool:
        """Browsers have no API to send a ping: always ``False``.

        They answer the server's pings by themselves, which is what keeps a
        connection alive behind proxies.
        """
        if not self._warned_ping:
            self._warned_ping = True
            logger.info("ping() does nothing in a browser: JavaScript cannot send pings")
        return False

    def close(self, code: int, reason: str) -> None:
        conn = self._conn
        if conn is None or conn.done:
            return
        if conn.state is State.CONNECTING:
            # As the native drivers do (and a browser would, less promptly).
            self._end(
                conn,
                InvalidState("the connection was closed before it was established"),
                1006,
                "",
                close_socket=True,
            )
        elif conn.state is State.OPEN:
            self._start_close(conn, code, reason)

    def poll(self, timeout: float | None) -> None:
        """Check the emulated deadlines; never wait (see the module docstring).

        Raises:
            InvalidState: ``timeout`` is ``None`` and nothing is queued: that
                would wait forever, since events cannot arrive while Python runs.
        """
        conn = self._conn
        if conn is not None and not conn.done:
            self._check_deadlines(conn)
        if timeout is None and not self.events:
            raise InvalidState(
                "cannot wait in a browser: JavaScript delivers events only after Python "
                "returns to the event loop. Call poll() once per frame (or await "
                "asyncio.sleep() between polls), or use AsyncWebSocket"
            )

    # For an asyncio façade.

    def pause_reading(self) -> None:
        """Hold new events until :meth:`resume_reading` (the browser itself keeps reading)."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Deliver the events held since :meth:`pause_reading`, and new ones again."""
        self._reading_paused = False
        self._flush_held()

    # JavaScript listeners.

    def _on_open(self, conn: _Connection, event: Any) -> None:
        if conn.done or conn.state is not State.CONNECTING:
            return
        protocol, extensions = self._js().open_info(conn.sock)
        conn.connect_deadline = None
        if conn.protocols and protocol not in conn.protocols:
            # Browsers fail such a connection before "open"; this is a safety net.
            why = (
                f"server selected subprotocol {protocol!r}" if protocol else "server selected none"
            )
            self._fail(
                conn,
                NegotiationError(
                    f"{why}; requested {', '.join(conn.protocols)} (closing the connection)"
                ),
                1006,
                "",
            )
            return
        conn.state = State.OPEN
        conn.opened = True
        conn.protocol = protocol or None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("= open, subprotocol %r, extensions %r", protocol, extensions)
        self._emit(Opened(protocol or None, _extension_names(extensions), {}))

    def _on_message(self, conn: _Connection, event: Any) -> None:
        if conn.done or conn.failure is not None or not conn.opened:
            return
        runtime = self._js()
        data = event.data
        limit = self.config.max_message_size
        # JavaScript's length of a string counts UTF-16 units: at least one and
        # at most three UTF-8 bytes each. Too big at that count is too big.
        if limit is not None and runtime.message_size(data) > limit:
            self._too_big(conn, limit)
            return
        payload = runtime.message_data(data)
        if (
            limit is not None
            and isinstance(payload, str)
            and 3 * len(payload) > limit
            and len(payload.encode("utf-8", "surrogatepass")) > limit
        ):
            self._too_big(conn, limit)
            return
        if isinstance(payload, str):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("< TEXT %d chars", len(payload))
            self._emit(TextMessage(payload))
        else:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("< BINARY %d bytes", len(payload))
            self._emit(BinaryMessage(payload))

    def _too_big(self, conn: _Connection, limit: int) -> None:
        error = MessageTooBig(
            f"message too big: the server sent more than max_message_size={limit} bytes "
            "(closing the connection)"
        )
        self._fail(conn, error, 1009, "message too big")

    def _on_error(self, conn: _Connection, event: Any) -> None:
        # The browser failed the connection. Its close event would follow with
        # 1006 (Node.js 20 never sends it for a failed handshake): end here.
        if conn.done:
            return
        conn.js_error = True
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("< error event (the browser failed the connection)")
        if conn.failure is not None:
            code, reason = conn.failure
            self._end(conn, None, code, reason, close_socket=True)
        else:
            self._end(conn, self._describe_failure(conn, 1006), 1006, "", close_socket=True)

    def _on_close(self, conn: _Connection, event: Any) -> None:
        if conn.done:
            return
        code, reason, clean = self._js().close_info(event)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("< close %d %r, clean: %s", code, reason, clean)
        if conn.failure is not None:
            # This side failed the connection; its Error is out already.
            code, reason = conn.failure
            self._end(conn, None, code, reason)
        elif clean and not conn.js_error:
            self._end(conn, None, code, reason, clean=True)
        else:
            self._end(conn, self._describe_failure(conn, code), code, reason)

    def _describe_failure(self, conn: _Connection, code: int) -> WebSocketError:
        url = conn.text_url
        if not conn.opened:
            text = (
                f"could not connect to {url}: the browser gives no reason; check that a "
                "server is running there and that the URL is right"
            )
            if conn.protocols:
                text += (
                    f", and that the server selects one of the requested subprotocols "
                    f"({', '.join(conn.protocols)})"
                )
            return ConnectError(text)
        if conn.sent is not None:
            return ConnectionClosedError(
                code,
                f"the closing handshake with {url} did not complete (the browser gives no reason)",
            )
        return ConnectionClosedError(
            code,
            f"the connection to {url} was lost without a closing handshake "
            "(the browser gives no reason)",
        )

    # Ending a connection.

    def _start_close(self, conn: _Connection, code: int, reason: str) -> None:
        conn.state = State.CLOSING
        conn.sent = (code, reason)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> close %d %r", code, reason)
        conn.sock.close(code, reason)
        timeout = self.config.close_timeout
        if timeout is not None:
            conn.close_deadline = time.monotonic() + timeout
            self._arm(conn, timeout)

    def _fail(self, conn: _Connection, exc: WebSocketError, code: int, reason: str) -> None:
        """This side fails the connection: Error now, Closed once the browser has closed.

        Browsers may only send 1000 or 3000-4999, so the server sees 1000 and
        ``reason``; the application sees ``code`` (1009 for a message too big),
        as with the native drivers.
        """
        conn.failure = (code, reason)
        self._emit_error(exc)
        if conn.state is State.OPEN:
            self._start_close(conn, 1000, reason)
        else:
            self._end(conn, None, code, reason, close_socket=True)

    def _abort(self, conn: _Connection) -> None:
        """A new ``connect()`` ends ``conn``, as the native drivers do."""
        if conn.state is State.OPEN:
            conn.sent = (1000, "")
        code, reason = conn.sent or (1006, "")
        self._end(
            conn,
            ConnectionClosedError(1006, "connection aborted"),
            code,
            reason,
            close_socket=True,
        )

    def _end(
        self,
        conn: _Connection,
        exc: WebSocketError | None,
        code: int,
        reason: str,
        *,
        clean: bool = False,
        close_socket: bool = False,
    ) -> None:
        """The one place a connection ends: Error (if any), then exactly one Closed."""
        if conn.done:
            return
        self._finish(conn, close_socket=close_socket)
        if exc is not None:
            self._emit_error(exc)
        self._emit(Closed(code, reason, clean))
        if self._wake is not None:
            self._wake()

    def _finish(self, conn: _Connection, *, close_socket: bool) -> None:
        conn.done = True
        conn.state = State.CLOSED
        conn.connect_deadline = conn.close_deadline = None
        for timer in conn.timers:
            timer.cancel()
        conn.timers.clear()
        sock = conn.sock
        if sock is None:
            return
        listeners, conn.listeners = conn.listeners, []
        runtime = self._js()
        runtime.unlisten(sock, listeners)
        if close_socket:
            try:
                if conn.sent is not None and int(sock.readyState) == 1:
                    sock.close(*conn.sent)
                else:
                    sock.close()
            except Exception as exc:  # closing is best effort; the listeners are gone
                logger.debug("closing the JavaScript WebSocket failed: %s", exc)

    def _emit_error(self, exc: WebSocketError) -> None:
        text = str(exc)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("! error: %s", text)
        self._emit(Error(text, exc))

    def _emit(self, event: Event) -> None:
        deliver = self._deliver
        if deliver is None:
            self.events.append(event)
        elif self._reading_paused:
            self._held.append(event)
        else:
            deliver([event])

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        if held and self._deliver is not None:
            self._deliver(held)

    # Emulated limits and deadlines.

    def _send_buffer_full(self, conn: _Connection) -> bool:
        limit = self._send_limit
        # Reading bufferedAmount is a call into JavaScript: not without a limit.
        return limit.limit is not None and limit.full(int(conn.sock.bufferedAmount))

    def _arm(self, conn: _Connection, seconds: float) -> None:
        """Make a deadline fire without ``poll()`` when an asyncio façade drives us."""
        if self._deliver is None:
            return  # poll() checks the deadlines
        loop = asyncio.get_event_loop()
        conn.timers.append(loop.call_later(seconds, self._on_timer, conn))

    def _on_timer(self, conn: _Connection) -> None:
        self._check_deadlines(conn)
        if conn.done:
            return
        # A JavaScript timer may fire a little before time.monotonic() agrees.
        now = time.monotonic()
        left = [d - now for d in (conn.connect_deadline, conn.close_deadline) if d is not None]
        if left:
            self._arm(conn, max(0.0, min(left)) + 0.002)

    def _check_deadlines(self, conn: _Connection) -> None:
        if conn.done:
            return
        now = time.monotonic()
        if conn.connect_deadline is not None and now >= conn.connect_deadline:
            seconds = self.config.connect_timeout or 0.0
            self._end(conn, TimeoutError("connect", seconds), 1006, "", close_socket=True)
        elif conn.close_deadline is not None and now >= conn.close_deadline:
            seconds = self.config.close_timeout or 0.0
            code, reason = conn.failure or conn.sent or (1006, "")
            # The browser goes on closing by itself; nothing of it reaches us now.
            self._end(conn, TimeoutError("closing handshake", seconds), code, reason)

    def _watch_drain(self, conn: _Connection) -> None:
        """Wake an asyncio façade when ``bufferedAmount`` falls back under the limit."""
        if self._wake is None or self._drain_timer is not None or not self.writing_paused:
            return
        loop = asyncio.get_event_loop()

        def check() -> None:
            self._drain_timer = None
            if self.writing_paused and not conn.done:
                self._drain_timer = loop.call_later(_DRAIN_CHECK, check)
            elif self._wake is not None:
                self._wake()

        self._drain_timer = loop.call_later(_DRAIN_CHECK, check)
