"""What every driver provides to the façades, :class:`~wsloop.WebSocket` and its async twin.

A driver owns the I/O of one connection at a time: sockets (or the browser's
WebSocket), TLS, timers, and the queue of events on their way to the
application. The façade owns handlers and the Construct-style expressions; it
never touches a socket, so that a driver may have none.

Two contracts, after the sync/async transport pairs of HTTP clients:

:class:`BaseDriver`
    For :class:`~wsloop.WebSocket`: events wait in :attr:`BaseDriver.events`
    until the façade takes them, and ``poll()`` does the I/O (or waits for
    the driver's own thread). Implemented by the poll, thread and browser
    drivers.
:class:`AsyncBaseDriver`
    For :class:`~wsloop.AsyncWebSocket`: the I/O runs in the event loop's
    callbacks, which hand each batch of events to a ``deliver`` callback, and
    the façade applies backpressure with ``pause_reading()`` and
    ``writing_paused``. Implemented by the asyncio and browser drivers.

Both send without waiting: ``send_*`` returns whether the message was
accepted, and ``buffered_amount`` says how much waits for the network.
"""

from __future__ import annotations

import abc
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._version import __version__
from ..sansio import DEFAULT_MAX_MESSAGE_SIZE, State

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from .._url import URL
    from ..events import Event

__all__ = ["DEFAULT_USER_AGENT", "AsyncBaseDriver", "BaseDriver", "Config"]


DEFAULT_USER_AGENT = f"wsloop/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
"""The ``User-Agent`` header sent unless the ``user_agent`` option says otherwise."""


@dataclass(frozen=True, slots=True)
class Config:
    """The options of a WebSocket, as passed to its driver."""

    # Protocol
    compression: str | None = "deflate"
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    origin: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str | None = DEFAULT_USER_AGENT
    # Timeouts, in seconds; None disables
    connect_timeout: float | None = 10.0
    close_timeout: float | None = 5.0
    # Limits; None disables
    max_queue: int | None = 1024
    max_buffered_amount: int | None = 16 * 2**20
    # Keepalive, in seconds; None disables
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    # Proxy: a URL; None or True: from the environment; False or "": never
    proxy: str | bool | None = None
    # TLS
    ssl: ssl.SSLContext | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


class BaseDriver(abc.ABC):
    """The interface between the façade and the I/O.

    Drivers append events to :attr:`events` in order; the façade takes them
    from the left and dispatches them. A driver never calls a handler itself.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        """The options this driver was made with."""
        self.events: list[Event] = []
        """Events waiting to be dispatched, oldest first.

        A list, not a deque: an empty deque costs 0.7 KiB on every idle
        connection. The façade takes them with ``pop(0)``, one call, which is
        as safe as ``append()``/``extend()`` from another thread."""

    @property
    @abc.abstractmethod
    def state(self) -> State | None:
        """The state of the current connection; ``None`` before any ``connect()``."""

    @property
    @abc.abstractmethod
    def subprotocol(self) -> str | None:
        """The subprotocol of the current connection, once open."""

    @property
    @abc.abstractmethod
    def buffered_amount(self) -> int:
        """Bytes accepted by ``send_*`` but not yet written to the network."""

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds, if known."""
        return None

    @abc.abstractmethod
    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        """Start a connection; return at once. Ends any previous one first."""

    @abc.abstractmethod
    def send_text(self, text: str) -> bool:
        """Send a text message if open; return whether it was accepted."""

    @abc.abstractmethod
    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Send a binary message if open; return whether it was accepted."""

    @abc.abstractmethod
    def send_ping(self, data: bytes = b"") -> bool:
        """Send a ping if open; return whether it was accepted."""

    @abc.abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Start closing the current connection (already validated)."""

    @abc.abstractmethod
    def poll(self, timeout: float | None) -> None:
        """Do pending I/O; wait up to ``timeout`` seconds if there is none.

        ``None`` waits until something happens. Returns early as soon as
        events are queued.
        """

    def fileno(self) -> int:
        """The socket's file descriptor, or -1 when there is none."""
        return -1

    def timeout(self) -> float | None:
        """Seconds until ``poll()`` must run though the socket is quiet (0: now;
        ``None``: only when the socket is ready)."""
        return 0.0 if self.events else None

    @property
    def wants_write(self) -> bool:
        """True while a loop watching :meth:`fileno` should watch for writability."""
        return False

    # Drivers that run handlers themselves (on their own thread) override these.

    can_block = True
    """False where nothing may wait (a browser): ``wait_open()`` and friends refuse."""

    dispatcher: Callable[[Event], None] | None = None
    """Set by the façade: runs the handler of one event."""

    @property
    def delivers_itself(self) -> bool:
        """True when the driver calls :attr:`dispatcher` itself, off the caller's thread."""
        return False

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` holds after a delivery (drivers that deliver)."""
        raise NotImplementedError

    def events_taken(self) -> None:  # noqa: B027 - a no-op unless overridden
        """The façade took events from :attr:`events`: reading may resume."""

    def raise_handler_error(self) -> None:  # noqa: B027 - a no-op unless overridden
        """Raise an exception that a handler raised on another thread, if any."""


class AsyncBaseDriver(abc.ABC):
    """The interface between :class:`~wsloop.AsyncWebSocket` and the I/O, on an event loop.

    A concrete driver is made with ``(config, deliver, wake)``: ``deliver``
    is called, from the loop, with each batch of new events of the current
    connection, in order (it must not block, and may call
    :meth:`pause_reading`); ``wake``, if given, is called when
    :attr:`writing_paused` turns false or the connection ends. A driver never
    calls a handler itself.
    """

    config: Config
    """The options this driver was made with."""

    @property
    @abc.abstractmethod
    def state(self) -> State | None:
        """The state of the current connection; ``None`` before any ``connect()``."""

    @property
    @abc.abstractmethod
    def subprotocol(self) -> str | None:
        """The subprotocol of the current connection, once open."""

    @property
    @abc.abstractmethod
    def phase(self) -> str:
        """The step of the connection in progress; ``"idle"`` when there is no I/O."""

    @property
    @abc.abstractmethod
    def buffered_amount(self) -> int:
        """Bytes accepted by ``send_*`` but not yet written to the network."""

    @property
    @abc.abstractmethod
    def writing_paused(self) -> bool:
        """True while so much waits to be written that senders should wait for ``wake``."""

    @property
    @abc.abstractmethod
    def reading_paused(self) -> bool:
        """True between :meth:`pause_reading` and :meth:`resume_reading` (or a new connect)."""

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds, if known."""
        return None

    def fileno(self) -> int:
        """The socket's file descriptor, or -1 when there is none."""
        return -1

    @abc.abstractmethod
    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        """Start a connection on the running loop; return at once. Ends any previous one first."""

    @abc.abstractmethod
    def send_text(self, text: str) -> bool:
        """Send a text message if open; return whether it was accepted."""

    @abc.abstractmethod
    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Send a binary message if open; return whether it was accepted."""

    @abc.abstractmethod
    def send_ping(self, data: bytes = b"") -> bool:
        """Send a ping if open; return whether it was accepted."""

    @abc.abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Start closing the current connection (already validated)."""

    @abc.abstractmethod
    def pause_reading(self) -> None:
        """Deliver nothing more until :meth:`resume_reading`, at once."""

    @abc.abstractmethod
    def resume_reading(self) -> None:
        """Deliver again, what was held back first."""
