"""One benchmark run in a fresh process: one client, one workload; prints one JSON line.

Started by ``bench/run.py``; by hand::

    python bench/worker.py --list
    python bench/worker.py wsloop-poll rtt --ws-port P --tcp-port Q --server-pid PID --n 2000

The process pins itself to ``--cpu`` before it imports any client library,
so that every thread a library starts runs on that core too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import CLIENTS, Ctx


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def metrics(workload: str, ctx: Ctx) -> dict[str, float]:
    """Turn what a run measured into the figures of the report."""
    m = ctx.meter
    wall_s = m.wall_ns / 1e9
    n = ctx.n
    out: dict[str, float] = {}
    if workload in ("rtt", "pipe"):
        out["msg_s"] = n / wall_s
        out["cpu_us"] = m.cpu_ns / n / 1e3
        if workload == "rtt":
            lat = sorted(ctx.lat)
            out["p50_us"] = _percentile(lat, 0.50) / 1e3
            out["p99_us"] = _percentile(lat, 0.99) / 1e3
    elif workload == "big":
        out["mib_s"] = n * ctx.size / 2**20 / wall_s
        out["cpu_ms"] = m.cpu_ns / n / 1e6
    elif workload == "conn":
        out["conn_s"] = n / wall_s
        out["cpu_us"] = m.cpu_ns / n / 1e3
    elif workload in ("idle", "idle_py"):
        out["kib"] = ctx.mem_bytes / n / 1024
    elif workload == "poll":
        out["us"] = m.wall_ns / n / 1e3
        out["cpu_us"] = m.cpu_ns / n / 1e3
    return out


def list_clients() -> dict[str, Any]:
    out = {}
    for name, cls in CLIENTS.items():
        reason = cls.available()
        out[name] = {
            "available": reason is None,
            "reason": reason,
            "label": cls.label,
            "family": cls.family,
            "workloads": list(cls.workloads),
            "versions": cls.versions() if reason is None else {},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--list", action="store_true", help="print the clients that can run")
    parser.add_argument("client", nargs="?")
    parser.add_argument("workload", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--tcp-port", type=int, default=0)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--size", type=int, default=2**20)
    parser.add_argument("--cpu", type=int, default=-1, help="pin this process to one core")
    args = parser.parse_args()

    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    if args.list:
        print(json.dumps(list_clients()))
        return
    if args.client not in CLIENTS:
        parser.error(f"unknown client {args.client!r}; one of {', '.join(CLIENTS)}")
    client = CLIENTS[args.client]()
    if args.workload not in client.workloads:
        parser.error(f"{args.client} does not run {args.workload!r}")
    client.setup()

    if args.workload in ("idle", "idle_py"):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, max(soft, args.n * 2 + 256))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    ctx = Ctx(
        host=args.host,
        ws_port=args.ws_port,
        tcp_port=args.tcp_port,
        server_pid=args.server_pid,
        n=args.n,
        warmup=args.warmup,
        window=args.window,
        size=args.size,
        tracemalloc=args.workload == "idle_py",
    )
    result: dict[str, Any] = {"client": args.client, "workload": args.workload}
    try:
        extra = client.run(args.workload, ctx)
    except Exception as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    else:
        m = ctx.meter
        result.update(
            ok=True,
            metrics=metrics(args.workload, ctx),
            wall_s=m.wall_ns / 1e9,
            client_cpu_pct=100.0 * m.cpu_ns / m.wall_ns if m.wall_ns else 0.0,
            server_cpu_pct=100.0 * m.server_ns / m.wall_ns if m.wall_ns else 0.0,
            **extra,
        )
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit without tearing down: libraries' threads and open connections
    # (the idle workload keeps hundreds) would only slow the exit.
    os._exit(0)


if __name__ == "__main__":
    main()
