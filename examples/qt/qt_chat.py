"""A chat window in Qt (PySide6): Qt's event loop watches the WebSocket's socket.

Run it against the relay (``wsloop serve``) or any echo server::

    pip install PySide6-Essentials
    python examples/qt/qt_chat.py ws://127.0.0.1:8765/room/lobby

With the default poll driver, wsloop does its I/O inside ``ws.poll()`` and
fires the triggers there, on the calling thread: here the GUI thread, so the
handlers may touch the widgets. :class:`QtSocketWatcher` calls ``poll()``
when a ``QSocketNotifier`` on ``ws.fileno()`` says the socket is ready (for
writing too while ``ws.wants_write``), or when the single-shot timer it sets
at ``ws.timeout()`` expires, instead of on a fixed-rate timer: it polls only
when there is something to do, and an idle window uses no CPU.

``--self-test`` uses the window as a person would (type, press Send, wait for
the echo, press Disconnect), prints a JSON report and exits 0 on success. It
needs a server that echoes messages back; ``QT_QPA_PLATFORM=offscreen`` runs
it without a display.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSocketNotifier, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

import wsloop

if TYPE_CHECKING:
    from PySide6.QtGui import QCloseEvent

DEFAULT_URL = "ws://127.0.0.1:8765/room/lobby"


def shorten(text: str, limit: int = 200) -> str:
    """The line the log shows for a message: long ones are cut."""
    if len(text) > limit:
        return f"{text[:60]}… [{len(text)} characters]"
    return text


class QtSocketWatcher(QObject):
    """Runs ``ws.poll()`` from the Qt loop when, and only when, it has work.

    After every ``poll()`` (and after ``connect()``, ``send_*()`` and
    ``close()``), :meth:`sync` asks the WebSocket what to wait for and re-arms
    three things, so that nothing ever runs on a fixed-rate timer:

    * ``ws.fileno()``: a read ``QSocketNotifier`` on that socket calls
      :meth:`pump` when it is readable: a message, a pong, a close frame, or
      the end of the connection. The socket changes with every ``connect()``;
      -1 means there is none (closed, or a name lookup in progress).
    * ``ws.wants_write``: a write notifier is enabled while it is true (a TCP
      connect in progress, or sends the socket could not take at once waiting
      in ``ws.buffered_amount``). Only then: an idle socket is always
      writable, watching it all the time would spin.
    * ``ws.timeout()``: the seconds until ``poll()`` must run even if the
      socket stays quiet (the next keepalive ping, a pong's deadline, the
      connect and close timeouts, the delay before reconnecting, a name
      lookup; 0 for triggers already waiting). One single-shot ``QTimer`` is
      started for then; ``None`` stops it.

    An idle window therefore wakes up only when a keepalive ping is due, and a
    closed one never.
    """

    def __init__(self, ws: wsloop.WebSocket, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.polls = 0
        """How many times ``poll()`` ran (the self-test checks the counts)."""
        self._fd = -1
        self._read: QSocketNotifier | None = None
        self._write: QSocketNotifier | None = None
        self._polling = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        # A coarse timer may fire up to 5 % early, only to poll for nothing.
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.pump)

    def pump(self, *_args: object) -> None:
        """Do the pending I/O and fire the triggers (notifiers and timer call it)."""
        if self._polling:
            # A handler runs a nested event loop (QDialog.exec()...). Stop
            # watching until it returns, or Qt would call back again and again
            # for the same readable socket; poll() cannot be re-entered anyway.
            self._unwatch()
            return
        self._polling = True
        try:
            # One poll() per wake-up: what it leaves (more to read, triggers
            # still queued) shows up as a readable socket or a timeout() of 0,
            # so a flood cannot freeze the window.
            self.polls += 1
            self.ws.poll()
        finally:
            self._polling = False
            self.sync()

    def sync(self, *, new_socket: bool = False) -> None:
        """Make what Qt watches match what the WebSocket waits for.

        Args:
            new_socket: replace the notifiers even if the descriptor number is
                the same (a new socket may reuse the old number); pass it
                after ``connect()``.
        """
        if self._polling:
            return  # called from a handler: pump() syncs once poll() returns
        ws = self.ws
        fd = ws.fileno()
        # While connecting, the socket may be replaced inside poll() (the next
        # address, a reconnection) by one with the same number: replace too.
        if new_socket or ws.is_connecting or fd != self._fd:
            # Drop the old notifiers before Qt's loop runs again: their socket
            # may be closed already, and Qt must not wait on a closed one.
            self._unwatch()
            if fd >= 0:
                self._read = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
                self._read.activated.connect(self.pump)
                self._write = QSocketNotifier(fd, QSocketNotifier.Type.Write, self)
                self._write.activated.connect(self.pump)
                self._fd = fd
        if self._write is not None:
            self._write.setEnabled(ws.wants_write)

        timeout = ws.timeout()
        if timeout is None:
            self._timer.stop()
        else:
            # Rounded up: a timer that fired early would only poll for nothing.
            self._timer.start(math.ceil(timeout * 1000))

    def _unwatch(self) -> None:
        for notifier in (self._read, self._write):
            if notifier is not None:
                notifier.setEnabled(False)
                # Not deleted at once: we may be inside its activated signal.
                notifier.deleteLater()
        self._read = self._write = None
        self._fd = -1


class ChatWindow(QWidget):
    """A log of the conversation, a line to type in, Send and Connect buttons."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__()
        self.url = url
        self._quitting = False

        self.ws = wsloop.WebSocket(**options)
        self.watcher = QtSocketWatcher(self.ws, self)
        self.ws.on_opened = self.on_opened
        self.ws.on_text_message = self.on_text_message
        self.ws.on_binary_message = self.on_binary_message
        self.ws.on_error = self.on_error
        self.ws.on_closed = self.on_closed

        self.setWindowTitle(f"wsloop chat - {url}")
        self.resize(640, 480)
        self.status = QLabel("closed")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.toggle)
        self.log_view = QListWidget()
        self.entry = QLineEdit()
        self.entry.returnPressed.connect(self.send_typed)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send_typed)

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.connect_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.entry, 1)
        bottom.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.log_view, 1)
        layout.addLayout(bottom)
        self.entry.setFocus()

    # What the user does.

    def connect_ws(self) -> None:
        self.ws.connect(self.url)
        self.watcher.sync(new_socket=True)
        self.status.setText(f"connecting to {self.url}…")
        self.connect_button.setText("Disconnect")

    def toggle(self) -> None:
        if self.ws.is_closed:
            self.connect_ws()
        else:
            self.ws.close()
            self.watcher.sync()
            self.status.setText("closing…")

    def send_typed(self) -> None:
        text = self.entry.text()
        self.entry.clear()
        if text:
            self.send(text)

    def send(self, text: str) -> None:
        if self.ws.send_text(text):
            self.log(f"> {shorten(text)}")
        elif self.ws.is_open:
            self.log("! not sent: too much is waiting to be written already")
        else:
            self.log("! not sent: not connected")
        self.watcher.sync()  # part of it may wait in ws.buffered_amount

    def closeEvent(self, event: QCloseEvent) -> None:
        """Window closed: say goodbye to the server first."""
        if self.ws.is_closed or self._quitting:
            event.accept()
            return
        event.ignore()
        self._quitting = True
        self.ws.close(1000, "window closed")
        self.watcher.sync()
        QTimer.singleShot(3000, QApplication.quit)  # in case the server never answers

    # The triggers: they fire inside poll(), on the GUI thread.

    def on_opened(self, event: wsloop.Opened) -> None:
        self.status.setText(f"open: {self.url}")
        self.log(f"* connected to {self.url}")

    def on_text_message(self, event: wsloop.TextMessage) -> None:
        self.log(f"< {shorten(event.text)}")

    def on_binary_message(self, event: wsloop.BinaryMessage) -> None:
        self.log(f"< [{len(event.data)} bytes of binary data]")

    def on_error(self, event: wsloop.Error) -> None:
        self.log(f"! {event.message}")

    def on_closed(self, event: wsloop.Closed) -> None:
        reason = f" {event.reason}" if event.reason else ""
        self.log(f"* closed: {event.code}{reason}")
        self.status.setText(f"closed ({event.code})")
        self.connect_button.setText("Connect")
        if self._quitting:
            QTimer.singleShot(0, self.close)  # after poll() has returned

    # The log.

    def log(self, line: str) -> None:
        self.log_view.addItem(line)
        self.log_view.scrollToBottom()

    def log_lines(self) -> list[str]:
        """What the log widget shows, one item per line."""
        return [self.log_view.item(i).text() for i in range(self.log_view.count())]


