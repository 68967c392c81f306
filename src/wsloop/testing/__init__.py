"""Test helpers for apps built on wsloop: real servers on a free local port.

* :func:`serve_echo` and :func:`serve_relay`: context managers that run the
  wsloop relay in a background thread on ``127.0.0.1`` and yield an object
  with ``.url`` and ``.port``::

      with serve_echo() as server:
          ws.connect(server.url)

* ``echo_server`` and ``relay_server``: the same as pytest fixtures. Import
  them into your ``conftest.py`` (``from wsloop.testing import echo_server``)
  or load the whole module as a plugin (``pytest -p wsloop.testing``, or
  ``pytest_plugins = ["wsloop.testing"]`` in the root ``conftest.py``).

* :func:`record` and :func:`poll_until`: collect a WebSocket's events in a
  list, and poll sockets like a game loop until a condition holds.

* :class:`ScriptedServer`: a deliberately bad server, to test your own
  ``on_error`` and ``on_closed`` handling. It accepts the handshake (unless
  told not to), then runs a script of steps for every connection::

      with ScriptedServer.closing(4000, "game over") as server:
          ws.connect(server.url)   # on_closed: code 4000, reason "game over"

      with ScriptedServer(SendText("hi"), Drop()) as server:
          ...                      # a message, then the TCP connection vanishes

  Its frames are written by hand, since a correct library would refuse to
  send most of them; it is for tests only and handles one simple client
  conversation per connection.

* :func:`check_driver`: the driver battery. Run it on a
  :class:`~wsloop.drivers.base.BaseDriver` subclass of your own (a driver for
  trio, a game engine...) to check that it keeps the WebSocket contract::

      def test_my_driver():
          check_driver(MyDriver)

Parts: ``_servers.py`` (the in-process servers, :func:`record`,
:func:`poll_until`), ``_scripted.py`` (:class:`ScriptedServer` and its
steps), ``_battery.py`` (:func:`check_driver`); this module adds the pytest
fixtures.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ._battery import CHECKS, DriverCheckError, check_driver, check_life_cycle
from ._scripted import (
    ClientFrame,
    Close,
    Drop,
    HandshakeRequest,
    Hang,
    Receive,
    Refuse,
    ScriptedServer,
    SendBinary,
    SendInvalidUTF8,
    SendOversized,
    SendRaw,
    SendText,
    Silent,
    Step,
)
from ._servers import poll_until, record, serve_echo, serve_relay

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..relay import RelayThread

__all__ = [
    "CHECKS",
    "ClientFrame",
    "Close",
    "DriverCheckError",
    "Drop",
    "HandshakeRequest",
    "Hang",
    "Receive",
    "Refuse",
    "ScriptedServer",
    "SendBinary",
    "SendInvalidUTF8",
    "SendOversized",
    "SendRaw",
    "SendText",
    "Silent",
    "Step",
    "check_driver",
    "check_life_cycle",
    "poll_until",
    "record",
    "serve_echo",
    "serve_relay",
]

if importlib.util.find_spec("pytest") is not None:
    import pytest

    @pytest.fixture
    def echo_server() -> Iterator[RelayThread]:
        """A fixture: an echo server on a free port; ``echo_server.url``."""
        with serve_echo() as server:
            yield server

    @pytest.fixture
    def relay_server() -> Iterator[RelayThread]:
        """A fixture: a relay on a free port; connect to ``relay_server.url + "/room/x"``."""
        with serve_relay() as server:
            yield server
