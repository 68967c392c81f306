"""TLS contexts (``drivers/_tls.py``): one per set of options, never built on the caller's thread.

Each test gives the drivers a cache of its own, whose build function records
the thread it runs on and what it returns, then connects every driver to a
``wss://`` echo server on loopback whose CA only the ``cafile`` option trusts.
"""

from __future__ import annotations

import os
import shutil
import ssl
import threading
from typing import TYPE_CHECKING

import pytest
import trustme

import wsloop
from servers import WAIT, WebsocketsServer, unique_path
from wsloop.drivers._common import ssl_context
from wsloop.drivers._tls import ContextCache
from wsloop.drivers.asyncio import AsyncioDriver
from wsloop.drivers.base import Config
from wsloop.drivers.poll import PollDriver
from wsloop.drivers.thread import ThreadDriver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Client
    from servers import LoopThread

    MakeClient = Callable[..., Client]


class Builds:
    """A context factory that records where it runs; ``gate`` holds it back."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.contexts: list[ssl.SSLContext] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, config: Config) -> ssl.SSLContext:
        self.threads.append(threading.get_ident())
        self.started.set()
        assert self.gate.wait(WAIT), "the test never let the build finish"
        ctx = ssl_context(config)
        self.contexts.append(ctx)
        return ctx


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    """A fresh cache for every driver class, building through a :class:`Builds`."""
    builds = Builds()
    cache = ContextCache(builds)
    for cls in (PollDriver, ThreadDriver, AsyncioDriver):
        monkeypatch.setattr(cls, "tls_contexts", cache)
    return builds


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tls-contexts") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_server(loop_thread: LoopThread, ca: trustme.CA) -> Iterator[WebsocketsServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    server = WebsocketsServer(loop_thread, ssl_context=ctx)
    yield server
    server.stop()


def open_and_close(client: Client, url: str) -> None:
    client.connect(url)
    client.wait_open()
    client.ws.close()
    assert client.wait_closed().was_clean


def test_second_connect_reuses_the_context(
    make_client: MakeClient, tls_server: WebsocketsServer, ca_file: str, builds: Builds
) -> None:
    client = make_client(cafile=ca_file)
    open_and_close(client, tls_server.url(unique_path()))
    open_and_close(client, tls_server.url(unique_path()))
    other = make_client(cafile=ca_file)  # another WebSocket, the same options
    open_and_close(other, tls_server.url(unique_path()))
    assert len(builds.contexts) == 1
    assert threading.get_ident() not in builds.threads


def test_poll_driver_wraps_with_the_cached_context(
    tls_server: WebsocketsServer, ca_file: str, builds: Builds
) -> None:
    seen: list[ssl.SSLContext] = []
    for _ in range(2):
        ws = wsloop.WebSocket(driver="poll", cafile=ca_file)
        ws.connect(tls_server.url(unique_path()))
        assert ws.wait_open(WAIT)
        sock = ws._driver._sock  # type: ignore[attr-defined]
        assert isinstance(sock, ssl.SSLSocket)
        seen.append(sock.context)
        ws.close()
        assert ws.wait_closed(WAIT)
    assert seen[0] is seen[1] is builds.contexts[0]


def test_connect_goes_on_while_the_context_is_built(
    make_client: MakeClient, tls_server: WebsocketsServer, ca_file: str, builds: Builds
) -> None:
    """The build holds until the test says so: the caller's thread cannot be the one waiting."""
    builds.gate.clear()
    client = make_client(cafile=ca_file)
    client.connect(tls_server.url(unique_path()))
    assert builds.started.wait(WAIT)
    for _ in range(5):
        client.ws.poll(0.01)  # returns: the build is on another thread
    assert client.ws.is_connecting
    assert client.events == []
    builds.gate.set()
    client.wait_open()
    assert builds.threads and threading.get_ident() not in builds.threads
    client.ws.close()
    client.wait_closed()


def test_bad_ca_file_is_error_then_closed_and_tried_again(
    make_client: MakeClient,
    tls_server: WebsocketsServer,
    ca: trustme.CA,
    tmp_path: Path,
    builds: Builds,
) -> None:
    path = tmp_path / "ca.pem"
    client = make_client(cafile=str(path))
    client.connect(tls_server.url(unique_path()))  # no file there yet
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TLSError)
    assert f"could not load the CA file {str(path)!r}" in error.message
    # A failed build is not kept: once the file is there, the next connect works.
    ca.cert_pem.write_to_path(str(path))
    open_and_close(client, tls_server.url(unique_path()))
    assert len(builds.threads) == 2
    assert len(builds.contexts) == 1


# The cache itself.


def test_cache_is_keyed_by_the_tls_options(ca_file: str, tmp_path: Path) -> None:
    built: list[Config] = []

    def build(config: Config) -> ssl.SSLContext:
        built.append(config)
        return ssl_context(config)

    cache = ContextCache(build)
    first = cache.get(Config(cafile=ca_file)).result(WAIT)
    # Options that are not about TLS do not matter.
    assert cache.get(Config(cafile=ca_file, connect_timeout=1.0)).result(WAIT) is first
    assert cache.get(Config(cafile=ca_file, insecure=True)).result(WAIT) is not first
    assert len(built) == 2
    # A file replaced on disk is loaded again.
    copy = tmp_path / "copy.pem"
    shutil.copyfile(ca_file, copy)
    one = cache.get(Config(cafile=str(copy))).result(WAIT)
    os.utime(copy, ns=(0, 0))
    assert cache.get(Config(cafile=str(copy))).result(WAIT) is not one
    # A context of the user's own is used as it is, without a build.
    own = ssl.create_default_context()
    assert cache.get(Config(ssl=own)).result(0) is own
    assert len(built) == 4
    cache.clear()
    assert cache.get(Config(cafile=ca_file)).result(WAIT) is not first


def test_build_error_is_kept_in_the_future_not_raised_on_the_thread(tmp_path: Path) -> None:
    cache = ContextCache()
    future = cache.get(Config(cafile=str(tmp_path / "missing.pem")))
    exc = future.exception(WAIT)
    assert isinstance(exc, wsloop.TLSError)
    assert "could not load the CA file" in str(exc)
