"""Misusing a relay or its thread raises :class:`~wsloop.relay.RelayStateError`.

It is also a :class:`RuntimeError` (what these raised before) and a
:class:`~wsloop.relay.RelayError`.
"""

from __future__ import annotations

import asyncio

import pytest

from wsloop.relay import Relay, RelayError, RelayStateError, RelayThread, serve


def test_the_state_error_is_a_relay_error_and_a_runtime_error():
    assert issubclass(RelayStateError, RelayError)
    assert issubclass(RelayStateError, RuntimeError)


def test_starting_a_relay_twice():
    async def main() -> None:
        relay = Relay(port=0)
        await relay.start()
        try:
            with pytest.raises(RelayStateError, match=r"^this relay was already started$"):
                await relay.start()
        finally:
            await relay.stop()

    asyncio.run(main())


def test_waiting_for_a_relay_never_started():
    async def main() -> None:
        with pytest.raises(RelayStateError, match=r"^the relay was not started$"):
            await Relay(port=0).wait_closed()

    asyncio.run(main())


def test_starting_a_relay_thread_twice():
    with serve() as running:
        with pytest.raises(RelayStateError, match=r"^this relay thread was already started$"):
            running.start()
        assert running.call(lambda: running.relay.healthy)  # still serving


def test_calling_into_a_relay_thread_not_started():
    thread = RelayThread(Relay(port=0))
    with pytest.raises(RelayStateError, match=r"^the relay is not running$"):
        thread.call(lambda: None)


def test_old_code_catching_runtime_error_still_catches_it():
    with pytest.raises(RuntimeError):
        RelayThread(Relay(port=0)).call(lambda: None)
