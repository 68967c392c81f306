"""What every socket-owning driver shares: addresses, TLS setup, proxy and error texts.

Keeping the texts here makes a refused port, a bad certificate, a proxy that
says no or a timeout read the same whichever driver met it.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import warnings
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectError, ConnectionClosedError, ProxyError, TimeoutError, TLSError
from ..sansio import Session

if TYPE_CHECKING:
    from .._sansio.proxy import Proxy
    from .._url import URL
    from .base import Config

__all__ = [
    "SOCKET_OPTIONS",
    "InsecureWarning",
    "connect_error",
    "connect_timeout",
    "connection_lost",
    "describe_os_error",
    "end_on_transport_error",
    "is_ip_literal",
    "new_session",
    "new_socket",
    "numeric_addresses",
    "proxy_connect_error",
    "proxy_lost",
    "proxy_resolve_error",
    "resolve_error",
    "ssl_context",
    "tls_error",
    "warn_insecure",
]

_PHASES = {
    "resolve": "resolving the host name",
    "tcp": "TCP connect",
    "proxy": "proxy handshake",
    "tls": "TLS handshake",
    "ws": "WebSocket handshake",
}

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or IPv6 address written out, which needs no name lookup."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


def numeric_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """The ``getaddrinfo()`` entries of the IP literal ``host``, without any lookup.

    ``AI_NUMERICHOST`` tells the system not to ask a resolver, whatever it
    is configured with (a call that cannot block, made where the driver runs).

    Raises:
        OSError: ``host`` is not an address.
    """
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)


SOCKET_OPTIONS: tuple[tuple[int, int, int], ...] = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""``setsockopt()`` calls made on every socket, in this order, before it connects.

``TCP_NODELAY``: a message goes out at once, not after the previous one is
acknowledged (Nagle's algorithm would hold back small game updates)."""


def new_session(url: URL, subprotocols: tuple[str, ...], config: Config) -> Session:
    """A client :class:`~wsloop.sansio.Session` for ``url`` with the options in ``config``."""
    return Session(
        url,
        subprotocols=subprotocols,
        compression=config.compression,
        max_message_size=config.max_message_size,
        origin=config.origin,
        headers=config.headers,
        user_agent=config.user_agent,
    )


def new_socket(family: int, type_: int, proto: int) -> socket.socket:
    """A non-blocking socket with :data:`SOCKET_OPTIONS` set, not connected yet.

    Raises:
        OSError: the system refused the socket or an option (it is closed).
    """
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        for level, option, value in SOCKET_OPTIONS:
            sock.setsockopt(level, option, value)
    except BaseException:
        sock.close()
        raise
    return sock


class InsecureWarning(UserWarning):
    """A ``wss://`` connection does not verify the server (``insecure=True``)."""


def _files(config: Config) -> str:
    names = [repr(f) for f in (config.certfile, config.keyfile) if f]
    return " and ".join(names)


def ssl_context(config: Config) -> ssl.SSLContext:
    """The context for ``wss://``: the user's, or one built from the options.

    The built one verifies the server against ``cafile`` (or the system's
    CAs), refuses anything older than TLS 1.2, presents the client
    certificate of ``certfile``/``keyfile`` if given, and verifies nothing
    when ``insecure`` is true.

    Raises:
        TLSError: a CA or certificate file could not be loaded.
    """
    if config.ssl is not None:
        return config.ssl
    try:
        ctx = ssl.create_default_context(cafile=config.cafile)
    except (OSError, ValueError) as exc:  # ssl.SSLError included
        raise _file_error(f"could not load the CA file {config.cafile!r}", exc) from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.certfile:
        try:
            ctx.load_cert_chain(config.certfile, config.keyfile)
        except (OSError, ValueError) as exc:
            what = f"could not load the client certificate from {_files(config)}"
            raise _file_error(what, exc) from exc
    return ctx


class _FileError(TLSError, ValueError):
    """A CA, certificate or key file could not be loaded.

    A :class:`ValueError` too, so that a driver that turns ``OSError`` and
    ``ValueError`` from :func:`ssl_context` into :func:`tls_error` reports it
    as it is.
    """


def _file_error(what: str, exc: BaseException) -> TLSError:
    if isinstance(exc, ssl.SSLError):
        why = exc.reason or str(exc)
        if exc.reason == "KEY_VALUES_MISMATCH":
            why = "the private key does not match the certificate"
        elif exc.reason in ("PEM_LIB", "NO_START_LINE"):
            why = "not a PEM file with what it should hold (a certificate, a key)"
    else:
        why = describe_os_error(exc)
    return _FileError(f"{what}: {why}")


def warn_insecure(config: Config, url: URL) -> None:
    """Warn, once per connect, that ``insecure=True`` turns verification off.

    Call it on the application's thread, before any state changes: when
    warnings are errors, the exception then leaves ``connect()`` cleanly.
    """
    if not (config.insecure and config.ssl is None and url.secure):
        return
    warnings.warn(
        InsecureWarning(
            f"insecure=True: the certificate of {url.host!r} is not verified; anyone on "
            "the network path can read and change this connection"
        ),
        stacklevel=_caller_level(),
    )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside wsloop, for ``warnings.warn``."""
    level = 1
    frame = sys._getframe(1)  # warn_insecure(), stacklevel 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def describe_os_error(exc: BaseException) -> str:
    """A short lower-case phrase for a socket error."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is a server listening there?)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _chain(new: ConnectError | ConnectionClosedError, cause: BaseException | None) -> None:
    if cause is not None:
        new.__cause__ = cause


