"""Proxies: the sans-I/O handshakes, proxy selection, and real proxies on loopback.

The integration tests go through real proxy servers started for the session:
tinyproxy (HTTP CONNECT, with and without BasicAuth) and microsocks (SOCKS5,
with and without user name/password), each on a free port of 127.0.0.1, in
front of the websockets echo server (plain and TLS) on 127.0.0.1 too. Every
such test runs on the poll and the thread driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings, strategies as st

from servers import SHORT, WAIT, WebsocketsServer, free_port, unique_path
from wsloop import (
    BinaryMessage,
    Closed,
    ConnectError,
    Error,
    Opened,
    TextMessage,
    TimeoutError,
    WebSocket,
)
from wsloop._sansio.proxy import (
    MAX_RESPONSE_HEAD,
    SOCKS5,
    HTTPConnect,
    Proxy,
    ProxyError,
    parse_proxy,
    proxy_bypassed,
    select_proxy,
    start_handshake,
)
from wsloop._url import parse_url
from wsloop.drivers.poll import PollDriver
from wsloop.drivers.thread import ThreadDriver

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator

    from servers import LoopThread

DRIVERS = ["poll", "thread"]

USER, PASSWORD = "wsloop", "s3cret"
"""Credentials of the proxies that want some (tinyproxy accepts only [-a-z0-9._])."""

SOCKS_PASSWORD = "p@ss:w0rd"
"""microsocks takes any password: this one must be percent-encoded in a URL."""

PROXY_VARIABLES = [
    f"{name}{suffix}"
    for name in ("http", "https", "all", "no", "ws", "wss")
    for suffix in ("_proxy", "_PROXY")
]


# A WebSocket with the options this work adds, before and after the façade takes them.

_NEW_OPTIONS = ("proxy", "certfile", "keyfile", "insecure")


def open_ws(driver: str, **options: Any) -> WebSocket:
    """A WebSocket on ``driver`` with ``options``.

    Options the façade does not take yet go straight into the driver's Config.
    """
    accepted = inspect.signature(WebSocket).parameters
    extra = {k: options.pop(k) for k in _NEW_OPTIONS if k in options and k not in accepted}
    if not extra:
        return WebSocket(driver=driver, **options)
    base: type[PollDriver] | type[ThreadDriver] = PollDriver if driver == "poll" else ThreadDriver

    class Patched(base):  # type: ignore[misc,valid-type]
        def __init__(self, config: Any) -> None:
            super().__init__(dataclasses.replace(config, **extra))

    return WebSocket(driver=Patched, **options)


def record(ws: WebSocket) -> list[Any]:
    """Every event of ``ws``, in order (appended from whichever thread runs handlers)."""
    events: list[Any] = []
    for name in ("on_opened", "on_text_message", "on_binary_message", "on_error", "on_closed"):
        setattr(ws, name, events.append)
    return events


def check_attempt(events: list[Any]) -> None:
    """The ordering contract: [Opened, messages...] [Error] Closed, Closed last and once."""
    kinds = [type(e).__name__ for e in events]
    assert kinds, "no events"
    assert kinds.count("Closed") == 1, kinds
    assert kinds[-1] == "Closed", kinds
    assert kinds.count("Error") <= 1, kinds
    assert "Opened" not in kinds[1:], kinds
    if "Error" in kinds:
        assert kinds[-2] == "Error", kinds
        assert not events[-1].was_clean, events
    assert all(isinstance(e, (TextMessage, BinaryMessage)) for e in events[1:-2]), kinds


class Run:
    """A recorded WebSocket, driven by ``poll()`` (which also waits for the thread driver)."""

    def __init__(self, driver: str, **options: Any) -> None:
        options.setdefault("ping_interval", None)
        self.ws = open_ws(driver, **options)
        self.events = record(self.ws)

    def pump(self, until: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"timed out; events so far: {self.events}"
            self.ws.poll(0.01)

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def echo(self, url: str, text: str = "hello through the tunnel") -> None:
        """Connect, check one echo, close cleanly."""
        self.ws.connect(url)
        self.pump(lambda: bool(self.of(Opened) or self.of(Closed)))
        assert self.of(Opened), f"the connection failed: {self.events}"
        self.ws.send_text(text)
        self.pump(lambda: bool(self.of(TextMessage) or self.of(Closed)))
        assert [e.text for e in self.of(TextMessage)] == [text]
        self.ws.close()
        self.pump(lambda: bool(self.of(Closed)))
        check_attempt(self.events)
        assert self.of(Closed)[0].was_clean

    def fails(self, url: str, timeout: float = WAIT) -> Error:
        """Connect, expect On error then exactly one On closed; return the error."""
        self.ws.connect(url)
        self.pump(lambda: bool(self.of(Closed)), timeout)
        check_attempt(self.events)
        [error] = self.of(Error)
        assert self.ws.error_msg == str(error.exception)
        return error  # type: ignore[no-any-return]

    def finish(self) -> None:
        if self.ws.is_open or self.ws.is_connecting:
            self.ws.close()
            with contextlib.suppress(AssertionError):
                self.pump(lambda: self.ws.is_closed)


@pytest.fixture(params=DRIVERS)
def run(request: pytest.FixtureRequest) -> Iterator[Callable[..., Run]]:
    """``run(**options)``: a recorded WebSocket on each driver in turn."""
    runs: list[Run] = []

    def factory(**options: Any) -> Run:
        r = Run(str(request.param), **options)
        runs.append(r)
        return r

    yield factory
    for r in runs:
        r.finish()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine running the tests leaks into them."""
    for name in [*PROXY_VARIABLES, "REQUEST_METHOD"]:
        monkeypatch.delenv(name, raising=False)


