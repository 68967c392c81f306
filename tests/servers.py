"""Real servers on 127.0.0.1 for the integration tests, and what they saw.

Three kinds, all on loopback with a port chosen by the kernel:

* :class:`WebsocketsServer`: the ``websockets`` asyncio server, running in the
  event loop of a background thread (:class:`LoopThread`). It echoes, obeys a
  few text commands (see :data:`COMMANDS`), answers some paths with an HTTP
  error, and picks a subprotocol among ``chat`` and ``superchat``.
* :class:`NodeServer`: ``tests/node/echo_server.js``, the npm ``ws`` server,
  in a subprocess that speaks JSON lines on stdout.
* :class:`RawServer`: a TCP server whose per-connection handler writes the
  bytes it wants through a :class:`RawConnection`. Misbehaviour needs it:
  wrong accept keys, masked frames, silence, and so on.

Each server keeps a :class:`ServerLog` per request path, so that a test can
use a path of its own (see :func:`unique_path`) and wait until the server has
seen what the client did.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Coroutine, Sequence

    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = [
    "COMMANDS",
    "SHORT",
    "SUBPROTOCOLS",
    "TIMEOUT_FACTOR",
    "WAIT",
    "LoopThread",
    "NodeServer",
    "RawConnection",
    "RawServer",
    "ServerLog",
    "WebsocketsServer",
    "accept_key",
    "encode_frame",
    "free_port",
    "node_available",
    "unique_path",
    "upgrade_response",
]

NODE_DIR = Path(__file__).parent / "node"

TIMEOUT_FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
"""Multiply every wait by this on a slow machine."""

WAIT = 20.0 * TIMEOUT_FACTOR
"""How long to wait for something that should happen: generous, never a measure."""

SHORT = 0.5 * TIMEOUT_FACTOR
"""A short connect/close timeout for the tests that make one expire."""

SUBPROTOCOLS = ("chat", "superchat")
"""The subprotocols both echo servers know; the first one the client offers wins."""

COMMANDS = {
    "close CODE REASON": "close with that code and (optional) reason",
    "close": "close with a close frame that has no code (Node only)",
    "drop": "close TCP without a close frame",
}
"""Text messages the echo servers obey instead of echoing."""

_CLOSE_COMMAND = re.compile(r"close (\d+)(?: (.*))?", re.DOTALL)

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_counter = itertools.count(1)


def unique_path(name: str = "t") -> str:
    """A request path no other test uses, so that server logs do not mix."""
    return f"/{name}/{os.getpid()}-{next(_counter)}"


def free_port() -> int:
    """A loopback port where nothing listens (so connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def upgrade_response(
    key: str, *, accept: str | None = None, extra_headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The bytes of a 101 answer to a request with ``Sec-WebSocket-Key: key``.

    For handlers that write the answer their own way (slowly, in pieces...);
    :meth:`RawConnection.handshake` reads the request and writes it at once.
    """
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}",
        *(f"{name}: {value}" for name, value in extra_headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def node_available() -> bool:
    """Whether Node.js and the npm ``ws`` package are there."""
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "ws").is_dir()


class ServerLog:
    """What a server saw, per request path, readable from any thread.

    Entries are tuples: ``("open", subprotocol)``, ``("text", str)``,
    ``("binary", bytes)`` and ``("closed", code, reason)`` where ``code`` is
    the code of the client's close frame (``None`` without one).
    """

    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[Any, ...]]] = {}
        self._cond = threading.Condition()

    def add(self, path: str, entry: tuple[Any, ...]) -> None:
        with self._cond:
            self._entries.setdefault(path, []).append(entry)
            self._cond.notify_all()

    def entries(self, path: str) -> list[tuple[Any, ...]]:
        with self._cond:
            return list(self._entries.get(path, ()))

    def wait_for(self, path: str, kind: str, timeout: float) -> tuple[Any, ...]:
        """Wait for the first entry of ``kind`` on ``path`` and return it."""

        def find() -> tuple[Any, ...] | None:
            return next((e for e in self._entries.get(path, ()) if e[0] == kind), None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        if found is None:
            raise AssertionError(
                f"the server saw no {kind!r} on {path} within {timeout:g} s; "
                f"it saw {self.entries(path)!r}"
            )
        return found


# The websockets server.


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-server-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine in the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


class WebsocketsServer:
    """The ``websockets`` asyncio server on 127.0.0.1, for every test to share.

    Behaviour, by request path:

    * ``/status/<code>``: answers the upgrade with that HTTP status;
    * ``/bogus-protocol/...``: accepts but answers ``Sec-WebSocket-Protocol:
      bogus``, a subprotocol nobody offered;
    * anything else: a WebSocket that echoes messages and obeys
      :data:`COMMANDS`. It selects the first of :data:`SUBPROTOCOLS` the client
      offers, and none when the client offers none of them.
    * ``/quiet/...`` (see :func:`unique_path` with ``"quiet"``): the same, but
      the log records the size of each message instead of the message, as the
      Node log does, so that load tests do not keep what they sent.
    """

    def __init__(self, loop: LoopThread, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.log = ServerLog()
        self.scheme = "wss" if ssl_context is not None else "ws"
        self._loop = loop
        self._server: Server = loop.run(self._start(ssl_context))
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _start(self, ssl_context: ssl.SSLContext | None) -> Server:
        return await serve(
            self._handler,
            "127.0.0.1",
            0,
            ssl=ssl_context,
            select_subprotocol=_select_subprotocol,
            process_request=_process_request,
            process_response=_process_response,
            max_size=None,
            ping_interval=None,
        )

    def url(self, path: str, *, host: str = "127.0.0.1", scheme: str | None = None) -> str:
        return f"{scheme or self.scheme}://{host}:{self.port}{path}"

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "?"
        log = self.log
        quiet = path.startswith(("/quiet/", "/sink/"))
        sink = path.startswith("/sink/")  # logs, never echoes: a close cannot race an echo
        log.add(path, ("open", ws.subprotocol))
        try:
            async for message in ws:
                if isinstance(message, str):
                    log.add(path, ("text", len(message) if quiet else message))
                    command = _CLOSE_COMMAND.fullmatch(message)
                    if command is not None:
                        await ws.close(int(command[1]), command[2] or "")
                        break
                    if message == "drop":
                        ws.transport.abort()
                        break
                else:
                    log.add(path, ("binary", len(message) if quiet else message))
                if not sink:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(Exception):
                await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            if rcvd is None:
                log.add(path, ("closed", None, None))
            else:
                log.add(path, ("closed", int(rcvd.code), rcvd.reason))

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        self._loop.run(close())


def _select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    parts = request.path.split("/")
    if len(parts) >= 3 and parts[1] == "status":
        status = HTTPStatus(int(parts[2]))
        return connection.respond(status, f"{status.phrase.lower()} here\n")
    return None


def _process_response(
    connection: ServerConnection, request: Request, response: Response
) -> Response | None:
    if request.path.startswith("/bogus-protocol/"):
        del response.headers["Sec-WebSocket-Protocol"]
        response.headers["Sec-WebSocket-Protocol"] = "bogus"
    return None


# The npm ws server.


class NodeServer:
    """``tests/node/echo_server.js`` (npm ``ws``) in a subprocess.

    It echoes and obeys :data:`COMMANDS`, with permessage-deflate on for every
    message size, and selects the first of :data:`SUBPROTOCOLS` offered.
    """

    scheme = "ws"

    def __init__(self) -> None:
        self.log = ServerLog()
        self._proc = subprocess.Popen(
            [
                "node",
                str(NODE_DIR / "echo_server.js"),
                "--port",
                "0",
                "--protocols",
                ",".join(SUBPROTOCOLS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=NODE_DIR,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(10)
            err = self._proc.stderr.read() if self._proc.stderr else b""
            raise RuntimeError(f"echo_server.js did not start: {err.decode(errors='replace')}")
        first = json.loads(line)
        assert first["event"] == "listening", first
        self.port: int = first["port"]
        self._reader = threading.Thread(target=self._read, name="node-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        for line in stdout:
            item = json.loads(line)
            kind = item["event"]
            if kind == "open":
                entry: tuple[Any, ...] = ("open", item["protocol"] or None)
            elif kind == "closed":
                # ws reports 1005 when the close frame had no code and 1006
                # when there was none; this log says None for "no frame".
                code = None if item["code"] == 1006 else item["code"]
                entry = ("closed", code, item["reason"] if code is not None else None)
            elif kind == "error":
                entry = ("error", item["message"])
            else:
                entry = (kind, item["size"])
            self.log.add(item["path"], entry)

    def url(self, path: str, *, host: str = "127.0.0.1", scheme: str | None = None) -> str:
        return f"{scheme or self.scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        proc = self._proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        self._reader.join(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# The raw server.


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """Encode one WebSocket frame by hand (RFC 6455 5.2).

    ``rsv`` holds the RSV1-3 bits as a 3-bit number (4 is RSV1). A server
    must not mask; pass ``mask`` to break that rule.
    """
    head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode])
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        head.append(mask_bit | length)
    elif length < 2**16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if mask is not None:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    """The payload of a close frame; ``code=None`` makes it empty."""
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode()


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class RawConnection:
    """One accepted TCP connection of a :class:`RawServer`, written by hand."""

    def __init__(self, sock: socket.socket, stopping: threading.Event, timeout: float) -> None:
        self.sock = sock
        self.stopping = stopping
        self.request_headers: dict[str, str] = {}
        self._buf = bytearray()
        sock.settimeout(timeout)

    # Reading.

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise EOFError(f"client closed TCP while {n} bytes were expected")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_request(self) -> dict[str, str]:
        """Read the HTTP upgrade request; return its headers, names lowercased."""
        while b"\r\n\r\n" not in self._buf:
            if not self._fill():
                raise EOFError("client closed TCP before the end of the request")
        end = self._buf.index(b"\r\n\r\n")
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        lines = head.split("\r\n")
        assert lines[0].startswith("GET "), lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.request_headers = headers
        return headers

    def recv_frame(self) -> tuple[bool, int, bytes]:
        """Read one client frame; return ``(fin, opcode, unmasked payload)``."""
        b0, b1 = self._read_exact(2)
        assert b1 & 0x80, "client frames must be masked"
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        mask = self._read_exact(4)
        data = self._read_exact(length)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect_close(self) -> tuple[int | None, str] | None:
        """Read frames until the client's close frame; return its code and reason.

        Returns ``None`` if the client closed TCP first.
        """
        while True:
            try:
                _, opcode, payload = self.recv_frame()
            except (EOFError, ConnectionResetError):
                return None
            if opcode == OP_CLOSE:
                if not payload:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def wait_eof(self) -> None:
        """Discard what the client sends until it closes TCP (or the server stops)."""
        while not self.stopping.is_set():
            try:
                if not self._fill():
                    return
            except TimeoutError:
                continue
            except OSError:
                return
            self._buf.clear()

    # Writing.

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def handshake(
        self,
        *,
        accept: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> dict[str, str]:
        """Read the request and answer 101 (with the right accept key unless given)."""
        headers = self.read_request()
        key = headers["sec-websocket-key"]
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}",
            *(f"{name}: {value}" for name, value in extra_headers),
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return headers

    def respond(self, status_line: str, body: bytes = b"") -> None:
        """Read the request and answer with a plain HTTP response."""
        self.read_request()
        head = f"HTTP/1.1 {status_line}\r\nContent-Length: {len(body)}\r\n\r\n"
        self.send(head.encode("latin-1") + body)

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> None:
        self.send(encode_frame(opcode, payload, **kwargs))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def reset(self) -> None:
        """Abort the TCP connection with a reset (RST), not a FIN: ``SO_LINGER`` 0."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


class RawServer:
    """A TCP server on 127.0.0.1 running ``handler(conn)`` per connection.

    Handlers run in their own threads. :meth:`stop` closes everything and
    re-raises the first exception a handler raised, so that a broken
    handler fails the test instead of hiding.
    """

    def __init__(
        self, handler: Callable[[RawConnection], object], *, timeout: float = 30.0
    ) -> None:
        self._handler = handler
        self._timeout = timeout
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[RawConnection] = []
        self.results: list[object] = []
        """What the handlers returned, in the order they finished."""
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="raw-accept", daemon=True)
        self._acceptor.start()

    def url(self, path: str = "/", *, host: str = "127.0.0.1", scheme: str = "ws") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                sock.close()
                return
            conn = RawConnection(sock, self._stopping, self._timeout)
            with self._lock:
                self.connections.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), name="raw-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: RawConnection) -> None:
        try:
            result = self._handler(conn)
        except BaseException as exc:
            if not self._stopping.is_set():
                with self._lock:
                    self.errors.append(exc)
            result = exc
        finally:
            conn.close()
        with self._done:
            self.results.append(result)
            self._done.notify_all()

    def wait_result(self, timeout: float, index: int = 0) -> object:
        """Wait until handler number ``index`` has returned; return its result."""
        with self._done:
            if not self._done.wait_for(lambda: len(self.results) > index, timeout):
                raise AssertionError(f"raw server handler did not finish in {timeout:g} s")
            return self.results[index]

    def stop(self) -> None:
        self._stopping.set()
        # Wake the acceptor: closing a listening socket does not interrupt
        # accept() everywhere, a connection does.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            pass
        self._listener.close()
        self._acceptor.join(10)
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
        deadline = time.monotonic() + 10
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.errors:
            raise self.errors[0]