def resolve_error(host: str, exc: BaseException | None) -> ConnectError:
    """The name lookup of ``host`` failed."""
    why = "no address found" if exc is None else describe_os_error(exc)
    new = ConnectError(f"could not resolve host {host!r}: {why}")
    _chain(new, exc)
    return new


def connect_error(url: URL, exc: BaseException | None) -> ConnectError:
    """No TCP connection could be made to any address of ``url``."""
    why = "no usable address" if exc is None else describe_os_error(exc)
    new = ConnectError(f"could not connect to {url.authority}: {why}")
    _chain(new, exc)
    return new


_TLS_VERSIONS = "no TLS version in common (wsloop requires TLS 1.2 or newer)"

_TLS_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        "the server requires a client certificate (use the certfile= and keyfile= options)"
    ),
    "SSLV3_ALERT_HANDSHAKE_FAILURE": (
        "the server refused the handshake (no cipher in common, or it requires a "
        "client certificate)"
    ),
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client certificate has expired",
    "TLSV1_ALERT_PROTOCOL_VERSION": _TLS_VERSIONS,
    "UNSUPPORTED_PROTOCOL": _TLS_VERSIONS,
    "NO_PROTOCOLS_AVAILABLE": _TLS_VERSIONS,
    "WRONG_VERSION_NUMBER": "the server did not answer with TLS (is it a ws:// server?)",
    "UNEXPECTED_EOF_WHILE_READING": "the server closed the connection during the handshake",
}
"""Readable texts for the OpenSSL reasons a person meets most."""


def tls_error(url: URL, exc: BaseException) -> TLSError:
    """The TLS handshake with ``url`` failed; say whether it is the certificate."""
    if isinstance(exc, TLSError):  # already explained, e.g. by ssl_context()
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        text = f"TLS certificate verification failed for {url.host!r}: {why}"
    elif isinstance(exc, ssl.SSLEOFError):
        text = f"TLS handshake with {url.authority} failed: the server closed the connection"
    elif isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        human = _TLS_REASONS.get(reason)
        why = f"{human} ({reason})" if human else reason
        text = f"TLS handshake with {url.authority} failed: {why}"
    elif isinstance(exc, OSError):
        text = f"TLS handshake with {url.authority} failed: {describe_os_error(exc)}"
    else:
        text = f"could not set up TLS for {url.authority}: {exc}"
    new = TLSError(text)
    new.__cause__ = exc
    return new


def proxy_resolve_error(proxy: Proxy, exc: BaseException | None) -> ProxyError:
    """The name lookup of the proxy's host failed."""
    why = "no address found" if exc is None else describe_os_error(exc)
    new = ProxyError(
        f"could not resolve the proxy host {proxy.host!r}"
        f"{'' if proxy.source is None else f' (from {proxy.source})'}: {why}",
        proxy=proxy.authority,
    )
    _chain(new, exc)
    return new


def proxy_connect_error(proxy: Proxy, exc: BaseException | None) -> ProxyError:
    """No TCP connection could be made to the proxy."""
    if exc is None:
        why = "no usable address"
    elif isinstance(exc, ConnectionRefusedError):
        why = "connection refused (is the proxy running, on that port?)"
    else:
        why = describe_os_error(exc)
    new = ProxyError(f"could not connect to the proxy {proxy.label}: {why}", proxy=proxy.authority)
    _chain(new, exc)
    return new


def proxy_lost(proxy: Proxy, target: str, exc: BaseException) -> ProxyError:
    """The connection to the proxy broke before the tunnel was open."""
    why = describe_os_error(exc)
    if isinstance(exc, ConnectionResetError):
        why = "connection reset by the proxy"
    new = ProxyError(
        f"the connection to the proxy {proxy.authority} broke before the tunnel to "
        f"{target} was open: {why}",
        proxy=proxy.authority,
        target=target,
    )
    _chain(new, exc)
    return new


def connection_lost(exc: BaseException) -> ConnectionClosedError:
    """The open connection broke (reset, broken pipe...)."""
    new = ConnectionClosedError(1006, describe_os_error(exc))
    _chain(new, exc)
    return new


def connect_timeout(phase: str, seconds: float | None) -> TimeoutError:
    """``connect_timeout`` expired during ``phase`` (a key of the phase table)."""
    return TimeoutError(f"connect ({_PHASES.get(phase, phase)})", seconds or 0.0)


def end_on_transport_error(session: Session, exc: BaseException) -> None:
    """End ``session`` because the transport broke with ``exc`` (a reset, a broken pipe).

    Once both close frames were exchanged, RFC 6455 section 7.1.4 counts
    the closing handshake as complete: how TCP ends after that (a FIN, or a
    reset as Twisted-based servers send) changes nothing, and the close is
    clean, with the server's code and reason and no error. Before that, the
    connection was lost: an error with close code 1006.
    """
    if session.close_handshake_done:
        session.receive_eof()
    else:
        session.abort(connection_lost(exc))
