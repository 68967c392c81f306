"""Exceptions raised or reported by wsloop.

Every failure of a connection reaches the application as an
:class:`~wsloop.Error` event whose ``exception`` is one of these, followed by
exactly one :class:`~wsloop.Closed` event. Only mistakes in the calling code
(a malformed URL, an invalid close code, a send from the wrong state where the
API promises to raise) are raised directly.

.. code-block:: text

    WebSocketError(Exception)
    ├── InvalidURI(WebSocketError, ValueError)
    ├── ConnectError                      DNS, TCP or proxy step failed
    │   ├── ProxyError                    .proxy, .target, .status (_sansio/proxy.py)
    │   └── TLSError                      TLS handshake or certificate failed
    ├── HandshakeError                    the HTTP upgrade went wrong
    │   ├── InvalidStatus                 .status, .headers, .body
    │   └── NegotiationError              subprotocol or extension refused
    ├── TimeoutError(WebSocketError, builtins.TimeoutError)   .phase
    ├── ConnectionClosed                  .code, .reason
    │   ├── ConnectionClosedOK            closed cleanly
    │   └── ConnectionClosedError         broken by the peer or the network
    ├── ProtocolError                     the server broke RFC 6455
    │   ├── InvalidUTF8                   closes with 1007
    │   └── MessageTooBig                 closes with 1009
    ├── InvalidState(WebSocketError, RuntimeError)
    └── ConcurrencyError(WebSocketError, RuntimeError)

Warning: ``InsecureWarning(UserWarning)``, at each ``connect()`` with
``insecure=True`` (defined in ``drivers/_common.py``).

The cause (an :class:`OSError`, :class:`ssl.SSLError`, the engine's own
exception) is kept as ``__cause__``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ConcurrencyError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUTF8",
    "MessageTooBig",
    "NegotiationError",
    "ProtocolError",
    "ProxyError",
    "TLSError",
    "TimeoutError",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Root of every exception that wsloop raises or reports."""


class InvalidURI(WebSocketError, ValueError):
    """The URL given to ``connect()`` is not a usable WebSocket URL."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(url, why)
        self.url = url
        """The URL as given."""
        self.why = why
        """What is wrong with it."""

    def __str__(self) -> str:
        return f"invalid WebSocket URL {self.url!r}: {self.why}"


class ConnectError(WebSocketError):
    """The TCP connection (or the name lookup before it) could not be made."""


class ProxyError(ConnectError):
    """The proxy could not be reached, or it would not open the tunnel."""

    def __init__(
        self,
        message: str,
        *,
        proxy: str,
        target: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        """The whole explanation, as ``str()`` gives it."""
        self.proxy = proxy
        """The proxy's ``host:port``."""
        self.target = target
        """The destination ``host:port`` the tunnel was for, when known."""
        self.status = status
        """The HTTP status or SOCKS5 reply code the proxy answered, if any."""

    def __str__(self) -> str:
        return self.message


class TLSError(ConnectError):
    """The TLS handshake failed, most often because of the certificate."""


class HandshakeError(WebSocketError):
    """The server's answer to the WebSocket upgrade request was not acceptable."""


class InvalidStatus(HandshakeError):
    """The server answered the upgrade request with a status other than 101."""

    def __init__(
        self, status: int, reason: str, headers: Mapping[str, str], body: bytes = b""
    ) -> None:
        super().__init__(status, reason, headers, body)
        self.status = status
        """The HTTP status code, for example 404."""
        self.reason_phrase = reason
        """The HTTP reason phrase, for example ``"Not Found"``."""
        self.headers = dict(headers)
        """The response headers."""
        self.body = body
        """The response body, if the server sent one."""

    def __str__(self) -> str:
        text = f"server rejected the WebSocket upgrade: HTTP {self.status}"
        if self.reason_phrase:
            text += f" {self.reason_phrase}"
        location = self.headers.get("Location") or self.headers.get("location")
        if location and 300 <= self.status < 400:
            text += f" (redirect to {location}; connect to that URL instead)"
        body = self.body[:200].decode("utf-8", "replace").strip().splitlines()
        if body and body[0].isprintable():
            text += f": {body[0]}"
        return text


class NegotiationError(HandshakeError):
    """The server did not agree on a subprotocol or an extension."""


class TimeoutError(WebSocketError, builtins.TimeoutError):
    """A phase of the connection took longer than its timeout."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(phase, seconds)
        self.phase = phase
        """What timed out: ``"connect (TLS handshake)"`` and the other connect
        steps, ``"closing handshake"`` or ``"keepalive"``."""
        self.seconds = seconds
        """The timeout that expired, in seconds."""

    def __str__(self) -> str:
        if self.phase == "keepalive":
            return (
                f"keepalive timeout: no pong within {self.seconds:g} s "
                "(the server or the network stopped answering)"
            )
        return f"{self.phase} timed out after {self.seconds:g} s"


class ConnectionClosed(WebSocketError):
    """The connection is closed; raised by APIs that must report it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        """The close code, 1006 if no close frame was exchanged."""
        self.reason = reason
        """The close reason, possibly empty."""

    def __str__(self) -> str:
        if self.reason:
            return f"{self.reason} (close code {self.code})"
        return f"connection closed with code {self.code}"


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed with a completed close handshake."""


class ConnectionClosedError(ConnectionClosed):
    """The connection was broken by the peer or the network."""


class ProtocolError(WebSocketError):
    """The server violated the WebSocket protocol (RFC 6455).

    The client then closes the connection with :attr:`close_code`.
    """

    close_code = 1002


class InvalidUTF8(ProtocolError):
    """A text message or close reason was not valid UTF-8."""

    close_code = 1007


class MessageTooBig(ProtocolError):
    """A message was larger than the ``max_message_size`` option."""

    close_code = 1009


class InvalidState(WebSocketError, RuntimeError):
    """An operation was called in a state where it cannot work."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two threads or tasks used the same object in a way that cannot work."""
