"""A chat window in tkinter: the Tk event loop watches the WebSocket's socket.

Run it against the relay (``wsloop serve``) or any echo server::

    python examples/tkinter/tk_chat.py ws://127.0.0.1:8765/room/lobby

With the default poll driver, wsloop does its I/O inside ``ws.poll()`` and
fires the triggers there, on the calling thread: here the Tk thread, so the
handlers may touch the widgets. Rather than calling ``poll()`` on a timer,
:class:`TkSocketWatcher` asks Tk to watch ``ws.fileno()`` (for writability
too while ``ws.wants_write``) and sets one single-shot timer at
``ws.timeout()``: it polls only when there is something to do, and an idle
window uses no CPU.

``--self-test`` uses the window as a person would (type, press Send, wait for
the echo, press Disconnect), prints a JSON report and exits 0 on success. It
needs a server that echoes messages back.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
import tkinter
from tkinter import ttk
from typing import Any

import wsloop

DEFAULT_URL = "ws://127.0.0.1:8765/room/lobby"


def shorten(text: str, limit: int = 200) -> str:
    """The line the log shows for a message: long ones are cut."""
    if len(text) > limit:
        return f"{text[:60]}… [{len(text)} characters]"
    return text


class TkSocketWatcher:
    """Runs ``ws.poll()`` from the Tk loop when, and only when, it has work.

    After every ``poll()`` (and after ``connect()``, ``send_*()`` and
    ``close()``), :meth:`sync` asks the WebSocket what to wait for and re-arms
    three things, so that nothing ever runs on a fixed-rate timer:

    * ``ws.fileno()``: Tk watches that socket (``createfilehandler``) and calls
      :meth:`pump` when it is readable: a message, a pong, a close frame, or
      the end of the connection. The socket changes with every ``connect()``;
      -1 means there is none (closed, or a name lookup in progress).
    * ``ws.wants_write``: while it is true (a TCP connect in progress, or sends
      the socket could not take at once waiting in ``ws.buffered_amount``),
      Tk watches for writability too. Only then: an idle socket is always
      writable, watching it all the time would spin.
    * ``ws.timeout()``: the seconds until ``poll()`` must run even if the
      socket stays quiet (the next keepalive ping, a pong's deadline, the
      connect and close timeouts, the delay before reconnecting, a name
      lookup; 0 for triggers already waiting). One single-shot ``after()``
      timer is set for then; ``None`` means no timer at all.

    An idle window therefore wakes up only when a keepalive ping is due, and a
    closed one never. Tk on Windows cannot watch sockets: there, while a
    connection is active, the timer is capped at :attr:`FALLBACK_MS`.
    """

    FALLBACK_MS = 25

    def __init__(self, root: tkinter.Tk, ws: wsloop.WebSocket) -> None:
        self.root = root
        self.ws = ws
        self.polls = 0
        """How many times ``poll()`` ran (the self-test checks the counts)."""
        self._fd = -1
        self._mask = 0
        self._timer: str | None = None
        self._polling = False
        self._can_watch = hasattr(root.tk, "createfilehandler")

    def pump(self, *_args: object) -> None:
        """Do the pending I/O and fire the triggers (Tk calls it)."""
        if self._polling:
            # A handler runs a nested Tk loop (a dialog, update()...). Stop
            # watching until it returns, or Tk would call back again and again
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
        """Make what Tk watches match what the WebSocket waits for.

        Args:
            new_socket: re-register even if the descriptor number is the
                same (a new socket may reuse the old number); pass it after
                ``connect()``.
        """
        if self._polling:
            return  # called from a handler: pump() syncs once poll() returns
        ws = self.ws
        fd = ws.fileno()
        mask = 0
        if fd >= 0 and self._can_watch:
            mask = tkinter.READABLE
            if ws.wants_write:
                mask |= tkinter.WRITABLE
        # While connecting, the socket may be replaced inside poll() (the next
        # address, a reconnection) by one with the same number: re-register.
        if new_socket or ws.is_connecting or (fd, mask) != (self._fd, self._mask):
            # Unregister before Tk's loop runs again: the socket may be
            # closed already, and Tk must not wait on a closed descriptor.
            self._unwatch()
            if mask:
                self.root.tk.createfilehandler(fd, mask, self.pump)
                self._fd, self._mask = fd, mask

        timeout = ws.timeout()
        if not self._can_watch and not ws.is_closed:
            fallback = self.FALLBACK_MS / 1000
            timeout = fallback if timeout is None else min(timeout, fallback)
        if self._timer is not None:
            self.root.after_cancel(self._timer)
            self._timer = None
        if timeout is not None:
            # Rounded up: a timer that fired early would only poll for nothing.
            self._timer = self.root.after(math.ceil(timeout * 1000), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def _unwatch(self) -> None:
        if self._fd >= 0:
            self.root.tk.deletefilehandler(self._fd)
        self._fd, self._mask = -1, 0


class ChatWindow:
    """A log of the conversation, a line to type in, Send and Connect buttons."""

    def __init__(self, root: tkinter.Tk, url: str, **options: Any) -> None:
        self.root = root
        self.url = url
        self._quitting = False

        self.ws = wsloop.WebSocket(**options)
        self.watcher = TkSocketWatcher(root, self.ws)
        self.ws.on_opened = self.on_opened
        self.ws.on_text_message = self.on_text_message
        self.ws.on_binary_message = self.on_binary_message
        self.ws.on_error = self.on_error
        self.ws.on_closed = self.on_closed

        root.title(f"wsloop chat - {url}")
        root.protocol("WM_DELETE_WINDOW", self.quit)
        top = ttk.Frame(root, padding=4)
        top.pack(fill="x")
        self.status = ttk.Label(top, text="closed")
        self.status.pack(side="left", fill="x", expand=True)
        self.connect_button = ttk.Button(top, text="Connect", command=self.toggle)
        self.connect_button.pack(side="right")

        middle = ttk.Frame(root, padding=(4, 0))
        middle.pack(fill="both", expand=True)
        self.text = tkinter.Text(middle, height=20, width=70, state="disabled", wrap="word")
        scroll = ttk.Scrollbar(middle, command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)

        bottom = ttk.Frame(root, padding=4)
        bottom.pack(fill="x")
        self.entry = ttk.Entry(bottom)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry.bind("<Return>", lambda _event: self.send_typed())
        self.send_button = ttk.Button(bottom, text="Send", command=self.send_typed)
        self.send_button.pack(side="right")
        self.entry.focus_set()

    # What the user does.

    def connect(self) -> None:
        self.ws.connect(self.url)
        self.watcher.sync(new_socket=True)
        self.status.configure(text=f"connecting to {self.url}…")
        self.connect_button.configure(text="Disconnect")

    def toggle(self) -> None:
        if self.ws.is_closed:
            self.connect()
        else:
            self.ws.close()
            self.watcher.sync()
            self.status.configure(text="closing…")

    def send_typed(self) -> None:
        text = self.entry.get()
        self.entry.delete(0, "end")
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

    def quit(self) -> None:
        """Window closed: say goodbye to the server, then leave."""
        if self.ws.is_closed:
            self.root.destroy()
            return
        self._quitting = True
        self.ws.close(1000, "window closed")
        self.watcher.sync()
        self.root.after(3000, self.root.destroy)  # in case the server never answers

    # The triggers: they fire inside poll(), on the Tk thread.

    def on_opened(self, event: wsloop.Opened) -> None:
        self.status.configure(text=f"open: {self.url}")
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
        self.status.configure(text=f"closed ({event.code})")
        self.connect_button.configure(text="Connect")
        if self._quitting:
            # After the current poll() has returned, not inside it.
            self.root.after_idle(self.root.destroy)

    # The log.

    def log(self, line: str) -> None:
        self.text.configure(state="normal")
        self.text.insert("end", line + "\n")
        self.text.configure(state="disabled")
        self.text.see("end")

    def log_lines(self) -> list[str]:
        """What the log widget shows, one item per line."""
        return self.text.get("1.0", "end-1c").splitlines()


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
        window.root.after(0, self.advance)

    def script(self):  # a generator of steps
        w = self.window

        def received() -> list[str]:
            """The log lines of received messages, without their "< "."""
            return [line[2:] for line in w.log_lines() if line.startswith("< ")]

        # Connecting: the socket is watched (for writability while TCP connects),
        # and the connect timeout is a single-shot timer; no polling meanwhile.
        polls, start = w.watcher.polls, time.monotonic()
        w.connect_button.invoke()
        yield lambda: w.ws.is_open or w.ws.is_closed
        self.report["connect_polls"] = w.watcher.polls - polls
        self.report["connect_seconds"] = round(time.monotonic() - start, 3)
        if not w.ws.is_open:
            raise ConnectionError(w.ws.error_msg)

        # Typed lines, sent with the Send button; their echoes must show up.
        typed = ["hello from Tk", "ünïcödé ✓ 🐍"]
        for text in typed:
            w.entry.insert(0, text)
            w.send_button.invoke()
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

        w.connect_button.invoke()  # "Disconnect"
        yield lambda: w.ws.is_closed
        self.report["close_code"] = w.ws.close_code

    def advance(self) -> None:
        try:
            if self.waiting_for is not None and not self.waiting_for():
                if time.monotonic() > self.deadline:
                    self.finish("timed out")
                else:
                    self.window.root.after(50, self.advance)
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
            self.window.root.after(step, self.advance)
        else:
            self.waiting_for = step
            self.window.root.after(0, self.advance)

    def finish(self, error: str | None) -> None:
        self.ok = error is None
        self.report.update(ok=self.ok, error=error, log=self.window.log_lines())
        print("SELF-TEST " + json.dumps(self.report), flush=True)
        self.window.root.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="SECONDS", help="default: 10"
    )
    parser.add_argument("--self-test", action="store_true", help="run the scripted check")
    args = parser.parse_args(argv)

    root = tkinter.Tk()
    options: dict[str, Any] = {"connect_timeout": args.connect_timeout}
    if args.self_test:
        options["ping_interval"] = SelfTest.PING_INTERVAL
        test = SelfTest(ChatWindow(root, args.url, **options))
        root.mainloop()
        return 0 if test.ok else 1
    window = ChatWindow(root, args.url, **options)
    window.connect()
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
