"""The asyncio driver: asyncio transports feeding a :class:`~wsloop.sansio.Session`.

Made for :class:`~wsloop.AsyncWebSocket`: everything runs in the event loop's
callbacks, so the loop is never blocked, and it works with any loop that
implements the standard transport API (the default loop, uvloop).

Theory of operation
-------------------
:meth:`AsyncioDriver.connect` starts one task per connection attempt for the
steps before the WebSocket handshake; an :class:`~wsloop.drivers._attempt.Attempt`
(shared with the poll driver) decides which steps run, which host each one
reaches and what each failure is called. ``_phase`` names the step in
progress, so that a connect timeout says where it struck:

``resolve``
    ``loop.getaddrinfo()``, skipped for IP literals.
``tcp``
    ``loop.sock_connect()`` to each address in turn until one answers.
``proxy``
    When a proxy applies (:func:`~wsloop._sansio.proxy.select_proxy`), the
    two phases above reach the proxy instead of the server, and this one opens
    the tunnel: the sans-I/O handshake of :mod:`wsloop._sansio.proxy` talks
    to the proxy through ``loop.sock_sendall()`` and ``loop.sock_recv()``.
    Through a ``socks5://`` proxy (local name resolution) the ``resolve``
    phase looks up the server's name first, then the proxy's.

Then the socket becomes a transport bound to a :class:`_Protocol`.

``tls``
    For ``wss://``, ``loop.start_tls()`` on that transport (through the
    tunnel, if any), verifying the certificate against the server's host name
    (SNI set). The context comes from :data:`~wsloop.drivers._tls.CONTEXTS`,
    asked for in ``connect()``: built on a helper thread while the earlier
    phases run, once per set of TLS options, shared with the other drivers.
``ws``
    The handshake request is written; from now on the transport's callbacks
    (``data_received``, ``eof_received``, ``connection_lost``) feed the session
    and every call ends by writing what the session wants sent and handing its
    events to the ``deliver`` callback.

The four steps before ``ws`` are coroutines in :mod:`wsloop.drivers._asyncio_steps`.
The connect timeout (all these phases), the close timeout (from when the
session expects the server to close TCP) and the keepalive (while open) are
decided by :class:`~wsloop.drivers._timers.Timers`, as in the poll driver;
this driver keeps one loop timer pointed at its earliest deadline.

Flow control. Writes never wait: the transport buffers what the socket does
not take, :attr:`AsyncioDriver.buffered_amount` says how much, and
:attr:`AsyncioDriver.writing_paused` is true while that is above
:data:`WRITE_LIMIT`. Reads stop while the consumer says so with
:meth:`AsyncioDriver.pause_reading`, which is how the façade keeps the events
it has not delivered yet bounded. What the transport delivers is fed to the
session in slices of :data:`_FEED_SLICE` bytes, so that a pause requested
while handling one slice keeps the rest unparsed (held, with an EOF that came
after it) instead of turning a whole read, perhaps compressed, into events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .._sansio.sendlimit import SendLimit
from ..exceptions import ProxyError, WebSocketError
from ..sansio import Session, State
from ._asyncio_steps import connect_socket, look_up, start_tls, tunnel
from ._attempt import Attempt, Phase
from ._common import (
    connect_error,
    end_on_transport_error,
    new_session,
    warn_insecure,
)
from ._timers import Due, Timers
from ._tls import CONTEXTS, ContextCache
from .base import AsyncBaseDriver

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from concurrent.futures import Future

    from .._url import URL
    from ..events import Event
    from .base import Config

__all__ = ["WRITE_LIMIT", "AsyncioDriver"]

logger = logging.getLogger("wsloop.client")

WRITE_LIMIT = 64 * 1024
"""Bytes buffered for writing above which :attr:`AsyncioDriver.writing_paused` is true."""

_FEED_SLICE = 16 * 1024
"""Bytes given to the session at a time, so that a pause takes effect within a read."""

_PONG_BACKLOG = 64 * 1024
"""Above this many bytes waiting to be written, only the latest ping is answered."""

_SEND_STEP = 0.0005
"""Seconds of framing slices of a large message per loop callback (see Session.sending)."""


class _Protocol(asyncio.Protocol):
    """The transport's view of one connection attempt; forwards to the driver."""

    def __init__(self, driver: AsyncioDriver, session: Session) -> None:
        self._driver = driver
        self._session = session
        self.writing_paused = False

    def data_received(self, data: bytes) -> None:
        self._driver._data_received(self._session, data)

    def eof_received(self) -> bool | None:
        self._driver._eof_received(self._session)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.writing_paused = False
        self._driver._connection_lost(self._session, exc)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._driver._writable(self._session)


