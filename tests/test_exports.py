"""Guards on the public API: what ``wsloop`` exports and what its signatures mention."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import wsloop

PUBLIC_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(wsloop.__path__, "wsloop.")
    if not any(part.startswith("_") for part in info.name.split("."))
)

# Names of the wrapped engine's types, in case one is imported under its own name.
ENGINE_NAMES = re.compile(
    r"\b(websockets|ClientProtocol|ServerProtocol|Frame|Opcode|Request|Response|Headers"
    r"|Subprotocol|Origin|ExtensionName|Close|CloseCode|WebSocketURI)\b"
)


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then the rest."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_public_modules_were_found() -> None:
    assert {"wsloop.events", "wsloop.exceptions", "wsloop.sansio"} <= set(PUBLIC_MODULES)
    assert "wsloop._engine" not in PUBLIC_MODULES


def test_all_names_exist() -> None:
    missing = [name for name in wsloop.__all__ if not hasattr(wsloop, name)]
    assert missing == []


def test_all_is_sorted_without_duplicates() -> None:
    assert wsloop.__all__ == sorted(wsloop.__all__, key=isort_key)
    assert len(set(wsloop.__all__)) == len(wsloop.__all__)


@pytest.mark.parametrize(
    "name",
    [
        "WebSocket",
        "Room",
        "Member",
        "Session",
        "State",
        "BinaryData",
        "Opened",
        "TextMessage",
        "BinaryMessage",
        "Error",
        "Closed",
        "WebSocketError",
        "InvalidURI",
        "parse_url",
        "is_supported",
        "__version__",
    ],
)
def test_promised_names_are_exported(name: str) -> None:
    assert name in wsloop.__all__


@pytest.mark.parametrize("module_name", [m for m in PUBLIC_MODULES if m != "wsloop.__main__"])
def test_module_all_entries_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module_name", ["wsloop.events", "wsloop.exceptions", "wsloop.sansio"])
def test_public_names_of_core_modules_are_reexported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        if name[0].isupper() and not name.isupper():
            assert getattr(wsloop, name) is getattr(module, name), name


def test_exported_classes_and_functions_live_in_wsloop() -> None:
    checked = 0
    for name in wsloop.__all__:
        obj = getattr(wsloop, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__.startswith("wsloop."), (name, obj.__module__)
            checked += 1
    assert checked > 20


def annotations_of(cls: type) -> dict[str, str]:
    """Every annotation on the public methods and properties of ``cls``, as strings."""
    found: dict[str, str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name != "__init__":
            continue
        functions = []
        if isinstance(member, property):
            functions = [f for f in (member.fget, member.fset) if f is not None]
        elif inspect.isfunction(member):
            functions = [member]
        for function in functions:
            for arg, annotation in function.__annotations__.items():
                text = annotation if isinstance(annotation, str) else repr(annotation)
                found[f"{name}.{arg}"] = text
    return found


@pytest.mark.parametrize("cls", [wsloop.WebSocket, wsloop.Session])
def test_no_engine_type_in_public_signatures(cls: type) -> None:
    annotations = annotations_of(cls)
    assert len(annotations) > 10  # the inspection found the methods
    leaks = {k: v for k, v in annotations.items() if ENGINE_NAMES.search(v)}
    assert leaks == {}


@pytest.mark.parametrize(
    "cls", [wsloop.Opened, wsloop.TextMessage, wsloop.BinaryMessage, wsloop.Error, wsloop.Closed]
)
def test_no_engine_type_in_event_fields(cls: type) -> None:
    for annotation in cls.__annotations__.values():
        assert not ENGINE_NAMES.search(str(annotation))


def test_engine_is_imported_only_by_the_engine_module() -> None:
    # The client stack only: the relay is a server and may use websockets' own.
    for info in pkgutil.walk_packages(wsloop.__path__, "wsloop."):
        if info.name in {"wsloop._engine", "wsloop.__main__"}:
            continue
        if info.name.startswith("wsloop.relay"):
            continue
        module = importlib.import_module(info.name)
        source = inspect.getsource(module)
        assert not re.search(r"^\s*(from|import) websockets\b", source, re.M), info.name
