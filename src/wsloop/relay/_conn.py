"""The relay's connection and engine: ``websockets``' server classes, adjusted.

Theory of operation
-------------------
``websockets.asyncio.server.serve`` builds one Sans-I/O
:class:`~websockets.server.ServerProtocol` and one asyncio
:class:`~websockets.asyncio.server.ServerConnection` per client. The relay
passes its own connection class (``create_connection``), which makes two
adjustments when it is built:

* **A close frame wins over an unfinished fragmented message** (RFC 6455
  5.4 and 5.5.1; Autobahn case 7.1.5). The engine answers such a close with
  1002 "incomplete fragmented message"; the relay's protocol applies the
  same correction as the client's (``wsloop._engine``), so the closing
  handshake proceeds with the client's code. The connection swaps the class
  of the protocol ``serve`` created for :class:`RelayServerProtocol`, a
  subclass that adds no state, because ``serve`` offers no hook to build it.
* **The fragment limit is the relay's own.** ``websockets`` caps a message at
  a module-wide ``MAX_FRAGMENTS`` (4096 frames, or the environment variable
  ``WEBSOCKETS_MAX_FRAGMENTS``) and closes with 1009 past it, so 4 MiB in
  64-byte fragments (Autobahn 9.3.1) is refused whatever ``max_size`` says.
  :meth:`RelayConnection.recv` reads a message frame by frame
  (``recv_streaming``, which has no such cap) and counts the frames against
  the relay's ``max_fragments`` instead; nothing process-wide is changed.
  The pieces of a fragmented message are gathered into one ``bytearray`` or
  ``StringIO`` rather than a list, so memory stays bounded by ``max_size``
  (which the engine enforces on the whole message) and not by the number of
  fragments; a message of one frame is returned as it came.

* **Nothing after the request is read before the response is sent.** RFC
  6455 4.1 has a client wait for the server's handshake response before it
  sends frames; one that does not (its frames in the same read as its
  request) made the engine parse them while the handshake was still being
  decided. A close frame or a bad frame there made the engine send its EOF,
  and the ``400``/``101`` response that followed tripped an assertion in
  ``send_response`` (logged as "unexpected internal error"; the client got
  no answer at all). :class:`RelayServerProtocol` holds such bytes (up to
  ``max_size`` plus :data:`HELD_SLACK`) and gives them to the engine once
  the ``101`` is sent; after a refusal they are dropped, as the engine
  drops whatever follows a refusal. Found by the ``relay`` fuzz target
  (``fuzz/target_relay.py``).

Text fragments are decoded as they arrive (``recv_streaming`` does), so
invalid UTF-8 fails the connection with 1007 at the first bad fragment.
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import TooManyFragments
from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .._engine import close_ends_fragmented_message

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from websockets.frames import Frame
    from websockets.typing import Data

__all__ = [
    "DEFAULT_MAX_FRAGMENTS",
    "HELD_SLACK",
    "RelayConnection",
    "RelayServerProtocol",
    "connection_class",
]

DEFAULT_MAX_FRAGMENTS = 65536
"""The most frames one message may be split into (Autobahn's 9.* cases use 65,536)."""

HELD_SLACK = 64 * 1024
"""Bytes beyond ``max_size`` held while the handshake is decided; past it the engine reads them."""


class RelayServerProtocol(ServerProtocol):
    """The server engine with the relay's adjustments (see the module docstring).

    Made by swapping the class of a built :class:`ServerProtocol`, so it has
    no ``__init__``: its own state starts as the class attributes below.
    """

    _head_tail = b""
    """The last bytes of the request head seen, while its end is not."""
    _head_done = False
    """The request head has ended (the engine has it)."""
    _held: bytearray | None = None
    """What followed the request, held until the response is sent."""

    def recv_frame(self, frame: Frame) -> None:
        close_ends_fragmented_message(self, frame)
        super().recv_frame(frame)

    def receive_data(self, data: bytes | bytearray) -> None:
        held = self._held
        if held is not None:
            if len(held) + len(data) <= (self.max_message_size or 2**20) + HELD_SLACK:
                held += data
                return
            # Too much before the handshake is decided: the engine reads it all.
            self._held = None
            super().receive_data(bytes(held))
        elif not self._head_done and self.state is State.CONNECTING:
            end = self._end_of_head(data)
            if end is not None:
                super().receive_data(data[:end])
                if self.state is State.CONNECTING and not self.eof_sent:
                    self._held = bytearray(data[end:])
                    return
                data = data[end:]
        super().receive_data(data)

    def _end_of_head(self, data: bytes | bytearray) -> int | None:
        """Where in ``data`` the request head ends, if it ends in it."""
        tail = self._head_tail
        seen = tail + bytes(data)
        index = seen.find(b"\r\n\r\n")
        if index < 0:
            self._head_tail = seen[-3:]
            return None
        self._head_done = True
        self._head_tail = b""
        return index + 4 - len(tail)

    def send_response(self, response: Any) -> None:
        super().send_response(response)
        held, self._held = self._held, None
        if held and self.state is State.OPEN:
            super().receive_data(bytes(held))


class RelayConnection(ServerConnection):
    """A server connection with the relay's protocol and fragment limit."""

    max_fragments: int = DEFAULT_MAX_FRAGMENTS
    """The most frames a message may have; one more closes the client with 1009."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        if type(protocol) is ServerProtocol:
            protocol.__class__ = RelayServerProtocol
        super().__init__(protocol, *args, **kwargs)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """The opening handshake; then the frames a client sent too early, if any."""
        await super().handshake(*args, **kwargs)
        # RelayServerProtocol gave them to the engine when the 101 was sent:
        # deliver their events now, as data_received does for later bytes.
        events = self.protocol.events_received()
        if events:
            self.send_data()
            for event in events:
                self.process_event(event)

    @overload
    async def recv(self, decode: Literal[True]) -> str: ...

    @overload
    async def recv(self, decode: Literal[False]) -> bytes: ...

    @overload
    async def recv(self, decode: bool | None = None) -> Data: ...

    async def recv(self, decode: bool | None = None) -> Data:
        """Receive the next message, counting its frames against ``max_fragments``.

        Raises:
            ConnectionClosed: the connection is closed (by either side, or
                because the message broke a limit or the protocol).
        """
        if decode is not None:  # not used by the relay: websockets' own path
            return await super().recv(decode)
        first: Data | None = None
        text: io.StringIO | None = None
        binary: bytearray | None = None
        count = 0
        # An async generator underneath: closed at once when the limit is passed.
        stream = cast("AsyncGenerator[Data, None]", self.recv_streaming())
        async for piece in stream:
            count += 1
            if count == 1:
                first = piece
                continue
            if count > self.max_fragments:
                await stream.aclose()
                await self._fail_too_many_fragments()
            if isinstance(piece, str):
                if text is None:
                    text = io.StringIO()
                    text.write(first)  # type: ignore[arg-type]
                text.write(piece)
            else:
                if binary is None:
                    binary = bytearray(first)  # type: ignore[arg-type]
                binary += piece
        if text is not None:
            return text.getvalue()
        if binary is not None:
            return bytes(binary)
        assert first is not None
        return first

    async def _fail_too_many_fragments(self) -> None:
        """Close with 1009 like websockets does at its own cap; raises ConnectionClosed."""
        self.set_connection_exc(TooManyFragments(self.max_fragments))
        async with self.send_context():
            self.protocol.fail(
                CloseCode.MESSAGE_TOO_BIG,
                f"message in more than {self.max_fragments} fragments",
            )
        await asyncio.shield(self.connection_lost_waiter)
        raise self.close_exc


def connection_class(max_fragments: int) -> type[RelayConnection]:
    """The connection class for ``serve(create_connection=...)`` with this limit."""
    if max_fragments <= 0:
        raise ValueError(f"max_fragments must be positive, not {max_fragments}")

    class _Configured(RelayConnection):
        pass

    _Configured.max_fragments = max_fragments
    _Configured.__name__ = _Configured.__qualname__ = "RelayConnection"
    return _Configured
