"""What the sync and async façades share: options, handlers, conditions, expressions.

:class:`~wsloop.WebSocket` and :class:`~wsloop.AsyncWebSocket` differ only in
where the I/O runs and what waits; everything a user reads or sets that is not
about waiting lives here once, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import os
import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ._headers import header_items
from ._sansio.lifecycle import Sender
from ._sansio.proxy import parse_proxy
from ._url import parse_url
from .drivers.base import Config
from .events import BinaryMessage, Closed, Error, Event, Opened, TextMessage
from .sansio import State

if TYPE_CHECKING:
    from ._binary import BinaryData
    from ._sansio.lifecycle import Lifecycle
    from ._url import URL

__all__ = ["HANDLERS", "OPTIONS", "FacadeBase", "config_from", "make_config", "parse_protocols"]

F = TypeVar("F", bound=Callable[..., Any])

HANDLERS = ("on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message")
"""The Construct plugin's five triggers, as handler attribute names."""

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def make_config(
    *,
    compression: str | None,
    max_message_size: int | None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    origin: str | None,
    user_agent: str | None,
    connect_timeout: float | None,
    close_timeout: float | None,
    max_queue: int | None,
    max_buffered_amount: int | None,
    ping_interval: float | None,
    ping_timeout: float | None,
    proxy: str | bool | None,
    ssl: _ssl.SSLContext | None,
    cafile: str | None,
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None,
    insecure: bool,
) -> Config:
    """Check the options every façade takes and bundle them for a driver.

    Raises:
        ValueError: a value out of range or a conflicting combination.
        TypeError: a value of the wrong type.
    """
    if compression not in ("deflate", None):
        raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")
    for name, limit in (
        ("max_message_size", max_message_size),
        ("max_queue", max_queue),
        ("max_buffered_amount", max_buffered_amount),
    ):
        if limit is not None and limit <= 0:
            raise ValueError(f"{name} must be positive or None")
    for name, value in (
        ("connect_timeout", connect_timeout),
        ("close_timeout", close_timeout),
        ("ping_interval", ping_interval),
        ("ping_timeout", ping_timeout),
    ):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive or None")
    if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
        raise TypeError("ssl must be an ssl.SSLContext")
    if ssl is not None and (certfile or keyfile or insecure):
        raise ValueError(
            "give either ssl= or certfile=/keyfile=/insecure=, not both "
            "(set the client certificate or verification on the SSLContext)"
        )
    if keyfile and not certfile:
        raise ValueError("keyfile= needs certfile= (the certificate that goes with the key)")
    if isinstance(proxy, str):
        if proxy:
            parse_proxy(proxy)  # ValueError with the reason, password hidden
    elif proxy is not None and not isinstance(proxy, bool):
        raise TypeError(f"proxy must be a URL, None or a bool, not {type(proxy).__name__}")
    pairs = header_items(
        headers if headers is None or isinstance(headers, Mapping) else list(headers)
    )
    return Config(
        compression=compression,
        max_message_size=max_message_size,
        origin=origin,
        headers=tuple(pairs),
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_queue=max_queue,
        max_buffered_amount=max_buffered_amount,
        ssl=ssl,
        cafile=cafile,
        certfile=None if certfile is None else os.fspath(certfile),
        keyfile=None if keyfile is None else os.fspath(keyfile),
        insecure=bool(insecure),
        proxy=proxy,
        user_agent=user_agent,
    )


OPTIONS: tuple[str, ...] = tuple(inspect.signature(make_config).parameters)
"""The options every façade takes and hands to its driver: :func:`make_config`'s parameters."""


def config_from(arguments: Mapping[str, Any]) -> Config:
    """:func:`make_config` with :data:`OPTIONS` picked from a façade's ``__init__`` arguments.

    Each façade spells the options out in its signature (for the reader, the
    IDE and the type checker) and passes ``locals()`` here, so the list of
    what reaches the driver is written once; ``tests/test_facade_parity.py``
    checks that both signatures agree.
    """
    return make_config(**{name: arguments[name] for name in OPTIONS})


