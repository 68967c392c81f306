"""Proxies and insecure TLS with AsyncWebSocket, through the real proxies of tests/test_proxy.py.

The same proxies (tinyproxy for HTTP CONNECT, microsocks for SOCKS5, with and
without credentials, on 127.0.0.1) in front of the same websockets servers
(plain and TLS), with the same expected texts as the poll and thread drivers.
The sans-I/O handshakes and the proxy selection are tested there, once. Each
test here runs on the default loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from async_adapter import Recorded, loop_params, runner
from servers import SHORT, WAIT, free_port, unique_path
from test_proxy import (
    PASSWORD,
    SOCKS_PASSWORD,
    USER,
    cafile as cafile,  # the fixtures of test_proxy.py, for the tests below
    check_attempt,
    clean_environment as clean_environment,
    dead_proxy,
    needs_localhost,
    silent_proxy as silent_proxy,
    socks as socks,
    socks_auth as socks_auth,
    tinyproxy as tinyproxy,
    tinyproxy_auth as tinyproxy_auth,
    tls as tls,
    wss_server as wss_server,
)
from wsloop import (
    AsyncWebSocket,
    Closed,
    ConnectError,
    Error,
    InsecureWarning,
    Opened,
    ProxyError,
    TextMessage,
    TimeoutError,
    WebSocketError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from test_proxy import ProxyProcess

    Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=loop_params())
def run(request: pytest.FixtureRequest) -> Run:
    return runner(request.param)


async def echo(url: str, text: str = "hello through the tunnel", **options: Any) -> None:
    """Connect with ``options``, check one echo, close cleanly, check the events."""
    options.setdefault("ping_interval", None)
    ws = AsyncWebSocket(**options)
    rec = Recorded(ws)
    await ws.connect(url)
    assert ws.send_text(text)
    await rec.until(lambda: bool(rec.of(TextMessage) or rec.of(Closed)), "the echo")
    assert [e.text for e in rec.of(TextMessage)] == [text]
    await ws.aclose()
    check_attempt(rec.events)
    assert rec.of(Closed)[0].was_clean


async def fails(url: str, **options: Any) -> Error:
    """Connect with ``options``; expect connect() to raise what On error carried."""
    options.setdefault("ping_interval", None)
    ws = AsyncWebSocket(**options)
    rec = Recorded(ws)
    with pytest.raises(WebSocketError) as info:
        await ws.connect(url)
    check_attempt(rec.events)
    [error] = rec.of(Error)
    assert info.value is error.exception
    assert ws.error_msg == str(error.exception)
    assert ws.is_closed
    return error  # type: ignore[no-any-return]


# HTTP CONNECT through tinyproxy.


def test_ws_through_http_proxy(run: Run, tinyproxy: ProxyProcess, ws_server: Any) -> None:
    run(echo(ws_server.url(unique_path()), proxy=tinyproxy.url("http")))
    assert f"CONNECT 127.0.0.1:{ws_server.port}" in tinyproxy.log()


def test_wss_through_http_proxy_with_basic_auth(
    run: Run, tinyproxy_auth: ProxyProcess, wss_server: Any, cafile: str
) -> None:
    proxy = tinyproxy_auth.url("http", USER, PASSWORD)
    run(echo(wss_server.url(unique_path()), proxy=proxy, cafile=cafile))


@needs_localhost
def test_wss_by_name_through_http_proxy(
    run: Run, tinyproxy: ProxyProcess, wss_server: Any, cafile: str
) -> None:
    """The proxy resolves the name; TLS checks the certificate against the name."""
    url = wss_server.url(unique_path(), host="localhost")
    run(echo(url, proxy=tinyproxy.url("http"), cafile=cafile))
    assert f"CONNECT localhost:{wss_server.port}" in tinyproxy.log()


def test_http_proxy_without_credentials_gets_407(
    run: Run, tinyproxy_auth: ProxyProcess, ws_server: Any
) -> None:
    error = run(fails(ws_server.url("/"), proxy=tinyproxy_auth.url("http")))
    exc = error.exception
    assert isinstance(exc, ProxyError)
    assert isinstance(exc, ConnectError)
    assert exc.status == 407
    assert str(exc) == (
        f"proxy 127.0.0.1:{tinyproxy_auth.port} refused the tunnel to "
        f"127.0.0.1:{ws_server.port}: HTTP 407 Proxy Authentication Required "
        "(the proxy needs a user name and password: http://user:password@host:port)"
    )


def test_http_proxy_with_wrong_credentials(
    run: Run, tinyproxy_auth: ProxyProcess, ws_server: Any
) -> None:
    proxy = tinyproxy_auth.url("http", USER, "wrong")
    error = run(fails(ws_server.url("/"), proxy=proxy))
    text = str(error.exception)
    assert text.startswith(f"proxy 127.0.0.1:{tinyproxy_auth.port} refused the tunnel to ")
    assert text.endswith("(wrong user name or password?)")
    assert "wrong" not in text.partition("(")[0]  # no password in the text


def test_http_proxy_refuses_the_destination(run: Run, tinyproxy: ProxyProcess) -> None:
    port = free_port()
    error = run(fails(f"ws://127.0.0.1:{port}/", proxy=tinyproxy.url("http")))
    assert str(error.exception) == (
        f"proxy 127.0.0.1:{tinyproxy.port} refused the tunnel to 127.0.0.1:{port}: "
        "HTTP 500 Unable to connect"
    )


# SOCKS5 through microsocks.


def test_ws_through_socks5(run: Run, socks: ProxyProcess, ws_server: Any) -> None:
    run(echo(ws_server.url(unique_path()), proxy=socks.url("socks5")))


def test_wss_through_socks5(run: Run, socks: ProxyProcess, wss_server: Any, cafile: str) -> None:
    run(echo(wss_server.url(unique_path()), proxy=socks.url("socks5"), cafile=cafile))


@needs_localhost
def test_wss_through_socks5h_with_auth(
    run: Run, socks_auth: ProxyProcess, wss_server: Any, cafile: str
) -> None:
    url = wss_server.url(unique_path(), host="localhost")
    proxy = socks_auth.url("socks5h", USER, SOCKS_PASSWORD)
    run(echo(url, proxy=proxy, cafile=cafile))


@needs_localhost
def test_ws_by_name_through_socks5_resolves_locally(
    run: Run, socks_auth: ProxyProcess, ws_server: Any
) -> None:
    url = ws_server.url(unique_path(), host="localhost")
    run(echo(url, proxy=socks_auth.url("socks5", USER, SOCKS_PASSWORD)))


def test_socks5_name_resolution_happens_where_the_scheme_says(
    run: Run, socks: ProxyProcess
) -> None:
    """socks5h:// lets the proxy fail to resolve; socks5:// fails here first."""
    url = "ws://no-such-host.invalid:80/"
    remote = run(fails(url, proxy=socks.url("socks5h"))).exception
    assert isinstance(remote, ProxyError)
    assert str(remote).startswith(
        f"SOCKS5 proxy 127.0.0.1:{socks.port} could not connect to no-such-host.invalid:80: "
    )
    local = run(fails(url, proxy=socks.url("socks5"))).exception
    assert not isinstance(local, ProxyError)
    assert str(local).startswith("could not resolve host 'no-such-host.invalid': ")


