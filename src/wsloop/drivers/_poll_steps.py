"""The poll driver's steps before the WebSocket handshake: resolve, tcp, proxy, tls.

The theory of operation is in :mod:`wsloop.drivers.poll`: these are the
methods that carry out its first four phases with non-blocking calls, kept
apart from the open connection's reading, writing and endings.
:class:`~wsloop.drivers.poll.PollDriver` inherits them from
:class:`ConnectSteps`. Each step starts the next when it is done;
:class:`~wsloop.drivers._attempt.Attempt` says which one comes next and what
a failure is called. The driver owns the socket, the session and the endings
(``_fail``, ``_flush_session``); the steps only use them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

from ..exceptions import ProxyError, TLSError
from ..sansio import State
from ._attempt import Attempt, Phase
from ._common import is_ip_literal, new_socket, numeric_addresses, tls_error

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .._sansio.proxy import ProxyHandshake
    from .._url import URL
    from ..exceptions import WebSocketError
    from ..sansio import Session

__all__ = ["ConnectSteps"]

_PROXY_READ = 4096


class _Resolver:
    """One name lookup on a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        self.result: list[tuple[Any, ...]] | None = None
        self.error: OSError | None = None
        self.done = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(host, port), name="wsloop-resolve", daemon=True
        )
        thread.start()

    def _run(self, host: str, port: int) -> None:
        try:
            self.result = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()


