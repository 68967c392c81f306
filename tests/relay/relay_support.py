"""Helpers for the relay tests: recorded clients, a raw socket client, relay processes."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsloop import BinaryMessage, Closed, Error, Opened, TextMessage, WebSocket
from wsloop.testing import poll_until, record

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from wsloop import Event

TIMEOUT_FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
WAIT = 30.0 * TIMEOUT_FACTOR
"""How long to wait for something that should happen: generous, never a measure."""


class Peer:
    """A wsloop client (poll driver) whose events are all recorded."""

    def __init__(self, **options: Any) -> None:
        self.ws = WebSocket(**options)
        self.events: list[Event] = record(self.ws)

    def connect(self, url: str, protocol: str | Sequence[str] | None = None) -> Peer:
        self.ws.connect(url, protocol)
        return self

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextMessage)]

    @property
    def binaries(self) -> list[bytes]:
        return [e.data for e in self.events if isinstance(e, BinaryMessage)]

    @property
    def closed(self) -> Closed | None:
        found = [e for e in self.events if isinstance(e, Closed)]
        return found[-1] if found else None

    @property
    def errors(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, Error)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def pump(until: Callable[[], object], *peers: Peer, timeout: float = WAIT) -> None:
    """Poll every peer, like one game loop, until ``until()`` holds."""
    poll_until(until, *(p.ws for p in peers), timeout=timeout)


def open_all(*peers: Peer) -> None:
    """Poll until every peer is open; fail with their events otherwise."""
    pump(lambda: all(p.ws.is_open or p.closed for p in peers), *peers)
    for peer in peers:
        assert peer.ws.is_open, peer.events


def close_all(*peers: Peer) -> None:
    for peer in peers:
        if peer.ws.is_open:
            peer.ws.close()
    pump(lambda: all(p.closed for p in peers), *peers)


def check_contract(events: list[Event]) -> None:
    """The ordering contract of one connection: Error right before the one Closed, last."""
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("Closed") == 1, kinds
    assert kinds[-1] == "Closed", kinds
    assert kinds.count("Opened") <= 1, kinds
    if "Opened" in kinds:
        assert isinstance(events[0], Opened), kinds
    if "Error" in kinds:
        assert kinds.count("Error") == 1, kinds
        assert kinds[-2] == "Error", kinds


# A raw client, to misbehave (stop reading) where a real client cannot.


class RawClient:
    """A WebSocket client on a plain socket, with a small receive buffer."""

    def __init__(self, url_host: str, port: int, path: str, *, rcvbuf: int = 4096) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(WAIT)
        sock.connect((url_host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {url_host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.sock = sock
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._read_exact(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read_exact(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read_exact(8), "big")
        return first & 0x0F, self._read_exact(size)

    def close(self) -> None:
        self.sock.close()


# Relay processes.


class RelayProcess:
    """``python -m wsloop serve ...`` in a subprocess, its log in a file."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsloop", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self.url = self._wait_listening()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            match = re.search(r"listening on (wss?://\S+)", self.log())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise AssertionError(f"the relay exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"the relay did not start: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