class _Driver(Sender, Protocol):
    """What :class:`FacadeBase` reads from a driver and sends through."""

    @property
    def buffered_amount(self) -> int: ...
    @property
    def latency(self) -> float | None: ...


def parse_protocols(protocol: str | Sequence[str] | None) -> tuple[str, ...]:
    if protocol is None:
        protocols: tuple[str, ...] = ()
    elif isinstance(protocol, str):
        protocols = (protocol,) if protocol else ()
    else:
        protocols = tuple(protocol)
    for name in protocols:
        if not isinstance(name, str) or not name or not all(c in _TOKEN_CHARS for c in name):
            raise ValueError(f"invalid subprotocol name {name!r}: it must be an HTTP token")
    if len(set(protocols)) != len(protocols):
        raise ValueError(f"subprotocol names repeat: {protocols!r}")
    return protocols


class FacadeBase:
    """What the sync and async façades share: options, handlers, conditions, expressions.

    A subclass sets ``self._driver`` and dispatches events through
    :meth:`_apply`, which updates the expressions and returns the handler.
    """

    on_opened: Callable[[Opened], object] | None
    """On opened: called with :class:`Opened` once the connection is open."""
    on_closed: Callable[[Closed], object] | None
    """On closed: called with :class:`Closed`, exactly once per ``connect()``."""
    on_error: Callable[[Error], object] | None
    """On error: called with :class:`Error`; :class:`Closed` always follows."""
    on_text_message: Callable[[TextMessage], object] | None
    """On text message: called with :class:`TextMessage`."""
    on_binary_message: Callable[[BinaryMessage], object] | None
    """On binary message: called with :class:`BinaryMessage`."""

    _driver: _Driver
    _handler_names: ClassVar[tuple[str, ...]] = HANDLERS
    """The handler attributes; a subclass with more events extends it."""

    def __init__(self, config: Config, binary_data: BinaryData | None, life: Lifecycle) -> None:
        self._config = config
        self._life = life
        self.binary_data = binary_data
        """The :class:`BinaryData` that binary messages are written into, or ``None``."""
        self.on_opened = None
        self.on_closed = None
        self.on_error = None
        self.on_text_message = None
        self.on_binary_message = None
        self._url = ""
        self._close_code = 0
        self._close_reason = ""
        self._error_msg = ""
        self._message_text = ""
        self._protocol = ""
        self._active = False

    @property
    def _active(self) -> bool:
        """Between ``connect()`` and the dispatch of the Closed that ends its session."""
        return self._life.active

    @_active.setter
    def _active(self, value: bool) -> None:
        self._life.active = value

    # Sends: the same on both façades.

    def send_text(self, text: str) -> bool:
        """Send text: send a text message if the connection is open.

        Returns:
            ``True`` if the message was accepted; ``False`` (and nothing is
            sent) when the connection is not open. Never blocks: what the
            network cannot take at once waits in :attr:`buffered_amount`
            (with :class:`~wsloop.AsyncWebSocket`, await ``drain()`` to keep
            that small). With a :class:`~wsloop.Reconnect` ``outbox``, a
            message sent while the session waits to (re)connect is kept and
            sent once it opens.
        """
        return self._life.send_text(self._driver, text)

    def send_binary(self, data: bytes | bytearray | memoryview | BinaryData) -> bool:
        """Send binary: send a binary message if the connection is open.

        Args:
            data: bytes-like, or a :class:`BinaryData` (its whole contents).

        Returns:
            ``True`` if accepted, ``False`` when the connection is not open.
        """
        return self._life.send_binary(self._driver, data)

    def ping(self, data: bytes = b"") -> bool:
        """Send a ping if the connection is open; return whether it was sent."""
        return self._life.ping(self._driver, data)

    # Registration.

    def event(self, fn: F) -> F:
        """Decorator: register ``fn`` as the handler its name says.

        ::

            @ws.event
            async def on_text_message(event): ...

        Raises:
            ValueError: the name is not one of the five handler names.
        """
        name = getattr(fn, "__name__", "")
        names = self._handler_names
        if name not in names:
            raise ValueError(
                f"unknown event handler name {name!r}; use one of: {', '.join(names)}"
            )
        setattr(self, name, fn)
        return fn

    def __setattr__(self, name: str, value: object) -> None:
        if name[0] == "_":  # internal state: nothing to check
            object.__setattr__(self, name, value)
            return
        names = self._handler_names
        if name.startswith("on_") and name not in names:
            raise AttributeError(f"unknown event handler {name!r}; use one of: {', '.join(names)}")
        if name in names and value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, not {value!r}")
        object.__setattr__(self, name, value)

    # For the subclasses.

    def _target(
        self, url: str, protocol: str | Sequence[str] | None
    ) -> tuple[URL, tuple[str, ...]]:
        """Check the arguments of ``connect()``; raise ``ValueError`` before any I/O."""
        return parse_url(url), parse_protocols(protocol)

    def _begin(self, url: str) -> None:
        """A new connection starts: reset the expressions of the previous one."""
        self._url = url
        self._close_code = 0
        self._close_reason = ""
        self._error_msg = ""
        self._protocol = ""
        self._life.begin()

    def _apply(self, event: Event) -> Callable[[Any], object] | None:
        """Update the expressions for ``event``; return its handler, if set."""
        cls = type(event)
        if cls is TextMessage:
            # Straight into __dict__: the checking __setattr__ costs a call per message.
            self.__dict__["_message_text"] = event.text  # type: ignore[union-attr]
            return self.on_text_message
        if cls is BinaryMessage:
            if self.binary_data is not None:
                self.binary_data.set_from_bytes(event.data)  # type: ignore[union-attr]
            return self.on_binary_message
        if cls is Opened:
            self._protocol = event.subprotocol or ""  # type: ignore[union-attr]
            return self.on_opened
        if cls is Error:
            self._error_msg = event.message  # type: ignore[union-attr]
            return self.on_error
        assert isinstance(event, Closed)
        self._close_code = event.code
        self._close_reason = event.reason
        return self.on_closed

    # Conditions.

    @property
    def is_connecting(self) -> bool:
        """Is connecting: true while the connection is being established."""
        return self._driver.state is State.CONNECTING

    @property
    def is_open(self) -> bool:
        """Is open: true while the connection is open for messages."""
        return self._driver.state is State.OPEN

    @property
    def is_closed(self) -> bool:
        """True before the first ``connect()`` and once ``on_closed`` has fired."""
        return not self._active

    @property
    def state(self) -> State | None:
        """The connection's :class:`~wsloop.State`; ``None`` before ``connect()``."""
        return self._driver.state

    # Expressions.

    @property
    def close_code(self) -> int:
        """CloseCode: the code of the last ``on_closed`` (0 before any)."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """CloseReason: the reason of the last ``on_closed``, possibly empty."""
        return self._close_reason

    @property
    def error_msg(self) -> str:
        """ErrorMsg: the message of the last ``on_error`` of this connection."""
        return self._error_msg

    @property
    def message_text(self) -> str:
        """MessageText: the text of the last text message."""
        return self._message_text

    @property
    def protocol(self) -> str:
        """The subprotocol the server selected, ``""`` if none."""
        return self._protocol

    @property
    def url(self) -> str:
        """The URL given to the last ``connect()``."""
        return self._url

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds (``None`` until one)."""
        return self._driver.latency

    @property
    def buffered_amount(self) -> int:
        """Bytes sent with ``send_*`` that still wait to be written."""
        return self._driver.buffered_amount

    def __repr__(self) -> str:
        state = self._driver.state
        name = "IDLE" if state is None else state.name
        return f"<{type(self).__name__} {name} {self._url!r}>"
