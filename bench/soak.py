"""Soak: the relay and the client drivers leave nothing behind (issue 16).

Theory of operation
-------------------
Two kinds of run, each measuring a process *after a warm-up* and *at the
end, after the clients are gone*, and comparing the two:

``relay``
    One ``wsloop serve`` process, or two sharing one ``redis-server``, with
    a short grace period for dropped seats (``--room-grace``). Rounds of
    churning clients (wsloop poll-driver clients, all pumped from this
    process's one thread) run against them until the time is up. Each round:

    * plain rooms: members connect, each says a few messages and waits to
      hear the others; then half of them close, the other half drop (their
      socket is shut down under the client: no close frame); a raw client
      joins, sends a frame and resets its TCP connection (RST);
    * room-protocol rooms (``wsloop.room.v1``, through :class:`wsloop.Room`
      on sockets with ``reconnect``): members join (spread over the
      relays), talk, half of them are dropped and resume by themselves,
      talk again; then they leave, close, or drop for good (their seats
      time out after the grace period).

    A round checks what it can see (everyone heard everything; a resumed
    member kept its id), so a soak that stops delivering fails loudly
    instead of measuring an idle relay.

    The relay process is measured from ``/proc/<pid>``: resident memory
    (``VmRSS``), open file descriptors, threads; and its asyncio tasks from
    ``/status.json`` (``tasks``, also ``wsloop_relay_asyncio_tasks`` in
    ``/metrics``). A measurement is taken once the relay has *settled*: no
    connections, no rooms, and the task count unchanged over half a second.

``clients``
    One driver (``poll``, ``thread``, ``asyncio``) in this process, fresh:
    ``--cycles`` connect / send / receive the echo / close cycles against
    ``wsloop serve --echo`` in another process. Measured: this process's
    file descriptors, ``threading.active_count()``, asyncio tasks (asyncio
    driver), memory traced by :mod:`tracemalloc` (started before the
    warm-up), ``VmRSS``, and whether the last WebSocket object is freed.

Flat means: file descriptors, threads and tasks back to the warm-up
baseline exactly; memory grown by no more than the bound given
(``--relay-rss-bound``, ``--client-rss-bound``, ``--traced-bound``).

``python bench/soak.py`` (``make soak``) runs everything, every client
driver in a fresh process of its own, prints the before/after table and
writes ``reports/soak.md``; it exits 1 if something is not flat.
``python bench/soak.py relay ...`` and ``python bench/soak.py clients ...``
run one part and print one JSON object (the tests use them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import gc
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsloop import AsyncWebSocket, Opened, Reconnect, Room, TextMessage, WebSocket

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0
"""How long to wait for something that should happen (generous, not a measure)."""
FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)
GRACE = 1.0
"""The relays' grace period for dropped room seats, in seconds."""
KIB = 1024
NO_PERSISTENCE = ("--save", "", "--appendonly", "no", "--dir")


# Processes and what they hold.


def proc_figures(pid: int) -> dict[str, int]:
    """``VmRSS`` (KiB), open file descriptors and threads of process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def steady_fds(pid: int) -> int:
    """Process ``pid``'s open fds, read until three readings in a row agree."""
    readings: list[int] = []
    for _ in range(100):
        readings = [*readings[-2:], len(os.listdir(f"/proc/{pid}/fd"))]
        if len(readings) == 3 and len(set(readings)) == 1:
            return readings[-1]
        time.sleep(0.05)
    raise RuntimeError(f"process {pid}'s open fds keep changing: {readings}")