def test_socks5_refused_destination(run: Run, socks: ProxyProcess) -> None:
    port = free_port()
    error = run(fails(f"ws://127.0.0.1:{port}/", proxy=socks.url("socks5")))
    assert str(error.exception) == (
        f"SOCKS5 proxy 127.0.0.1:{socks.port} could not connect to 127.0.0.1:{port}: "
        "connection refused by the destination (reply 5)"
    )
    assert error.exception.status == 5  # type: ignore[attr-defined]


def test_socks5_wrong_credentials(run: Run, socks_auth: ProxyProcess, ws_server: Any) -> None:
    error = run(fails(ws_server.url("/"), proxy=socks_auth.url("socks5", USER, "wrong")))
    assert str(error.exception).startswith(
        f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} rejected the user name or password (status "
    )


def test_socks5_without_credentials(run: Run, socks_auth: ProxyProcess, ws_server: Any) -> None:
    error = run(fails(ws_server.url("/"), proxy=socks_auth.url("socks5")))
    assert str(error.exception) == (
        f"SOCKS5 proxy 127.0.0.1:{socks_auth.port} refused the connection: it requires "
        "authentication: give a user name and password (socks5://user:password@host:port)"
    )


def test_socks_url_given_an_http_proxy(run: Run, tinyproxy: ProxyProcess, ws_server: Any) -> None:
    # tinyproxy waits for the end of a request line that the SOCKS greeting never sends.
    error = run(fails(ws_server.url("/"), proxy=tinyproxy.url("socks5"), connect_timeout=SHORT))
    assert str(error.exception) == f"connect (proxy handshake) timed out after {SHORT:g} s"


def test_http_url_given_a_socks_proxy(run: Run, socks: ProxyProcess, ws_server: Any) -> None:
    error = run(fails(ws_server.url("/"), proxy=socks.url("http")))
    assert str(error.exception) == (
        f"proxy 127.0.0.1:{socks.port} did not answer like an HTTP proxy: b'\\x05\\xff' "
        "(a SOCKS5 proxy? then use socks5:// or socks5h://)"
    )


