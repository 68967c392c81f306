"""The poll driver: all I/O happens inside ``poll()``, on the caller's thread.

Made for game loops: ``poll()`` never blocks unless asked to wait, and sends
write what the socket takes at once and buffer the rest, so a frame never
stalls on the network.

Theory of operation
-------------------
A connection moves through phases (:class:`~wsloop.drivers._attempt.Phase`),
each advanced by non-blocking calls made from ``poll()``; an
:class:`~wsloop.drivers._attempt.Attempt` (shared with the asyncio driver)
decides which phases run, which host each reaches and what each failure is
called:

``resolve``
    A name lookup. The operating system offers only a blocking call, so a
    host name that is not an IP literal is looked up on a short-lived helper
    thread; literals skip it.
``tcp``
    A non-blocking ``connect()`` to each address in turn until one answers.
``proxy``
    When a proxy applies (:func:`~wsloop._sansio.proxy.select_proxy`), the
    two phases above reach the proxy instead of the server, and this one
    opens the tunnel: the sans-I/O handshake of
    :mod:`wsloop._sansio.proxy` is fed what the proxy answers. Through a
    ``socks5://`` proxy (local name resolution) the ``resolve`` phase looks
    up the server's name first, then the proxy's.
``tls``
    For ``wss://``, the TLS handshake on the non-blocking socket, verifying
    the certificate and host name. Its context comes from
    :data:`~wsloop.drivers._tls.CONTEXTS`: ``connect()`` asks for it, so
    that the CA store is loaded on a helper thread while the earlier phases
    run (or not at all when the same options were used before), and this
    phase waits for it in slices, as ``resolve`` does, before the handshake.
``ws``
    The WebSocket handshake and then the messages, through a
    :class:`~wsloop.sansio.Session`, until the session is CLOSED.

The resolver and the context builder are the only threads this driver starts.
The four steps before ``ws`` are in :mod:`wsloop.drivers._poll_steps`.

The connect timeout covers every phase up to the open connection; the close
timeout starts when the session expects the server to close TCP; the
keepalive runs while open. :class:`~wsloop.drivers._timers.Timers` decides
all three (as for the asyncio driver); each step ends by ticking it.

Running it elsewhere
--------------------
``poll()`` is a loop over :meth:`PollDriver.step`, each step waiting no
later than :meth:`PollDriver.next_deadline`. Code that runs the same
machinery on a thread of its own (:class:`~wsloop.drivers.thread.ThreadDriver`)
calls those two while :attr:`PollDriver.phase` is not ``"idle"``, and ends a
wait early from another thread through the socket given to
:meth:`PollDriver.set_wake_socket`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import time
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any, TypeVar

from .._sansio.sendlimit import SendLimit
from ..exceptions import ProxyError, WebSocketError
from ..sansio import Session, State
from ._attempt import Attempt, Phase
from ._common import (
    end_on_transport_error,
    new_session,
    tls_error,
    warn_insecure,
)
from ._poll_steps import ConnectSteps, _Resolver
from ._timers import Due, Timers
from ._tls import CONTEXTS, ContextCache
from .base import BaseDriver, Config

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

    from .._sansio.proxy import ProxyHandshake
    from .._url import URL

__all__ = ["PollDriver"]

logger = logging.getLogger("wsloop.client")

T = TypeVar("T")

_READ_CHUNK = 256 * 1024
_MAX_READ_PER_POLL = 2**20
"""Bytes read in one step at most: the rest waits for the next poll() (the frame budget)."""
_FEED_SLICE = 16 * 1024
"""Bytes of a read given to the session at a time while they make many events."""
_FEW_EVENTS = 64
"""After the first slice, fewer events than this: the rest of the read goes at once."""
_EVENTS_PER_STEP = 1024
"""Events made in one step at most (the frame budget): the rest of the bytes waits."""
_HAS_POLL = hasattr(select, "poll")
_RESOLVE_SLICE = 0.005
_PONG_BACKLOG = 64 * 1024
"""Above this many bytes waiting to be written, only the latest ping is answered."""

_SEND_STEP = 0.0005
"""Seconds of framing slices of a large message per write step (see Session.sending)."""


class PollDriver(ConnectSteps, BaseDriver):
    """Runs the connection inside ``poll()`` on the caller's thread."""

    tls_contexts: ContextCache = CONTEXTS
    """Where ``wss://`` contexts come from; a subclass may bring its own cache."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._session: Session | None = None
        self._sock: socket.socket | None = None
        self._phase = Phase.IDLE
        self._url: URL | None = None
        self._resolver: _Resolver | None = None
        self._addrs: list[tuple[Any, ...]] = []
        self._last_os_error: OSError | None = None
        self._out: list[memoryview] = []
        """What the socket has not taken yet, oldest first (a list: an empty
        deque costs 0.7 KiB per idle connection; :meth:`_flush` removes the
        chunks it wrote in one go)."""
        self._out_size = 0
        self._eof_pending = False
        self._more_to_read = False
        self._held: memoryview | None = None
        """Bytes read but not given to the session yet (see :meth:`_feed`)."""
        self._poller: Any = None
        self._wake_sock: socket.socket | None = None
        self._wake_fd = -1
        """The descriptor of :attr:`wake_socket` (-1: none)."""
        self._timers = Timers(config)
        """The connect, close and keepalive deadlines."""
        self._send_limit = SendLimit(config.max_buffered_amount)
        self._tls_wants_write = False
        self._attempt: Attempt | None = None
        """What the current attempt does next, and what its failures are called."""
        self._handshake: ProxyHandshake | None = None
        self._proxy_out = bytearray()
        self._tls_context: Future[ssl.SSLContext] | None = None
        """The context for this ``wss://`` connection, perhaps still being built."""

    # What the façade reads.

    @property
    def state(self) -> State | None:
        session = self._session
        return None if session is None else session.state

    @property
    def subprotocol(self) -> str | None:
        session = self._session
        return None if session is None else session.subprotocol

    @property
    def buffered_amount(self) -> int:
        session = self._session
        return self._out_size + (0 if session is None else session.unsent)

    def fileno(self) -> int:
        sock = self._sock
        return -1 if sock is None else sock.fileno()

    @property
    def phase(self) -> Phase:
        """The step the connection is at: a :class:`Phase`, equal to its name.

        ``"resolve"``, ``"tcp"``, ``"proxy"``, ``"tls"``, ``"ws"``, or
        ``"idle"`` (no I/O): :meth:`step` has something to do unless this is
        ``"idle"``.
        """
        return self._phase

    @property
    def wake_socket(self) -> socket.socket | None:
        """The socket given to :meth:`set_wake_socket`, if any."""
        return self._wake_sock

    def set_wake_socket(self, sock: socket.socket | None) -> None:
        """Let ``sock`` becoming readable end a wait in :meth:`step` early.

        ``sock`` is one end of a non-blocking socket pair (or ``None`` to
        stop); another thread writes a byte to the other end after it has
        changed something the waiting thread must act on (a send, a close).
        The driver reads and discards what arrives. The caller keeps
        ownership: it closes the socket, after setting ``None`` here.
        """
        self._wake_sock = sock
        self._wake_fd = -1 if sock is None else sock.fileno()
        self._poller = None  # rebuilt with the new descriptor

    # Actions.

    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        warn_insecure(self.config, url)
        if self._session is not None and self._session.state is not State.CLOSED:
            # A new connect() ends the previous connection first.
            if self._session.state is State.OPEN:
                self._session.send_close(1000, "")
                self._flush_session()
            self._session.abort(None)
            self._teardown()
            self._collect()
        config = self.config
        self._session = new_session(url, subprotocols, config)
        self._url = url
        self._out.clear()
        self._out_size = 0
        self._eof_pending = False
        self._more_to_read = False
        self._last_os_error = None
        self._timers.begin(time.monotonic())
        # Built (if it must be) off this thread while the earlier phases run.
        self._tls_context = self.tls_contexts.get(config) if url.secure else None
        try:
            attempt = Attempt(url, config.proxy, config.user_agent)
        except ProxyError as exc:
            self._attempt = None
            self._fail(exc)
            return
        self._attempt = attempt
        self._look_up(*attempt.first_lookup())

    def send_text(self, text: str) -> bool:
        session = self._session
        if session is None or self._send_buffer_full() or not session.send_text(text):
            return False
        self._write_data(session)
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        session = self._session
        if session is None or self._send_buffer_full() or not session.send_binary(data):
            return False
        self._write_data(session)
        return True

    def _write_data(self, session: Session) -> None:
        """Write a data frame: it changes no state and makes no event.

        A message queued in slices (``session.sending``) is left to the next
        :meth:`poll` calls, so that a send returns at once whatever its size.
        """
        if self._phase != Phase.WS:
            self._flush_session()
            return
        if session.sending:
            return
        out = self._out
        for chunk in session.data_to_send():
            out.append(memoryview(chunk))
            self._out_size += len(chunk)
        self._flush()

    def _send_buffer_full(self) -> bool:
        return self._send_limit.full(self.buffered_amount)

    def _inbound_full(self) -> bool:
        """True when the application has not taken enough events to read more."""
        limit = self.config.max_queue
        return limit is not None and self._queued() >= limit

    def _queued(self) -> int:
        return len(self.events)

    def send_ping(self, data: bytes = b"") -> bool:
        session = self._session
        if session is None or not session.send_ping(data):
            return False
        self._flush_session()
        return True

    def close(self, code: int, reason: str) -> None:
        session = self._session
        if session is None or session.state is State.CLOSED:
            return
        if session.state is State.CONNECTING:
            session.send_close(code, reason)
            self._teardown()
            self._collect()
            return
        session.send_close(code, reason)
        self._flush_session()

    # The I/O loop.

    def poll(self, timeout: float | None) -> None:
        if timeout == 0 and self._phase == Phase.WS and self._nothing_to_do():
            return  # what a game pays per frame for an idle connection
        session = self._session
        if session is None or self._phase == Phase.IDLE:
            if timeout:
                time.sleep(timeout)
            return
        # One step that waits (the kernel returns at once when the socket is
        # ready), not a zero-timeout step first: one system call less per wait.
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            wait = None if end is None else max(0.0, end - now)
            deadline = self.next_deadline()
            if deadline is not None:
                wait = (
                    max(0.0, deadline - now)
                    if wait is None
                    else max(0.0, min(wait, deadline - now))
                )
            self.step(wait=wait)
            if self.events or self.phase == Phase.IDLE:  # the step may have ended it
                return
            if end is not None and time.monotonic() >= end:
                return

    def _nothing_to_do(self) -> bool:
        """One non-blocking check: no byte to read or write, no timer due."""
        poller = self._poller
        if poller is None or self._out or self._more_to_read or poller.poll(0):
            return False
        session = self._session
        if session is not None and session.sending:
            return False
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        deadline = self._timers.deadline
        return deadline is None or time.monotonic() < deadline

    def timeout(self) -> float | None:
        """Seconds until :meth:`poll` must run even if the socket stays quiet.

        0 when it should run now; ``None`` when only socket activity matters.
        For loops that wait on :meth:`fileno` themselves (Tk, Qt, selectors).
        """
        if self.events or self._more_to_read:
            return 0.0
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return 0.0
        if self._phase == Phase.RESOLVE or self._building_context():
            return _RESOLVE_SLICE
        deadline = self.next_deadline()
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    @property
    def wants_write(self) -> bool:
        """True while the socket should be watched for writability too."""
        return self._sock is not None and (
            self._phase == Phase.TCP
            or bool(self._out)
            or bool(self._proxy_out)
            or self._tls_wants_write
            or (self._phase == Phase.WS and self._session is not None and self._session.sending)
        )

    def _building_context(self) -> bool:
        """True while the ``tls`` phase waits for its context to be built."""
        return self._phase == Phase.TLS and self._tls_context is not None

    def next_deadline(self) -> float | None:
        """The :func:`time.monotonic` time when a timer falls due, or ``None``.

        The earliest of the connect timeout, the close timeout and the
        keepalive's next ping or deadline; a wait should end by then, so that
        :meth:`step` can act on it.
        """
        return self._timers.deadline

    def step(self, wait: float | None) -> None:
        """Advance the connection once, waiting up to ``wait`` seconds for readiness.

        Waits for the socket (or the helper thread of the ``resolve`` and
        ``tls`` phases, in slices), then does what is ready and checks the
        timers; events produced are appended to :attr:`events`. ``None``
        waits until something is ready, however long: pass
        :meth:`next_deadline` as a bound. 0 never waits. A byte on the
        :attr:`wake_socket` ends the wait early. Does nothing in the
        ``"idle"`` phase but check the timers.
        """
        phase = self._phase
        if phase == Phase.RESOLVE:
            resolver = self._resolver
            assert resolver is not None
            if wait is None or wait > 0:
                slice_ = _RESOLVE_SLICE if wait is None else min(wait, _RESOLVE_SLICE)
                self._block(resolver.done.wait, slice_)
            if resolver.done.is_set() and self._resolver is resolver:
                self._resolved(resolver)
        elif phase == Phase.TLS and self._building_context():
            future = self._tls_context
            assert future is not None
            if wait is None or wait > 0:
                slice_ = _RESOLVE_SLICE if wait is None else min(wait, _RESOLVE_SLICE)
                self._block(wait_futures, (future,), slice_)
            # The thread driver's lock was released: a connect() may have come.
            if future.done() and self._tls_context is future:
                self._start_tls(future)
        elif phase in (Phase.TCP, Phase.PROXY, Phase.TLS, Phase.WS):
            full = phase == Phase.WS and self._inbound_full()
            if self._more_to_read and phase == Phase.WS and not full:
                wait = 0.0
            readable, writable = self._wait(wait, read=not full)
            if phase == Phase.TCP:
                if writable or readable:
                    self._tcp_ready()
            elif phase == Phase.PROXY:
                self._proxy_step(readable, writable)
            elif phase == Phase.TLS:
                if writable or readable or wait == 0.0:
                    self._tls_step()
            else:
                session = self._session
                if writable and (self._out or (session is not None and session.sending)):
                    self._flush()  # may end the connection (a reset)
                if self._phase == Phase.WS and (readable or self._more_to_read) and not full:
                    self._read()
        self._check_timers()

    def _wait(self, wait: float | None, *, read: bool = True) -> tuple[bool, bool]:
        """Wait up to ``wait`` seconds for the socket; return (readable, writable).

        With ``read=False`` (the application is behind) only writability and
        the wake-up signal end the wait: TCP flow control then slows the server.
        """
        sock = self._sock
        if sock is None:
            return False, False
        want_write = self.wants_write
        if read and isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True, want_write
        fd = sock.fileno()
        wake = self._wake_fd
        if _HAS_POLL:
            poller = self._poller
            if poller is None:
                poller = self._poller = select.poll()
                poller.register(fd, select.POLLIN)
                if wake >= 0:
                    poller.register(wake, select.POLLIN)
            mask = (select.POLLIN if read else 0) | (select.POLLOUT if want_write else 0)
            poller.modify(fd, mask)
            ms = -1 if wait is None else int(wait * 1000 + 0.999)
            ready = poller.poll(ms) if ms == 0 else self._block(poller.poll, ms)
            if self._sock is not sock:  # replaced while the lock was released
                return False, False
            flags = 0
            for ready_fd, ready_flags in ready:
                if ready_fd == fd:
                    flags = ready_flags
                else:
                    self._drain_wake()
            err = select.POLLERR | select.POLLHUP
            return bool(flags & (select.POLLIN | err)), bool(flags & (select.POLLOUT | err))
        rlist: list[Any] = [sock] if read else []
        if wake >= 0:
            rlist.append(wake)
        r, w, _ = self._block(select.select, rlist, [sock] if want_write else [], [], wait)
        if self._sock is not sock:
            return False, False
        if wake >= 0 and wake in r:
            self._drain_wake()
        return sock in r, bool(w)

    def _block(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a call that may block. The thread driver releases its lock here."""
        return fn(*args)

    def _drain_wake(self) -> None:
        """Read and discard what the wake socket holds."""
        sock = self._wake_sock
        if sock is None:
            return
        try:
            while sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # Reading and writing.

    def _read(self) -> None:
        sock = self._sock
        session = self._session
        assert sock is not None
        assert session is not None
        self._more_to_read = False
        total = 0
        while True:
            data: bytes | memoryview | None = self._held
            if data is not None:
                self._held = None
            else:
                try:
                    data = sock.recv(_READ_CHUNK)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                    break
                except ssl.SSLWantWriteError:
                    break
                except OSError as exc:
                    self._lost(exc)
                    return
                if not data:
                    session.receive_eof()
                    self._teardown()
                    self._collect()
                    return
                total += len(data)
            rest = self._feed(session, data)
            if session.state is State.CLOSED:
                self._teardown()
                self._collect()
                return
            if rest is not None:
                self._held = rest
                self._more_to_read = True
                break
            if (
                total >= _MAX_READ_PER_POLL
                or len(self.events) >= _EVENTS_PER_STEP
                or self._inbound_full()
            ):
                self._more_to_read = True
                break
            if len(data) < _READ_CHUNK and not isinstance(sock, ssl.SSLSocket):
                break  # drained: no recv() that fails with EAGAIN
        self._collect()

    def _feed(self, session: Session, data: bytes | memoryview) -> memoryview | None:
        """Give ``data`` to the session; return what must wait for the next step.

        A read of small messages (a flood of thousands) would become
        thousands of events in one ``poll()``: past the first
        :data:`_FEED_SLICE` bytes, the rest goes in slices, and what is left
        once :data:`_EVENTS_PER_STEP` events (or ``max_queue``) are waiting is
        held for the next step. A read that carries part of a large message
        makes few events and goes in two calls.
        """
        size = len(data)
        # Above this backlog only the latest ping is answered.
        session.coalesce_pongs = self._out_size > _PONG_BACKLOG
        if size <= _FEED_SLICE:
            session.receive_data(data)
            self._flush_session()
            return None
        view = memoryview(data)  # slices of it: recv() returned bytes, never changed
        before = len(self.events)
        pos = 0
        while pos < size:
            few = pos and len(self.events) - before < _FEW_EVENTS
            end = size if few else pos + _FEED_SLICE
            session.coalesce_pongs = self._out_size > _PONG_BACKLOG
            session.receive_data(view[pos:end])
            self._flush_session()
            pos = end
            if session.state is State.CLOSED:
                return None
            if pos < size and (len(self.events) >= _EVENTS_PER_STEP or self._inbound_full()):
                return view[pos:]
        return None

    def _take(self, session: Session) -> None:
        """Move what the session has to send into the write buffer."""
        for chunk in session.data_to_send():
            if chunk:
                self._out.append(memoryview(chunk))
                self._out_size += len(chunk)
            else:
                self._eof_pending = True

    def _flush_session(self) -> None:
        session = self._session
        assert session is not None
        self._take(session)
        if self._phase == Phase.WS:
            if self._out:
                self._flush()
            self._timers.advance(session, time.monotonic())
            if session.state is State.CLOSED:
                self._teardown()
        self._collect()

    def _flush(self) -> None:
        sock = self._sock
        if sock is None:
            return
        if not self._write_out(sock):
            return
        if self._eof_pending and not isinstance(sock, ssl.SSLSocket):
            self._eof_pending = False
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    def _write_out(self, sock: socket.socket) -> bool:
        """Write :attr:`_out`, then the next slices of a large message, while
        the socket takes them; False when it stopped taking them."""
        out = self._out
        session = self._session
        started = 0.0
        done = 0  # chunks of out written whole, removed at the end in one go
        try:
            while True:
                if done == len(out):
                    if done:
                        out.clear()
                        done = 0
                    more = session is not None and session.sending
                    if not more:
                        return True
                    assert session is not None
                    # The next slice of a large message, while the network
                    # takes them and this step's share of the frame budget lasts.
                    now = time.perf_counter()
                    if not started:
                        started = now
                    elif now - started > _SEND_STEP:
                        return False
                    self._take(session)
                    if not session.sending:
                        # A close that waited behind it starts its timer now.
                        self._timers.advance(session, time.monotonic())
                    if not out:
                        return True
                    continue
                chunk = out[done]
                try:
                    sent = sock.send(chunk)
                except (
                    BlockingIOError,
                    InterruptedError,
                    ssl.SSLWantWriteError,
                    ssl.SSLWantReadError,
                ):
                    return False
                except OSError as exc:
                    self._lost(exc)  # clears out
                    done = 0
                    return False
                self._out_size -= sent
                if sent < len(chunk):
                    out[done] = chunk[sent:]
                    return False
                done += 1
        finally:
            if done:
                del out[:done]

    # Endings.

    def _check_timers(self) -> None:
        session = self._session
        if session is None:
            return
        due = self._timers.tick(session, self._phase, time.monotonic())
        if due is Due.PING:
            self._flush_session()
        elif due is not None:  # closed cleanly, or failed: the socket goes either way
            self._teardown()
            self._collect()

    def _fail(self, exc: WebSocketError) -> None:
        session = self._session
        assert session is not None
        session.abort(exc)
        self._teardown()
        self._collect()

    def _lost(self, exc: OSError) -> None:
        session = self._session
        url = self._url
        if (
            isinstance(exc, ssl.SSLError)
            and url is not None
            and session is not None
            and session.state is State.CONNECTING
        ):
            # TLS 1.3 servers check the client certificate after the client
            # has finished its handshake: their alert comes after it, and may
            # make the first write fail before a read would have shown it.
            self._fail(tls_error(url, self._tls_alert(exc)))
            return
        assert session is not None
        end_on_transport_error(session, exc)
        self._teardown()
        self._collect()

    def _tls_alert(self, exc: ssl.SSLError) -> ssl.SSLError:
        """The server's alert, if one waits to be read, else ``exc``."""
        sock = self._sock
        if isinstance(exc, ssl.SSLEOFError) and isinstance(sock, ssl.SSLSocket):
            try:
                sock.recv(1)
            except ssl.SSLError as alert:
                if not isinstance(alert, (ssl.SSLEOFError, ssl.SSLWantReadError)):
                    alert.__context__ = exc
                    return alert
            except OSError:
                pass
        return exc

    def _teardown(self) -> None:
        self._timers.stop()
        self._phase = Phase.IDLE
        self._resolver = None
        sock = self._sock
        if sock is not None:
            self._set_socket(None)
            sock.close()
        self._out.clear()
        self._out_size = 0
        self._more_to_read = False
        self._held = None
        self._handshake = None
        self._proxy_out.clear()
        self._attempt = None
        self._tls_context = None

    def _collect(self) -> None:
        session = self._session
        if session is None:
            return
        pongs = session.pongs_received
        if pongs:
            self._timers.pongs(pongs, time.monotonic())
            pongs.clear()
        events = session.events_received()
        if events:
            # The timers followed the session in _flush_session, which every event comes through.
            self.events.extend(events)

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds."""
        return self._timers.keepalive.latency
