"""Hostile clients: a real relay process meets clients that break the rules, one attack each.

The mirror of tests/test_hostile.py (hostile servers against the client).
Every test starts ``python -m wsloop serve`` with options that make its
attack meet its limit quickly, then, while the attack runs:

* **two well-behaved pairs keep talking**: two wsloop clients in another
  room and two in the attacker's room trade round trips (one every 50 ms per
  pair) on a thread of their own; each round trip is timed, and the test
  asserts that both pairs went on (every round trip under 5 s, none stuck),
  never a latency target;
* **the relay's memory is sampled**: VmRSS of the relay process from
  ``/proc/<pid>/status`` every 10 ms, from before the attack to its end;
  each test asserts a generous bound on the growth, chosen per attack;
* the attacker's own outcome is asserted exactly: the close frame it reads
  (code and reason) or the HTTP status of its handshake, and how long the
  relay took.

After the test the relay is stopped with SIGTERM (it must exit 0) and its log
must hold no traceback. The figures of every attack go to
``reports/relay-hostile.md`` and to the terminal at the end of the run;
docs/hostile.md ("Hostile clients") has them with what each attack gets.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import os
import re
import resource
import select
import signal
import socket
import statistics
import struct
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from relay_support import WAIT, Peer, RelayProcess, open_all, pump

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

MiB = 2**20
HOST = "127.0.0.1"
ATTACKED = "/room/attacked"
"""The room the attacker joins (one of the well-behaved pairs is there too)."""
OTHER = "/room/other"
"""A room the attacker never joins (the other pair)."""

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

ROUND_TRIP_BOUND = 5.0
"""Every round trip of a well-behaved pair must take less than this: "they kept talking"."""
CHAT_PERIOD = 0.05
"""Seconds between two round trips of one pair (20 messages/s per client)."""

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
"""How the relay's log lines start (``wsloop serve``'s format)."""

REPORT = Path(__file__).resolve().parents[2] / "reports" / "relay-hostile.md"


# Frames, as a client writes them (masked unless told otherwise).


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One frame; ``rsv`` is the three reserved bits as 0b100 (RSV1) .. 0b001 (RSV3)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 2**16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _masked(payload, key)


def _masked(payload: bytes, key: bytes) -> bytes:
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


# A raw client: the attacker.


class Attacker:
    """A WebSocket client on a plain socket that does what it is told, rules or not.

    Args:
        port: the relay's port.
        path: the room.
        headers: extra request headers.
        source: the local address to connect from (127.0.0.x, all loopback).
        rcvbuf: the socket's receive buffer (small: it fills at once when not read).
        handshake: send the opening handshake (else only connect).
    """

    def __init__(
        self,
        port: int,
        path: str = ATTACKED,
        *,
        headers: Sequence[tuple[str, str]] = (),
        source: str | None = None,
        rcvbuf: int | None = None,
        handshake: bool = True,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.settimeout(WAIT)
        sock.connect((HOST, port))
        self.sock = sock
        self.port = port
        self.buffer = b""
        self.status = 0
        self.head = b""
        if handshake:
            self.sock.sendall(request(port, path, headers))
            self.head = self._read_until(b"\r\n\r\n")
            self.status = int(self.head.split(b" ", 2)[1])

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def body(self) -> bytes:
        """The body of a refusal (the relay sends ``Content-Length``)."""
        match = re.search(rb"content-length: *(\d+)", self.head, re.IGNORECASE)
        assert match, self.head
        return self._read_exact(int(match.group(1)))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the relay closed the connection")
        self.buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._read_exact(2)
        assert second & 0x80 == 0, "the relay masked a frame"
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read_exact(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read_exact(8), "big")
        return first & 0x0F, self._read_exact(size)

    def expect_close(self) -> tuple[int, str]:
        """Read frames (data and pings skipped) up to the close frame: its code and reason."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == OP_CLOSE:
                assert len(payload) >= 2, payload
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def expect_end(self) -> None:
        """After the close frame: the relay ends TCP (FIN, or a reset), and sends nothing more."""
        with contextlib.suppress(ConnectionResetError):
            assert self.sock.recv(65536) == b""
        assert self.buffer == b""

    def close(self) -> None:
        self.sock.close()


def request(port: int, path: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# What is measured while an attack runs.


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every 10 ms; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.peak = rss(pid)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.01):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self.pid))

    def reset(self) -> int:
        """Start the peak afresh from now; the current RSS."""
        self.peak = now = rss(self.pid)
        return now

    def stop(self) -> None:
        self._halt.set()
        self.join(WAIT)


