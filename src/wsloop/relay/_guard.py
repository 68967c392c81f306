"""Who may connect and how fast they may talk: auth, per-address and rate limits.

Theory of operation
-------------------
Three checks stand between a client and a room, each with its own answer:

* **Authentication** runs in the opening handshake, before anything else of
  the relay looks at the request (``process_request``). The relay's ``auth``
  hook sees a :class:`Handshake` (path, query, headers, peer, and the token
  the client presented) and returns an *identity*: any value, which the room
  code later sees as the member's identity. Returning ``None`` refuses with
  HTTP 401; raising :class:`Refuse` refuses with the status and the readable
  body it carries (401 or 403 usually). A hook that raises anything else is a
  bug of the application: the client gets HTTP 500, the traceback goes to
  the log, the relay goes on. The shared-secret option (``token=``) is such a
  hook, written once here: the token comes from ``?token=`` or an
  ``Authorization: Bearer`` header (browsers cannot set headers on a
  WebSocket, so the query is the way for them) and is compared in constant
  time.
* **Connections per address** are counted when a client becomes a member and
  uncounted when it leaves; a client over the limit gets HTTP 429. Peers in
  the exempt networks (loopback by default) are not counted: a reverse proxy
  on the same host (nginx, Caddy) connects from loopback for all of its
  clients, and limiting it would limit everyone.
* **Rates** are token buckets per connection, one for messages and one for
  bytes, refilled continuously at the configured rate up to their burst. A
  message that finds its bucket short closes the sender with 1008 and a
  reason that says which limit it passed; what it sent before reached the
  room. The byte bucket always holds at least one message of the largest
  allowed size, so a legal message can never be refused for its size alone.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from websockets.http11 import Request

__all__ = ["Handshake", "Refuse"]


class Refuse(Exception):
    """Raised by an ``auth`` hook to refuse a client with an HTTP status.

    Args:
        status: the HTTP status (401: who are you?, 403: not you).
        message: the body the client reads (one line, for a person).
    """

    def __init__(self, status: int = 403, message: str = "Forbidden.") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Handshake:
    """What an ``auth`` hook sees of a client's opening handshake."""

    path: str
    """The URL path (the room), without the query."""
    query: Mapping[str, str]
    """The query parameters (the first value of each)."""
    headers: Mapping[str, str]
    """The request headers, by lower-case name."""
    peer: str
    """The client's address, ``host:port``."""
    token: str | None = field(default=None)
    """The token presented: ``?token=``, else ``Authorization: Bearer``."""

    @classmethod
    def of(cls, request: Request, peer: str) -> Handshake:
        """Build it from a ``websockets`` request."""
        path, _, raw_query = request.path.partition("?")
        query: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(key, value)
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        token = query.get("token")
        if token is None:
            scheme, _, credentials = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                token = credentials.strip()
        return cls(path or "/", query, headers, peer, token)


def shared_secret(secret: str) -> Callable[[Handshake], Any]:
    """An ``auth`` hook that admits clients presenting ``secret`` as their token.

    A client without a token gets HTTP 401, one with another token 403. The
    identity it returns is ``{"token": True}``.
    """
    expected = secret.encode()

    def check(handshake: Handshake) -> Any:
        if handshake.token is None:
            raise Refuse(
                401, "This relay needs a token: add ?token=... to the URL (or a Bearer header)."
            )
        if not hmac.compare_digest(handshake.token.encode(), expected):
            raise Refuse(403, "The token is not valid for this relay.")
        return {"token": True}

    return check


LOOPBACK = ("127.0.0.0/8", "::1/128")
"""The networks not counted against the per-address limit by default."""


def networks(specs: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``"10.0.0.0/8"``-style strings (a bare address is one host)."""
    try:
        return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)
    except ValueError as exc:
        raise ValueError(f"not a network or address: {exc}") from None


def exempt(host: str, nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    """Whether ``host`` is in one of ``nets`` (an unparsable host never is)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in nets)


class RateLimit:
    """Two token buckets (messages and bytes) for one connection.

    Args:
        messages: messages per second; ``None``: no limit.
        data: bytes per second; ``None``: no limit.
        max_size: the largest message allowed; the byte bucket holds at least one.
        burst: seconds of rate each bucket holds when full.
    """

    __slots__ = ("_bytes", "_data", "_data_cap", "_messages", "_msg_cap", "_msgs", "_then")

    def __init__(
        self, messages: float | None, data: float | None, max_size: int, burst: float = 2.0
    ) -> None:
        self._messages = messages
        self._data = data
        self._msg_cap = 0.0 if messages is None else max(1.0, messages * burst)
        self._data_cap = 0.0 if data is None else max(float(max_size), data * burst)
        self._msgs = self._msg_cap
        self._bytes = self._data_cap
        self._then = time.monotonic()

    def take(self, size: int) -> str | None:
        """Spend one message of ``size`` bytes; the reason if a limit is passed."""
        now = time.monotonic()
        elapsed = now - self._then
        self._then = now
        if self._messages is not None:
            self._msgs = min(self._msg_cap, self._msgs + elapsed * self._messages)
            if self._msgs < 1.0:
                return f"sending too fast: over {self._messages:g} messages/s"
            self._msgs -= 1.0
        if self._data is not None:
            self._bytes = min(self._data_cap, self._bytes + elapsed * self._data)
            if self._bytes < size:
                return f"sending too fast: over {size_text(self._data)}/s"
            self._bytes -= size
        return None


def size_text(n: float) -> str:
    """A byte count as a person reads it: ``16 MiB``, ``64 KiB``, ``100 bytes``."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} bytes"
