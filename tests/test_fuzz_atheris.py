"""The atheris fuzz targets of ``fuzz/``, briefly: every seed, then a few seconds of fuzzing.

Each target runs in a subprocess of its own (libFuzzer owns the process and
exits at the end), through ``fuzz/run.py``: first each seed of
``fuzz/corpus/<target>/`` once, then ``FUZZ_TEST_SECONDS`` (default 4: some
16 s of fuzzing in all, the four tests about 40 s) of coverage-guided
fuzzing from them. A crash (an exception escaping the
target: a property that does not hold) or a hang (an input taking more than
10 s) fails the test with libFuzzer's report, which names the input written
to ``reports/fuzz/``. Longer runs: ``make fuzz``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has wheels for Linux and CPython 3.11 only")

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "fuzz" / "run.py"
SECONDS = int(os.environ.get("FUZZ_TEST_SECONDS", "4"))
TARGETS = ["session", "native", "relay", "rooms"]

if not RUN.exists():  # the sdist carries tests/ but not fuzz/
    pytest.skip("fuzz/ is not here (an sdist)", allow_module_level=True)


def run(target: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), "--target", target, *options],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=90,
        cwd=ROOT,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{(result.stdout + result.stderr)[-6000:]}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_seeds_and_a_short_fuzzing_run_find_nothing(target: str) -> None:
    seeds = list((ROOT / "fuzz" / "corpus" / target).iterdir())
    assert any(p.name.startswith("seed-") for p in seeds), "the hand-made seeds are missing"
    result = run(target, "--seconds", str(SECONDS))
    assert result.returncode == 0, report(result)
    log = result.stdout + result.stderr
    # libFuzzer ran the seeds (INITED) and fuzzed to the end (DONE).
    assert "INITED cov:" in log, report(result)
    assert "DONE   cov:" in log or "Done " in log, report(result)
