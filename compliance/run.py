"""Run the Autobahn TestSuite client cases against a wsloop driver.

kosoku's fuzzing server runs on an asyncio loop in a background thread; the
wsloop client runs on the main thread, driven the way a user drives the
chosen driver (for ``poll``: a loop calling ``ws.poll(...)``). The client
asks ``/getCaseCount``, echoes every message of each ``/runCase`` back with
its type, then calls ``/updateReports``; the server then hands over the
per-case verdicts, which are summarized on stdout and written as JSON.

Usage::

    python compliance/run.py --driver poll [--cases GLOB ...] [--exclude GLOB ...]
                             [--report DIR] [--case-timeout S] [--timeout S]

Exit status: 0 when every case is OK, NON-STRICT or INFORMATIONAL and every
close behaviour is OK or INFORMATIONAL; 1 when some are not; 2 when a case or
the whole run timed out, or the run could not finish.

Adding a driver is one function: write ``def run_<name>(url, *, echo,
timeout) -> Outcome`` that opens one connection the way a user of that
driver would, and decorate it with ``@driver("<name>")``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import json
import re
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import kosoku
import kosoku.cases

import wsloop

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

AGENT = "wsloop"

# The client options under test: the defaults a user gets (compression on,
# the browser-like permessage-deflate offer), except that the 9.* cases need
# messages of 16 MiB and more, so the size limit is off, and keepalive is off:
# a ping from the client ends a case early (kosoku records it, and a 12.* case
# that outlasts the 20 s ping interval is closed half done and FAILED).
CLIENT_OPTIONS: dict[str, Any] = {
    "compression": "deflate",
    "max_message_size": None,
    "ping_interval": None,
    "connect_timeout": 10.0,
    "close_timeout": 5.0,
}

GOOD_BEHAVIOR = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
GOOD_CLOSE = frozenset({"OK", "INFORMATIONAL"})


# Drivers ------------------------------------------------------------------


@dataclass
class Outcome:
    """What the client saw of one connection."""

    texts: list[str] = field(default_factory=list)
    """Text messages received, when not echoing (``/getCaseCount``)."""
    messages: int = 0
    """Messages received."""
    refused: int = 0
    """Echoes that ``send_*`` refused (returned ``False``)."""
    opened: bool = False
    error: str = ""
    """The message of ``on_error``, if it fired."""
    code: int | None = None
    """The close code of ``on_closed``; ``None`` if it never fired."""
    reason: str = ""
    was_clean: bool = False
    timed_out: bool = False
    """The connection outlived the timeout and was abandoned."""


class Connection(Protocol):
    def __call__(self, url: str, *, echo: bool, timeout: float) -> Outcome: ...


DRIVERS: dict[str, Connection] = {}


def driver(name: str) -> Callable[[Connection], Connection]:
    """Register a function that runs one connection with the named driver."""

    def register(fn: Connection) -> Connection:
        DRIVERS[name] = fn
        return fn

    return register


def attach(
    ws: Any, outcome: Outcome, *, echo: bool, on_done: Callable[[], object] | None = None
) -> None:
    """Set the five triggers of a WebSocket-like object to fill ``outcome``.

    With ``echo``, every message goes straight back with its type, from
    inside the trigger, as an application would answer. ``on_done`` is
    called at the end of ``on_closed``.
    """

    def on_opened(event: wsloop.Opened) -> None:
        outcome.opened = True

    def on_text_message(event: wsloop.TextMessage) -> None:
        outcome.messages += 1
        if not echo:
            outcome.texts.append(event.text)
        elif not ws.send_text(event.text):
            outcome.refused += 1

    def on_binary_message(event: wsloop.BinaryMessage) -> None:
        outcome.messages += 1
        if echo and not ws.send_binary(event.data):
            outcome.refused += 1

    def on_error(event: wsloop.Error) -> None:
        outcome.error = event.message

    def on_closed(event: wsloop.Closed) -> None:
        outcome.code = event.code
        outcome.reason = event.reason
        outcome.was_clean = event.was_clean
        if on_done is not None:
            on_done()

    for fn in (on_opened, on_text_message, on_binary_message, on_error, on_closed):
        ws.event(fn)


@driver("poll")
def run_poll(url: str, *, echo: bool, timeout: float) -> Outcome:
    """One connection with the poll driver: a loop calling ``ws.poll()``."""
    outcome = Outcome()
    ws = wsloop.WebSocket(driver="poll", **CLIENT_OPTIONS)
    attach(ws, outcome, echo=echo)
    ws.connect(url)
    end = time.monotonic() + timeout
    while outcome.code is None:
        left = end - time.monotonic()
        if left <= 0:
            outcome.timed_out = True
            if not ws.is_closed:
                ws.close()
                ws.wait_closed(CLIENT_OPTIONS["close_timeout"] + 1.0)
            break
        ws.poll(left)
    return outcome


@driver("thread")
def run_thread(url: str, *, echo: bool, timeout: float) -> Outcome:
    """One connection with the thread driver; the triggers run on its I/O thread."""
    outcome = Outcome()
    done = threading.Event()
    ws = wsloop.WebSocket(driver="thread", **CLIENT_OPTIONS)
    attach(ws, outcome, echo=echo, on_done=done.set)
    ws.connect(url)
    if not done.wait(timeout):
        outcome.timed_out = True
        ws.close()
        done.wait(CLIENT_OPTIONS["close_timeout"] + 1.0)
    return outcome


@driver("asyncio")
def run_asyncio(url: str, *, echo: bool, timeout: float) -> Outcome:
    """One connection with AsyncWebSocket on a fresh event loop; triggers on the loop."""
    outcome = Outcome()

    async def one() -> None:
        ws = wsloop.AsyncWebSocket(**CLIENT_OPTIONS)
        attach(ws, outcome, echo=echo)
        try:
            async with asyncio.timeout(timeout):
                # A failure is in the outcome already: on_error and on_closed ran.
                with contextlib.suppress(wsloop.WebSocketError):
                    await ws.connect(url)
                await ws.wait_closed()
        except TimeoutError:
            outcome.timed_out = True
            await ws.aclose()

    asyncio.run(one())
    return outcome


# The server ---------------------------------------------------------------


def _autobahn_offer(offer: Any) -> Any:
    """Return ``offer`` read as Autobahn reads a client's offer.

    Autobahn's ``PerMessageDeflateOffer.parse`` sets ``acceptNoContextTakeover``
    whatever the offer says, since RFC 7692 section 7.1.1.2 lets a server send
    ``client_no_context_takeover`` in any case; kosoku 0.1.0 sets it only when
    the offer names the parameter.
    """
    if getattr(offer, "acceptNoContextTakeover", True):  # not deflate, or already so
        return offer
    return type(offer)(
        acceptNoContextTakeover=True,
        acceptMaxWindowBits=offer.acceptMaxWindowBits,
        requestNoContextTakeover=offer.requestNoContextTakeover,
        requestMaxWindowBits=offer.requestMaxWindowBits,
    )


def patch_compression_offers() -> int:
    """Make the compression cases parse offers as Autobahn does; return how many."""
    patched = 0
    for cls in kosoku.cases.CASES.values():
        accept = cls.__dict__.get("SERVER_ACCEPT")
        if accept is None or getattr(accept, "_wsloop_patched", False):
            continue

        def server_accept(self: Any, offers: Sequence[Any], _accept: Any = accept) -> Any:
            return _accept(self, [_autobahn_offer(offer) for offer in offers])

        server_accept._wsloop_patched = True  # type: ignore[attr-defined]
        server_accept.__doc__ = accept.__doc__
        setattr(cls, "SERVER_ACCEPT", server_accept)  # noqa: B010
        patched += 1
    return patched


class ServerThread:
    """kosoku's fuzzing server on its own asyncio loop, in a daemon thread."""

    def __init__(self, cases: Sequence[str] | None, exclude: Sequence[str] | None) -> None:
        self._cases = list(cases) if cases else None
        self._exclude = list(exclude) if exclude else None
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self.port: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.results: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="kosoku", daemon=True)

    def start(self, timeout: float) -> int:
        self._thread.start()
        return self.port.result(timeout)

    def stop(self) -> None:
        """Cancel the server if it still runs (a timeout), and let the thread end."""
        task = self._task
        if task is not None and not task.done():
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5.0)

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._run())
        except BaseException as exc:
            for fut in (self.port, self.results):
                if not fut.done():
                    fut.set_exception(exc)
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        async with kosoku.run_fuzzingserver(
            self._cases, self._exclude, host="127.0.0.1", port=0
        ) as server:
            self.port.set_result(server.port)
            try:
                results = await server.get_result()
            except kosoku.FailureError as exc:
                results = exc.results
            self.results.set_result(list(results))


