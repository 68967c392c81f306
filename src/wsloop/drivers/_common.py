"""What every socket-owning driver shares: TLS setup and error texts.

Keeping the texts here makes a refused port, a bad certificate or a timeout
read the same whichever driver met it.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from ..exceptions import ConnectError, ConnectionClosedError, TimeoutError, TLSError

if TYPE_CHECKING:
    from .._url import URL
    from .base import Config

__all__ = [
    "connect_error",
    "connect_timeout",
    "connection_lost",
    "describe_os_error",
    "resolve_error",
    "ssl_context",
    "tls_error",
]

_PHASES = {
    "resolve": "resolving the host name",
    "tcp": "TCP connect",
    "tls": "TLS handshake",
    "ws": "WebSocket handshake",
}


def ssl_context(config: Config) -> ssl.SSLContext:
    """The context for ``wss://``: the user's, or a verifying one (TLS 1.2+)."""
    if config.ssl is not None:
        return config.ssl
    ctx = ssl.create_default_context(cafile=config.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


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


def tls_error(url: URL, exc: BaseException) -> TLSError:
    """The TLS handshake with ``url`` failed; say whether it is the certificate."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        text = f"TLS certificate verification failed for {url.host!r}: {why}"
    elif isinstance(exc, ssl.SSLError):
        text = f"TLS handshake with {url.authority} failed: {exc.reason or exc}"
    elif isinstance(exc, OSError):
        text = f"TLS handshake with {url.authority} failed: {describe_os_error(exc)}"
    else:
        text = f"could not set up TLS for {url.authority}: {exc}"
    new = TLSError(text)
    new.__cause__ = exc
    return new


def connection_lost(exc: BaseException) -> ConnectionClosedError:
    """The open connection broke (reset, broken pipe...)."""
    new = ConnectionClosedError(1006, describe_os_error(exc))
    _chain(new, exc)
    return new


def connect_timeout(phase: str, seconds: float | None) -> TimeoutError:
    """``connect_timeout`` expired during ``phase`` (a key of the phase table)."""
    return TimeoutError(f"connect ({_PHASES.get(phase, phase)})", seconds or 0.0)
