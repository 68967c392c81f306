"""The browser driver for real: Pyodide under Node.js, and Pyodide in headless Chromium.

Both runtimes run the same battery (``battery.py``, see its docstring) against
servers started here on 127.0.0.1: the ``websockets`` echo server of
``tests/servers.py``, a port where nothing listens, a raw server that never
answers the handshake and one that never answers a close frame. One runner
process per runtime runs every case (Pyodide takes seconds to start); each
case is then one test here, which also checks what the server saw.

The Chromium run also opens the chat example (``examples/browser/``) twice,
against ``python -m wsloop serve``, has the two users talk, and saves a
screenshot to ``tests/browser/artifacts/example-chat.png``.

Needs Node.js, ``tests/browser/node_modules`` (``npm ci`` there) and Debian's
``chromium``. Without them the tests are skipped, unless
``WSLOOP_REQUIRE_BROWSER=1`` (set by ``make test``) makes that a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from servers import RawServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers import RawConnection, WebsocketsServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HARNESS = HERE / "harness"
NODE_MODULES = HERE / "node_modules"
ARTIFACTS = HERE / "artifacts"
EXAMPLE = REPO / "examples" / "browser"
CHROMIUM = os.environ.get("WSLOOP_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("WSLOOP_REQUIRE_BROWSER") == "1"
TIMEOUT_FACTOR = float(os.environ.get("WSLOOP_TESTS_TIMEOUT_FACTOR", "1"))
RUNNER_TIMEOUT = 300 * TIMEOUT_FACTOR
"""Seconds for one runner process (a Pyodide start plus every case): generous."""
CASE_WAIT = 20.0 * TIMEOUT_FACTOR
"""How long a case waits for something that should happen, inside the browser."""


def _marker() -> pytest.MarkDecorator:
    # "browser" once pyproject.toml registers it (--strict-markers), else "node".
    with (REPO / "pyproject.toml").open("rb") as f:
        markers = tomllib.load(f).get("tool", {}).get("pytest", {}).get("ini_options", {})
    names = {line.split(":", 1)[0].strip() for line in markers.get("markers", [])}
    return pytest.mark.browser if "browser" in names else pytest.mark.node


pytestmark = [_marker(), pytest.mark.slow, pytest.mark.timeout(int(RUNNER_TIMEOUT) + 120)]

CASES = re.findall(r"^async def case_(\w+)", (HERE / "battery.py").read_text(), re.MULTILINE)


# What may not work yet, decided by checking the same thing on the desktop.


def _import_pulls_websockets() -> bool:
    """Does ``import wsloop`` need the websockets package (unused in a browser)?"""
    code = "import sys; sys.modules['websockets'] = None; import wsloop"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    return done.returncode != 0


def _default_driver_is_browser() -> bool:
    """Does ``WebSocket()`` pick the browser driver under ``sys.platform == "emscripten"``?"""
    from wsloop import WebSocket
    from wsloop.drivers.browser import BrowserDriver

    saved = sys.platform
    sys.platform = "emscripten"
    try:
        ws = WebSocket()  # the driver touches no JavaScript before connect()
    except (ValueError, TypeError):
        return False
    finally:
        sys.platform = saved
    return isinstance(ws.driver, BrowserDriver)


def _waiting_refused() -> bool:
    """Do ``wait_open()`` and ``with`` refuse to wait on a driver that cannot block?"""
    from wsloop import InvalidState, WebSocket
    from wsloop.drivers.browser import BrowserDriver
    from wsloop.sansio import State

    class Idle(BrowserDriver):
        state = property(lambda self: State.CONNECTING)  # type: ignore[assignment]

        def connect(self, url: Any, subprotocols: Any) -> None:
            pass

    ws = WebSocket(driver=Idle)
    ws.connect("ws://127.0.0.1:9/")
    try:
        ws.wait_open(0.2)
    except InvalidState:
        return True
    return False


PENDING: dict[str, tuple[Callable[[], bool], str]] = {
    "waiting_refused": (
        lambda: not _waiting_refused(),
        "WebSocket._wait() and __exit__ must honour BaseDriver.can_block",
    ),
    "import_without_websockets": (
        _import_pulls_websockets,
        "import wsloop must not import websockets (lazy engine in sansio.py)",
    ),
    "default_driver": (
        lambda: not _default_driver_is_browser(),
        "_make_driver() needs its 'browser' branch",
    ),
}
"""Cases that fail until a change outside the browser driver lands: the check
(on the desktop) that says it has not landed yet, and what it is."""


def _xfail_if_pending(request: pytest.FixtureRequest, case: str) -> None:
    pending = PENDING.get(case)
    if pending is None:
        return
    try:
        not_yet = pending[0]()
    except Exception:  # the check itself broke: let the case speak for itself
        not_yet = False
    if not_yet:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"not yet: {pending[1]}"))


# Prerequisites.


def _missing(what: str) -> None:
    message = f"{what} (install: make browser-deps)"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def _need_node() -> str:
    node = shutil.which("node")
    if node is None:
        _missing("needs Node.js")
    elif not (NODE_MODULES / "pyodide" / "pyodide.mjs").is_file():
        _missing("needs tests/browser/node_modules (npm ci in tests/browser)")
    return str(node)


def _need_chromium() -> str:
    node = _need_node()
    if not (NODE_MODULES / "playwright-core").is_dir():
        _missing("needs playwright-core in tests/browser/node_modules")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"needs Chromium at {CHROMIUM} (Debian package chromium)")
    return node


# Servers.


def _silent(conn: RawConnection) -> None:
    """Accept TCP, read the handshake request, never answer it."""
    with contextlib.suppress(EOFError, OSError):
        conn.read_request()
        conn.wait_eof()


def _mute(conn: RawConnection) -> None:
    """Complete the handshake, then never answer anything (not even a close frame)."""
    with contextlib.suppress(EOFError, OSError):
        conn.handshake()
        conn.wait_eof()


@pytest.fixture(scope="module")
def battery_ctx(ws_server: WebsocketsServer) -> Iterator[dict[str, Any]]:
    silent = RawServer(_silent, timeout=CASE_WAIT)
    mute = RawServer(_mute, timeout=CASE_WAIT)
    yield {
        "echo": f"ws://127.0.0.1:{ws_server.port}",
        "refused": f"ws://127.0.0.1:{free_port()}",
        "silent": f"ws://127.0.0.1:{silent.port}",
        "mute": f"ws://127.0.0.1:{mute.port}",
        "timeout": CASE_WAIT,
        # For working on one case: WSLOOP_BROWSER_CASES=reconnect,refused
        "cases": [c for c in os.environ.get("WSLOOP_BROWSER_CASES", "").split(",") if c],
    }
    silent.stop()
    mute.stop()


def _load_example_server() -> Any:
    spec = importlib.util.spec_from_file_location("wsloop_example_serve", EXAMPLE / "serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _relay() -> Iterator[tuple[int, str]]:
    """``python -m wsloop serve`` on a free port; yields (port, how it was started)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsloop", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + CASE_WAIT
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"wsloop serve exited with {proc.returncode}: {err}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise AssertionError("wsloop serve did not listen in time")
            time.sleep(0.05)
        yield port, "python -m wsloop serve"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# Runners.