class Pair:
    """Two wsloop clients in one room trading timed round trips: ``ping n`` / ``pong n``."""

    def __init__(self, url: str, room: str) -> None:
        self.room = room
        self.a = Peer(compression=None).connect(url + room)
        self.b = Peer(compression=None).connect(url + room)
        self.latencies: list[float] = []
        self._seen_a = 0
        self._seen_b = 0
        self._n = 0
        self._sent_at: float | None = None
        self._next = 0.0
        self.oldest_wait = 0.0
        """The longest a round trip stayed unanswered (done or still in flight)."""

    @property
    def peers(self) -> tuple[Peer, Peer]:
        return self.a, self.b

    def step(self) -> None:
        """Poll both clients once; answer, time and start round trips."""
        now = time.monotonic()
        for ws in (self.a.ws, self.b.ws):
            ws.poll()
        for text in self._new(self.b, "_seen_b"):
            if text.startswith("ping "):
                self.b.ws.send_text("pong " + text[5:])
        for text in self._new(self.a, "_seen_a"):
            if self._sent_at is not None and text == f"pong {self._n}":
                self.latencies.append(time.monotonic() - self._sent_at)
                self._sent_at = None
                self._next = now + CHAT_PERIOD
        if self._sent_at is None and now >= self._next and self.a.ws.is_open:
            self._n += 1
            self._sent_at = now
            self.a.ws.send_text(f"ping {self._n}")
        if self._sent_at is not None:
            self.oldest_wait = max(self.oldest_wait, now - self._sent_at)

    def _new(self, peer: Peer, seen: str) -> list[str]:
        events = peer.events
        start = getattr(self, seen)
        setattr(self, seen, len(events))
        return [e.text for e in events[start:] if hasattr(e, "text")]

    def reset(self) -> None:
        self.latencies = []
        self.oldest_wait = 0.0


class Chatter(threading.Thread):
    """The well-behaved pairs, polled on one thread like a game loop."""

    def __init__(self, url: str) -> None:
        super().__init__(name="chatter", daemon=True)
        self.pairs = [Pair(url, OTHER), Pair(url, ATTACKED)]
        open_all(*(p for pair in self.pairs for p in pair.peers))
        self._halt = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                for pair in self.pairs:
                    pair.step()
                time.sleep(0.002)
        except BaseException as exc:  # reported by check()
            self.failure = exc

    def warm_up(self) -> None:
        """Wait for a first round trip on each pair, then count afresh."""
        deadline = time.monotonic() + WAIT
        while not all(pair.latencies for pair in self.pairs):
            assert self.failure is None, self.failure
            assert time.monotonic() < deadline, "the pairs never talked"
            time.sleep(0.01)
        for pair in self.pairs:
            pair.reset()

    def wait_round_trips(self, count: int) -> None:
        """Wait until each pair has made ``count`` round trips since the warm-up."""
        deadline = time.monotonic() + WAIT
        while not all(len(pair.latencies) >= count for pair in self.pairs):
            if self.failure is not None or time.monotonic() > deadline:
                return  # check() says what went wrong
            time.sleep(0.01)

    def stop(self) -> None:
        self._halt.set()
        self.join(WAIT)

    def check(self) -> list[float]:
        """Assert that both pairs kept talking; every round trip timed during the attack."""
        assert self.failure is None, self.failure
        everything: list[float] = []
        for pair in self.pairs:
            for peer in pair.peers:
                assert peer.ws.is_open, (pair.room, peer.events[-3:])
                assert peer.errors == [], (pair.room, peer.errors)
            assert pair.latencies, f"the pair in {pair.room} exchanged nothing during the attack"
            assert pair.oldest_wait < ROUND_TRIP_BOUND, (pair.room, pair.oldest_wait)
            everything += pair.latencies
        for pair in self.pairs:
            for peer in pair.peers:
                peer.ws.close()
        deadline = time.monotonic() + WAIT
        peers = [p for pair in self.pairs for p in pair.peers]
        while not all(p.closed for p in peers) and time.monotonic() < deadline:
            for p in peers:
                p.ws.poll(0.002)
        return everything


