"""Benchmark wsloop against the peer libraries, in the same run, on loopback.

::

    python bench/run.py                  # the full benchmark: best of 5
    python bench/run.py --quick          # shorter runs, best of 2
    python bench/run.py --quick --smoke  # checks the harness works (< 60 s)
    python bench/run.py --clients wsloop-poll,picows --workloads rtt,pipe -n 3

One Node.js process (bench/server.js) serves a WebSocket echo (npm ``ws``)
and a raw TCP echo, pinned to one core; every run is a fresh worker process
(bench/worker.py) pinned to another. Runs are interleaved (each repetition
goes through every client, in a rotated order) and each figure is the best of
the repetitions. Output: tables with each figure's ratio to the best peer and
to raw TCP (stdout and bench/results/latest.md), bench/results/latest.json,
and a chart (docs/bench.png and docs/bench.md for a full run).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# Counts per workload: n is measured, warmup runs first in the same process.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "repeats": 5,
        "timeout": 180.0,
        "rtt": {"n": 10_000, "warmup": 1_000},
        "pipe": {"n": 100_000, "warmup": 5_000},
        "big": {"n": 100, "warmup": 5},
        "conn": {"n": 300, "warmup": 20},
        "idle": {"n": 1_000, "warmup": 0},
        "idle_py": {"n": 1_000, "warmup": 0},
        "poll": {"n": 200_000, "warmup": 10_000},
    },
    "quick": {
        "repeats": 2,
        "timeout": 90.0,
        "rtt": {"n": 2_000, "warmup": 200},
        "pipe": {"n": 20_000, "warmup": 1_000},
        "big": {"n": 20, "warmup": 2},
        "conn": {"n": 100, "warmup": 10},
        "idle": {"n": 1_000, "warmup": 0},
        "idle_py": {"n": 1_000, "warmup": 0},
        "poll": {"n": 50_000, "warmup": 5_000},
    },
    "smoke": {
        "repeats": 1,
        "timeout": 30.0,
        "rtt": {"n": 200, "warmup": 20},
        "pipe": {"n": 1_000, "warmup": 100},
        "big": {"n": 3, "warmup": 1},
        "conn": {"n": 10, "warmup": 2},
        "idle": {"n": 50, "warmup": 0},
        "idle_py": {"n": 50, "warmup": 0},
        "poll": {"n": 2_000, "warmup": 200},
    },
}

WINDOW = 100
BIG_SIZE = 2**20
SERVER_BUSY_PCT = 90.0
"""Above this server CPU share during a run, the server may be what limits it."""

HIGHER, LOWER = "higher", "lower"

# workload -> title, and per figure: (key, header, better, ratios shown).
WORKLOADS: dict[str, dict[str, Any]] = {
    "rtt": {
        "title": "(1) Round trip of one 32-byte text message",
        "metrics": [
            ("msg_s", "msg/s", HIGHER, True),
            ("p50_us", "p50 µs", LOWER, False),
            ("p99_us", "p99 µs", LOWER, False),
            ("cpu_us", "CPU µs/msg", LOWER, True),
        ],
    },
    "pipe": {
        "title": f"(2) Pipelined 32-byte text messages, windows of {WINDOW}",
        "metrics": [("msg_s", "msg/s", HIGHER, True), ("cpu_us", "CPU µs/msg", LOWER, True)],
    },
    "big": {
        "title": "(3) Echo of a 1 MiB binary message (client masking included)",
        "metrics": [("mib_s", "MiB/s", HIGHER, True), ("cpu_ms", "CPU ms/msg", LOWER, True)],
    },
    "conn": {
        "title": "(4) Connect + handshake + close, one after another",
        "metrics": [("conn_s", "conn/s", HIGHER, True), ("cpu_us", "CPU µs/conn", LOWER, True)],
    },
    "idle": {
        "title": "(5) Idle open connections in one process: RSS growth",
        "metrics": [("kib", "KiB/conn (RSS)", LOWER, True)],
    },
    "idle_py": {
        "title": "(5b) Idle open connections: Python allocations (tracemalloc)",
        "metrics": [("kib", "KiB/conn (tracemalloc)", LOWER, True)],
    },
    "poll": {
        "title": "(6) One poll() on an idle open connection (wsloop only)",
        "metrics": [("us", "µs/poll()", LOWER, False), ("cpu_us", "CPU µs/poll()", LOWER, False)],
    },
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The server.


class Server:
    """bench/server.js, pinned to one core; ends when this process closes its stdin."""

    def __init__(self, cpu: int | None) -> None:
        node = shutil.which("node")
        if node is None:
            raise SystemExit("bench: Node.js (`node`) is not on PATH")

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            [node, str(HERE / "server.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=pin,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15.0)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise SystemExit("bench: the echo server did not start (see its error above)")
        self.info: dict[str, Any] = json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Workers.


def list_clients(cpu: int | None) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "worker.py"), "--list"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def run_worker(
    client: str,
    workload: str,
    server: Server,
    params: dict[str, Any],
    cpu: int | None,
    timeout: float,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "worker.py"),
        client,
        workload,
        "--ws-port",
        str(server.info["ws"]),
        "--tcp-port",
        str(server.info["tcp"]),
        "--server-pid",
        str(server.info["pid"]),
        "--n",
        str(params["n"]),
        "--warmup",
        str(params["warmup"]),
        "--window",
        str(WINDOW),
        "--size",
        str(BIG_SIZE),
    ]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"client": client, "workload": workload, "ok": False, "error": "timed out"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {
            "client": client,
            "workload": workload,
            "ok": False,
            "error": f"worker exited {proc.returncode}: " + " | ".join(tail),
        }
    result: dict[str, Any] = json.loads(lines[-1])
    if not result.get("ok") and proc.stderr:
        result["stderr"] = proc.stderr[-2000:]
    return result


# Aggregation.


def better(direction: str, a: float, b: float) -> bool:
    return a > b if direction == HIGHER else a < b


def aggregate(runs: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    ok = [r for r in runs if r.get("ok")]
    cell: dict[str, Any] = {"runs": runs, "ok": bool(ok)}
    if not ok:
        cell["error"] = runs[-1].get("error", "failed") if runs else "not run"
        return cell
    best: dict[str, float] = {}
    for key, _, direction, _ in WORKLOADS[workload]["metrics"]:
        values = [r["metrics"][key] for r in ok if key in r["metrics"]]
        values = [v for v in values if not math.isnan(v)]
        if values:
            best[key] = max(values) if direction == HIGHER else min(values)
    cell["best"] = best
    cell["server_cpu_pct_max"] = max(r.get("server_cpu_pct", 0.0) for r in ok)
    cell["client_cpu_pct_max"] = max(r.get("client_cpu_pct", 0.0) for r in ok)
    return cell


def best_of_family(
    results: dict[str, Any], clients: dict[str, Any], workload: str, key: str, families: set[str]
) -> tuple[str, float] | None:
    direction = next(m[2] for m in WORKLOADS[workload]["metrics"] if m[0] == key)
    found: tuple[str, float] | None = None
    for name, cell in results.get(workload, {}).items():
        if clients[name]["family"] not in families or key not in cell.get("best", {}):
            continue
        value = cell["best"][key]
        if found is None or better(direction, value, found[1]):
            found = (name, value)
    return found


def peer_families(clients: dict[str, Any]) -> set[str]:
    return {c["family"] for c in clients.values()} - {"wsloop", "raw"}


def ratios(results: dict[str, Any], clients: dict[str, Any]) -> dict[str, Any]:
    """value / best peer and value / raw TCP, for every figure that shows ratios."""
    out: dict[str, Any] = {}
    peers = peer_families(clients)
    for workload, spec in WORKLOADS.items():
        for key, _, _, shown in spec["metrics"]:
            if not shown:
                continue
            peer = best_of_family(results, clients, workload, key, peers)
            raw = best_of_family(results, clients, workload, key, {"raw"})
            for name, cell in results.get(workload, {}).items():
                value = cell.get("best", {}).get(key)
                if value is None:
                    continue
                entry = out.setdefault(workload, {}).setdefault(name, {})
                entry[key] = {
                    "peer": value / peer[1] if peer and peer[1] else None,
                    "peer_client": peer[0] if peer else None,
                    "raw": value / raw[1] if raw and raw[1] else None,
                }
    return out


# Targets of issue 5.


def targets(results: dict[str, Any], clients: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(what: str, ratio: float | None, limit: float, direction: str, detail: str) -> None:
        met = None
        if ratio is not None:
            met = ratio >= limit if direction == HIGHER else ratio <= limit
        rows.append(
            {
                "target": what,
                "ratio": ratio,
                "limit": limit,
                "direction": direction,
                "met": met,
                "detail": detail,
            }
        )

    def pair(workload: str, key: str, families: set[str]) -> tuple[Any, Any]:
        return (
            best_of_family(results, clients, workload, key, {"wsloop"}),
            best_of_family(results, clients, workload, key, families),
        )

    figures = [
        ("rtt", "msg_s"),
        ("rtt", "cpu_us"),
        ("pipe", "msg_s"),
        ("big", "mib_s"),
        ("conn", "conn_s"),
        ("idle", "kib"),
    ]
    for family in ("websocket-client", "websockets", "aiohttp"):
        for workload, key in figures:
            ours, theirs = pair(workload, key, {family})
            if ours is None or theirs is None:
                continue
            direction = next(m[2] for m in WORKLOADS[workload]["metrics"] if m[0] == key)
            add(
                f"ahead of {family}: {workload} {key}",
                ours[1] / theirs[1] if theirs[1] else None,
                1.0,
                direction,
                f"{ours[0]} vs {theirs[0]}",
            )
    for workload, key, limit, direction in (
        ("rtt", "cpu_us", 1.0, LOWER),
        ("pipe", "msg_s", 0.8, HIGHER),
        ("big", "mib_s", 1.0, HIGHER),
    ):
        ours, theirs = pair(workload, key, {"picows"})
        if ours is not None and theirs is not None:
            add(
                f"vs picows at its fastest: {workload} {key}",
                ours[1] / theirs[1] if theirs[1] else None,
                limit,
                direction,
                f"{ours[0]} vs {theirs[0]}",
            )
    ours, raw = pair("big", "mib_s", {"raw"})
    if ours is not None and raw is not None:
        add("1 MiB throughput vs raw TCP", ours[1] / raw[1], 0.9, HIGHER, f"{ours[0]} vs raw-tcp")
    for name in ("wsloop-asyncio", "wsloop-asyncio-uvloop"):
        cell = results.get("idle", {}).get(name, {})
        if "kib" in cell.get("best", {}):
            add(f"KiB per idle connection, {name}", cell["best"]["kib"], 10.0, LOWER, "KiB (RSS)")
    cell = results.get("poll", {}).get("wsloop-poll", {})
    if "us" in cell.get("best", {}):
        add("one idle poll(), µs", cell["best"]["us"], 2.0, LOWER, "wsloop-poll, µs")
    return rows


# Rendering.


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(report: dict[str, Any]) -> str:
    results = report["results"]
    rat = report["ratios"]
    clients = report["clients"]
    lines = [
        f"# wsloop benchmark, {report['date']} ({report['preset']}, best of {report['repeats']})",
        "",
        f"Machine: {report['machine']['summary']}. Server: {report['server']['summary']}.",
        "Compression off for every client; loopback; server and client pinned to "
        f"different cores ({report['pinning']}).",
        'Ratios: "vs peer" = this figure / the best peer library\'s (peers: '
        + ", ".join(sorted(peer_families(clients)))
        + '); "vs raw" = this figure / raw TCP\'s. For msg/s, MiB/s and conn/s higher is '
        "better; for CPU, latency and KiB lower is better.",
        f"srv% = the echo server's CPU share during the run (the most of any repetition); "
        f"≥ {SERVER_BUSY_PCT:.0f}% flags a run the server may have limited.",
        "",
    ]
    for workload, spec in WORKLOADS.items():
        cells = results.get(workload)
        if not cells:
            continue
        header = ["client"]
        for _, title, _, shown in spec["metrics"]:
            header.append(title)
            if shown:
                header += ["vs peer", "vs raw"]
        header.append("srv%")
        lines += [f"## {spec['title']}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for name in clients:
            cell = cells.get(name)
            if cell is None:
                continue
            row = [clients[name]["label"]]
            if not cell.get("ok"):
                row.append(f"failed: {cell.get('error', '?')}"[:80])
                row += [""] * (len(header) - 2)
                lines.append("| " + " | ".join(row) + " |")
                continue
            for key, _, _, shown in spec["metrics"]:
                row.append(fmt(cell["best"].get(key)))
                if shown:
                    r = rat.get(workload, {}).get(name, {}).get(key, {})
                    row += [fmt_ratio(r.get("peer")), fmt_ratio(r.get("raw"))]
            srv = cell.get("server_cpu_pct_max", 0.0)
            row.append(f"{srv:.0f}" + (" ⚠" if srv >= SERVER_BUSY_PCT else ""))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if report["targets"]:
        lines += [
            "## Targets (issue 5)",
            "",
            "| target | measured | wanted | met | compared |",
            "|---|---:|---:|---|---|",
        ]
        for t in report["targets"]:
            sign = "≥" if t["direction"] == HIGHER else "≤"
            met = {True: "yes", False: "**no**", None: "?"}[t["met"]]
            lines.append(
                f"| {t['target']} | {fmt(t['ratio'])} | {sign} {t['limit']:g} | {met} | "
                f"{t['detail']} |"
            )
        lines.append("")
    failed = [
        f"{w}/{c}: {cell.get('error')}"
        for w, cells in results.items()
        for c, cell in cells.items()
        if not cell.get("ok")
    ]
    if failed:
        lines += ["## Failed runs", ""] + [f"- {f}" for f in failed] + [""]
    return "\n".join(lines)


README_START = "<!-- bench:start (written by make bench) -->"
README_END = "<!-- bench:end -->"
SUMMARY_FAMILIES = ("websocket-client", "websockets", "aiohttp", "picows", "raw")


def summary(report: dict[str, Any]) -> str:
    """The README's table: wsloop's best driver against each peer's best mode."""
    results = report["results"]
    clients = report["clients"]
    families = [f for f in SUMMARY_FAMILIES if any(c["family"] == f for c in clients.values())]
    heads = ["raw TCP" if f == "raw" else f for f in families]
    lines = [
        f"Measured {report['date']} on {report['machine']['summary']} "
        f"(server: {report['server']['summary']}), best of {report['repeats']}; "
        "each column is that library's best mode (driver, event loop, accelerator).",
        "",
        "| | wsloop | " + " | ".join(heads) + " | wsloop / best peer |",
        "|---|" + "---:|" * (len(families) + 2),
    ]
    for workload, key, title in CHART_PANELS:
        if workload == "poll":
            continue
        direction = next(m[2] for m in WORKLOADS[workload]["metrics"] if m[0] == key)
        ours = best_of_family(results, clients, workload, key, {"wsloop"})
        if ours is None:
            continue
        driver = clients[ours[0]]["label"].removeprefix("wsloop ").strip("()")
        row = [f"{title} ({direction} is better)", f"{fmt(ours[1])} ({driver})"]
        for family in families:
            theirs = best_of_family(results, clients, workload, key, {family})
            row.append("-" if theirs is None else fmt(theirs[1]))
        peer = best_of_family(results, clients, workload, key, peer_families(clients))
        row.append("-" if peer is None or not peer[1] else fmt_ratio(ours[1] / peer[1]))
        lines.append("| " + " | ".join(row) + " |")
    cell = results.get("poll", {}).get("wsloop-poll", {}).get("best", {})
    if "us" in cell:
        lines += [
            "",
            f"One `poll()` on an idle open connection (poll driver): {fmt(cell['us'])} µs.",
        ]
    return "\n".join(lines)


