"""The clients the benchmark compares, each running every workload its own fastest way.

Two shapes of client:

* **Receive-style** libraries (raw TCP, websocket-client, websockets,
  aiohttp) have a blocking or awaitable ``recv()``: their workloads are plain
  loops over ``send`` and ``recv`` (:class:`RecvClient`, :class:`AsyncRecvClient`).
* **Callback-style** libraries (wsloop, picows) call the application when a
  message arrives: their workloads are driven by a :class:`RoundTrip` or
  :class:`Pipeline` pump whose ``on_message`` sends the next message from
  inside the callback, which is how those libraries are fastest.

Every client hands the application each message as an owned ``str`` or
``bytes`` and sends text given as a ``str``. Compression is off everywhere;
keepalive pings and other options stay at each library's defaults, except
message-size limits raised where a default would refuse the 1 MiB echo.

Adding a client is adding a class here and a line in :data:`CLIENTS`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import select
import socket
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from importlib import metadata, util
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TEXT = "x" * 32
"""The 32-byte text message of the round-trip and pipelined workloads."""

WORKLOADS = ("rtt", "pipe", "big", "conn", "idle", "idle_py", "poll")

_PAGE = os.sysconf("SC_PAGE_SIZE")


# Measurement.


def _server_cpu_ns(pid: int) -> int:
    """CPU time of every thread of process ``pid``, in ns (schedstat; ticks as a fallback)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0


