"""wss:// against a TLS websockets server on loopback, with certificates made now.

A throwaway CA from ``trustme`` signs a certificate for ``localhost`` and
``127.0.0.1``. Nothing here is trusted by the system, which lets the tests
check that verification is on by default.
"""

from __future__ import annotations

import random
import ssl
from typing import TYPE_CHECKING

import pytest
import trustme

import wsloop
from servers import SHORT, WAIT, WebsocketsServer, unique_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Client
    from servers import LoopThread, RawConnection, RawServer

    MakeClient = Callable[..., Client]
    MakeRaw = Callable[[Callable[[RawConnection], object]], RawServer]


class TLSServer(WebsocketsServer):
    """The websockets server behind TLS, recording the SNI names it is sent."""

    def __init__(self, loop: LoopThread, cert: trustme.LeafCert) -> None:
        self.server_names: list[str | None] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ctx.sni_callback = self._sni
        super().__init__(loop, ssl_context=ctx)

    def _sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def tls_server(loop_thread: LoopThread, ca: trustme.CA) -> Iterator[TLSServer]:
    """A wss:// echo server whose certificate names localhost and 127.0.0.1."""
    server = TLSServer(loop_thread, ca.issue_cert("localhost", "127.0.0.1"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_server(loop_thread: LoopThread, ca: trustme.CA) -> Iterator[TLSServer]:
    """A wss:// echo server whose (trusted) certificate is for another name."""
    server = TLSServer(loop_thread, ca.issue_cert("game.example"))
    yield server
    server.stop()


def trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def echo(client: Client, *payloads: str | bytes) -> None:
    for payload in payloads:
        if isinstance(payload, str):
            assert client.ws.send_text(payload)
        else:
            assert client.ws.send_binary(payload)
    assert client.wait_messages(len(payloads)) == list(payloads)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_wss_with_cafile(
    make_client: MakeClient, tls_server: TLSServer, ca_file: str, host: str
) -> None:
    client = make_client(cafile=ca_file)
    path = unique_path()
    client.connect(tls_server.url(path, host=host), "chat")
    opened = client.wait_open()
    assert opened.subprotocol == "chat"
    echo(client, "secure hello", b"\x00secure\xff")
    client.ws.close(4000, "bye")
    closed = client.wait_closed()
    assert (closed.code, closed.reason, closed.was_clean) == (4000, "bye", True)
    assert tls_server.log.wait_for(path, "closed", WAIT) == ("closed", 4000, "bye")


def test_wss_with_ssl_context(
    make_client: MakeClient, tls_server: TLSServer, ca: trustme.CA
) -> None:
    client = make_client(ssl=trusting_context(ca))
    client.connect(tls_server.url(unique_path(), host="localhost"))
    client.wait_open()
    echo(client, "context")
    client.ws.send_text("close 4321 game over")
    closed = client.wait_closed()
    assert (closed.code, closed.reason) == (4321, "game over")


def test_ssl_context_wins_over_cafile(
    make_client: MakeClient, tls_server: TLSServer, ca: trustme.CA, tmp_path: Path
) -> None:
    other_ca = trustme.CA()
    wrong = tmp_path / "other-ca.pem"
    other_ca.cert_pem.write_to_path(str(wrong))
    client = make_client(ssl=trusting_context(ca), cafile=str(wrong))
    client.connect(tls_server.url(unique_path()))
    client.wait_open()


def test_https_maps_to_wss(make_client: MakeClient, tls_server: TLSServer, ca_file: str) -> None:
    client = make_client(cafile=ca_file)
    url = tls_server.url(unique_path(), host="localhost", scheme="https")
    client.connect(url)
    client.wait_open()
    assert client.ws.url == url
    echo(client, "via https://")


def test_sni_names_the_host(make_client: MakeClient, tls_server: TLSServer, ca_file: str) -> None:
    client = make_client(cafile=ca_file)
    before = len(tls_server.server_names)
    client.connect(tls_server.url(unique_path(), host="localhost"))
    client.wait_open()
    assert tls_server.server_names[before:] == ["localhost"]


def test_default_settings_verify_against_system_cas(client: Client, tls_server: TLSServer) -> None:
    client.connect(tls_server.url(unique_path(), host="localhost"))
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]  # never opened
    error = client.error()
    assert isinstance(error.exception, wsloop.TLSError)
    assert isinstance(error.exception.__cause__, ssl.SSLCertVerificationError)
    assert "certificate" in error.message
    assert "localhost" in error.message
    assert (closed.code, closed.was_clean) == (1006, False)
    assert client.ws.error_msg == error.message


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_hostname_mismatch(
    make_client: MakeClient, other_server: TLSServer, ca_file: str, host: str
) -> None:
    client = make_client(cafile=ca_file)  # the CA is trusted; the name is wrong
    client.connect(other_server.url(unique_path(), host=host))
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TLSError)
    assert "certificate" in error.message
    assert f"'{host}'" in error.message
    assert "mismatch" in error.message.lower()