@dataclasses.dataclass
class Figures:
    """What one attack measured; a row of the report."""

    attack: str
    outcome: str = ""
    """What the attacker got: close codes, HTTP statuses."""
    time_to_close: float | None = None
    """Seconds from the start of the attack until the relay ended it."""
    rss_before: int = 0
    rss_peak: int = 0
    latency_median: float = 0.0
    latency_max: float = 0.0
    round_trips: int = 0
    note: str = ""

    @property
    def growth(self) -> int:
        return self.rss_peak - self.rss_before

    def row(self) -> str:
        closed = "" if self.time_to_close is None else f"{self.time_to_close:.2f} s"
        return (
            f"| {self.attack} | {self.outcome} | {closed} | {self.rss_before / MiB:.1f} MiB "
            f"| {self.rss_peak / MiB:.1f} MiB (+{self.growth / MiB:.1f}) "
            f"| {self.latency_median * 1000:.1f} ms / {self.latency_max * 1000:.0f} ms "
            f"({self.round_trips}) |"
        )


FIGURES: dict[str, Figures] = {}


class Attack:
    """The relay under attack, with the pairs talking and the RSS sampled."""

    def __init__(self, relay: RelayProcess, figures: Figures) -> None:
        self.relay = relay
        self.figures = figures
        self.port = int(relay.url.rsplit(":", 1)[1])
        self.started = 0.0

    def closed_now(self) -> float:
        """Mark the relay's end of the attack: the time to close."""
        self.figures.time_to_close = elapsed = time.monotonic() - self.started
        return elapsed

    def status(self) -> dict[str, int]:
        """The relay's /status.json counters."""
        url = self.relay.url.replace("ws://", "http://") + "/status.json"
        with urllib.request.urlopen(url, timeout=WAIT) as page:
            return dict(json.loads(page.read()))

    def wait_status(self, key: str, value: int) -> None:
        deadline = time.monotonic() + WAIT
        while (now := self.status()[key]) != value:
            assert time.monotonic() < deadline, f"{key} is {now}, not {value}"
            time.sleep(0.02)

    def rounds(self, seconds: float = 1.0) -> Iterator[int]:
        """Repeat a quick attack for ``seconds`` (at least once), so that it lasts."""
        n = 0
        while n == 0 or time.monotonic() - self.started < seconds:
            yield n
            n += 1
        self.figures.note = f"{n} rounds in {time.monotonic() - self.started:.1f} s"

    def wait_log(self, pattern: str) -> re.Match[str]:
        """Wait until the relay's log has a line matching ``pattern``."""
        deadline = time.monotonic() + WAIT
        while True:
            match = re.search(pattern, self.relay.log())
            if match:
                return match
            assert time.monotonic() < deadline, f"no {pattern!r} in the log:\n{self.relay.log()}"
            time.sleep(0.01)


@pytest.fixture
def hostile(tmp_path, request):
    """``hostile(name, *args)``: a relay process with ``args``, pairs talking; an Attack."""

    @contextlib.contextmanager
    def run(name: str, *args: str, rss_bound: int) -> Iterator[Attack]:
        relay = RelayProcess(list(args), tmp_path / "relay.log")
        chatter: Chatter | None = None
        sampler: RssSampler | None = None
        try:
            chatter = Chatter(relay.url)
            chatter.start()
            chatter.warm_up()
            sampler = RssSampler(relay.proc.pid)
            sampler.start()
            figures = Figures(name)
            figures.rss_before = sampler.reset()
            attack = Attack(relay, figures)
            attack.started = time.monotonic()
            yield attack
            chatter.wait_round_trips(5)  # a quick attack: they talk right after it too
            attack.figures.rss_peak = sampler.peak
            sampler.stop()
            chatter.stop()
            latencies = chatter.check()
            figures.latency_median = statistics.median(latencies)
            figures.latency_max = max(latencies)
            figures.round_trips = len(latencies)
            FIGURES[name] = figures
            assert figures.growth < rss_bound, (
                f"the relay grew by {figures.growth / MiB:.1f} MiB (bound {rss_bound / MiB:g} MiB)"
            )
        finally:
            if sampler is not None:
                sampler.stop()
            if chatter is not None:
                chatter.stop()
            code = relay.stop(signal.SIGTERM)
        log = relay.log()
        assert "Traceback" not in log, log
        # Every line is one of the relay's own (asyncio's warnings have no timestamp).
        strays = [line for line in log.splitlines() if not LOG_LINE.match(line)]
        assert not strays, log
        assert code == 0, log

    return run


