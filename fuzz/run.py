"""Run the atheris fuzz targets: one, for a while, or all of them with a summary.

Usage::

    python fuzz/run.py --target session --seconds 60   # or --runs 100000
    python fuzz/run.py --target session --corpus-only  # each seed once
    python fuzz/run.py --target session --merge        # keep the new coverage
    python fuzz/run.py --all --seconds 60              # every target, then a table
    python fuzz/run.py --target session crash-1234     # replay inputs

Theory of operation
-------------------
libFuzzer (inside atheris) owns the process: it runs the seeds, then mutates
them, and exits at the first input that makes the target raise (a *finding*:
it writes the input to ``reports/fuzz/<target>-crash-<sha1>``) or take more
than ``--timeout`` seconds (a hang: ``<target>-timeout-<sha1>``). It reads the
seeds from ``fuzz/corpus/<target>/`` and writes what it finds to a scratch
corpus in ``reports/fuzz/<target>/``, never into the repository; ``--merge``
then adds to the seeds a small set of the inputs that bring new coverage
(libFuzzer's ``-set_cover_merge=1``: a set cover of the new features). The
packages each target names are instrumented for coverage when the target is
imported (``atheris.instrument_imports``).

``--all`` runs each target in a subprocess of its own, logs it to
``reports/fuzz/<target>.log`` and prints, per target, the executions, the
executions per second, and the coverage (libFuzzer's ``cov:`` edges and
``ft:`` features) after the seeds and at the end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
REPORTS = ROOT / "reports" / "fuzz"

TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (module, packages instrumented for coverage)
    "session": ("fuzz.target_session", ("wsloop", "websockets")),
    "native": ("fuzz.target_native", ("wsloop", "websockets")),
    "relay": ("fuzz.target_relay", ("wsloop", "websockets")),
    "rooms": ("fuzz.target_rooms", ("wsloop",)),
}

MAX_LEN = 8192
"""The largest input libFuzzer makes (bytes)."""


def _libfuzzer_args(args: argparse.Namespace) -> list[str]:
    target = args.target
    seeds = CORPUS / target
    scratch = REPORTS / target
    scratch.mkdir(parents=True, exist_ok=True)
    seeds.mkdir(parents=True, exist_ok=True)
    argv = [
        # libFuzzer's merge runs this command line again (through the shell),
        # with its own flags: _INNER tells that process which target it is.
        f"{sys.executable} {Path(__file__).resolve()}",
        f"-timeout={args.timeout}",
        f"-max_len={MAX_LEN}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={REPORTS}/{target}-",
    ]
    if args.inputs:
        return [*argv, *args.inputs]
    if args.merge:
        return [*argv, "-set_cover_merge=1", str(seeds), str(scratch)]
    if args.corpus_only:
        return [*argv, "-runs=0", str(seeds)]
    if args.runs is not None:
        argv.append(f"-runs={args.runs}")
    else:
        argv.append(f"-max_total_time={args.seconds}")
    # New inputs go to the first directory: the scratch one.
    return [*argv, str(scratch), str(seeds)]


_INNER = "WSLOOP_FUZZ_TARGET"
"""Set for the processes libFuzzer starts itself (merge): the target's name."""


def run_target(target: str, libfuzzer_args: list[str]) -> None:
    """Instrument and import the target, then hand the process to libFuzzer."""
    import atheris  # type: ignore[import-untyped]

    os.environ[_INNER] = target
    sys.path.insert(0, str(ROOT))
    module_name, packages = TARGETS[target]
    with atheris.instrument_imports(include=list(packages)):
        module = importlib.import_module(module_name)
    setup = getattr(module, "setup", None)
    if setup is not None:
        setup()
    atheris.Setup(libfuzzer_args, module.test_one_input)
    atheris.Fuzz()


_STATUS = re.compile(r"#(\d+)\s+(INITED|DONE|NEW|REDUCE|pulse)\s.*?cov: (\d+) ft: (\d+)")
_FINAL = re.compile(r"stat::(number_of_executed_units|average_exec_per_sec):\s+(\d+)")


def summarise(log: str) -> dict[str, int | None]:
    """The executions, exec/s and coverage numbers of one libFuzzer log."""
    out: dict[str, int | None] = {
        "execs": None,
        "exec_s": None,
        "seed_cov": None,
        "seed_ft": None,
        "cov": None,
        "ft": None,
    }
    for match in _STATUS.finditer(log):
        execs, kind, cov, ft = match.groups()
        if kind == "INITED":
            out["seed_cov"], out["seed_ft"] = int(cov), int(ft)
        out["cov"], out["ft"] = int(cov), int(ft)
        out["execs"] = int(execs)
    for match in _FINAL.finditer(log):
        key = "execs" if match.group(1) == "number_of_executed_units" else "exec_s"
        out[key] = int(match.group(2))
    return out


def run_all(args: argparse.Namespace) -> int:
    """Every target in turn, in its own process; a table at the end."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    rows = []
    failed = []
    for target in args.targets or list(TARGETS):
        command = [sys.executable, str(Path(__file__).resolve()), "--target", target]
        command += ["--seconds", str(args.seconds), "--timeout", str(args.timeout)]
        started = time.monotonic()
        print(f"fuzz: {target} for {args.seconds} s ...", flush=True)
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", env=os.environ.copy()
        )
        took = time.monotonic() - started
        log = result.stdout + result.stderr
        (REPORTS / f"{target}.log").write_text(log)
        numbers = summarise(log)
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        if result.returncode != 0:
            failed.append(target)
            print(log[-4000:], file=sys.stderr)
        rows.append((target, numbers, took, status))
    print()
    head = f"{'target':<9} {'execs':>9} {'exec/s':>7} {'seeds cov/ft':>13} {'cov/ft':>11}"
    print(f"{head}   s  status")
    for target, n, took, status in rows:
        seeds = f"{n['seed_cov']}/{n['seed_ft']}"
        final = f"{n['cov']}/{n['ft']}"
        print(
            f"{target:<9} {n['execs']!s:>9} {n['exec_s']!s:>7} {seeds:>13} {final:>11}"
            f" {took:3.0f}  {status}"
        )
    print(f"logs and any crash inputs: {REPORTS}")
    return 1 if failed else 0


def main() -> int:
    inner = os.environ.get(_INNER)
    if inner is not None:  # started by libFuzzer: its flags, untouched
        run_target(inner, sys.argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", choices=sorted(TARGETS))
    parser.add_argument("--all", action="store_true", help="every target, with a summary")
    parser.add_argument("--targets", nargs="*", help="with --all: only these")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, help="a number of executions instead of --seconds")
    parser.add_argument("--timeout", type=int, default=10, help="seconds an input may take")
    parser.add_argument("--corpus-only", action="store_true", help="run each seed once")
    parser.add_argument("--merge", action="store_true", help="add new coverage to the seeds")
    parser.add_argument("inputs", nargs="*", help="files to replay instead of fuzzing")
    args = parser.parse_args()
    if args.all:
        return run_all(args)
    if args.target is None:
        parser.error("give --target NAME or --all")
    run_target(args.target, _libfuzzer_args(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
