"""The package as users get it: build, check, install the wheel elsewhere, run it.

``python -m build`` makes the sdist and then the wheel from it (so the sdist
is proven to build); ``twine check`` reads both as PyPI would. The wheel is
then installed with its ``relay-redis`` extra into a fresh virtual
environment in a temporary directory outside the checkout, and used from
there: ``import wsloop`` (from that environment, not from ``src/``),
``py.typed`` present, ``wsloop --version`` and ``wsloop demo``. pip resolves
the dependencies from whatever index it is configured with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import wsloop

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip(
    "build", reason="the package group is not installed (pip install --group package)"
)
pytest.importorskip("twine", reason="the package group is not installed")

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    (sdist,) = out.glob("wsloop-*.tar.gz")
    (wheel,) = out.glob("wsloop-*-py3-none-any.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    done = _run(sys.executable, "-m", "twine", "check", "--strict", *dist.values(), cwd=ROOT)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_sdist_has_what_it_needs_and_nothing_else(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    for needed in [
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "src/wsloop/__init__.py",
        "src/wsloop/py.typed",
        "src/wsloop/relay/__init__.py",
    ]:
        assert needed in names, needed
    unwanted = [
        name
        for name in names
        if any(
            part
            in ("node_modules", ".venv", ".venv-bench", "site", "reports", "__pycache__", ".git")
            for part in name.split("/")
        )
    ]
    assert not unwanted, unwanted[:10]


def test_wheel_contents(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(info).decode()
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
    sources = {
        "wsloop/" + str(p.relative_to(ROOT / "src" / "wsloop"))
        for p in (ROOT / "src" / "wsloop").rglob("*.py")
    }
    assert sources - names == set(), "sources missing from the wheel"
    assert "wsloop/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "docs/"))]
    assert f"Version: {wsloop.__version__}" in metadata
    assert "Provides-Extra: relay-redis" in metadata
    assert "License-Expression: MIT" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE"
    assert "wsloop = wsloop.cli:main" in entry_points


def test_the_wheel_works_in_a_fresh_venv(dist: dict[str, Path], tmp_path: Path) -> None:
    # tmp_path is outside the checkout: nothing there can import src/wsloop.
    assert ROOT not in tmp_path.parents
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python, cli = venv / "bin" / "python", venv / "bin" / "wsloop"
    _run(python, "-m", "pip", "install", "--quiet", f"{dist['wheel']}[relay-redis]", cwd=tmp_path)

    probe = (
        "import importlib.resources, pathlib, redis, wsloop, wsloop.relay, wsloop.testing\n"
        "print(pathlib.Path(wsloop.__file__).resolve())\n"
        "print(importlib.resources.files('wsloop').joinpath('py.typed').is_file())\n"
        "print(wsloop.__version__)\n"
    )
    where, typed, version = _run(python, "-c", probe, cwd=tmp_path).stdout.split()
    assert Path(where).is_relative_to(venv), where
    assert typed == "True"
    assert version == wsloop.__version__

    assert _run(cli, "--version", cwd=tmp_path).stdout.strip() == f"wsloop {wsloop.__version__}"
    demo = _run(cli, "demo", cwd=tmp_path)
    assert "both connections closed cleanly" in demo.stdout, demo.stdout
