"""Keepalive pings, as a clock-free state machine every driver can share.

A connection that stops answering without closing (a paused server, a
dropped cable, a NAT that forgot the flow) looks exactly like a quiet one.
Pinging at an interval and expecting the pong within a timeout tells them
apart. The driver owns the clock: it calls :meth:`Keepalive.tick` with the
current time whenever it wakes up and sleeps no longer than
:meth:`Keepalive.deadline`.
"""

from __future__ import annotations

import os
from typing import Literal

__all__ = ["Keepalive"]


class Keepalive:
    """When to ping and when a missing pong means the peer is gone.

    Args:
        interval: seconds between the last ping's pong and the next ping;
            ``None`` disables keepalive.
        timeout: seconds to wait for a pong; ``None`` waits forever.
    """

    __slots__ = (
        "_next_ping",
        "_payload",
        "_pong_deadline",
        "_sent_at",
        "interval",
        "latency",
        "timeout",
    )

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self.interval = interval
        self.timeout = timeout
        self.latency: float | None = None
        """The round-trip time of the last answered ping, in seconds."""
        self._next_ping: float | None = None
        self._pong_deadline: float | None = None
        self._payload = b""
        self._sent_at = 0.0

    def start(self, now: float) -> None:
        """The connection just opened: schedule the first ping."""
        self._pong_deadline = None
        self._next_ping = None if self.interval is None else now + self.interval

    def stop(self) -> None:
        """The connection is closing or closed: no more pings."""
        self._next_ping = None
        self._pong_deadline = None

    def deadline(self) -> float | None:
        """The next time :meth:`tick` has something to do, or ``None``."""
        if self._pong_deadline is not None:
            return self._pong_deadline
        return self._next_ping

    def tick(
        self, now: float
    ) -> tuple[Literal["ping"], bytes] | tuple[Literal["timeout"], None] | None:
        """Return ``("ping", payload)`` to send a ping, ``("timeout", None)`` if
        the pong is overdue, or ``None``."""
        if self._pong_deadline is not None:
            if now >= self._pong_deadline:
                self.stop()
                return ("timeout", None)
            return None
        if self._next_ping is not None and now >= self._next_ping:
            self._payload = os.urandom(4)
            self._sent_at = now
            self._next_ping = None
            if self.timeout is not None:
                self._pong_deadline = now + self.timeout
            return ("ping", self._payload)
        return None

    def pong(self, payload: bytes, now: float) -> None:
        """A pong arrived; if it answers our ping, schedule the next one."""
        if not self._payload or payload != self._payload:
            return  # unsolicited, or the answer to an application ping
        self.latency = now - self._sent_at
        self._payload = b""
        self._pong_deadline = None
        if self.interval is not None:
            self._next_ping = now + self.interval
