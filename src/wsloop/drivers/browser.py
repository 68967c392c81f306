"""The browser driver: the page's JavaScript ``WebSocket`` behind the façade.

In a browser (Pyodide, or pygbag for pygame games) Python has no sockets: the
browser speaks the WebSocket protocol itself. This driver skips the sans-I/O
core and maps the JavaScript object's ``open``, ``message``, ``error`` and
``close`` events straight to :mod:`wsloop.events`, keeping their ordering
contract. :func:`wsloop.WebSocket` picks it when ``sys.platform ==
"emscripten"``.

Its parts: this module has :class:`BrowserDriver`, what the application
calls (``connect()``, ``send_*``, ``close()``, ``poll()``) and the options
it refuses; :mod:`wsloop.drivers._browser_events` what JavaScript calls back
(the listeners, the deadlines, the one place a connection ends, with the
theory of operation); :mod:`wsloop.drivers._js` the Pyodide and pygbag
runtimes that everything crossing into JavaScript goes through.

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
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from .._sansio.sendlimit import SendLimit
from ..exceptions import ConnectError, InvalidState
from ..sansio import State
from ._browser_events import _Connection, _ConnectionEvents
from ._js import _detect_runtime, _Runtime, is_available
from .base import AsyncBaseDriver, BaseDriver, Config

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._url import URL
    from ..events import Event

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


class BrowserDriver(_ConnectionEvents, BaseDriver, AsyncBaseDriver):
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

    # Emulated limits.

    def _send_buffer_full(self, conn: _Connection) -> bool:
        limit = self._send_limit
        # Reading bufferedAmount is a call into JavaScript: not without a limit.
        return limit.limit is not None and limit.full(int(conn.sock.bufferedAmount))

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
