"""Tests for :mod:`wsloop.events`."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

import wsloop.events
from wsloop import BinaryMessage, Closed, Error, Event, Opened, ProtocolError, TextMessage
from wsloop.events import handler_name

EXAMPLES = [
    Opened("chat", ("permessage-deflate",), {"Upgrade": "websocket"}),
    TextMessage("hello"),
    BinaryMessage(b"\x00\x01"),
    Error("protocol error", ProtocolError("protocol error")),
    Closed(4321, "game over", True),
]
CLASSES = [Opened, TextMessage, BinaryMessage, Error, Closed]
"""The five events of the Construct plugin; the Event union may hold more."""

ALL_CLASSES = list(typing.get_args(Event))


def test_event_alias_holds_the_five_plugin_events() -> None:
    assert set(CLASSES) <= set(ALL_CLASSES)


def test_every_event_class_is_exported_by_the_module() -> None:
    for cls in ALL_CLASSES:
        assert cls.__name__ in wsloop.events.__all__
        assert getattr(wsloop.events, cls.__name__) is cls


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_every_event_class_is_a_frozen_slotted_final_dataclass(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in cls.__dict__
    assert getattr(cls, "__final__", False) is True


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_frozen(event: object) -> None:
    field = dataclasses.fields(event)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, None)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_slots(event: object) -> None:
    assert "__slots__" in type(event).__dict__
    assert not hasattr(event, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        event.extra = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (Opened, "on_opened"),
        (TextMessage, "on_text_message"),
        (BinaryMessage, "on_binary_message"),
        (Error, "on_error"),
        (Closed, "on_closed"),
    ],
)
def test_handler_name(cls: type, expected: str) -> None:
    assert handler_name(cls) == expected


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_handler_name_follows_the_rule(cls: type) -> None:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    assert handler_name(cls) == "on_" + snake


def test_handler_name_of_something_else() -> None:
    with pytest.raises(KeyError):
        handler_name(int)  # type: ignore[arg-type]


def test_defaults() -> None:
    opened = Opened()
    assert (opened.subprotocol, opened.extensions, dict(opened.headers)) == (None, (), {})
    assert Closed(1006) == Closed(1006, "", False)


def test_default_headers_are_not_shared() -> None:
    assert Opened().headers is not Opened().headers


def test_equality() -> None:
    assert TextMessage("a") == TextMessage("a")
    assert TextMessage("a") != TextMessage("b")
    assert BinaryMessage(b"a") != TextMessage("a")
    assert Closed(1000, "", True) != Closed(1000, "", False)


def test_hashable_when_fields_are() -> None:
    assert len({TextMessage("a"), TextMessage("a"), Closed(1000)}) == 2


def test_match_by_position_and_keyword() -> None:
    def describe(event: Event) -> str:
        match event:
            case TextMessage(text):
                return f"text {text}"
            case Closed(code=code, reason=reason):
                return f"closed {code} {reason}"
            case _:
                return "other"

    assert describe(TextMessage("hi")) == "text hi"
    assert describe(Closed(4321, "game over")) == "closed 4321 game over"
    assert describe(BinaryMessage(b"")) == "other"


def test_field_names_match_the_construct_expressions() -> None:
    names = {cls.__name__: [f.name for f in dataclasses.fields(cls)] for cls in CLASSES}
    assert names == {
        "Opened": ["subprotocol", "extensions", "headers"],
        "TextMessage": ["text"],
        "BinaryMessage": ["data"],
        "Error": ["message", "exception"],
        "Closed": ["code", "reason", "was_clean"],
    }


def test_module_all() -> None:
    assert {
        "BinaryMessage",
        "Closed",
        "Error",
        "Event",
        "Opened",
        "TextMessage",
        "handler_name",
    } <= set(wsloop.events.__all__)
