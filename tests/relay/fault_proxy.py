"""A fault-injecting TCP proxy for the relay tests (clients to relay, relay to Redis).

It forwards every connection it accepts to ``127.0.0.1:<target>`` and can
sever them all, half-close them, cut one mid-message, stall them, refuse new
ones for a while, or send the next ones elsewhere (:attr:`CutProxy.target`).
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["FAULTS", "CutProxy"]

FAULTS = ("cut", "half_close", "cut_mid_message", "stall")
"""The faults a test can draw at random (each a method of :class:`CutProxy`)."""


class CutProxy:
    """A TCP proxy that forwards to ``port`` and injects faults into every connection.

    :meth:`cut` severs them, :meth:`half_close` ends the client-to-relay direction
    only, :meth:`cut_mid_message` forwards half of the next chunk a client sends
    and then severs, :meth:`stall` holds every byte until :meth:`release`,
    :meth:`refuse` closes new connections at once until :meth:`accept`.
    Changing :attr:`target` sends the next connections to another port.
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()
        self.truncate = threading.Event()
        self.refusing = threading.Event()
        self.closed = False
        self.accepted = 0
        """Connections accepted and forwarded so far."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self.lock:
                if self.closed:  # closed meanwhile
                    client.close()
                    upstream.close()
                    return
                self.pairs.append((client, upstream))
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()
                if upward and self.truncate.is_set():
                    self.truncate.clear()
                    dst.sendall(data[: max(1, len(data) // 2)])
                    self.cut()
                    return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the other direction's recv
        for s in (src, dst):
            s.close()

    def cut(self) -> None:
        """Sever every connection now (both sides see a reset, no close frame)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def half_close(self) -> None:
        """End the client-to-relay direction (the relay reads EOF; the client still writes)."""
        with self.lock:
            pairs = list(self.pairs)
        for _, upstream in pairs:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)

    def cut_mid_message(self) -> None:
        """Forward only half of the next chunk a client sends, then sever."""
        self.truncate.set()

    def stall(self) -> None:
        """Hold every byte, both ways, until :meth:`release`."""
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    def refuse(self) -> None:
        """Close every new connection at once (a peer that is down), until :meth:`accept`."""
        self.refusing.set()

    def accept(self) -> None:
        self.refusing.clear()

    def outage(self, seconds: float) -> None:
        """Sever everything and refuse new connections for ``seconds`` (in a thread)."""
        self.refuse()
        self.cut()
        timer = threading.Timer(seconds, self.accept)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        self.release()
        with self.lock:
            self.closed = True
        self.listener.close()
        self.cut()
        self.pairs = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/room/test"