# Real proxies.


class ProxyProcess:
    """A proxy server in a subprocess, listening on 127.0.0.1:``port``."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[0]} did not start: {self.log()}")
            time.sleep(0.02)

    def url(self, scheme: str, user: str | None = None, password: str | None = None) -> str:
        auth = ""
        if user is not None:
            auth = f"{user}:{urllib_quote(password or '')}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def urllib_quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _program(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        message = f"needs {name} (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _tinyproxy(tmp: Path, auth: bool) -> ProxyProcess:
    program = _program("tinyproxy", "tinyproxy")
    port = free_port()
    conf = tmp / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 50",
        "LogLevel Info",
        # No Allow and no ConnectPort line: any client, any destination port.
    ]
    if auth:
        lines.append(f"BasicAuth {USER} {PASSWORD}")
    conf.write_text("\n".join(lines) + "\n")
    return ProxyProcess([program, "-d", "-c", str(conf)], port, tmp / f"tinyproxy-{port}.log")


def _microsocks(tmp: Path, auth: bool) -> ProxyProcess:
    program = _program("microsocks", "microsocks")
    port = free_port()
    argv = [program, "-i", "127.0.0.1", "-p", str(port)]
    if auth:
        argv += ["-u", USER, "-P", SOCKS_PASSWORD]
    return ProxyProcess(argv, port, tmp / f"microsocks-{port}.log")


@pytest.fixture(scope="session")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = _tinyproxy(tmp_path_factory.mktemp("tinyproxy"), auth=False)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def tinyproxy_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = _tinyproxy(tmp_path_factory.mktemp("tinyproxy"), auth=True)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def socks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = _microsocks(tmp_path_factory.mktemp("microsocks"), auth=False)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def socks_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = _microsocks(tmp_path_factory.mktemp("microsocks"), auth=True)
    yield proxy
    proxy.stop()


# TLS server and the CA that the client trusts.


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1 and localhost, and the CA file to trust it."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return server_ctx, str(cafile)


@pytest.fixture(scope="session")
def wss_server(
    loop_thread: LoopThread, tls: tuple[ssl.SSLContext, str]
) -> Iterator[WebsocketsServer]:
    server = WebsocketsServer(loop_thread, ssl_context=tls[0])
    yield server
    server.stop()


@pytest.fixture
def cafile(tls: tuple[ssl.SSLContext, str]) -> str:
    return tls[1]


def _localhost_is_ipv4_only() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(info[4][0] == "127.0.0.1" for info in infos)


needs_localhost = pytest.mark.skipif(
    not _localhost_is_ipv4_only(),
    reason="localhost must resolve to 127.0.0.1 only (the test servers listen there)",
)


@pytest.fixture
def silent_proxy() -> Iterator[int]:
    """A port that accepts TCP connections (in its backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


# HTTP CONNECT through tinyproxy.


def test_ws_through_http_proxy(run, tinyproxy, ws_server) -> None:
    url = ws_server.url(unique_path())
    run(proxy=tinyproxy.url("http")).echo(url)
    assert f"CONNECT 127.0.0.1:{ws_server.port}" in tinyproxy.log()


def test_wss_through_http_proxy_with_basic_auth(run, tinyproxy_auth, wss_server, cafile) -> None:
    url = wss_server.url(unique_path())
    run(proxy=tinyproxy_auth.url("http", USER, PASSWORD), cafile=cafile).echo(url)


def test_wss_by_name_through_http_proxy(run, tinyproxy, wss_server, cafile) -> None:
    """The proxy resolves the name; TLS checks the certificate against the name."""
    url = wss_server.url(unique_path(), host="localhost")
    if not _localhost_is_ipv4_only():
        pytest.skip("localhost must resolve to 127.0.0.1 only")
    run(proxy=tinyproxy.url("http"), cafile=cafile).echo(url)
    assert f"CONNECT localhost:{wss_server.port}" in tinyproxy.log()


def test_http_proxy_without_credentials_gets_407(run, tinyproxy_auth, ws_server) -> None:
    error = run(proxy=tinyproxy_auth.url("http")).fails(ws_server.url("/"))
    exc = error.exception
    assert isinstance(exc, ProxyError)
    assert isinstance(exc, ConnectError)
    assert exc.status == 407
    assert str(exc) == (
        f"proxy 127.0.0.1:{tinyproxy_auth.port} refused the tunnel to "
        f"127.0.0.1:{ws_server.port}: HTTP 407 Proxy Authentication Required "
        "(the proxy needs a user name and password: http://user:password@host:port)"
    )


def test_http_proxy_with_wrong_credentials(run, tinyproxy_auth, ws_server) -> None:
    # tinyproxy answers wrong credentials with 401 (and missing ones with 407).
    error = run(proxy=tinyproxy_auth.url("http", USER, "wrong")).fails(ws_server.url("/"))
    text = str(error.exception)
    assert text.startswith(f"proxy 127.0.0.1:{tinyproxy_auth.port} refused the tunnel to ")
    assert text.endswith("(wrong user name or password?)")
    assert error.exception.status in (401, 407)  # type: ignore[attr-defined]


def test_http_proxy_refuses_the_destination(run, tinyproxy) -> None:
    port = free_port()
    error = run(proxy=tinyproxy.url("http")).fails(f"ws://127.0.0.1:{port}/")
    assert str(error.exception) == (
        f"proxy 127.0.0.1:{tinyproxy.port} refused the tunnel to 127.0.0.1:{port}: "
        "HTTP 500 Unable to connect"
    )


# SOCKS5 through microsocks.


def test_ws_through_socks5(run, socks, ws_server) -> None:
    run(proxy=socks.url("socks5")).echo(ws_server.url(unique_path()))


@needs_localhost
def test_wss_through_socks5h_with_auth(run, socks_auth, wss_server, cafile) -> None:
    url = wss_server.url(unique_path(), host="localhost")
    run(proxy=socks_auth.url("socks5h", USER, SOCKS_PASSWORD), cafile=cafile).echo(url)


@needs_localhost
def test_ws_by_name_through_socks5_resolves_locally(run, socks_auth, ws_server) -> None:
    url = ws_server.url(unique_path(), host="localhost")
    run(proxy=socks_auth.url("socks5", USER, SOCKS_PASSWORD)).echo(url)


def test_wss_through_socks5(run, socks, wss_server, cafile) -> None:
    run(proxy=socks.url("socks5"), cafile=cafile).echo(wss_server.url(unique_path()))


def test_socks5_name_resolution_happens_where_the_scheme_says(run, socks) -> None:
    """socks5h:// lets the proxy fail to resolve; socks5:// fails here first."""
    url = "ws://no-such-host.invalid:80/"
    remote = run(proxy=socks.url("socks5h")).fails(url).exception
    assert isinstance(remote, ProxyError)
    assert str(remote).startswith(
        f"SOCKS5 proxy 127.0.0.1:{socks.port} could not connect to no-such-host.invalid:80: "
    )
    local = run(proxy=socks.url("socks5")).fails(url).exception
    assert not isinstance(local, ProxyError)
    assert str(local).startswith("could not resolve host 'no-such-host.invalid': ")


def test_socks5_refused_destination(run, socks) -> None:
    port = free_port()
    error = run(proxy=socks.url("socks5")).fails(f"ws://127.0.0.1:{port}/")
    assert str(error.exception) == (
        f"SOCKS5 proxy 127.0.0.1:{socks.port} could not connect to 127.0.0.1:{port}: "
        "connection refused by the destination (reply 5)"
    )
    assert error.exception.status == 5  # type: ignore[attr-defined]


def test_socks5_wrong_credentials(run, socks_auth, ws_server) -> None:
    error = run(proxy=socks_auth.url("socks5", USER, "wrong")).fails(ws_server.url("/"))
    assert str(error.exception).startswith(
        f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} rejected the user name or password"
    )


