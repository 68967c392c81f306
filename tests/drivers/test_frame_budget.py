"""A large send is spread over poll() calls (the poll driver's share of the frame budget).

Timings are for ``make bench`` (bench/frame_budget.py); these tests check the
structure: ``send_binary()`` frames nothing itself, later ``poll()`` calls
frame the message a bounded slice at a time, and it arrives whole.
"""

from __future__ import annotations

import hashlib
import time

import wsloop
from servers import WebsocketsServer, unique_path
from wsloop.sansio import SEND_SLICE

WAIT = 30.0


def _open(url: str) -> tuple[wsloop.WebSocket, list[bytes]]:
    ws = wsloop.WebSocket(driver="poll", compression=None, max_message_size=None)
    got: list[bytes] = []
    ws.on_binary_message = lambda e: got.append(e.data)
    ws.connect(url)
    deadline = time.monotonic() + WAIT
    while not ws.is_open:
        assert time.monotonic() < deadline, "not open"
        ws.poll(0.01)
    return ws, got


def test_a_large_send_is_framed_across_later_polls(ws_server: WebsocketsServer) -> None:
    ws, got = _open(ws_server.url(unique_path()))
    payload = bytes(range(256)) * (16 * SEND_SLICE // 256)  # 16 slices
    started = time.perf_counter()
    assert ws.send_binary(payload) is True
    assert ws.buffered_amount == len(payload)  # nothing masked or written inside the send
    progress = []
    deadline = time.monotonic() + WAIT
    while not got:
        assert time.monotonic() < deadline, "the message did not come back"
        before = ws.buffered_amount
        ws.poll(0)
        if ws.buffered_amount < before:
            progress.append(before - ws.buffered_amount)
        time.sleep(0.0005)
    assert len(progress) >= 2, "the whole message went out in one poll()"
    assert hashlib.sha256(got[0]).digest() == hashlib.sha256(payload).digest()
    assert time.perf_counter() - started < WAIT
    ws.close()
    while not ws.is_closed:
        assert time.monotonic() < deadline, "not closed"
        ws.poll(0.01)
