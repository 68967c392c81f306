"""The relay's opening handshake: who gets a ``101``, and with which subprotocol.

Theory of operation
-------------------
``websockets`` calls three hooks during a handshake, and :class:`Gate`
answers all three for one relay:

1. ``process_request``, before anything is validated: a plain ``GET`` of a
   monitoring path (``/healthz``, ``/metrics``, ``/status``) is answered with
   its page (through the ``pages`` callback: the pages read the relay, see
   ``_monitor.py``); then the ``auth`` hook (or the shared token) sees the
   :class:`~wsloop.relay.Handshake`, and the identity it returns is kept for
   step 3. A refusal is an HTTP status with a one-line reason.
2. ``select_subprotocol``: a game-room path needs the room protocol; the room
   protocol is given to whoever asks for it (not in echo mode); otherwise the
   client's first subprotocol that the relay accepts, or HTTP 400.
3. ``process_response``, once ``websockets`` has built its answer:
   :meth:`Gate.refusal` turns a ``101`` into a refusal while the relay stops
   (503), is full (503), or has too many connections from the client's
   address (429, networks in ``exempt`` not counted), or when a game-room
   client did not get the room protocol (400). Every refusal is counted in
   :attr:`Gate.refused`; the relay registers the member when there is none.

The per-address counts are taken with :meth:`Gate.count` when the member is
registered and given back with :meth:`Gate.release` when it is removed.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from websockets.exceptions import NegotiationError

from ._guard import Handshake, Refuse, exempt
from ._monitor import PATHS
from ._parts import _first_line, _peer, _room_of
from .rooms import ROOM_PROTOCOL

if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Callable, Sequence

    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response
    from websockets.typing import Subprotocol

    from .game import Games

__all__ = ["Gate", "subprotocol"]

logger = logging.getLogger("wsloop.relay")


def subprotocol(name: str) -> Subprotocol:
    """A subprotocol name as ``websockets`` types it."""
    return name  # type: ignore[return-value]


class Gate:
    """The handshake decisions of one relay.

    Args:
        echo: the relay answers each client alone (no room protocol).
        protocols: the subprotocols accepted besides the room protocol.
        games: the game-room path patterns.
        auth: the hook that names a client (or the shared-token check).
        token: the shared token, if any: it also guards the monitoring pages.
        max_connections: clients beyond this many get 503.
        max_per_address: connections from one address beyond this get 429.
        exempt: the networks not counted against ``max_per_address``.
        pages: answers a monitoring path: ``pages(path, token_ok, query)``.
    """

    def __init__(
        self,
        *,
        echo: bool,
        protocols: Sequence[str],
        games: Games,
        auth: Callable[[Handshake], Any] | None,
        token: str | None,
        max_connections: int,
        max_per_address: int | None,
        exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
        pages: Callable[[str, bool | None, str], Response],
    ) -> None:
        self.echo = echo
        self.protocols = tuple(protocols)
        self.games = games
        self.auth = auth
        self.token = token
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.exempt = exempt
        self.pages = pages
        self.refused = 0
        """Handshakes refused (auth, limits, full, shutting down)."""
        self.identities: dict[ServerConnection, Any] = {}
        """What ``auth`` said of a connection, from step 1 to step 3."""
        self.per_address: dict[str, int] = {}
        """Counted connections by address."""

    def select_subprotocol(
        self, conn: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if not offered:
            return None
        if self.games and self.games.match(_room_of(conn.request)) is not None:  # type: ignore[arg-type]
            if ROOM_PROTOCOL not in offered:
                raise NegotiationError(
                    f"this path is a game room: ask for the {ROOM_PROTOCOL} subprotocol"
                )
            return subprotocol(ROOM_PROTOCOL)
        if ROOM_PROTOCOL in offered and not self.echo:
            return subprotocol(ROOM_PROTOCOL)
        if not self.protocols:
            return None
        for name in offered:
            if name in self.protocols:
                return name
        raise NegotiationError(
            f"none of the requested subprotocols ({', '.join(offered)}) is accepted here; "
            f"this relay accepts: {', '.join(self.protocols)}"
        )

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = _room_of(request)
        # Connection may come as several header lines (get() raises then).
        upgrade = any("upgrade" in v.lower() for v in request.headers.get_all("Connection"))
        if path in PATHS and not upgrade:
            token_ok, query = None, ""
            if self.token is not None:
                token = Handshake.of(request, "").token
                token_ok = token is not None and hmac.compare_digest(token, self.token)
                query = f"?{urllib.parse.urlencode({'token': token})}" if token_ok else ""
            return self.pages(path, token_ok, query)
        if self.auth is None:
            return None
        handshake = Handshake.of(request, _peer(conn))
        try:
            identity = self.auth(handshake)
            if inspect.isawaitable(identity):
                identity = await identity
        except Refuse as refusal:
            return conn.respond(refusal.status, refusal.message.rstrip("\n") + "\n")
        except Exception:
            logger.exception("the relay's auth hook failed for %s", handshake.peer)
            return conn.respond(500, "The relay could not check who you are (see its log).\n")
        if identity is None:
            return conn.respond(401, "This relay does not know you: authentication required.\n")
        self.identities[conn] = identity
        return None

    def counted_address(self, conn: ServerConnection) -> str | None:
        """The client's address, if it counts against the per-address limit."""
        address = _address(conn)
        if address is None or exempt(address, self.exempt):
            return None
        return address

    def refusal(
        self,
        conn: ServerConnection,
        room: str,
        peer: str,
        response: Response,
        address: str | None,
        *,
        stopping: bool,
        connections: int,
    ) -> Response | None:
        """The refusal that replaces a ``101``, if any (a non-``101`` is counted and logged)."""
        if response.status_code != 101:
            if response.status_code == 200 and room in PATHS:
                return None  # a monitoring page, not a refusal
            self.refused += 1
            logger.info(
                "! %s refused %s: HTTP %d %s",
                peer,
                room,
                response.status_code,
                _first_line(response.body),
            )
            return None
        if stopping:
            self.refused += 1
            return conn.respond(503, "The relay is shutting down.\n")
        if connections >= self.max_connections:
            self.refused += 1
            logger.info("! %s refused %s: HTTP 503 full (%d connections)", peer, room, connections)
            return conn.respond(
                503,
                f"This relay is full ({self.max_connections} connections); try again later.\n",
            )
        limit = self.max_per_address
        if address is not None and limit is not None and self.per_address.get(address, 0) >= limit:
            self.refused += 1
            logger.info("! %s refused %s: HTTP 429 (%d from its address)", peer, room, limit)
            return conn.respond(
                429, f"Too many connections from your address ({limit}); close some first.\n"
            )
        if (
            self.games
            and self.games.match(room) is not None
            and response.headers.get("Sec-WebSocket-Protocol") != ROOM_PROTOCOL
        ):
            self.refused += 1
            return conn.respond(
                400,
                f"This path is a game room: connect with the {ROOM_PROTOCOL} subprotocol "
                "(see docs/rooms.md).\n",
            )
        return None

    def count(self, address: str) -> None:
        self.per_address[address] = self.per_address.get(address, 0) + 1

    def release(self, address: str) -> None:
        left = self.per_address.get(address, 1) - 1
        if left > 0:
            self.per_address[address] = left
        else:
            self.per_address.pop(address, None)


def _address(conn: ServerConnection) -> str | None:
    try:
        address = conn.remote_address
    except Exception:  # pragma: no cover - the transport is gone
        return None
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None