def test_socks5_without_credentials(run, socks_auth, ws_server) -> None:
    error = run(proxy=socks_auth.url("socks5")).fails(ws_server.url("/"))
    assert str(error.exception) == (
        f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} refused the connection: it requires "
        "authentication: give a user name and password (socks5://user:password@host:port)"
    )


def test_socks_url_given_an_http_proxy(run, tinyproxy, ws_server) -> None:
    # tinyproxy waits for the end of a request line that the SOCKS greeting never sends.
    r = run(proxy=tinyproxy.url("socks5"), connect_timeout=SHORT)
    error = r.fails(ws_server.url("/"))
    assert str(error.exception) == f"connect (proxy handshake) timed out after {SHORT:g} s"


def test_http_url_given_a_socks_proxy(run, socks, ws_server) -> None:
    error = run(proxy=socks.url("http")).fails(ws_server.url("/"))
    assert str(error.exception) == (
        f"proxy 127.0.0.1:{socks.port} did not answer like an HTTP proxy: b'\\x05\\xff' "
        "(a SOCKS5 proxy? then use socks5:// or socks5h://)"
    )


# Failures before the handshake.


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_refused_proxy_port(run, scheme) -> None:
    port = free_port()
    error = run(proxy=f"{scheme}://127.0.0.1:{port}").fails("ws://127.0.0.1:9/")
    assert str(error.exception) == (
        f"could not connect to the proxy 127.0.0.1:{port}: "
        "connection refused (is the proxy running, on that port?)"
    )


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_silent_proxy_times_out_in_the_proxy_handshake(run, silent_proxy, scheme) -> None:
    r = run(proxy=f"{scheme}://127.0.0.1:{silent_proxy}", connect_timeout=SHORT)
    started = time.monotonic()
    error = r.fails("ws://127.0.0.1:9/")
    assert time.monotonic() - started < SHORT + WAIT / 4
    exc = error.exception
    assert isinstance(exc, TimeoutError)
    assert exc.phase == "connect (proxy handshake)"
    assert str(exc) == f"connect (proxy handshake) timed out after {SHORT:g} s"


