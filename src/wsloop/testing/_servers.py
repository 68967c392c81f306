"""In-process servers and helpers for tests that drive WebSocket objects."""

from __future__ import annotations

import builtins
import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..relay import RelayThread, serve

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .._client import WebSocket
    from ..events import Event


# In-process servers.


@contextlib.contextmanager
def serve_relay(**options: Any) -> Iterator[RelayThread]:
    """Run a relay on a free port of ``127.0.0.1`` for the ``with`` block.

    Takes the options of :class:`wsloop.relay.Relay` (``protocols``,
    ``max_size``...). Yields a :class:`~wsloop.relay.RelayThread`: use
    ``.url`` plus a room path, ``.port``, ``.stats``. On exit every client
    still connected is closed with 1001.
    """
    options.setdefault("close_timeout", 2.0)
    relay = serve(**options)
    try:
        yield relay
    finally:
        relay.stop()


@contextlib.contextmanager
def serve_echo(**options: Any) -> Iterator[RelayThread]:
    """Run an echo server (every message goes back to its sender) for the block.

    Same options and result as :func:`serve_relay`.
    """
    with serve_relay(echo=True, **options) as server:
        yield server


# Helpers for tests that drive WebSocket objects.


def record(ws: WebSocket) -> list[Event]:
    """Record every event of ``ws`` into the list returned, in the order fired.

    Handlers already set keep working: each is called after the event is
    recorded. Set handlers *before* calling this.
    """
    events: list[Event] = []
    for name in ("on_opened", "on_text_message", "on_binary_message", "on_error", "on_closed"):
        setattr(ws, name, _recorder(events, getattr(ws, name)))
    return events


def _recorder(events: list[Event], then: Callable[[Any], object] | None) -> Callable[[Any], None]:
    def handler(event: Any) -> None:
        events.append(event)
        if then is not None:
            then(event)

    return handler


def poll_until(
    condition: Callable[[], object], *sockets: WebSocket, timeout: float = 10.0
) -> None:
    """Poll every socket given, like a game loop, until ``condition()`` is true.

    Raises:
        TimeoutError: ``condition()`` still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise builtins.TimeoutError(f"condition not met within {timeout:g} s")
        for ws in sockets:
            ws.poll()
        if sockets:
            sockets[-1].poll(0.005)
        else:
            time.sleep(0.005)
