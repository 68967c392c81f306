"""The version of wsloop, read by the build (hatch) and by ``wsloop --version``."""

from __future__ import annotations

__version__ = "0.2.0"
"""The installed wsloop's version, as in ``pip show wsloop`` (PEP 440)."""
