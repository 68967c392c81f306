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

Answers nobody reads
--------------------
The engine answers every ping with a pong as it reads it, and writes the
pong to the transport whatever is already waiting there: the write buffer
limits only the relay's own messages (``send`` waits for it to drain). A
client that sends pings faster than it reads the pongs, or never reads,
would thus grow the relay's write buffer without bound (tests/relay/
test_relay_hostile.py measured 180 MiB in 8 s). The connection therefore
watches the buffer after each read: messages alone never take it past the
high-water mark plus the largest message sent (``send`` writes one frame,
then waits), so anything beyond that by :data:`ANSWER_SLACK` is answers
the client does not read. Then the connection **stops reading** the client
(TCP back-pressure: its pings wait in the kernel, nothing more is answered)
and calls ``on_unread_answers``, with which the relay closes it as too slow
(1008). Reading resumes once the buffer drains, so a client that reads
after all completes the closing handshake; one that never does is aborted
at the close timeout. Pausing reading is shared with the engine's own flow
control (the queue of frames received), so neither resumes what the other
paused.

Once the transport is closing (a write failed: the client reset the
connection), the connection writes nothing more: asyncio would log
"socket.send() raised exception." for every further write, and a client
that resets in the middle of a ping burst would fill the relay's log with
one line per pong.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import TooManyFragments
from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.server import ServerProtocol

from .._engine import close_ends_fragmented_message

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable

    from websockets.frames import Frame
    from websockets.typing import Data, DataLike

__all__ = [
    "ANSWER_SLACK",
    "DEFAULT_MAX_FRAGMENTS",
    "HELD_SLACK",
    "RelayConnection",
    "RelayServerProtocol",
    "connection_class",
]

DEFAULT_MAX_FRAGMENTS = 65536
"""The most frames one message may be split into (Autobahn's 9.* cases use 65,536)."""
ANSWER_SLACK = 64 * 1024
"""Bytes of unread answers (pongs) beyond what messages can leave in the write buffer."""

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

    on_unread_answers: Callable[[], None] | None = None
    """Called once when the client stops reading the answers to its pings (see above)."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        if type(protocol) is ServerProtocol:
            protocol.__class__ = RelayServerProtocol
        super().__init__(protocol, *args, **kwargs)
        self._largest_sent = 0
        self._holding = False  # reading stopped: answers are not read
        self._engine_paused = False  # reading stopped by the engine's frame queue
        self._reading_paused = False
        self._reported = False

    # Reading stops for the engine's flow control or for unread answers.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.recv_messages.pause = self._engine_pause
        self.recv_messages.resume = self._engine_resume

    def _engine_pause(self) -> None:
        self._engine_paused = True
        self._update_reading()

    def _engine_resume(self) -> None:
        self._engine_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        paused = self._holding or self._engine_paused
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        limit = self.write_limit_high + self._largest_sent + ANSWER_SLACK
        if not self._holding and self.transport.get_write_buffer_size() > limit:
            self._holding = True
            self._update_reading()
            if not self._reported and self.on_unread_answers is not None:
                self._reported = True
                self.on_unread_answers()

    def send_data(self) -> None:
        """Write what the engine has to send, except to a transport already closing."""
        transport = self.transport
        for data in self.protocol.data_to_send():
            if transport.is_closing():
                continue  # the connection failed: nothing can reach the client now
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the engine's end of stream: half-close
                with contextlib.suppress(Exception):
                    transport.write_eof()
            else:
                transport.close()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._holding:  # the client read its answers after all
            self._holding = False
            self._update_reading()

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        text: bool | None = None,
    ) -> None:
        """Send a message; its size raises the write-buffer level messages may reach."""
        if isinstance(message, (bytes, bytearray, memoryview)):
            self._largest_sent = max(self._largest_sent, len(message))
        elif isinstance(message, str):
            self._largest_sent = max(self._largest_sent, 4 * len(message))
        await super().send(message, text=text)

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