def redis_links(pid: int, port: int) -> tuple[int, int]:
    """Process ``pid``'s open fds, and its TCP connections to ``127.0.0.1:port``.

    Read twice in a row until both agree: the relay opens and closes pool
    links now and then (its heartbeat), so one reading may fall in between.
    """
    remote = f"0100007F:{port:04X}"
    last: tuple[int, int] | None = None
    for _ in range(50):
        inodes = set()
        fds = os.listdir(f"/proc/{pid}/fd")
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        count = 0
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2] == remote and fields[9] in inodes:
                count += 1
        reading = (len(fds), count)
        if reading == last:
            return reading
        last = reading
        time.sleep(0.05)
    raise RuntimeError(f"the relay's Redis links keep changing: {last}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RelayProc:
    """``python -m wsloop serve --port 0 ...`` in a subprocess, its log in a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsloop", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + WAIT
        while True:
            found = re.search(r"listening on (ws://\S+)", log.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the relay did not start: {log.read_text(errors='replace')}")
            time.sleep(0.02)
        self.pid = self.proc.pid

    def status(self) -> dict[str, Any]:
        http = self.url.replace("ws://", "http://") + "/status.json"
        with urllib.request.urlopen(http, timeout=WAIT) as page:
            data: dict[str, Any] = json.loads(page.read())
        return data

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()


class RedisProc:
    """A ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *NO_PERSISTENCE,
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(WAIT)


# The relay churn.


def pump(until: Any, sockets: list[WebSocket], what: str) -> None:
    """Poll every socket, like one game loop, until ``until()`` holds."""
    deadline = time.monotonic() + WAIT
    while not until():
        if time.monotonic() > deadline:
            raise RuntimeError(f"soak stuck: {what}")
        for ws in sockets:
            ws.poll()
        time.sleep(0.002)


def drop(ws: WebSocket) -> None:
    """Cut ``ws``'s connection under it: FIN, then RST, and no close frame."""
    fd = ws.fileno()
    if fd < 0:
        return
    dup = socket.socket(fileno=os.dup(fd))
    try:
        dup.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def raw_reset(url: str, path: str) -> None:
    """A raw client: handshake, one masked text frame, then a TCP reset."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the relay closed a raw client's handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"raw client refused: {head[:80]!r}")
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"raw and gone"))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + payload)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


@dataclass
class ChurnCounts:
    """What the churn did, for the report."""

    rounds: int = 0
    connections: int = 0
    messages: int = 0
    drops: int = 0
    resumes: int = 0
    resets: int = 0


@dataclass
class _Seat:
    room: Room
    heard: list[Any] = field(default_factory=list)
    welcomes: int = 0


class Churn:
    """Rounds of clients against ``urls`` (one relay, or several sharing Redis)."""

    def __init__(self, urls: list[str], rooms: int = 3, members: int = 4, says: int = 5) -> None:
        self.urls = urls
        self.rooms = rooms
        self.members = members
        self.says = says
        self.counts = ChurnCounts()

    def run(self, seconds: float) -> ChurnCounts:
        end = time.monotonic() + seconds
        while True:
            self.round()
            if time.monotonic() >= end:
                return self.counts

    def round(self) -> None:
        n = self.counts.rounds
        for r in range(self.rooms):
            self._plain(f"/soak/plain-{n % 7}-{r}")
            self._room(f"/soak/room-{n % 7}-{r}")
        self.counts.rounds += 1

    def _plain(self, path: str) -> None:
        peers = [WebSocket() for _ in range(self.members)]
        heard = [0] * len(peers)
        for i, ws in enumerate(peers):
            ws.on_text_message = lambda event, i=i: heard.__setitem__(i, heard[i] + 1)
            ws.connect(self.urls[i % len(self.urls)] + path)
        self.counts.connections += len(peers)
        pump(lambda: all(ws.is_open for ws in peers), peers, f"plain members open in {path}")
        for k in range(self.says):
            for i, ws in enumerate(peers):
                ws.send_text(f"{path} {i} {k}")
        self.counts.messages += self.says * len(peers)
        expected = self.says * (len(peers) - 1)
        pump(lambda: all(h >= expected for h in heard), peers, f"plain messages in {path}")
        raw_reset(self.urls[0], path)
        self.counts.resets += 1
        for i, ws in enumerate(peers):
            if i % 2:
                drop(ws)
                self.counts.drops += 1
            else:
                ws.close()
        pump(lambda: all(ws.is_closed for ws in peers), peers, f"plain members closed in {path}")

    def _room(self, path: str) -> None:
        seats = [_Seat(Room(WebSocket(reconnect=FAST), f"m{i}")) for i in range(self.members)]
        sockets = [seat.room.ws for seat in seats]
        for i, seat in enumerate(seats):
            seat.room.on_message = lambda member, data, seat=seat: self._heard(seat, data)
            seat.room.on_joined = lambda me, seat=seat: setattr(
                seat, "welcomes", seat.welcomes + 1
            )
            seat.room.connect(self.urls[i % len(self.urls)] + path)
        self.counts.connections += len(seats)
        pump(lambda: all(s.room.joined for s in seats), sockets, f"room members in {path}")
        self._talk(seats, sockets, path, 0)
        ids = [seat.room.member_id for seat in seats]
        for seat in seats[1::2]:  # dropped: reconnect and resume by themselves
            drop(seat.room.ws)
            self.counts.drops += 1
        pump(
            lambda: all(s.welcomes == 2 and s.room.joined for s in seats[1::2]),
            sockets,
            f"room members resumed in {path}",
        )
        if [seat.room.member_id for seat in seats] != ids or not all(
            seat.room.resumed for seat in seats[1::2]
        ):
            raise RuntimeError(f"a resume in {path} did not take its seat back")
        self.counts.resumes += len(seats[1::2])
        self.counts.connections += len(seats[1::2])
        self._talk(seats, sockets, path, 1)
        for i, seat in enumerate(seats):
            if i % 3 == 0:
                seat.room.leave()  # the relay closes with 1000
            elif i % 3 == 1:
                seat.room.ws.close()
            else:  # gone for good: its seat times out after the grace period
                drop(seat.room.ws)
                seat.room.ws.close()
                self.counts.drops += 1
        pump(lambda: all(ws.is_closed for ws in sockets), sockets, f"room closed in {path}")

    def _heard(self, seat: _Seat, data: Any) -> None:
        # A joiner first hears the room's history: earlier rounds in a room of that name.
        if isinstance(data, dict) and data.get("round") == self.counts.rounds:
            seat.heard.append(data)

    def _talk(self, seats: list[_Seat], sockets: list[WebSocket], path: str, part: int) -> None:
        for k in range(self.says):
            for i, seat in enumerate(seats):
                seat.room.send({"round": self.counts.rounds, "who": i, "k": k, "part": part})
        self.counts.messages += self.says * len(seats)
        said = self.says * len(seats) * (part + 1)
        pump(
            lambda: all(len(s.heard) >= said and s.room.unacked == 0 for s in seats),
            sockets,
            f"room messages in {path}",
        )
        for seat in seats:
            if len(seat.heard) != said:
                raise RuntimeError(f"{path}: {len(seat.heard)} messages heard, {said} said")


def settle(
    relays: list[RelayProc], redis_port: int | None = None, grace: float = GRACE
) -> list[dict[str, Any]]:
    """Wait until every relay is idle and its task count steady; measure them."""
    time.sleep(grace + 0.5)  # dropped seats time out
    figures: list[dict[str, Any]] = []
    for relay in relays:
        deadline = time.monotonic() + WAIT
        history: list[int] = []
        while True:
            status = relay.status()
            idle = status["connections"] == 0 and status["rooms"] == 0
            history = [*history[-2:], int(status["tasks"])] if idle else []
            if len(history) == 3 and len(set(history)) == 1:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not settle: {status}")
            time.sleep(0.25)
        found: dict[str, Any] = {**proc_figures(relay.pid), "tasks": history[-1]}
        # The relay's end of the last /status.json request may still be open
        # for a moment after the answer was read: count fds once they are steady.
        found["fds"] = steady_fds(relay.pid)
        if redis_port is not None:
            # redis-py's pool keeps what it opened for concurrent commands (and
            # closes a link whose command was cancelled): counted apart.
            found["fds"], found["redis_links"] = redis_links(relay.pid, redis_port)
            found["other_fds"] = found["fds"] - found["redis_links"]
        figures.append(found)
    return figures


def relay_soak(
    mode: str, seconds: float, workdir: Path, redis_url: str | None = None, warmup: float = 3.0
) -> dict[str, Any]:
    """One relay (``single``) or two sharing a Redis server (``redis``), churned."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis: RedisProc | None = None
    relays: list[RelayProc] = []
    args = ["--room-grace", str(GRACE)]
    redis_port: int | None = None
    try:
        if mode == "redis":
            if redis_url is None:
                redis = RedisProc(workdir)
                redis_url = redis.url
            args += ["--redis", redis_url]
            redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        for name in ("one", "two") if mode == "redis" else ("one",):
            relays.append(RelayProc(args, workdir / f"relay-{mode}-{name}.log"))
        churn = Churn([relay.url for relay in relays])
        churn.run(warmup)
        before = settle(relays, redis_port)
        started = time.monotonic()
        warm = ChurnCounts(**vars(churn.counts))
        churn.run(seconds)
        took = time.monotonic() - started
        after = settle(relays, redis_port)
        counts = {k: v - getattr(warm, k) for k, v in vars(churn.counts).items()}
        return {
            "kind": "relay",
            "mode": mode,
            "seconds": round(took, 1),
            "counts": counts,
            "processes": [
                {"name": f"relay {i + 1}", "before": b, "after": a}
                for i, (b, a) in enumerate(zip(before, after, strict=True))
            ],
        }
    finally:
        for relay in relays:
            relay.stop()
        if redis is not None:
            redis.stop()


# The client cycles.


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    return proc_figures(os.getpid())["rss_kib"]


def _poll_until(ws: WebSocket, until: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not until():
        if time.monotonic() > deadline:
            raise RuntimeError(f"stuck: {what}")
        ws.poll(0.005)  # waits on the socket


def _sync_cycle(driver: str, url: str) -> weakref.ref[WebSocket]:
    ws = WebSocket(driver=driver)
    got: list[str] = []
    ws.on_text_message = lambda event: got.append(event.text)
    ws.connect(url)
    if driver == "thread":
        if not ws.wait_open(WAIT):
            raise RuntimeError(f"thread driver: not open: {ws.error_msg}")
        ws.send_text("ping")
        deadline = time.monotonic() + WAIT
        while not got:
            ws.poll(0.01)
            if time.monotonic() > deadline:
                raise RuntimeError("thread driver: no echo")
        ws.close()
        if not ws.wait_closed(WAIT):
            raise RuntimeError("thread driver: not closed")
    else:
        _poll_until(ws, lambda: ws.is_open or ws.is_closed, "poll driver open")
        ws.send_text("ping")
        _poll_until(ws, lambda: bool(got) or ws.is_closed, "poll driver echo")
        ws.close()
        _poll_until(ws, lambda: ws.is_closed, "poll driver closed")
    if got != ["ping"]:
        raise RuntimeError(f"{driver} driver: echo {got!r}, close {ws.close_code}")
    return weakref.ref(ws)


async def _async_cycle(url: str) -> weakref.ref[AsyncWebSocket]:
    ws = AsyncWebSocket()
    await ws.connect(url)
    ws.send_text("ping")
    event = await asyncio.wait_for(ws.recv(), WAIT)
    if isinstance(event, Opened):  # recv() starts with the Opened it has not shown yet
        event = await asyncio.wait_for(ws.recv(), WAIT)
    if not isinstance(event, TextMessage) or event.text != "ping":
        raise RuntimeError(f"asyncio driver: got {event!r}")
    await asyncio.wait_for(ws.aclose(), WAIT)
    return weakref.ref(ws)


def _trim() -> None:
    """Give glibc's free heap back to the system, so that RSS counts what is in use.

    Without it a process's RSS creeps up by a MiB or two over thousands of
    cycles while its allocations stay flat: memory freed but kept by malloc.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS as it is
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _measure(tasks: int | None) -> dict[str, Any]:
    gc.collect()
    raw = _rss_kib()
    _trim()
    return {
        "rss_kib": _rss_kib(),
        "rss_untrimmed_kib": raw,
        "blocks": sys.getallocatedblocks(),
        "fds": _fds(),
        "threads": threading.active_count(),
        "tasks": tasks,
        "traced_kib": round(tracemalloc.get_traced_memory()[0] / KIB, 1),
    }


def _settled_threads() -> None:
    """Wait (5 s at most) until no driver I/O thread is alive.

    Each ends just after it has delivered its connection's ``on_closed``, so
    one may still be finishing when a cycle returns; counting threads against
    a baseline taken at such a moment would stop waiting one thread early.
    """
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(
        thread.name == "wsloop-io" for thread in threading.enumerate()
    ):
        time.sleep(0.01)


def client_cycles(driver: str, cycles: int, warmup: int, url: str) -> dict[str, Any]:
    """``cycles`` connect/close cycles of ``driver``, measured after ``warmup`` of them."""
    tracemalloc.start()
    started = 0.0
    if driver == "asyncio":

        async def main() -> tuple[dict[str, Any], dict[str, Any], bool]:
            for _ in range(warmup):
                await _async_cycle(url)
            await asyncio.sleep(0.05)
            before = _measure(len(asyncio.all_tasks()))
            nonlocal started
            started = time.monotonic()
            last = None
            for _ in range(cycles):
                last = await _async_cycle(url)
            await asyncio.sleep(0.05)
            after = _measure(len(asyncio.all_tasks()))
            return before, after, last is not None and last() is None

        before, after, freed = asyncio.run(main())
    else:
        for _ in range(warmup):
            _sync_cycle(driver, url)
        _settled_threads()
        before = _measure(None)
        started = time.monotonic()
        last = None
        for _ in range(cycles):
            last = _sync_cycle(driver, url)
        _settled_threads()
        after = _measure(None)
        freed = last is not None and last() is None
    took = time.monotonic() - started
    tracemalloc.stop()
    return {
        "kind": "clients",
        "driver": driver,
        "cycles": cycles,
        "seconds": round(took, 1),
        "last_freed": freed,
        "before": before,
        "after": after,
    }


# Judging and reporting.


@dataclass
class Bounds:
    relay_rss_kib: int = 8 * KIB
    client_rss_kib: int = 8 * KIB
    traced_kib: int = 256
    redis_links: int = 16
    blocks: int = 1000


def verdicts(result: dict[str, Any], bounds: Bounds) -> list[str]:
    """What is not flat in ``result`` (empty: flat)."""
    problems: list[str] = []
    if result["kind"] == "relay":
        pairs = [(p["name"], p["before"], p["after"]) for p in result["processes"]]
        rss_bound = bounds.relay_rss_kib
        exact = ("fds", "tasks", "threads")
    else:
        pairs = [(result["driver"], result["before"], result["after"])]
        rss_bound = bounds.client_rss_kib
        exact = ("fds", "tasks", "threads")
        if not result["last_freed"]:
            problems.append(f"{result['driver']}: the last WebSocket was not freed")
        blocks = pairs[0][2]["blocks"] - pairs[0][1]["blocks"]
        if blocks > bounds.blocks:
            problems.append(f"{result['driver']}: {blocks} more allocated blocks")
        grown = pairs[0][2]["traced_kib"] - pairs[0][1]["traced_kib"]
        if grown > bounds.traced_kib:
            problems.append(f"{result['driver']}: traced memory +{grown:.0f} KiB")
    for name, before, after in pairs:
        keys = exact
        if "redis_links" in after:
            keys = ("other_fds", "tasks", "threads")
            if after["redis_links"] > bounds.redis_links:
                problems.append(f"{name}: {after['redis_links']} Redis links")
        for key in keys:
            if before.get(key) != after.get(key):
                problems.append(f"{name}: {key} {before.get(key)} -> {after.get(key)}")
        grown = after["rss_kib"] - before["rss_kib"]
        if grown > rss_bound:
            problems.append(f"{name}: RSS +{grown} KiB (bound {rss_bound})")
    return problems


def _row(what: str, work: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    def pair(key: str) -> str:
        b, a = before.get(key), after.get(key)
        return "-" if b is None else f"{b} → {a}"

    rss = f"{before['rss_kib'] / KIB:.1f} → {after['rss_kib'] / KIB:.1f} MiB"
    rss += f" ({(after['rss_kib'] - before['rss_kib']) / KIB:+.1f})"
    fds = pair("fds")
    if "redis_links" in before:
        fds += f" (Redis links {pair('redis_links')})"
    traced = "-"
    if "traced_kib" in before:
        traced = f"{before['traced_kib']:.0f} → {after['traced_kib']:.0f} KiB"
        traced += f", blocks {after['blocks'] - before['blocks']:+d}"
        rss += (
            f", untrimmed {(after['rss_untrimmed_kib'] - before['rss_untrimmed_kib']) / KIB:+.1f}"
        )
    return f"| {what} | {work} | {rss} | {traced} | {fds} | {pair('threads')} | {pair('tasks')} |"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| process | work | RSS | traced | fds | threads | asyncio tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result["kind"] == "relay":
            c = result["counts"]
            work = (
                f"{result['mode']}: {result['seconds']} s, {c['rounds']} rounds, "
                f"{c['connections']} connections, {c['messages']} messages sent, "
                f"{c['drops']} drops, {c['resumes']} resumes, {c['resets']} resets"
            )
            for proc in result["processes"]:
                lines.append(_row(f"{proc['name']} ({result['mode']})", work, *_pair(proc)))
        else:
            work = f"{result['cycles']} cycles in {result['seconds']} s"
            lines.append(_row(f"client {result['driver']}", work, *_pair(result)))
    return "\n".join(lines)


def _pair(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return result["before"], result["after"]


def report(results: list[dict[str, Any]], problems: list[str], bounds: Bounds, argv: str) -> str:
    verdict = "flat" if not problems else "NOT flat:\n\n" + "\n".join(f"* {p}" for p in problems)
    return f"""# Soak: the relay and the client drivers leave nothing behind

`python bench/soak.py {argv}` (`make soak`), {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
{os.cpu_count()} cores, Python {sys.version.split()[0]}.

Each process is measured after a warm-up and again at the end, once the clients are gone
(relays: no connection, no room, the task count steady for half a second). Flat means file
descriptors (for a relay with Redis: those besides its Redis links, which redis-py's
connection pool opens for concurrent commands and keeps, at most {bounds.redis_links}), threads
and asyncio tasks back to the warm-up figure exactly, and memory
grown by at most {bounds.relay_rss_kib} KiB RSS for a relay; for a client process at most
{bounds.client_rss_kib} KiB RSS (measured after `malloc_trim(0)`: without it RSS creeps up by
a MiB or two of memory freed but kept by glibc, shown as "untrimmed"), {bounds.traced_kib} KiB
traced (`tracemalloc`) and {bounds.blocks} allocated blocks (`sys.getallocatedblocks()`).
A client cycle is connect, send a message, receive its echo (`wsloop serve --echo` in
another process), close.

{table(results)}

Verdict: {verdict}
"""


def _echo_relay(workdir: Path) -> RelayProc:
    args = ["--echo", "--rate-messages", "0", "--rate-bytes", "0"]
    return RelayProc(args, workdir / "echo.log")


def _run_all(args: argparse.Namespace, bounds: Bounds) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for mode in args.modes:
        print(f"relay soak ({mode}, {args.seconds:g} s)...", flush=True)
        results.append(relay_soak(mode, args.seconds, workdir))
    if args.drivers:
        echo = _echo_relay(workdir)
        try:
            for driver in args.drivers:
                print(f"client cycles ({driver}, {args.cycles})...", flush=True)
                command = [sys.executable, __file__, "clients", "--driver", driver]
                command += ["--cycles", str(args.cycles), "--warmup", str(args.warmup)]
                command += ["--url", echo.url + "/soak"]
                out = subprocess.run(command, check=True, capture_output=True, text=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            echo.stop()
    problems = [p for result in results for p in verdicts(result, bounds)]
    print(table(results))
    print("flat" if not problems else "NOT flat: " + "; ".join(problems))
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report(results, problems, bounds, " ".join(sys.argv[1:])))
    print(f"wrote {path}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    relay = sub.add_parser("relay", help="one relay soak, a JSON line out")
    relay.add_argument("--mode", choices=("single", "redis"), default="single")
    relay.add_argument("--seconds", type=float, default=20.0)
    relay.add_argument("--warmup-seconds", type=float, default=3.0)
    relay.add_argument("--redis-url", help="an existing Redis server (else one is started)")
    relay.add_argument("--workdir", default=str(ROOT / "reports" / "soak"))
    clients = sub.add_parser("clients", help="one driver's cycles, a JSON line out")
    clients.add_argument("--driver", choices=("poll", "thread", "asyncio"), required=True)
    clients.add_argument("--cycles", type=int, default=10_000)
    clients.add_argument("--warmup", type=int, default=200)
    clients.add_argument("--url", help="an echo server (else wsloop serve --echo is started)")
    clients.add_argument("--workdir", default=str(ROOT / "reports" / "soak"))
    parser.add_argument("--seconds", type=float, default=120.0, help="per relay soak")
    parser.add_argument("--modes", nargs="*", default=["single", "redis"])
    parser.add_argument("--cycles", type=int, default=10_000, help="per client driver")
    parser.add_argument("--warmup", type=int, default=200, help="client cycles before measuring")
    parser.add_argument("--drivers", nargs="*", default=["poll", "thread", "asyncio"])
    parser.add_argument("--relay-rss-bound", type=int, default=8 * KIB, help="KiB")
    parser.add_argument("--client-rss-bound", type=int, default=8 * KIB, help="KiB")
    parser.add_argument("--traced-bound", type=int, default=256, help="KiB")
    parser.add_argument("--blocks-bound", type=int, default=1000, help="allocated blocks")
    parser.add_argument("--report", default=str(ROOT / "reports" / "soak.md"))
    parser.add_argument("--workdir", default=str(ROOT / "reports" / "soak"))
    args = parser.parse_args(argv)
    if args.command == "relay":
        result = relay_soak(
            args.mode, args.seconds, Path(args.workdir), args.redis_url, args.warmup_seconds
        )
        print(json.dumps(result))
        return 0
    if args.command == "clients":
        if args.url:
            print(json.dumps(client_cycles(args.driver, args.cycles, args.warmup, args.url)))
            return 0
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        echo = _echo_relay(Path(args.workdir))
        try:
            url = echo.url + "/soak"
            print(json.dumps(client_cycles(args.driver, args.cycles, args.warmup, url)))
        finally:
            echo.stop()
        return 0
    bounds = Bounds(
        args.relay_rss_bound, args.client_rss_bound, args.traced_bound, 16, args.blocks_bound
    )
    return _run_all(args, bounds)


if __name__ == "__main__":
    sys.exit(main())