def test_proxy_host_that_does_not_resolve(run, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://no-such-proxy.invalid:3128")
    error = run().fails("wss://127.0.0.1:9/")
    assert str(error.exception).startswith(
        "could not resolve the proxy host 'no-such-proxy.invalid' (from HTTPS_PROXY): "
    )


def test_invalid_proxy_in_the_environment(run, monkeypatch) -> None:
    monkeypatch.setenv("http_proxy", "ftp://user:hunter2@127.0.0.1:21")
    error = run().fails("ws://127.0.0.1:9/")
    assert str(error.exception) == (
        "invalid proxy URL 'ftp://user:***@127.0.0.1:21' (from http_proxy): "
        "the scheme must be http://, socks5:// or socks5h://, not ftp://"
    )


# Choosing the proxy from the environment, end to end.


def dead_proxy() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_http_proxy_variable_is_used_for_ws(run, monkeypatch, tinyproxy, ws_server) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url("http"))
    monkeypatch.setenv("HTTPS_PROXY", dead_proxy())
    run().echo(ws_server.url(unique_path()))
    assert f"CONNECT 127.0.0.1:{ws_server.port}" in tinyproxy.log()


def test_https_proxy_variable_is_used_for_wss(run, monkeypatch, socks, wss_server, cafile) -> None:
    monkeypatch.setenv("HTTPS_PROXY", socks.url("socks5"))
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    run(cafile=cafile).echo(wss_server.url(unique_path()))


