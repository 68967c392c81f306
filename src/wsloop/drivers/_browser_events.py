"""The JavaScript side of the browser driver: one connection's events, and its one end.

:class:`~wsloop.drivers.browser.BrowserDriver` takes the application's calls
(``connect()``, ``send_*``, ``close()``, ``poll()``); this module holds what
JavaScript calls back, and what follows from it: the listeners, the emulated
deadlines, and the end of a connection. :class:`_ConnectionEvents` is the
driver's mixin for those methods.

Theory of operation
-------------------
Each ``connect()`` makes one :class:`_Connection`: the JavaScript WebSocket
(``binaryType = "arraybuffer"``), the four listeners given to it, and the
deadlines this driver emulates. JavaScript calls a listener only while Python
is not running (between two frames of a game loop, or at an ``await``); the
listener turns the JavaScript event into a wsloop event and queues it in
:attr:`BrowserDriver.events` for ``WebSocket.poll()`` to dispatch, or hands
it to the ``deliver`` callback of an asyncio façade at once.

A connection ends in exactly one place, :meth:`_ConnectionEvents._finish`: its
close event, an expired timeout, ``close()`` while connecting, or a new
``connect()``. That removes the listeners and destroys their proxies *before*
the :class:`~wsloop.Closed` event is queued, so a late JavaScript event
reaches nothing and no proxy outlives its connection.

Deadlines (``connect_timeout``, ``close_timeout``) are numbers on the
connection: ``poll()`` checks them, and with an asyncio façade a loop timer
(:meth:`_ConnectionEvents._arm`) checks them without ``poll()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..events import BinaryMessage, Closed, Error, Event, Opened, TextMessage
from ..exceptions import (
    ConnectError,
    ConnectionClosedError,
    MessageTooBig,
    NegotiationError,
    TimeoutError,
    WebSocketError,
)
from ..sansio import State

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._url import URL
    from ._js import _Runtime
    from .base import Config

logger = logging.getLogger("wsloop.client")


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


class _ConnectionEvents:
    """What JavaScript calls on :class:`~wsloop.drivers.browser.BrowserDriver`, and what follows.

    The listeners of the current connection, the end of a connection (the
    one place, :meth:`_end`), the queueing or delivery of events, and the
    emulated deadlines. A mixin: ``BrowserDriver.__init__`` sets the
    attributes below, and ``BrowserDriver._js()`` finds the runtime.
    """

    config: Config
    events: list[Event]
    _deliver: Callable[[list[Event]], None] | None
    _wake: Callable[[], None] | None
    _reading_paused: bool
    _held: list[Event]

    if TYPE_CHECKING:

        def _js(self) -> _Runtime: ...

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

    # Emulated deadlines.

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
