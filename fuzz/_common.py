"""What the fuzz targets share: input decoding helpers and the client-event checks.

Why ``fuzz/`` at the repository root and not ``tests/fuzz/``: the targets are
programs that libFuzzer (through atheris) calls in a loop, not pytest tests;
pytest must not collect them, and each needs its own process (libFuzzer owns
the process and exits when it is done). ``tests/test_fuzz_atheris.py`` runs
them from the test suite, each in a subprocess.

A target module defines ``test_one_input(data: bytes) -> None`` (called by
libFuzzer for each input; any exception that escapes it is a finding),
optionally ``setup() -> None`` (called once, after instrumentation, before
fuzzing), and ``INSTRUMENT``, the package prefixes atheris instruments for
coverage. A property that does not hold raises :class:`Finding`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wsloop import Event

__all__ = ["Finding", "check_client_events", "chunks"]


class Finding(AssertionError):
    """A property of a target that does not hold: the fuzzer reports the input."""


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into reads of ``size`` bytes (``size`` 0: one read)."""
    if size <= 0 or size >= len(data):
        return [data] if data else []
    return [data[i : i + size] for i in range(0, len(data), size)]


def check_client_events(
    events: Sequence[Event], max_size: int | None, *, finished: bool = True
) -> None:
    """The ordering contract of :mod:`wsloop.events` and the shape of each event.

    At most one Opened, first; messages only after it and before any Error;
    text is ``str``, binary is ``bytes``, each at most ``max_size`` bytes; at
    most one Error, carrying one of the documented exceptions, before Closed;
    exactly one Closed, last (when ``finished``), clean exactly when there
    was no Error, with a close code in the range RFC 6455 allows.
    """
    from wsloop import BinaryMessage, Closed, Error, Opened, TextMessage, exceptions as exc

    documented = (
        exc.HandshakeError,  # InvalidStatus, NegotiationError
        exc.ProtocolError,  # InvalidUTF8, MessageTooBig
        exc.ConnectionClosedError,
    )
    kinds = [type(e).__name__ for e in events]
    seen_open = seen_error = seen_closed = False
    for index, event in enumerate(events):
        if seen_closed:
            raise Finding(f"an event after Closed: {kinds}")
        if isinstance(event, Opened):
            if index != 0:
                raise Finding(f"Opened is not the first event: {kinds}")
            seen_open = True
        elif isinstance(event, TextMessage | BinaryMessage):
            if not seen_open or seen_error:
                raise Finding(f"a message outside Opened..Error: {kinds}")
            if isinstance(event, TextMessage):
                if type(event.text) is not str:
                    raise Finding(f"TextMessage.text is {type(event.text).__name__}")
                size = len(event.text.encode())
            else:
                if type(event.data) is not bytes:
                    raise Finding(f"BinaryMessage.data is {type(event.data).__name__}")
                size = len(event.data)
            if max_size is not None and size > max_size:
                raise Finding(f"a message of {size} bytes with max_message_size={max_size}")
        elif isinstance(event, Error):
            if seen_error:
                raise Finding(f"more than one Error: {kinds}")
            seen_error = True
            if not isinstance(event.exception, documented):
                raise Finding(f"Error carries {event.exception!r}")
            if not event.message:
                raise Finding("an Error without a message")
            if "internal error" in event.message:
                # _engine._describe_parser_failure: the engine's parser raised
                # something it does not document.
                raise Finding(f"internal error: {event.message}")
        elif isinstance(event, Closed):
            seen_closed = True
            if event.was_clean == seen_error:
                raise Finding(f"was_clean={event.was_clean} with events {kinds}")
            if not (1000 <= event.code <= 4999):
                raise Finding(f"Closed with code {event.code}")
            if type(event.reason) is not str:
                raise Finding(f"Closed.reason is {type(event.reason).__name__}")
        else:
            raise Finding(f"an unknown event {event!r}")
    if finished and not seen_closed:
        raise Finding(f"no Closed at the end: {kinds}")
