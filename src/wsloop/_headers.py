"""Checking the ``headers`` option, without the engine (the browser imports it too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["header_items"]


def header_items(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    """Normalize the ``headers`` option into a list of pairs, validating them."""
    if headers is None:
        return []
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        if any(c in name for c in "\r\n:") or not name.strip():
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} has a line break in its value")
    return items
