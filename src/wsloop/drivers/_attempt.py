"""The plan of one connection attempt, shared by the drivers that own a socket.

Reaching a WebSocket server takes up to five steps before its handshake, and
which ones run depends on the URL and the ``proxy`` option::

    resolve  ->  tcp  ->  proxy  ->  tls  ->  ws
    (a name)    (each     (HTTP      (wss://)  (the WebSocket
                address)  CONNECT              handshake, then
                          or SOCKS)            the connection)

With a proxy, ``resolve`` and ``tcp`` reach the proxy rather than the server;
with ``socks5://`` (the client resolves names) ``resolve`` looks the server's
name up first, then the proxy's. An IP literal is never looked up.

:class:`Attempt` makes those decisions and names the failures; the poll
driver carries each step out with non-blocking calls inside ``poll()``, the
asyncio driver awaits it. Neither decides anything of its own, so both fail
with the same error, in the same words, at the same step. No socket, clock
or thread here: the drivers report what happened, and the tests drive an
attempt through every step and failure in memory.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .._sansio.proxy import select_proxy, start_handshake
from ..exceptions import ProxyError
from ._common import (
    connect_error,
    is_ip_literal,
    proxy_connect_error,
    proxy_lost,
    proxy_resolve_error,
    resolve_error,
)

if TYPE_CHECKING:
    from typing import Any

    from .._sansio.proxy import Proxy, ProxyHandshake
    from .._url import URL
    from ..exceptions import WebSocketError

__all__ = ["Attempt", "Phase"]


class Phase(enum.StrEnum):
    """The step a driver's connection is at; equal to its name as a string."""

    IDLE = "idle"
    """No connection: never connected, or ended."""
    RESOLVE = "resolve"
    """Looking a host name up (the server's, or the proxy's)."""
    TCP = "tcp"
    """Connecting TCP, one address after the other."""
    PROXY = "proxy"
    """The proxy handshake (HTTP CONNECT or SOCKS)."""
    TLS = "tls"
    """The TLS handshake of a ``wss://`` URL (its context may still be building)."""
    WS = "ws"
    """The WebSocket handshake, then the open connection and its close."""


class Attempt:
    """The decisions of one attempt to reach ``url``: which host, which step, which error.

    Raises:
        ProxyError: the ``proxy`` option (or a proxy variable of the
            environment) is malformed.
    """

    __slots__ = ("proxy", "resolving_target", "tunnel_host", "url", "user_agent")

    def __init__(self, url: URL, proxy: str | bool | None, user_agent: str | None) -> None:
        self.url = url
        try:
            self.proxy: Proxy | None = select_proxy(url, proxy)
        except ValueError as exc:  # the façade checks the option itself first
            raise ProxyError(str(exc), proxy="") from exc
        self.user_agent = user_agent
        self.tunnel_host = url.host
        """The destination as the proxy must see it: the server's name, or
        (``socks5://``) the address it was resolved to."""
        self.resolving_target = (
            self.proxy is not None and not self.proxy.remote_dns and not is_ip_literal(url.host)
        )
        """The next lookup is of the server's name, for a proxy that takes addresses."""

    def first_lookup(self) -> tuple[str, int]:
        """The host and port to look up (or dial, for an IP literal) first."""
        if self.resolving_target:
            return self.url.host, self.url.port
        return self.dial_target()

    def dial_target(self) -> tuple[str, int]:
        """The host and port TCP connects to: the proxy's, if there is one, else the server's."""
        proxy = self.proxy
        if proxy is None:
            return self.url.host, self.url.port
        return proxy.host, proxy.port

    def resolved(self, infos: list[tuple[Any, ...]]) -> bool:
        """Take the addresses a lookup found; True when they are the ones to dial.

        False when that lookup was the server's name for a ``socks5://``
        proxy: its first address becomes :attr:`tunnel_host`, and the
        driver looks up (or dials) :meth:`dial_target` next.
        """
        if not self.resolving_target:
            return True
        self.resolving_target = False
        # The first address, in the order the system prefers; drop an IPv6 scope.
        self.tunnel_host = str(infos[0][4][0]).partition("%")[0]
        return False

    def lookup_failed(self, error: BaseException | None) -> WebSocketError:
        """The error for a lookup that failed (or found nothing)."""
        proxy = self.proxy
        if proxy is None or self.resolving_target:
            return resolve_error(self.url.host, error)
        return proxy_resolve_error(proxy, error)

    def connect_failed(self, error: BaseException | None) -> WebSocketError:
        """The error when no address accepted TCP (``error``: the last one's)."""
        if self.proxy is not None:
            return proxy_connect_error(self.proxy, error)
        return connect_error(self.url, error)

    def proxy_handshake(self) -> ProxyHandshake:
        """The Sans-I/O handshake that opens the tunnel (there must be a proxy).

        Raises:
            ProxyError: the destination cannot be sent to this proxy.
        """
        proxy = self.proxy
        assert proxy is not None
        return start_handshake(
            proxy, self.tunnel_host, self.url.port, name=self.url.host, user_agent=self.user_agent
        )

    def proxy_lost(self, handshake: ProxyHandshake, error: BaseException) -> ProxyError:
        """The error when the connection to the proxy broke during ``handshake``."""
        proxy = self.proxy
        assert proxy is not None
        return proxy_lost(proxy, handshake.target, error)

    def after_transport(self, early: bytes = b"") -> Phase:
        """TCP, or the tunnel, is up: TLS or the WebSocket handshake next.

        ``early``: what came after the proxy's answer, already the server's.

        Raises:
            ProxyError: bytes came before TLS, which the client must start.
        """
        url = self.url
        if not url.secure:
            return Phase.WS  # the early bytes are the server's: the session takes them
        if early:
            proxy = self.proxy
            assert proxy is not None
            raise ProxyError(
                f"proxy {proxy.authority} sent {len(early)} unexpected bytes "
                f"after opening the tunnel to {url.authority}, before TLS started",
                proxy=proxy.authority,
                target=url.authority,
            )
        return Phase.TLS

    def after_tcp(self) -> Phase:
        """TCP is up: the proxy handshake, TLS or the WebSocket handshake next."""
        if self.proxy is not None:
            return Phase.PROXY
        return Phase.TLS if self.url.secure else Phase.WS