# Failures before the handshake.


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_refused_proxy_port(run: Run, scheme: str) -> None:
    port = free_port()
    error = run(fails("ws://127.0.0.1:9/", proxy=f"{scheme}://127.0.0.1:{port}"))
    assert str(error.exception) == (
        f"could not connect to the proxy 127.0.0.1:{port}: "
        "connection refused (is the proxy running, on that port?)"
    )


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_silent_proxy_times_out_in_the_proxy_handshake(
    run: Run, silent_proxy: int, scheme: str
) -> None:
    started = time.monotonic()
    proxy = f"{scheme}://127.0.0.1:{silent_proxy}"
    error = run(fails("ws://127.0.0.1:9/", proxy=proxy, connect_timeout=SHORT))
    assert time.monotonic() - started < SHORT + WAIT / 4
    exc = error.exception
    assert isinstance(exc, TimeoutError)
    assert exc.phase == "connect (proxy handshake)"
    assert str(exc) == f"connect (proxy handshake) timed out after {SHORT:g} s"


def test_proxy_host_that_does_not_resolve(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://no-such-proxy.invalid:3128")
    error = run(fails("wss://127.0.0.1:9/"))
    assert str(error.exception).startswith(
        "could not resolve the proxy host 'no-such-proxy.invalid' (from HTTPS_PROXY): "
    )


def test_invalid_proxy_in_the_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "ftp://user:hunter2@127.0.0.1:21")
    error = run(fails("ws://127.0.0.1:9/"))
    assert str(error.exception) == (
        "invalid proxy URL 'ftp://user:***@127.0.0.1:21' (from http_proxy): "
        "the scheme must be http://, socks5:// or socks5h://, not ftp://"
    )


def test_the_proxy_option_is_checked() -> None:
    with pytest.raises(ValueError, match=r"^invalid proxy URL 'socks4://h'"):
        AsyncWebSocket(proxy="socks4://h")
    with pytest.raises(ValueError, match="port") as info:
        AsyncWebSocket(proxy="http://u:hunter2@h:70000")
    assert "hunter2" not in str(info.value)
    with pytest.raises(TypeError, match="proxy"):
        AsyncWebSocket(proxy=3128)  # type: ignore[arg-type]


# Choosing the proxy from the environment, end to end.


def test_http_proxy_variable_is_used_for_ws(
    run: Run, monkeypatch: pytest.MonkeyPatch, tinyproxy: ProxyProcess, ws_server: Any
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url("http"))
    monkeypatch.setenv("HTTPS_PROXY", dead_proxy())
    path = unique_path()
    run(echo(ws_server.url(path)))
    assert f"CONNECT 127.0.0.1:{ws_server.port}" in tinyproxy.log()


def test_https_proxy_variable_is_used_for_wss(
    run: Run, monkeypatch: pytest.MonkeyPatch, socks: ProxyProcess, wss_server: Any, cafile: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", socks.url("socks5"))
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    run(echo(wss_server.url(unique_path()), cafile=cafile))


def test_all_proxy_variable(
    run: Run, monkeypatch: pytest.MonkeyPatch, socks: ProxyProcess, ws_server: Any
) -> None:
    monkeypatch.setenv("ALL_PROXY", socks.url("socks5"))
    run(echo(ws_server.url(unique_path())))
    monkeypatch.setenv("ALL_PROXY", dead_proxy())
    error = run(fails(ws_server.url("/")))
    assert str(error.exception).startswith("could not connect to the proxy ")
    assert "(from ALL_PROXY)" in str(error.exception)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "example.com, {host}"])
