"""Scale-out through Redis pub/sub: a room spans every relay process.

Theory of operation
-------------------
Each room has one Redis channel, ``<prefix>room:<path>``. A relay process
delivers what its own members send straight to its other local members, and
publishes it on the room's channel; it delivers what it reads on that channel
to its local members. Every published message starts with the publishing
process's random id, so a process skips its own messages: they were already
delivered locally, and the sender never hears itself.

Order per sender holds end to end: a process publishes from one task, through
one connection, in the order its members' messages arrived; Redis delivers a
channel's messages to each subscriber in publish order; one task reads them
and appends them to the members' send queues in that order.

A process subscribes to a room's channel when the room's first local member
arrives, and the member's handshake completes only once Redis has confirmed
the subscription, so a client that sees its connection open can no longer
miss a message published for its room. The process unsubscribes when the last
local member leaves. (Un)subscribe commands are sent by one task, so they
reach Redis in the order they were asked for, and confirmations are matched
to waiters first in, first out.

Wire format of a published message::

    b"w1" + process id (16 bytes) + b"t" (text) or b"b" (binary) + payload

Failure policy: if Redis cannot be reached at start, the relay does not
start; if the link fails later, the relay is told (``on_failure``) and closes
every client with 1011 rather than silently splitting the rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from ._errors import RelayError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RedisBroker"]

logger = logging.getLogger("wsloop.relay")

_MAGIC = b"w1"
_TEXT = b"t"
_BINARY = b"b"
_HEADER_SIZE = len(_MAGIC) + 16 + 1
_BATCH = 256


def import_redis() -> Any:
    """The ``redis.asyncio`` module; a :class:`RelayError` saying how to get it if missing."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise RelayError(
            "scale-out through Redis needs the redis package: pip install 'wsloop[relay-redis]'"
        ) from exc
    return aioredis


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class RedisBroker:
    """The Redis link of one relay process.

    Args:
        url: the Redis server, ``redis://[[user]:password@]host[:port][/db]``.
        prefix: the prefix of every channel name.
        deliver: called with ``(room, data, text)`` for each message that
            another process published, in order.
        on_failure: called once, with a sentence, if the link fails.
        join_timeout: seconds to wait for Redis to confirm a subscription.
        publish_queue: messages waiting to be published; beyond it, senders
            wait (their messages are read more slowly), nothing is dropped.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        deliver: Callable[[str, bytes, bool], None],
        on_failure: Callable[[str], None],
        join_timeout: float = 10.0,
        publish_queue: int = 4096,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.id = uuid.uuid4().bytes
        self._deliver = deliver
        self._on_failure = on_failure
        self._join_timeout = join_timeout
        self._room_prefix = f"{prefix}room:".encode()
        self._header = _MAGIC + self.id
        self._client: Any = None
        self._pubsub: Any = None
        self._out: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue(publish_queue)
        self._commands: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._refs: dict[bytes, int] = {}
        self._waiters: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: str | None = None
        self._stopping = False

    def _channel(self, room: str) -> bytes:
        return self._room_prefix + room.encode("utf-8", "surrogateescape")

    # Life cycle.

    async def start(self) -> None:
        """Connect and subscribe to this process's control channel.

        Raises:
            RelayError: the ``redis`` package is missing or Redis cannot be reached.
        """
        aioredis = import_redis()
        where = redact(self.url)
        try:
            client: Any = aioredis.Redis.from_url(self.url)
        except ValueError as exc:
            raise RelayError(f"invalid Redis URL {where}: {exc}") from exc
        self._client = client
        try:
            async with asyncio.timeout(self._join_timeout):
                await client.ping()
                self._pubsub = client.pubsub()
                control = f"{self.prefix}relay:{self.id.hex()}".encode()
                waiter = self._expect_subscription(control)
                await self._pubsub.subscribe(control)
                self._tasks.append(asyncio.create_task(self._read(), name="wsloop-redis-read"))
                await asyncio.shield(waiter)
        except Exception as exc:
            await self.stop()
            why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise RelayError(f"could not use Redis at {where}: {why}") from exc
        self._tasks.append(asyncio.create_task(self._publish(), name="wsloop-redis-publish"))
        self._tasks.append(asyncio.create_task(self._command(), name="wsloop-redis-command"))
        logger.info("sharing rooms through Redis at %s", where)

    async def stop(self) -> None:
        """Stop the tasks and close the connections."""
        self._stopping = True
        # The loops end on these sentinels: a cancellation can be swallowed
        # inside the redis client while a command is in flight.
        self._commands.put_nowait(None)
        while True:
            try:
                self._out.put_nowait(None)
                break
            except asyncio.QueueFull:
                self._out.get_nowait()  # stopping: what was not published is dropped
        tasks = self._tasks
        for task in tasks:
            if task.get_name() == "wsloop-redis-read":
                task.cancel()
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
        # A reader still blocked in the client ends when its connection closes.
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self._tasks = []
        self._fail_waiters(RelayError("the relay is stopping"))
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    # Rooms.

    async def join(self, room: str) -> None:
        """Count one more local member of ``room``; return once subscribed.

        Every call must be matched by one :meth:`leave`, even when it raises.

        Raises:
            RelayError: Redis did not confirm the subscription in time, or
                the link has failed.
        """
        channel = self._channel(room)
        refs = self._refs.get(channel, 0)
        self._refs[channel] = refs + 1
        if self._failed is not None:
            raise RelayError(self._failed)
        if refs == 0:
            waiter = self._expect_subscription(channel)
            self._commands.put_nowait(("subscribe", channel))
        else:
            waiters = self._waiters.get(channel)
            if not waiters:
                return
            waiter = waiters[-1]
        try:
            async with asyncio.timeout(self._join_timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            raise RelayError(
                f"Redis did not confirm the subscription within {self._join_timeout:g} s"
            ) from None

    def leave(self, room: str) -> None:
        """Count one local member of ``room`` less; unsubscribe after the last."""
        channel = self._channel(room)
        refs = self._refs.get(channel, 0) - 1
        if refs > 0:
            self._refs[channel] = refs
            return
        self._refs.pop(channel, None)
        if self._failed is None and not self._stopping:
            self._commands.put_nowait(("unsubscribe", channel))

    async def publish(self, room: str, data: bytes, text: bool) -> None:
        """Publish a message of a local member; waits while the queue is full."""
        if self._failed is not None or self._stopping:
            return
        payload = self._header + (_TEXT if text else _BINARY) + data
        await self._out.put((self._channel(room), payload))

    # Tasks.

    def _expect_subscription(self, channel: bytes) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, deque()).append(waiter)
        return waiter

    async def _read(self) -> None:
        try:
            async for message in self._pubsub.listen():
                if self._stopping:
                    return
                kind = message["type"]
                if kind == "message":
                    self._received(message["channel"], message["data"])
                    # Let the writers run between messages of a burst.
                    await asyncio.sleep(0)
                elif kind == "subscribe":
                    self._confirmed(message["channel"])
            raise ConnectionError("the subscription ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(f"reading from Redis failed: {exc or type(exc).__name__}")

    def _confirmed(self, channel: bytes) -> None:
        waiters = self._waiters.get(channel)
        if not waiters:
            return
        waiter = waiters.popleft()
        if not waiters:
            del self._waiters[channel]
        if not waiter.done():
            waiter.set_result(None)

    def _received(self, channel: bytes, data: bytes) -> None:
        if not channel.startswith(self._room_prefix):
            return
        if len(data) < _HEADER_SIZE or not data.startswith(_MAGIC):
            logger.warning("ignored a message of unknown format on %r", channel)
            return
        if data[2:18] == self.id:
            return  # ours: already delivered to the local members
        kind = data[18:19]
        payload = data[_HEADER_SIZE:]
        text = kind == _TEXT
        if text:
            try:
                payload.decode()
            except UnicodeDecodeError:
                logger.warning("ignored a text message that is not UTF-8 on %r", channel)
                return
        room = channel[len(self._room_prefix) :].decode("utf-8", "surrogateescape")
        self._deliver(room, payload, text)

    async def _publish(self) -> None:
        out = self._out
        try:
            while not self._stopping:
                item = await out.get()
                batch: list[tuple[bytes, bytes]] = []
                while item is not None:
                    batch.append(item)
                    if len(batch) >= _BATCH:
                        break
                    try:
                        item = out.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if batch:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for channel, payload in batch:
                            pipe.publish(channel, payload)
                        await pipe.execute()
                if item is None:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(f"publishing to Redis failed: {exc or type(exc).__name__}")

    async def _command(self) -> None:
        try:
            while not self._stopping:
                command = await self._commands.get()
                if command is None:
                    return
                verb, channel = command
                if verb == "subscribe":
                    await self._pubsub.subscribe(channel)
                else:
                    await self._pubsub.unsubscribe(channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(f"subscribing on Redis failed: {exc or type(exc).__name__}")

    def _fail(self, why: str) -> None:
        if self._failed is not None or self._stopping:
            return
        self._failed = why
        self._fail_waiters(RelayError(why))
        self._on_failure(why)

    def _fail_waiters(self, exc: RelayError) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()  # mark retrieved: nobody may be waiting
        self._waiters.clear()
