"""How much one process holds: the wsloop relay against its peers, in the same run.

::

    python bench/relay_load.py                 # the full run (10,000 idle connections)
    python bench/relay_load.py --quick         # smaller N, short windows
    python bench/relay_load.py --smoke         # harness check, < 30 s (make test)
    python bench/relay_load.py --servers relay,broadcast --workloads fanout-1000

Theory of operation
-------------------
Four servers, each started fresh for every workload, in its own process
pinned to one core (the first allowed CPU):

* ``relay``: ``python -m wsloop serve``, plain relay mode (the URL path is
  the room, a message goes to the other members);
* ``room``: the same relay, its clients asking for ``wsloop.room.v1`` (member
  ids, presence, numbered history, the sender's own echo);
* ``broadcast``: the floor, a set per path and ``websockets.broadcast``
  (``bench/relay_servers.py``);
* ``socketio``: python-socketio's ``AsyncServer`` on aiohttp, rooms with
  ``enter_room`` and ``emit(room=...)`` (skipped when not installed).

The limits that would stop a load test are raised on the relay (connections,
rates, room size); everything else is at its defaults, keepalive included.

One load generator process (``bench/relay_gen.py``), pinned to the second
core, drives each server over raw sockets with 100-byte messages:

* ``idle``: N connections held in rooms of two; the server's RSS growth
  (``VmRSS`` in ``/proc/<pid>/status``, after a warm-up of a few
  connections) divided by N, in KiB;
* ``fanout-M``: one sender in a room of M, at most four messages outstanding:
  deliveries per second over the window, p50 and p99 latency of every
  delivery (the send time travels in the payload);
* ``pairs``: many rooms of two taking turns: deliveries per second and
  latency.

Each measured figure comes with the server's CPU time per delivered message
(``srv CPU µs/msg``, from ``/proc/<pid>/stat``), its CPU share over the
window (``srv%``), the share of the window it spent runnable but waiting for
its core (``srv wait%``, ``/proc/<pid>/task/*/schedstat``: other work on the
machine) and the generator's CPU share (``gen%``): a figure whose generator
was near 100% measured the generator. On a busy machine msg/s follows what
the server was given; CPU per message does not, so the ratios are computed
on both. They compare the plain relay with python-socketio (target: 3x) and
with the broadcast floor (target: 0.9x the throughput, p99 no worse).
Output: a markdown table on stdout and in ``bench/results/relay-latest.md``
(``relay-quick``, ``relay-smoke`` for the presets), every run in the
``.json`` beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "idle": 10_000,
        "fanout": (100, 1000),
        "pairs": 1000,
        "window": 5.0,
        "warmup": 1.0,
        "repeats": 2,
    },
    "quick": {
        "idle": 2000,
        "fanout": (100, 1000),
        "pairs": 200,
        "window": 2.0,
        "warmup": 0.5,
        "repeats": 2,
    },
    "smoke": {
        "idle": 50,
        "fanout": (10, 50),
        "pairs": 10,
        "window": 0.4,
        "warmup": 0.2,
        "repeats": 1,
    },
}
INFLIGHT = 4
"""Messages a fan-out sender may have outstanding (not yet delivered to every member)."""
WARM = 20
"""Connections opened and closed before the idle baseline is read."""

RELAY_ARGS = [
    "--max-connections", "100000",
    "--rate-messages", "0",
    "--rate-bytes", "0",
    "--room-max-members", "100000",
    "--room-rate", "1000000000",
    "--room-burst", "1000000000",
]  # fmt: skip

SERVERS: dict[str, dict[str, Any]] = {
    "relay": {"label": "wsloop relay", "kind": "relay", "module": None},
    "room": {"label": "wsloop relay, room protocol", "kind": "room", "module": None},
    "broadcast": {"label": "websockets.broadcast (floor)", "kind": "broadcast", "module": None},
    "socketio": {"label": "python-socketio (aiohttp)", "kind": "socketio", "module": "socketio"},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Processes.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None) -> Any:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return pin


def server_command(name: str, port: int) -> list[str]:
    if name in ("relay", "room"):
        return [sys.executable, "-m", "wsloop", "serve", "--port", str(port), *RELAY_ARGS]
    return [sys.executable, str(HERE / "relay_servers.py"), name, "--port", str(port)]


class Server:
    """One server process on its core; RSS and CPU time from /proc."""

    def __init__(self, name: str, cpu: int | None) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            server_command(name, self.port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(cpu),
            cwd=ROOT,
        )
        deadline = time.monotonic() + 20.0
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name}: the server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name}: the server did not listen within 20 s") from None
                time.sleep(0.05)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def waited_s(self) -> float:
        """Seconds the server's threads spent runnable but waiting for a CPU."""
        total = 0
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
            except OSError:
                pass
        return total / 1e9

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Gen:
    """The load generator process: JSON lines out, a line in to go on."""

    def __init__(self, server: Server, args: list[str], cpu: int | None) -> None:
        kind = SERVERS[server.name]["kind"]
        command = [sys.executable, str(HERE / "relay_gen.py"), "--uvloop", "--kind", kind]
        self.proc = subprocess.Popen(
            [*command, "--port", str(server.port), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpu),
        )

    def event(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            _, err = self.proc.communicate()
            tail = err.strip().splitlines()[-1:] if err else []
            why = "timed out" if not ready else "exited"
            raise RuntimeError(f"the generator {why}: {' '.join(tail) or 'no message'}")
        return dict(json.loads(line))

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        try:
            self.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Cells: one server, one workload.


def workload_args(workload: str, preset: dict[str, Any]) -> list[str]:
    timing = ["--window", str(preset["window"]), "--warmup", str(preset["warmup"])]
    if workload == "idle":
        return ["idle", "--n", str(preset["idle"]), "--warm", str(WARM)]
    if workload == "pairs":
        return ["pairs", "--pairs", str(preset["pairs"]), *timing]
    members = workload.split("-", 1)[1]
    return ["fanout", "--members", members, "--inflight", str(INFLIGHT), *timing]


def run_cell(name: str, workload: str, preset: dict[str, Any], cpus: tuple[Any, Any]) -> Any:
    server = Server(name, cpus[0])
    gen = Gen(server, workload_args(workload, preset), cpus[1])
    timeout = 120.0
    try:
        if workload == "idle":
            gen.event(timeout)  # warm: a few connections opened and closed
            time.sleep(0.5)
            before = server.rss_kib()
            gen.go()
            held = gen.event(timeout)
            time.sleep(1.0)
            after = server.rss_kib()
            gen.go()
            result = gen.event(timeout)
            n = held["n"]
            result.update(kib=(after - before) / n, rss_before_kib=before, rss_after_kib=after)
        else:
            gen.event(timeout)  # the window starts
            cpu0, wait0, t0 = server.cpu_s(), server.waited_s(), time.monotonic()
            gen.event(timeout)  # and ends
            cpu1, wait1, t1 = server.cpu_s(), server.waited_s(), time.monotonic()
            result = gen.event(timeout)
            result["srv_cpu_pct"] = 100.0 * (cpu1 - cpu0) / (t1 - t0)
            result["srv_wait_pct"] = 100.0 * (wait1 - wait0) / (t1 - t0)
            delivered = result.get("delivered") or 0
            if delivered:
                result["srv_us"] = 1e6 * (cpu1 - cpu0) / delivered
        gen.finish()
        if not server.alive():
            raise RuntimeError("the server died")
        return result
    except Exception as exc:
        gen.proc.kill()
        return {"ok": False, "error": str(exc)}
    finally:
        server.stop()


# Report.


def best(workload: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The best run of a cell: least memory, or most messages delivered."""
    ok = [c for c in cells if c.get("ok")]
    if not ok:
        return cells[-1]
    if family(workload) == "idle":
        return min(ok, key=lambda c: c["kib"])
    return max(ok, key=lambda c: c["msg_s"])


METRICS: dict[str, list[tuple[str, str]]] = {
    "idle": [("kib", "KiB/conn (RSS)"), ("conn_s", "connects/s")],
    "fanout": [
        ("msg_s", "delivered msg/s"),
        ("p50_us", "p50 µs"),
        ("p99_us", "p99 µs"),
        ("srv_us", "srv CPU µs/msg"),
        ("srv_cpu_pct", "srv%"),
        ("srv_wait_pct", "srv wait%"),
        ("gen_cpu_pct", "gen%"),
    ],
}
METRICS["pairs"] = METRICS["fanout"]


def family(workload: str) -> str:
    return workload.split("-", 1)[0]


def fmt(value: Any) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return float(a) / float(b)


def compare(results: dict[str, dict[str, Any]], workloads: list[str]) -> list[dict[str, Any]]:
    """The ratios and targets of issue 14, for the cells that ran."""
    rows: list[dict[str, Any]] = []

    def cell(server: str, workload: str) -> dict[str, Any] | None:
        c = results.get(workload, {}).get(server)
        return c if c and c.get("ok") else None

    for workload in workloads:
        relay, room = cell("relay", workload), cell("room", workload)
        sio, floor = cell("socketio", workload), cell("broadcast", workload)
        if family(workload) == "idle":
            for who, c in (("relay", relay), ("room", room)):
                if c and sio:
                    value = ratio(sio["kib"], c["kib"])
                    rows.append(_row(workload, f"{who} vs socketio: memory (÷)", value, None))
            continue
        for who, c in (("relay", relay), ("room", room)):
            if c and sio:
                value = ratio(c["msg_s"], sio["msg_s"])
                target = 3.0 if who == "relay" else None
                rows.append(_row(workload, f"{who} vs socketio: msg/s", value, target))
        if relay and floor:
            value = ratio(relay["msg_s"], floor["msg_s"])
            rows.append(_row(workload, "relay vs broadcast: msg/s", value, 0.9))
            value = ratio(relay["p99_us"], floor["p99_us"])
            rows.append(_row(workload, "relay vs broadcast: p99", value, 1.0, lower=True))
        # Server CPU per delivered message: what a busy shared machine does not blur.
        for who, c in (("relay", relay), ("room", room)):
            if c and sio:
                value = ratio(sio.get("srv_us"), c.get("srv_us"))
                target = 3.0 if who == "relay" else None
                rows.append(_row(workload, f"{who} vs socketio: CPU/msg (÷)", value, target))
        if relay and floor:
            value = ratio(floor.get("srv_us"), relay.get("srv_us"))
            rows.append(_row(workload, "relay vs broadcast: CPU/msg (÷)", value, 0.9))
    return rows


def _row(
    workload: str, what: str, value: float | None, target: float | None, lower: bool = False
) -> dict[str, Any]:
    met = None
    if target is not None and value is not None:
        met = value <= target if lower else value >= target
    return {"workload": workload, "what": what, "ratio": value, "target": target, "lower": lower,
            "met": met}  # fmt: skip


def render(report: dict[str, Any]) -> str:
    results = report["results"]
    servers = report["servers"]
    lines = [
        f"## How much one process holds ({report['preset']} run, {report['date']})",
        "",
        f"{report['machine']}; {report['pinning']}; best of {report['repeats']}. "
        "100-byte messages; "
        f"fan-out with {INFLIGHT} messages outstanding; idle connections in rooms of two.",
        "",
    ]
    for workload in report["workloads"]:
        metrics = METRICS[family(workload)]
        params = report["params"][workload]
        lines += [f"### {workload} ({params})", ""]
        lines.append("| server | " + " | ".join(h for _, h in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        for name in servers:
            c = results.get(workload, {}).get(name)
            if c is None:
                continue
            label = SERVERS[name]["label"]
            if not c.get("ok"):
                lines.append(f"| {label} | FAILED: {c.get('error')} |")
                continue
            lines.append(f"| {label} | " + " | ".join(fmt(c.get(k)) for k, _ in metrics) + " |")
        lines.append("")
    rows = report["ratios"]
    if rows:
        lines += ["### Ratios", "", "| workload | ratio | measured | target | met |"]
        lines.append("|---|---|---:|---:|---|")
        for r in rows:
            target = (
                "" if r["target"] is None else ("≤ " if r["lower"] else "≥ ") + fmt(r["target"])
            )
            met = {True: "yes", False: "**no**", None: ""}[r["met"]]
            value = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            lines.append(f"| {r['workload']} | {r['what']} | {value} | {target} | {met} |")
        lines.append("")
    skipped = report.get("skipped")
    if skipped:
        lines += [f"Skipped: {'; '.join(skipped)}.", ""]
    return "\n".join(lines)


def machine() -> str:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("wsloop", "websockets", "python-socketio", "python-engineio", "aiohttp"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


# Main.


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, short windows")
    parser.add_argument("--smoke", action="store_true", help="tiny runs; fail on errors")
    parser.add_argument("--servers", help="comma-separated: " + ",".join(SERVERS))
    parser.add_argument("--workloads", help="comma-separated: idle, fanout-M, pairs")
    parser.add_argument("-n", "--repeats", type=int, help="runs per figure (the best is kept)")
    parser.add_argument("--idle", type=int, help="idle connections (overrides the preset)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    args = parser.parse_args()

    preset_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = dict(PRESETS[preset_name])
    if args.idle:
        preset["idle"] = args.idle
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    if hard < preset["idle"] + 1000:
        log(f"relay bench: RLIMIT_NOFILE is {hard}: fewer idle connections")
        preset["idle"] = max(10, hard - 1000)

    allowed = sorted(os.sched_getaffinity(0))
    cpus: tuple[int | None, int | None] = (None, None)
    pinning = "not pinned"
    if not args.no_pin and len(allowed) >= 2:
        cpus = (allowed[0], allowed[1])
        pinning = f"server on CPU {allowed[0]}, generator on CPU {allowed[1]}"

    servers = list(SERVERS)
    if args.servers:
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        unknown = [s for s in servers if s not in SERVERS]
        if unknown:
            parser.error(f"unknown servers: {', '.join(unknown)}")
    skipped = []
    for name in list(servers):
        module = SERVERS[name]["module"]
        if module and importlib.util.find_spec(module) is None:
            skipped.append(
                f"{name} ({module} is not installed: pip install -r bench/requirements.txt)"
            )
            servers.remove(name)
    for why in skipped:
        log(f"relay bench: skipping {why}")
    workloads = ["idle", *(f"fanout-{m}" for m in preset["fanout"]), "pairs"]
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    params = {w: " ".join(workload_args(w, preset)[1:]) for w in workloads}

    repeats = args.repeats or preset["repeats"]
    log(f"relay bench: {preset_name}, best of {repeats}; {pinning}; servers {', '.join(servers)}")
    started = time.monotonic()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rep in range(repeats):
        for workload in workloads:
            for name in servers[rep % len(servers) :] + servers[: rep % len(servers)]:
                result = run_cell(name, workload, preset, cpus)
                runs.setdefault(workload, {}).setdefault(name, []).append(result)
                if result.get("ok"):
                    keys = [k for k, _ in METRICS[family(workload)]]
                    shown = ", ".join(f"{k}={fmt(result.get(k))}" for k in keys)
                    log(f"  [{rep + 1}/{repeats}] {workload:12} {name:10} {shown}")
                else:
                    why = result.get("error")
                    log(f"  [{rep + 1}/{repeats}] {workload:12} {name:10} FAILED: {why}")
    results = {w: {n: best(w, cells) for n, cells in by.items()} for w, by in runs.items()}
    elapsed = time.monotonic() - started

    report: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "preset": preset_name,
        "elapsed_s": round(elapsed, 1),
        "machine": machine(),
        "pinning": pinning,
        "versions": versions(),
        "servers": servers,
        "skipped": skipped,
        "workloads": workloads,
        "params": params,
        "repeats": repeats,
        "results": results,
        "runs": runs,
    }
    report["ratios"] = compare(results, workloads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = {"full": "relay-latest", "quick": "relay-quick", "smoke": "relay-smoke"}[preset_name]
    json_path = args.json or RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    json_path.with_suffix(".md").write_text(text + "\n")
    print(text)
    log(f"relay bench: results in {json_path} and {json_path.with_suffix('.md')}; {elapsed:.0f} s")
    failed = [
        f"{w}/{n}" for w, cells in results.items() for n, c in cells.items() if not c.get("ok")
    ]
    if failed:
        log("relay bench: FAILED: " + ", ".join(failed))
        return 1 if args.smoke else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
