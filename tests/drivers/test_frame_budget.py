"""Large sends and floods are spread over poll() calls (the poll driver's frame budget).

Timings are for ``make bench`` (bench/frame_budget.py); these tests check the
structure: ``send_binary()`` frames nothing itself, later ``poll()`` calls
frame the message a bounded slice at a time, and it arrives whole; a flood of
small messages read at once becomes at most so many events per ``poll()``,
and every one arrives, in order.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import pytest

import wsloop
from servers import WebsocketsServer, close_payload, encode_frame, unique_path
from wsloop.drivers import poll as poll_driver
from wsloop.sansio import SEND_SLICE

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers import RawConnection, RawServer

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


@pytest.mark.parametrize("max_queue", [None, 100_000])
def test_a_flood_of_small_messages_is_spread_over_polls(
    raw_server: Callable[[Callable[[RawConnection], object]], RawServer], max_queue: int | None
) -> None:
    count = 20_000
    flood = b"".join(encode_frame(0x1, b"m%08d" % i) for i in range(count))

    def server(conn: RawConnection) -> object:
        conn.handshake()
        conn.send(flood)  # 240 KB: one read of the client can hold all of it
        conn.send_frame(0x8, close_payload(1000))
        return conn.expect_close()

    srv = raw_server(server)
    ws = wsloop.WebSocket(driver="poll", compression=None, max_queue=max_queue)
    got: list[str] = []
    ws.on_text_message = lambda e: got.append(e.text)
    ws.connect(srv.url())
    per_poll = []
    deadline = time.monotonic() + WAIT
    while not ws.is_closed:
        assert time.monotonic() < deadline, "the flood did not end"
        before = len(got)
        ws.poll(0.01)
        per_poll.append(len(got) - before)
    assert got == [f"m{i:08d}" for i in range(count)]
    # The limit, and at most one slice of 12-byte frames past it.
    most = poll_driver._EVENTS_PER_STEP + poll_driver._FEED_SLICE // 12
    assert max(per_poll) <= most
    assert sum(1 for n in per_poll if n) >= count // most
    assert ws.close_code == 1000
    assert srv.wait_result(WAIT) == (1000, "")
