"""Drivers: where a WebSocket's I/O runs.

:class:`~wsloop.drivers.poll.PollDriver` runs it inside ``WebSocket.poll()``
on the caller's thread. The drivers of :class:`~wsloop.WebSocket` implement
:class:`~wsloop.drivers.base.BaseDriver`; those of :class:`~wsloop.AsyncWebSocket`,
:class:`~wsloop.drivers.base.AsyncBaseDriver`.
"""

from __future__ import annotations

from .base import AsyncBaseDriver, BaseDriver, Config

__all__ = ["AsyncBaseDriver", "BaseDriver", "Config"]
