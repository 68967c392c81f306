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

# Layout: each part, and what it may import (tests/test_layout.py checks the
# rules marked *).
#
# Leaves: events.py, exceptions.py, _url.py, _headers.py, _binary.py (+ _binary_typed.py).
#     The value types; they import only each other.
# The Sans-I/O core: bytes and events in and out, deadlines as numbers.
#     sansio.py     Session: the ordering contract, close codes, bounded
#                   sends; the public face of the core (re-exports State).
#     _engine.py    the only module that imports the wrapped engine
#                   (websockets' ClientProtocol); maps its events and errors.
#     _sansio/      reader.py (the native frame reader and message assembly,
#                   the hot path: FrameReader, which Session inherits),
#                   outgoing.py (a large message cut into fragments, text
#                   encoded a slice at a time), state.py (State,
#                   TRANSITIONS), lifecycle.py (what both façades decide:
#                   sends, outbox, close, retries),
#                   reconnect.py (the policy), proxy.py (the HTTP CONNECT and
#                   SOCKS handshakes), keepalive.py, sendlimit.py
#                   (max_buffered_amount, one warning).
#     * They import the leaves and each other: never socket, ssl, asyncio,
#       threading, select, selectors, time (no clock: the driver passes the
#       time in) nor wsloop.drivers.
# drivers/: base.py (the contract), poll.py, thread.py (on poll.py),
#     asyncio.py, browser.py (the browser's WebSocket, no core: BrowserDriver
#     and the options it refuses; _browser_events.py, what JavaScript calls
#     back: listeners, deadlines, the one end of a connection; _js.py, the
#     Pyodide and pygbag runtimes); what poll
#     and asyncio share: _attempt.py (the plan of a connection attempt: its
#     phases, the host each reaches, each failure's error), _timers.py (the
#     connect, close and keepalive deadlines and what each expiry does),
#     _poll_steps.py and _asyncio_steps.py (each driver's resolve, tcp, proxy
#     and tls steps: non-blocking calls, or coroutines), _common.py
#     (addresses, sockets, error texts), _tls.py (the TLS context cache).
#     They own sockets, threads, loops and clocks; they import the core and
#     the leaves, never a façade.
# The façades: _client.py (WebSocket), _async_client.py (AsyncWebSocket:
#     what the application calls; its base classes _async_dispatch.py, the
#     attempts, the dispatcher, backpressure, retries, waiting, and
#     _async_channel.py, the events kept for recv() and async for),
#     _facade.py (the options and triggers both share), room.py (Room). They
#     own the handlers; they import the drivers, the core and the leaves.
# relay/: the server, on the websockets server. server.py (Relay) puts
#     together the parts its docstring lists: _handshake/_guard/_monitor (up
#     to the 101), _delivery (send queues), _plain (plain rooms), _match (room
#     placement), rooms/_session (the room protocol), game (GameRoom),
#     _redis_rooms/_redis_session/_redis (rooms in Redis). * Its modules form
#     no import cycle. Imports wsloop only for _version and one engine helper
#     (_engine).
# cli/ (the wsloop command) and testing/ (servers, fakes, the driver battery) sit
#     on top and may import anything.
#
# One message in: drivers/poll.py reads the socket -> Session.receive_data()
#     (sansio.py, _sansio/reader.py, or _engine.py) -> Session.events_received() -> TextMessage
#     (events.py) -> WebSocket._dispatch() (_client.py) -> on_text_message.
# One send out: WebSocket.send_text() (_facade.py, _sansio/lifecycle.py) ->
#     PollDriver.send_text() -> Session.send_text() -> Session.data_to_send()
#     (a large one a fragment per call: _sansio/outgoing.py) -> the socket,
#     written by drivers/poll.py.

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