def update_readme(report: dict[str, Any], readme: Path) -> bool:
    """Replace the table between the README's bench markers; False if it has none."""
    text = readme.read_text()
    start = text.find(README_START)
    end = text.find(README_END)
    if start < 0 or end < start:
        return False
    block = README_START + "\n" + summary(report) + "\n" + README_END
    readme.write_text(text[:start] + block + text[end + len(README_END) :])
    return True


CHART_PANELS = [
    ("rtt", "msg_s", "round trip, 32 B: msg/s"),
    ("rtt", "cpu_us", "round trip: client CPU µs/msg"),
    ("pipe", "msg_s", f"pipelined (windows of {WINDOW}), 32 B: msg/s"),
    ("pipe", "cpu_us", "pipelined: client CPU µs/msg"),
    ("big", "mib_s", "1 MiB binary echo: MiB/s"),
    ("conn", "conn_s", "connect + handshake + close: conn/s"),
    ("idle", "kib", "idle connections: KiB each (RSS)"),
    ("poll", "us", "idle poll(): µs per call"),
]


def chart(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("bench: matplotlib is not installed: no chart")
        return False
    clients = report["clients"]
    results = report["results"]
    fig, axes = plt.subplots(2, 4, figsize=(20, 9.5))
    colors = {"wsloop": "#e8731a", "raw": "#9a9a9a"}
    for ax, (workload, key, title) in zip(axes.flat, CHART_PANELS, strict=True):
        direction = next(m[2] for m in WORKLOADS[workload]["metrics"] if m[0] == key)
        names = [n for n in clients if key in results.get(workload, {}).get(n, {}).get("best", {})]
        values = [results[workload][n]["best"][key] for n in names]
        ax.set_title(f"{title}\n({direction} is better)", fontsize=10)
        if not names:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            continue
        ys = range(len(names))
        bar_colors = [colors.get(clients[n]["family"], "#3b75af") for n in names]
        # Raw TCP far beyond every WebSocket client (connections/s) is clipped.
        ws_values = [v for n, v in zip(names, values, strict=True) if n != "raw-tcp"]
        top = max(values)
        if ws_values and top > 2.5 * max(ws_values):
            top = max(ws_values) * 1.3
        shown = [min(v, top) for v in values]
        ax.barh(list(ys), shown, color=bar_colors)
        ax.set_yticks(list(ys), [clients[n]["label"] for n in names], fontsize=8)
        ax.invert_yaxis()
        for y, v, s in zip(ys, values, shown, strict=True):
            label = fmt(v) if v == s else f"{fmt(v)} (off scale)"
            ax.text(s + top * 0.01, y, label, va="center", fontsize=7)
        ax.set_xlim(0, top * 1.2)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"wsloop vs peers: {report['date']}, {report['machine']['summary']}; "
        f"best of {report['repeats']}, compression off, loopback, Node.js ws echo server",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# Machine facts.


def machine() -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    info = {
        "cpu": model,
        "cores": cores,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    info["summary"] = f"{model}, {cores} cores, Linux {info['kernel']}, Python {info['python']}"
    return info


def pick_cpus(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    allowed = sorted(os.sched_getaffinity(0))
    if args.no_pin or len(allowed) < 2:
        why = "off" if args.no_pin else f"off: only CPUs {allowed} available"
        return None, None, why
    server = args.server_cpu if args.server_cpu is not None else allowed[0]
    client = args.client_cpu if args.client_cpu is not None else allowed[1]
    return server, client, f"server on CPU {server}, client on CPU {client}"


# Main.


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, best of 2")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny runs that check the harness; fail on errors"
    )
    parser.add_argument("-n", "--repeats", type=int, help="runs per figure (best of N)")
    parser.add_argument("--clients", help="comma-separated client names (default: all)")
    parser.add_argument("--workloads", help="comma-separated: " + ",".join(WORKLOADS))
    parser.add_argument("--server-cpu", type=int)
    parser.add_argument("--client-cpu", type=int)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--chart", type=Path, help="where to write the PNG chart")
    parser.add_argument("--list", action="store_true", help="list the clients and exit")
    args = parser.parse_args()

    preset_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = PRESETS[preset_name]
    repeats = args.repeats or preset["repeats"]
    server_cpu, client_cpu, pinning = pick_cpus(args)

    available = list_clients(client_cpu)
    if args.list:
        for name, c in available.items():
            state = "ok" if c["available"] else f"unavailable ({c['reason']})"
            print(f"{name:28} {state:40} {' '.join(c['workloads'])}")
        return 0
    names = [n for n, c in available.items() if c["available"]]
    for n, c in available.items():
        if not c["available"]:
            log(f"bench: skipping {n}: {c['reason']}")
    if args.clients:
        wanted = [c.strip() for c in args.clients.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in available]
        if unknown:
            parser.error(f"unknown clients: {', '.join(unknown)}")
        names = [n for n in names if n in wanted]
    workloads = list(WORKLOADS)
    if args.workloads:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = [w for w in workloads if w not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workloads: {', '.join(unknown)}")

    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})  # keep the harness off the client's core
    server = Server(server_cpu)
    log(
        f"bench: {preset_name}, best of {repeats}; echo server pid {server.info['pid']} "
        f"(Node {server.info['node']}, ws {server.info['ws_version']}, "
        f"bufferutil {'on' if server.info['bufferutil'] else 'off'}); {pinning}"
    )
    started = time.monotonic()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for rep in range(repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)] if names else []
            for workload in workloads:
                for name in order:
                    if workload not in available[name]["workloads"]:
                        continue
                    if not server.alive():
                        raise SystemExit("bench: the echo server died")
                    result = run_worker(
                        name, workload, server, preset[workload], client_cpu, preset["timeout"]
                    )
                    runs.setdefault(workload, {}).setdefault(name, []).append(result)
                    if result.get("ok"):
                        shown = ", ".join(f"{k}={fmt(v)}" for k, v in result["metrics"].items())
                        log(
                            f"  [{rep + 1}/{repeats}] {workload:7} {name:26} {shown}"
                            f"  (srv {result.get('server_cpu_pct', 0):.0f}%)"
                        )
                    else:
                        log(
                            f"  [{rep + 1}/{repeats}] {workload:7} {name:26} FAILED: "
                            f"{result.get('error')}"
                        )
    finally:
        server.stop()
    elapsed = time.monotonic() - started

    results = {
        w: {n: aggregate(runs[w][n], w) for n in names if n in runs.get(w, {})} for w in workloads
    }
    clients = {n: {k: available[n][k] for k in ("label", "family", "versions")} for n in names}
    srv = server.info
    report: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "preset": preset_name,
        "repeats": repeats,
        "elapsed_s": round(elapsed, 1),
        "machine": machine(),
        "server": {
            **srv,
            "summary": f"Node {srv['node']}, ws {srv['ws_version']}"
            + (" + bufferutil" if srv["bufferutil"] else ""),
        },
        "pinning": pinning,
        "params": {w: preset[w] for w in workloads} | {"window": WINDOW, "big_size": BIG_SIZE},
        "compression": "off for every client",
        "clients": clients,
        "results": results,
    }
    report["ratios"] = ratios(results, clients)
    report["targets"] = targets(results, clients)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "latest"
    json_path = args.json or RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    (json_path.with_suffix(".md")).write_text(text + "\n")
    print(text)
    published = preset_name == "full" and not (args.clients or args.workloads or args.repeats)
    if published and not args.json:
        # The run the README shows: its tables next to its chart, in the tree.
        (ROOT / "docs" / "bench.md").write_text(text + "\n")
        log(f"bench: tables written to {ROOT / 'docs' / 'bench.md'}")
        if update_readme(report, ROOT / "README.md"):
            log("bench: README table updated")
    chart_path = args.chart or (
        ROOT / "docs" / "bench.png" if published else RESULTS / f"{preset_name}.png"
    )
    if chart(report, chart_path):
        log(f"bench: chart written to {chart_path}")
    log(f"bench: results in {json_path} and {json_path.with_suffix('.md')}; {elapsed:.0f} s")

    failed = [(w, n) for w, cells in results.items() for n, c in cells.items() if not c["ok"]]
    if args.smoke and failed:
        log("bench: smoke run FAILED: " + ", ".join(f"{w}/{n}" for w, n in failed))
        return 1
    if args.smoke:
        log(f"bench: smoke run passed ({sum(len(c) for c in results.values())} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