class AsyncioDriver(AsyncBaseDriver):
    """Runs connections on the running asyncio loop; one connection at a time.

    Args:
        config: the options of the WebSocket.
        deliver: called with each batch of new events, in order, from the
            loop's callbacks. It must not block; it may call
            :meth:`pause_reading`.
        wake: called, if given, when :attr:`writing_paused` turns false or the
            connection ends, for whoever waits on that.

    It implements :class:`~wsloop.drivers.base.AsyncBaseDriver`: no
    ``poll()``, the event loop does the polling.
    """

    tls_contexts: ContextCache = CONTEXTS
    """Where ``wss://`` contexts come from; a subclass may bring its own cache."""

    def __init__(
        self,
        config: Config,
        deliver: Callable[[list[Event]], None],
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        """The options this driver was made with."""
        self._deliver = deliver
        self._wake = wake
        self._session: Session | None = None
        self._url: URL | None = None
        self._phase = Phase.IDLE
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._protocol: _Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timers = Timers(config)
        """The connect, close and keepalive deadlines."""
        self._timer: asyncio.TimerHandle | None = None
        """The one loop timer, at :attr:`Timers.deadline`."""
        self._reading_paused = False
        self._tls_context: Future[ssl.SSLContext] | None = None
        """The context for the current ``wss://`` connection, perhaps still being built."""
        self._send_limit = SendLimit(config.max_buffered_amount)
        self._held: list[memoryview] = []
        """Bytes received but not parsed yet because reading is paused (oldest first).

        A list, not a deque: a deque costs 760 bytes per idle connection, and
        the transport pauses as soon as anything is held, so this stays short."""
        self._held_end = False
        """The server's EOF came after the held bytes."""
        self._feeding_scheduled = False
        self._sending_scheduled = False
        """A call to :meth:`_send_more` is on the loop (a large message is going out)."""

    # What the façade reads.

    @property
    def state(self) -> State | None:
        """The state of the current connection; ``None`` before any ``connect()``."""
        session = self._session
        return None if session is None else session.state

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol of the current connection, once open."""
        session = self._session
        return None if session is None else session.subprotocol

    @property
    def phase(self) -> Phase:
        """The step the connection is at: a :class:`Phase`, equal to its name (``"ws"``...)."""
        return self._phase

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by ``send_*`` that the transport has not written yet."""
        transport = self._transport
        session = self._session
        if transport is None or session is None or self._phase != Phase.WS:
            return 0
        return transport.get_write_buffer_size() + session.unsent

    @property
    def writing_paused(self) -> bool:
        """True while more than :data:`WRITE_LIMIT` bytes wait to be written."""
        protocol = self._protocol
        return protocol is not None and self._phase == Phase.WS and protocol.writing_paused

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last keepalive ping, in seconds."""
        return self._timers.keepalive.latency

    @property
    def reading_paused(self) -> bool:
        """True between :meth:`pause_reading` and :meth:`resume_reading` (or a new connect)."""
        return self._reading_paused

    def fileno(self) -> int:
        """The socket's file descriptor, or -1 when there is none."""
        transport = self._transport
        if transport is None:
            return -1
        sock = transport.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    # Actions.

    def connect(self, url: URL, subprotocols: tuple[str, ...]) -> None:
        """Start a connection on the running loop; return at once.

        A connection still active is ended first (an Error and a Closed that
        are delivered before anything of the new one).

        Raises:
            RuntimeError: no event loop is running in this thread.
            InsecureWarning: ``insecure=True`` with a ``wss://`` URL, when
                warnings are errors; nothing was started then.
        """
        loop = asyncio.get_running_loop()
        warn_insecure(self.config, url)
        old = self._session
        if old is not None and old.state is not State.CLOSED:
            self._fail(old, None)
        config = self.config
        session = new_session(url, subprotocols, config)
        self._session = session
        self._url = url
        self._loop = loop
        self._phase = Phase.RESOLVE
        self._reading_paused = False
        self._held.clear()
        self._held_end = False
        self._protocol = None
        self._transport = None
        # Built (if it must be) on a helper thread while the earlier phases run.
        self._tls_context = self.tls_contexts.get(config) if url.secure else None
        self._timers.begin(loop.time())
        self._arm_timer(session)
        task = self._task = loop.create_task(self._open(session, url), name="wsloop-connect")
        task.add_done_callback(self._forget_task)  # a finished task kept is ~1 KiB per connection

    def send_text(self, text: str) -> bool:
        """Send a text message if open; return whether it was accepted."""
        session = self._session
        if session is None or self._send_buffer_full() or not session.send_text(text):
            return False
        self._flush(session)
        return True

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Send a binary message if open; return whether it was accepted."""
        session = self._session
        if session is None or self._send_buffer_full() or not session.send_binary(data):
            return False
        self._flush(session)
        return True

    def _send_buffer_full(self) -> bool:
        """True (with one warning) while ``max_buffered_amount`` is reached."""
        return self._send_limit.full(self.buffered_amount)

    def send_ping(self, data: bytes = b"") -> bool:
        """Send a ping if open; return whether it was accepted."""
        session = self._session
        if session is None or not session.send_ping(data):
            return False
        self._flush(session)
        return True

    def close(self, code: int, reason: str) -> None:
        """Start closing the current connection (``code`` already validated).

        While connecting, the attempt is abandoned at once: Error, then Closed.
        """
        session = self._session
        if session is None or session.state is State.CLOSED:
            return
        session.send_close(code, reason)
        self._flush(session)

    def pause_reading(self) -> None:
        """Stop reading from the network until :meth:`resume_reading`.

        Takes effect at once, even in the middle of what the transport
        delivered: the rest is held, unparsed, until reading resumes.
        """
        self._reading_paused = True
        transport = self._transport
        if transport is not None and self._phase == Phase.WS and transport.is_reading():
            transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the network again (held bytes first, from a loop callback)."""
        if not self._reading_paused:
            return
        self._reading_paused = False
        loop = self._loop
        if self._phase != Phase.WS or loop is None:
            return
        if self._held or self._held_end:
            if not self._feeding_scheduled:
                self._feeding_scheduled = True
                loop.call_soon(self._feed_held, self._session)
        else:
            self._resume_transport()

    def _resume_transport(self) -> None:
        transport = self._transport
        if (
            transport is not None
            and not transport.is_closing()
            and not transport.is_reading()
            and not self._reading_paused
        ):
            transport.resume_reading()

    # The steps before the WebSocket handshake.

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def _open(self, session: Session, url: URL) -> None:
        """Reach the server (drivers/_asyncio_steps.py), then start the WebSocket handshake."""
        loop = asyncio.get_running_loop()
        config = self.config
        try:
            attempt = Attempt(url, config.proxy, config.user_agent)
            infos = await look_up(loop, attempt, *attempt.first_lookup())
            if not attempt.resolved(infos):  # the server's name, for the proxy: now the proxy's
                infos = await look_up(loop, attempt, *attempt.dial_target())
            self._phase = Phase.TCP
            sock = await connect_socket(loop, attempt, infos)
        except WebSocketError as exc:
            self._fail(session, exc)
            return
        early = b""
        if attempt.after_tcp() is Phase.PROXY:
            self._phase = Phase.PROXY
            try:
                early = await tunnel(loop, sock, attempt)
                attempt.after_transport(early)  # no bytes may come before TLS
            except ProxyError as exc:
                sock.close()
                self._fail(session, exc)
                return
            except BaseException:
                sock.close()
                raise
        protocol = _Protocol(self, session)
        try:
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        except BaseException as exc:
            sock.close()  # closed or detached already, unless the loop failed early
            if isinstance(exc, Exception):
                self._fail(session, connect_error(url, exc))
                return
            raise
        self._protocol = protocol
        self._transport = transport
        if attempt.after_transport() is Phase.TLS:
            self._phase = Phase.TLS
            context = self._tls_context
            assert context is not None
            try:
                transport = await start_tls(
                    loop, context, url, transport, protocol, config.connect_timeout
                )
            except WebSocketError as exc:  # the plain transport is aborted
                self._fail(session, exc)
                return
            self._transport = transport
        self._phase = Phase.WS
        transport.set_write_buffer_limits(high=WRITE_LIMIT, low=WRITE_LIMIT)
        if self._reading_paused:
            transport.pause_reading()
        self._flush(session)
        if early and session is self._session and session.state is not State.CLOSED:
            # Bytes that came with the proxy's answer already belong to the server.
            self._data_received(session, early)

    # Transport callbacks (through _Protocol).

    def _data_received(self, session: Session, data: bytes) -> None:
        if session is not self._session or self._phase != Phase.WS:
            return
        if type(data) is not bytes:  # a loop that reuses its read buffer: views need a copy
            data = bytes(data)
        if self._held or self._reading_paused:
            self._held.append(memoryview(data))  # after what waits already, in order
            transport = self._transport
            if transport is not None and transport.is_reading():
                transport.pause_reading()  # _feed_held() resumes it
            return
        rest = self._feed(session, memoryview(data))
        if rest is not None:
            self._held.append(rest)

    def _feed(self, session: Session, data: memoryview) -> memoryview | None:
        """Feed ``data`` slice by slice while reading is not paused; return the rest."""
        pos = 0
        size = len(data)
        while pos < size:
            if self._reading_paused:
                return data[pos:]
            # A server pinging without reading cannot grow the send buffer.
            session.coalesce_pongs = self.buffered_amount > _PONG_BACKLOG
            # A view, not a copy: the transport hands over bytes, which never change.
            session.receive_data(data[pos : pos + _FEED_SLICE])
            pos += _FEED_SLICE
            self._flush(session)
            if session.state is State.CLOSED or session is not self._session:
                return None
        return None

    def _feed_held(self, session: Session | None) -> None:
        """Feed what was held while reading was paused, then read again."""
        self._feeding_scheduled = False
        if session is not self._session or session is None or self._phase != Phase.WS:
            return
        held = self._held
        while held and not self._reading_paused:
            rest = self._feed(session, held.pop(0))
            if session is not self._session or self._phase != Phase.WS:
                return
            if rest is not None:
                held.insert(0, rest)
        if held or self._reading_paused:
            return
        if self._held_end:
            self._held_end = False
            session.receive_eof()
            self._flush(session)
        else:
            self._resume_transport()

    def _eof_received(self, session: Session) -> None:
        if session is not self._session or self._phase != Phase.WS:
            return
        if self._held:
            self._held_end = True  # after the held bytes
            return
        session.receive_eof()
        self._flush(session)

    def _connection_lost(self, session: Session, exc: Exception | None) -> None:
        if session is not self._session:
            return
        if self._phase == Phase.WS and session.state is not State.CLOSED:
            if exc is None and self._held:
                self._held_end = True  # after the held bytes
            elif exc is None:
                session.receive_eof()
                self._flush(session)
            else:
                self._held.clear()
                end_on_transport_error(session, exc)
                self._flush(session)
        # Before the "ws" phase the connecting task sees the failure and reports it.
        self._notify()

    def _writable(self, session: Session) -> None:
        if session is self._session:
            self._schedule_sending(session)
            self._notify()

    # Timers.

    def _due(self, session: Session, when: float) -> None:
        self._timer = None
        loop = self._loop
        if session is not self._session or loop is None:
            return
        # The loop may run a timer up to its clock resolution early.
        due = self._timers.tick(session, self._phase, max(loop.time(), when))
        if due is Due.PING:
            self._flush(session)
        elif due is Due.CLOSED:
            self._flush(session)  # closes the transport
            return
        elif due is Due.FAILED:
            self._teardown(abort=True)
            self._collect(session)
            return
        self._arm_timer(session)

    def _arm_timer(self, session: Session) -> None:
        """Point the loop timer at the next deadline, if it moved."""
        deadline = self._timers.deadline
        timer = self._timer
        if timer is not None:
            if timer.when() == deadline:
                return
            timer.cancel()
            self._timer = None
        loop = self._loop
        if deadline is not None and loop is not None:
            self._timer = loop.call_at(deadline, self._due, session, deadline)

    # Plumbing.

    def _flush(self, session: Session) -> None:
        """Write what the session wants sent, arm the close timer, deliver events."""
        transport = self._transport
        if self._phase == Phase.WS and transport is not None:
            for chunk in session.data_to_send():
                if transport.is_closing():
                    continue
                if chunk:
                    transport.write(chunk)
                elif transport.can_write_eof():
                    transport.write_eof()
            self._schedule_sending(session)
            loop = self._loop
            if loop is not None and session is self._session:
                self._timers.advance(session, loop.time())
                self._arm_timer(session)
        if session.state is State.CLOSED:
            self._teardown(abort=False)
        self._collect(session)

    def _schedule_sending(self, session: Session) -> None:
        """Frame the rest of a large message in later callbacks while the transport takes it."""
        protocol = self._protocol
        if (
            session.sending
            and not self._sending_scheduled
            and self._loop is not None
            and protocol is not None
            and not protocol.writing_paused
        ):
            self._sending_scheduled = True
            self._loop.call_soon(self._send_more, session)

    def _send_more(self, session: Session) -> None:
        """One bounded step of a large message: slices for up to ``_SEND_STEP`` seconds."""
        self._sending_scheduled = False
        protocol = self._protocol
        if session is not self._session or protocol is None or self._phase != Phase.WS:
            return
        started = time.perf_counter()
        while (
            session.sending
            and not protocol.writing_paused
            and time.perf_counter() - started < _SEND_STEP
        ):
            self._flush(session)  # one slice, and reschedules itself while there is more

    def _fail(self, session: Session, exc: WebSocketError | None) -> None:
        """End the session because of ``exc`` (``None``: "connection aborted")."""
        session.abort(exc)
        if session is self._session:
            self._teardown(abort=True)
        self._collect(session)

    def _teardown(self, *, abort: bool) -> None:
        self._phase = Phase.IDLE
        self._held.clear()
        self._held_end = False
        self._timers.stop()
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None
        task = self._task
        self._task = None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        transport = self._transport
        self._transport = None
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self._notify()

    def _collect(self, session: Session) -> None:
        current = session is self._session
        loop = self._loop
        pongs = session.pongs_received
        if pongs:
            if current and loop is not None:
                self._timers.pongs(pongs, loop.time())
                self._arm_timer(session)
            pongs.clear()
        events = session.events_received()
        if not events:
            return
        # The timers followed the session in _flush, which every event comes through.
        self._deliver(events)

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            wake()
