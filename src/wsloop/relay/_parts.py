"""The small parts of the relay: a member, a message on its way, the counters."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request

__all__ = ["RelayStats"]


@dataclass(frozen=True, slots=True)
class RelayStats:
    """Counters of a running relay, for monitoring and tests."""

    connections: int
    """Clients connected now (including those finishing their handshake)."""
    rooms: int
    """Rooms with at least one member in this process."""
    messages_in: int
    """Messages received from clients."""
    messages_out: int
    """Messages written to clients."""
    slow_consumers: int
    """Clients disconnected because their send queue overflowed."""
    queued_bytes: int
    """Bytes waiting in every send queue now."""
    peak_queued_bytes: int
    """The most bytes that ever waited in a single client's send queue."""
    bytes_in: int = 0
    """Payload bytes received from clients."""
    bytes_out: int = 0
    """Payload bytes written to clients."""
    rate_limited: int = 0
    """Clients closed with 1008 for passing a rate limit."""
    refused: int = 0
    """Opening handshakes refused by the relay (auth, per-address limit, full, shutting down)."""
    handler_errors: int = 0
    """Exceptions raised by game-room code (logged; the relay went on)."""
    resumes: int = 0
    """Room-protocol seats taken back by a resume on this relay."""


class _Message:
    """A message on its way to clients: the payload is shared, never copied."""

    __slots__ = ("data", "text")

    def __init__(self, data: bytes, text: bool) -> None:
        self.data = data
        self.text = text


class _Member:
    """One client: its room, its send queue and its counters."""

    __slots__ = (
        "address",
        "closing",
        "conn",
        "gone",
        "identity",
        "idle",
        "joined",
        "limit",
        "opened",
        "peer",
        "queue",
        "queued_bytes",
        "rcvd",
        "room",
        "sent",
        "session",
        "since",
        "wakeup",
        "why",
        "writer",
        "writing",
    )

    def __init__(self, conn: ServerConnection, room: str, peer: str) -> None:
        self.conn = conn
        self.room = room
        self.peer = peer
        self.queue: deque[_Message] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.closing = False
        self.writer: asyncio.Task[None] | None = None
        """The task draining the queue, once something had to wait in it."""
        self.writing = False
        """The writer task holds a message it took from the queue (sending it)."""
        self.gone = False
        self.joined = False
        self.opened = False
        self.why = ""
        self.since = time.monotonic()
        self.rcvd = 0
        self.sent = 0
        self.session: Any = None
        """The room-protocol session, for a ``wsloop.room.v1`` connection."""
        self.identity: Any = None
        """What the relay's ``auth`` hook said of this client (``None`` without one)."""
        self.address = ""
        """The client's address when it counts against the per-address limit."""
        self.limit: Any = None
        """The client's :class:`~wsloop.relay._guard.RateLimit`, if rates are limited."""


def _peer(conn: ServerConnection) -> str:
    try:
        address = conn.remote_address
    except Exception:  # pragma: no cover - the transport is gone
        return "?"
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _room_of(request: Request) -> str:
    path = request.path.split("?", 1)[0]
    return path or "/"


def _first_line(body: bytes | bytearray) -> str:
    lines = body.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else ""
