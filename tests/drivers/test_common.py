"""What the socket-owning drivers share (``drivers/_common.py``): addresses and socket options."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import pytest

from servers import unique_path
from wsloop.drivers import _asyncio_steps, _poll_steps
from wsloop.drivers._common import SOCKET_OPTIONS, is_ip_literal, new_socket, numeric_addresses

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


# Socket options.


def options_of(sock: socket.socket) -> dict[str, int]:
    """What a test compares between drivers: the options set, and blocking."""
    got = {
        f"{level}/{option}": sock.getsockopt(level, option) for level, option, _ in SOCKET_OPTIONS
    }
    got["keepalive"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    got["blocking"] = int(os.get_blocking(sock.fileno()))  # the descriptor's O_NONBLOCK
    return got


def test_new_socket_is_set_up_before_it_connects() -> None:
    with new_socket(socket.AF_INET, socket.SOCK_STREAM, 0) as sock:
        with pytest.raises(OSError, match="not connected"):
            sock.getpeername()  # not connected, and already set up
        assert not sock.getblocking()
        for level, option, value in SOCKET_OPTIONS:
            assert sock.getsockopt(level, option) == value
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in SOCKET_OPTIONS


def driver_fileno(client: Client) -> int:
    ws: Any = client.ws
    inner = getattr(ws, "_ws", None)  # the asyncio adapter's AsyncWebSocket
    fd = inner.driver.fileno() if inner is not None else ws.fileno()
    assert fd >= 0
    return int(fd)


def driver_socket_options(client: Client) -> dict[str, int]:
    with socket.socket(fileno=os.dup(driver_fileno(client))) as dup:
        return options_of(dup)


def test_every_driver_sets_the_same_socket_options(
    make_client: MakeClient, ws_server: WebsocketsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both socket-owning drivers make their socket with :func:`new_socket`, before connecting."""
    made: list[int] = []

    def recording(family: int, type_: int, proto: int) -> socket.socket:
        sock = new_socket(family, type_, proto)
        made.append(sock.fileno())
        return sock

    for module in (_poll_steps, _asyncio_steps):  # where each driver dials
        monkeypatch.setattr(module, "new_socket", recording)
    client = make_client()
    client.connect(ws_server.url(unique_path()))
    client.wait_open()
    assert driver_fileno(client) in made
    got = driver_socket_options(client)
    client.ws.close()
    client.wait_closed()
    with new_socket(socket.AF_INET, socket.SOCK_STREAM, 0) as reference:
        expected = options_of(reference)
    assert got == expected
