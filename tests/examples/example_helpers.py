"""Helpers for the example tests: an echo server, Xvfb start-up, running an example.

The examples are run as a user runs them, in a subprocess, against a real
WebSocket server on 127.0.0.1. Until the project's relay is ready, the server
is a few lines over the ``websockets`` asyncio server: it sends every message
back to its sender and records what it saw, so a test can also check the
example from the server's side (messages received, close code).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Generous: a loaded CI machine must not fail a correct example.
TIMEOUT = 60.0 * float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))


@dataclass
class Connection:
    """What the server saw of one client connection."""

    path: str
    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    """The close code the client sent (None: no close frame received)."""
    closed: threading.Event = field(default_factory=threading.Event)


class EchoServer:
    """A ``websockets`` echo server in a background thread, on a free port."""

    def __init__(self, *, max_queue: int = 16) -> None:
        self.max_queue = max_queue
        self.connections: list[Connection] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo-server", daemon=True)

    def url(self, path: str = "/room/lobby") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(TIMEOUT) or not self.port:
            raise RuntimeError("the echo server did not start")

    def stop(self) -> None:
        """Stop the server (its clients see the connection end); idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set_result, None)
            self._thread.join(TIMEOUT)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        try:
            # max_size=None: the GUI tests send messages of several MB to make
            # the client buffer its writes. ping_interval=None: no keepalive
            # pings, which would wake a client whose loop failed to watch its
            # socket and hide the bug.
            async with serve(
                self._echo,
                "127.0.0.1",
                0,
                max_size=None,
                max_queue=self.max_queue,
                ping_interval=None,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop
        finally:
            self._ready.set()

    async def _echo(self, conn: ServerConnection) -> None:
        record = Connection(path=conn.request.path if conn.request else "")
        self.connections.append(record)
        try:
            async for message in conn:
                record.messages.append(message)
                # Once the client's close frame has arrived, echoes fail, but
                # the messages read before it are still there to record.
                with contextlib.suppress(ConnectionClosed):
                    await conn.send(message)
        except ConnectionClosed:
            pass
        finally:
            record.close_code = conn.close_code
            record.closed.set()

    def only_connection(self) -> Connection:
        """The one connection a test expects, once it has ended."""
        assert len(self.connections) == 1, self.connections
        conn = self.connections[0]
        assert conn.closed.wait(TIMEOUT), "the server never saw the connection end"
        return conn


# A virtual X display for tkinter: see the xvfb_display fixture.


def read_display_number(fd: int, proc: subprocess.Popen[bytes]) -> int:
    """Xvfb writes the display number and a newline to ``fd`` once it is ready."""
    result: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        data = b""
        with contextlib.suppress(OSError):
            while not data.endswith(b"\n"):
                chunk = os.read(fd, 16)
                if not chunk:
                    break
                data += chunk
        result.put(data)

    threading.Thread(target=read, daemon=True).start()
    try:
        data = result.get(timeout=TIMEOUT)
    except queue.Empty:
        data = b""
    if not data.strip().isdigit():
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"Xvfb did not start: {err.decode(errors='replace').strip()}")
    return int(data)


# Running an example.


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, object]:
        """The JSON line a ``--self-test`` run prints last."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("SELF-TEST "):
                report: dict[str, object] = json.loads(line.removeprefix("SELF-TEST "))
                return report
        raise AssertionError(f"no self-test report\n{self}")

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def _environ(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **(env or {})}


def run_example(script: str, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run ``examples/<script>`` with this interpreter, as a user would."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_environ(env),
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"{script} did not finish in {TIMEOUT} s\n{Run(-1, out, err)}"
        ) from None
    return Run(proc.returncode, out, err)


class Interactive:
    """An example in a subprocess, fed line by line on stdin, read line by line."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environ(env),
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str] | None, is_stdout: bool) -> None:
        assert stream is not None
        for line in stream:
            line = line.rstrip("\n")
            if is_stdout:
                self.stdout.append(line)
                self._lines.put(line)
            else:
                self.stderr.append(line)
        if is_stdout:
            self._lines.put(None)

    def send_line(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def expect(self, prefix: str) -> str:
        """Wait for the next stdout line that starts with ``prefix``; return it."""
        end = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting with {prefix!r}\n{self}") from None
            if line is None:
                raise AssertionError(f"output ended before {prefix!r}\n{self}")
            if line.startswith(prefix):
                return line

    def wait(self) -> int:
        """Wait for the example to exit; return its exit status."""
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.script} did not exit\n{self}") from None

    def __str__(self) -> str:
        out, err = "\n".join(self.stdout), "\n".join(self.stderr)
        return f"exit {self.proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"

    def __enter__(self) -> Interactive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for reader in self._readers:
            reader.join(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
