"""Where a session stands: :class:`State` and every change a session makes.

:class:`wsloop.sansio.Session` owns the state; the drivers, the façades and
:mod:`wsloop._sansio.lifecycle` read it (all import it from
:mod:`wsloop.sansio`, which re-exports both names). It lives here so that the
parts of the session split out into :mod:`wsloop._sansio` can name it without
importing :mod:`wsloop.sansio` back.

State transitions (the docs diagram is drawn from :data:`TRANSITIONS`)::

    CONNECTING --handshake accepted--> OPEN --send_close/close rcvd--> CLOSING
    CONNECTING/OPEN/CLOSING --EOF or abort--> CLOSED
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "State"]


class State(enum.Enum):
    """Where a connection stands. Compare with ``is``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


TRANSITIONS: dict[State, dict[str, State]] = {
    State.CONNECTING: {
        "handshake accepted": State.OPEN,
        "handshake failed": State.CLOSED,
        "abort": State.CLOSED,
    },
    State.OPEN: {
        "send_close": State.CLOSING,
        "close frame received": State.CLOSING,
        "protocol error": State.CLOSING,
        "EOF": State.CLOSED,
        "abort": State.CLOSED,
    },
    State.CLOSING: {"EOF": State.CLOSED, "abort": State.CLOSED},
    State.CLOSED: {},
}
"""Every state change a session makes, by the cause."""
