"""The three deadlines of one connection, as numbers: connect, close, keepalive.

A connection has at most three clocks running, and each ends it in its own
way:

- **connect** (``connect_timeout``) runs from ``connect()`` until the
  connection leaves CONNECTING; when it expires the attempt fails with an
  error naming the step it was at ("connect (TLS handshake)").
- **close** (``close_timeout``) starts once a close is expected (the client
  sent its close frame, or answered the server's) and runs until TCP ends.
  When it expires and both close frames were exchanged, RFC 6455 section
  7.1.1 lets the client end TCP itself: the close is *clean*, with the
  server's code. Otherwise the closing handshake timed out: an error, 1006.
- **keepalive** (``ping_interval``, ``ping_timeout``) runs while OPEN:
  :class:`~wsloop._sansio.keepalive.Keepalive` says when to ping and when a
  missing pong means the peer is gone.

:class:`Timers` holds all three and makes every decision about them; the
drivers only keep a clock. The poll driver waits no later than
:attr:`Timers.deadline` and calls :meth:`Timers.tick` each time it wakes; the
asyncio driver keeps one loop timer pointed at :attr:`Timers.deadline` and
calls :meth:`Timers.tick` when it fires. :meth:`Timers.tick` acts on the
:class:`~wsloop.sansio.Session` itself (queues the ping, aborts with the
error, or ends it cleanly) and tells the driver what to do with the
transport. No clock or socket here: the times are passed in, and the tests
drive every expiry in memory.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .._sansio.keepalive import Keepalive
from ..exceptions import TimeoutError
from ..sansio import State
from ._common import connect_timeout

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..sansio import Session
    from .base import Config

__all__ = ["Due", "Timers"]


class Due(enum.Enum):
    """What :meth:`Timers.tick` did to the session, and what the driver does next."""

    PING = "ping"
    """A keepalive ping is queued on the session: write what it has to send."""
    CLOSED = "closed"
    """The close handshake was complete and TCP stayed open: the session is
    closed cleanly; close the transport."""
    FAILED = "failed"
    """A timeout: the session is aborted with its error; abort the transport."""


class Timers:
    """The connect, close and keepalive deadlines of the current connection.

    Args:
        config: the options (``connect_timeout``, ``close_timeout``,
            ``ping_interval``, ``ping_timeout``).
    """

    __slots__ = (
        "_close",
        "_close_timeout",
        "_connect",
        "_connect_timeout",
        "_opened",
        "_ping_timeout",
        "deadline",
        "keepalive",
    )

    def __init__(self, config: Config) -> None:
        self._connect_timeout = config.connect_timeout
        self._close_timeout = config.close_timeout
        self._ping_timeout = config.ping_timeout
        self.keepalive = Keepalive(config.ping_interval, config.ping_timeout)
        """When to ping; its ``latency`` is the driver's."""
        self._connect: float | None = None
        self._close: float | None = None
        self._opened = False
        self.deadline: float | None = None
        """The earliest time :meth:`tick` has something to do, or ``None``.

        An attribute, not a method: the poll driver reads it on every idle
        ``poll(0)``, a game's once a frame."""

    def _update(self) -> None:
        deadline = self.keepalive.deadline()
        for other in (self._connect, self._close):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        self.deadline = deadline

    def begin(self, now: float) -> None:
        """A connection attempt starts: the connect deadline runs, nothing else."""
        self.keepalive.stop()
        timeout = self._connect_timeout
        self._connect = None if timeout is None else now + timeout
        self._close = None
        self._opened = False
        self._update()

    def stop(self) -> None:
        """The connection ended (or was torn down): no deadline is left."""
        self.keepalive.stop()
        self._connect = None
        self._close = None
        self._update()

    def advance(self, session: Session, now: float) -> None:
        """Follow ``session`` after it changed (events taken, data sent).

        Leaving CONNECTING ends the connect deadline and, on OPEN, starts the
        keepalive, once per attempt; the keepalive stops when the connection
        is no longer OPEN; the close deadline starts when a close is expected.
        """
        state = session.state
        changed = False
        if not self._opened:
            if state is State.CONNECTING:
                return
            self._opened = changed = True
            self._connect = None
            if state is State.OPEN:
                self.keepalive.start(now)
        elif state is not State.OPEN:
            self.keepalive.stop()
            changed = True
        if (
            self._close is None
            and self._close_timeout is not None
            and state is not State.CLOSED
            and session.close_expected()
        ):
            self._close = now + self._close_timeout
            changed = True
        if changed:  # the common case, a message while open, changes nothing
            self._update()

    def pongs(self, payloads: Iterable[bytes], now: float) -> None:
        """The session received these pongs (its ``pongs_received``)."""
        for payload in payloads:
            self.keepalive.pong(payload, now)
        self._update()

    def tick(self, session: Session, phase: str, now: float) -> Due | None:
        """Act on every deadline that has passed at ``now``.

        ``phase`` is the driver's step (a :class:`~wsloop.drivers._attempt.Phase`),
        named by a connect timeout. Returns what was done to ``session``, or
        ``None`` when nothing was due.
        """
        state = session.state
        if state is State.CLOSED:
            return None
        deadline = self._connect
        if deadline is not None and now >= deadline and state is State.CONNECTING:
            session.abort(connect_timeout(phase, self._connect_timeout))
            self.stop()
            return Due.FAILED
        deadline = self._close
        if deadline is not None and now >= deadline:
            self.stop()
            if session.close_handshake_done:
                # RFC 6455 7.1.1: both close frames are exchanged; the server
                # should close TCP, and if it does not the client may. Clean.
                session.receive_eof()
                return Due.CLOSED
            session.abort(TimeoutError("closing handshake", self._close_timeout or 0.0))
            return Due.FAILED
        if state is not State.OPEN:
            return None
        action = self.keepalive.tick(now)
        if action is None:
            return None
        if action[0] == "ping":
            session.send_ping(action[1])
            self._update()
            return Due.PING
        session.abort(TimeoutError("keepalive", self._ping_timeout or 0.0))
        self.stop()
        return Due.FAILED