@pytest.fixture(scope="module", autouse=True)
def report(pytestconfig):
    """Write the figures of every attack that ran to reports/relay-hostile.md, and show them."""
    yield
    if not FIGURES:
        return
    lines = [
        "# The relay under hostile clients: figures of tests/relay/test_relay_hostile.py",
        "",
        "Round trips: the two well-behaved pairs during the attack, median / max (count).",
        "",
        "| Attack | Attacker got | Time to close | RSS before | RSS peak | Round trips |",
        "|---|---|---|---|---|---|",
        *(f.row() for f in FIGURES.values()),
        "",
        *(f"- {f.attack}: {f.note}" for f in FIGURES.values() if f.note),
    ]
    text = "\n".join(lines) + "\n"
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text)
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line("")
            for line in [*lines, f"(written to {REPORT})"]:
                terminal.write_line(line)


# The opening handshake.


def test_a_handshake_trickled_one_byte_a_second_is_dropped_at_the_open_timeout(hostile):
    """20 clients trickle their request one byte a second: the open timeout drops each."""
    with hostile(
        "handshake trickled 1 byte/s (x20)", "--open-timeout", "2", rss_bound=16 * MiB
    ) as attack:
        data = request(attack.port, ATTACKED)
        socks = [Attacker(attack.port, handshake=False) for _ in range(20)]
        sent = 0
        ended: dict[socket.socket, float] = {}
        while len(ended) < len(socks):
            assert time.monotonic() - attack.started < WAIT, "the relay kept trickling clients"
            for attacker in socks:
                if attacker.sock not in ended:
                    attacker.send(data[sent : sent + 1])
            sent += 1
            tick = time.monotonic() + 1.0
            while (left := tick - time.monotonic()) > 0 and len(ended) < len(socks):
                readable, _, _ = select.select(
                    [a.sock for a in socks if a.sock not in ended], [], [], left
                )
                for sock in readable:
                    with contextlib.suppress(ConnectionResetError):
                        assert sock.recv(1024) == b"", "the relay answered a partial request"
                    ended[sock] = time.monotonic() - attack.started
        attack.closed_now()
        times = sorted(ended.values())
        for attacker in socks:
            attacker.close()
        # Dropped by the open timeout (2 s), not earlier; the request was far from done.
        assert times[0] > 1.8, times
        assert sent < len(data)
        attack.figures.outcome = f"TCP closed, no answer, after {times[0]:.1f}-{times[-1]:.1f} s"
        attack.figures.note = f"{sent} bytes of a {len(data)}-byte request trickled"
        attack.wait_status("connections", 4)


# Frames that break RFC 6455: the relay fails the connection with the code.


def violate(
    attack: Attack, *frames: bytes, headers: Sequence[tuple[str, str]] = ()
) -> tuple[int, str]:
    """One attacker in the attacked room sends ``frames``: the relay's close code and reason.

    The attacker answers the close frame; the relay must then end TCP and
    send nothing more. The time to close is the longest from sending to the
    relay's close frame over the calls.
    """
    attacker = Attacker(attack.port, headers=headers)
    assert attacker.status == 101, attacker.head
    sent = time.monotonic()
    with contextlib.suppress(OSError):  # the relay may close before reading it all
        attacker.send(b"".join(frames))
    code, reason = attacker.expect_close()
    took = time.monotonic() - sent
    with contextlib.suppress(OSError):  # answered, as a client should (the relay may be gone)
        attacker.send(client_frame(OP_CLOSE, close_payload(code)))
    attacker.expect_end()
    attacker.close()
    attack.figures.time_to_close = max(attack.figures.time_to_close or 0.0, took)
    return code, reason


def outcomes(found: dict[str, tuple[int, str]]) -> str:
    """``1002 "reason"`` for the outcomes all cases share, else one per case."""
    distinct = set(found.values())
    if len(distinct) == 1:
        code, reason = distinct.pop()
        return f'{code} "{reason}" (all {len(found)})'
    return "; ".join(f'{case}: {code} "{reason}"' for case, (code, reason) in found.items())


def repeated(
    attack: Attack, cases: dict[str, Sequence[bytes]], headers: Sequence[tuple[str, str]] = ()
) -> dict[str, tuple[int, str]]:
    """Each case by a new attacker, round after round for a second; the outcomes (always equal)."""
    found: dict[str, tuple[int, str]] = {}
    for _ in attack.rounds():
        for case, frames in cases.items():
            outcome = violate(attack, *frames, headers=headers)
            assert found.setdefault(case, outcome) == outcome, (case, found[case], outcome)
    attack.wait_status("connections", 4)  # the attackers are all gone
    attack.figures.outcome = outcomes(found)
    return found


