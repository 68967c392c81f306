"""Connect/close cycles of each driver leave nothing behind (issue 16).

The short version of ``make soak``: 500 cycles (connect, send a message,
receive its echo, close) of the poll, thread and asyncio drivers, each in a
fresh process (``bench/soak.py clients``) against ``wsloop serve --echo`` in
another one. After a warm-up of 100 cycles and again at the end: the
process's file descriptors, threads and asyncio tasks are the same exactly,
the last WebSocket object is freed, and the memory traced by ``tracemalloc``,
the allocated blocks and the resident size (after ``malloc_trim``) grew by
less than generous bounds (a connection's buffers alone would pass the
traced bound after a few dozen cycles kept).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
CYCLES = 500
TRACED_BOUND_KIB = 128
"""About 260 bytes a cycle: these runs stay within a few KiB either way."""
BLOCKS_BOUND = 100
"""Allocated blocks (``sys.getallocatedblocks()``): one object kept every
five cycles would pass it; these runs stay within a few dozen either way."""
RSS_BOUND_KIB = 8 * 1024
"""The thread driver's process grows about 2 MiB in its first few hundred
cycles (thread stacks and malloc arenas, not Python objects), then stays."""


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["poll", "thread", "asyncio"])
def test_connect_close_cycles_leave_nothing_behind(driver, tmp_path):
    command = [sys.executable, str(SOAK), "clients", "--driver", driver]
    command += ["--cycles", str(CYCLES), "--warmup", "100", "--workdir", str(tmp_path)]
    out = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        timeout=110,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = result["before"], result["after"]
    assert result["cycles"] == CYCLES
    assert result["last_freed"], result
    for key in ("fds", "threads", "tasks"):
        assert after[key] == before[key], (key, result)
    assert after["traced_kib"] - before["traced_kib"] < TRACED_BOUND_KIB, result
    assert after["blocks"] - before["blocks"] < BLOCKS_BOUND, result
    assert after["rss_kib"] - before["rss_kib"] < RSS_BOUND_KIB, result
    if driver == "asyncio":
        assert after["tasks"] == 1, result  # only the main task
    assert after["threads"] == 1, result  # no driver thread outlives its connection
