"""The plain rooms: every message of a member goes to every *other* member.

Theory of operation
-------------------
A client that does not speak the room protocol is a member of the plain
room named by its URL path, from its handshake (before its ``101``) until
its TCP connection is gone. What it sends is handed to each other member of
the room in this process (:meth:`PlainRooms.say`, through the relay's
:class:`~wsloop.relay._delivery.Delivery`: never waiting for a receiver).

With Redis, a plain room spans every relay process: the member's handshake
also subscribes this process to the room's pub/sub channel, and completes
only once Redis confirmed it (a member whose subscription fails is refused
with 503); what it sends is published as well, and the messages other
processes publish come back through :meth:`PlainRooms.deliver_remote`, in
order (``_redis.py``). The pub/sub link opens with the first plain member,
so a relay whose clients all speak the room protocol never opens it.

Echo mode has no rooms: the relay answers each client itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._errors import RelayError
from ._parts import _Member, _Message

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._delivery import Delivery
    from ._redis import RedisBroker

__all__: list[str] = []


class PlainRooms:
    """The plain rooms of one relay process, and their Redis pub/sub link.

    Args:
        delivery: how a message reaches a member.
        on_failure: called with the reason if the Redis link fails once open.
    """

    def __init__(self, delivery: Delivery, on_failure: Callable[[str], None]) -> None:
        self.rooms: dict[str, dict[_Member, None]] = {}
        """The members of each plain room in this process, in the order they came."""
        self.broker: RedisBroker | None = None
        """The pub/sub link, once the first plain member opened it."""
        self._delivery = delivery
        self._on_failure = on_failure
        self._broker_started: asyncio.Future[None] | None = None

    def size(self, room: str) -> int:
        """How many members the room has in this process."""
        return len(self.rooms.get(room, ()))

    def add(self, member: _Member) -> None:
        """The member joins the room of its path (in this process)."""
        self.rooms.setdefault(member.room, {})[member] = None

    async def subscribe(self, member: _Member, url: str, prefix: str) -> None:
        """Have this process hear the member's room on Redis (opening the link first).

        Raises:
            RelayError: Redis cannot be reached.
        """
        member.joined = True
        broker = await self._open(url, prefix)
        await broker.join(member.room)

    async def _open(self, url: str, prefix: str) -> RedisBroker:
        """The pub/sub link of the plain rooms, opened with the first plain member."""
        if self._broker_started is None:
            self._broker_started = started = asyncio.get_running_loop().create_future()
            from ._redis import RedisBroker

            broker = RedisBroker(
                url,
                prefix=prefix,
                deliver=self.deliver_remote,
                on_failure=self._on_failure,
            )
            try:
                await broker.start()
            except RelayError as exc:
                self._broker_started = None
                started.set_exception(exc)
                started.exception()  # retrieved: raised below for each waiter
                raise
            self.broker = broker
            started.set_result(None)
        await asyncio.shield(self._broker_started)
        assert self.broker is not None
        return self.broker

    def say(self, member: _Member, item: _Message) -> Awaitable[None] | None:
        """A message of ``member``: to the other members here, and published.

        Returns the publication to await with Redis, else ``None``: a plain
        function, not a coroutine, so that a message on one relay costs no
        coroutine (the pairs benchmark counts every call).
        """
        room = self.rooms.get(member.room)
        if room is not None:
            enqueue = self._delivery.enqueue
            for other in tuple(room):
                if other is not member:
                    enqueue(other, item)
        broker = self.broker
        return None if broker is None else broker.publish(member.room, item.data, item.text)

    def deliver_remote(self, room: str, data: bytes, text: bool) -> None:
        """Called by the broker, in order, for messages of other processes."""
        members = self.rooms.get(room)
        if not members:
            return
        item = _Message(data, text)
        enqueue = self._delivery.enqueue
        for member in tuple(members):
            enqueue(member, item)

    def remove(self, member: _Member) -> None:
        """The member is gone: out of its room, and its channel left."""
        room = self.rooms.get(member.room)
        if room is not None and member in room:
            del room[member]
            if not room:
                del self.rooms[member.room]
        if member.joined and self.broker is not None:
            member.joined = False
            self.broker.leave(member.room)

    async def stop(self) -> None:
        """Close the pub/sub link, if open."""
        if self.broker is not None:
            await self.broker.stop()
