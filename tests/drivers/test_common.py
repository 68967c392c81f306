"""What the socket-owning drivers share (``drivers/_common.py``): addresses and socket options."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import pytest

from servers import unique_path
from wsloop.drivers._common import is_ip_literal, numeric_addresses

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Client
    from servers import WebsocketsServer

    MakeClient = Callable[..., Client]


@pytest.mark.parametrize(
    ("host", "literal"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("2001:db8::8", True),
        ("localhost", False),
        ("1.2.3", False),  # getaddrinfo() would take it; a resolver would be asked first
        ("example.com", False),
        ("", False),
    ],
)
def test_is_ip_literal(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal


def test_numeric_addresses_never_look_a_name_up() -> None:
    (entry,) = numeric_addresses("127.0.0.1", 80)
    assert entry[0] == socket.AF_INET
    assert entry[4] == ("127.0.0.1", 80)
    with pytest.raises(socket.gaierror):
        numeric_addresses("localhost", 80)


def test_ip_literal_skips_the_lookup_in_every_driver(
    make_client: MakeClient, ws_server: WebsocketsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``getaddrinfo()`` call for an IP literal says ``AI_NUMERICHOST``."""
    calls: list[tuple[Any, int]] = []
    real = socket.getaddrinfo

    def recording(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        calls.append((host, flags))
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    client = make_client()
    url = ws_server.url(unique_path())
    assert "//127.0.0.1:" in url
    client.connect(url)
    client.wait_open()
    client.ws.close()
    client.wait_closed()
    mine = [flags for host, flags in calls if host == "127.0.0.1"]
    assert mine, f"no address was made for 127.0.0.1: {calls}"
    assert all(flags & socket.AI_NUMERICHOST for flags in mine), calls