class ConnectSteps:
    """The ``resolve``, ``tcp``, ``proxy`` and ``tls`` steps of the poll driver."""

    # Set by PollDriver.__init__; shared with the rest of the driver.
    _session: Session | None
    _sock: socket.socket | None
    _phase: Phase
    _url: URL | None
    _resolver: _Resolver | None
    _addrs: list[tuple[Any, ...]]
    _last_os_error: OSError | None
    _poller: Any
    _tls_wants_write: bool
    _attempt: Attempt | None
    _handshake: ProxyHandshake | None
    _proxy_out: bytearray
    _tls_context: Future[ssl.SSLContext] | None

    if TYPE_CHECKING:  # the driver's, in drivers/poll.py

        def _fail(self, exc: WebSocketError) -> None: ...

        def _flush_session(self) -> None: ...

    def _look_up(self, host: str, port: int) -> None:
        """Resolve ``host`` on a helper thread; an IP literal is dialled at once."""
        if is_ip_literal(host):
            self._dial(numeric_addresses(host, port))
        else:
            self._phase = Phase.RESOLVE
            self._resolver = _Resolver(host, port)

    def _dial(self, addrs: list[tuple[Any, ...]]) -> None:
        self._addrs = addrs
        self._phase = Phase.TCP
        self._next_address()

    def _resolved(self, resolver: _Resolver) -> None:
        self._resolver = None
        attempt = self._attempt
        assert attempt is not None
        if resolver.error is not None or not resolver.result:
            self._fail(attempt.lookup_failed(resolver.error))
        elif attempt.resolved(resolver.result):
            self._dial(resolver.result)
        else:  # that was the server's name, for the proxy: now the proxy's
            self._look_up(*attempt.dial_target())

    def _next_address(self) -> None:
        while self._addrs:
            family, type_, proto, _, addr = self._addrs.pop(0)
            try:
                sock = new_socket(family, type_, proto)
            except OSError as os_exc:
                self._last_os_error = os_exc
                continue
            try:
                err = sock.connect_ex(addr)
            except OSError as os_exc:
                sock.close()
                self._last_os_error = os_exc
                continue
            if err in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY):
                self._set_socket(sock)
                return
            sock.close()
            self._last_os_error = OSError(err, _strerror(err))
        attempt = self._attempt
        assert attempt is not None
        self._fail(attempt.connect_failed(self._last_os_error))

    def _set_socket(self, sock: socket.socket | None) -> None:
        old = self._sock
        if old is not None and self._poller is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._poller.unregister(old.fileno())
        self._poller = None
        self._sock = sock

    def _tcp_ready(self) -> None:
        sock = self._sock
        assert sock is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._last_os_error = OSError(err, _strerror(err))
            self._set_socket(None)
            sock.close()
            self._next_address()
            return
        attempt = self._attempt
        assert attempt is not None
        if attempt.after_tcp() is Phase.PROXY:
            self._start_proxy(attempt)
        else:
            self._start_tls_or_ws()

    def _start_proxy(self, attempt: Attempt) -> None:
        try:
            handshake = attempt.proxy_handshake()
        except ProxyError as exc:
            self._fail(exc)
            return
        self._handshake = handshake
        self._phase = Phase.PROXY
        self._proxy_out += handshake.data_to_send()
        self._proxy_flush()

    def _proxy_flush(self) -> bool:
        """Write what the proxy handshake has to say; False if the connection broke."""
        sock = self._sock
        assert sock is not None
        out = self._proxy_out
        while out:
            try:
                sent = sock.send(out)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                self._proxy_lost(exc)
                return False
            del out[:sent]
        return True

    def _proxy_lost(self, exc: OSError) -> None:
        attempt = self._attempt
        handshake = self._handshake
        assert attempt is not None
        assert handshake is not None
        self._fail(attempt.proxy_lost(handshake, exc))

    def _proxy_step(self, readable: bool, writable: bool) -> None:
        sock = self._sock
        handshake = self._handshake
        assert sock is not None
        assert handshake is not None
        if writable and self._proxy_out and not self._proxy_flush():
            return
        if not readable:
            return
        try:
            data = sock.recv(_PROXY_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._proxy_lost(exc)
            return
        try:
            if data:
                handshake.receive_data(data)
            else:
                handshake.receive_eof()
        except ProxyError as exc:
            self._fail(exc)
            return
        self._proxy_out += handshake.data_to_send()
        if not self._proxy_flush():
            return
        if handshake.done:
            self._handshake = None
            self._start_tls_or_ws(handshake.tunnel_data())

    def _start_tls_or_ws(self, early: bytes = b"") -> None:
        """TCP (or the tunnel) is up: start TLS for ``wss://``, else the WebSocket.

        ``early`` holds bytes that arrived with the proxy's answer, after it.
        """
        attempt = self._attempt
        assert attempt is not None
        try:
            phase = attempt.after_transport(early)
        except ProxyError as exc:  # bytes before TLS, which the client starts
            self._fail(exc)
            return
        if phase is Phase.TLS:
            self._phase = Phase.TLS
            future = self._tls_context
            assert future is not None
            if future.done():
                self._start_tls(future)
        else:
            self._start_ws()
            session = self._session
            if early and session is not None and session.state is not State.CLOSED:
                session.receive_data(early)
                self._flush_session()

    def _start_tls(self, future: Future[ssl.SSLContext]) -> None:
        """The context is ready (or failed to build): start the TLS handshake."""
        sock = self._sock
        url = self._url
        assert sock is not None
        assert url is not None
        self._tls_context = None
        try:
            tls = future.result().wrap_socket(
                sock, server_hostname=url.host, do_handshake_on_connect=False
            )
        except TLSError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # OSError, ValueError, or whatever the build raised
            self._fail(tls_error(url, exc))
            return
        self._set_socket(tls)
        self._tls_step()

    def _tls_step(self) -> None:
        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)
        url = self._url
        assert url is not None
        self._tls_wants_write = False
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            self._tls_wants_write = True
            return
        except OSError as exc:  # ssl.SSLError included
            self._fail(tls_error(url, exc))
            return
        self._start_ws()

    def _start_ws(self) -> None:
        self._phase = Phase.WS
        self._attempt = None  # its decisions are made: not kept per open connection
        self._flush_session()


def _strerror(err: int) -> str:
    return os.strerror(err)
