"""Run the Autobahn TestSuite server cases against the relay (``wsloop serve --echo``).

The relay runs as a user runs it: a ``wsloop serve --echo`` process on a free
loopback port, with the settings in :data:`RELAY_ARGS` (printed at the start
of the run and kept in the report). kosoku's fuzzing *client* connects to it
once per case, sends the case's frames and judges the echo and the close.
Every case must pass: ``behavior`` OK, NON-STRICT or INFORMATIONAL and
``behavior_close`` OK or INFORMATIONAL. The relay must also survive the run
(still serving at the end, exit 0 on SIGTERM) without logging a warning or a
traceback.

Usage::

    python compliance/run_server.py [--cases GLOB ...] [--exclude GLOB ...]
                                    [--report DIR] [--timeout S] [--concurrency N]

Exit status: 0 when everything passed; 1 when a case did not pass or the
relay misbehaved; 2 when the run timed out or could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import kosoku

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as client_run  # the client runner: case selection, records, the summary

import wsloop

# The relay as a user starts it, with the limits the 9.* cases need raised:
# they send 16 MiB messages (so 64 MiB, as the user did) and messages
# of up to 65,536 fragments (the default --max-fragments already allows
# that; it is given here so the run says so). Keepalive is off: a ping from
# the relay would show up in the cases' transcripts. The per-client rate
# limits are off: the 12.* and 13.* cases echo 1,000 messages of up to
# 128 KiB as fast as they can, past the default 16 MiB/s (closed with 1008).
RELAY_ARGS: list[str] = [
    "--echo",
    "--rate-messages",
    "0",
    "--rate-bytes",
    "0",
    "--max-size",
    "67108864",
    "--max-fragments",
    "65536",
    "--ping-interval",
    "0",
    "--quiet",
]

_LISTENING = re.compile(r"listening on (ws://\S+)")


class RelayProcess:
    """``wsloop serve`` in a subprocess; its log is read by a thread and kept."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> str:
        cmd = [sys.executable, "-m", "wsloop", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise RuntimeError("the relay did not start:\n" + "".join(self.lines))
        return self.url

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            found = _LISTENING.search(line)
            if found and self.url is None:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait; the exit status (``None``: it had to be killed)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("".join(self.lines))
        return proc.returncode


def _bad_log_lines(lines: list[str]) -> list[str]:
    """Log lines that mean the relay itself went wrong (with --quiet: any at all but
    the start and stop lines)."""
    benign = ("listening on", "stopped", "shutting down")
    return [line.rstrip() for line in lines if line.strip() and not any(b in line for b in benign)]


async def _fuzz(url: str, cases: list[str] | None, exclude: list[str] | None, n: int) -> list[Any]:
    try:
        return list(
            await kosoku.run_fuzzingclient(url, cases=cases, exclude_cases=exclude, concurrency=n)
        )
    except kosoku.FailureError as exc:
        return list(exc.results)


def _server_record(result: Any) -> dict[str, Any]:
    """The client runner's record, with the sides named for this run (kosoku is the client)."""
    record = client_run._result_record(result, None)
    for key in ("close_code", "close_reason"):
        record[f"client_{key}"], record[f"server_{key}"] = (
            record[f"server_{key}"],
            record[f"client_{key}"],
        )
    for mine, theirs in (("closed", "closed"), ("dropped", "dropped"), ("failed", "failed")):
        record[f"{theirs}_by_client"] = record.pop(f"{mine}_by_server")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn server cases (kosoku) against wsloop serve --echo."
    )
    parser.add_argument("--cases", nargs="+", metavar="GLOB", help="case ids or globs to run")
    parser.add_argument("--exclude", nargs="+", metavar="GLOB", help="case ids or globs to skip")
    parser.add_argument(
        "--report", type=Path, default=Path("reports"), metavar="DIR", help="default: reports"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        metavar="S",
        help="seconds the whole run may take (default: 1200)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="cases at once (default: 1)"
    )
    args = parser.parse_args(argv)

    try:
        ids = client_run.selected_ids(args.cases, args.exclude)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not ids:
        print("no case matches the selection", file=sys.stderr)
        return 2
    print(
        f"wsloop {wsloop.__version__} relay: {len(ids)} server cases against "
        f"wsloop serve {' '.join(RELAY_ARGS)}",
        flush=True,
    )
    relay = RelayProcess(RELAY_ARGS, args.report / "conformance-server-relay.log")
    run = client_run.Run(count=len(ids))
    start = time.monotonic()
    try:
        url = relay.start()
        results = asyncio.run(
            asyncio.wait_for(
                _fuzz(url, args.cases, args.exclude, args.concurrency), timeout=args.timeout
            )
        )
    except TimeoutError:
        relay.stop()
        print(f"FAIL: the run did not finish within {args.timeout:g} s", file=sys.stderr)
        return 2
    except Exception:
        relay.stop()
        traceback.print_exc()
        return 2
    elapsed = time.monotonic() - start
    if not relay.alive:
        code = relay.proc.poll() if relay.proc else None
        run.problems.append(f"the relay died during the run (exit {code})")
    status = relay.stop()
    if status != 0:
        run.problems.append(f"the relay did not exit 0 on SIGTERM (status {status})")
    for line in _bad_log_lines(relay.lines)[:20]:
        run.problems.append(f"relay log: {line}")

    records = [_server_record(r) for r in results]
    passed, text = client_run.summarize(records, run, len(ids), elapsed)
    print(text)
    args.report.mkdir(parents=True, exist_ok=True)
    path = args.report / "conformance-server.json"
    document = {
        "agent": "wsloop serve",
        "wsloop": wsloop.__version__,
        "relay_args": RELAY_ARGS,
        "cases": args.cases,
        "exclude": args.exclude,
        "elapsed_s": round(elapsed, 1),
        "passed": passed,
        "problems": run.problems,
        "behavior": dict(collections.Counter(r["behavior"] for r in records)),
        "behavior_close": dict(collections.Counter(r["behavior_close"] for r in records)),
        "results": records,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"report: {path}")
    if not passed:
        return 2 if len(records) != len(ids) else 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
