"""Profile one wsloop client on one benchmark workload: where its time goes.

::

    python bench/profile_wsloop.py rtt                       # poll driver, cProfile
    python bench/profile_wsloop.py pipe --client wsloop-asyncio
    python bench/profile_wsloop.py big --pyinstrument        # needs pyinstrument
    python bench/profile_wsloop.py poll --n 200000 --top 25

Starts the same echo server as ``bench/run.py`` (pinned to another core),
runs the workload in this process and profiles only its measured window
(not the connect, not the warm-up). cProfile's own overhead inflates calls
that are cheap and many; read the ranking, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import CLIENTS, Ctx, Meter
from run import PRESETS, Server


class ProfilingMeter(Meter):
    """A meter that also switches a profiler on for the measured window."""

    def __init__(self, server_pid: int, profiler: Any) -> None:
        super().__init__(server_pid)
        self.profiler = profiler

    def start(self) -> None:
        super().start()
        self.profiler.start()

    def stop(self) -> None:
        self.profiler.stop()
        super().stop()


class _CProfile:
    def __init__(self) -> None:
        self.prof = cProfile.Profile()

    def start(self) -> None:
        self.prof.enable()

    def stop(self) -> None:
        self.prof.disable()

    def report(self, top: int) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.prof, stream=out)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return out.getvalue()


class _Pyinstrument:
    def __init__(self) -> None:
        from pyinstrument import Profiler

        self.prof = Profiler(interval=0.0001)

    def start(self) -> None:
        self.prof.start()

    def stop(self) -> None:
        self.prof.stop()

    def report(self, top: int) -> str:
        return str(self.prof.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("workload", choices=["rtt", "pipe", "big", "conn", "poll"])
    parser.add_argument("--client", default="wsloop-poll", help="a wsloop client of clients.py")
    parser.add_argument("--n", type=int, help="measured count (default: the quick preset's)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--pyinstrument", action="store_true", help="pyinstrument, not cProfile")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()

    if args.client not in CLIENTS:
        parser.error(f"unknown client {args.client!r}")
    pin = len(os.sched_getaffinity(0)) >= 2
    server = Server(args.server_cpu if pin else None)
    if pin:
        os.sched_setaffinity(0, {args.client_cpu})
    try:
        params = PRESETS["quick"][args.workload]
        profiler: Any = _Pyinstrument() if args.pyinstrument else _CProfile()
        ctx = Ctx(
            host="127.0.0.1",
            ws_port=server.info["ws"],
            tcp_port=server.info["tcp"],
            server_pid=server.info["pid"],
            n=args.n or params["n"],
            warmup=params["warmup"],
        )
        ctx.meter = ProfilingMeter(server.info["pid"], profiler)
        client = CLIENTS[args.client]()
        client.setup()
        client.run(args.workload, ctx)
    finally:
        server.stop()
    m = ctx.meter
    print(
        f"# {args.client} {args.workload}: n={ctx.n}, {m.wall_ns / ctx.n / 1e3:.2f} µs wall and "
        f"{m.cpu_ns / ctx.n / 1e3:.2f} µs CPU per item (under the profiler)"
    )
    print(profiler.report(args.top))


if __name__ == "__main__":
    main()
