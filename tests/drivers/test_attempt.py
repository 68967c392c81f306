"""The connection attempt's plan (drivers/_attempt.py), in memory: every step and failure.

The poll and asyncio drivers carry out what :class:`Attempt` decides; the
proxy, TLS and driver tests check them against real proxies and servers.
Here the decisions alone: which host each step reaches, which step comes
next, and what each failure is called.
"""

from __future__ import annotations

import socket

import pytest

import wsloop
from wsloop.drivers._attempt import Attempt, Phase


def attempt(url: str, proxy: str | bool | None = False) -> Attempt:
    return Attempt(wsloop.parse_url(url), proxy, "test-agent")


def address(host: str, port: int) -> tuple[object, ...]:
    """One getaddrinfo() row for ``host`` (a literal)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return (family, socket.SOCK_STREAM, 6, "", (host, port))


def test_phases_equal_their_names() -> None:
    assert [str(phase) for phase in Phase] == ["idle", "resolve", "tcp", "proxy", "tls", "ws"]
    assert Phase.WS == "ws"
    assert f"{Phase.TLS}" == "tls"


@pytest.mark.parametrize(
    ("url", "after"), [("ws://game.example/", Phase.WS), ("wss://game.example/", Phase.TLS)]
)
def test_direct_connection_reaches_the_server(url: str, after: Phase) -> None:
    a = attempt(url)
    port = 443 if url.startswith("wss") else 80
    assert a.proxy is None
    assert a.first_lookup() == a.dial_target() == ("game.example", port)
    assert a.resolved([address("203.0.113.7", port)]) is True
    assert a.after_tcp() is after
    assert a.after_transport() is after


def test_direct_failures_name_the_server() -> None:
    a = attempt("ws://game.example:8080/")
    lookup = a.lookup_failed(OSError(-2, "Name or service not known"))
    assert isinstance(lookup, wsloop.ConnectError)
    assert str(lookup) == "could not resolve host 'game.example': name or service not known"
    assert str(a.lookup_failed(None)).endswith("no address found")
    refused = a.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    assert str(refused).startswith("could not connect to game.example:8080: connection refused")
    assert isinstance(refused.__cause__, ConnectionRefusedError)


def test_http_proxy_is_dialled_then_tunnels_to_the_server_by_name() -> None:
    a = attempt("wss://game.example/", "http://user:pw@127.0.0.1:3128")
    assert not a.resolving_target  # the proxy resolves the name itself
    assert a.first_lookup() == a.dial_target() == ("127.0.0.1", 3128)
    assert a.resolved([address("127.0.0.1", 3128)]) is True
    assert a.after_tcp() is Phase.PROXY
    handshake = a.proxy_handshake()
    request = handshake.data_to_send()
    assert request.startswith(b"CONNECT game.example:443 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic " in request
    assert b"User-Agent: test-agent\r\n" in request
    assert a.after_transport(b"") is Phase.TLS


def test_proxy_failures_name_the_proxy() -> None:
    a = attempt("ws://game.example/", "http://127.0.0.1:3128")
    lookup = a.lookup_failed(OSError(-2, "Name or service not known"))
    assert isinstance(lookup, wsloop.ProxyError)
    assert str(lookup).startswith("could not resolve the proxy host '127.0.0.1'")
    refused = a.connect_failed(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(refused, wsloop.ProxyError)
    assert str(refused).startswith("could not connect to the proxy 127.0.0.1:3128")
    lost = a.proxy_lost(a.proxy_handshake(), ConnectionResetError(104, "reset"))
    assert "connection reset by the proxy" in str(lost)
    assert "before the tunnel to game.example:80 was open" in str(lost)


def test_bytes_after_the_proxy_answer_belong_to_a_ws_server() -> None:
    a = attempt("ws://game.example/", "http://127.0.0.1:3128")
    assert a.after_transport(b"HTTP/1.1 101 ...") is Phase.WS


def test_bytes_before_tls_fail_the_attempt() -> None:
    a = attempt("wss://game.example/", "http://127.0.0.1:3128")
    with pytest.raises(wsloop.ProxyError, match="sent 5 unexpected bytes after opening the"):
        a.after_transport(b"hello")


@pytest.mark.parametrize("scoped", [False, True])
def test_socks5_looks_the_server_up_first_then_sends_its_address(scoped: bool) -> None:
    a = attempt("ws://game.example:9000/", "socks5://127.0.0.1:1080")
    assert a.resolving_target
    assert a.first_lookup() == ("game.example", 9000)
    # A failure now is the server's name, not the proxy's.
    assert str(a.lookup_failed(None)).startswith("could not resolve host 'game.example'")
    first = "fe80::1%eth0" if scoped else "198.51.100.4"
    assert a.resolved([address(first, 9000), address("198.51.100.5", 9000)]) is False
    assert a.tunnel_host == ("fe80::1" if scoped else "198.51.100.4")
    assert not a.resolving_target
    assert a.dial_target() == ("127.0.0.1", 1080)
    assert a.resolved([address("127.0.0.1", 1080)]) is True
    assert a.after_tcp() is Phase.PROXY
    request = a.proxy_handshake().data_to_send()
    assert request[:1] == b"\x05"  # the SOCKS5 greeting; the address follows later
    assert str(a.lookup_failed(None)).startswith("could not resolve the proxy host")


@pytest.mark.parametrize(
    ("url", "proxy"),
    [
        ("ws://198.51.100.4:9000/", "socks5://127.0.0.1:1080"),  # already an address
        ("ws://game.example:9000/", "socks5h://127.0.0.1:1080"),  # the proxy resolves
    ],
)
def test_socks5_needs_no_lookup_of_the_server_when(url: str, proxy: str) -> None:
    a = attempt(url, proxy)
    assert not a.resolving_target
    assert a.first_lookup() == ("127.0.0.1", 1080)


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ("ftp://127.0.0.1:21", "the scheme must be http://, socks5:// or socks5h://"),
        ("http://", "it has no host name"),
    ],
)
def test_a_malformed_proxy_option_is_a_proxy_error(proxy: str, problem: str) -> None:
    with pytest.raises(wsloop.ProxyError, match=problem):
        attempt("ws://game.example/", proxy)


def test_the_environment_counts_only_when_the_option_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert attempt("ws://game.example/", None).proxy is not None
    assert attempt("ws://game.example/", False).proxy is None