def test_all_proxy_variable_serves_both(run, monkeypatch, socks, ws_server) -> None:
    monkeypatch.setenv("ALL_PROXY", socks.url("socks5"))
    run().echo(ws_server.url(unique_path()))
    monkeypatch.setenv("ALL_PROXY", dead_proxy())
    error = run().fails(ws_server.url("/"))
    assert str(error.exception).startswith("could not connect to the proxy ")
    assert "(from ALL_PROXY)" in str(error.exception)


def test_scheme_variable_wins_over_all_proxy(run, monkeypatch, tinyproxy, ws_server) -> None:
    monkeypatch.setenv("ALL_PROXY", dead_proxy())
    monkeypatch.setenv("http_proxy", tinyproxy.url("http"))
    run().echo(ws_server.url(unique_path()))


@pytest.mark.parametrize(
    "no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "example.com, 127.0.0.1:{port}"]
)
def test_no_proxy_connects_directly(run, monkeypatch, ws_server, no_proxy) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=ws_server.port))
    run().echo(ws_server.url(unique_path()))


def test_no_proxy_with_another_port_still_proxies(run, monkeypatch, ws_server) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("no_proxy", f"127.0.0.1:{ws_server.port + 1}")
    error = run().fails(ws_server.url("/"))
    assert "(from HTTP_PROXY)" in str(error.exception)


def test_proxy_false_ignores_the_environment(run, monkeypatch, ws_server) -> None:
    monkeypatch.setenv("ALL_PROXY", dead_proxy())
    run(proxy=False).echo(ws_server.url(unique_path()))
    run(proxy="").echo(ws_server.url(unique_path()))


def test_explicit_proxy_wins_over_environment_and_no_proxy(
    run, monkeypatch, tinyproxy, ws_server
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("NO_PROXY", "*")
    run(proxy=tinyproxy.url("http")).echo(ws_server.url(unique_path()))


def test_thread_driver_ends_its_thread_after_a_proxy_failure(socks) -> None:
    ws = open_ws("thread", proxy=socks.url("socks5"), ping_interval=None)
    events = record(ws)
    driver = ws._driver
    assert isinstance(driver, ThreadDriver)
    ws.connect(f"ws://127.0.0.1:{free_port()}/")
    thread = driver.thread
    assert thread is not None
    assert ws.wait_closed(WAIT)
    check_attempt(events)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert driver.thread is None


# Sans-I/O: parsing and selection.


def test_parse_proxy_urls() -> None:
    assert parse_proxy("http://u:p%40x@127.0.0.1:3128") == Proxy(
        "http", "127.0.0.1", 3128, "u", "p@x"
    )
    assert parse_proxy("proxy.example:8080") == Proxy("http", "proxy.example", 8080)
    assert parse_proxy("http://proxy.example/") == Proxy("http", "proxy.example", 80)
    assert parse_proxy("SOCKS5H://[::1]") == Proxy("socks5h", "::1", 1080)
    assert parse_proxy("socks5://user@h:1") == Proxy("socks5", "h", 1, "user", "")
    proxy = parse_proxy("socks5://h", source="ALL_PROXY")
    assert (proxy.authority, proxy.label, str(proxy)) == (
        "h:1080",
        "h:1080 (from ALL_PROXY)",
        "socks5://h:1080",
    )
    assert not proxy.remote_dns
    assert "secret" not in repr(parse_proxy("http://u:secret@h"))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "it is empty"),
        ("https://h:3128", "proxies reached over TLS (https://) are not supported; use http://"),
        ("socks4://h", "the scheme must be http://, socks5:// or socks5h://, not socks4://"),
        ("http://u:hunter2@h:70000", "the port must be a number from 1 to 65535"),
        ("http://h:0", "the port must be a number from 1 to 65535"),
        ("http://h/path", "a proxy URL has no path, query or fragment"),
        ("http://:80", "it has no host name"),
    ],
)
def test_invalid_proxy_urls(url, why) -> None:
    with pytest.raises(ValueError, match=r"^invalid proxy URL ") as info:
        parse_proxy(url)
    assert str(info.value).endswith(f": {why}")
    assert "hunter2" not in str(info.value)


def test_a_proxy_url_is_a_str() -> None:
    with pytest.raises(TypeError):
        parse_proxy(b"http://h")  # type: ignore[arg-type]


