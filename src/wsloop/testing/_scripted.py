"""The scripted server: a deliberately bad WebSocket server for tests.

:class:`ScriptedServer` accepts the handshake (unless told not to), then runs
a script of steps (:class:`SendText`, :class:`Drop`, :class:`Hang`...) on
every connection. Its frames are written by hand, since a correct library
would refuse to send most of them; it handles one simple client conversation
per connection, each in a thread of its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from types import TracebackType

# The scripted server: the steps of a script.


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the handshake with this HTTP status instead of 101 (a first step)."""

    status: int = 403
    body: str = "refused by the scripted server"


@dataclass(frozen=True, slots=True)
class Silent:
    """Never answer the handshake (a first step): the client's connect times out."""


@dataclass(frozen=True, slots=True)
class SendText:
    """Send a text message."""

    text: str


@dataclass(frozen=True, slots=True)
class SendBinary:
    """Send a binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendRaw:
    """Write these bytes to the connection as they are (a broken frame, say)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendInvalidUTF8:
    """Send a text message whose payload is not UTF-8 (the client closes with 1007)."""


@dataclass(frozen=True, slots=True)
class SendOversized:
    """Send a binary message of ``size`` bytes, bigger than the client accepts (1009)."""

    size: int = 16 * 2**20 + 1


@dataclass(frozen=True, slots=True)
class Receive:
    """Wait until the client has sent ``count`` more messages (text or binary)."""

    count: int = 1


@dataclass(frozen=True, slots=True)
class Close:
    """Send a close frame (``code=None``: one without a code), await the reply, end TCP."""

    code: int | None = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """Cut the TCP connection without a close frame (the client sees 1006)."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Stop reading and answering anything, a close frame included, until stopped."""


Step: TypeAlias = (
    Refuse
    | Silent
    | SendText
    | SendBinary
    | SendRaw
    | SendInvalidUTF8
    | SendOversized
    | Receive
    | Close
    | Drop
    | Hang
)
"""One step of a :class:`ScriptedServer` script."""


class HandshakeRequest(NamedTuple):
    """A handshake request the scripted server received."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""


class ClientFrame(NamedTuple):
    """A frame the scripted server received from a client, unmasked."""

    kind: str
    """``"text"``, ``"binary"``, ``"continuation"``, ``"ping"``, ``"pong"`` or ``"close"``."""
    data: bytes


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
_KINDS = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 1, 2, 8, 9, 10


def _frame(opcode: int, payload: bytes = b"") -> bytes:
    """An unmasked server frame, FIN set (RFC 6455, 5.2)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, size])
    elif size < 2**16:
        head = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return head + payload


def _close_payload(code: int | None, reason: str) -> bytes:
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode()


