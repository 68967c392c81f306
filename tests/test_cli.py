"""The command line, through its real entry points: ``python -m wsloop`` and ``main(argv)``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from wsloop import Closed, TextMessage, WebSocket
from wsloop.cli import escape, main, preview
from wsloop.testing import (
    Close,
    ScriptedServer,
    SendBinary,
    SendText,
    poll_until,
    record,
    serve_echo,
    serve_relay,
)

TIMEOUT_FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
WAIT = 60.0 * TIMEOUT_FACTOR


def wsloop(*args, input=None, timeout=WAIT):
    """Run ``python -m wsloop ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "wsloop", *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def events(stdout):
    """The (kind, content) of each readable event line."""
    found = []
    for line in stdout.splitlines():
        match = re.match(r"\d\d:\d\d:\d\d\.\d\d\d (\w+) +(.*)$", line)
        assert match, f"not an event line: {line!r}"
        found.append((match.group(1), match.group(2)))
    return found


def json_events(stdout):
    lines = [json.loads(line) for line in stdout.splitlines()]
    for line in lines:
        assert isinstance(line["time"], float)
    return lines


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# wsloop connect: scripted use.


def test_send_then_wait_for_the_answers():
    with serve_echo() as server:
        result = wsloop(
            "connect", f"{server.url}/e", "--send", "hello", "-s", "two", "--wait", "2"
        )
    assert result.returncode == 0, result
    found = events(result.stdout)
    assert [kind for kind, _ in found] == ["opened", "text", "text", "closed"]
    assert found[1][1] == "hello"
    assert found[2][1] == "two"
    assert found[3][1] == "1000 (clean)"


def test_json_prints_one_object_per_event():
    with serve_echo() as server:
        result = wsloop(
            "connect", f"{server.url}/e", "--json", "-s", "hi", "-s", "/binary 00ff", "-w", "2"
        )
    assert result.returncode == 0, result
    lines = json_events(result.stdout)
    assert [line["event"] for line in lines] == ["opened", "text", "binary", "closed"]
    assert lines[0]["url"] == f"{server.url}/e"
    assert lines[1]["text"] == "hi"
    assert lines[2] == {**lines[2], "size": 2, "base64": "AP8="}
    assert lines[3] == {**lines[3], "code": 1000, "reason": "", "clean": True}


def test_pipe_mode_sends_each_line_and_closes_at_eof():
    with serve_relay() as relay:
        url = f"{relay.url}/room/pipe"
        peer = WebSocket()
        recorded = record(peer)
        peer.connect(url)
        assert peer.wait_open(WAIT)
        result = wsloop("connect", url, input="one\ntwo\r\n\nlast")
        poll_until(lambda: len(recorded) >= 5, peer)
        peer.close()
        peer.wait_closed(WAIT)
    assert result.returncode == 0, result
    assert [kind for kind, _ in events(result.stdout)] == ["opened", "closed"]
    assert events(result.stdout)[-1] == ("closed", "1000 (clean)")
    assert recorded[1:5] == [TextMessage(t) for t in ("one", "two", "", "last")]


def test_pipe_mode_with_wait_shows_the_answers():
    with serve_echo() as server:
        result = wsloop("connect", f"{server.url}/e", "--wait", "2", input="one\ntwo\n")
    assert result.returncode == 0, result
    found = events(result.stdout)
    assert [content for kind, content in found if kind == "text"] == ["one", "two"]


