"""Parsing and checking the URL given to ``connect()``."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from .exceptions import InvalidURI

__all__ = ["URL", "parse_url"]

_SCHEMES = {"ws": False, "wss": True, "http": False, "https": True}


@dataclass(frozen=True, slots=True)
class URL:
    """A WebSocket URL, checked and split into what a driver needs."""

    secure: bool
    host: str
    port: int
    resource: str
    """Path and query string, as sent in the request line."""
    user_info: tuple[str, str] | None = None

    @property
    def ws_url(self) -> str:
        """The URL in ws/wss form, without credentials."""
        scheme = "wss" if self.secure else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{scheme}://{host}{port}{self.resource}"

    @property
    def authority(self) -> str:
        """``host:port``, with brackets around an IPv6 literal."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> URL:
    """Check a WebSocket URL and split it.

    ``http://`` and ``https://`` are accepted as ``ws://`` and ``wss://``, as
    browsers do now.

    Raises:
        InvalidURI: (a :class:`ValueError`) with the reason.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    text = url.strip()
    if not text:
        raise InvalidURI(url, "it is empty")
    if any(c in text for c in " \t\r\n"):
        raise InvalidURI(url, "it contains white space")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:
        raise InvalidURI(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        if "://" not in text:
            raise InvalidURI(url, "it has no scheme; start it with ws:// or wss://")
        raise InvalidURI(url, f"the scheme must be ws:// or wss://, not {scheme}://")
    if parts.fragment or text.endswith("#"):
        raise InvalidURI(url, "a WebSocket URL cannot have a #fragment")
    secure = _SCHEMES[scheme]
    host = parts.hostname
    if not host:
        raise InvalidURI(url, "it has no host name")
    try:
        port = parts.port
    except ValueError:
        raise InvalidURI(url, "the port must be a number from 1 to 65535") from None
    if port == 0:
        raise InvalidURI(url, "the port must be a number from 1 to 65535")
    if port is None:
        port = 443 if secure else 80
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURI(url, "the host name is not valid") from None
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    resource = path
    if parts.query:
        resource += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    user_info = None
    if parts.username is not None:
        if parts.password is None:
            raise InvalidURI(url, "a user name needs a password (user:password@host)")
        user_info = (
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password),
        )
    return URL(secure, host, port, resource, user_info)