def test_an_unmasked_frame_is_a_protocol_error(hostile):
    with hostile("unmasked frame", rss_bound=16 * MiB) as attack:
        found = repeated(attack, {"unmasked": [client_frame(OP_TEXT, b"hello", mask=False)]})
        assert found == {"unmasked": (1002, "incorrect masking")}


def test_reserved_bits_are_a_protocol_error(hostile):
    cases = {
        f"rsv{n}": [client_frame(OP_TEXT, b"hello", rsv=bit)]
        for n, bit in ((1, 0b100), (2, 0b010), (3, 0b001))
    }
    with hostile("reserved bits (RSV1 without deflate, RSV2, RSV3)", rss_bound=16 * MiB) as attack:
        found = repeated(attack, cases)
        assert set(found.values()) == {(1002, "reserved bits must be 0")}, found


def test_reserved_opcodes_are_a_protocol_error(hostile):
    cases = {f"{op:#x}": [client_frame(op, b"x")] for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)}
    with hostile("reserved opcodes 3-7, 0xB-0xF", rss_bound=16 * MiB) as attack:
        found = repeated(attack, cases)
        assert set(found.values()) == {(1002, "invalid opcode")}, found


def huge_header(size: int) -> bytes:
    """A masked binary frame header announcing ``size`` bytes, then 100 of them."""
    return bytes([0x82, 0x80 | 127]) + struct.pack("!Q", size) + os.urandom(4) + b"x" * 100


def test_a_frame_claiming_2_63_bytes(hostile):
    """A header announcing 2^63 bytes (its top bit set: RFC 6455 5.2 says it must be 0)."""
    cases = {"2^63": [huge_header(2**63)], "2^63-1": [huge_header(2**63 - 1)]}
    with hostile("frame header claiming 2^63 bytes", rss_bound=16 * MiB) as attack:
        found = repeated(attack, cases)
        # Not 1002: websockets compares the length with max_size before anything else,
        # so the top bit is never looked at; nothing is allocated either way.
        assert found == {
            "2^63": (1009, f"frame with {2**63} bytes exceeds limit of {MiB} bytes"),
            "2^63-1": (1009, f"frame with {2**63 - 1} bytes exceeds limit of {MiB} bytes"),
        }


def test_invalid_utf8_in_text(hostile):
    cases = {
        "message": [client_frame(OP_TEXT, b"caf\xc3\x28")],
        "fragment": [
            client_frame(OP_TEXT, "é".encode(), fin=False),
            client_frame(OP_CONT, b"\xff\xfe", fin=False),
        ],
        "close reason": [client_frame(OP_CLOSE, b"\x03\xe8\xff\xfe")],
    }
    with hostile("invalid UTF-8 (message, fragment, close reason)", rss_bound=16 * MiB) as attack:
        found = repeated(attack, cases)
        assert found == {
            "message": (1007, "invalid continuation byte at position 3"),
            "fragment": (1007, "invalid start byte at position 0"),
            "close reason": (1007, "invalid start byte at position 0"),
        }


# Bombs and floods.


