"""The relay's exception, in a module of its own so that every relay module can import it."""

from __future__ import annotations

__all__ = ["RelayError"]


class RelayError(Exception):
    """The relay could not start, or lost something it cannot run without (Redis)."""
