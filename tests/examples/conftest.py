"""Fixtures for the example tests (the helpers are in example_helpers.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from typing import TYPE_CHECKING

import pytest
from example_helpers import TIMEOUT, EchoServer, read_display_number

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def busy_echo_server() -> Iterator[EchoServer]:
    """An echo server that stops reading while an echo waits to be sent.

    Like a busy server, it pushes back: a client sending large messages soon
    has to keep part of them in its own send buffer, which is what the GUI
    tests need to check that their loop gets that part written. (Not for
    tests that close right after sending: while it does not read, it does not
    notice the client leaving either, until its 10 s close timeout.)
    """
    server = EchoServer(max_queue=1)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def silent_server_url() -> Iterator[str]:
    """The URL of a port that accepts TCP connections and never says a word.

    The kernel completes the TCP handshake for connections waiting in the
    listening socket's backlog; nobody accepts them, so a client stays in the
    WebSocket handshake until its connect timeout expires.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=8) as server:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}/room/silent"


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """Start ``Xvfb`` on a free display number; yield ``":N"``; stop it after.

    ``-displayfd`` makes the server pick the first free number itself and
    report it once it accepts connections, which avoids both guessing and the
    race between two test runs choosing the same number.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb xauth)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [
            xvfb,
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        number = read_display_number(read_fd, proc)
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