def test_non_ascii_proxy_host_is_encoded() -> None:
    assert parse_proxy("http://bücher.example:1").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("example.com", 80, "", False),
        ("example.com", 80, "*", True),
        ("example.com", 80, "example.com", True),
        ("a.b.example.com", 80, "example.com", True),
        ("a.example.com", 80, ".example.com", True),
        ("a.example.com", 80, "*.example.com", True),
        ("example.com", 80, ".example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("EXAMPLE.com", 80, "Example.COM", True),
        ("example.com", 80, "example.com:80", True),
        ("example.com", 443, "example.com:80", False),
        ("example.com", 80, " other.org , example.com ", True),
        ("127.0.0.1", 80, "127.0.0.1", True),
        ("127.0.0.1", 80, "127.0.0.0/8", True),
        ("10.1.2.3", 80, "10.0.0.0/8,localhost", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("127.0.0.1", 8080, "127.0.0.1:80", False),
        ("127.0.0.1", 80, "127.0.0.1:80", True),
        ("127.0.0.1", 80, "localhost", False),
        ("::1", 80, "::1", True),
        ("::1", 80, "[::1]:80", True),
        ("::1", 81, "[::1]:80", False),
        ("2001:db8::5", 80, "2001:db8::/32", True),
        ("::ffff:127.0.0.1", 80, "127.0.0.0/8", False),
        ("localhost", 80, "127.0.0.1", False),
        ("localhost", 80, "10.0.0.0/8", False),
    ],
)
def test_proxy_bypassed(host, port, no_proxy, bypassed) -> None:
    assert proxy_bypassed(host, port, no_proxy) is bypassed


def test_select_proxy_precedence(monkeypatch) -> None:
    ws, wss = parse_url("ws://example.com/"), parse_url("wss://example.com/")
    assert select_proxy(ws) is None
    monkeypatch.setenv("ALL_PROXY", "socks5h://all:1")
    assert select_proxy(ws) == select_proxy(wss) == Proxy("socks5h", "all", 1, source="ALL_PROXY")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:2")
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3")
    assert select_proxy(wss) == Proxy("http", "secure", 2, source="HTTPS_PROXY")
    assert select_proxy(ws) == Proxy("http", "plain", 3, source="HTTP_PROXY")
    monkeypatch.setenv("http_proxy", "http://lower:4")
    assert select_proxy(ws) == Proxy("http", "lower", 4, source="http_proxy")
    assert select_proxy(ws, "socks5://explicit:5") == Proxy("socks5", "explicit", 5)
    assert select_proxy(ws, True) == select_proxy(ws, None)
    assert select_proxy(ws, False) is None
    assert select_proxy(ws, "") is None
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert select_proxy(ws) is None
    assert select_proxy(ws, "socks5://explicit:5") is not None


def test_select_proxy_reports_a_bad_variable(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://u:pw@h")
    with pytest.raises(ProxyError, match=r"\(from HTTPS_PROXY\)"):
        select_proxy(parse_url("wss://example.com/"))
    with pytest.raises(ValueError, match=r"^invalid proxy URL 'nope://h': "):
        select_proxy(parse_url("wss://example.com/"), "nope://h")


# Sans-I/O: HTTP CONNECT.

HTTP_PROXY = Proxy("http", "127.0.0.1", 3128)


def test_connect_request_bytes() -> None:
    proxy = parse_proxy("http://user:p%C3%A4ss@127.0.0.1:3128")
    handshake = start_handshake(proxy, "example.com", 443, user_agent="test/1")
    assert isinstance(handshake, HTTPConnect)
    assert handshake.data_to_send() == (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"Host: example.com:443\r\n"
        b"User-Agent: test/1\r\n"
        b"Proxy-Authorization: Basic dXNlcjpww6Rzcw==\r\n"
        b"\r\n"
    )
    assert handshake.data_to_send() == b""
    ipv6 = HTTPConnect(HTTP_PROXY, "::1", 80)
    assert ipv6.data_to_send() == b"CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"


def test_connect_response_split_anywhere() -> None:
    response = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\nEARLY"
    for cut in range(len(response)):
        handshake = HTTPConnect(HTTP_PROXY, "example.com", 80)
        handshake.receive_data(response[:cut])
        assert not handshake.done or cut >= len(response) - 5
        handshake.receive_data(response[cut:])
        assert handshake.done
        assert handshake.tunnel_data() == b"EARLY"
        assert handshake.tunnel_data() == b""


def test_connect_response_with_bare_newlines_and_tunnel_data_after() -> None:
    handshake = HTTPConnect(HTTP_PROXY, "example.com", 80)
    handshake.receive_data(b"HTTP/1.0 200\n\n")
    assert handshake.done
    assert handshake.tunnel_data() == b""
    handshake.receive_data(b"late")
    assert handshake.tunnel_data() == b"late"


@pytest.mark.parametrize(
    ("response", "text"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            "proxy 127.0.0.1:3128 refused the tunnel to example.com:80: HTTP 403 Forbidden",
        ),
        (
            b"HTTP/1.1 502\r\n\r\n",
            "proxy 127.0.0.1:3128 refused the tunnel to example.com:80: HTTP 502",
        ),
        (
            b"SSH-2.0-OpenSSH\r\n",
            "proxy 127.0.0.1:3128 did not answer like an HTTP proxy: b'SSH-2.0-OpenSSH\\r\\n'",
        ),
        (
            b"HTTP/1.1 OK\r\n\r\n",
            "proxy 127.0.0.1:3128 did not answer like an HTTP proxy: b'HTTP/1.1 OK'",
        ),
    ],
)
def test_connect_refusals(response, text) -> None:
    handshake = HTTPConnect(HTTP_PROXY, "example.com", 80)
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(response)
    assert str(info.value) == text
    assert info.value.proxy == "127.0.0.1:3128"
    assert info.value.target == "example.com:80"


