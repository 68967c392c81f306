"""The load generator of ``bench/relay_load.py``: many WebSocket clients in one process.

::

    python bench/relay_gen.py --kind relay --port 8765 idle --n 1000
    python bench/relay_gen.py --kind room --port 8765 fanout --members 100 --window 2
    python bench/relay_gen.py --kind socketio --port 9002 pairs --pairs 200 --window 2

Theory of operation
-------------------
Every client is an :class:`asyncio.Protocol` on raw sockets: the opening
handshake is a fixed HTTP request, frames are read by hand (servers send
small unmasked frames, one per message) and written as masked text frames
built directly (one XOR of the payload as an integer). No WebSocket library
sits in between, so one process on one core can drive a server harder than
the server can go; the generator reports its own CPU share so that a run in
which it, and not the server, was the limit shows.

The same generator speaks four dialects (``--kind``), all carrying the same
100-byte payload ``~<19-digit monotonic ns>.<9-digit number>.<6-digit client>``
padded with ``x``:

* ``relay`` and ``broadcast``: the payload is the message; a client is in
  the room of its URL path;
* ``room``: the room protocol (``wsloop.room.v1``): ``join`` and wait for
  ``welcome``; say ``{"type":"send","data":PAYLOAD}``; the relay's
  ``{"type":"message",...,"data":PAYLOAD}`` comes back to everyone, the
  sender included (its own echo is not counted);
* ``socketio``: Engine.IO 4 over a WebSocket (``/socket.io/?EIO=4&
  transport=websocket&room=PATH``): wait for the open packet, send ``40``,
  wait for ``40{...}``; events are ``42["msg",PAYLOAD]``; the server's
  pings (``2``) are answered (``3``).

Workloads print JSON lines on stdout: ``{"event": "mark", ...}`` when a
measured window starts and ends (the harness samples the server's CPU time
there), then one ``{"event": "result", ...}``. ``idle`` prints
``{"event": "held"}`` once its connections are open and waits for a line on
stdin before closing them, so that the harness can read the server's RSS.

* ``idle``: N connections, in rooms of two (``/idle/<k>``), all opened
  (joined, for the room protocol), then held.
* ``fanout``: M members of one room; member 0 sends, with at most
  ``--inflight`` messages outstanding (a message is done when every other
  member has it), for the window: deliveries per second and the latency of
  each delivery (send to receipt).
* ``pairs``: P rooms of two; in each, the two members take turns (each
  answers the other's message at once): deliveries per second and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import sys
import time
from typing import Any

PAYLOAD_SIZE = 100
MASK = b"\x37\xa1\x5c\x0e"
KINDS = ("relay", "room", "broadcast", "socketio")


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def payload(seq: int, client: int) -> bytes:
    head = b"~%019d.%09d.%06d." % (time.monotonic_ns(), seq, client)
    return head + b"x" * (PAYLOAD_SIZE - len(head))


def parse_payload(frame: bytes) -> tuple[int, int, int] | None:
    """(sent at ns, number, client) from a frame that carries a payload, else None."""
    i = frame.find(b"~")
    if i < 0:
        return None
    return int(frame[i + 1 : i + 20]), int(frame[i + 21 : i + 30]), int(frame[i + 31 : i + 37])


_keystreams: dict[int, int] = {}


def masked_frame(data: bytes, opcode: int = 1) -> bytes:
    """A client frame: FIN, ``opcode``, masked with MASK."""
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = _keystreams.get(n)
    if key is None:
        key = _keystreams[n] = int.from_bytes((MASK * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + MASK + body


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, then frames to ``gen.on_message``."""

    def __init__(self, gen: Generator, index: int, path: str) -> None:
        self.gen = gen
        self.index = index
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    # Connection.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        kind = self.gen.kind
        target = self.path
        extra = ""
        if kind == "socketio":
            target = "/socket.io/?EIO=4&transport=websocket&room=" + self.path
        elif kind == "room":
            extra = "Sec-WebSocket-Protocol: wsloop.room.v1\r\n"
        request = (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.gen.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        self.transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"client {self.index}: connection lost"))
        self.gen.on_lost(self)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(masked_frame(data))

    # Reading.

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buf[: self.buf.find(b"\r\n")]
            if b" 101 " not in status:
                if not self.ready.done():
                    self.ready.set_exception(
                        ConnectionError(f"client {self.index}: {status.decode(errors='replace')}")
                    )
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            data, self.buf = self.buf[end + 4 :], b""
            self.gen.on_upgraded(self)
            if not data:
                return
        # The common case: exactly one small frame, nothing left over.
        if not self.buf and len(data) >= 2:
            n = data[1]
            if n < 126 and len(data) == n + 2:
                self.frame(data[0] & 0x0F, data[2:])
                return
            if n == 126 and len(data) >= 4 and len(data) == ((data[2] << 8) | data[3]) + 4:
                self.frame(data[0] & 0x0F, data[4:])
                return
        buf = self.buf + data if self.buf else data
        i = 0
        end = len(buf)
        while end - i >= 2:
            n = buf[i + 1] & 0x7F
            head = 2
            if n == 126:
                if end - i < 4:
                    break
                n = (buf[i + 2] << 8) | buf[i + 3]
                head = 4
            elif n == 127:
                if end - i < 10:
                    break
                n = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            if end - i < head + n:
                break
            self.frame(buf[i] & 0x0F, buf[i + head : i + head + n])
            i += head + n
        self.buf = buf[i:]

    def frame(self, opcode: int, data: bytes) -> None:
        if opcode == 1 or opcode == 2:
            self.gen.on_message(self, data)
        elif opcode == 9:  # ping
            assert self.transport is not None
            self.transport.write(masked_frame(data, 0xA))
        elif opcode == 8:
            assert self.transport is not None
            if not self.closed:
                self.transport.write(masked_frame(data[:2], 8))
                self.transport.close()


