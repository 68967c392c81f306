"""TLS contexts for ``wss://``, built once per set of options and never on the caller's thread.

Building an :class:`ssl.SSLContext` that trusts the system's CA store reads
and parses every certificate in it: tens of milliseconds, a dropped frame in
a game loop if it happened inside ``poll()``, a stalled event loop if it
happened in a callback. So the drivers never build one where they run.

Theory of operation
-------------------
:meth:`ContextCache.get` returns a :class:`concurrent.futures.Future` at
once, from a cache keyed by the TLS options (``cafile``, ``certfile``,
``keyfile``, ``insecure``) and by the size and modification time of the files
they name, so that a certificate replaced on disk is loaded again. A miss
starts one daemon thread that builds the context
(:func:`~wsloop.drivers._common.ssl_context`) and completes the future; the
next connects with the same options get the same future, done, and the same
context object.

The poll driver starts the build in ``connect()`` and looks at ``done()``
from ``poll()`` (never waiting past its time slice); the asyncio driver
awaits it through :func:`asyncio.wrap_future`. A build that fails (a CA file
that is missing or not PEM) completes the future with the
:class:`~wsloop.exceptions.TLSError` that says so, for the driver to report
as On error then On closed; it is dropped from the cache, so that the next
connect tries again. Nothing is raised on the building thread.

A context passed by the user (the ``ssl`` option) is used as it is, with no
thread and no cache.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ._common import ssl_context

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from .base import Config

__all__ = ["CONTEXTS", "ContextCache"]

_Stamp = tuple[int, int] | None
_Key = tuple[str | None, str | None, str | None, bool, tuple[_Stamp, ...]]

_MAX_ENTRIES = 16
"""Option sets remembered; the least recently used is forgotten past this."""


def _stamp(path: str | None) -> _Stamp:
    """Size and modification time of ``path`` (``None``: no file, or none there)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _key(config: Config) -> _Key:
    files = (config.cafile, config.certfile, config.keyfile)
    return (*files, config.insecure, tuple(_stamp(f) for f in files))


class ContextCache:
    """Futures of TLS contexts, one per set of TLS options.

    Args:
        build: makes the context from the options, on a helper thread. It
            may raise (a :class:`~wsloop.exceptions.TLSError` for a file that
            cannot be loaded); the future then holds the exception.
    """

    def __init__(self, build: Callable[[Config], ssl.SSLContext] = ssl_context) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._futures: OrderedDict[_Key, Future[ssl.SSLContext]] = OrderedDict()

    def get(self, config: Config) -> Future[ssl.SSLContext]:
        """The context for ``config``'s TLS options: done, or being built. Never blocks."""
        if config.ssl is not None:
            ready: Future[ssl.SSLContext] = Future()
            ready.set_result(config.ssl)
            return ready
        key = _key(config)
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                self._futures.move_to_end(key)
                return future
            future = Future()
            # Running from the start: cancelling a waiter (asyncio.wrap_future
            # cancels what it wraps) cannot cancel the build for everyone.
            future.set_running_or_notify_cancel()
            self._futures[key] = future
            while len(self._futures) > _MAX_ENTRIES:
                self._futures.popitem(last=False)
        thread = threading.Thread(
            target=self._run, args=(config, key, future), name="wsloop-tls", daemon=True
        )
        thread.start()
        return future

    def clear(self) -> None:
        """Forget every context; the next connects build new ones."""
        with self._lock:
            self._futures.clear()

    def _run(self, config: Config, key: _Key, future: Future[ssl.SSLContext]) -> None:
        try:
            ctx = self._build(config)
        except Exception as exc:  # reported by the driver that waits for it
            with self._lock:
                if self._futures.get(key) is future:
                    del self._futures[key]
            future.set_exception(exc)
        else:
            future.set_result(ctx)


CONTEXTS = ContextCache()
"""The cache every driver uses, shared by all the connections of the process."""
