"""Reconnection in AsyncWebSocket, against the real flaky server of tests/test_reconnect.py.

The policy itself (backoff, final codes, the outbox's bound) is tested there,
once: AsyncWebSocket uses the same :mod:`wsloop._sansio.reconnect`. Here: what the
async façade adds around it (loop timers, ``await connect()`` through
retries, ``wait_closed()`` until the session ends, ``close()`` and
cancellation between attempts, async ``on_reconnecting``), each test on the
default loop and on uvloop. Every attempt is checked against the ordering
contract.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from async_adapter import Recorded, loop_params, runner
from servers import WAIT, free_port
from test_reconnect import (
    _FlakyServer,
    flaky as flaky,  # the fixture, for the tests below
)
from wsloop import (
    AsyncWebSocket,
    Closed,
    ConnectError,
    InvalidStatus,
    Opened,
    Reconnect,
    Reconnecting,
    TextMessage,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    Run = Callable[[Coroutine[Any, Any, Any]], Any]

FAST = Reconnect(initial_delay=0.05, max_delay=0.2, jitter=0.0)
SLOW = Reconnect(initial_delay=WAIT * 2, max_delay=WAIT * 2, jitter=0.0)
"""A retry that never comes during a test: what happens while it waits."""


@pytest.fixture(params=loop_params())
def run(request: pytest.FixtureRequest) -> Run:
    return runner(request.param)


@pytest.fixture
def record():
    """``record(ws)``: a Recorded whose every attempt is checked at teardown."""
    made: list[Recorded] = []

    def factory(ws: AsyncWebSocket) -> Recorded:
        rec = Recorded(ws)
        made.append(rec)
        return rec

    yield factory
    for rec in made:
        assert rec.ws.is_closed, f"a test left its session open: {rec.kinds()}"
        assert not rec.ws.is_reconnecting
        for attempt in rec.attempts():
            check_attempt(attempt)


def check_attempt(events: list[Any]) -> None:
    """The ordering contract on one attempt (Reconnecting left out)."""
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Closed", kinds
    assert kinds.count("Closed") == 1, kinds
    assert "Opened" not in kinds[1:], kinds
    assert kinds.count("Error") <= 1, kinds
    if "Error" in kinds:
        assert kinds[-2] == "Error", kinds
        assert not events[-1].was_clean, events
    else:
        assert events[-1].was_clean, events


def texts(rec: Recorded) -> list[str]:
    return [e.text for e in rec.of(TextMessage)]


# Retries.


def test_dropped_connection_is_reopened(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=FAST)
        rec = record(ws)
        await ws.connect(flaky.url)
        assert ws.send_text("drop")
        await rec.until(lambda: rec.kinds().count("Opened") == 2, "the second Opened")
        assert rec.kinds() == ["Opened", "Error", "Closed", "Reconnecting", "Opened"]
        reconnecting = rec.events[3]
        assert isinstance(reconnecting, Reconnecting)
        assert reconnecting.attempt == 1
        assert reconnecting.delay == pytest.approx(0.05)
        assert not ws.is_reconnecting
        assert not ws.is_closed
        assert ws.send_text("after")
        await rec.until(lambda: "after" in texts(rec), "the echo")
        await ws.aclose()
        assert rec.kinds()[-1] == "Closed"
        assert ws.close_code == 1000
        assert flaky.connections == 2

    run(main())


def test_conditions_between_two_attempts(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=SLOW)
        rec = record(ws)
        seen: list[tuple[bool, bool, bool]] = []

        def on_closed(event: Closed) -> None:
            rec.events.append(event)
            seen.append((ws.is_closed, ws.is_reconnecting, ws.is_open))

        ws.on_closed = on_closed
        await ws.connect(flaky.url)
        ws.send_text("kick")
        await rec.until(lambda: ws.is_reconnecting, "the retry to be armed")
        # on_closed already saw a session that goes on, with a retry armed.
        assert seen == [(False, True, False)]
        assert (ws.close_code, ws.close_reason) == (4000, "kicked")
        assert not ws.is_closed
        assert not ws.is_open and not ws.is_connecting
        await ws.aclose()

    run(main())


def test_connect_returns_once_a_retry_opens(run: Run, record: Any, flaky: _FlakyServer) -> None:
    """await connect() goes on through failed attempts: it resolves on the first open."""

    async def main() -> None:
        flaky.refuse = 2
        ws = AsyncWebSocket(reconnect=FAST)
        rec = record(ws)
        await ws.connect(flaky.url)
        assert ws.is_open
        assert rec.kinds() == [
            "Error", "Closed", "Reconnecting",  # 503
            "Error", "Closed", "Reconnecting",  # 503
            "Opened",
        ]  # fmt: skip
        assert [e.attempt for e in rec.of(Reconnecting)] == [1, 2]
        assert ws.error_msg  # the last failure's, until a new connect()
        await ws.aclose()

    run(main())


def test_connect_raises_when_the_retries_end(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        flaky.refuse = 10
        ws = AsyncWebSocket(
            reconnect=Reconnect(initial_delay=0.01, max_delay=0.01, jitter=0, max_attempts=2)
        )
        rec = record(ws)
        with pytest.raises(InvalidStatus) as info:
            await ws.connect(flaky.url)
        assert info.value.status == 503
        assert rec.kinds() == [
            "Error", "Closed", "Reconnecting",
            "Error", "Closed", "Reconnecting",
            "Error", "Closed",
        ]  # fmt: skip
        assert ws.is_closed
        assert not ws.is_reconnecting
        await ws.wait_closed()

    run(main())


def test_a_final_error_is_not_retried(run: Run, record: Any) -> None:
    """A refused port is retried; a refused subprotocol cannot get better."""

    async def main() -> None:
        ws = AsyncWebSocket(reconnect=Reconnect(initial_delay=0.01, jitter=0, max_attempts=1))
        rec = record(ws)
        with pytest.raises(ConnectError):
            await ws.connect(f"ws://127.0.0.1:{free_port()}/")
        assert rec.kinds() == ["Error", "Closed", "Reconnecting", "Error", "Closed"]

    run(main())


def test_final_close_code_ends_the_session(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=FAST)
        rec = record(ws)
        await ws.connect(flaky.url)
        ws.send_text("final")
        await ws.wait_closed()
        assert rec.kinds() == ["Opened", "Closed"]
        assert ws.close_code == 1000
        assert ws.is_closed
        assert flaky.connections == 1

    run(main())


def test_wait_closed_waits_through_retries(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=FAST)
        rec = record(ws)
        await ws.connect(flaky.url)
        waiter = asyncio.create_task(ws.wait_closed())
        ws.send_text("drop")
        await rec.until(lambda: rec.kinds().count("Opened") == 2, "the second Opened")
        await asyncio.sleep(0)
        assert not waiter.done()  # a drop that is retried does not end the session
        ws.close()
        async with asyncio.timeout(WAIT):
            await waiter
        assert rec.kinds()[-2:] == ["Opened", "Closed"]

    run(main())


# Ending a session between two attempts.


def test_close_while_waiting_to_retry(run: Run, record: Any, flaky: _FlakyServer) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=SLOW)
        rec = record(ws)
        await ws.connect(flaky.url)
        ws.send_text("kick")
        await rec.until(lambda: ws.is_reconnecting, "the retry to be armed")
        ws.close()
        assert ws.is_closed  # at once: nothing is connected
        assert not ws.is_reconnecting
        async with asyncio.timeout(WAIT / 4):
            await ws.wait_closed()
        assert rec.kinds() == ["Opened", "Closed", "Reconnecting"]
        await asyncio.sleep(0.1)
        assert flaky.connections == 1

    run(main())


def test_cancelling_connect_ends_the_retries(run: Run, record: Any) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=Reconnect(initial_delay=0.02, max_delay=0.02, jitter=0))
        rec = record(ws)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await ws.connect(f"ws://127.0.0.1:{free_port()}/")
        await ws.wait_closed()
        assert ws.is_closed
        assert not ws.is_reconnecting
        count = len(rec.events)
        assert rec.kinds()[-1] in ("Closed", "Reconnecting")
        await asyncio.sleep(0.1)
        assert len(rec.events) == count  # no attempt after the cancellation

    run(main())


def test_connect_from_on_closed_replaces_the_retry(
    run: Run, record: Any, flaky: _FlakyServer
) -> None:
    async def main() -> None:
        other = _FlakyServer()
        try:
            ws = AsyncWebSocket(reconnect=SLOW)
            rec = record(ws)
            moved: list[bool] = []

            async def on_closed(event: Closed) -> None:
                rec.events.append(event)
                if not moved:
                    moved.append(ws.is_reconnecting)
                    await ws.connect(other.url)

            ws.on_closed = on_closed
            await ws.connect(flaky.url)
            ws.send_text("kick")
            await rec.until(lambda: rec.kinds().count("Opened") == 2, "the new connection")
            assert moved == [True]
            assert not ws.is_reconnecting
            assert rec.kinds() == ["Opened", "Closed", "Opened"]  # no Reconnecting
            assert other.connections == 1
            await ws.aclose()
        finally:
            other.stop()

    run(main())


def test_wait_closed_from_on_closed_with_a_retry_pending_is_an_error(
    run: Run, record: Any, flaky: _FlakyServer
) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=SLOW)
        rec = record(ws)

        async def on_closed(event: Closed) -> None:
            rec.events.append(event)
            await ws.wait_closed()

        ws.on_closed = on_closed
        await ws.connect(flaky.url)
        ws.send_text("kick")
        await rec.until(lambda: ws.is_reconnecting, "the retry to be armed")
        with pytest.raises(RuntimeError, match="retry is pending"):
            await ws.drain()  # the next awaited call raises what the handler raised
        ws.close()
        await ws.wait_closed()

    run(main())


# Handlers and the outbox.


def test_async_on_reconnecting_finishes_before_the_retry(
    run: Run, record: Any, flaky: _FlakyServer
) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(reconnect=Reconnect(initial_delay=0.0, max_delay=0.0, jitter=0))
        rec = record(ws)
        order: list[str] = []

        async def on_reconnecting(event: Reconnecting) -> None:
            order.append("reconnecting")
            await asyncio.sleep(0.2)  # longer than the delay
            order.append("reconnecting done")

        ws.on_reconnecting = on_reconnecting
        ws.on_opened = lambda event: order.append("opened")
        await ws.connect(flaky.url)
        ws.send_text("drop")
        await rec.until(lambda: order.count("opened") == 2, "the second Opened")
        assert order == ["opened", "reconnecting", "reconnecting done", "opened"]
        await ws.aclose()

    run(main())


def test_outbox_sends_what_was_queued_in_order_once(
    run: Run, record: Any, flaky: _FlakyServer
) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(
            reconnect=Reconnect(initial_delay=0.3, max_delay=0.3, jitter=0, outbox=3)
        )
        rec = record(ws)
        await ws.connect(flaky.url)
        ws.send_text("drop")
        await rec.until(lambda: ws.is_reconnecting, "the retry to be armed")
        assert ws.send_text("q1")
        assert ws.send_text("q2")
        assert ws.send_binary(b"q3")
        assert not ws.send_text("q4")  # full: refused, with a warning in the log
        await rec.until(lambda: flaky.received.count("q2") == 1, "the queued messages")
        assert ws.send_text("live")
        await rec.until(lambda: "live" in flaky.received, "the live message")
        assert flaky.received == ["drop", "q1", "q2", "bin:q3", "live"]
        await ws.aclose()
        assert not ws.send_text("after the end")  # the session is over: not kept
        assert rec.kinds().count("Opened") == 2

    run(main())


def test_without_reconnect_nothing_is_retried_or_kept(
    run: Run, record: Any, flaky: _FlakyServer
) -> None:
    async def main() -> None:
        ws = AsyncWebSocket()
        rec = record(ws)
        await ws.connect(flaky.url)
        ws.send_text("drop")
        await ws.wait_closed()
        assert not ws.send_text("lost")
        assert not ws.is_reconnecting
        assert rec.kinds() == ["Opened", "Error", "Closed"]
        await asyncio.sleep(0.1)
        assert flaky.connections == 1

    run(main())


def test_reconnect_option_is_checked() -> None:
    with pytest.raises(TypeError, match="reconnect"):
        AsyncWebSocket(reconnect="yes")  # type: ignore[arg-type]
    ws = AsyncWebSocket(reconnect=True)
    assert not ws.is_reconnecting

    @ws.event
    async def on_reconnecting(event: Reconnecting) -> None:
        pass

    assert ws.on_reconnecting is on_reconnecting
    with pytest.raises(TypeError):
        ws.on_reconnecting = "nope"  # type: ignore[assignment]
    assert isinstance(Opened(), Opened)