def test_no_proxy_connects_directly(
    run: Run, monkeypatch: pytest.MonkeyPatch, ws_server: Any, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("NO_PROXY", no_proxy.format(host=f"127.0.0.1:{ws_server.port}"))
    run(echo(ws_server.url(unique_path())))


def test_no_proxy_with_another_port_still_proxies(
    run: Run, monkeypatch: pytest.MonkeyPatch, ws_server: Any
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("no_proxy", f"127.0.0.1:{ws_server.port + 1}")
    error = run(fails(ws_server.url("/")))
    assert "(from HTTP_PROXY)" in str(error.exception)


def test_proxy_false_ignores_the_environment(
    run: Run, monkeypatch: pytest.MonkeyPatch, ws_server: Any
) -> None:
    monkeypatch.setenv("ALL_PROXY", dead_proxy())
    run(echo(ws_server.url(unique_path()), proxy=False))
    run(echo(ws_server.url(unique_path()), proxy=""))


def test_explicit_proxy_wins_over_environment_and_no_proxy(
    run: Run, monkeypatch: pytest.MonkeyPatch, tinyproxy: ProxyProcess, ws_server: Any
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_proxy())
    monkeypatch.setenv("NO_PROXY", "*")
    run(echo(ws_server.url(unique_path()), proxy=tinyproxy.url("http")))


def test_reconnect_goes_through_the_proxy_again(
    run: Run, socks: ProxyProcess, ws_server: Any
) -> None:
    from wsloop import Reconnect

    async def main() -> None:
        ws = AsyncWebSocket(
            proxy=socks.url("socks5"),
            ping_interval=None,
            reconnect=Reconnect(initial_delay=0.05, max_delay=0.05, jitter=0),
        )
        rec = Recorded(ws)
        await ws.connect(ws_server.url(unique_path()))
        ws.send_text("drop")
        await rec.until(lambda: len(rec.of(Opened)) == 2, "the second Opened")
        ws.send_text("again")
        await rec.until(lambda: bool(rec.of(TextMessage)), "the echo")
        await ws.aclose()
        assert rec.kinds() == [
            "Opened", "Error", "Closed", "Reconnecting", "Opened", "TextMessage", "Closed"
        ]  # fmt: skip

    run(main())


# insecure=True.


def test_insecure_warns_at_each_connect_and_connects(
    run: Run, wss_server: Any, ws_server: Any
) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(insecure=True, ping_interval=None)
        rec = Recorded(ws)
        for _ in range(2):
            with pytest.warns(InsecureWarning, match="'127.0.0.1' is not verified") as caught:
                await ws.connect(wss_server.url(unique_path()))
            assert [w.filename for w in caught] == [__file__]  # points at the connect() call
            assert ws.is_open
            await ws.aclose()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await ws.connect(ws_server.url(unique_path()))  # ws://: nothing to warn about
            await ws.aclose()
        assert rec.kinds() == ["Opened", "Closed"] * 3

    run(main())


def test_insecure_warning_as_an_error_starts_nothing(run: Run, wss_server: Any) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(insecure=True, ping_interval=None)
        rec = Recorded(ws)
        with warnings.catch_warnings():
            warnings.simplefilter("error", InsecureWarning)
            with pytest.raises(InsecureWarning):
                await ws.connect(wss_server.url(unique_path()))
        assert ws.is_closed
        assert ws.state is None
        assert ws.url == ""
        await asyncio.wait_for(ws.wait_closed(), WAIT)  # nothing to wait for
        assert rec.events == []
        with pytest.warns(InsecureWarning):
            await ws.connect(wss_server.url(unique_path()))
        await ws.aclose()
        check_attempt(rec.events)

    run(main())


# A hand-written proxy, for what real proxies do not do.


async def _answering_proxy(answer: bytes) -> tuple[asyncio.Server, int, list[bytes]]:
    """A proxy that reads the request, writes ``answer`` in one piece, then waits."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(answer)
            await writer.drain()
            while await reader.read(4096):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


def test_bytes_after_the_proxy_answer_belong_to_the_server(run: Run) -> None:
    """ws://: they are the server's first bytes (here an HTTP 400 instead of a 101)."""

    async def main() -> None:
        answer = b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        server, port, requests = await _answering_proxy(answer)
        async with server:
            error = await fails("ws://example.invalid:8080/", proxy=f"http://127.0.0.1:{port}")
        assert requests[0].startswith(b"CONNECT example.invalid:8080 HTTP/1.1\r\n")
        assert "400" in error.message

    run(main())


def test_bytes_before_tls_are_refused(run: Run) -> None:
    async def main() -> None:
        server, port, _ = await _answering_proxy(b"HTTP/1.1 200 OK\r\n\r\nJUNK")
        async with server:
            error = await fails("wss://example.invalid/", proxy=f"http://127.0.0.1:{port}")
        assert isinstance(error.exception, ProxyError)
        assert str(error.exception) == (
            f"proxy 127.0.0.1:{port} sent 4 unexpected bytes after opening the tunnel to "
            "example.invalid:443, before TLS started"
        )

    run(main())


def test_close_during_the_proxy_handshake(run: Run, silent_proxy: int) -> None:
    async def main() -> None:
        ws = AsyncWebSocket(proxy=f"http://127.0.0.1:{silent_proxy}", ping_interval=None)
        rec = Recorded(ws)
        task = asyncio.create_task(ws.connect("ws://127.0.0.1:9/"))
        while ws.driver.phase != "proxy":
            assert not task.done(), rec.kinds()
            await asyncio.sleep(0.005)
        ws.close()
        with pytest.raises(WebSocketError):
            await task
        await ws.wait_closed()
        assert rec.kinds() == ["Error", "Closed"]
        assert rec.of(Closed)[0].code == 1006
        assert ws.driver.phase == "idle"

    run(main())
