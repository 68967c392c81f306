"""TLS options: client certificates, the TLS 1.2 floor, and ``insecure=True``.

Certificates are made at test time by ``trustme``; servers run on 127.0.0.1.
Every connection test runs on the poll and the thread driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import select
import socket
import ssl
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest
import trustme

from servers import WAIT, WebsocketsServer, unique_path
from wsloop import BinaryMessage, Closed, Error, Opened, TextMessage, TLSError, WebSocket
from wsloop.drivers._common import InsecureWarning, ssl_context
from wsloop.drivers.base import Config
from wsloop.drivers.poll import PollDriver
from wsloop.drivers.thread import ThreadDriver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from servers import LoopThread

DRIVERS = ["poll", "thread"]

_NEW_OPTIONS = ("proxy", "certfile", "keyfile", "insecure")


def open_ws(driver: str, **options: Any) -> WebSocket:
    """A WebSocket on ``driver``; options the façade lacks go into the driver's Config."""
    accepted = inspect.signature(WebSocket).parameters
    extra = {k: options.pop(k) for k in _NEW_OPTIONS if k in options and k not in accepted}
    if not extra:
        return WebSocket(driver=driver, **options)
    base: type[PollDriver] | type[ThreadDriver] = PollDriver if driver == "poll" else ThreadDriver

    class Patched(base):  # type: ignore[misc,valid-type]
        def __init__(self, config: Any) -> None:
            super().__init__(dataclasses.replace(config, **extra))

    return WebSocket(driver=Patched, **options)