@functools.cache
def deflate_bomb(mib: int) -> bytes:
    """A permessage-deflate payload that inflates to ``mib`` MiB of zeros (~1/1000 of it)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    data = b"".join(compressor.compress(zeros) for _ in range(mib))
    data += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def test_a_deflate_bomb_is_stopped_at_max_size(hostile):
    """256 KiB that inflate to 256 MiB, with --max-size 1m: 1009, inflation stops at the limit."""
    bomb = deflate_bomb(256)
    deflate = [("Sec-WebSocket-Extensions", "permessage-deflate")]
    cases = {
        "binary": [client_frame(OP_BINARY, bomb, rsv=0b100)],
        "text": [client_frame(OP_TEXT, bomb, rsv=0b100)],
    }
    # Bound: inflating one bomb whole would take 256 MiB; the limit allows 1 MiB a message.
    # The RSS still climbs by ~50 MiB over the first few hundred bombs (each one is a
    # connection with a 256 KiB frame and up to 1 MiB inflated), then stays flat: 1,200
    # bombs in a row plateau at +55 MiB, the allocator's high-water mark, not a leak.
    with hostile(
        "deflate bomb (256 KiB -> 256 MiB)", "--max-size", "1m", rss_bound=100 * MiB
    ) as attack:
        found = repeated(attack, cases, headers=deflate)
        assert set(found.values()) == {(1009, f"frame exceeds limit of {MiB} bytes")}, found
        attack.figures.note += f"; the bomb is {len(bomb) // 1024} KiB"


def test_a_ping_flood_from_a_client_that_never_reads_is_closed_with_1008(hostile):
    """Pings as fast as TCP takes them, pongs never read: the relay stops reading, then 1008.

    Regression: the relay answered every ping into its write buffer whatever
    waited there, and grew by 180 MiB in 8 s. It now stops reading such a
    client once the pongs pile up (its pings then wait in the kernel) and
    closes it as too slow.
    """
    ping = client_frame(OP_PING, b"p" * 125)
    batch = ping * 512
    # Bound: what the relay may hold for it is its write buffer (~100 KiB) and one read.
    with hostile("ping flood, pongs never read", rss_bound=16 * MiB) as attack:
        attacker = Attacker(attack.port, rcvbuf=4096)
        attacker.sock.settimeout(0.2)
        sent = 0
        pending = memoryview(batch)
        while True:
            assert time.monotonic() - attack.started < WAIT, f"{sent} bytes of pings taken"
            try:
                done = attacker.sock.send(pending)
            except TimeoutError:  # the relay stopped reading: has it closed us?
                if attack.status()["slow_consumers"] == 1:
                    break
                continue
            sent += done
            pending = pending[done:] or memoryview(batch)
        attack.closed_now()
        attacker.sock.settimeout(WAIT)
        pongs = 0
        while True:
            opcode, payload = attacker.read_frame()
            if opcode == OP_CLOSE:
                break
            if opcode == OP_PONG:  # (the pair's messages in the room arrive too)
                assert payload == b"p" * 125
                pongs += 1
        code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
        assert (code, reason) == (
            1008,
            "too slow: the client does not read the answers to its pings",
        )
        attacker.close()
        attack.wait_log(r"left /room/attacked: .*closed with 1008: does not read its pongs")
        attack.wait_status("connections", 4)
        attack.figures.outcome = f'{code} "{reason}"'
        attack.figures.note = (
            f"{sent / MiB:.1f} MiB of pings taken before TCP blocked, "
            f"{pongs} pongs before the close"
        )


def test_a_ping_flood_from_a_client_that_reads_is_answered(hostile):
    """20,000 pings in bursts, pongs read as they come: each is answered, in order."""
    count = 20_000
    with hostile("ping flood, pongs read (20,000 pings)", rss_bound=16 * MiB) as attack:
        attacker = Attacker(attack.port)
        received: list[bytes] = []

        def read_pongs() -> None:
            while len(received) < count:
                opcode, payload = attacker.read_frame()
                if opcode == OP_PONG:  # (the pair's messages in the room arrive too)
                    received.append(payload)
                else:
                    assert opcode == OP_TEXT, opcode

        reader = threading.Thread(target=read_pongs, daemon=True)
        reader.start()
        for start in range(0, count, 500):
            attacker.send(
                b"".join(client_frame(OP_PING, b"%08d" % n) for n in range(start, start + 500))
            )
        reader.join(WAIT)
        assert received == [b"%08d" % n for n in range(count)]
        attack.closed_now()
        attacker.send(client_frame(OP_CLOSE, close_payload(1000, "done")))
        assert attacker.expect_close() == (1000, "done")
        attacker.expect_end()
        attacker.close()
        attack.figures.outcome = (
            f"every pong, in order; then 1000 (time to close: all {count} answered)"
        )


def test_a_close_flood_gets_one_answer(hostile):
    """A client sends 100 close frames at once: one close answers, then TCP ends."""
    flood = b"".join(client_frame(OP_CLOSE, close_payload(4000 + n, "bye")) for n in range(100))
    with hostile("close flood (100 close frames per client)", rss_bound=16 * MiB) as attack:
        found = {}
        for _ in attack.rounds():
            attacker = Attacker(attack.port)
            sent = time.monotonic()
            with contextlib.suppress(OSError):
                attacker.send(flood)
            found["close flood"] = attacker.expect_close()
            attacker.expect_end()  # nothing after the one close frame
            attacker.close()
            took = time.monotonic() - sent
            attack.figures.time_to_close = max(attack.figures.time_to_close or 0.0, took)
            assert found["close flood"] == (4000, "bye")
        attack.wait_status("connections", 4)
        attack.figures.outcome = outcomes(found) + ", then TCP closed"


# Too many, too slow, too fast.


def flood(attack: Attack, count: int, source: str | None = None) -> list[Attacker]:
    """``count`` handshakes at once; the time to the last answer counts as the time to close."""
    started = time.monotonic()
    attackers = [Attacker(attack.port, source=source) for _ in range(count)]
    took = time.monotonic() - started
    attack.figures.time_to_close = max(attack.figures.time_to_close or 0.0, took)
    return attackers


def test_a_connection_flood_past_max_connections_gets_503(hostile):
    """Rounds of 40 clients on a relay with room for 24 (the pairs hold 4): 20 in, 20 get 503."""
    with hostile(
        "connection flood past --max-connections 24 (rounds of 40)",
        "--max-connections",
        "24",
        rss_bound=16 * MiB,
    ) as attack:
        refused = 0
        for _ in attack.rounds():
            attackers = flood(attack, 40)
            statuses = [a.status for a in attackers]
            assert statuses == [101] * 20 + [503] * 20, statuses
            bodies = {a.body for a in attackers[20:]}
            assert bodies == {b"This relay is full (24 connections); try again later.\n"}
            for attacker in attackers[20:]:
                attacker.expect_end()  # the relay closes a refused connection
            for attacker in attackers:
                attacker.close()  # those let in vanish without a close frame
            refused += 20
            attack.wait_status("connections", 4)
        assert attack.status()["refused"] == refused
        attack.figures.outcome = (
            'HTTP 503 "This relay is full (24 connections); try again later." (20 of 40)'
        )


def test_a_connection_flood_from_one_address_gets_429(hostile):
    """Rounds of 30 clients from 127.0.0.2, --max-per-address 10: 10 in, 20 get 429."""
    with hostile(
        "connection flood from one address (--max-per-address 10, rounds of 30)",
        "--max-per-address",
        "10",
        "--exempt",
        "",  # no exempt network: loopback counts
        rss_bound=16 * MiB,
    ) as attack:
        for _ in attack.rounds():
            attackers = flood(attack, 30, source="127.0.0.2")
            statuses = [a.status for a in attackers]
            assert statuses == [101] * 10 + [429] * 20, statuses
            bodies = {a.body for a in attackers[10:]}
            assert bodies == {b"Too many connections from your address (10); close some first.\n"}
            # The count is per address: another loopback address still gets in.
            other = Attacker(attack.port, source="127.0.0.3")
            assert other.status == 101
            for attacker in [*attackers, other]:
                attacker.close()
            attack.wait_status("connections", 4)
        attack.figures.outcome = (
            'HTTP 429 "Too many connections from your address (10); close some first." (20 of 30)'
        )


def test_a_half_open_client_is_dropped_by_the_keepalive_ping(hostile):
    """A client that vanishes without a FIN (it neither reads nor writes any more).

    With --ping-interval 1 the relay pings it after 1 s, gives up 1 s later
    (1011 "keepalive ping timeout", the ping timeout is the interval), and
    aborts TCP after its close timeout (5 s) since no close answer comes.
    """
    with hostile(
        "half-open TCP (--ping-interval 1)", "--ping-interval", "1", rss_bound=16 * MiB
    ) as attack:
        attacker = Attacker(attack.port, rcvbuf=4096)
        port = attacker.local_port
        left = attack.wait_log(rf"127\.0\.0\.1:{port} left /room/attacked: (.*)")
        attack.closed_now()
        frames = []
        with contextlib.suppress(EOFError, ConnectionResetError):
            while True:
                frames.append(attacker.read_frame())
        attacker.close()
        opcodes = [op for op, _ in frames]
        assert OP_PING in opcodes, opcodes
        close = frames[opcodes.index(OP_CLOSE)][1]
        code, reason = int.from_bytes(close[:2], "big"), close[2:].decode()
        assert (code, reason) == (1011, "keepalive ping timeout")
        assert "(the relay sent 1011 'keepalive ping timeout', no answer)" in left.group(1), left
        attack.figures.outcome = f'{code} "{reason}", then TCP aborted'
        attack.figures.note = f"the relay's log: {left.group(1)}"


def test_a_client_that_never_reads_is_closed_with_1008_and_its_queue_stays_bounded(hostile):
    """A member that reads nothing while a flooder sends 64 KiB messages to its room.

    Its socket buffers fill, then its send queue (--send-queue-bytes 256k):
    the relay drops the queue and closes it with 1008. The pair in the same
    room receives every one of the flood's messages meanwhile.
    """
    # Bound: the queue holds 256 KiB, the kernel a few MiB; 64 MiB offered would be too much.
    with hostile(
        "client that never reads, 64 KiB messages to its room (--send-queue-bytes 256k)",
        "--send-queue-bytes",
        "256k",
        rss_bound=32 * MiB,
    ) as attack:
        attacker = Attacker(attack.port, rcvbuf=4096)
        flooder = Peer(compression=None).connect(attack.relay.url + ATTACKED)
        open_all(flooder)
        chunk = os.urandom(64 * 1024)
        sent = 0
        kicked = False
        while not kicked:
            assert sent < 1024, "64 MiB sent and the client that never reads is still there"
            if flooder.ws.buffered_amount < 256 * 1024:
                assert flooder.ws.send_binary(chunk)
                sent += 1
            flooder.ws.poll(0.001)
            kicked = sent % 8 == 0 and attack.status()["slow_consumers"] == 1
        attack.closed_now()
        # What it reads now: data, then the close frame.
        messages = 0
        while True:
            opcode, payload = attacker.read_frame()
            if opcode == OP_CLOSE:
                break
            messages += opcode == OP_BINARY
        code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
        assert (code, reason) == (1008, "too slow: the relay's send queue for this client is full")
        attacker.send(client_frame(OP_CLOSE, payload[:2]))
        attacker.expect_end()
        attacker.close()
        assert flooder.ws.is_open
        assert flooder.errors == []
        flooder.ws.close()
        pump(lambda: flooder.closed, flooder)
        attack.wait_status("connections", 4)
        attack.figures.outcome = f'{code} "{reason}"'
        attack.figures.note = (
            f"{sent} messages of 64 KiB sent ({sent * 64 // 1024} MiB) until it was closed; "
            f"it had received {messages}"
        )


def test_a_client_over_the_rate_limits_is_closed_with_1008(hostile):
    """--rate-messages 100 --rate-bytes 1m: a burst of 1,000 small messages, and 64 of 64 KiB."""
    small = b"".join(client_frame(OP_TEXT, b"m%d" % n) for n in range(1000))
    large = b"".join(client_frame(OP_BINARY, bytes(64 * 1024)) for _ in range(64))
    with hostile(
        "faster than allowed (--rate-messages 100 --rate-bytes 1m)",
        "--rate-messages",
        "100",
        "--rate-bytes",
        "1m",
        rss_bound=32 * MiB,
    ) as attack:
        found = {}
        for _ in attack.rounds():
            found["messages"] = violate(attack, small)
            found["bytes"] = violate(attack, large)
            assert found == {
                "messages": (1008, "sending too fast: over 100 messages/s"),
                "bytes": (1008, "sending too fast: over 1 MiB/s"),
            }
        attack.wait_status("connections", 4)
        # Each closing handshake completed: the relay read the answer behind the
        # messages sent after the limit (regression: it stopped reading, and the
        # close ended in an abort at the close timeout, 1006, 5 s later).
        endings = re.findall(r"left /room/attacked: (\d+) .*\(rate limited\)", attack.relay.log())
        assert endings and set(endings) == {"1008"}, endings
        attack.figures.outcome = outcomes(found)


def test_silent_connections_past_the_file_descriptor_limit(hostile):
    """80 clients connect and send nothing, on a relay allowed 64 open files.

    The silent connections are not members, so --max-connections does not
    count them: they hold file descriptors until the open timeout (2 s). Once
    none are left, accept() fails; asyncio logged that with a traceback every
    second (regression), the relay now says it in one line. The members
    carry on, and a client that connects meanwhile waits in the kernel's
    backlog until the open timeout frees descriptors, then gets in.
    """
    with hostile(
        "silent connections past the file-descriptor limit (80, ulimit -n 64)",
        "--open-timeout",
        "2",
        rss_bound=16 * MiB,
    ) as attack:
        resource.prlimit(attack.relay.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        silent = [Attacker(attack.port, handshake=False) for _ in range(80)]
        attack.wait_log(r"! cannot accept new connections: Too many open files")
        late = Attacker(attack.port)  # waits in the backlog, then gets in
        assert late.status == 101
        attack.closed_now()
        for attacker in silent:
            with contextlib.suppress(ConnectionResetError):
                assert attacker.sock.recv(1024) == b""  # dropped at the open timeout
            attacker.close()
        late.close()
        attack.wait_status("connections", 4)
        warnings = re.findall("cannot accept new connections", attack.relay.log())
        assert len(warnings) == 1, attack.relay.log()
        attack.figures.outcome = (
            "the silent ones: TCP closed at the open timeout; a client meanwhile: 101 once "
            "descriptors are free; one log line"
        )