def _unmask(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


class _Stopped(Exception):
    """The server is stopping or the client went away: end this connection."""


class ScriptedServer:
    """A WebSocket server on ``127.0.0.1`` that runs ``steps`` on every connection.

    Unless the first step is :class:`Refuse` or :class:`Silent`, the handshake
    is accepted first (selecting ``subprotocol`` if given, even one the
    client did not ask for). After the last step the server behaves: it
    answers pings and echoes the client's close frame, then ends TCP.

    Attributes ``requests`` (the handshake requests) and ``received`` (the
    frames clients sent) are there for assertions.
    """

    def __init__(self, *steps: Step, subprotocol: str | None = None) -> None:
        self.steps = steps
        self.subprotocol = subprotocol
        self.requests: list[HandshakeRequest] = []
        """Every handshake request received, oldest first."""
        self.received: list[ClientFrame] = []
        """Every frame received from clients, oldest first."""
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self.port = 0
        """The port it listens on, once started."""

    # Convenience constructors for the common cases.

    @classmethod
    def closing(cls, code: int | None = 1000, reason: str = "") -> ScriptedServer:
        """Accept, then close with ``code`` and ``reason``."""
        return cls(Close(code, reason))

    @classmethod
    def dropping(cls) -> ScriptedServer:
        """Accept, then cut the TCP connection."""
        return cls(Drop())

    @classmethod
    def silent(cls) -> ScriptedServer:
        """Never answer the handshake."""
        return cls(Silent())

    @classmethod
    def hanging(cls) -> ScriptedServer:
        """Accept, then never answer anything (a close frame included)."""
        return cls(Hang())

    @classmethod
    def refusing(cls, status: int = 403, body: str = "refused") -> ScriptedServer:
        """Answer the handshake with ``status`` instead of 101."""
        return cls(Refuse(status, body))

    @classmethod
    def oversized(cls, size: int = 16 * 2**20 + 1) -> ScriptedServer:
        """Accept, then send a binary message of ``size`` bytes."""
        return cls(SendOversized(size))

    @classmethod
    def invalid_utf8(cls) -> ScriptedServer:
        """Accept, then send a text message that is not UTF-8."""
        return cls(SendInvalidUTF8())

    @classmethod
    def raw(cls, data: bytes) -> ScriptedServer:
        """Accept, then write ``data`` as is."""
        return cls(SendRaw(data))

    # Life cycle.

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/``."""
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> ScriptedServer:
        """Listen on a free port and accept connections in a background thread."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept, listener)
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; join the threads."""
        self._stop.set()
        with self._changed:
            socks = list(self._socks)
            self._changed.notify_all()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(10)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_received(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` frames in all were received; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.received) >= count, timeout)

    # Threads.

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="wsloop-scripted")
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(0.1)
            with self._changed:
                self._socks.add(sock)
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        conn = _Conn(sock, self._stop)
        try:
            self._run(conn)
        except (_Stopped, OSError):
            pass
        finally:
            with self._changed:
                self._socks.discard(sock)
            sock.close()

    def _run(self, conn: _Conn) -> None:
        request = conn.read_request()
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
        steps = list(self.steps)
        if steps and isinstance(steps[0], Refuse):
            conn.send(_http_refusal(steps[0].status, steps[0].body))
            return
        if steps and isinstance(steps[0], Silent):
            conn.hang()
        conn.send(_accept(request, self.subprotocol))
        for step in steps:
            if isinstance(step, SendText):
                conn.send(_frame(_TEXT, step.text.encode()))
            elif isinstance(step, SendBinary):
                conn.send(_frame(_BINARY, bytes(step.data)))
            elif isinstance(step, SendRaw):
                conn.send(bytes(step.data))
            elif isinstance(step, SendInvalidUTF8):
                conn.send(_frame(_TEXT, b"caf\xc3 \xff\xfe"))
            elif isinstance(step, SendOversized):
                conn.send_oversized(step.size)
            elif isinstance(step, Receive):
                self._receive_messages(conn, step.count)
            elif isinstance(step, Close):
                conn.send(_frame(_CLOSE, _close_payload(step.code, step.reason)))
                self._until_close(conn, answer=False)
                return
            elif isinstance(step, Drop):
                conn.drop()
                return
            elif isinstance(step, Hang):
                conn.hang()
            # Refuse and Silent only mean something as the first step.
        self._until_close(conn, answer=True)

    def _record(self, frame: ClientFrame) -> None:
        with self._changed:
            self.received.append(frame)
            self._changed.notify_all()

    def _receive_messages(self, conn: _Conn, count: int) -> None:
        seen = 0
        while seen < count:
            frame = self._next(conn)
            if frame.kind == "close":
                raise _Stopped
            if frame.kind in ("text", "binary"):
                seen += 1

    def _next(self, conn: _Conn) -> ClientFrame:
        frame = conn.read_frame()
        self._record(frame)
        if frame.kind == "ping":
            conn.send(_frame(_PONG, frame.data))
        return frame

    def _until_close(self, conn: _Conn, *, answer: bool) -> None:
        """Read until the client's close frame; echo it if ``answer``; end TCP."""
        while True:
            frame = self._next(conn)
            if frame.kind == "close":
                if answer:
                    conn.send(_frame(_CLOSE, frame.data))
                conn.end()
                return


def _http_refusal(status: int, body: str) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Refused"
    data = body.encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode() + data


def _accept(request: HandshakeRequest, subprotocol: str | None) -> bytes:
    key = request.headers.get("sec-websocket-key", "").encode()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Conn:
    """Blocking reads and writes that give up when the server stops."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.buffer = b""

    def _fill(self) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise _Stopped
            self.buffer += data
            return

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_request(self) -> HandshakeRequest:
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise _Stopped
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return HandshakeRequest(path, headers)

    def read_frame(self) -> ClientFrame:
        first, second = self.read_exact(2)
        opcode = first & 0x0F
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self.read_exact(2), "big")
        elif size == 127:
            size = int.from_bytes(self.read_exact(8), "big")
        mask = self.read_exact(4) if second & 0x80 else b""
        data = self.read_exact(size)
        if mask:
            data = _unmask(data, mask)
        return ClientFrame(_KINDS.get(opcode, f"opcode {opcode}"), data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_oversized(self, size: int) -> None:
        header = _frame(_BINARY, b"")[:1]
        if size < 2**16:
            header += bytes([126]) + size.to_bytes(2, "big")
        else:
            header += bytes([127]) + size.to_bytes(8, "big")
        self.sock.settimeout(5.0)
        try:
            self.sock.sendall(header)
            chunk = bytes(65536)
            left = size
            while left > 0 and not self.stop.is_set():
                self.sock.sendall(chunk[: min(left, len(chunk))])
                left -= len(chunk)
        except OSError:
            raise _Stopped from None
        finally:
            self.sock.settimeout(0.1)

    def hang(self) -> None:
        self.stop.wait()
        raise _Stopped

    def drop(self) -> None:
        # RST rather than FIN, like a crashed server or a cut cable.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        # Wait briefly for the client to close its side, then stop.
        with contextlib.suppress(_Stopped, OSError):
            self.sock.settimeout(0.1)
            for _ in range(50):
                if self.stop.is_set():
                    break
                try:
                    if not self.sock.recv(65536):
                        break
                except TimeoutError:
                    continue