def _run_node(script: Path, config: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / f"{script.stem}.json"
    path.write_text(json.dumps(config))
    flags = ["--experimental-websocket"] if _node_major() < 22 else []
    started = time.monotonic()
    try:
        done = subprocess.run(
            [_need_node(), *flags, str(script), str(path)],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=RUNNER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{script.name} ran past {RUNNER_TIMEOUT:g} s: {exc.stderr}"
        ) from None
    wall = time.monotonic() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"{script.name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    result["runner_wall_s"] = round(wall, 2)
    result["stderr"] = done.stderr[-4000:]
    return result


def _node_major() -> int:
    out = subprocess.run([_need_node(), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().lstrip("v").split(".")[0])


def _save(name: str, data: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(data, indent=2, ensure_ascii=False))


@pytest.fixture(scope="module")
def node_report(
    battery_ctx: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    _need_node()
    serve = _load_example_server()
    packages = serve.packages_for_browser()
    config = {
        "packages": {
            "wsloop": {
                "dir": str(packages["wsloop"]),
                "files": serve.python_files(packages["wsloop"]),
            }
        },
        "extras": {
            name: {"dir": str(folder), "files": serve.python_files(folder)}
            for name, folder in packages.items()
            if name != "wsloop"
        },
        "battery": str(HERE / "battery.py"),
        "ctx": {**battery_ctx, "runtime": "node"},
    }
    report = _run_node(HARNESS / "node_runner.mjs", config, tmp_path_factory.mktemp("node"))
    _save("node-report.json", report)
    return report


@pytest.fixture(scope="module")
def chromium_run(
    battery_ctx: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    _need_chromium()
    serve = _load_example_server()
    ARTIFACTS.mkdir(exist_ok=True)
    with _relay() as (relay_port, relay_how):
        server = serve.make_server(
            pyodide=NODE_MODULES / "pyodide",
            mounts={"/harness/": HARNESS, "/tests/": HERE},
            generated={"/run/config.json": {"ctx": {**battery_ctx, "runtime": "chromium"}}},
        )
        serve.serve_in_thread(server)
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            chat = f"{base}/?server=ws://127.0.0.1:{relay_port}&room=browser-test"
            config = {
                "battery_url": f"{base}/harness/page.html",
                "artifacts": str(ARTIFACTS),
                # Below the runner's own timeout, so that a stuck step is reported.
                "timeout_ms": int(RUNNER_TIMEOUT * 1000 / 4),
                "example": {"alice": f"{chat}&name=Alice", "bob": f"{chat}&name=Bob"},
            }
            run = _run_node(
                HARNESS / "chromium_runner.mjs", config, tmp_path_factory.mktemp("chromium")
            )
        finally:
            server.shutdown()
            server.server_close()
    run["relay"] = relay_how
    _save("chromium-report.json", run)
    return run


# What the server saw, per case (paths are /<runtime>/<case>).


def _entries(
    server: WebsocketsServer, runtime: str, path: str, *, wait: bool = True
) -> list[tuple[Any, ...]]:
    # The client's close reaches the server a moment after the client's Closed.
    full = f"/{runtime}/{path}"
    deadline = time.monotonic() + (CASE_WAIT if wait else 0.0)
    while not any(e[0] == "closed" for e in server.log.entries(full)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return server.log.entries(full)


def _server_checks(case: str, server: WebsocketsServer, runtime: str) -> None:
    if case not in _SERVER_CHECKED:
        return
    own_path = case not in ("reconnect",)
    seen = (
        _entries(server, runtime, case, wait=case != "close_while_connecting") if own_path else []
    )
    if case == "open_text":
        assert ("text", "héllo wörld ✓ 🎮") in seen, seen
        assert seen[-1] == ("closed", 1000, ""), seen
    elif case == "subprotocol":
        assert seen[0] == ("open", "superchat"), seen
    elif case == "binary_1mb":
        assert ("binary", bytes(range(256)) * 4096) in seen, "the server did not get 1 MiB"
    elif case == "close_from_client":
        assert seen[-1] == ("closed", 4001, "bye now ✓"), seen
    elif case == "subprotocol_failure":
        # The server accepted without a subprotocol; the browser failed the connection.
        assert seen[0] == ("open", None), seen
        assert seen[-1][0] == "closed" and seen[-1][1] != 1000, seen
    elif case == "max_message_size":
        # Browsers may only send 1000 or 3000-4999: the server sees 1000.
        assert seen[-1] == ("closed", 1000, "message too big"), seen
    elif case == "reconnect":
        replaced = _entries(server, runtime, "reconnect-2")
        assert replaced[-1] == ("closed", 1000, ""), replaced
        assert _entries(server, runtime, "reconnect-3")[-1] == ("closed", 1000, "")
    elif case == "close_while_connecting":
        assert not any(e[0] in ("text", "binary") for e in seen), seen


_SERVER_CHECKED = {
    "open_text",
    "subprotocol",
    "binary_1mb",
    "close_from_client",
    "subprotocol_failure",
    "max_message_size",
    "reconnect",
    "close_while_connecting",
}


def _check(report: dict[str, Any], case: str, server: WebsocketsServer) -> None:
    assert "harness_error" not in report, report.get("harness_error")
    results = report["results"]
    assert case in results, f"the runner did not run {case}: {sorted(results)}"
    result = results[case]
    assert result["ok"], f"{report['runtime']}: {case} failed in the browser:\n{result['error']}"
    _server_checks(case, server, report["runtime"])


# The tests.


@pytest.mark.parametrize("case", CASES)
def test_pyodide_node(
    case: str, node_report: dict[str, Any], ws_server: WebsocketsServer, request: Any
) -> None:
    _xfail_if_pending(request, case)
    _check(node_report, case, ws_server)


@pytest.mark.parametrize("case", CASES)
def test_chromium(
    case: str, chromium_run: dict[str, Any], ws_server: WebsocketsServer, request: Any
) -> None:
    assert chromium_run.get("battery"), chromium_run.get("error") or chromium_run
    _xfail_if_pending(request, case)
    _check(chromium_run["battery"], case, ws_server)


def test_chromium_extensions(chromium_run: dict[str, Any]) -> None:
    """Chromium offers permessage-deflate; the websockets server accepts it."""
    data = chromium_run["battery"]["results"]["open_text"]["data"]
    assert data["extensions"] == ["permessage-deflate"], data
    assert data["headers"] == {}, "the browser exposes no response headers"


def test_chromium_example_chat(chromium_run: dict[str, Any]) -> None:
    """The chat page, twice, against the relay: both users see each other's lines."""
    example = chromium_run.get("example")
    assert example, chromium_run.get("error") or "the example did not run"
    assert example["steps"] == [
        "alice connected",
        "bob connected",
        "bob got alice's line",
        "alice got bob's line",
    ], chromium_run.get("error")
    assert any("hello from Alice" in line for line in example["alice_log"]), example
    assert any("Bob here" in line for line in example["alice_log"]), example
    assert any("hello from Alice" in line for line in example["bob_log"]), example
    shot = Path(example["screenshot"])
    assert shot.is_file() and shot.stat().st_size > 10_000, shot