# The run ------------------------------------------------------------------


def _glob(pattern: str) -> re.Pattern[str]:
    # kosoku's globs: "*" is the only wildcard, and it matches dots too.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def selected_ids(cases: Sequence[str] | None, exclude: Sequence[str] | None) -> list[str]:
    """The case ids the server will run, in order, selected as kosoku selects them.

    Raises:
        ValueError: an id without ``*`` names no case (kosoku refuses those).
    """
    ids = list(kosoku.cases.CASES)
    for pattern in [*(cases or ()), *(exclude or ())]:
        if "*" not in pattern and pattern not in kosoku.cases.CASES:
            raise ValueError(f"no such case: {pattern}")
    if cases:
        wanted = [_glob(g) for g in cases]
        ids = [i for i in ids if any(g.fullmatch(i) for g in wanted)]
    if exclude:
        unwanted = [_glob(g) for g in exclude]
        ids = [i for i in ids if not any(g.fullmatch(i) for g in unwanted)]
    return ids


@dataclass
class Run:
    count: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    timeouts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def drive(
    connect: Connection,
    base: str,
    ids: list[str],
    *,
    case_timeout: float,
    deadline: float,
    verbose: bool,
) -> Run:
    """Play the client side of the fuzzing protocol."""
    run = Run()
    got = connect(f"{base}/getCaseCount", echo=False, timeout=case_timeout)
    if got.timed_out or not got.texts or not got.texts[0].strip().isdigit():
        run.problems.append(f"/getCaseCount failed: {got}")
        return run
    run.count = int(got.texts[0])
    if len(ids) != run.count:
        run.problems.append(f"the server runs {run.count} cases, the selection has {len(ids)}")
        ids = [f"#{n}" for n in range(1, run.count + 1)]
    progress = _Progress(ids, quiet=verbose)
    for n, case_id in enumerate(ids, 1):
        left = deadline - time.monotonic()
        if left <= 0:
            run.timeouts.append(f"the whole run (stopped before case {case_id})")
            return run
        start = time.monotonic()
        progress.begin(case_id)
        outcome = connect(
            f"{base}/runCase?case={n}&agent={AGENT}",
            echo=True,
            timeout=min(case_timeout, left),
        )
        run.outcomes[n] = outcome
        if verbose:
            print(
                f"  {case_id:<10} {time.monotonic() - start:6.2f} s  close {outcome.code}"
                + (f"  error: {outcome.error}" if outcome.error else ""),
                flush=True,
            )
        if outcome.timed_out:
            print(f"  case {case_id}: client timeout after {case_timeout:g} s", flush=True)
            run.timeouts.append(f"case {case_id} (client side, {case_timeout:g} s)")
        progress.done()
    progress.finish()
    left = max(1.0, deadline - time.monotonic())
    connect(f"{base}/updateReports?agent={AGENT}", echo=False, timeout=min(case_timeout, left))
    return run