class Meter:
    """Wall time, this process's CPU time (all threads) and the server's CPU time."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.wall_ns = self.cpu_ns = self.server_ns = 0
        self._w0 = self._c0 = self._s0 = 0

    def start(self) -> None:
        self._s0 = _server_cpu_ns(self.server_pid)
        self._c0 = time.process_time_ns()
        self._w0 = perf_counter_ns()

    def stop(self) -> None:
        self.wall_ns = perf_counter_ns() - self._w0
        self.cpu_ns = time.process_time_ns() - self._c0
        self.server_ns = _server_cpu_ns(self.server_pid) - self._s0


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


class MemProbe:
    """Memory growth across a block: RSS, or Python allocations with tracemalloc."""

    def __init__(self, use_tracemalloc: bool) -> None:
        self.tracemalloc = use_tracemalloc
        self._before = 0

    def begin(self) -> None:
        gc.collect()
        if self.tracemalloc:
            tracemalloc.start()
            self._before = tracemalloc.get_traced_memory()[0]
        else:
            self._before = rss_bytes()

    def end(self) -> int:
        gc.collect()
        if self.tracemalloc:
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
        else:
            after = rss_bytes()
        return after - self._before


@dataclass
class Ctx:
    """What a workload run gets, and what it leaves for the worker to report."""

    host: str
    ws_port: int
    tcp_port: int
    server_pid: int
    n: int
    """Messages, connections or calls in the measured window."""
    warmup: int
    window: int = 100
    size: int = 2**20
    tracemalloc: bool = False
    meter: Meter = field(init=False)
    lat: list[int] = field(default_factory=list)
    mem_bytes: int = 0

    def __post_init__(self) -> None:
        self.meter = Meter(self.server_pid)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}/"

    def payload(self) -> bytes:
        return os.urandom(self.size)


class BenchError(RuntimeError):
    """A run went wrong: the echo did not match, or a connection failed."""


def _check(got: object, want: object) -> None:
    if got != want:
        raise BenchError(f"echo mismatch: got {_short(got)}, want {_short(want)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _noop() -> None:
    pass


# Pumps for callback-style clients.


class RoundTrip:
    """One message in flight: each echo records its latency and sends the next."""

    __slots__ = ("count", "done", "last", "lat", "notify", "payload", "send", "t0", "target")

    def __init__(self, send: Callable[[Any], object], payload: object) -> None:
        self.send = send
        self.payload = payload
        self.lat: list[int] = []
        self.count = self.target = self.t0 = 0
        self.done = True
        self.last: object = None
        self.notify: Callable[[], object] = _noop

    def start(self, total: int, lat: list[int], notify: Callable[[], object] = _noop) -> None:
        self.count = 0
        self.target = total
        self.lat = lat
        self.done = False
        self.notify = notify
        self.t0 = perf_counter_ns()
        self.send(self.payload)

    def on_message(self, message: object) -> None:
        t = perf_counter_ns()
        self.lat.append(t - self.t0)
        self.last = message
        count = self.count + 1
        self.count = count
        if count < self.target:
            self.t0 = perf_counter_ns()
            self.send(self.payload)
        else:
            self.done = True
            self.notify()


class Pipeline:
    """Windows of messages: once every echo of a window is back, send the next window."""

    __slots__ = ("count", "done", "last", "left", "notify", "payload", "send", "target", "window")

    def __init__(self, send: Callable[[Any], object], payload: object, window: int) -> None:
        self.send = send
        self.payload = payload
        self.window = window
        self.count = self.target = self.left = 0
        self.done = True
        self.last: object = None
        self.notify: Callable[[], object] = _noop

    def start(self, total: int, notify: Callable[[], object] = _noop) -> None:
        self.count = 0
        self.target = total
        self.done = False
        self.notify = notify
        self._send_window()

    def _send_window(self) -> None:
        self.left = self.window
        send = self.send
        payload = self.payload
        for _ in range(self.window):
            send(payload)

    def on_message(self, message: object) -> None:
        self.last = message
        left = self.left - 1
        self.left = left
        if left:
            return
        self.count += self.window
        if self.count < self.target:
            self._send_window()
        else:
            self.done = True
            self.notify()


# The client classes.


class Client:
    """A client of the benchmark; subclasses implement the workloads they support."""

    name: ClassVar[str]
    label: ClassVar[str]
    """Library and mode, for the table."""
    family: ClassVar[str]
    """``"wsloop"``, ``"raw"`` or the peer library's name: ratios compare families."""
    modules: ClassVar[tuple[str, ...]] = ()
    """Modules that must be importable for the client to be available."""
    dists: ClassVar[tuple[str, ...]] = ()
    """Distributions whose versions the report records."""
    is_async: ClassVar[bool] = False
    loop: ClassVar[str] = "asyncio"
    workloads: ClassVar[tuple[str, ...]] = ("rtt", "pipe", "big", "conn", "idle", "idle_py")

    def setup(self) -> None:
        """Run before anything is imported in the worker process."""

    @classmethod
    def available(cls) -> str | None:
        """None when the client can run here, else why not."""
        for module in cls.modules:
            if util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        out = {}
        for dist in cls.dists:
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                out[dist] = "?"
        return out

    def run(self, workload: str, ctx: Ctx) -> dict[str, Any]:
        """Run one workload; return extra facts for the report."""
        method = getattr(self, workload.removesuffix("_py"))
        if self.is_async:
            return _run_async(method(ctx), self.loop) or {}
        return method(ctx) or {}


