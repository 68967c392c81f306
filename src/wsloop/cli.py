"""The ``wsloop`` command line."""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``wsloop`` command; return the exit status."""
    parser = argparse.ArgumentParser(prog="wsloop", description=__doc__)
    parser.parse_args(argv)
    return 0
