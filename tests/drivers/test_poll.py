"""The poll driver's public step/deadline/wake API, as a thread of one's own would use it.

``ThreadDriver`` runs the poll machinery this way; so can anyone who wants
the I/O elsewhere than in ``poll()``. These tests drive a bare
:class:`~wsloop.drivers.poll.PollDriver` against the ``websockets`` server.
"""

from __future__ import annotations

import ast
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from servers import WAIT, unique_path
from wsloop import Closed, Opened, TextMessage
from wsloop._url import parse_url
from wsloop.drivers import thread as thread_module
from wsloop.drivers.base import Config
from wsloop.drivers.poll import PollDriver

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers import WebsocketsServer


def run_until(driver: PollDriver, done: Callable[[], bool]) -> None:
    """Step ``driver`` the way the thread driver does, until ``done()``."""
    end = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < end, f"not done in time: {list(driver.events)}"
        deadline = driver.next_deadline()
        wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
        driver.step(wait)


def test_step_and_next_deadline_run_a_connection(ws_server: WebsocketsServer) -> None:
    driver = PollDriver(Config(ping_interval=20.0))
    assert driver.phase == "idle"
    assert driver.next_deadline() is None
    before = time.monotonic()
    driver.connect(parse_url(ws_server.url(unique_path())), ())
    assert driver.phase in ("tcp", "ws")  # an IP literal: no lookup
    connect_deadline = driver.next_deadline()
    assert connect_deadline is not None
    assert before < connect_deadline <= time.monotonic() + 10.0  # connect_timeout
    run_until(driver, lambda: any(isinstance(e, Opened) for e in driver.events))
    assert driver.phase == "ws"
    ping_at = driver.next_deadline()  # the keepalive's first ping now
    assert ping_at is not None
    assert before + 20.0 <= ping_at <= time.monotonic() + 20.0
    assert driver.send_text("hello")
    run_until(driver, lambda: any(isinstance(e, TextMessage) for e in driver.events))
    driver.close(1000, "")
    run_until(driver, lambda: any(isinstance(e, Closed) for e in driver.events))
    assert driver.phase == "idle"
    assert driver.next_deadline() is None
    assert [type(e) for e in driver.events] == [Opened, TextMessage, Closed]


def test_wake_socket_ends_a_wait_without_deadline(ws_server: WebsocketsServer) -> None:
    driver = PollDriver(Config(ping_interval=None))
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    try:
        driver.set_wake_socket(wake_r)
        assert driver.wake_socket is wake_r
        driver.connect(parse_url(ws_server.url(unique_path())), ())
        run_until(driver, lambda: bool(driver.events))
        assert driver.next_deadline() is None  # nothing would end a wait but the socket
        waiter = threading.Thread(target=driver.step, args=(None,), daemon=True)
        waiter.start()
        time.sleep(0.05)
        assert waiter.is_alive()  # waiting: the server says nothing
        wake_w.send(b"\0")
        waiter.join(WAIT)
        assert not waiter.is_alive(), "the wake socket did not end the wait"
        try:
            leftover = wake_r.recv(16)
        except BlockingIOError:
            leftover = b""
        assert leftover == b""  # the driver read the wake-up byte
        driver.close(1000, "")
        run_until(driver, lambda: driver.phase == "idle")
    finally:
        driver.set_wake_socket(None)
        wake_r.close()
        wake_w.close()
    assert driver.wake_socket is None


def test_thread_driver_uses_no_private_name_of_the_poll_driver() -> None:
    """``drivers/thread.py`` reaches the poll machinery through its public API only."""
    source = Path(thread_module.__file__).read_text(encoding="utf-8")
    private = sorted(
        {
            f"{ast.unparse(node.value)}.{node.attr}"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and ast.unparse(node.value) in ("io", "self._io")
        }
    )
    assert private == []
