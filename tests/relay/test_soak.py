"""The relay leaves nothing behind: churn, then back to the warm-up figures (issue 16).

The short version of ``make soak`` (``bench/soak.py``): about ten seconds of
churning clients (plain and room-protocol members that talk, close, drop,
reset their TCP connection and resume) against one ``wsloop serve`` process,
and the same against two sharing a real ``redis-server``. Once the clients
are gone, the relays' file descriptors (besides the Redis connection pool),
threads and asyncio tasks are what they were after the warm-up, exactly, and
their memory grew by less than a generous bound. Also: the task gauge of
``/metrics`` and ``/status.json`` that the soak reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from relay_support import WAIT, Peer, close_all, open_all

from wsloop.relay import serve

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
SHORT = ("--seconds", "8", "--warmup-seconds", "2")
"""Eight seconds of churn after two of warm-up (``make soak``: minutes)."""
RSS_BOUND_KIB = 8 * 1024
"""Generous: a warmed-up relay grows by well under 2 MiB in these runs."""


def soak(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(SOAK), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=110,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_flat(result: dict, exact: tuple[str, ...]) -> None:
    counts = result["counts"]
    assert counts["rounds"] >= 3, counts  # the churn did run
    assert counts["resumes"] > 0 and counts["drops"] > 0 and counts["resets"] > 0, counts
    for proc in result["processes"]:
        before, after = proc["before"], proc["after"]
        for key in exact:
            assert after[key] == before[key], (key, proc)
        assert after["rss_kib"] - before["rss_kib"] < RSS_BOUND_KIB, proc


@pytest.mark.slow
def test_one_relay_process_churned_comes_back_to_its_baseline(tmp_path):
    result = soak("relay", "--mode", "single", *SHORT, "--workdir", str(tmp_path))
    check_flat(result, ("fds", "threads", "tasks"))


@pytest.mark.slow
def test_two_relay_processes_sharing_redis_churned_come_back_to_their_baseline(
    redis_server, tmp_path
):
    result = soak(
        "relay", "--mode", "redis", *SHORT, "--redis-url", redis_server.url,
        "--workdir", str(tmp_path),
    )  # fmt: skip
    check_flat(result, ("other_fds", "threads", "tasks"))
    for proc in result["processes"]:
        assert 1 <= proc["after"]["redis_links"] <= 16, proc  # the pool stays small


def get(url: str) -> str:
    with urllib.request.urlopen(url.replace("ws://", "http://"), timeout=WAIT) as page:
        return page.read().decode()


def tasks_now(url: str) -> tuple[int, float]:
    status = json.loads(get(url + "/status.json"))["tasks"]
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(get(url + "/metrics"))
        for sample in family.samples
    }
    return status, metrics["wsloop_relay_asyncio_tasks"]


def test_the_task_gauge_counts_each_connection_and_falls_back():
    with serve() as relay:
        idle, gauge = tasks_now(relay.url)
        assert idle >= 1 and gauge >= 1
        peers = [Peer().connect(f"{relay.url}/room/tasks") for _ in range(4)]
        open_all(*peers)
        busy, gauge = tasks_now(relay.url)
        assert busy >= idle + 2 * len(peers)  # a handler and a writer each
        assert gauge >= idle + 2 * len(peers)
        close_all(*peers)
        deadline = time.monotonic() + WAIT
        while tasks_now(relay.url)[0] != idle:
            assert time.monotonic() < deadline, tasks_now(relay.url)
            time.sleep(0.05)
        assert tasks_now(relay.url) == (idle, idle)
