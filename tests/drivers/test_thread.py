"""The thread driver: where handlers run, thread safety, errors, shutdown, idle cost."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest
from websockets.asyncio.server import ServerConnection, serve

import wsloop

if TYPE_CHECKING:
    from collections.abc import Iterator

TIMEOUT = 10.0


class _EchoServer:
    """A websockets echo server on a background event loop."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[str | bytes] = []
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(TIMEOUT)

    async def _handler(self, conn: ServerConnection) -> None:
        async for message in conn:
            self.received.append(message)
            if message == "close please":
                await conn.close(4321, "game over")
                return
            await conn.send(message)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, max_size=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        assert loop is not None
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        self._thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def echo() -> Iterator[_EchoServer]:
    server = _EchoServer()
    yield server
    server.stop()


def _io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wsloop-io"]


def _until(predicate, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def test_handlers_run_on_the_io_thread(echo: _EchoServer) -> None:
    ws = wsloop.WebSocket(driver="thread")
    seen: list[tuple[str, str]] = []
    ws.on_opened = lambda e: seen.append(("opened", threading.current_thread().name))
    ws.on_text_message = lambda e: seen.append((e.text, threading.current_thread().name))
    ws.on_closed = lambda e: seen.append(("closed", threading.current_thread().name))
    ws.connect(echo.url)
    assert ws.wait_open(TIMEOUT)
    assert ws.send_text("ping")
    _until(lambda: len(seen) >= 2)
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    assert seen == [("opened", "wsloop-io"), ("ping", "wsloop-io"), ("closed", "wsloop-io")]


def test_deliver_caller_runs_handlers_only_in_poll(echo: _EchoServer) -> None:
    ws = wsloop.WebSocket(driver="thread", deliver="caller")
    seen: list[tuple[str, str]] = []
    ws.on_text_message = lambda e: seen.append((e.text, threading.current_thread().name))
    ws.connect(echo.url)
    assert ws.wait_open(TIMEOUT)
    ws.send_text("one")
    # The echo arrives on the I/O thread but waits in the queue until poll().
    _until(lambda: len(ws.driver.events) > 0)
    assert seen == []
    assert ws.poll() == 1
    assert seen == [("one", threading.current_thread().name)]
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1000


def test_sends_from_many_threads_arrive_whole_and_in_order_per_thread(
    echo: _EchoServer,
) -> None:
    ws = wsloop.WebSocket(driver="thread")
    got: list[str] = []
    lock = threading.Lock()

    def on_text(e: wsloop.TextMessage) -> None:
        with lock:
            got.append(e.text)

    ws.on_text_message = on_text
    ws.connect(echo.url)
    assert ws.wait_open(TIMEOUT)
    per_thread = 300

    def sender(n: int) -> None:
        for i in range(per_thread):
            assert ws.send_text(f"{n}:{i}:" + "x" * (i % 50))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    _until(lambda: len(got) == 4 * per_thread)
    for n in range(4):
        mine = [int(m.split(":")[1]) for m in got if m.startswith(f"{n}:")]
        assert mine == list(range(per_thread))
    ws.close()
    assert ws.wait_closed(TIMEOUT)


def test_handler_exception_is_logged_and_raised_in_the_app_thread(
    echo: _EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    ws = wsloop.WebSocket(driver="thread")
    errors: list[wsloop.Error] = []
    ws.on_error = errors.append

    def on_text(e: wsloop.TextMessage) -> None:
        if e.text == "boom":
            raise ZeroDivisionError("bug in the handler")

    ws.on_text_message = on_text
    with caplog.at_level(logging.ERROR, logger="wsloop.client"):
        ws.connect(echo.url)
        assert ws.wait_open(TIMEOUT)
        ws.send_text("boom")
        with pytest.raises(ZeroDivisionError, match="bug in the handler"):
            ws.wait_closed(2.0)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    # Raised once, not turned into an On error, and the connection goes on.
    assert errors == []
    assert ws.is_open
    assert ws.send_text("still works")
    ws.close()
    assert ws.wait_closed(TIMEOUT)


def test_no_io_thread_outlives_the_connection(echo: _EchoServer) -> None:
    ws = wsloop.WebSocket(driver="thread")
    ws.connect(echo.url)
    assert ws.wait_open(TIMEOUT)
    assert len(_io_threads()) == 1
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    _until(lambda: not _io_threads())
    assert ws.driver.thread is None  # type: ignore[attr-defined]


def test_failed_connection_ends_its_thread_with_error_then_closed() -> None:
    ws = wsloop.WebSocket(driver="thread")
    events: list[object] = []
    ws.on_error = events.append
    ws.on_closed = events.append
    ws.connect("ws://127.0.0.1:1/")
    assert ws.wait_closed(TIMEOUT)
    assert [type(e) for e in events] == [wsloop.Error, wsloop.Closed]
    assert "connection refused" in ws.error_msg
    _until(lambda: not _io_threads())


def test_reconnect_from_on_closed_handler(echo: _EchoServer) -> None:
    ws = wsloop.WebSocket(driver="thread")
    opened: list[int] = []

    def on_opened(e: wsloop.Opened) -> None:
        opened.append(1)
        ws.send_text("close please")

    def on_closed(e: wsloop.Closed) -> None:
        if len(opened) < 3:
            ws.connect(echo.url)

    ws.on_opened = on_opened
    ws.on_closed = on_closed
    ws.connect(echo.url)
    _until(lambda: len(opened) == 3 and ws.is_closed)
    assert ws.close_code == 4321


def test_idle_connection_uses_no_measurable_cpu(echo: _EchoServer) -> None:
    ws = wsloop.WebSocket(driver="thread")
    ws.connect(echo.url)
    assert ws.wait_open(TIMEOUT)
    start = time.process_time()
    time.sleep(1.0)
    used = time.process_time() - start
    ws.close()
    assert ws.wait_closed(TIMEOUT)
    # A busy-polling I/O thread would burn most of a core here.
    assert used < 0.1, f"idle thread used {used:.3f} s of CPU in 1 s"


@pytest.mark.parametrize("server", ["echo", "black hole"])
def test_interpreter_exit_does_not_hang(echo: _EchoServer, server: str) -> None:
    if server == "echo":
        url = echo.url
        setup = ""
    else:
        # Accepts TCP and never answers: the connection is stuck in the handshake.
        setup = (
            "import socket\n"
            "hole = socket.create_server(('127.0.0.1', 0))\n"
            "url = 'ws://127.0.0.1:%d/' % hole.getsockname()[1]\n"
        )
        url = None
    script = textwrap.dedent(
        f"""
        import wsloop
        {setup.replace(chr(10), chr(10) + "        ")}
        ws = wsloop.WebSocket(driver="thread", connect_timeout=None)
        ws.connect({url!r} if {url!r} else url)
        ws.wait_open(1.0)
        print("leaving", ws.is_open, ws.is_connecting, flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    expected = "leaving True False" if server == "echo" else "leaving False True"
    assert expected in proc.stdout
    assert "Traceback" not in proc.stderr