def test_wait_keeps_the_connection_open_after_eof():
    with serve_relay() as relay:
        url = f"{relay.url}/room/cli"
        proc = subprocess.Popen(
            [sys.executable, "-m", "wsloop", "connect", url, "--wait", "1", "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            peer = WebSocket()
            peer.connect(url)
            assert peer.wait_open(WAIT)
            poll_until(lambda: relay.call(lambda: relay.relay.room_size("/room/cli")) == 2, peer)
            peer.send_text("from a peer")
            out, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        peer.close()
        peer.wait_closed(WAIT)
    assert proc.returncode == 0, err
    lines = json_events(out)
    assert [line["event"] for line in lines] == ["opened", "text", "closed"]
    assert lines[1]["text"] == "from a peer"


def test_in_process_main_with_patched_stdin(monkeypatch, capsys):
    with serve_echo() as server:
        monkeypatch.setattr(sys, "stdin", io.StringIO("in process\n/binary 01\n"))
        status = main(["connect", f"{server.url}/e", "--json", "--wait", "2"])
    out = capsys.readouterr().out
    assert status == 0
    lines = json_events(out)
    assert [line["event"] for line in lines] == ["opened", "text", "binary", "closed"]
    assert lines[1]["text"] == "in process"


def test_url_shorthand():
    with serve_echo() as server:
        result = wsloop("connect", f":{server.port}/short", "-s", "x", "-w", "1", "--json")
    assert result.returncode == 0, result
    assert json_events(result.stdout)[0]["url"] == f"ws://127.0.0.1:{server.port}/short"


# Exit statuses.


def test_refused_connection_exits_1():
    result = wsloop("connect", f"ws://127.0.0.1:{free_port()}/")
    assert result.returncode == 1
    found = events(result.stdout)
    assert found[0][0] == "error"
    assert "refused" in found[0][1]
    assert found[-1] == ("closed", "1006 (not clean)")


def test_an_error_after_opening_exits_1():
    with ScriptedServer.dropping() as server:
        result = wsloop("connect", server.url, "-n")
    assert result.returncode == 1
    assert [kind for kind, _ in events(result.stdout)] == ["opened", "error", "closed"]


def test_timeout_exits_3():
    with serve_echo() as server:
        started = time.monotonic()
        result = wsloop("connect", f"{server.url}/e", "--no-stdin", "--timeout", "1")
    assert result.returncode == 3
    assert time.monotonic() - started >= 1.0
    assert "timed out after 1 s" in result.stderr
    assert [kind for kind, _ in events(result.stdout)] == ["opened", "closed"]


def test_timeout_while_connecting_exits_3():
    with ScriptedServer.silent() as server:
        result = wsloop("connect", server.url, "--connect-timeout", "30", "--timeout", "0.5")
    assert result.returncode == 3
    assert events(result.stdout)[-1][0] == "closed"


def test_wait_not_satisfied_before_timeout_exits_3():
    with serve_relay() as relay:
        result = wsloop("connect", f"{relay.url}/quiet", "--wait", "1", "--timeout", "0.5")
    assert result.returncode == 3


@pytest.mark.parametrize(
    "args",
    [
        ["connect"],
        ["connect", "-H", "no colon", "ws://127.0.0.1:1/"],
        ["connect", "ftp://example.com/"],
        ["connect", "--wait", "0", "ws://127.0.0.1:1/"],
        ["connect", "--insecure", "--cafile", "x.pem", "wss://127.0.0.1:1/"],
        ["connect", "ws://127.0.0.1:1/", "-p", "bad protocol"],
        ["serve", "--key", "key.pem"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors_exit_2(args, capsys):
    assert main(args) == 2
    assert capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["connect", "--help"]) == 0
    assert "/close [CODE [REASON]]" in capsys.readouterr().out


# What is printed.


def test_control_characters_are_escaped():
    nasty = "red\x1b[31m\nnext\u202eback\\slash\x00"
    with ScriptedServer(SendText(nasty), Close(1000, "bye\nnow")) as server:
        readable = wsloop("connect", server.url, "-n")
        as_json = wsloop("connect", server.url, "-n", "--json")
    assert readable.returncode == 0, readable
    assert "\x1b" not in readable.stdout
    assert "\u202e" not in readable.stdout
    assert "\x00" not in readable.stdout
    found = events(readable.stdout)
    assert found[1] == ("text", "red\\x1b[31m\\nnext\\u202eback\\\\slash\\x00")
    assert found[2] == ("closed", "1000 bye\\nnow (clean)")
    assert json_events(as_json.stdout)[1]["text"] == nasty  # JSON keeps the exact text


def test_binary_is_shown_as_a_hex_preview():
    data = b"hello\x00world!" * 3
    with ScriptedServer(SendBinary(data), SendBinary(b"\x7f"), Close()) as server:
        result = wsloop("connect", server.url, "-n")
    found = events(result.stdout)
    assert found[1] == (
        "binary",
        "36 bytes: 68 65 6c 6c 6f 00 77 6f 72 6c 64 21 68 65 6c 6c ... |hello.world!hell|",
    )
    assert found[2] == ("binary", "1 byte: 7f |.|")


def test_escape_and_preview_helpers():
    assert escape("plain text, ünïcode") == "plain text, ünïcode"
    assert escape("\t\r\U0001f600\U000e0001") == "\\t\\r\U0001f600\\U000e0001"
    assert preview(b"") == "0 bytes"


# Commands.


def test_close_with_a_code_and_reason():
    with ScriptedServer() as server:
        result = wsloop("connect", server.url, input="/close 4000 bye\nnot sent\n")
        assert result.returncode == 0, result
        assert server.wait_received(1, WAIT)
    assert server.received[0].kind == "close"
    assert server.received[0].data == (4000).to_bytes(2, "big") + b"bye"
    assert events(result.stdout)[-1] == ("closed", "4000 bye (clean)")
    assert [f.kind for f in server.received] == ["close"]


def test_commands_send_what_they_say():
    script = "/binary 01 ff\n/base64 AQI=\n//slash\n/ping hi\nplain\n/bogus\n/binary zz\n/quit\n"
    with ScriptedServer() as server:
        result = wsloop("connect", server.url, input=script)
        assert result.returncode == 0, result
        assert server.wait_received(6, WAIT)
    frames = [(f.kind, f.data) for f in server.received]
    assert frames == [
        ("binary", b"\x01\xff"),
        ("binary", b"\x01\x02"),
        ("text", b"/slash"),
        ("ping", b"hi"),
        ("text", b"plain"),
        ("close", (1000).to_bytes(2, "big")),
    ]
    assert "unknown command /bogus" in result.stderr
    assert "/binary takes hex digits" in result.stderr


def test_raw_sends_commands_as_text():
    with ScriptedServer() as server:
        result = wsloop("connect", server.url, "--raw", input="/quit\n")
        assert result.returncode == 0, result
        assert server.wait_received(2, WAIT)
    assert (server.received[0].kind, server.received[0].data) == ("text", b"/quit")


def test_handshake_options_reach_the_server():
    with ScriptedServer(Close(), subprotocol="chat.v2") as server:
        result = wsloop(
            "connect",
            server.url + "room?x=1",
            "-H",
            "X-Token: abc 123",
            "-o",
            "https://game.example",
            "-p",
            "chat.v1",
            "-p",
            "chat.v2",
            "--no-compression",
            "-n",
        )
    assert result.returncode == 0, result
    request = server.requests[0]
    assert request.path == "/room?x=1"
    assert request.headers["x-token"] == "abc 123"
    assert request.headers["origin"] == "https://game.example"
    assert request.headers["sec-websocket-protocol"] == "chat.v1, chat.v2"
    assert "sec-websocket-extensions" not in request.headers
    assert "protocol=chat.v2" in events(result.stdout)[0][1]


# TLS.


@pytest.fixture
def tls_files(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(paths["cert"]), append=True)
    return paths


def test_tls_verification_cafile_and_insecure(tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    with serve_echo(ssl=context) as server:
        url = f"wss://localhost:{server.port}/tls"
        untrusted = wsloop("connect", url, "-s", "x", "-w", "1")
        trusted = wsloop("connect", url, "--cafile", str(tls_files["ca"]), "-s", "x", "-w", "1")
        insecure = wsloop("connect", url, "--insecure", "-s", "x", "-w", "1")
    assert untrusted.returncode == 1
    assert "certificate" in events(untrusted.stdout)[0][1]
    assert trusted.returncode == 0, trusted
    assert "WARNING" not in trusted.stderr
    assert insecure.returncode == 0, insecure
    assert "WARNING: --insecure" in insecure.stderr
    assert "NOT verified" in insecure.stderr


# wsloop serve.


class ServeProcess:
    def __init__(self, tmp_path, *args):
        self.log_path = tmp_path / "serve.log"
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsloop", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + WAIT
        while not (match := re.search(r"listening on (wss?://\S+)", self.log())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.finish()
                raise AssertionError(f"serve did not start: {self.log()}")
            time.sleep(0.02)
        self.url = match.group(1)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def finish(self, sig=None):
        """Send ``sig`` if still running, wait for the exit; kill it if it hangs."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if not self.log_file.closed:
                self.log_file.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_relays_and_shuts_down_gracefully(tmp_path, sig):
    server = ServeProcess(tmp_path)
    try:
        a, b = WebSocket(), WebSocket()
        a_events, b_events = record(a), record(b)
        a.connect(f"{server.url}/room/lobby")
        b.connect(f"{server.url}/room/lobby")
        poll_until(lambda: a.is_open and b.is_open, a, b)
        poll_until(lambda: server.log().count(" joined /room/lobby") == 2, a, b)
        a.send_text("hello b")
        poll_until(lambda: b_events[1:], a, b)
        assert b_events[1] == TextMessage("hello b")
        server.proc.send_signal(sig)
        poll_until(lambda: a.is_closed and b.is_closed, a, b)
        status = server.finish()
    finally:
        server.finish(signal.SIGKILL)
    assert status == 0
    for recorded in (a_events, b_events):
        assert recorded[-1] == Closed(1001, "server shutting down", True)
    log = server.log()
    assert log.count(" joined /room/lobby") == 2
    assert log.count(" left /room/lobby: 1001") == 2


def test_serve_options_echo_and_protocol(tmp_path):
    server = ServeProcess(tmp_path, "--echo", "-p", "game.v1", "--max-size", "1k", "-q")
    try:
        ws = WebSocket()
        recorded = record(ws)
        ws.connect(f"{server.url}/any", ["other", "game.v1"])
        assert ws.wait_open(WAIT)
        assert ws.protocol == "game.v1"
        ws.send_text("echo?")
        poll_until(lambda: TextMessage("echo?") in recorded, ws)
        ws.send_binary(bytes(1025))
        poll_until(lambda: ws.is_closed, ws)
    finally:
        status = server.finish(signal.SIGTERM)
    assert status == 0
    assert TextMessage("echo?") in recorded
    assert recorded[-1].code == 1009
    assert " joined " not in server.log()  # -q: warnings only


def test_serve_tls(tmp_path, tls_files):
    server = ServeProcess(
        tmp_path, "--cert", str(tls_files["cert"]), "--key", str(tls_files["key"])
    )
    try:
        assert server.url.startswith("wss://")
        ws = WebSocket(cafile=str(tls_files["ca"]))
        ws.connect(f"wss://localhost:{server.url.rsplit(':', 1)[1]}/room/x")
        assert ws.wait_open(WAIT), ws.error_msg
        ws.close()
        assert ws.wait_closed(WAIT)
    finally:
        assert server.finish(signal.SIGTERM) == 0


def test_serve_on_a_taken_port_exits_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = wsloop("serve", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "could not listen" in result.stderr


def test_serve_with_a_bad_certificate_exits_1(tmp_path):
    missing = tmp_path / "missing.pem"
    result = wsloop("serve", "--port", "0", "--cert", str(missing))
    assert result.returncode == 1
    assert "cannot load the certificate" in result.stderr


# wsloop demo.


def test_demo_runs_offline_and_exits_0():
    result = wsloop("demo", timeout=90 * TIMEOUT_FACTOR)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for trigger in ("on_opened", "on_joined", "on_message", "on_reconnecting", "on_closed"):
        assert trigger in out
    assert "REFUSED by the server: not your turn" in out
    assert "*** the network drops Bob's connection" in out
    assert "resumed as member m2" in out
    assert out.count("(clean)") == 2
    assert "decided by the server" in out
    assert "both connections closed cleanly" in out


def test_demo_fails_when_it_runs_out_of_time(capsys):
    assert main(["demo", "--timeout", "0.01"]) == 1
    assert "FAILED" in capsys.readouterr().out
