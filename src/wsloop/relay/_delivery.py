"""How a message reaches a member: at once, or through its send queue and writer.

Theory of operation
-------------------
Each member has a bounded send queue (a message count and a byte count) and
one writer task that drains it into the connection, started the first time
something has to wait there. Relaying a message never waits for a receiver:
a member with nothing waiting and room in its socket buffer gets the frame
written at once (built once for all of them), any other has it appended to
its queue. A member
whose queue would overflow is a slow consumer: its queue is dropped and it is
closed with 1008; if it does not even read the close frame within
``close_timeout``, its TCP connection is aborted. Memory per member is thus
bounded by the queue limits plus the ``websockets`` write buffer.

:class:`Delivery` is that machinery for one relay: it holds the counters of
what went out and reads the limits from the relay (through :class:`Limits`,
spelled out here so that this module needs nothing of ``server.py``, which
imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from ._parts import _Member, _Message

__all__: list[str] = []

SLOW_CONSUMER_CODE = 1008
"""The close code for a client that does not read fast enough (policy violation)."""


class Limits(Protocol):
    """What delivery reads of the relay's settings (a :class:`~wsloop.relay.Relay`)."""

    send_queue: int
    send_queue_bytes: int
    close_timeout: float


class Delivery:
    """The relay's way out to its members: send queues, writers, slow consumers, closing.

    Args:
        limits: the relay, for its queue limits and its ``close_timeout``.
        spawn: runs a coroutine as one of the relay's tasks (awaited when it stops).
    """

    def __init__(self, limits: Limits, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self._limits = limits
        self._spawn = spawn
        self.messages_out = 0
        self.bytes_out = 0
        self.slow_consumers = 0
        self.peak_queued = 0
        self.queued = False
        """A message went into a send queue since the last reader yielded."""
        # The last frame built for write_now, and the payload it was built from.
        self._frame = b""
        self._frame_data: bytes | None = None
        self._frame_text = True

    def enqueue(self, member: _Member, item: _Message) -> None:
        if member.closing:
            return
        if not member.queue and not member.writing and self.write_now(member, item):
            return
        size = len(item.data)
        limits = self._limits
        if member.queue and (
            len(member.queue) >= limits.send_queue
            or member.queued_bytes + size > limits.send_queue_bytes
        ):
            self.kick(
                member,
                SLOW_CONSUMER_CODE,
                "too slow: the relay's send queue for this client is full",
            )
            return
        member.queue.append(item)
        self.queued = True
        if member.writer is None and member.opened:
            self.start_writer(member)
        member.queued_bytes += size
        if member.queued_bytes > self.peak_queued:
            self.peak_queued = member.queued_bytes
        member.wakeup.set()

    def write_now(self, member: _Member, item: _Message) -> bool:
        """Write a message straight into an idle member's socket; False if it must queue.

        Only when nothing of this member's is waiting (its queue is empty and
        its writer holds nothing), so the order is kept; only while its
        transport is below its high-water mark (``paused`` is websockets' flow
        control), so a slow reader still fills its queue and is closed as a
        slow consumer. The frame is the same bytes for every member without an
        extension (server frames are not masked): it is built once per
        message and reused for all of them, as long as the same payload
        object is being handed out.
        """
        conn = member.conn
        protocol = conn.protocol
        if (
            protocol.state is not OPEN
            or conn.paused
            or protocol.extensions
            or protocol.writes
            or conn.send_in_progress is not None
        ):
            return False
        data = item.data
        if data is not self._frame_data or item.text is not self._frame_text:
            opcode = Opcode.TEXT if item.text else Opcode.BINARY
            self._frame = Frame(opcode, data).serialize(mask=False, extensions=[])
            self._frame_data = data
            self._frame_text = item.text
        conn.transport.write(self._frame)
        member.sent += 1
        self.messages_out += 1
        self.bytes_out += len(data)
        return True

    def start_writer(self, member: _Member) -> None:
        """The member's writer task, started the first time something waits in its queue.

        Most messages go straight into the socket (:meth:`write_now`), so an idle
        member, or one that keeps up, never needs a task of its own.
        """
        member.writer = asyncio.get_running_loop().create_task(self._write(member))

    async def _write(self, member: _Member) -> None:
        conn = member.conn
        queue = member.queue
        while not member.closing:
            if not queue:
                member.writing = False
                member.idle.set()
                member.wakeup.clear()
                await member.wakeup.wait()
                continue
            item = queue.popleft()
            member.queued_bytes -= len(item.data)
            member.writing = True
            await conn.send(item.data, text=item.text)
            member.writing = False
            member.sent += 1
            self.messages_out += 1
            self.bytes_out += len(item.data)

    def kick(self, member: _Member, code: int, reason: str, why: str = "") -> None:
        """Close a slow consumer with ``code``, dropping its queue."""
        if member.closing:
            return
        member.closing = True
        member.why = f"slow consumer, closed with {code}" + (f": {why}" if why else "")
        member.queue.clear()
        member.queued_bytes = 0
        member.wakeup.set()
        self.slow_consumers += 1
        self._spawn(self.close_member(member, code, reason))

    async def close_member(self, member: _Member, code: int, reason: str) -> None:
        """Close with ``code``; abort the TCP connection past ``close_timeout``."""
        member.closing = True
        member.wakeup.set()
        conn = member.conn
        try:
            async with asyncio.timeout(self._limits.close_timeout):
                await conn.close(code, reason)
        except TimeoutError:
            if not member.why:
                member.why = "did not answer the close frame"
            conn.transport.abort()
            await conn.wait_closed()

    async def close_rate_limited(self, member: _Member, code: int, why: str) -> None:
        """Close with ``code``, dropping what the client sent after the limit meanwhile.

        Its answer to the close frame comes after those messages; left unread,
        they would stop the reading (the engine's flow control) and the answer
        with it, so the close would end in an abort at the close timeout.
        """
        closing = asyncio.get_running_loop().create_task(self.close_member(member, code, why))
        with contextlib.suppress(ConnectionClosed):
            async for _ in member.conn:
                pass
        await closing
