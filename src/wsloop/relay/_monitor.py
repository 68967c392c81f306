"""The relay's plain-HTTP pages: ``/healthz``, ``/metrics`` and ``/status``.

Theory of operation
-------------------
These pages share the relay's port. The ``websockets`` server hands every
request to ``process_request`` first; a plain ``GET`` (no ``Upgrade``
header) of one of these paths is answered there, and every other request
goes on to the WebSocket handshake as before (a plain ``GET`` of any other
path still gets ``426 Upgrade Required``).

* ``/healthz`` answers ``200 ok`` while the relay serves and ``503`` once it
  is stopping or its Redis link has failed, so a load balancer stops sending
  clients to a process that is going away.
* ``/metrics`` is the Prometheus text format, written by the
  ``prometheus_client`` package (``pip install "wsloop[relay-metrics]"``)
  from a registry of this relay's own: two relays in one process never mix
  their counters. Every value is read from the relay when scraped; nothing
  is updated per message but plain integers.
* ``/status`` is a page for a person: totals, rates over the last few
  seconds and the rooms with their member counts (for rooms kept in Redis,
  the members connected to this process). It reloads itself;
  ``/status.json`` is the same data for scripts.

Both also count the asyncio tasks alive on the relay's event loop
(``tasks``, the gauge ``wsloop_relay_asyncio_tasks``): each connection has
its handler and writer, so with no client the count falls back to the
relay's own few (its accept loop, rate sampler, Redis links); a count that
keeps growing while the connections do not is a leak (``make soak``
watches it).

Room names can say more than a relay's owner wants public, so ``/metrics``
and ``/status`` can be turned off (``monitoring=False``) and, when the relay
has a token, ask for it like a WebSocket client would (``?token=`` or a
Bearer header). ``/healthz`` says nothing but "ok" and is always open.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from websockets.datastructures import Headers
from websockets.http11 import Response

from .._version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._parts import RelayStats
    from ._redis_rooms import RoomStore
    from .rooms import RoomCore

__all__: list[str] = []

PATHS = frozenset({"/healthz", "/metrics", "/status", "/status.json"})
"""The paths answered with a page rather than a WebSocket handshake."""

_RATE_WINDOW = 5.0


class Rates:
    """Messages per second in and out, over the last few seconds.

    :meth:`sample` is called about once a second by the relay; the rate is
    the difference between the newest sample and the oldest one still in
    the window.
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()

    def sample(self, messages_in: int, messages_out: int) -> None:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, messages_in, messages_out))
        while len(samples) > 2 and now - samples[0][0] > _RATE_WINDOW:
            samples.popleft()

    def current(self) -> tuple[float, float]:
        """Messages/s in and out (0 until two samples exist)."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, in0, out0), (t1, in1, out1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return 0.0, 0.0
        return (in1 - in0) / span, (out1 - out0) / span


class Monitored(Protocol):
    """What the pages read of a relay (a :class:`~wsloop.relay.Relay`).

    Spelled out here so that this module needs nothing of ``server.py``,
    which imports it: the relay's modules import one way only.
    """

    @property
    def stats(self) -> RelayStats: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def monitoring(self) -> bool: ...
    @property
    def _rates(self) -> Rates: ...
    @property
    def _started(self) -> float: ...
    @property
    def _rooms(self) -> Mapping[str, Mapping[Any, None]]: ...
    @property
    def _cores(self) -> Mapping[str, RoomCore]: ...
    @property
    def _room_store(self) -> RoomStore | None: ...


def _response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["Connection"] = "close"
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 501: "Not Implemented"}.get(
        status, "Service Unavailable"
    )
    return Response(status, reason, headers, body)


def _text(status: int, text: str) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8")


def _tasks() -> int | None:
    """The asyncio tasks alive on the running loop (``None`` off the loop)."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop: relay.stats read from another thread
        return None


def snapshot(relay: Monitored) -> dict[str, Any]:
    """What ``/status.json`` shows."""
    stats = relay.stats
    rate_in, rate_out = relay._rates.current()
    rooms: list[dict[str, Any]] = []
    for name, members in relay._rooms.items():
        rooms.append({"room": name, "protocol": "plain", "members": len(members), "online": None})
    for name, core in relay._cores.items():
        online = sum(1 for seat in core.seats.values() if seat.link is not None)
        kind = "game" if hasattr(core, "game") else "room"
        rooms.append(
            {"room": name, "protocol": kind, "members": len(core.seats), "online": online}
        )
    store = relay._room_store
    if store is not None:  # rooms kept in Redis: what this process holds of them
        for name, shared in store.rooms.items():
            here = len(shared.locals)
            rooms.append(
                {"room": name, "protocol": "room, Redis", "members": here, "online": here}
            )
    rooms.sort(key=lambda r: (-int(r["members"]), str(r["room"])))
    return {
        "version": __version__,
        "uptime": round(time.monotonic() - relay._started, 1),
        "healthy": relay.healthy,
        "connections": stats.connections,
        "rooms": len(rooms),
        "messages_in": stats.messages_in,
        "messages_out": stats.messages_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "rate_in": round(rate_in, 1),
        "rate_out": round(rate_out, 1),
        "slow_consumers": stats.slow_consumers,
        "rate_limited": stats.rate_limited,
        "resumes": stats.resumes,
        "handler_errors": stats.handler_errors,
        "refused": stats.refused,
        "queued_bytes": stats.queued_bytes,
        "tasks": _tasks(),
        "room_list": rooms[:200],
    }


