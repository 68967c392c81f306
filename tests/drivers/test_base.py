"""The driver contracts (``drivers/base.py``): who implements which, and what they require."""

from __future__ import annotations

import typing

import pytest

from wsloop import AsyncWebSocket, WebSocket
from wsloop.drivers import AsyncBaseDriver, BaseDriver, Config
from wsloop.drivers.asyncio import AsyncioDriver
from wsloop.drivers.browser import BrowserDriver
from wsloop.drivers.poll import PollDriver
from wsloop.drivers.thread import ThreadDriver


@pytest.mark.parametrize(
    ("cls", "sync", "async_"),
    [
        (PollDriver, True, False),
        (ThreadDriver, True, False),
        (AsyncioDriver, False, True),
        (BrowserDriver, True, True),
    ],
)
def test_which_driver_implements_which_contract(cls: type, sync: bool, async_: bool) -> None:
    assert issubclass(cls, BaseDriver) is sync
    assert issubclass(cls, AsyncBaseDriver) is async_
    assert not getattr(cls, "__abstractmethods__", frozenset())


def test_both_async_drivers_can_be_made_as_the_facade_makes_them() -> None:
    for cls in (AsyncioDriver, BrowserDriver):
        driver = cls(Config(), lambda events: None, lambda: None)
        assert isinstance(driver, AsyncBaseDriver)
        assert driver.state is None
        assert driver.phase == "idle"
        assert driver.buffered_amount == 0
        assert not driver.writing_paused
        assert not driver.reading_paused
        assert driver.fileno() == -1


def test_an_async_driver_must_implement_the_whole_contract() -> None:
    class Half(AsyncBaseDriver):
        def send_text(self, text: str) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]
    assert {"connect", "close", "pause_reading", "resume_reading", "writing_paused"} <= set(
        AsyncBaseDriver.__abstractmethods__
    )


def test_the_facades_type_their_drivers_by_contract() -> None:
    def driver_type(facade: type) -> object:
        return typing.get_type_hints(facade.driver.fget)["return"]

    assert driver_type(WebSocket) is BaseDriver
    assert driver_type(AsyncWebSocket) is AsyncBaseDriver