def test_connect_header_size_is_bounded() -> None:
    handshake = HTTPConnect(HTTP_PROXY, "example.com", 80)
    handshake.receive_data(b"HTTP/1.1 200 OK\r\n")
    filler = b"X-Filler: " + b"a" * 988 + b"\r\n"
    for _ in range(MAX_RESPONSE_HEAD // 1000):
        handshake.receive_data(filler)
    with pytest.raises(ProxyError, match="header larger than 65536 bytes"):
        handshake.receive_data(filler)


def test_connect_eof() -> None:
    handshake = HTTPConnect(HTTP_PROXY, "example.com", 80)
    handshake.receive_data(b"HTTP/1.1 2")
    with pytest.raises(
        ProxyError, match=r"closed the connection before opening the tunnel to example.com:80$"
    ):
        handshake.receive_eof()
    done = HTTPConnect(HTTP_PROXY, "example.com", 80)
    done.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    done.receive_eof()  # after the handshake, EOF belongs to the tunnel


# Sans-I/O: SOCKS5.

SOCKS_PROXY = Proxy("socks5h", "127.0.0.1", 1080)
SOCKS_AUTH = Proxy("socks5", "127.0.0.1", 1080, "user", "pw")


def test_socks5_no_auth_with_a_name() -> None:
    handshake = SOCKS5(SOCKS_PROXY, "example.com", 443)
    assert handshake.data_to_send() == b"\x05\x01\x00"
    handshake.receive_data(b"\x05")
    assert handshake.data_to_send() == b""
    handshake.receive_data(b"\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    reply = b"\x05\x00\x00\x03\x04host\x00\x50" + b"TUNNEL"
    handshake.receive_data(reply[:7])
    assert not handshake.done
    handshake.receive_data(reply[7:])
    assert handshake.done
    assert handshake.tunnel_data() == b"TUNNEL"


def test_socks5_user_password_with_addresses() -> None:
    handshake = start_handshake(SOCKS_AUTH, "192.0.2.1", 80, name="example.com")
    assert isinstance(handshake, SOCKS5)
    assert handshake.data_to_send() == b"\x05\x02\x00\x02"
    handshake.receive_data(b"\x05\x02")
    assert handshake.data_to_send() == b"\x01\x04user\x02pw"
    handshake.receive_data(b"\x01\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x01\xc0\x00\x02\x01\x00\x50"
    handshake.receive_data(b"\x05\x00\x00\x04" + bytes(16) + b"\x00\x50")
    assert handshake.done
    six = SOCKS5(SOCKS_AUTH, "2001:db8::1", 80)
    assert six.data_to_send() == b"\x05\x02\x00\x02"
    six.receive_data(b"\x05\x00")  # the proxy may skip authentication
    assert six.data_to_send() == (
        b"\x05\x01\x00\x04" + bytes.fromhex("20010db8000000000000000000000001") + b"\x00\x50"
    )


@pytest.mark.parametrize(
    ("proxy", "answer", "text"),
    [
        (
            SOCKS_PROXY,
            b"\x05\xff",
            "SOCKS5 proxy 127.0.0.1:1080 refused the connection: it requires authentication: "
            "give a user name and password (socks5://user:password@host:port)",
        ),
        (
            SOCKS_AUTH,
            b"\x05\xff",
            "SOCKS5 proxy 127.0.0.1:1080 refused the connection: it accepts neither no "
            "authentication nor user name/password",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x02",
            "SOCKS5 proxy 127.0.0.1:1080 chose an authentication method that was not "
            "offered (0x02)",
        ),
        (
            SOCKS_AUTH,
            b"\x05\x02\x01\x01",
            "SOCKS5 proxy 127.0.0.1:1080 rejected the user name or password (status 1)",
        ),
        (
            SOCKS_PROXY,
            b"HTTP/1.1 400 Bad Request\r\n",
            "the proxy 127.0.0.1:1080 is not a SOCKS5 proxy (it answered b'HTTP/1.1')",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x00\x05\x02\x00\x01",
            "SOCKS5 proxy 127.0.0.1:1080 could not connect to example.com:80: the proxy's "
            "rules do not allow this connection (reply 2)",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x00\x05\x08\x00\x01",
            "SOCKS5 proxy 127.0.0.1:1080 could not connect to example.com:80: the proxy does "
            "not support this address type (reply 8); try socks5:// so that wsloop resolves "
            "the host name itself",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x00\x05\x63\x00\x01",
            "SOCKS5 proxy 127.0.0.1:1080 could not connect to example.com:80: unknown error "
            "(reply 99)",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x00\x04\x00\x00\x01",
            "SOCKS5 proxy 127.0.0.1:1080 sent a malformed reply",
        ),
        (
            SOCKS_PROXY,
            b"\x05\x00\x05\x00\x00\x07\x00",
            "SOCKS5 proxy 127.0.0.1:1080 sent a malformed reply",
        ),
    ],
)
def test_socks5_failures(proxy, answer, text) -> None:
    handshake = SOCKS5(proxy, "example.com", 80)
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(answer)
    assert str(info.value) == text


@pytest.mark.parametrize(
    ("proxy", "answer", "hint"),
    [
        (SOCKS_PROXY, b"", " (is it a SOCKS5 proxy?)"),
        (SOCKS_AUTH, b"\x05\x02", " (wrong user name or password?)"),
        (SOCKS_PROXY, b"\x05\x00", ""),
    ],
)
def test_socks5_eof(proxy, answer, hint) -> None:
    handshake = SOCKS5(proxy, "example.com", 80)
    handshake.receive_data(answer)
    with pytest.raises(ProxyError) as info:
        handshake.receive_eof()
    assert str(info.value) == (
        "SOCKS5 proxy 127.0.0.1:1080 closed the connection before opening the tunnel "
        f"to example.com:80{hint}"
    )


def test_socks5_limits() -> None:
    with pytest.raises(ProxyError, match="1 to 255 bytes long"):
        SOCKS5(SOCKS_PROXY, "a" * 256, 80)
    with pytest.raises(ProxyError, match="RFC 1929"):
        SOCKS5(Proxy("socks5", "h", 1, "u" * 256, "p"), "example.com", 80)


# The environment is read as urllib reads it, without decoding every variable.

_PROXY_NAMES = [
    f"{key}_proxy" if lower else f"{key.upper()}_PROXY"
    for key in ("http", "https", "all", "no")
    for lower in (True, False)
]


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(_PROXY_NAMES),
        st.sampled_from(["", "http://p:1", "socks5://q:2", "localhost"]),
    ),
    cgi=st.booleans(),
)
def test_the_environment_is_read_as_urllib_reads_it(values, cgi) -> None:
    import urllib.request

    from wsloop._sansio.proxy import _environment_proxies

    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
                del os.environ[name]
        os.environ.update(values)
        if cgi:
            os.environ["REQUEST_METHOD"] = "GET"
        expected = {
            k: v
            for k, v in urllib.request.getproxies_environment().items()
            if k in ("http", "https", "all", "no")
        }
        assert _environment_proxies() == expected
    finally:
        os.environ.clear()
        os.environ.update(saved)
