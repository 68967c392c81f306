"""The façade lifecycle: what both WebSocket objects decide, written once.

:class:`~wsloop.WebSocket` (any loop, any thread) and
:class:`~wsloop.AsyncWebSocket` (asyncio) differ in how they wait and where
handlers run. What they *decide* is the same, and lives here:

- **Sends.** ``send_text()``/``send_binary()`` go to the driver, which refuses
  them (``False``) unless the connection is open: sends while not open are
  ignored, as the Construct plugin's manual says. With a
  :class:`~wsloop.Reconnect` ``outbox``, a message sent while the session
  waits to (re)connect is kept instead, and the outbox is flushed, in order,
  before anything sent after the connection opened.
- **close().** It marks the session as closed by the application: the outbox
  is emptied, no retry follows, and messages already received but not yet
  dispatched are dropped ("no more messages will be received after closing").
- **Superseded connections.** A ``connect()`` while a connection is active
  replaces it; the old connection's ``Error``/``Closed`` still reach the
  handlers, but must not change the new connection's expressions or end it.
- **Reconnect bookkeeping.** ``Opened`` resets the attempt count (and flushes
  the outbox), ``Error`` is remembered, and ``Closed`` yields the decision:
  the delay before the next attempt, or ``None`` when the session ends.

Nothing here owns a socket, a thread or a clock: the façade passes in the
driver to send through and, for the thread-safe façade, the lock that guards
the outbox; it arms the retry timer itself with the delay it is given.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from .._binary import BinaryData
from ..events import BinaryMessage, Closed, Error, TextMessage
from .reconnect import Outbox, Reconnect, ReconnectState
from .state import State

if TYPE_CHECKING:
    import random
    from contextlib import AbstractContextManager

    from ..events import Event

__all__ = ["Lifecycle", "Sender", "binary_payload", "validate_close"]


class Sender(Protocol):
    """What the lifecycle sends through: the part of a driver it uses."""

    @property
    def state(self) -> State | None: ...
    def send_text(self, text: str) -> bool: ...
    def send_binary(self, data: bytes | bytearray | memoryview) -> bool: ...
    def send_ping(self, data: bytes = b"") -> bool: ...


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


class Lifecycle:
    """The decisions of one façade over its sessions; no I/O, no clock.

    Args:
        reconnect: the façade's ``reconnect=`` option.
        lock: guards the outbox where sends may come from several threads;
            ``None`` where everything runs on one thread (asyncio).
        rng: the randomness of the backoff jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        reconnect: bool | Reconnect | None,
        lock: AbstractContextManager[object] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        policy = Reconnect.from_option(reconnect)
        self.reconnect = ReconnectState(policy, rng) if policy else None
        """The retry policy and its attempt count; ``None`` with reconnection off."""
        self.outbox = Outbox(policy.outbox) if policy and policy.outbox else None
        """Messages kept while not open; ``None`` without a ``Reconnect.outbox``."""
        self._lock: AbstractContextManager[object] = (
            contextlib.nullcontext() if lock is None else lock
        )
        self.active = False
        """Between ``connect()`` and the dispatch of the Closed that ends its session."""
        self.user_closed = False
        """The application called ``close()`` since the last ``connect()``."""
        self.superseded = 0
        """Closed events of replaced connections still to come."""

    # connect() and close().

    def begin(self) -> None:
        """A ``connect()`` starts a new session."""
        if self.reconnect is not None:
            self.reconnect.attempt = 0
        self.user_closed = False
        self.active = True

    def supersede(self) -> None:
        """The active connection is being replaced; its Closed is still to come."""
        self.superseded += 1

    def close(self, code: int, reason: str) -> None:
        """The application calls ``close()``: no retry, no kept message, no more messages.

        Raises:
            ValueError: ``code`` or ``reason`` is not one an application may send.
        """
        validate_close(code, reason)
        self.user_closed = True
        self._clear_outbox()

    def end(self) -> None:
        """The session ends for good: nothing more is tried or kept."""
        self.active = False
        self._clear_outbox()

    # Sends.

    def send_text(self, driver: Sender, text: str) -> bool:
        """``send_text()``: through the driver, or into the outbox while not open."""
        if not isinstance(text, str):
            raise TypeError(f"send_text() takes a str, not {type(text).__name__}")
        if self.outbox is not None:
            return self._send_or_keep(driver, text)
        return driver.send_text(text)

    def send_binary(self, driver: Sender, data: object) -> bool:
        """``send_binary()`` of bytes-like data or a BinaryData's contents.

        Raises:
            TypeError: ``data`` is neither bytes-like nor a BinaryData.
        """
        payload = binary_payload(data)
        if self.outbox is not None:
            return self._send_or_keep(driver, bytes(payload))
        return driver.send_binary(payload)

    @staticmethod
    def ping(driver: Sender, data: bytes) -> bool:
        """``ping()``: a ping if the connection is open; whether it was sent.

        Raises:
            ValueError: more than 125 bytes.
        """
        if len(data) > 125:
            raise ValueError("a ping carries at most 125 bytes")
        return driver.send_ping(bytes(data))

    def _send_or_keep(self, driver: Sender, message: str | bytes) -> bool:
        """With an outbox: send if open (after what waits), else keep it."""
        outbox = self.outbox
        assert outbox is not None
        with self._lock:
            if driver.state is State.OPEN:
                self._flush_outbox(driver)
                if isinstance(message, str):
                    return driver.send_text(message)
                return driver.send_binary(message)
            if not self.active or self.user_closed:
                return False
            return outbox.put(message)

    def _flush_outbox(self, driver: Sender) -> None:
        outbox = self.outbox
        if outbox is None or not len(outbox):
            return
        for item in outbox.take():
            if isinstance(item, str):
                driver.send_text(item)
            else:
                driver.send_binary(item)

    def _clear_outbox(self) -> None:
        if self.outbox is not None:
            with self._lock:
                self.outbox.clear()

    # Events, as the façade dispatches them.

    def drops(self, event: Event) -> bool:
        """Whether ``event`` is a message received before ``close()`` and now dropped."""
        cls = type(event)
        return self.user_closed and (cls is TextMessage or cls is BinaryMessage)

    def is_superseded(self, event: Event) -> bool:
        """Whether ``event`` ends a replaced connection (counted off at its Closed)."""
        cls = type(event)
        if not self.superseded or not (cls is Error or cls is Closed):
            return False
        if cls is Closed:
            self.superseded -= 1
        return True

    def opened(self, driver: Sender) -> None:
        """The session's connection opened: reset the retries, send what was kept."""
        if self.reconnect is not None:
            self.reconnect.opened()
            with self._lock:
                self._flush_outbox(driver)

    def error(self, event: Error) -> None:
        """The connection reported an error: the retry decision weighs it."""
        if self.reconnect is not None:
            self.reconnect.error(event)

    def closed(self, event: Closed) -> float | None:
        """The connection closed: the delay before retrying, or ``None`` for no retry.

        ``None`` also with reconnection off; the façade then calls :meth:`end`
        (at the moment its own contract says).
        """
        if self.reconnect is None:
            return None
        return self.reconnect.closed(event, user_closed=self.user_closed)

    @property
    def attempt(self) -> int:
        """Failed attempts since the last open connection (0 with reconnection off)."""
        return 0 if self.reconnect is None else self.reconnect.attempt


def binary_payload(data: object) -> bytes | bytearray | memoryview:
    """What ``send_binary()`` sends for ``data``: bytes-like as is, a BinaryData's contents.

    Raises:
        TypeError: ``data`` is neither.
    """
    if isinstance(data, BinaryData):
        return bytes(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise TypeError(
        f"send_binary() takes bytes, bytearray, memoryview or BinaryData, "
        f"not {type(data).__name__}"
    )