class Run:
    """A WebSocket on one driver, its events in order, and ``poll()`` to wait."""

    def __init__(self, driver: str, **options: Any) -> None:
        options.setdefault("ping_interval", None)
        self.ws = open_ws(driver, **options)
        self.events: list[Any] = []
        for name in ("on_opened", "on_text_message", "on_binary_message", "on_error", "on_closed"):
            setattr(self.ws, name, self.events.append)

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def pump(self, until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not until():
            assert time.monotonic() < deadline, f"timed out; events so far: {self.events}"
            self.ws.poll(0.01)

    def check(self) -> None:
        kinds = [type(e).__name__ for e in self.events]
        assert kinds.count("Closed") == 1, kinds
        assert kinds[-1] == "Closed", kinds
        if "Error" in kinds:
            assert kinds.count("Error") == 1, kinds
            assert kinds[-2] == "Error", kinds
        assert all(isinstance(e, (TextMessage, BinaryMessage)) for e in self.events[1:-2])

    def echo(self, url: str) -> None:
        self.ws.connect(url)
        self.pump(lambda: bool(self.of(Opened) or self.of(Closed)))
        assert self.of(Opened), f"the connection failed: {self.events}"
        self.ws.send_text("over TLS")
        self.pump(lambda: bool(self.of(TextMessage) or self.of(Closed)))
        assert [e.text for e in self.of(TextMessage)] == ["over TLS"]
        self.ws.close()
        self.pump(lambda: bool(self.of(Closed)))
        self.check()
        assert self.of(Closed)[0].was_clean

    def fails(self, url: str) -> Exception:
        self.ws.connect(url)
        self.pump(lambda: bool(self.of(Closed)))
        self.check()
        [error] = self.of(Error)
        assert self.ws.error_msg == str(error.exception)
        return error.exception  # type: ignore[no-any-return]

    def finish(self) -> None:
        if self.ws.is_open or self.ws.is_connecting:
            self.ws.close()
            with contextlib.suppress(AssertionError):
                self.pump(lambda: self.ws.is_closed)


@pytest.fixture(params=DRIVERS)
def run(request: pytest.FixtureRequest) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def factory(**options: Any) -> Run:
        r = Run(str(request.param), **options)
        runs.append(r)
        return r

    yield factory
    for r in runs:
        r.finish()


# Certificates.


@dataclasses.dataclass
class Files:
    ca: trustme.CA
    cafile: str
    certfile: str
    keyfile: str
    combined: str
    """Key and certificate chain in one PEM file."""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Files:
    tmp = tmp_path_factory.mktemp("tls-options")
    client = ca.issue_cert("player-1@wsloop.test")
    paths = {name: str(tmp / f"{name}.pem") for name in ("ca", "cert", "key", "combined")}
    ca.cert_pem.write_to_path(paths["ca"])
    client.cert_chain_pems[0].write_to_path(paths["cert"])
    for pem in client.cert_chain_pems[1:]:
        pem.write_to_path(paths["cert"], append=True)
    client.private_key_pem.write_to_path(paths["key"])
    client.private_key_and_cert_chain_pem.write_to_path(paths["combined"])
    return Files(ca, paths["ca"], paths["cert"], paths["key"], paths["combined"])


def mtls_context(ca: trustme.CA, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.maximum_version = maximum
    return ctx


class TLSFront:
    """TLS in front of the plain echo server, with the blocking :mod:`ssl` module.

    Like most production front ends (and unlike asyncio's TLS, which drops the
    connection), it sends the alert that tells the client why a handshake
    failed. One thread per connection relays the bytes both ways.
    """

    def __init__(self, ctx: ssl.SSLContext, backend_port: int) -> None:
        self.ctx = ctx
        self.backend_port = backend_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"wss://{host}:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _relay(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except OSError:  # the handshake failed; OpenSSL has sent its alert
            # A lingering close, as servers do: closing with the client's
            # request unread would send a reset that can overtake the alert.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(1.0)
                while conn.recv(65536):
                    pass
            conn.close()
            return
        with tls, socket.create_connection(("127.0.0.1", self.backend_port), WAIT) as backend:
            peers = {tls: backend, backend: tls}
            while True:
                ready = [tls] if tls.pending() else select.select(list(peers), [], [], WAIT)[0]
                if not ready:
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                        if not data:
                            return
                        peers[sock].sendall(data)
                    except OSError:
                        return

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self.listener.close()
        for thread in self.threads:
            thread.join(WAIT)


@pytest.fixture(scope="module", params=["TLSv1_3", "TLSv1_2"])
def mtls_server(
    request: pytest.FixtureRequest, ws_server: WebsocketsServer, ca: trustme.CA
) -> Iterator[TLSFront]:
    """A wss:// echo server that requires a client certificate (TLS 1.3, then 1.2)."""
    front = TLSFront(mtls_context(ca, ssl.TLSVersion[request.param]), ws_server.port)
    yield front
    front.stop()


@pytest.fixture(scope="module")
def self_signed_server(
    loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebsocketsServer]:
    """A wss:// echo server whose certificate signs itself (a CA's own certificate)."""
    own = trustme.CA()
    tmp = tmp_path_factory.mktemp("self-signed")
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    own.cert_pem.write_to_path(cert)
    own.private_key_pem.write_to_path(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = WebsocketsServer(loop_thread, ssl_context=ctx)
    yield server
    server.stop()


# Client certificates.


def test_client_certificate_and_key_files(run, mtls_server, files) -> None:
    url = mtls_server.url(unique_path())
    run(cafile=files.cafile, certfile=files.certfile, keyfile=files.keyfile).echo(url)


def test_client_certificate_and_key_in_one_file(run, mtls_server, files) -> None:
    run(cafile=files.cafile, certfile=files.combined).echo(mtls_server.url(unique_path()))


def test_client_certificate_through_an_ssl_context(run, mtls_server, files) -> None:
    ctx = ssl.create_default_context(cafile=files.cafile)
    ctx.load_cert_chain(files.certfile, files.keyfile)
    run(ssl=ctx).echo(mtls_server.url(unique_path()))


def test_missing_client_certificate(run, mtls_server, files) -> None:
    exc = run(cafile=files.cafile).fails(mtls_server.url("/"))
    assert isinstance(exc, TLSError)
    text = str(exc)
    assert text.startswith(f"TLS handshake with 127.0.0.1:{mtls_server.port} failed: ")
    # TLS 1.3 names the reason; TLS 1.2 only says the handshake failed.
    assert text.endswith(
        (
            "the server requires a client certificate (use the certfile= and keyfile= options) "
            "(TLSV13_ALERT_CERTIFICATE_REQUIRED)",
            "the server refused the handshake (no cipher in common, or it requires a client "
            "certificate) (SSLV3_ALERT_HANDSHAKE_FAILURE)",
        )
    ), text


def test_client_certificate_from_an_unknown_ca(run, mtls_server, files, tmp_path) -> None:
    stranger = trustme.CA().issue_cert("intruder@wsloop.test")
    path = str(tmp_path / "stranger.pem")
    stranger.private_key_and_cert_chain_pem.write_to_path(path)
    exc = run(cafile=files.cafile, certfile=path).fails(mtls_server.url("/"))
    assert isinstance(exc, TLSError)
    assert str(exc).endswith(
        "the server does not trust the client certificate (unknown CA) (TLSV1_ALERT_UNKNOWN_CA)"
    ), str(exc)


def test_client_certificate_file_missing(run, mtls_server, files, tmp_path) -> None:
    missing = str(tmp_path / "missing.pem")
    exc = run(cafile=files.cafile, certfile=missing).fails(mtls_server.url("/"))
    assert isinstance(exc, TLSError)
    assert str(exc) == (
        f"could not load the client certificate from {missing!r}: no such file or directory"
    )


def test_client_key_that_does_not_match(run, mtls_server, files, tmp_path) -> None:
    other_key = str(tmp_path / "other-key.pem")
    files.ca.issue_cert("other@wsloop.test").private_key_pem.write_to_path(other_key)
    exc = run(cafile=files.cafile, certfile=files.certfile, keyfile=other_key).fails(
        mtls_server.url("/")
    )
    assert str(exc) == (
        f"could not load the client certificate from {files.certfile!r} and {other_key!r}: "
        "the private key does not match the certificate"
    )


def test_cafile_that_is_not_pem(run, mtls_server, tmp_path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    exc = run(cafile=str(junk)).fails(mtls_server.url("/"))
    assert isinstance(exc, TLSError)
    assert str(exc).startswith(f"could not load the CA file {str(junk)!r}: ")


# The TLS 1.2 floor.


def test_built_contexts_refuse_anything_older_than_tls_1_2(files) -> None:
    for config in (
        Config(),
        Config(cafile=files.cafile, certfile=files.combined),
        Config(insecure=True),
    ):
        assert ssl_context(config).minimum_version is ssl.TLSVersion.TLSv1_2
    own = ssl.create_default_context()
    assert ssl_context(Config(ssl=own)) is own


class TLS11Server:
    """Accepts TCP on 127.0.0.1 and answers with TLS 1.1 at most; records each outcome."""

    def __init__(self, ca: trustme.CA) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        # OpenSSL 3 keeps TLS 1.1 out of security level 1 and up.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.ctx = ctx
        self.outcomes: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.settimeout(WAIT)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self.outcomes.append(str(tls.version()))
            except OSError as exc:
                self.outcomes.append(type(exc).__name__)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def tls11_server(ca: trustme.CA) -> Iterator[TLS11Server]:
    try:
        server = TLS11Server(ca)
    except (ssl.SSLError, ValueError) as exc:  # pragma: no cover - depends on OpenSSL
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1: {exc}")
    # It really speaks TLS 1.1: an old client gets through.
    old = ssl.create_default_context()
    ca.configure_trust(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), WAIT) as raw,
            old.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.1"
    except ssl.SSLError as exc:  # pragma: no cover - depends on OpenSSL
        server.stop()
        pytest.skip(f"this OpenSSL cannot make a TLS 1.1 connection: {exc}")
    yield server
    server.stop()


def test_tls_1_1_server_is_refused(run, tls11_server, files) -> None:
    exc = run(cafile=files.cafile).fails(f"wss://127.0.0.1:{tls11_server.port}/")
    assert isinstance(exc, TLSError)
    assert str(exc) == (
        f"TLS handshake with 127.0.0.1:{tls11_server.port} failed: no TLS version in common "
        "(wsloop requires TLS 1.2 or newer) (TLSV1_ALERT_PROTOCOL_VERSION)"
    )


# insecure=True.


def test_self_signed_server_is_refused_by_default(run, self_signed_server) -> None:
    exc = run().fails(self_signed_server.url("/"))
    assert isinstance(exc, TLSError)
    assert str(exc).startswith("TLS certificate verification failed for '127.0.0.1': ")


def test_insecure_connects_to_a_self_signed_server_and_warns(run, self_signed_server) -> None:
    r = run(insecure=True)
    with pytest.warns(InsecureWarning) as record:
        r.echo(self_signed_server.url(unique_path(), host="localhost"))
    [warning] = record
    assert str(warning.message) == (
        "insecure=True: the certificate of 'localhost' is not verified; anyone on the network "
        "path can read and change this connection"
    )
    assert warning.filename == __file__  # it points at the application's connect() call
    assert issubclass(InsecureWarning, UserWarning)


def test_insecure_warns_once_per_connect(run, self_signed_server) -> None:
    r = run(insecure=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        r.echo(self_signed_server.url(unique_path()))
        r.events.clear()
        r.echo(self_signed_server.url(unique_path()))
    assert [w.category for w in record] == [InsecureWarning, InsecureWarning]


def test_insecure_with_warnings_as_errors_raises_from_connect(run, self_signed_server) -> None:
    r = run(insecure=True)
    with pytest.raises(InsecureWarning):
        r.ws.connect(self_signed_server.url("/"))
    assert not r.events
    assert not r.ws.is_connecting


def test_insecure_on_ws_url_does_not_warn(run, ws_server) -> None:
    run(insecure=True).echo(ws_server.url(unique_path()))  # warnings are errors here


def test_facade_options(tmp_path: Path) -> None:
    """Once the façade takes the options, it checks them."""
    accepted = inspect.signature(WebSocket).parameters
    if not all(name in accepted for name in _NEW_OPTIONS):
        pytest.skip("the façade does not take proxy/certfile/keyfile/insecure yet")
    with pytest.raises(ValueError, match="not both"):
        WebSocket(ssl=ssl.create_default_context(), insecure=True)
    with pytest.raises(ValueError, match="keyfile"):
        WebSocket(keyfile=str(tmp_path / "key.pem"))
    with pytest.raises(ValueError, match="invalid proxy URL"):
        WebSocket(proxy="ftp://h")
