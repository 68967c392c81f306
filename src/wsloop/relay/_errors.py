"""The relay's exceptions, in a module of their own so that every relay module can import them."""

from __future__ import annotations

__all__ = ["RelayError", "RelayStateError"]


class RelayError(Exception):
    """The relay could not start, or lost something it cannot run without (Redis)."""


class RelayStateError(RelayError, RuntimeError):
    """The relay, or its thread, was asked for something its state does not allow.

    Starting a :class:`~wsloop.relay.Relay` or a
    :class:`~wsloop.relay.RelayThread` a second time, waiting for a relay
    that was never started, or calling into a thread whose relay is not
    running. A mistake of the calling code, not of the network: it is also a
    :class:`RuntimeError`, what these raised before.
    """
