"""The events a WebSocket delivers to its handlers.

One handler per event class, named ``on_`` plus the class name in snake case:
:class:`Opened` goes to ``on_opened``, :class:`TextMessage` to
``on_text_message`` and so on.

Ordering contract, for every call of ``connect()``:

* at most one :class:`Opened`, before any message;
* :class:`Error` comes before :class:`Closed` whenever the connection did not
  end with a completed close handshake;
* exactly one :class:`Closed`, always the last event of that connection.

The classes are frozen and final; match on them::

    match event:
        case TextMessage(text=text): ...
        case Closed(code=code): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .exceptions import WebSocketError

__all__ = [
    "BinaryMessage",
    "Closed",
    "Error",
    "Event",
    "Opened",
    "Reconnecting",
    "TextMessage",
    "handler_name",
]


@final
@dataclass(frozen=True, slots=True)
class Opened:
    """The connection is established and messages may flow (On opened)."""

    subprotocol: str | None = None
    """The subprotocol the server selected, or ``None``."""
    extensions: tuple[str, ...] = ()
    """The extensions in use, for example ``("permessage-deflate",)``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The headers of the server's handshake response."""


@final
@dataclass(frozen=True, slots=True)
class TextMessage:
    """A text message arrived (On text message)."""

    text: str
    """The text of the message (MessageText)."""


@final
@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A binary message arrived (On binary message)."""

    data: bytes
    """The contents of the message."""


@final
@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong with the connection (On error).

    A :class:`Closed` event always follows.
    """

    message: str
    """A sentence a person can act on (ErrorMsg)."""
    exception: WebSocketError
    """The exception behind it, one of :mod:`wsloop.exceptions`."""


@final
@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is closed (On closed). Always the last event."""

    code: int
    """The close code (CloseCode): the server's, 1005 if its close frame had
    none, the one the client sent when it failed the connection, or 1006 when
    no close frame was exchanged at all."""
    reason: str = ""
    """The close reason (CloseReason), possibly empty."""
    was_clean: bool = False
    """True when the close handshake completed."""


@final
@dataclass(frozen=True, slots=True)
class Reconnecting:
    """With reconnection on: the connection closed and will be tried again.

    Comes right after :class:`Closed`; the next attempt starts ``delay``
    seconds later and brings :class:`Opened` again, or another
    :class:`Error` and :class:`Closed`.
    """

    attempt: int
    """1 for the first retry after a drop, then 2, 3..."""
    delay: float
    """Seconds until the attempt starts."""


Event: TypeAlias = Opened | TextMessage | BinaryMessage | Error | Closed | Reconnecting
"""Any event a WebSocket delivers."""


_HANDLER_NAMES: dict[type[Event], str] = {
    Opened: "on_opened",
    TextMessage: "on_text_message",
    BinaryMessage: "on_binary_message",
    Error: "on_error",
    Closed: "on_closed",
    Reconnecting: "on_reconnecting",
}


def handler_name(event_type: type[Event]) -> str:
    """Return the name of the handler attribute for an event class."""
    return _HANDLER_NAMES[event_type]
