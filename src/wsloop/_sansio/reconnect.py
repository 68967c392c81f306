"""Reconnection: when to try again, how long to wait, and what to keep meanwhile.

The Construct plugin has no reconnection; wsloop's is off by default. Turned
on (``WebSocket(reconnect=True)`` or ``reconnect=Reconnect(...)``), a
connection that ends for any reason but the application's own ``close()`` or a
final close code is tried again after an exponential backoff with jitter.

This module is clock-free: the façades own the timers.
"""

from __future__ import annotations

import collections
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..exceptions import InvalidStatus, NegotiationError

if TYPE_CHECKING:
    from ..events import Closed, Error

__all__ = ["Outbox", "Reconnect", "ReconnectState"]

logger = logging.getLogger("wsloop.client")


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How to reconnect.

    Args:
        initial_delay: seconds before the first retry.
        max_delay: the longest wait between two attempts.
        factor: how much the wait grows after each failed attempt.
        jitter: the fraction of each wait that is random (0 to 1), so that
            many clients dropped together do not come back together.
        max_attempts: attempts after a drop before giving up; ``None`` tries
            forever. Reset once a connection opens.
        final_codes: close codes from the server that end the session for
            good (1000 normal closure and 1008 policy violation by default).
        outbox: how many messages sent while disconnected are kept and sent,
            in order, once the connection is open again; 0 keeps none (sends
            while not open are ignored, as without reconnection).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    final_codes: frozenset[int] = field(default_factory=lambda: frozenset({1000, 1008}))
    outbox: int = 0

    @classmethod
    def from_option(cls, value: bool | Reconnect | None) -> Reconnect | None:
        """Read the ``reconnect=`` option of a WebSocket: ``None`` means off.

        Raises:
            TypeError: ``value`` is not a bool, ``None`` or a :class:`Reconnect`.
        """
        if value is True:
            return cls()
        if value is False or value is None:
            return None
        if not isinstance(value, Reconnect):
            raise TypeError("reconnect must be a bool or a wsloop.Reconnect")
        return value

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 or None")
        if self.outbox < 0:
            raise ValueError("outbox must be 0 or more")
        object.__setattr__(self, "final_codes", frozenset(self.final_codes))


def _is_final_error(error: Error | None) -> str | None:
    """Why retrying after this error cannot help, or ``None``."""
    if error is None:
        return None
    exc = error.exception
    if isinstance(exc, NegotiationError):
        return "the server refused the subprotocol or extensions"
    if isinstance(exc, InvalidStatus) and 400 <= exc.status < 500 and exc.status not in (408, 429):
        return f"the server answered HTTP {exc.status}"
    return None


class ReconnectState:
    """Decides, after each :class:`Closed`, whether and when to try again."""

    def __init__(self, policy: Reconnect, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.attempt = 0
        """Failed attempts since the last open connection."""
        self._rng = rng or random.Random()
        self._last_error: Error | None = None

    def opened(self) -> None:
        self.attempt = 0

    def error(self, event: Error) -> None:
        self._last_error = event

    def closed(self, event: Closed, *, user_closed: bool) -> float | None:
        """Return the delay before the next attempt, or ``None`` for no retry."""
        error, self._last_error = self._last_error, None
        policy = self.policy
        if user_closed:
            return None
        if event.was_clean and event.code in policy.final_codes:
            logger.info("not reconnecting: the server closed with final code %d", event.code)
            return None
        why = _is_final_error(error)
        if why is not None:
            logger.info("not reconnecting: %s", why)
            return None
        if policy.max_attempts is not None and self.attempt >= policy.max_attempts:
            logger.warning("not reconnecting: %d attempts failed", self.attempt)
            return None
        delay = min(policy.max_delay, policy.initial_delay * policy.factor**self.attempt)
        delay *= 1 - policy.jitter * self._rng.random()
        self.attempt += 1
        return delay


class Outbox:
    """Messages sent while disconnected, kept in order up to a bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: collections.deque[str | bytes] = collections.deque()
        self.dropped = 0
        """Messages refused because the outbox was full."""

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: str | bytes) -> bool:
        if len(self._items) >= self.limit:
            self.dropped += 1
            kind = "text" if isinstance(message, str) else "binary"
            logger.warning(
                "outbox full (%d messages): dropped a %s message of %d %s",
                self.limit,
                kind,
                len(message),
                "characters" if kind == "text" else "bytes",
            )
            return False
        self._items.append(message)
        return True

    def take(self) -> list[str | bytes]:
        items = list(self._items)
        self._items.clear()
        return items

    def clear(self) -> None:
        self._items.clear()