class Generator:
    """The clients of one run and what they count."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        self.port = port
        self.clients: list[Client] = []
        self.measuring = False
        self.delivered = 0
        self.latencies: list[int] = []
        self.lost = 0
        self.on_payload: Any = None  # (client, seq, sender index) -> None

    # Opening.

    async def open(self, paths: list[str], concurrency: int = 200) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, path: str) -> Client:
            async with gate:
                _, client = await loop.create_connection(
                    lambda: Client(self, index, path), "127.0.0.1", self.port
                )
                await asyncio.wait_for(client.ready, 60.0)
                return client

        start = len(self.clients)
        self.clients.extend(
            await asyncio.gather(*(one(start + i, p) for i, p in enumerate(paths)))
        )

    def on_upgraded(self, client: Client) -> None:
        if self.kind == "room":
            client.send(b'{"type":"join","name":"b%d"}' % client.index)
        elif self.kind in ("relay", "broadcast"):
            client.ready.set_result(None)
        # socketio: the open packet comes first

    def say(self, client: Client, seq: int) -> None:
        data = payload(seq, client.index)
        if self.kind == "room":
            client.send(b'{"type":"send","data":"' + data + b'"}')
        elif self.kind == "socketio":
            client.send(b'42["msg","' + data + b'"]')
        else:
            client.send(data)

    # Receiving.

    def on_message(self, client: Client, data: bytes) -> None:
        kind = self.kind
        if kind == "socketio":
            if data[:2] != b"42":
                self._engineio(client, data)
                return
        elif kind == "room" and not data.startswith(b'{"type":"message"'):
            if not client.ready.done() and data.startswith(b'{"type":"welcome"'):
                client.ready.set_result(None)
            return
        now = time.monotonic_ns()
        parsed = parse_payload(data)
        if parsed is None:
            return
        sent, seq, sender = parsed
        if sender == client.index:
            return  # the room protocol's echo to the sender
        if self.measuring:
            self.delivered += 1
            self.latencies.append(now - sent)
        if self.on_payload is not None:
            self.on_payload(client, seq, sender)

    def _engineio(self, client: Client, data: bytes) -> None:
        if data[:1] == b"2":  # Engine.IO ping
            client.send(b"3")
        elif data[:1] == b"0":  # Engine.IO open: connect to the default namespace
            client.send(b"40")
        elif data[:2] == b"40" and not client.ready.done():
            client.ready.set_result(None)
        elif data[:2] == b"44" and not client.ready.done():
            client.ready.set_exception(ConnectionError(data.decode(errors="replace")))

    def on_lost(self, client: Client) -> None:
        if self.measuring:
            self.lost += 1

    def close_all(self) -> None:
        for client in self.clients:
            if client.transport is not None and not client.closed:
                client.transport.close()


# Workloads.


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class Meter:
    """The generator's own CPU share over a window."""

    def __init__(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.monotonic()

    def pct(self) -> float:
        wall = time.monotonic() - self.wall
        return 100.0 * (time.process_time() - self.cpu) / wall if wall > 0 else 0.0


async def window(gen: Generator, warmup: float, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(warmup)
    gen.delivered = 0
    gen.latencies = []
    gen.measuring = True
    emit({"event": "mark", "name": "start"})
    meter = Meter()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    gen.measuring = False
    elapsed = time.monotonic() - started
    gen_pct = meter.pct()
    emit({"event": "mark", "name": "end"})
    lat = gen.latencies
    return {
        "msg_s": gen.delivered / elapsed,
        "delivered": gen.delivered,
        "p50_us": percentile(lat, 0.50) / 1000,
        "p99_us": percentile(lat, 0.99) / 1000,
        "gen_cpu_pct": gen_pct,
        "lost_connections": gen.lost,
    }


async def run_idle(gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    if args.warm:  # the server's first connections load what it loads lazily
        await gen.open([f"/warm/{i // 2}" for i in range(args.warm)])
        gen.close_all()
        gen.clients = []
        await asyncio.sleep(0.2)
    emit({"event": "warm", "n": args.warm})
    await loop.run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    await gen.open([f"/idle/{i // 2}" for i in range(args.n)])
    elapsed = time.monotonic() - started
    emit({"event": "held", "n": len(gen.clients), "open_s": elapsed})
    await loop.run_in_executor(None, sys.stdin.readline)
    alive = sum(1 for c in gen.clients if not c.closed)
    return {"n": args.n, "alive": alive, "open_s": elapsed, "conn_s": args.n / elapsed}


async def run_fanout(gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    members = args.members
    await gen.open(["/fan"] * members)
    await asyncio.sleep(0.2)  # the last presence events settle
    sender = gen.clients[0]
    others = members - 1
    counts: dict[int, int] = {}
    state = {"next": 0, "inflight": 0, "progress": time.monotonic(), "stalls": 0}

    def pump() -> None:
        while state["inflight"] < args.inflight:
            seq = state["next"]
            state["next"] = seq + 1
            counts[seq] = 0
            state["inflight"] += 1
            gen.say(sender, seq)

    def on_payload(client: Client, seq: int, _sender: int) -> None:
        state["progress"] = time.monotonic()
        count = counts.get(seq)
        if count is None:
            return
        count += 1
        if count >= others:
            del counts[seq]
            state["inflight"] -= 1
            pump()
        else:
            counts[seq] = count

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(0.5)
            if state["inflight"] and time.monotonic() - state["progress"] > 1.0:
                state["stalls"] += 1  # a delivery went missing: give the credit back
                counts.clear()
                state["inflight"] = 0
                state["progress"] = time.monotonic()
                pump()

    gen.on_payload = on_payload
    dog = asyncio.ensure_future(watchdog())
    pump()
    result = await window(gen, args.warmup, args.window)
    dog.cancel()
    result.update(members=members, inflight=args.inflight, stalls=state["stalls"])
    result["sent_msg_s"] = result["msg_s"] / others
    return result


async def run_pairs(gen: Generator, args: argparse.Namespace) -> dict[str, Any]:
    pairs = args.pairs
    await gen.open([f"/pair/{i // 2}" for i in range(2 * pairs)])
    await asyncio.sleep(0.2)
    clients = gen.clients

    def on_payload(client: Client, seq: int, _sender: int) -> None:
        gen.say(client, seq + 1)  # my turn

    gen.on_payload = on_payload
    for k in range(pairs):
        gen.say(clients[2 * k], 0)
    result = await window(gen, args.warmup, args.window)
    result.update(pairs=pairs)
    return result


WORKLOADS = {"idle": run_idle, "fanout": run_fanout, "pairs": run_pairs}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    gen = Generator(args.kind, args.port)
    try:
        result = await WORKLOADS[args.workload](gen, args)
    finally:
        gen.close_all()
        await asyncio.sleep(0.1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop if installed")
    sub = parser.add_subparsers(dest="workload", required=True)
    idle = sub.add_parser("idle")
    idle.add_argument("--n", type=int, default=1000)
    idle.add_argument("--warm", type=int, default=20, help="connections opened and closed first")
    fan = sub.add_parser("fanout")
    fan.add_argument("--members", type=int, default=100)
    fan.add_argument("--inflight", type=int, default=2)
    pairs = sub.add_parser("pairs")
    pairs.add_argument("--pairs", type=int, default=100)
    for p in (fan, pairs):
        p.add_argument("--window", type=float, default=2.0)
        p.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.uvloop:
        try:
            import uvloop

            result = uvloop.run(amain(args))
        except ImportError:
            result = asyncio.run(amain(args))
    else:
        result = asyncio.run(amain(args))
    emit({"event": "result", "ok": True, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