class _Progress:
    """One line per group of cases (``6.*``), and one every 15 s in long groups."""

    EVERY = 15.0

    def __init__(self, ids: list[str], *, quiet: bool) -> None:
        self.quiet = quiet
        self.sizes = collections.Counter(self._group(i) for i in ids)
        self.group = ""
        self.count = 0
        self.start = self.last = time.monotonic()

    @staticmethod
    def _group(case_id: str) -> str:
        return case_id.split(".")[0]

    def begin(self, case_id: str) -> None:
        group = self._group(case_id)
        if group != self.group:
            self.finish()
            self.group, self.count = group, 0
            self.start = self.last = time.monotonic()

    def done(self) -> None:
        self.count += 1
        now = time.monotonic()
        more = self.count < self.sizes[self.group]
        if not self.quiet and more and now - self.last >= self.EVERY:
            self.last = now
            self._print("...")

    def finish(self) -> None:
        if self.group and not self.quiet:
            self._print("")
        self.group = ""

    def _print(self, more: str) -> None:
        size = self.sizes[self.group]
        elapsed = time.monotonic() - self.start
        print(f"  {self.group}.*: {self.count}/{size} cases, {elapsed:.1f} s{more}", flush=True)


def _result_record(result: Any, outcome: Outcome | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": result.case_id,
        "index": result.case_index,
        "behavior": result.behavior.value,
        "behavior_close": result.behavior_close.value,
        "description": result.description,
        "expectation": result.expectation,
        "result": result.result,
        "result_close": result.result_close,
        "duration_ms": result.duration,
        "client_close_code": result.remote_close_code,
        "client_close_reason": result.remote_close_reason,
        "server_close_code": result.local_close_code,
        "server_close_reason": result.local_close_reason,
        "was_clean": result.was_clean,
        "closed_by_server": result.closed_by_me,
        "dropped_by_server": result.dropped_by_me,
        "failed_by_server": result.failed_by_me,
    }
    if outcome is not None:
        seen = asdict(outcome)
        del seen["texts"]
        record["client_saw"] = seen
    return record


