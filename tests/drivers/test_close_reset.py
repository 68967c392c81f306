"""A TCP reset after a completed close handshake is a clean close, in every driver.

RFC 6455 section 7.1.4: the closing handshake is complete once an endpoint
has both sent and received a close frame. Some servers (Twisted-based ones
such as Autobahn|Python and daphne) then end TCP with a reset (RST) instead
of a FIN. The handshake is still complete: On closed carries the server's
code and reason with ``was_clean=True``, and no On error comes before it.
Every case runs once per driver adapter of conftest.py, on ``ws://`` and on
``wss://`` (a raw TLS server: the reset reaches the client through TLS).

The close timeout is off, so that only the reset itself can end the
connection: a driver that waited for a FIN would hang until the test fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trustme

from servers import OP_CLOSE, OP_TEXT, WAIT, close_payload

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from pathlib import Path

    from conftest import Client
    from servers import RawConnection, RawServer

    MakeClient = Callable[..., Client]
    MakeRaw = Callable[[Callable[[RawConnection], object]], RawServer]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("reset") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(params=["ws", "wss"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start_tls(conn: RawConnection, scheme: str, ctx: ssl.SSLContext) -> None:
    """For ``wss://``: run the server side of TLS on the accepted socket."""
    if scheme == "wss":
        timeout = conn.sock.gettimeout()
        conn.sock = ctx.wrap_socket(conn.sock, server_side=True)
        conn.sock.settimeout(timeout)


def test_server_close_answered_then_reset(
    make_client: MakeClient,
    raw_server: MakeRaw,
    scheme: str,
    server_context: ssl.SSLContext,
    ca_file: str,
) -> None:
    def handler(conn: RawConnection) -> tuple[int | None, str] | None:
        start_tls(conn, scheme, server_context)
        conn.handshake()
        conn.send_frame(OP_CLOSE, close_payload(1001, "going away"))
        answer = conn.expect_close()  # the client's answer: the handshake is complete
        conn.reset()
        return answer

    server = raw_server(handler)
    client = make_client(close_timeout=None, cafile=ca_file)
    client.connect(server.url(scheme=scheme))
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Closed"]  # no On error
    assert (closed.code, closed.reason, closed.was_clean) == (1001, "going away", True)
    assert server.wait_result(WAIT) == (1001, "going away")  # the client echoed the code
    assert (client.ws.close_code, client.ws.close_reason) == (1001, "going away")


def test_client_close_answered_then_reset(
    make_client: MakeClient,
    raw_server: MakeRaw,
    scheme: str,
    server_context: ssl.SSLContext,
    ca_file: str,
) -> None:
    def handler(conn: RawConnection) -> tuple[int | None, str] | None:
        start_tls(conn, scheme, server_context)
        conn.handshake()
        conn.send_frame(OP_TEXT, b"close now")
        asked = conn.expect_close()
        conn.send_frame(OP_CLOSE, close_payload(1000, "as you wish"))
        conn.reset()
        return asked

    server = raw_server(handler)
    client = make_client(close_timeout=None, cafile=ca_file)
    client.also("on_text_message", lambda _: client.ws.close(4001, "done"))
    client.connect(server.url(scheme=scheme))
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "TextMessage", "Closed"]  # no On error
    assert (closed.code, closed.reason, closed.was_clean) == (1000, "as you wish", True)
    assert server.wait_result(WAIT) == (4001, "done")


def test_reset_before_the_close_is_answered_stays_unclean(
    client: Client, raw_server: MakeRaw
) -> None:
    """The client closed, the server reset without a close frame: not a handshake."""

    def handler(conn: RawConnection) -> tuple[int | None, str] | None:
        conn.handshake()
        conn.send_frame(OP_TEXT, b"close now")
        asked = conn.expect_close()
        conn.reset()
        return asked

    server = raw_server(handler)
    client.also("on_text_message", lambda _: client.ws.close(1000, ""))
    client.connect(server.url())
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "TextMessage", "Error", "Closed"]
    assert client.error().message == "connection reset by the server (close code 1006)"
    assert (closed.code, closed.was_clean) == (1006, False)
    assert server.wait_result(WAIT) == (1000, "")
