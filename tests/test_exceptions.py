"""Tests for :mod:`wsloop.exceptions`."""

from __future__ import annotations

import builtins
import pickle
import re

import pytest

import wsloop
from wsloop import exceptions
from wsloop.exceptions import (
    ConcurrencyError,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    MessageTooBig,
    NegotiationError,
    ProtocolError,
    ProxyError,
    TimeoutError,
    TLSError,
    WebSocketError,
)

# (class, direct bases), written out from the design in STYLE.md and the issue.
TREE = [
    (WebSocketError, (Exception,)),
    (InvalidURI, (WebSocketError, ValueError)),
    (ConnectError, (WebSocketError,)),
    (ProxyError, (ConnectError,)),
    (TLSError, (ConnectError,)),
    (HandshakeError, (WebSocketError,)),
    (InvalidStatus, (HandshakeError,)),
    (NegotiationError, (HandshakeError,)),
    (TimeoutError, (WebSocketError, builtins.TimeoutError)),
    (ConnectionClosed, (WebSocketError,)),
    (ConnectionClosedOK, (ConnectionClosed,)),
    (ConnectionClosedError, (ConnectionClosed,)),
    (ProtocolError, (WebSocketError,)),
    (InvalidUTF8, (ProtocolError,)),
    (MessageTooBig, (ProtocolError,)),
    (InvalidState, (WebSocketError, RuntimeError)),
    (ConcurrencyError, (WebSocketError, RuntimeError)),
]


@pytest.mark.parametrize(("cls", "bases"), TREE, ids=lambda x: getattr(x, "__name__", ""))
def test_bases(cls: type, bases: tuple[type, ...]) -> None:
    assert cls.__bases__ == bases


def test_every_exception_is_in_the_tree() -> None:
    assert sorted(c.__name__ for c, _ in TREE) == sorted(exceptions.__all__)


def parse_docstring_tree() -> dict[str, tuple[str | None, list[str]]]:
    """Map each name drawn in the module docstring to (parent, extra bases)."""
    doc = exceptions.__doc__
    assert doc is not None
    lines = [line for line in doc.splitlines() if re.search(r"\w+Error\(|[├└]── ", line)]
    tree: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[str] = []
    for line in lines:
        match = re.match(r"^( *)((?:[│ ]   )*)(?:[├└]── )?(\w+)(?:\(([^)]*)\))?", line)
        assert match, line
        depth = len(match.group(2)) // 4 + (1 if re.search("[├└]── ", line) else 0)
        name = match.group(3)
        bases = [b.strip() for b in (match.group(4) or "").split(",") if b.strip()]
        del stack[depth:]
        parent = stack[-1] if stack else None
        tree[name] = (parent, bases)
        stack.append(name)
    return tree


def test_docstring_tree_matches_the_classes() -> None:
    tree = parse_docstring_tree()
    assert set(tree) == set(exceptions.__all__)
    for name, (parent, bases) in tree.items():
        cls = getattr(exceptions, name)
        if parent is None:
            assert cls.__bases__ == (Exception,)
            continue
        assert cls.__bases__[0] is getattr(exceptions, parent), name
        for base in bases:
            expected = getattr(builtins, base.removeprefix("builtins."), None) or getattr(
                exceptions, base
            )
            assert issubclass(cls, expected), (name, base)


def test_docstring_tree_has_the_expected_shape() -> None:
    tree = parse_docstring_tree()
    assert tree["TLSError"][0] == "ConnectError"
    assert tree["InvalidUTF8"][0] == "ProtocolError"
    assert tree["ConnectionClosedOK"][0] == "ConnectionClosed"
    assert tree["InvalidState"] == ("WebSocketError", ["WebSocketError", "RuntimeError"])


def test_builtin_catches() -> None:
    with pytest.raises(builtins.TimeoutError):
        raise TimeoutError("connect", 1.0)
    with pytest.raises(ValueError, match="scheme"):
        raise InvalidURI("x://y", "bad scheme")
    with pytest.raises(RuntimeError):
        raise InvalidState("not open")
    with pytest.raises(WebSocketError):
        raise ConcurrencyError("two readers")


def test_wsloop_timeout_error_does_not_shadow_the_builtin() -> None:
    assert wsloop.TimeoutError is not builtins.TimeoutError
    assert builtins.TimeoutError.__name__ == "TimeoutError"


# Messages.


