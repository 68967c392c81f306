"""The ``max_buffered_amount`` limit on sends, with its one warning.

Every driver refuses a new message while more than ``max_buffered_amount``
bytes wait for the network; each measures what waits in its own way (its
outgoing queue, the session's, the browser's ``bufferedAmount``) and asks
:meth:`SendLimit.full`. The first refusal logs one warning; the next one is
logged only after the buffer has drained below the limit again, so a game
that keeps sending into a full buffer gets one line, not one a frame.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("wsloop.client")


class SendLimit:
    """Whether ``max_buffered_amount`` is reached, warning once per episode."""

    __slots__ = ("_warned", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        """The most bytes that may wait before sends are refused; ``None``: no limit."""
        self._warned = False

    def full(self, buffered: int) -> bool:
        """True (with one warning per episode) while ``buffered`` has reached the limit."""
        limit = self.limit
        if limit is None or buffered < limit:
            self._warned = False
            return False
        if not self._warned:
            self._warned = True
            logger.warning(
                "send buffer full (%d bytes wait for the network, max_buffered_amount=%d): "
                "messages are not sent until it drains",
                buffered,
                limit,
            )
        return True
