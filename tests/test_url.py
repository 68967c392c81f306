"""Tests for :func:`wsloop.parse_url` and :class:`wsloop.URL`."""

from __future__ import annotations

import dataclasses

import pytest

from wsloop import URL, InvalidURI, WebSocketError, parse_url


@pytest.mark.parametrize(
    ("url", "secure", "port"),
    [
        ("ws://example.com/", False, 80),
        ("wss://example.com/", True, 443),
        ("http://example.com/", False, 80),
        ("https://example.com/", True, 443),
        ("WSS://example.com/", True, 443),
        ("HtTp://example.com/", False, 80),
    ],
)
def test_schemes_and_default_ports(url: str, secure: bool, port: int) -> None:
    parsed = parse_url(url)
    assert parsed.secure is secure
    assert parsed.port == port
    assert parsed.host == "example.com"


@pytest.mark.parametrize(
    ("url", "ws_url"),
    [
        ("http://example.com/a", "ws://example.com/a"),
        ("https://example.com/a", "wss://example.com/a"),
        ("ws://example.com:80/", "ws://example.com/"),
        ("wss://example.com:443/", "wss://example.com/"),
        ("ws://example.com:443/", "ws://example.com:443/"),
        ("wss://example.com:80/", "wss://example.com:80/"),
        ("ws://user:secret@example.com/", "ws://example.com/"),
    ],
)
def test_ws_url(url: str, ws_url: str) -> None:
    assert parse_url(url).ws_url == ws_url


def test_explicit_port() -> None:
    parsed = parse_url("ws://example.com:8765/game")
    assert parsed.port == 8765
    assert parsed.authority == "example.com:8765"


@pytest.mark.parametrize("port", [1, 65535])
def test_port_limits(port: int) -> None:
    assert parse_url(f"ws://h:{port}/").port == port


def test_host_is_lowercased() -> None:
    assert parse_url("ws://Game.EXAMPLE.com/").host == "game.example.com"


@pytest.mark.parametrize(
    ("url", "host", "port", "authority", "ws_url"),
    [
        ("ws://[::1]:9000/p", "::1", 9000, "[::1]:9000", "ws://[::1]:9000/p"),
        ("ws://[::1]/", "::1", 80, "[::1]:80", "ws://[::1]/"),
        ("wss://[2001:db8::7]/", "2001:db8::7", 443, "[2001:db8::7]:443", "wss://[2001:db8::7]/"),
    ],
)
def test_ipv6_literals(url: str, host: str, port: int, authority: str, ws_url: str) -> None:
    parsed = parse_url(url)
    assert (parsed.host, parsed.port) == (host, port)
    assert parsed.authority == authority
    assert parsed.ws_url == ws_url


def test_ipv4_literal() -> None:
    parsed = parse_url("ws://127.0.0.1:8000/")
    assert (parsed.host, parsed.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://bücher.example/", "xn--bcher-kva.example"),
        ("ws://BÜCHER.example/", "xn--bcher-kva.example"),
        ("ws://xn--bcher-kva.example/", "xn--bcher-kva.example"),
        ("wss://日本.example/", "xn--wgv71a.example"),
    ],
)
def test_idn_hosts_become_punycode(url: str, host: str) -> None:
    assert parse_url(url).host == host


def test_idn_host_that_cannot_be_encoded() -> None:
    # A label over 63 characters cannot be encoded with IDNA.
    with pytest.raises(InvalidURI, match="host name is not valid"):
        parse_url("ws://" + "ü" * 64 + ".example/")


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        ("ws://h", "/"),
        ("ws://h/", "/"),
        ("ws://h?x=1", "/?x=1"),
        ("ws://h/room/7", "/room/7"),
        ("ws://h/room?id=7&name=a", "/room?id=7&name=a"),
        ("ws://h/a%20b?q=%2F", "/a%20b?q=%2F"),
        ("ws://h/é?q=ü", "/%C3%A9?q=%C3%BC"),
        ("ws://h/path?", "/path"),
    ],
)
def test_path_and_query_are_kept(url: str, resource: str) -> None:
    assert parse_url(url).resource == resource


def test_credentials() -> None:
    parsed = parse_url("ws://ada:p%40ss%20word@example.com/")
    assert parsed.user_info == ("ada", "p@ss word")
    assert parsed.host == "example.com"


def test_no_credentials() -> None:
    assert parse_url("ws://example.com/").user_info is None


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_url("  ws://example.com/  \n").host == "example.com"


def test_url_is_frozen() -> None:
    parsed = parse_url("ws://example.com/")
    assert isinstance(parsed, URL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ws://exa mple.com/", "white space"),
        ("ws://example.com/a b", "white space"),
        ("ws://example.com/\tx", "white space"),
        ("ftp://example.com/", "ftp://"),
        ("file:///etc/passwd", "file://"),
        ("example.com/chat", "no scheme"),
        ("ws://example.com/#top", "#fragment"),
        ("ws://example.com/#", "#fragment"),
        ("ws://example.com/?a=1#x", "#fragment"),
        ("ws:///chat", "no host"),
        ("ws://:8080/", "no host"),
        ("ws://", "no host"),
        ("ws://example.com:0/", "port"),
        ("ws://example.com:65536/", "port"),
        ("ws://example.com:http/", "port"),
        ("ws://example.com:-1/", "port"),
        ("ws://ada@example.com/", "password"),
        ("ws://[::1/", "IPv6"),
    ],
)
def test_invalid_urls(url: str, words: str) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_url(url)
    message = str(info.value)
    assert words in message
    assert repr(url) in message  # the message quotes the URL as given
    assert info.value.url == url
    assert info.value.why in message


def test_invalid_uri_is_a_value_error() -> None:
    assert issubclass(InvalidURI, ValueError)
    assert issubclass(InvalidURI, WebSocketError)
    with pytest.raises(ValueError, match="scheme"):
        parse_url("gopher://example.com/")


@pytest.mark.parametrize("value", [None, b"ws://example.com/", 42, ["ws://h/"]])
def test_non_str_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="str") as info:
        parse_url(value)  # type: ignore[arg-type]
    assert not isinstance(info.value, InvalidURI)


def test_invalid_uri_does_not_chain_urllib_errors() -> None:
    with pytest.raises(InvalidURI) as info:
        parse_url("ws://example.com:99999/")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
