"""The documentation site: a strict MkDocs build, and every public name documented.

``mkdocs build --strict`` fails on a broken link or anchor, a page left out
of the navigation, or a mkdocstrings reference that does not resolve. Then
each name in ``__all__`` of ``wsloop``, ``wsloop.relay`` and
``wsloop.testing`` must have a docstring (read with griffe, as the site
does) and an entry on its reference page.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"wsloop": "wsloop", "wsloop.relay": "relay", "wsloop.testing": "testing"}

pytest.importorskip("mkdocs", reason="the docs group is not installed (pip install --group docs)")
griffe = pytest.importorskip("griffe")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_strict_build_has_the_guides_and_the_reference(site: Path) -> None:
    for page in ["index", "loops", "asyncio", "relay", "cli", "examples/index"]:
        assert (site / f"{page}.html").is_file(), page
    for page in MODULES.values():
        assert (site / "reference" / f"{page}.html").is_file(), page
    assert not (site / "hooks.py").exists()


@pytest.mark.parametrize("module", list(MODULES))
def test_every_public_name_is_documented(site: Path, module: str) -> None:
    names = importlib.import_module(module).__all__
    package = griffe.load(module, search_paths=[str(ROOT / "src")])
    undocumented = [
        name
        for name in names
        if package[name].docstring is None or not package[name].docstring.value.strip()
    ]
    assert not undocumented, f"{module}: no docstring for {undocumented}"

    html = (site / "reference" / f"{MODULES[module]}.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', html))
    missing = [name for name in names if f"{module}.{name}" not in ids]
    assert not missing, f"{module}: not on the reference page: {missing}"
    # And nothing else at the top level: private helpers and imported names stay out.
    prefix = f"{module}."
    top = {i.removeprefix(prefix) for i in ids if i.startswith(prefix)}
    extra = sorted(name for name in top if "." not in name and name not in names)
    assert not extra, f"{module}: on the page but not in __all__: {extra}"
    # The Sphinx roles of the docstrings became code and links (docs/hooks.py).
    assert not re.findall(r":(?:class|attr|meth|func|mod|exc):<code>", html)


def test_websocket_reference_lists_the_triggers(site: Path) -> None:
    html = (site / "reference" / "wsloop.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', html))
    triggers = ["on_opened", "on_closed", "on_error", "on_text_message", "on_binary_message"]
    missing = [t for t in triggers if f"wsloop.WebSocket.{t}" not in ids]
    assert not missing, missing
