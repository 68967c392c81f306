"""The wsloop relay: a ready WebSocket server for chat rooms and turn-based games.

Every URL path is a room: a message from one member of
``ws://host:8765/room/lobby`` reaches every *other* member of that room.
Run it with ``wsloop serve`` or embed it::

    from wsloop.relay import serve

    with serve() as relay:           # a free port on 127.0.0.1, in a thread
        ws.connect(relay.url + "/room/lobby")

A client that asks for the ``wsloop.room.v1`` subprotocol gets the room
protocol instead (presence, history, resume: ``docs/rooms.md``).

:class:`Relay` is the :mod:`asyncio` object behind both; see ``docs/relay.md``.
"""

from __future__ import annotations

from ._guard import Handshake, Refuse
from ._thread import RelayThread, serve
from .game import GameRoom, JoinRefused
from .rooms import ROOM_PROTOCOL, RoomConfig, RoomCore, Seat
from .server import (
    DEFAULT_MAX_SIZE,
    DEFAULT_PORT,
    Relay,
    RelayError,
    RelayStateError,
    RelayStats,
)

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_PORT",
    "ROOM_PROTOCOL",
    "GameRoom",
    "Handshake",
    "JoinRefused",
    "Refuse",
    "Relay",
    "RelayError",
    "RelayStateError",
    "RelayStats",
    "RelayThread",
    "RoomConfig",
    "RoomCore",
    "Seat",
    "serve",
]
