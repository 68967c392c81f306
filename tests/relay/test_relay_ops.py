"""The relay in production: auth, per-address and rate limits, /healthz, /metrics, /status.

Everything runs against a real relay on 127.0.0.1: wsloop clients and the
``websockets`` client for WebSocket traffic, ``urllib`` for the HTTP pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from relay_support import WAIT, Peer, RawClient, RelayProcess, close_all, open_all, pump
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from wsloop.relay import Handshake, Refuse, serve


def http_get(relay, path: str) -> tuple[int, str, str]:
    url = relay.url.replace("ws://", "http://") + path
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def refusal(url: str, **options) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(url, open_timeout=WAIT, **options).close()
    response = info.value.response
    return response.status_code, response.body.decode()


# Authentication.


def test_the_auth_hook_sees_the_handshake_and_its_identity_reaches_the_member():
    seen: list[Handshake] = []

    def auth(handshake: Handshake):
        seen.append(handshake)
        return {"user": handshake.query["user"]} if handshake.token == "good" else None

    with serve(auth=auth) as relay:
        peer = Peer().connect(f"{relay.url}/room/a?user=ann&token=good")
        open_all(peer)
        identities = relay.call(lambda: [m.identity for m in relay.relay._members.values()])
        assert identities == [{"user": "ann"}]
        status, body = refusal(f"{relay.url}/room/a?user=bob&token=bad")
        assert status == 401
        assert "authentication required" in body
        close_all(peer)
    assert seen[0].path == "/room/a"
    assert seen[0].peer.startswith("127.0.0.1:")
    assert seen[0].headers["upgrade"].lower() == "websocket"


def test_refuse_gives_its_status_and_body_and_an_async_hook_works():
    async def auth(handshake: Handshake):
        await asyncio.sleep(0)
        if handshake.query.get("banned"):
            raise Refuse(403, "You are banned from this server.")
        return "ok"

    with serve(auth=auth) as relay:
        assert refusal(f"{relay.url}/room/a?banned=1") == (
            403,
            "You are banned from this server.\n",
        )
        with ws_connect(f"{relay.url}/room/a", open_timeout=WAIT) as ws:
            ws.send("still serving")


def test_a_failing_auth_hook_is_a_500_for_that_client_only(caplog):
    def auth(handshake: Handshake):
        if "boom" in handshake.query:
            raise RuntimeError("bug in the application")
        return "fine"

    with serve(auth=auth) as relay:
        status, body = refusal(f"{relay.url}/room/a?boom=1")
        assert status == 500
        assert "could not check who you are" in body
        a = Peer().connect(f"{relay.url}/room/a")
        b = Peer().connect(f"{relay.url}/room/a")
        open_all(a, b)
        a.ws.send_text("after the failure")
        pump(lambda: b.texts, a, b)
        assert b.texts == ["after the failure"]
        close_all(a, b)
    assert "bug in the application" in caplog.text


def test_a_wsloop_client_sees_the_refusal_in_on_error():
    with serve(token="s3cret") as relay:
        peer = Peer().connect(f"{relay.url}/room/a")
        pump(lambda: peer.closed, peer)
        assert peer.errors and "HTTP 401" in peer.errors[0], peer.errors
        assert "needs a token" in peer.errors[0]
        assert peer.closed.code == 1006


def test_the_shared_secret_token_in_the_query_or_a_bearer_header():
    with serve(token="s3cret") as relay:
        status, body = refusal(f"{relay.url}/room/a")
        assert status == 401
        assert "?token=" in body
        assert refusal(f"{relay.url}/room/a?token=wrong")[0] == 403
        assert (
            refusal(f"{relay.url}/room/a", additional_headers={"Authorization": "Bearer x"})[0]
            == 403
        )
        a = Peer().connect(f"{relay.url}/room/a?token=s3cret")
        b = Peer(headers={"Authorization": "Bearer s3cret"}).connect(f"{relay.url}/room/a")
        open_all(a, b)
        close_all(a, b)


# Connections per address.


def test_connections_per_address_beyond_the_limit_get_429_and_count_down_again():
    with serve(max_connections_per_address=2, exempt_networks=()) as relay:
        url = f"{relay.url}/room/a"
        with ws_connect(url, open_timeout=WAIT), contextlib.ExitStack() as stack:
            with ws_connect(url, open_timeout=WAIT):
                status, body = refusal(url)
                assert status == 429
                assert "Too many connections from your address (2)" in body
            pump(lambda: relay.stats.connections == 1)
            stack.enter_context(ws_connect(url, open_timeout=WAIT))
        assert relay.stats.refused == 1


def test_loopback_is_exempt_by_default():
    with serve(max_connections_per_address=1) as relay:
        url = f"{relay.url}/room/a"
        with contextlib.ExitStack() as stack:
            for _ in range(3):
                stack.enter_context(ws_connect(url, open_timeout=WAIT))
            assert relay.stats.connections == 3


# Rate limits.


def test_a_client_over_the_message_rate_is_closed_with_1008_and_the_room_keeps_the_rest():
    with serve(rate_messages=10) as relay:
        url = f"{relay.url}/room/a"
        listener = Peer().connect(url)
        open_all(listener)
        with ws_connect(url, open_timeout=WAIT) as flooder:
            with contextlib.suppress(ConnectionClosed):
                for n in range(200):
                    flooder.send(f"m{n}")
            with pytest.raises(ConnectionClosed) as info:
                flooder.recv(timeout=WAIT)
        rcvd = info.value.rcvd
        assert rcvd is not None
        assert rcvd.code == 1008
        assert rcvd.reason == "sending too fast: over 10 messages/s"
        # The burst (twice the rate) got through, in order; nothing after it.
        pump(lambda: len(listener.texts) >= 20, listener)
        assert listener.texts == [f"m{n}" for n in range(len(listener.texts))]
        assert 20 <= len(listener.texts) < 30
        assert listener.ws.is_open
        assert relay.stats.rate_limited == 1
        close_all(listener)


def test_the_byte_rate_allows_one_message_of_max_size_then_closes():
    with serve(rate_bytes=100, max_size=1000) as relay:
        with ws_connect(f"{relay.url}/room/a", open_timeout=WAIT) as ws:
            ws.send(b"x" * 1000)  # the bucket holds one largest message
            ws.send(b"y" * 1000)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=WAIT)
        assert info.value.rcvd.code == 1008
        assert info.value.rcvd.reason == "sending too fast: over 100 bytes/s"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_messages": 0}, "rate_messages must be positive"),
        ({"rate_bytes": -1}, "rate_bytes must be positive"),
        ({"max_connections_per_address": 0}, "max_connections_per_address"),
        ({"token": "a", "auth": lambda h: h}, "not both"),
        ({"token": ""}, "must not be empty"),
        ({"exempt_networks": ["not-a-net"]}, "not a network"),
        ({"exempt_networks": "10.0.0.0/8"}, "a sequence"),
    ],
)
def test_invalid_options(options, message):
    from wsloop.relay import Relay

    with pytest.raises((ValueError, TypeError), match=message):
        Relay(**options)


# The HTTP pages.


def test_healthz_metrics_and_status_report_the_traffic():
    with serve() as relay:
        assert http_get(relay, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        url = f"{relay.url}/room/lobby"
        a, b = Peer().connect(url), Peer().connect(url)
        open_all(a, b)
        for text in ("one", "two", "three"):
            a.ws.send_text(text)
        pump(lambda: len(b.texts) == 3, a, b)

        status, kind, text = http_get(relay, "/metrics")
        assert status == 200
        assert kind.startswith("text/plain; version=0.0.4")
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert values["wsloop_relay_connections"] == 2
        assert values["wsloop_relay_rooms"] == 1
        assert values["wsloop_relay_members"] == 2
        assert values["wsloop_relay_messages_in_total"] == 3
        assert values["wsloop_relay_messages_out_total"] == 3
        assert values["wsloop_relay_bytes_in_total"] == len("onetwothree")
        assert values["wsloop_relay_slow_consumers_total"] == 0

        status, kind, body = http_get(relay, "/status.json")
        assert (status, kind) == (200, "application/json")
        data = json.loads(body)
        assert data["healthy"] is True
        assert data["connections"] == 2
        assert data["room_list"] == [
            {"room": "/room/lobby", "protocol": "plain", "members": 2, "online": None}
        ]

        status, kind, page = http_get(relay, "/status")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert "/room/lobby" in page
        close_all(a, b)


def test_other_plain_gets_still_get_426_and_pages_do_not_count_as_refusals():
    with serve() as relay:
        status, _, _ = http_get(relay, "/room/lobby")
        assert status == 426
        http_get(relay, "/healthz")
        assert relay.stats.refused == 1


def test_room_names_are_escaped_on_the_status_page():
    with serve() as relay:
        client = RawClient("127.0.0.1", relay.port, "/<b>bold</b>")
        _, _, page = http_get(relay, "/status")
        client.close()
        assert "<b>bold</b>" not in page
        assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_monitoring_pages_can_be_turned_off_or_need_the_token():
    with serve(monitoring=False) as relay:
        assert http_get(relay, "/metrics")[0] == 403
        assert http_get(relay, "/status")[0] == 403
        assert http_get(relay, "/healthz")[0] == 200
    with serve(token="s3cret") as relay:
        assert http_get(relay, "/metrics")[0] == 403
        assert http_get(relay, "/status.json?token=wrong")[0] == 403
        assert http_get(relay, "/status.json?token=s3cret")[0] == 200
        assert http_get(relay, "/healthz")[0] == 200


# From the command line.


def test_serve_with_a_token_from_the_environment_and_the_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("WSLOOP_TOKEN", "from-env")
    relay = RelayProcess(["--rate-messages", "5"], tmp_path / "relay.log")
    try:
        url = relay.url
        status, _ = refusal(f"{url}/room/a")
        assert status == 401
        with ws_connect(f"{url}/room/a?token=from-env", open_timeout=WAIT) as ws:
            with contextlib.suppress(ConnectionClosed):
                for n in range(50):
                    ws.send(f"m{n}")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=WAIT)
        assert info.value.rcvd.reason == "sending too fast: over 5 messages/s"
        page = urllib.request.urlopen(
            url.replace("ws://", "http://") + "/status.json?token=from-env", timeout=WAIT
        )
        with page:
            assert json.loads(page.read())["rate_limited"] == 1
    finally:
        assert relay.stop() == 0
    log = relay.log()
    assert "token required" in log
    assert "per client 5 msg/s" in log
    assert "sending too fast" in log
    assert "from-env" not in log


def test_serve_with_an_auth_hook_module(tmp_path, monkeypatch):
    (tmp_path / "myauth.py").write_text(
        "from wsloop.relay import Refuse\n"
        "def check(handshake):\n"
        "    if handshake.query.get('name') == 'mallory':\n"
        "        raise Refuse(403, 'Not you, Mallory.')\n"
        "    return handshake.query.get('name')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    relay = RelayProcess(["--auth", "myauth:check"], tmp_path / "relay.log")
    try:
        assert refusal(f"{relay.url}/room/a?name=mallory") == (403, "Not you, Mallory.\n")
        assert refusal(f"{relay.url}/room/a")[0] == 401
        with ws_connect(f"{relay.url}/room/a?name=ann", open_timeout=WAIT):
            pass
    finally:
        assert relay.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "nomodule_here:x"], "cannot load the auth hook"),
        (["--auth", "json"], "must be given as MODULE:NAME"),
        (["--auth", "json:dumps", "--token", "t"], "cannot be used together"),
        (["--rate-messages", "-1"], "expected a positive number"),
        (["--exempt", "nonsense"], "not a network"),
    ],
)
def test_serve_usage_errors(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "wsloop", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
