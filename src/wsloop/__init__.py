"""wsloop: a WebSocket client with event triggers that works inside any loop.

The Construct 3 WebSocket plugin, made Pythonic: conditions
(:attr:`WebSocket.is_connecting`, :attr:`WebSocket.is_open`,
:func:`is_supported`), triggers (``on_opened``, ``on_closed``, ``on_error``,
``on_text_message``, ``on_binary_message``), actions (:meth:`WebSocket.connect`,
:meth:`WebSocket.close`, :meth:`WebSocket.send_text`,
:meth:`WebSocket.send_binary`) and expressions (:attr:`WebSocket.close_code`,
:attr:`WebSocket.close_reason`, :attr:`WebSocket.error_msg`,
:attr:`WebSocket.message_text`).
"""

from __future__ import annotations

from ._async_client import AsyncWebSocket
from ._binary import BinaryData
from ._client import WebSocket, is_supported, validate_close
from ._sansio.reconnect import Reconnect
from ._url import URL, parse_url
from ._version import __version__
from .drivers._common import InsecureWarning
from .events import BinaryMessage, Closed, Error, Event, Opened, Reconnecting, TextMessage
from .exceptions import (
    ConcurrencyError,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    MessageTooBig,
    NegotiationError,
    ProtocolError,
    ProxyError,
    TimeoutError,
    TLSError,
    WebSocketError,
)
from .room import Member, Room
from .sansio import Session, State

__all__ = [
    "URL",
    "AsyncWebSocket",
    "BinaryData",
    "BinaryMessage",
    "Closed",
    "ConcurrencyError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Error",
    "Event",
    "HandshakeError",
    "InsecureWarning",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUTF8",
    "Member",
    "MessageTooBig",
    "NegotiationError",
    "Opened",
    "ProtocolError",
    "ProxyError",
    "Reconnect",
    "Reconnecting",
    "Room",
    "Session",
    "State",
    "TLSError",
    "TextMessage",
    "TimeoutError",
    "WebSocket",
    "WebSocketError",
    "__version__",
    "is_supported",
    "parse_url",
    "validate_close",
]
