"""Bounded memory both ways: a server faster than the app, an app faster than the network."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket
import threading
import time
import tracemalloc

import pytest
from websockets.asyncio.server import ServerConnection, serve

import wsloop

TIMEOUT = 10.0


class _Flooder:
    """Sends ``count`` binary messages of ``size`` bytes as fast as TCP allows."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.sent = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(TIMEOUT)

    async def _handler(self, conn: ServerConnection) -> None:
        payload = b"x" * self.size
        for _ in range(self.count):
            await conn.send(payload)
            self.sent += 1
        await conn.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(TIMEOUT)


def test_thread_driver_stops_reading_when_the_app_falls_behind() -> None:
    # 2000 x 64 KiB = 125 MiB offered; the app takes nothing for a while.
    server = _Flooder(count=2000, size=64 * 1024)
    try:
        ws = wsloop.WebSocket(driver="thread", deliver="caller", max_queue=16, compression=None)
        received = 0

        def on_binary(e: wsloop.BinaryMessage) -> None:
            nonlocal received
            received += 1

        ws.on_binary_message = on_binary
        tracemalloc.start()
        try:
            ws.connect(f"ws://127.0.0.1:{server.port}/")
            assert ws.wait_open(TIMEOUT)
            time.sleep(1.0)  # the app is busy: nothing is taken from the queue
            _, peak = tracemalloc.get_traced_memory()
            queued = len(ws.driver.events)
        finally:
            tracemalloc.stop()
        # Bounded by the queue limit plus one read of the socket, not 125 MiB.
        assert queued <= 16 + 8
        assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
        assert server.sent < 2000  # TCP flow control held the server back
        end = time.monotonic() + 60
        while not ws.is_closed and time.monotonic() < end:
            ws.poll(0.05)
        assert received == 2000  # nothing lost: reading resumed as the app caught up
        assert ws.close_code == 1000
    finally:
        server.stop()


def _accept_then_stop_reading(listener: socket.socket, conns: list[socket.socket]) -> None:
    """Completes the WebSocket handshake, then never reads again."""
    conn, _ = listener.accept()
    conns.append(conn)
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@pytest.mark.parametrize("driver", ["poll", "thread"])
def test_send_buffer_is_bounded_when_the_network_is_slower(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    t = threading.Thread(target=_accept_then_stop_reading, args=(listener, conns), daemon=True)
    t.start()
    limit = 4 * 2**20
    ws = wsloop.WebSocket(
        driver=driver, compression=None, max_buffered_amount=limit, close_timeout=0.5
    )
    ws.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
    try:
        assert ws.wait_open(TIMEOUT)
        chunk = b"\0" * 2**20
        accepted = 0
        with caplog.at_level(logging.WARNING, logger="wsloop.client"):
            for _ in range(200):  # 200 MiB offered to a peer that reads nothing
                if not ws.send_binary(chunk):
                    break
                accepted += 1
                ws.poll()
        assert accepted < 200
        assert limit <= ws.buffered_amount < limit + 2**20 + 64
        assert "send buffer full" in caplog.text
        assert not ws.send_text("refused too")
        assert ws.is_open  # refusing sends does not break the connection
    finally:
        ws.close()
        ws.wait_closed(TIMEOUT)
        for c in conns:
            c.close()
        listener.close()


def test_send_limit_refuses_at_the_limit_and_warns_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The Sans-I/O helper every driver asks (poll, thread, asyncio, browser).
    from wsloop._sansio.sendlimit import SendLimit

    limit = SendLimit(100)
    with caplog.at_level(logging.WARNING, logger="wsloop.client"):
        assert [limit.full(n) for n in (0, 99, 100, 5000, 100)] == [
            False,
            False,
            True,
            True,
            True,
        ]
        assert len(caplog.records) == 1
        assert "max_buffered_amount=100" in caplog.records[0].getMessage()
        assert limit.full(10) is False  # drained: the next episode warns again
        assert limit.full(200) is True
        assert len(caplog.records) == 2
    assert SendLimit(None).full(10**12) is False
