"""The asyncio driver's steps before the WebSocket handshake, as coroutines.

:meth:`AsyncioDriver._open <wsloop.drivers.asyncio.AsyncioDriver>` awaits
them in the order the connection attempt's plan
(:class:`~wsloop.drivers._attempt.Attempt`) gives: look the host up, connect
TCP to the first address that answers, open the proxy's tunnel, start TLS.
Each either returns what the next step needs or raises the
:class:`~wsloop.exceptions.WebSocketError` the plan names for its failure;
none of them touches the driver or the session, so the driver alone decides
what a failure does (its On error and On closed) and which step a connect
timeout names.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from ._common import is_ip_literal, new_socket, numeric_addresses, tls_error

if TYPE_CHECKING:
    import ssl
    from concurrent.futures import Future

    from .._url import URL
    from ._attempt import Attempt

__all__ = ["connect_socket", "look_up", "start_tls", "tunnel"]

_PROXY_READ = 4096
"""Bytes read from a proxy at a time while its handshake runs."""


async def look_up(
    loop: asyncio.AbstractEventLoop, attempt: Attempt, host: str, port: int
) -> list[tuple[Any, ...]]:
    """The addresses of ``host`` (an IP literal is not looked up).

    Raises:
        ConnectError: nothing was found; the text names what was looked up.
    """
    error: OSError | None = None
    infos: list[tuple[Any, ...]] = []
    try:
        if is_ip_literal(host):
            infos = numeric_addresses(host, port)
        else:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        error = exc
    if not infos:
        raise attempt.lookup_failed(error)
    return infos


async def connect_socket(
    loop: asyncio.AbstractEventLoop, attempt: Attempt, infos: list[tuple[Any, ...]]
) -> socket.socket:
    """A socket connected to the first of ``infos`` that answers.

    Raises:
        ConnectError: none answered; the text names the host and the last error.
    """
    last: OSError | None = None
    for family, type_, proto, _, addr in infos:
        try:
            sock = new_socket(family, type_, proto)
        except OSError as exc:
            last = exc
            continue
        try:
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise attempt.connect_failed(last)


async def tunnel(loop: asyncio.AbstractEventLoop, sock: socket.socket, attempt: Attempt) -> bytes:
    """Open the tunnel through the attempt's proxy; return what came after the answer.

    Raises:
        ProxyError: the proxy refused, broke the protocol or the connection.
    """
    handshake = attempt.proxy_handshake()
    while True:
        out = handshake.data_to_send()
        try:
            if out:
                await loop.sock_sendall(sock, out)
            if handshake.done:
                break
            data = await loop.sock_recv(sock, _PROXY_READ)
        except OSError as exc:
            raise attempt.proxy_lost(handshake, exc) from exc
        if data:
            handshake.receive_data(data)
        else:
            handshake.receive_eof()
    return handshake.tunnel_data()


async def start_tls(
    loop: asyncio.AbstractEventLoop,
    context: Future[ssl.SSLContext],
    url: URL,
    transport: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    connect_timeout: float | None,
) -> asyncio.Transport:
    """Upgrade ``transport`` to TLS for ``url``'s host, with the context being built.

    Raises:
        TLSError: the context could not be built, or the handshake failed
            (the text says whether it is the certificate).
    """
    try:
        # Loading the system's CA certificates reads files: not on the loop.
        ctx = context.result() if context.done() else await asyncio.wrap_future(context)
    except Exception as exc:  # OSError, ValueError, or whatever the build raised
        raise tls_error(url, exc)  # noqa: B904 (its __cause__ is exc)
    # asyncio's own handshake timeout must not fire before ours.
    try:
        tls = await loop.start_tls(
            transport,
            protocol,
            ctx,
            server_hostname=url.host,
            ssl_handshake_timeout=None if connect_timeout is None else connect_timeout + 5.0,
        )
    except Exception as exc:
        raise tls_error(url, exc)  # noqa: B904 (its __cause__ is exc)
    if tls is None:  # pragma: no cover - only a loop without TLS support
        raise tls_error(url, RuntimeError("the loop cannot start TLS"))
    return tls