class SelfTest:
    """``--self-test``: drive the window like a user, then print a report.

    The window's WebSocket pings every :attr:`PING_INTERVAL` seconds, to check
    that the watcher keeps the keepalive going on a quiet connection. Run it
    against a server that never answers the handshake, with a short
    ``--connect-timeout``, to check that the timeout fires without polling.

    The steps are a generator: it yields a condition to wait for (checked
    every 50 ms) or a number of milliseconds to let the loop run untouched.
    """

    PING_INTERVAL = 1.0

    def __init__(self, window: ChatWindow, timeout: float = 30.0) -> None:
        self.window = window
        self.report: dict[str, object] = {"ok": False}
        self.deadline = time.monotonic() + timeout
        self.steps = self.script()
        self.waiting_for = None
        self.ok = False
        QTimer.singleShot(0, self.advance)

    def script(self):  # a generator of steps
        w = self.window

        def received() -> list[str]:
            """The log lines of received messages, without their "< "."""
            return [line[2:] for line in w.log_lines() if line.startswith("< ")]

        # Connecting: the socket is watched (for writability while TCP connects),
        # and the connect timeout is a single-shot timer; no polling meanwhile.
        polls, start = w.watcher.polls, time.monotonic()
        w.connect_button.click()
        yield lambda: w.ws.is_open or w.ws.is_closed
        self.report["connect_polls"] = w.watcher.polls - polls
        self.report["connect_seconds"] = round(time.monotonic() - start, 3)
        if not w.ws.is_open:
            raise ConnectionError(w.ws.error_msg)

        # Typed lines, sent with the Send button; their echoes must show up.
        typed = ["hello from Qt", "ünïcödé ✓ 🐍"]
        for text in typed:
            w.entry.setText(text)
            w.send_button.click()
        yield lambda: all(text in received() for text in typed)

        # Messages too large for the socket to take at once: the rest waits in
        # buffered_amount, and only the watcher can get it written. How much
        # the network absorbs at once varies, so send until some has to wait.
        sizes = []
        for i in range(20):
            text = secrets.token_urlsafe(9_000_000 + i)  # 12 MB, compresses poorly
            sizes.append(len(text))
            w.send(text)
            if w.ws.buffered_amount:
                self.report["buffered"] = w.ws.buffered_amount
                break
        yield lambda: all(
            any(line.endswith(f"[{n} characters]") for line in received()) for n in sizes
        )

        # Idle: nothing to read or write, so no poll() but the keepalive's:
        # the timer at ws.timeout() sends a ping when one is due (every
        # PING_INTERVAL s here), and the pong wakes the read watch, so the
        # round-trip time gets measured again. Two poll() calls per ping.
        cpu, polls = time.process_time(), w.watcher.polls
        self.report["latency_before"] = w.ws.latency
        yield 2000
        self.report["idle_cpu"] = time.process_time() - cpu
        self.report["idle_polls"] = w.watcher.polls - polls
        self.report["latency_after"] = w.ws.latency

        w.connect_button.click()  # "Disconnect"
        yield lambda: w.ws.is_closed
        self.report["close_code"] = w.ws.close_code

    def advance(self) -> None:
        try:
            if self.waiting_for is not None and not self.waiting_for():
                if time.monotonic() > self.deadline:
                    self.finish("timed out")
                else:
                    QTimer.singleShot(50, self.advance)
                return
            step = next(self.steps)
        except StopIteration:
            self.finish(None)
            return
        except Exception as exc:
            self.finish(repr(exc))
            return
        if isinstance(step, int):
            self.waiting_for = None
            QTimer.singleShot(step, self.advance)
        else:
            self.waiting_for = step
            QTimer.singleShot(0, self.advance)

    def finish(self, error: str | None) -> None:
        self.ok = error is None
        self.report.update(ok=self.ok, error=error, log=self.window.log_lines())
        print("SELF-TEST " + json.dumps(self.report), flush=True)
        QApplication.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="SECONDS", help="default: 10"
    )
    parser.add_argument("--self-test", action="store_true", help="run the scripted check")
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication([sys.argv[0]])
    options: dict[str, Any] = {"connect_timeout": args.connect_timeout}
    if args.self_test:
        options["ping_interval"] = SelfTest.PING_INTERVAL
        window = ChatWindow(args.url, **options)
        window.show()
        test = SelfTest(window)
        app.exec()
        return 0 if test.ok else 1
    window = ChatWindow(args.url, **options)
    window.show()
    window.connect_ws()
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