def _status_page(data: dict[str, Any], query: str) -> bytes:
    def cell(value: Any) -> str:
        return html.escape("-" if value is None else str(value))

    rows = (
        "".join(
            f"<tr><td>{cell(r['room'])}</td><td>{cell(r['protocol'])}</td>"
            f"<td class=n>{cell(r['members'])}</td><td class=n>{cell(r['online'])}</td></tr>"
            for r in data["room_list"]
        )
        or "<tr><td colspan=4 class=empty>no rooms yet</td></tr>"
    )
    figures = [
        ("connections", data["connections"]),
        ("rooms", data["rooms"]),
        ("messages in/s", data["rate_in"]),
        ("messages out/s", data["rate_out"]),
        ("messages in", data["messages_in"]),
        ("messages out", data["messages_out"]),
        ("slow consumers", data["slow_consumers"]),
        ("rate limited", data["rate_limited"]),
        ("resumes", data["resumes"]),
        ("room code errors", data["handler_errors"]),
    ]
    tiles = "".join(
        f'<div class=tile><div class=v id="{html.escape(k.replace(" ", "_").replace("/", ""))}">'
        f"{cell(v)}</div><div class=k>{html.escape(k)}</div></div>"
        for k, v in figures
    )
    state = "serving" if data["healthy"] else "stopping"
    page = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta http-equiv=refresh content=5>
<link rel=icon href="data:,">
<title>wsloop relay status</title>
<style>
body{{font:15px system-ui,sans-serif;margin:2em;background:#f7f7f9;color:#222}}
h1{{font-size:1.4em;margin:0 0 .2em}} .sub{{color:#666;margin-bottom:1.2em}}
.tiles{{display:flex;flex-wrap:wrap;gap:.8em;margin-bottom:1.5em}}
.tile{{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.7em 1em;min-width:8em}}
.v{{font-size:1.6em;font-weight:600;color:#1a5fb4}} .k{{color:#555}}
table{{border-collapse:collapse;background:#fff;min-width:30em}}
td,th{{border:1px solid #ddd;padding:.35em .7em;text-align:left}}
.n{{text-align:right}} .empty{{color:#888;text-align:center}}
</style></head><body>
<h1>wsloop relay</h1>
<div class=sub>version {cell(data["version"])} · {state} · up {cell(data["uptime"])} s ·
refreshes every 5 s · <a href="/status.json{query}">status.json</a> ·
<a href="/metrics{query}">metrics</a></div>
<div class=tiles>{tiles}</div>
<table><thead><tr><th>room</th><th>protocol</th><th>members</th><th>online</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>
"""
    return page.encode()


def _metrics(relay: Monitored) -> Response:
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    except ImportError:
        return _text(
            501,
            '/metrics needs the prometheus_client package: pip install "wsloop[relay-metrics]"\n',
        )

    class Collector:
        def collect(self) -> Any:
            data = snapshot(relay)
            for name, doc in (
                ("connections", "Clients connected now"),
                ("rooms", "Rooms with members in this process"),
                ("queued_bytes", "Bytes waiting in every send queue"),
            ):
                yield GaugeMetricFamily(f"wsloop_relay_{name}", doc, value=data[name])
            if data["tasks"] is not None:
                yield GaugeMetricFamily(
                    "wsloop_relay_asyncio_tasks",
                    "Asyncio tasks alive on the relay's event loop",
                    value=data["tasks"],
                )
            members = sum(int(r["members"]) for r in data["room_list"])
            yield GaugeMetricFamily(
                "wsloop_relay_members", "Members of rooms (room-protocol seats included)", members
            )
            for name, doc in (
                ("messages_in", "Messages received from clients"),
                ("messages_out", "Messages written to clients"),
                ("bytes_in", "Payload bytes received from clients"),
                ("bytes_out", "Payload bytes written to clients"),
                ("slow_consumers", "Clients closed because their send queue overflowed"),
                ("rate_limited", "Clients closed for passing a rate limit"),
                ("resumes", "Room-protocol seats taken back by a resume"),
                ("handler_errors", "Exceptions raised by game-room code"),
                ("refused", "Handshakes refused (auth, limits, full)"),
            ):
                yield CounterMetricFamily(f"wsloop_relay_{name}", doc, value=data[name])

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return _response(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")


def respond(relay: Monitored, path: str, token_ok: bool | None, query: str = "") -> Response:
    """The page for ``path`` (one of :data:`PATHS`).

    ``token_ok``: ``None`` when the relay has no token, else whether the
    request presented the right one. ``query`` (``?token=...``) is kept on
    the status page's links.
    """
    if path == "/healthz":
        if relay.healthy:
            return _text(200, "ok\n")
        return _text(503, "stopping\n" if relay.failure is None else f"{relay.failure}\n")
    if not relay.monitoring:
        return _text(403, "This relay's monitoring pages are turned off.\n")
    if token_ok is False:
        return _text(403, "This page needs the relay's token (?token=...).\n")
    if path == "/metrics":
        return _metrics(relay)
    data = snapshot(relay)
    if path == "/status.json":
        return _response(200, json.dumps(data).encode(), "application/json")
    return _response(200, _status_page(data, html.escape(query)), "text/html; charset=utf-8")
