"""Reading events instead of (or besides) handling them: the channel of an attempt.

:meth:`AsyncWebSocket.recv() <wsloop.AsyncWebSocket.recv>` and ``async for
event in ws`` (:class:`_EventIterator`) read the events of one connection
attempt after their handlers ran. :class:`_AsyncChannel`, a base class of the
façade, keeps them for those readers.

Theory of operation
-------------------
An attempt has a ``channel`` only while a reader is attached: the
dispatcher appends each event to it after the handler, and nothing is kept
otherwise. The first reader makes the channel, with the attempt's
:class:`~wsloop.Opened` first if it went by already. An iterator attaches
while it lives and releases the channel when it ends (after
:class:`~wsloop.Closed`, at ``aclose()``, or from the loop once it is
garbage); the channel is dropped when no iterator is left, unless
``recv()`` attached, which keeps it until ``Closed`` is taken. One task at a
time waits for the next event. What waits in the channel counts in the
backlog (:meth:`_AsyncDispatch._flow`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from ._async_dispatch import _AsyncDispatch, _Attempt, _weight
from .events import Closed
from .exceptions import ConcurrencyError, InvalidState

if TYPE_CHECKING:
    from .events import Event


class _AsyncChannel(_AsyncDispatch):
    """The channel of :class:`~wsloop.AsyncWebSocket`: events kept for its readers."""

    _receiving: bool

    def _attach(self, att: _Attempt) -> None:
        """Start keeping events for a reader; replay Opened if it went by."""
        if att.channel is None:
            att.channel = deque()
            att.channel_size = 0
            if att.opened is not None:
                att.channel.append(att.opened)
                att.channel_size = _weight(att.opened)

    def _release(self, att: _Attempt) -> None:
        """An iterator is gone; drop the channel when nobody reads it any more."""
        att.readers -= 1
        if att.readers <= 0 and not att.recv_attached and att.channel is not None:
            att.channel = None
            att.channel_size = 0
            self._flow(att)
            self._changed()

    async def _take(self, att: _Attempt) -> Event | None:
        """The next event of the channel; ``None`` when there will be none."""
        if self._receiving:
            raise ConcurrencyError("another task is already waiting for the next event")
        self._receiving = True
        try:
            await self._wait_for(lambda: bool(att.channel) or att.channel is None or att.done)
        finally:
            self._receiving = False
        channel = att.channel
        if not channel:
            return None
        event = channel.popleft()
        att.channel_size -= _weight(event)
        if type(event) is Closed:
            att.consumed = True
            att.channel = None
            att.channel_size = 0
        self._flow(att)
        return event


class _EventIterator:
    """What ``async for event in ws`` iterates; keeps the channel while it lives."""

    def __init__(self, ws: _AsyncChannel, att: _Attempt | None) -> None:
        self._ws = ws
        self._att = att
        self._finished = att is None or att.consumed or (att.done and att.channel is None)
        self._loop: asyncio.AbstractEventLoop | None = None
        if att is not None and not self._finished:
            ws._attach(att)
            att.readers += 1
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> Event:
        att = self._att
        if self._finished or att is None:
            raise StopAsyncIteration
        ws = self._ws
        ws._raise_handler_error()
        if ws._in_dispatcher(att):
            raise InvalidState("iterating from an event handler would wait forever")
        event = await ws._take(att)
        if event is None or type(event) is Closed:
            self._finish()
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop iterating: events are no longer kept for this iterator."""
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            att = self._att
            if att is not None:
                self._ws._release(att)

    def __del__(self) -> None:
        if not self._finished:
            # Left by a break or an exception: release the channel from the
            # loop, not from wherever the garbage collector runs.
            self._finished = True
            loop = self._loop
            att = self._att
            if loop is not None and att is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop is shutting down
                    loop.call_soon(self._ws._release, att)
