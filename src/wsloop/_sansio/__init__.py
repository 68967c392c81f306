"""The Sans-I/O parts of wsloop: bytes, events and deadlines in and out; no sockets, threads or clocks."""

from __future__ import annotations