def _run_async(coro: Awaitable[Any], loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


class RecvClient(Client):
    """A blocking client with ``recv()``: subclasses provide :meth:`open`."""

    def open(self, ctx: Ctx) -> Any:
        raise NotImplementedError

    def text_ops(self, conn: Any) -> tuple[Callable[[Any], object], Callable[[], Any], object]:
        """(send, recv, payload) for text."""
        raise NotImplementedError

    def binary_ops(
        self, conn: Any, payload: bytes
    ) -> tuple[Callable[[Any], object], Callable[[], Any], object]:
        raise NotImplementedError

    def shut(self, conn: Any) -> None:
        conn.close()

    def expect_text(self) -> object:
        return TEXT

    def rtt(self, ctx: Ctx) -> None:
        conn = self.open(ctx)
        send, recv, payload = self.text_ops(conn)
        _sync_round_trips(send, recv, payload, ctx.warmup, [])
        ctx.meter.start()
        last = _sync_round_trips(send, recv, payload, ctx.n, ctx.lat)
        ctx.meter.stop()
        _check(last, self.expect_text())
        self.shut(conn)

    def pipe(self, ctx: Ctx) -> None:
        conn = self.open(ctx)
        send, recv, payload = self.text_ops(conn)
        _sync_pipeline(send, recv, payload, ctx.warmup, ctx.window)
        ctx.meter.start()
        last = _sync_pipeline(send, recv, payload, ctx.n, ctx.window)
        ctx.meter.stop()
        _check(last, self.expect_text())
        self.shut(conn)

    def big(self, ctx: Ctx) -> None:
        conn = self.open(ctx)
        data = ctx.payload()
        send, recv, payload = self.binary_ops(conn, data)
        _sync_round_trips(send, recv, payload, ctx.warmup, [])
        ctx.meter.start()
        last = _sync_round_trips(send, recv, payload, ctx.n, ctx.lat)
        ctx.meter.stop()
        _check(bytes(last), data)
        self.shut(conn)

    def conn(self, ctx: Ctx) -> None:
        for _ in range(ctx.warmup):
            self.shut(self.open(ctx))
        ctx.meter.start()
        for _ in range(ctx.n):
            self.shut(self.open(ctx))
        ctx.meter.stop()

    def idle(self, ctx: Ctx) -> None:
        self.shut(self.open(ctx))  # lazy imports and caches are not per connection
        probe = MemProbe(ctx.tracemalloc)
        probe.begin()
        ctx.meter.start()
        conns = [self.open(ctx) for _ in range(ctx.n)]
        ctx.meter.stop()
        ctx.mem_bytes = probe.end()
        del conns


def _sync_round_trips(
    send: Callable[[Any], object], recv: Callable[[], Any], payload: object, n: int, lat: list[int]
) -> Any:
    pc = perf_counter_ns
    message = None
    for _ in range(n):
        t0 = pc()
        send(payload)
        message = recv()
        lat.append(pc() - t0)
    return message


def _sync_pipeline(
    send: Callable[[Any], object], recv: Callable[[], Any], payload: object, n: int, window: int
) -> Any:
    message = None
    for _ in range(n // window):
        for _ in range(window):
            send(payload)
        for _ in range(window):
            message = recv()
    return message


class AsyncRecvClient(Client):
    """An asyncio client with an awaitable ``recv()``."""

    is_async = True

    async def open(self, ctx: Ctx) -> Any:
        raise NotImplementedError

    def text_ops(self, conn: Any) -> tuple[Any, Any, object]:
        raise NotImplementedError

    def binary_ops(self, conn: Any, payload: bytes) -> tuple[Any, Any, object]:
        raise NotImplementedError

    async def shut(self, conn: Any) -> None:
        await conn.close()

    async def finish(self) -> None:
        """Release what :meth:`open` shares between connections."""

    async def rtt(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        send, recv, payload = self.text_ops(conn)
        await _async_round_trips(send, recv, payload, ctx.warmup, [])
        ctx.meter.start()
        last = await _async_round_trips(send, recv, payload, ctx.n, ctx.lat)
        ctx.meter.stop()
        _check(last, TEXT)
        await self.shut(conn)
        await self.finish()

    async def pipe(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        send, recv, payload = self.text_ops(conn)
        await _async_pipeline(send, recv, payload, ctx.warmup, ctx.window)
        ctx.meter.start()
        last = await _async_pipeline(send, recv, payload, ctx.n, ctx.window)
        ctx.meter.stop()
        _check(last, TEXT)
        await self.shut(conn)
        await self.finish()

    async def big(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        data = ctx.payload()
        send, recv, payload = self.binary_ops(conn, data)
        await _async_round_trips(send, recv, payload, ctx.warmup, [])
        ctx.meter.start()
        last = await _async_round_trips(send, recv, payload, ctx.n, ctx.lat)
        ctx.meter.stop()
        _check(bytes(last), data)
        await self.shut(conn)
        await self.finish()

    async def conn(self, ctx: Ctx) -> None:
        for _ in range(ctx.warmup):
            await self.shut(await self.open(ctx))
        ctx.meter.start()
        for _ in range(ctx.n):
            await self.shut(await self.open(ctx))
        ctx.meter.stop()
        await self.finish()

    async def idle(self, ctx: Ctx) -> None:
        await self.shut(await self.open(ctx))
        probe = MemProbe(ctx.tracemalloc)
        probe.begin()
        ctx.meter.start()
        conns = [await self.open(ctx) for _ in range(ctx.n)]
        ctx.meter.stop()
        ctx.mem_bytes = probe.end()
        del conns


async def _async_round_trips(
    send: Callable[[Any], Awaitable[object]],
    recv: Callable[[], Awaitable[Any]],
    payload: object,
    n: int,
    lat: list[int],
) -> Any:
    pc = perf_counter_ns
    message = None
    for _ in range(n):
        t0 = pc()
        await send(payload)
        message = await recv()
        lat.append(pc() - t0)
    return message


async def _async_pipeline(
    send: Callable[[Any], Awaitable[object]],
    recv: Callable[[], Awaitable[Any]],
    payload: object,
    n: int,
    window: int,
) -> Any:
    message = None
    for _ in range(n // window):
        for _ in range(window):
            await send(payload)
        for _ in range(window):
            message = await recv()
    return message


# Raw TCP: the physical limit.


class RawTCP(RecvClient):
    """Blocking sockets against the raw TCP echo: no framing, no masking, no handshake."""

    name = "raw-tcp"
    label = "raw TCP (socket)"
    family = "raw"

    def open(self, ctx: Ctx) -> socket.socket:
        sock = socket.create_connection((ctx.host, ctx.tcp_port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _ops(self, sock: socket.socket, payload: bytes) -> tuple[Any, Any, object]:
        recv_into = sock.recv_into
        size = len(payload)
        view = memoryview(bytearray(size))

        def recv() -> memoryview:
            got = 0
            while got < size:
                n = recv_into(view[got:size])
                if not n:
                    raise BenchError("raw TCP echo closed the connection")
                got += n
            return view[:size]

        return sock.sendall, recv, payload

    def text_ops(self, conn: socket.socket) -> tuple[Any, Any, object]:
        return self._ops(conn, TEXT.encode())

    def binary_ops(self, conn: socket.socket, payload: bytes) -> tuple[Any, Any, object]:
        return self._ops(conn, payload)

    def expect_text(self) -> object:
        return TEXT.encode()

    def pipe(self, ctx: Ctx) -> None:
        # Each message is its own send, as a WebSocket client writes it; the
        # echoes of a window are read in as few calls as the kernel allows.
        sock = self.open(ctx)
        payload = TEXT.encode()
        send, recv_window, _ = self._ops(sock, payload * ctx.window)

        def run(n: int) -> Any:
            last = None
            for _ in range(n // ctx.window):
                for _ in range(ctx.window):
                    send(payload)
                last = recv_window()
            return last

        run(ctx.warmup)
        ctx.meter.start()
        last = run(ctx.n)
        ctx.meter.stop()
        _check(bytes(last[-len(payload) :]), payload)
        sock.close()

    def big(self, ctx: Ctx) -> None:
        # Writing and reading at the same time, as an event loop does: a
        # blocking sendall() of 1 MiB before reading would understate the limit.
        sock = self.open(ctx)
        sock.setblocking(False)
        data = ctx.payload()
        out = memoryview(data)
        size = len(data)
        inbuf = memoryview(bytearray(size))
        send, recv_into = sock.send, sock.recv_into

        def echo() -> memoryview:
            sent = got = 0
            while got < size:
                progress = False
                if sent < size:
                    try:
                        sent += send(out[sent:])
                        progress = True
                    except BlockingIOError:
                        pass
                try:
                    n = recv_into(inbuf[got:])
                except BlockingIOError:
                    n = -1
                if n == 0:
                    raise BenchError("raw TCP echo closed the connection")
                if n > 0:
                    got += n
                    progress = True
                if not progress:
                    select.select([sock], [sock] if sent < size else [], [], 5.0)
            return inbuf

        for _ in range(ctx.warmup):
            echo()
        ctx.meter.start()
        for _ in range(ctx.n):
            t0 = perf_counter_ns()
            last = echo()
            ctx.lat.append(perf_counter_ns() - t0)
        ctx.meter.stop()
        _check(bytes(last), data)
        sock.close()


# wsloop.


class WsloopSync(Client):
    """wsloop's WebSocket; handlers send the next message (the trigger style)."""

    family = "wsloop"
    modules = ("wsloop",)
    dists = ("wsloop", "websockets")
    driver: ClassVar[str]
    workloads = ("rtt", "pipe", "big", "conn", "idle", "idle_py", "poll")

    def make(self) -> Any:
        from wsloop import WebSocket

        return WebSocket(compression=None, driver=self.driver)

    def open(self, ctx: Ctx) -> Any:
        ws = self.make()
        ws.connect(ctx.url)
        if not ws.wait_open(10.0):
            raise BenchError(f"wsloop could not connect: {ws.error_msg}")
        return ws

    def shut(self, ws: Any) -> None:
        ws.close()
        ws.wait_closed(10.0)

    def pump(self, ws: Any, run: Callable[[Callable[[], object]], None], done: Any) -> None:
        """Start the pump with ``run(notify)`` and drive it until ``done()``."""
        raise NotImplementedError

    def _round_trips(self, ctx: Ctx, ws: Any, pump: RoundTrip) -> None:
        self.pump(ws, lambda notify: pump.start(ctx.warmup, [], notify), lambda: pump.done)
        ctx.meter.start()
        self.pump(ws, lambda notify: pump.start(ctx.n, ctx.lat, notify), lambda: pump.done)
        ctx.meter.stop()

    def rtt(self, ctx: Ctx) -> None:
        ws = self.open(ctx)
        pump = RoundTrip(ws.send_text, TEXT)
        ws.on_text_message = pump.on_message
        self._round_trips(ctx, ws, pump)
        _check(pump.last.text, TEXT)  # type: ignore[attr-defined]
        self.shut(ws)

    def pipe(self, ctx: Ctx) -> None:
        ws = self.open(ctx)
        pump = Pipeline(ws.send_text, TEXT, ctx.window)
        ws.on_text_message = pump.on_message
        self.pump(ws, lambda notify: pump.start(ctx.warmup, notify), lambda: pump.done)
        ctx.meter.start()
        self.pump(ws, lambda notify: pump.start(ctx.n, notify), lambda: pump.done)
        ctx.meter.stop()
        _check(pump.last.text, TEXT)  # type: ignore[attr-defined]
        self.shut(ws)

    def big(self, ctx: Ctx) -> None:
        ws = self.open(ctx)
        data = ctx.payload()
        pump = RoundTrip(ws.send_binary, data)
        ws.on_binary_message = pump.on_message
        self._round_trips(ctx, ws, pump)
        _check(pump.last.data, data)  # type: ignore[attr-defined]
        self.shut(ws)

    def conn(self, ctx: Ctx) -> None:
        for _ in range(ctx.warmup):
            self.shut(self.open(ctx))
        ctx.meter.start()
        for _ in range(ctx.n):
            self.shut(self.open(ctx))
        ctx.meter.stop()

    def idle(self, ctx: Ctx) -> None:
        self.shut(self.open(ctx))
        probe = MemProbe(ctx.tracemalloc)
        probe.begin()
        ctx.meter.start()
        conns = [self.open(ctx) for _ in range(ctx.n)]
        ctx.meter.stop()
        ctx.mem_bytes = probe.end()
        del conns

    def poll(self, ctx: Ctx) -> None:
        """The cost of one ``poll()`` on an idle open connection (what a frame pays)."""
        ws = self.open(ctx)
        poll = ws.poll
        for _ in range(ctx.warmup):
            poll()
        ctx.meter.start()
        for _ in range(ctx.n):
            poll()
        ctx.meter.stop()
        if not ws.is_open:
            raise BenchError("the connection closed during the poll() workload")
        self.shut(ws)


class WsloopPoll(WsloopSync):
    name = "wsloop-poll"
    label = "wsloop (poll driver)"
    driver = "poll"

    def pump(self, ws: Any, run: Callable[[Callable[[], object]], None], done: Any) -> None:
        run(_noop)
        poll = ws.poll
        while not done():
            poll(None)


class WsloopThread(WsloopSync):
    name = "wsloop-thread"
    label = "wsloop (thread driver)"
    driver = "thread"

    def pump(self, ws: Any, run: Callable[[Callable[[], object]], None], done: Any) -> None:
        finished = threading.Event()
        run(finished.set)
        if not finished.wait(120.0):
            raise BenchError("wsloop thread driver: the workload did not finish in 120 s")


class WsloopAsync(Client):
    """wsloop's AsyncWebSocket; handlers send the next message."""

    name = "wsloop-asyncio"
    label = "wsloop (AsyncWebSocket)"
    family = "wsloop"
    modules = ("wsloop.drivers.asyncio",)
    dists = ("wsloop", "websockets")
    is_async = True

    async def open(self, ctx: Ctx) -> Any:
        from wsloop import AsyncWebSocket

        ws = AsyncWebSocket(compression=None)
        await ws.connect(ctx.url)
        return ws

    async def shut(self, ws: Any) -> None:
        await ws.aclose()

    async def _pump(self, start: Callable[[Callable[[], object]], None]) -> None:
        done = asyncio.get_running_loop().create_future()
        start(lambda: done.set_result(None))
        await done

    async def _round_trips(self, ctx: Ctx, pump: RoundTrip) -> None:
        await self._pump(lambda notify: pump.start(ctx.warmup, [], notify))
        ctx.meter.start()
        await self._pump(lambda notify: pump.start(ctx.n, ctx.lat, notify))
        ctx.meter.stop()

    async def rtt(self, ctx: Ctx) -> None:
        ws = await self.open(ctx)
        pump = RoundTrip(ws.send_text, TEXT)
        ws.on_text_message = pump.on_message
        await self._round_trips(ctx, pump)
        _check(pump.last.text, TEXT)  # type: ignore[attr-defined]
        await self.shut(ws)

    async def pipe(self, ctx: Ctx) -> None:
        ws = await self.open(ctx)
        pump = Pipeline(ws.send_text, TEXT, ctx.window)
        ws.on_text_message = pump.on_message
        await self._pump(lambda notify: pump.start(ctx.warmup, notify))
        ctx.meter.start()
        await self._pump(lambda notify: pump.start(ctx.n, notify))
        ctx.meter.stop()
        _check(pump.last.text, TEXT)  # type: ignore[attr-defined]
        await self.shut(ws)

    async def big(self, ctx: Ctx) -> None:
        ws = await self.open(ctx)
        data = ctx.payload()
        pump = RoundTrip(ws.send_binary, data)
        ws.on_binary_message = pump.on_message
        await self._round_trips(ctx, pump)
        _check(pump.last.data, data)  # type: ignore[attr-defined]
        await self.shut(ws)

    async def conn(self, ctx: Ctx) -> None:
        for _ in range(ctx.warmup):
            await self.shut(await self.open(ctx))
        ctx.meter.start()
        for _ in range(ctx.n):
            await self.shut(await self.open(ctx))
        ctx.meter.stop()

    async def idle(self, ctx: Ctx) -> None:
        await self.shut(await self.open(ctx))
        probe = MemProbe(ctx.tracemalloc)
        probe.begin()
        ctx.meter.start()
        conns = [await self.open(ctx) for _ in range(ctx.n)]
        ctx.meter.stop()
        ctx.mem_bytes = probe.end()
        del conns


class WsloopAsyncUvloop(WsloopAsync):
    name = "wsloop-asyncio-uvloop"
    label = "wsloop (AsyncWebSocket, uvloop)"
    modules = ("wsloop.drivers.asyncio", "uvloop")
    dists = ("wsloop", "websockets", "uvloop")
    loop = "uvloop"


# websocket-client.


class WebsocketClient(RecvClient):
    name = "websocket-client"
    label = "websocket-client"
    family = "websocket-client"
    modules = ("websocket",)
    dists = ("websocket-client",)

    def setup(self) -> None:
        # Without wsaccel: make its import fail so websocket-client falls back.
        sys.modules["wsaccel"] = None  # type: ignore[assignment]

    def open(self, ctx: Ctx) -> Any:
        import websocket

        return websocket.create_connection(ctx.url)

    def text_ops(self, conn: Any) -> tuple[Any, Any, object]:
        return conn.send_text, conn.recv, TEXT

    def binary_ops(self, conn: Any, payload: bytes) -> tuple[Any, Any, object]:
        return conn.send_binary, conn.recv, payload


class WebsocketClientAccel(WebsocketClient):
    name = "websocket-client-wsaccel"
    label = "websocket-client + wsaccel"
    modules = ("websocket", "wsaccel")
    dists = ("websocket-client", "wsaccel")

    def setup(self) -> None:
        pass


# websockets.


class WebsocketsSync(RecvClient):
    name = "websockets-sync"
    label = "websockets (sync)"
    family = "websockets"
    modules = ("websockets.sync.client",)
    dists = ("websockets",)

    def open(self, ctx: Ctx) -> Any:
        from websockets.sync.client import connect

        return connect(ctx.url, compression=None, max_size=2**24)

    def text_ops(self, conn: Any) -> tuple[Any, Any, object]:
        return conn.send, conn.recv, TEXT

    def binary_ops(self, conn: Any, payload: bytes) -> tuple[Any, Any, object]:
        return conn.send, conn.recv, payload


class WebsocketsAsync(AsyncRecvClient):
    name = "websockets-asyncio"
    label = "websockets (asyncio)"
    family = "websockets"
    modules = ("websockets.asyncio.client",)
    dists = ("websockets",)

    async def open(self, ctx: Ctx) -> Any:
        from websockets.asyncio.client import connect

        return await connect(ctx.url, compression=None, max_size=2**24)

    def text_ops(self, conn: Any) -> tuple[Any, Any, object]:
        return conn.send, conn.recv, TEXT

    def binary_ops(self, conn: Any, payload: bytes) -> tuple[Any, Any, object]:
        return conn.send, conn.recv, payload


class WebsocketsAsyncUvloop(WebsocketsAsync):
    name = "websockets-asyncio-uvloop"
    label = "websockets (asyncio, uvloop)"
    modules = ("websockets.asyncio.client", "uvloop")
    dists = ("websockets", "uvloop")
    loop = "uvloop"


# aiohttp.


class Aiohttp(AsyncRecvClient):
    name = "aiohttp"
    label = "aiohttp"
    family = "aiohttp"
    modules = ("aiohttp",)
    dists = ("aiohttp",)

    def __init__(self) -> None:
        self._session: Any = None

    async def open(self, ctx: Ctx) -> Any:
        import aiohttp

        if self._session is None:
            # No cap on connections: the default connector allows 100 at once.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return await self._session.ws_connect(ctx.url, compress=0, max_msg_size=2**24)

    async def finish(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def text_ops(self, conn: Any) -> tuple[Any, Any, object]:
        return conn.send_str, conn.receive_str, TEXT

    def binary_ops(self, conn: Any, payload: bytes) -> tuple[Any, Any, object]:
        return conn.send_bytes, conn.receive_bytes, payload


# picows.


class Picows(Client):
    """picows (Cython): frames arrive in a listener callback, which sends the next message."""

    name = "picows"
    label = "picows"
    family = "picows"
    modules = ("picows",)
    dists = ("picows",)
    is_async = True

    async def open(self, ctx: Ctx) -> Any:
        from picows import WSListener, WSMsgType, ws_connect

        text, binary = WSMsgType.TEXT, WSMsgType.BINARY

        class Listener(WSListener):  # type: ignore[misc]
            def __init__(self) -> None:
                self.pump: Any = None

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                kind = frame.msg_type
                if kind == text:
                    self.pump.on_message(frame.get_payload_as_utf8_text())
                elif kind == binary:
                    self.pump.on_message(frame.get_payload_as_bytes())

        transport, listener = await ws_connect(Listener, ctx.url)
        return transport, listener

    async def shut(self, conn: Any) -> None:
        from picows import WSCloseCode

        transport = conn[0]
        transport.send_close(WSCloseCode.OK)
        await transport.wait_disconnected()

    async def _pump(self, start: Callable[[Callable[[], object]], None]) -> None:
        done = asyncio.get_running_loop().create_future()
        start(lambda: done.set_result(None))
        await done

    def _senders(self, transport: Any) -> tuple[Any, Any]:
        from picows import WSMsgType

        send = transport.send
        text, binary = WSMsgType.TEXT, WSMsgType.BINARY
        return (lambda s: send(text, s.encode())), (lambda b: send(binary, b))

    async def _round_trips(self, ctx: Ctx, pump: RoundTrip) -> None:
        await self._pump(lambda notify: pump.start(ctx.warmup, [], notify))
        ctx.meter.start()
        await self._pump(lambda notify: pump.start(ctx.n, ctx.lat, notify))
        ctx.meter.stop()

    async def rtt(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        send_text, _ = self._senders(conn[0])
        pump = conn[1].pump = RoundTrip(send_text, TEXT)
        await self._round_trips(ctx, pump)
        _check(pump.last, TEXT)
        await self.shut(conn)

    async def pipe(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        send_text, _ = self._senders(conn[0])
        pump = conn[1].pump = Pipeline(send_text, TEXT, ctx.window)
        await self._pump(lambda notify: pump.start(ctx.warmup, notify))
        ctx.meter.start()
        await self._pump(lambda notify: pump.start(ctx.n, notify))
        ctx.meter.stop()
        _check(pump.last, TEXT)
        await self.shut(conn)

    async def big(self, ctx: Ctx) -> None:
        conn = await self.open(ctx)
        data = ctx.payload()
        _, send_binary = self._senders(conn[0])
        pump = conn[1].pump = RoundTrip(send_binary, data)
        await self._round_trips(ctx, pump)
        _check(pump.last, data)
        await self.shut(conn)

    async def conn(self, ctx: Ctx) -> None:
        for _ in range(ctx.warmup):
            await self.shut(await self.open(ctx))
        ctx.meter.start()
        for _ in range(ctx.n):
            await self.shut(await self.open(ctx))
        ctx.meter.stop()

    async def idle(self, ctx: Ctx) -> None:
        await self.shut(await self.open(ctx))
        probe = MemProbe(ctx.tracemalloc)
        probe.begin()
        ctx.meter.start()
        conns = [await self.open(ctx) for _ in range(ctx.n)]
        ctx.meter.stop()
        ctx.mem_bytes = probe.end()
        del conns


class PicowsUvloop(Picows):
    name = "picows-uvloop"
    label = "picows (uvloop)"
    modules = ("picows", "uvloop")
    dists = ("picows", "uvloop")
    loop = "uvloop"


CLIENTS: dict[str, type[Client]] = {
    cls.name: cls
    for cls in (
        RawTCP,
        WsloopPoll,
        WsloopThread,
        WsloopAsync,
        WsloopAsyncUvloop,
        WebsocketClient,
        WebsocketClientAccel,
        WebsocketsSync,
        WebsocketsAsync,
        WebsocketsAsyncUvloop,
        Aiohttp,
        Picows,
        PicowsUvloop,
    )
}
"""Every client, in the order of the tables."""
