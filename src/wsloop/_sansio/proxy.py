"""Proxies: which one a URL goes through, and the handshakes that open a tunnel.

Sans-I/O, like :mod:`wsloop.sansio`: nothing here opens a socket, reads a
clock or resolves a name. A driver asks :func:`select_proxy` where to
connect, connects there, then feeds the proxy's bytes to the handshake made
by :func:`start_handshake` and writes what it returns, until the handshake is
:attr:`~ProxyHandshake.done`. From then on the socket is a tunnel to the
WebSocket server: TLS (for ``wss://``) and the WebSocket handshake run through
it as they would on a direct connection.

Theory of operation
-------------------
Choosing a proxy (:func:`select_proxy`), first match wins:

1. The ``proxy`` option, when it is a URL: always used, ``NO_PROXY`` or not.
2. The ``proxy`` option ``False`` or ``""``: no proxy, whatever the
   environment says.
3. The ``proxy`` option ``None`` (the default) or ``True``: the environment,
   read as :func:`urllib.request.getproxies_environment` reads it (so a lower-case
   variable wins over its upper-case twin, and an empty lower-case one hides
   it): ``https_proxy`` for ``wss://``, ``http_proxy`` for ``ws://``, else
   ``all_proxy``; unless the host is excluded by ``no_proxy``
   (:func:`proxy_bypassed`). System settings (the Windows registry, macOS
   network preferences) are not read.

Handshakes, each a small state machine fed with bytes:

:class:`HTTPConnect`
    ``CONNECT host:port HTTP/1.1`` (RFC 9110, section 9.3.6), with
    ``Proxy-Authorization: Basic`` (RFC 7617) when the proxy URL has
    credentials. Any 2xx answer opens the tunnel; the answer's header is read
    up to the empty line, at most :data:`MAX_RESPONSE_HEAD` bytes, and any
    byte after it belongs to the tunnel.
:class:`SOCKS5`
    RFC 1928, with "no authentication" and, when the proxy URL has
    credentials, user name/password (RFC 1929). ``socks5h://`` sends the host
    name to the proxy, which resolves it; ``socks5://`` sends an address
    that the driver resolved beforehand (see :attr:`Proxy.remote_dns`).

Failures raise :class:`ProxyError`, a :class:`~wsloop.ConnectError` whose
text names the proxy, the destination and what went wrong.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..exceptions import ProxyError

if TYPE_CHECKING:
    from .._url import URL

__all__ = [
    "MAX_RESPONSE_HEAD",
    "SOCKS5",
    "HTTPConnect",
    "Proxy",
    "ProxyHandshake",
    "parse_proxy",
    "proxy_bypassed",
    "select_proxy",
    "start_handshake",
]

MAX_RESPONSE_HEAD = 64 * 1024
"""The largest header an HTTP proxy may answer ``CONNECT`` with, in bytes."""

ProxyScheme = Literal["http", "socks5", "socks5h"]

_DEFAULT_PORTS: dict[str, int] = {"http": 80, "socks5": 1080, "socks5h": 1080}

_SOCKS5_REPLIES = {
    1: "general failure of the SOCKS server",
    2: "the proxy's rules do not allow this connection",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused by the destination",
    6: "TTL expired",
    7: "the proxy does not support the CONNECT command",
    8: "the proxy does not support this address type",
}
"""RFC 1928, section 6: the REP field of the server's reply."""


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy server, as parsed from a proxy URL."""

    scheme: ProxyScheme
    """``"http"`` (HTTP CONNECT), ``"socks5"`` or ``"socks5h"``."""
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str | None = None
    """The environment variable it came from; ``None`` for the ``proxy`` option."""

    @property
    def authority(self) -> str:
        """``host:port``, with brackets around an IPv6 literal."""
        return _authority(self.host, self.port)

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the destination's host name.

        False only for ``socks5://``, where the driver resolves the name and
        sends the address.
        """
        return self.scheme != "socks5"

    @property
    def label(self) -> str:
        """``host:port``, followed by where the proxy setting came from."""
        if self.source is None:
            return self.authority
        return f"{self.authority} (from {self.source})"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


