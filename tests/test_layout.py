"""The import rules of the layout comment in ``wsloop/__init__.py``.

Imports are read from the source with :mod:`ast`, every one of them: at
module level, under ``if TYPE_CHECKING:`` and inside functions, so that a
rule cannot be dodged by importing late. Relative imports are resolved to
absolute names.

- The Sans-I/O core (``sansio.py``, ``_engine.py``, ``_sansio/``), and every
  wsloop module it imports, directly or not, imports no I/O module (socket,
  ssl, asyncio, threading, select, selectors), no clock (time: deadlines are
  numbers passed in) and nothing of ``wsloop.drivers``.
- The modules of ``wsloop.relay`` import each other without a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsloop

SRC = Path(wsloop.__file__).parent
"""The wsloop package directory (src/wsloop)."""

CORE = ["wsloop.sansio", "wsloop._engine", "wsloop._sansio"]
"""The Sans-I/O core: these modules and packages, and what they import."""

IO_MODULES = frozenset({"socket", "ssl", "asyncio", "threading", "select", "selectors", "time"})
"""Sockets, TLS, loops, threads, readiness, the clock: the drivers' business."""
FORBIDDEN_PACKAGES = ("wsloop.drivers",)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def imports_of(name: str, source: str, *, package: bool, known: set[str]) -> set[str]:
    """Every module ``source`` (the module ``name``) imports, as absolute names.

    ``from X import y`` counts as an import of ``X.y`` when that is one of the
    ``known`` modules (a submodule), else of ``X``.
    """
    base = name.split(".") if package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {
        name: imports_of(name, path.read_text(), package=is_package(path), known=known)
        for name, path in modules.items()
    }


def core_closure(graph: dict[str, set[str]]) -> set[str]:
    """The core modules and every wsloop module they import, directly or not."""
    todo = [m for m in graph if any(m == c or m.startswith(c + ".") for c in CORE)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in graph[name] if m in graph)
    return seen


def forbidden(target: str) -> bool:
    if target.split(".")[0] in IO_MODULES:
        return True
    return any(target == p or target.startswith(p + ".") for p in FORBIDDEN_PACKAGES)


def violations(name: str, imported: set[str]) -> list[str]:
    return [f"{name} imports {target}" for target in sorted(imported) if forbidden(target)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle is not None:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


# The checks themselves can fail.


def test_relative_imports_are_resolved() -> None:
    known = {"wsloop.drivers", "wsloop.drivers.poll", "wsloop._sansio.proxy"}
    source = "from ..drivers import poll\nfrom . import proxy\nfrom ...x import y\n"
    found = imports_of("wsloop._sansio.x", source, package=False, known=known)
    assert found == {"wsloop.drivers.poll", "wsloop._sansio.proxy", "x"}
    found = imports_of("wsloop._sansio", "from .proxy import P", package=True, known=known)
    assert found == {"wsloop._sansio.proxy"}


@pytest.mark.parametrize(
    "source",
    [
        "import socket",
        "import ssl as _ssl",
        "from asyncio import Event",
        "import threading",
        "def later():\n    import select",
        "import selectors",
        "from time import monotonic",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..drivers.poll import X",
        "from .. import drivers",
    ],
)
def test_a_forbidden_import_is_caught(source: str) -> None:
    known = {"wsloop.drivers", "wsloop.drivers.poll"}
    imported = imports_of("wsloop._sansio.x", source, package=False, known=known)
    assert violations("wsloop._sansio.x", imported) != []


def test_allowed_imports_pass() -> None:
    source = "import os\nimport random\nfrom ..exceptions import ProxyError\nimport socketserver"
    imported = imports_of("wsloop._sansio.x", source, package=False, known=set())
    assert violations("wsloop._sansio.x", imported) == []


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


# The rules.


def test_the_core_is_found() -> None:
    closure = core_closure(import_graph())
    assert {"wsloop.sansio", "wsloop._engine", "wsloop._sansio.proxy"} <= closure
    assert {"wsloop._sansio.keepalive", "wsloop._sansio.reconnect", "wsloop.events"} <= closure


def test_the_sans_io_core_imports_no_io_and_no_driver() -> None:
    graph = import_graph()
    bad = [line for name in sorted(core_closure(graph)) for line in violations(name, graph[name])]
    assert bad == []


def test_relay_modules_form_no_import_cycle() -> None:
    graph = import_graph()
    relay = {
        name: {m for m in imported if m.startswith("wsloop.relay")}
        for name, imported in graph.items()
        if name.startswith("wsloop.relay")
    }
    assert len(relay) > 10
    # Importing a package runs its __init__, but a module of the package
    # importing the package's own __init__ is the only edge not to follow here:
    # none of the relay's modules does so (checked, not assumed).
    assert [n for n, targets in relay.items() if "wsloop.relay" in targets] == []
    assert find_cycle(relay) is None