def test_hostname_mismatch_with_ssl_context(
    make_client: MakeClient, other_server: TLSServer, ca: trustme.CA
) -> None:
    client = make_client(ssl=trusting_context(ca))
    client.connect(other_server.url(unique_path(), host="localhost"))
    client.wait_closed()
    assert "localhost" in client.error().message


def test_plain_tcp_server_on_a_wss_url(client: Client, ws_server: WebsocketsServer) -> None:
    client.connect(ws_server.url(unique_path(), scheme="wss"))
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TLSError)
    assert "TLS" in error.message
    assert "certificate" not in error.message  # it is not the certificate's fault
    assert closed.code == 1006


def test_tls_server_on_a_ws_url(client: Client, tls_server: TLSServer) -> None:
    client.connect(tls_server.url(unique_path(), scheme="ws"))
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert isinstance(client.error().exception, wsloop.HandshakeError)


def hold(conn: RawConnection) -> None:
    """Accept TCP and never answer."""
    conn.wait_eof()


def test_missing_cafile_is_reported(
    make_client: MakeClient, raw_server: MakeRaw, tmp_path: Path
) -> None:
    server = raw_server(hold)
    client = make_client(cafile=str(tmp_path / "missing.pem"))
    client.connect(server.url(scheme="wss"))  # does not raise: reported as an Error
    client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    assert isinstance(client.error().exception, wsloop.TLSError)


def test_tls_handshake_timeout(make_client: MakeClient, raw_server: MakeRaw) -> None:
    server = raw_server(hold)  # TCP accepted, TLS never answered
    client = make_client(connect_timeout=SHORT)
    client.connect(server.url(scheme="wss", host="localhost"))
    assert client.ws.is_connecting
    closed = client.wait_closed()
    assert client.kinds() == ["Error", "Closed"]
    error = client.error()
    assert isinstance(error.exception, wsloop.TimeoutError)
    assert "TLS" in error.message
    assert closed.code == 1006


@pytest.mark.parametrize("compression", ["deflate", None])
def test_one_mib_echo_over_tls(
    make_client: MakeClient, tls_server: TLSServer, ca_file: str, compression: str | None
) -> None:
    client = make_client(cafile=ca_file, compression=compression)
    client.connect(tls_server.url(unique_path(), host="localhost"))
    client.wait_open()
    rng = random.Random(1)
    text = "".join(rng.choice("abcdefghij éü€") for _ in range(2**20 // 2))
    text = text.encode()[: 2**20].decode("utf-8", "ignore")
    text += "a" * (2**20 - len(text.encode()))
    assert len(text.encode()) == 2**20
    data = rng.randbytes(2**20)
    assert client.ws.send_text(text)
    assert client.ws.send_binary(data)
    got = client.wait_messages(2)
    assert got[0] == text
    assert got[1] == data
    client.ws.close()
    assert client.wait_closed().was_clean