def _redact(text: str) -> str:
    """``text`` with the password of a URL's user information hidden."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    at = rest.rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return text
    user = rest[: rest.index(":")]
    return f"{scheme}{sep}{user}:***{rest[at:]}"


def parse_proxy(text: str, *, source: str | None = None) -> Proxy:
    """Parse a proxy URL: ``http://``, ``socks5://`` or ``socks5h://``.

    ``host:port`` without a scheme means ``http://``, as curl reads it. The
    port defaults to 80 for ``http://`` and 1080 for SOCKS. Credentials are
    ``user:password@`` before the host, percent-encoded where needed.

    Raises:
        ValueError: the URL is not usable; the text hides its password.
    """
    if not isinstance(text, str):
        raise TypeError(f"a proxy URL must be a str, not {type(text).__name__}")
    where = "" if source is None else f" (from {source})"

    def invalid(why: str) -> ValueError:
        return ValueError(f"invalid proxy URL {_redact(text)!r}{where}: {why}")

    stripped = text.strip()
    if not stripped:
        raise invalid("it is empty")
    if "://" not in stripped:
        stripped = "http://" + stripped
    try:
        parts = urllib.parse.urlsplit(stripped)
        port = parts.port
    except ValueError:
        raise invalid("the port must be a number from 1 to 65535") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise invalid("proxies reached over TLS (https://) are not supported; use http://")
    if scheme not in _DEFAULT_PORTS:
        raise invalid(f"the scheme must be http://, socks5:// or socks5h://, not {scheme}://")
    host = parts.hostname
    if not host:
        raise invalid("it has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise invalid("a proxy URL has no path, query or fragment")
    if port == 0:
        raise invalid("the port must be a number from 1 to 65535")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise invalid("the host name is not valid") from None
    username = password = None
    if parts.username is not None:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    return Proxy(
        scheme,  # type: ignore[arg-type]  # checked against _DEFAULT_PORTS
        host,
        port or _DEFAULT_PORTS[scheme],
        username,
        password,
        source,
    )


def _environment_proxies() -> dict[str, str]:
    """The proxy variables, read as :func:`urllib.request.getproxies_environment` reads them.

    That function decodes every environment variable, on every call (~60 µs
    with a usual environment): here only the eight names that matter are
    looked up. A lower-case variable wins over its upper-case twin, an empty
    lower-case one hides it, and under CGI (``REQUEST_METHOD`` set) an
    upper-case ``HTTP_PROXY`` is ignored (CVE-2016-1000110).
    """
    environ = os.environ
    proxies: dict[str, str] = {}
    for key in ("http", "https", "all", "no"):
        lower = environ.get(f"{key}_proxy")
        if lower is not None:
            if lower:
                proxies[key] = lower
            continue
        upper = environ.get(f"{key.upper()}_PROXY")
        if upper and not (key == "http" and "REQUEST_METHOD" in environ):
            proxies[key] = upper
    return proxies


def _environment_name(key: str) -> str:
    """The variable that :func:`urllib.request.getproxies_environment` took ``key`` from."""
    lower = f"{key}_proxy"
    return lower if os.environ.get(lower) else lower.upper()


def select_proxy(url: URL, option: str | bool | None = None) -> Proxy | None:
    """The proxy to reach ``url`` through, or ``None`` to connect directly.

    Args:
        url: the WebSocket URL.
        option: the ``proxy`` option: a proxy URL; ``False`` or ``""`` for
            none; ``None`` or ``True`` to read the environment (see the
            module docstring for the precedence).

    Raises:
        ValueError: the ``proxy`` option is not a usable proxy URL.
        ProxyError: an environment variable holds an unusable proxy URL.
    """
    if option is False or option == "":
        return None
    if isinstance(option, str):
        return parse_proxy(option)
    proxies = _environment_proxies()
    keys = ("https", "all") if url.secure else ("http", "all")
    for key in keys:
        value = proxies.get(key)
        if value:
            break
    else:
        return None
    if proxy_bypassed(url.host, url.port, proxies.get("no", "")):
        return None
    name = _environment_name(key)
    try:
        return parse_proxy(value, source=name)
    except ValueError as exc:
        raise ProxyError(str(exc), proxy=_redact(value)) from None


def _split_entry(entry: str) -> tuple[str, int | None]:
    """Split a ``no_proxy`` entry into host (or network) and optional port."""
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:  # name:port or IPv4:port (a bare IPv6 has more colons)
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def proxy_bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``no_proxy`` excludes ``host:port`` from proxying.

    Entries are separated by commas: ``*`` (every host), a host name (which
    also matches its subdomains; a leading ``.`` or ``*.`` changes nothing),
    an IPv4 or IPv6 address (``[::1]`` or ``::1``), a CIDR network such as
    ``10.0.0.0/8``; each but ``*`` with an optional ``:port``. Comparisons
    ignore case. Names are not resolved: ``localhost`` does not exclude
    ``127.0.0.1``.
    """
    entries = [e.strip() for e in no_proxy.split(",") if e.strip()]
    if "*" in entries:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    host = host.lower().rstrip(".")
    for entry in entries:
        name, entry_port = _split_entry(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                network = ipaddress.ip_network(name, strict=False)
            except ValueError:
                continue
            if address.version == network.version and address in network:
                return True
            continue
        name = name.lower().removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


class ProxyHandshake:
    """Opens a tunnel through a proxy: bytes in, bytes out, no I/O.

    Write :meth:`data_to_send` to the proxy, feed what it answers to
    :meth:`receive_data` (or :meth:`receive_eof`), and repeat until
    :attr:`done`; then :meth:`tunnel_data` holds the bytes that already
    belong to the tunnel.
    """

    kind = "proxy"
    """How the proxy is named in error texts."""

    def __init__(self, proxy: Proxy, host: str, port: int, *, name: str | None = None) -> None:
        self.proxy = proxy
        self.host = host
        """The destination host sent to the proxy: a name or an IP address."""
        self.port = port
        self.target = _authority(name or host, port)
        """The destination as error texts name it (the host name, not its address)."""
        self.done = False
        """True once the tunnel is open."""
        self._out = bytearray()
        self._in = bytearray()

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write to the proxy."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the proxy.

        Raises:
            ProxyError: the proxy refused the tunnel or broke the protocol.
        """
        self._in += data
        if not self.done:
            self._advance()

    def receive_eof(self) -> None:
        """The proxy closed the connection.

        Raises:
            ProxyError: always before :attr:`done`.
        """
        if not self.done:
            raise self._error(
                f"{self.kind} {self.proxy.authority} closed the connection "
                f"before opening the tunnel to {self.target}{self._eof_hint()}"
            )

    def tunnel_data(self) -> bytes:
        """Return and forget the bytes received after the handshake."""
        data = bytes(self._in) if self.done else b""
        if self.done:
            self._in.clear()
        return data

    def _advance(self) -> None:
        raise NotImplementedError

    def _eof_hint(self) -> str:
        return ""

    def _error(self, message: str, status: int | None = None) -> ProxyError:
        return ProxyError(message, proxy=self.proxy.authority, target=self.target, status=status)


class HTTPConnect(ProxyHandshake):
    """The HTTP ``CONNECT`` handshake (RFC 9110, section 9.3.6)."""

    kind = "proxy"

    def __init__(
        self,
        proxy: Proxy,
        host: str,
        port: int,
        *,
        name: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        super().__init__(proxy, host, port, name=name)
        authority = _authority(host, port)
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if user_agent:
            lines.append(f"User-Agent: {user_agent}")
        if proxy.username is not None:
            # RFC 7617: base64 of "user-id:password", UTF-8 being the charset
            # every current proxy expects.
            pair = f"{proxy.username}:{proxy.password or ''}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(pair).decode('ascii')}")
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _eof_hint(self) -> str:
        if not self._in:
            return " (is it an HTTP proxy?)"
        return ""

    def _advance(self) -> None:
        data = self._in
        if not data.startswith(b"HTTP/"[: len(data)]):
            raise self._not_http(bytes(data))
        # The header ends at the first empty line; tolerate bare LF endings.
        ends = [
            (i, n) for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if i >= 0
        ]
        if not ends:
            if len(data) > MAX_RESPONSE_HEAD:
                raise self._error(
                    f"proxy {self.proxy.authority} answered CONNECT with a header larger "
                    f"than {MAX_RESPONSE_HEAD} bytes"
                )
            return
        end, size = min(ends)
        status_line = bytes(data[:end]).split(b"\n", 1)[0].rstrip(b"\r")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
            raise self._not_http(status_line)
        status = int(parts[1])
        reason = parts[2].decode("latin-1").strip() if len(parts) == 3 else ""
        if not 200 <= status < 300:
            raise self._refused(status, reason)
        del data[: end + size]
        self.done = True

    def _not_http(self, data: bytes) -> ProxyError:
        text = f"proxy {self.proxy.authority} did not answer like an HTTP proxy: {data[:60]!r}"
        if data[:1] == b"\x05":
            text += " (a SOCKS5 proxy? then use socks5:// or socks5h://)"
        return self._error(text)

    def _refused(self, status: int, reason: str) -> ProxyError:
        text = f"proxy {self.proxy.authority} refused the tunnel to {self.target}: HTTP {status}"
        if reason:
            text += f" {reason}"
        if status in (401, 407):
            if self.proxy.username is None:
                text += (
                    " (the proxy needs a user name and password: http://user:password@host:port)"
                )
            else:
                text += " (wrong user name or password?)"
        return self._error(text, status)


class SOCKS5(ProxyHandshake):
    """The SOCKS5 handshake (RFC 1928), with user name/password (RFC 1929)."""

    kind = "SOCKS5 proxy"

    def __init__(self, proxy: Proxy, host: str, port: int, *, name: str | None = None) -> None:
        super().__init__(proxy, host, port, name=name)
        self._step = "method"
        # 3. "The client connects to the server, and sends a version
        # identifier/method selection message": VER, NMETHODS, METHODS.
        methods = b"\x00\x02" if proxy.username is not None else b"\x00"
        self._out += b"\x05" + bytes([len(methods)]) + methods
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            encoded = host.encode("idna") if not host.isascii() else host.encode()
            if not 0 < len(encoded) <= 255:
                raise self._error(
                    f"SOCKS5 proxy {proxy.authority} cannot be sent the host name "
                    f"{host!r}: it must be 1 to 255 bytes long"
                ) from None
            # ATYP 3: "the first octet of the address field contains the
            # number of octets of name that follow".
            self._address = b"\x03" + bytes([len(encoded)]) + encoded
        else:
            atyp = b"\x01" if address.version == 4 else b"\x04"
            self._address = atyp + address.packed
        if proxy.username is not None:
            user = proxy.username.encode()
            password = (proxy.password or "").encode()
            if not (0 < len(user) <= 255 and len(password) <= 255):
                raise self._error(
                    f"SOCKS5 proxy {proxy.authority}: the user name must be 1 to 255 "
                    "bytes and the password at most 255 bytes (RFC 1929)"
                )
            # RFC 1929, section 2: VER 1, ULEN, UNAME, PLEN, PASSWD.
            self._auth = b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password

    def _eof_hint(self) -> str:
        if self._step == "method":
            return " (is it a SOCKS5 proxy?)"
        if self._step == "auth":
            return " (wrong user name or password?)"
        return ""

    def _advance(self) -> None:
        data = self._in
        proxy = self.proxy.authority
        if self._step == "method":
            if len(data) < 2:
                return
            version, method = data[0], data[1]
            if version != 5:
                raise self._error(
                    f"the proxy {proxy} is not a SOCKS5 proxy (it answered {bytes(data[:8])!r})"
                )
            del data[:2]
            if method == 0x00:
                self._send_request()
            elif method == 0x02 and self.proxy.username is not None:
                self._out += self._auth
                self._step = "auth"
            elif method == 0xFF:
                if self.proxy.username is None:
                    why = (
                        "it requires authentication: give a user name and password "
                        "(socks5://user:password@host:port)"
                    )
                else:
                    why = "it accepts neither no authentication nor user name/password"
                raise self._error(f"SOCKS5 proxy {proxy} refused the connection: {why}")
            else:
                raise self._error(
                    f"SOCKS5 proxy {proxy} chose an authentication method that was "
                    f"not offered ({method:#04x})"
                )
        if self._step == "auth":
            if len(data) < 2:
                return
            # RFC 1929: "A STATUS field of X'00' indicates success."
            status = data[1]
            del data[:2]
            if status != 0:
                raise self._error(
                    f"SOCKS5 proxy {proxy} rejected the user name or password (status {status})",
                    status,
                )
            self._send_request()
        if self._step == "reply":
            self._read_reply()

    def _send_request(self) -> None:
        # 4. Requests: VER 5, CMD 1 (CONNECT), RSV 0, ATYP + DST.ADDR, DST.PORT.
        self._out += b"\x05\x01\x00" + self._address + self.port.to_bytes(2, "big")
        self._step = "reply"

    def _read_reply(self) -> None:
        data = self._in
        if len(data) < 2:
            return
        version, reply = data[0], data[1]
        proxy = self.proxy.authority
        if version != 5:
            raise self._error(f"SOCKS5 proxy {proxy} sent a malformed reply")
        if reply != 0:
            why = _SOCKS5_REPLIES.get(reply, "unknown error")
            text = (
                f"SOCKS5 proxy {proxy} could not connect to {self.target}: {why} (reply {reply})"
            )
            if reply == 8 and self.proxy.scheme == "socks5h":
                text += "; try socks5:// so that wsloop resolves the host name itself"
            raise self._error(text, reply)
        if len(data) < 5:
            return
        # 6. Replies: BND.ADDR is 4 or 16 bytes, or a length-prefixed name.
        atyp = data[3]
        if atyp == 1:
            size = 4 + 4 + 2
        elif atyp == 4:
            size = 4 + 16 + 2
        elif atyp == 3:
            size = 4 + 1 + data[4] + 2
        else:
            raise self._error(f"SOCKS5 proxy {proxy} sent a malformed reply")
        if len(data) < size:
            return
        del data[:size]
        self.done = True


def start_handshake(
    proxy: Proxy,
    host: str,
    port: int,
    *,
    name: str | None = None,
    user_agent: str | None = None,
) -> ProxyHandshake:
    """The handshake that opens a tunnel to ``host:port`` through ``proxy``.

    Args:
        proxy: the proxy.
        host: the destination as the proxy must see it: the host name, or
            for ``socks5://`` the address the driver resolved it to.
        port: the destination port.
        name: the destination host name for error texts, when ``host`` is
            its address.
        user_agent: sent to HTTP proxies in ``User-Agent``.

    Raises:
        ProxyError: the destination cannot be expressed to this proxy.
    """
    if proxy.scheme == "http":
        return HTTPConnect(proxy, host, port, name=name, user_agent=user_agent)
    return SOCKS5(proxy, host, port, name=name)
