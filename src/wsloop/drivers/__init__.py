"""Drivers: where a WebSocket's I/O runs.

:class:`~wsloop.drivers.poll.PollDriver` runs it inside ``WebSocket.poll()``
on the caller's thread. Every driver implements
:class:`~wsloop.drivers.base.BaseDriver`.
"""

from __future__ import annotations

from .base import BaseDriver, Config

__all__ = ["BaseDriver", "Config"]