def summarize(
    records: list[dict[str, Any]], run: Run, expected: int, elapsed: float
) -> tuple[bool, str]:
    """Return whether the run passed, and the text of the summary."""
    lines: list[str] = []
    behavior = collections.Counter(r["behavior"] for r in records)
    close = collections.Counter(r["behavior_close"] for r in records)
    lines.append(f"{len(records)} cases in {elapsed:.1f} s")
    lines.append("behavior:       " + _counts(behavior))
    lines.append("behavior_close: " + _counts(close))
    bad = [
        r
        for r in records
        if r["behavior"] not in GOOD_BEHAVIOR or r["behavior_close"] not in GOOD_CLOSE
    ]
    if bad:
        lines.append("")
        lines.append(f"{len(bad)} case(s) not passing:")
        for r in bad:
            lines.append(
                f"  {r['id']:<9} {r['behavior']:<13} close={r['behavior_close']:<16} "
                f"client sent {r['client_close_code']}, server sent {r['server_close_code']}"
            )
            if r["description"]:
                lines.append("            " + " ".join(r["description"].split())[:200])
            lines.append("            " + r["result"] + " / " + r["result_close"])
    problems = list(run.problems)
    if len(records) != expected:
        problems.append(f"expected {expected} results, got {len(records)}")
    for what in run.timeouts:
        problems.append(f"timeout: {what}")
    if problems:
        lines.append("")
        lines.extend("PROBLEM: " + p for p in problems)
    passed = not bad and not problems
    lines.append("")
    lines.append("PASS" if passed else "FAIL")
    return passed, "\n".join(lines)


def _counts(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the Autobahn client cases (kosoku) against a wsloop driver."
    )
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="poll")
    parser.add_argument("--cases", nargs="+", metavar="GLOB", help="case ids or globs to run")
    parser.add_argument("--exclude", nargs="+", metavar="GLOB", help="case ids or globs to skip")
    parser.add_argument(
        "--report", type=Path, default=Path("reports"), metavar="DIR", help="default: reports"
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds one case may take on the client side (default: 60)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        metavar="S",
        help="seconds the whole run may take (default: 1200)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)

    try:
        ids = selected_ids(args.cases, args.exclude)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not ids:
        print("no case matches the selection", file=sys.stderr)
        return 2
    patched = patch_compression_offers()
    print(
        f"wsloop {wsloop.__version__}, driver {args.driver}: {len(ids)} cases "
        f"(compression offers read as Autobahn does in {patched} cases)",
        flush=True,
    )
    start = time.monotonic()
    deadline = start + args.timeout
    server = ServerThread(args.cases, args.exclude)
    try:
        port = server.start(timeout=30.0)
        run = drive(
            DRIVERS[args.driver],
            f"ws://127.0.0.1:{port}",
            ids,
            case_timeout=args.case_timeout,
            deadline=deadline,
            verbose=args.verbose,
        )
        if run.count == 0:
            print("\n".join(run.problems), file=sys.stderr)
            return 2
        results = server.results.result(timeout=max(1.0, deadline - time.monotonic()))
    except concurrent.futures.TimeoutError:
        print(f"FAIL: the run did not finish within {args.timeout:g} s", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        server.stop()
    elapsed = time.monotonic() - start

    records = [_result_record(r, run.outcomes.get(r.case_index)) for r in results]
    passed, text = summarize(records, run, len(ids), elapsed)
    print(text)
    args.report.mkdir(parents=True, exist_ok=True)
    path = args.report / f"conformance-{args.driver}.json"
    document = {
        "agent": AGENT,
        "driver": args.driver,
        "wsloop": wsloop.__version__,
        "client_options": CLIENT_OPTIONS,
        "cases": args.cases,
        "exclude": args.exclude,
        "elapsed_s": round(elapsed, 1),
        "passed": passed,
        "behavior": dict(collections.Counter(r["behavior"] for r in records)),
        "behavior_close": dict(collections.Counter(r["behavior_close"] for r in records)),
        "results": records,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"report: {path}")
    if not passed:
        return 2 if run.timeouts or run.problems or len(records) != len(ids) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
