"""Keepalive: pings on an open connection, a silent peer detected, latency exposed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import wsloop
from wsloop._sansio.keepalive import Keepalive

SILENT_SERVER = """
import asyncio
from websockets.asyncio.server import serve

async def handler(ws):
    await ws.wait_closed()

async def main():
    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


@pytest.fixture
def pausable_server() -> Iterator[subprocess.Popen[str]]:
    """A real websockets server in its own process, so it can be paused (SIGSTOP)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SILENT_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.port = int(proc.stdout.readline())  # type: ignore[attr-defined]
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# The clock-free state machine.


def test_keepalive_pings_after_interval_and_times_out_without_pong() -> None:
    ka = Keepalive(interval=2.0, timeout=3.0)
    ka.start(now=10.0)
    assert ka.deadline() == 12.0
    assert ka.tick(11.9) is None
    action = ka.tick(12.0)
    assert action is not None and action[0] == "ping" and len(action[1]) == 4
    assert ka.deadline() == 15.0
    assert ka.tick(14.9) is None
    assert ka.tick(15.0) == ("timeout", None)
    assert ka.deadline() is None


def test_keepalive_pong_schedules_next_ping_and_measures_latency() -> None:
    ka = Keepalive(interval=2.0, timeout=3.0)
    ka.start(now=0.0)
    action = ka.tick(2.0)
    assert action is not None and action[0] == "ping"
    payload = action[1]
    assert isinstance(payload, bytes)
    ka.pong(b"not ours", now=2.1)  # an application ping's pong: ignored
    assert ka.latency is None and ka.deadline() == 5.0
    ka.pong(payload, now=2.25)
    assert ka.latency == pytest.approx(0.25)
    assert ka.deadline() == pytest.approx(4.25)


def test_keepalive_disabled() -> None:
    ka = Keepalive(interval=None, timeout=20.0)
    ka.start(now=0.0)
    assert ka.deadline() is None
    assert ka.tick(1e9) is None


# Against a real server.


@pytest.mark.parametrize("connect_timeout", [10.0, None], ids=["connect-timeout", "no-timeout"])
@pytest.mark.parametrize("driver", ["poll", "thread"])
def test_paused_server_is_detected_as_keepalive_timeout(
    pausable_server: subprocess.Popen[str], driver: str, connect_timeout: float | None
) -> None:
    # The keepalive starts on open whether or not the attempt had a connect
    # timeout (it once started only when a connect deadline was cleared).
    port = pausable_server.port  # type: ignore[attr-defined]
    ws = wsloop.WebSocket(
        driver=driver, ping_interval=0.2, ping_timeout=0.5, connect_timeout=connect_timeout
    )
    events: list[object] = []
    ws.on_opened = events.append
    ws.on_error = events.append
    ws.on_closed = events.append
    ws.connect(f"ws://127.0.0.1:{port}/")
    assert ws.wait_open(10)
    # Let a few pings be answered: the latency becomes known.
    end = time.monotonic() + 10
    while ws.latency is None and time.monotonic() < end:
        ws.poll(0.05)
    assert ws.latency is not None and ws.latency >= 0
    assert ws.is_open
    # Pause the server process: no FIN, no data, nothing.
    os.kill(pausable_server.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    assert ws.wait_closed(10)
    took = time.monotonic() - paused_at
    assert [type(e) for e in events] == [wsloop.Opened, wsloop.Error, wsloop.Closed]
    assert ws.error_msg.startswith("keepalive timeout: no pong within 0.5 s")
    assert isinstance(events[1].exception, wsloop.TimeoutError)  # type: ignore[attr-defined]
    assert ws.close_code == 1006
    # Detected within interval + timeout, plus scheduling slack on a busy machine.
    assert took < 5.0


def test_keepalive_off_sends_no_ping(pausable_server: subprocess.Popen[str]) -> None:
    port = pausable_server.port  # type: ignore[attr-defined]
    ws = wsloop.WebSocket(ping_interval=None)
    ws.connect(f"ws://127.0.0.1:{port}/")
    assert ws.wait_open(10)
    os.kill(pausable_server.pid, signal.SIGSTOP)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        ws.poll(0.05)
    assert ws.is_open and ws.latency is None
    os.kill(pausable_server.pid, signal.SIGCONT)
    ws.close()
    assert ws.wait_closed(10)
    assert ws.close_code == 1000
