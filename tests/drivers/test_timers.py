"""The connection's deadlines (drivers/_timers.py), in memory: every expiry.

The poll and asyncio drivers keep the clock and act on what
:class:`Timers.tick` returns; tests/drivers/test_keepalive.py and the close
tests check them against real servers. Here a real :class:`Session` wired to
an in-memory websockets server, and times passed in by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from sansio_helpers import PING, Pair, close_payload, frame
from wsloop import Closed, Error, State, TimeoutError
from wsloop.drivers._attempt import Phase
from wsloop.drivers._timers import Due, Timers
from wsloop.drivers.base import Config


def timers(**options: Any) -> Timers:
    return Timers(Config(**options))


def opened(t: Timers, now: float, **options: Any) -> Pair:
    """A pair through its opening handshake, the timers following it from ``now``."""
    pair = Pair(**options)
    t.begin(now)
    pair.open()
    t.advance(pair.session, now)
    return pair


def test_connect_deadline_fails_naming_the_step() -> None:
    t = timers(connect_timeout=2.0)
    pair = Pair()
    t.begin(100.0)
    assert t.deadline == 102.0
    t.advance(pair.session, 101.0)  # still connecting: nothing moves
    assert t.tick(pair.session, Phase.TLS, 101.9) is None
    assert t.tick(pair.session, Phase.TLS, 102.0) is Due.FAILED
    assert pair.session.state is State.CLOSED
    error, closed = pair.events()
    assert isinstance(error, Error) and isinstance(error.exception, TimeoutError)
    assert error.message == "connect (TLS handshake) timed out after 2 s"
    assert isinstance(closed, Closed) and closed.code == 1006
    assert t.deadline is None


def test_opening_ends_the_connect_deadline_and_starts_the_keepalive() -> None:
    t = timers(connect_timeout=2.0, ping_interval=5.0, ping_timeout=3.0)
    pair = opened(t, 100.0)
    assert pair.session.state is State.OPEN
    assert t.deadline == 105.0  # the first ping, not the connect deadline
    assert t.tick(pair.session, Phase.WS, 102.5) is None


@pytest.mark.parametrize("connect_timeout", [2.0, None])
def test_keepalive_pings_then_times_out(connect_timeout: float | None) -> None:
    t = timers(connect_timeout=connect_timeout, ping_interval=5.0, ping_timeout=3.0)
    pair = opened(t, 100.0)
    assert t.tick(pair.session, Phase.WS, 105.0) is Due.PING
    (ping,) = pair.frames_to_server()
    assert ping.opcode == PING and len(ping.data) == 4
    assert t.deadline == 108.0
    assert t.tick(pair.session, Phase.WS, 108.0) is Due.FAILED
    error, closed = pair.events()
    assert isinstance(error, Error)
    assert error.message == (
        "keepalive timeout: no pong within 3 s (the server or the network stopped answering)"
    )
    assert isinstance(closed, Closed) and closed.code == 1006
    assert t.deadline is None


def test_pong_measures_latency_and_schedules_the_next_ping() -> None:
    t = timers(ping_interval=5.0, ping_timeout=3.0)
    pair = opened(t, 100.0)
    assert t.tick(pair.session, Phase.WS, 105.0) is Due.PING
    (ping,) = pair.frames_to_server()
    pair.server.send_pong(ping.data)
    pair.server_to_client()
    t.pongs(pair.session.pongs_received, 105.25)
    assert t.keepalive.latency == pytest.approx(0.25)
    assert t.deadline == pytest.approx(110.25)


def test_no_keepalive_and_no_timeouts_means_no_deadline() -> None:
    t = timers(connect_timeout=None, close_timeout=None, ping_interval=None)
    pair = Pair()
    t.begin(0.0)
    assert t.deadline is None
    pair.open()
    t.advance(pair.session, 1.0)
    pair.session.send_close(1000, "")
    t.advance(pair.session, 2.0)
    assert t.deadline is None
    assert t.tick(pair.session, Phase.WS, 1e9) is None


def test_close_deadline_starts_when_the_client_closes_and_times_out() -> None:
    t = timers(close_timeout=1.5, ping_interval=5.0)
    pair = opened(t, 100.0)
    pair.session.send_close(1000, "bye")
    t.advance(pair.session, 101.0)
    assert t.deadline == 102.5  # before the ping at 105, which no longer runs
    pair.client_to_server()  # the server never answers
    assert t.tick(pair.session, Phase.WS, 102.5) is Due.FAILED
    error, closed = pair.events()
    assert isinstance(error, Error) and error.message == "closing handshake timed out after 1.5 s"
    assert isinstance(closed, Closed) and closed.code == 1006 and not closed.was_clean


def test_close_deadline_after_a_complete_handshake_closes_cleanly() -> None:
    # The server sent its close, the client answered, and TCP stays open:
    # RFC 6455 7.1.1 lets the client end it; no error.
    t = timers(close_timeout=1.5)
    pair = opened(t, 100.0)
    pair.feed(frame(0x8, close_payload(1001, b"going away")))
    t.advance(pair.session, 100.5)
    assert t.deadline == 102.0
    assert pair.session.close_handshake_done
    assert t.tick(pair.session, Phase.WS, 102.0) is Due.CLOSED
    (closed,) = pair.events()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.reason, closed.was_clean) == (1001, "going away", True)


def test_a_new_attempt_starts_afresh() -> None:
    t = timers(connect_timeout=2.0, ping_interval=5.0)
    first = opened(t, 100.0)
    first.session.abort(None)
    first.events()
    t.stop()
    assert t.deadline is None
    second = Pair()
    t.begin(200.0)
    assert t.deadline == 202.0
    second.open()
    t.advance(second.session, 201.0)
    assert t.deadline == 206.0  # the keepalive runs again, once per attempt


def test_a_closed_session_has_nothing_due() -> None:
    t = timers(connect_timeout=2.0)
    pair = Pair()
    t.begin(0.0)
    pair.session.abort(None)
    assert t.tick(pair.session, Phase.TCP, 10.0) is None
