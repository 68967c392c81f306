"""Drivers: where a WebSocket's I/O runs.

:class:`~wsloop.drivers.poll.PollDriver` runs it inside ``WebSocket.poll()``
on the caller's thread. The drivers of :class:`~wsloop.WebSocket` implement
:class:`~wsloop.drivers.base.BaseDriver`; those of :class:`~wsloop.AsyncWebSocket`,
:class:`~wsloop.drivers.base.AsyncBaseDriver`. The socket-owning drivers
report the step a connection is at as a :class:`Phase`.
"""

from __future__ import annotations

from ._attempt import Phase
from .base import AsyncBaseDriver, BaseDriver, Config

__all__ = ["AsyncBaseDriver", "BaseDriver", "Config", "Phase"]