def test_invalid_uri() -> None:
    exc = InvalidURI("ws:/x", "it has no host name")
    assert str(exc) == "invalid WebSocket URL 'ws:/x': it has no host name"
    assert (exc.url, exc.why) == ("ws:/x", "it has no host name")


def test_invalid_status_plain() -> None:
    exc = InvalidStatus(404, "Not Found", {"Content-Type": "text/plain"}, b"")
    assert str(exc) == "server rejected the WebSocket upgrade: HTTP 404 Not Found"
    assert exc.status == 404
    assert exc.reason_phrase == "Not Found"
    assert exc.headers == {"Content-Type": "text/plain"}
    assert exc.body == b""


def test_invalid_status_body_first_line() -> None:
    exc = InvalidStatus(403, "Forbidden", {}, b"  Bad token\r\nsee the logs\n")
    assert str(exc) == "server rejected the WebSocket upgrade: HTTP 403 Forbidden: Bad token"


def test_invalid_status_body_that_is_not_text() -> None:
    exc = InvalidStatus(500, "Internal Server Error", {}, b"\x00\x01\x02")
    assert str(exc) == "server rejected the WebSocket upgrade: HTTP 500 Internal Server Error"


def test_invalid_status_long_body_is_cut() -> None:
    exc = InvalidStatus(400, "Bad Request", {}, b"x" * 5000)
    assert len(str(exc)) < 300


def test_invalid_status_without_reason_phrase() -> None:
    assert str(InvalidStatus(599, "", {})) == "server rejected the WebSocket upgrade: HTTP 599"


@pytest.mark.parametrize("name", ["Location", "location"])
def test_invalid_status_redirect(name: str) -> None:
    exc = InvalidStatus(301, "Moved Permanently", {name: "wss://new.example/ws"})
    message = str(exc)
    assert message.startswith("server rejected the WebSocket upgrade: HTTP 301 Moved Permanently")
    assert "redirect to wss://new.example/ws" in message


def test_location_outside_a_redirect_is_not_mentioned() -> None:
    exc = InvalidStatus(201, "Created", {"Location": "/thing/1"})
    assert "/thing/1" not in str(exc)


def test_invalid_status_headers_are_copied() -> None:
    headers = {"Server": "x"}
    exc = InvalidStatus(404, "Not Found", headers)
    headers["Server"] = "y"
    assert exc.headers == {"Server": "x"}


@pytest.mark.parametrize(
    ("phase", "seconds", "text"),
    [
        ("connect", 10.0, "connect timed out after 10 s"),
        ("connect (TLS handshake)", 2.5, "connect (TLS handshake) timed out after 2.5 s"),
        ("closing handshake", 0.25, "closing handshake timed out after 0.25 s"),
    ],
)
def test_timeout_error(phase: str, seconds: float, text: str) -> None:
    exc = TimeoutError(phase, seconds)
    assert str(exc) == text
    assert (exc.phase, exc.seconds) == (phase, seconds)


def test_keepalive_timeout_says_what_happened() -> None:
    message = str(TimeoutError("keepalive", 20.0))
    assert "keepalive" in message
    assert "20 s" in message


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionClosed(1006, ""), "connection closed with code 1006"),
        (ConnectionClosedOK(1000, ""), "connection closed with code 1000"),
        (ConnectionClosedError(4321, "game over"), "game over (close code 4321)"),
    ],
)
def test_connection_closed(exc: ConnectionClosed, text: str) -> None:
    assert str(exc) == text
    assert exc.code == int(text.split()[-1].rstrip(")"))


def test_close_codes_of_protocol_errors() -> None:
    assert ProtocolError.close_code == 1002
    assert InvalidUTF8.close_code == 1007
    assert MessageTooBig.close_code == 1009
    assert InvalidUTF8("x").close_code == 1007


def test_plain_exceptions_keep_their_message() -> None:
    assert str(NegotiationError("no subprotocol")) == "no subprotocol"
    assert str(TLSError("certificate verify failed")) == "certificate verify failed"


@pytest.mark.parametrize(
    "exc",
    [
        InvalidURI("ws:/x", "no host"),
        TimeoutError("connect", 10.0),
        ConnectionClosedError(1006, "gone"),
        ProtocolError("bad frame"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip(exc: WebSocketError) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)


def test_pickle_invalid_status() -> None:
    exc = InvalidStatus(404, "Not Found", {"A": "b"}, b"body")
    copy = pickle.loads(pickle.dumps(exc))
    assert str(copy) == str(exc)
    assert copy.headers == {"A": "b"}
