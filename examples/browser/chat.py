"""A chat room in the browser: wsloop.WebSocket in Pyodide, against ``wsloop serve``.

The same code as on the desktop: handlers for the triggers, and a frame loop
that calls ``ws.poll()`` once per frame. The loop awaits
``asyncio.sleep()`` between frames: that is when the browser runs the
WebSocket's JavaScript events (a ``requestAnimationFrame`` loop works too,
but browsers pause it in background tabs). Messages are JSON
``{"name": ..., "text": ...}``; the relay sends each one to the other
members of the room (the path of the URL), so our own lines are shown as we
send them.

Query string: ``server`` (default ws://<this host>:8765), ``room`` (lobby),
``name`` (a random guest name).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

import js
from pyodide.ffi import create_proxy

import wsloop
from wsloop.drivers.browser import BrowserDriver

document = js.document
params = js.URLSearchParams.new(js.location.search)
server = params.get("server") or f"ws://{js.location.hostname}:8765"
room = params.get("room") or "lobby"
name = params.get("name") or f"guest-{random.randint(1000, 9999)}"
url = f"{server.rstrip('/')}/{room}"

log = document.getElementById("log")
status = document.getElementById("status")
text_box = document.getElementById("text")
send_button = document.getElementById("send")
reconnect_button = document.getElementById("reconnect")
document.getElementById("room").textContent = f"· #{room}"
document.getElementById("python").textContent = sys.version.split()[0]
document.getElementById("version").textContent = wsloop.__version__


def show(who: str | None, text: str, kind: str) -> None:
    item = document.createElement("li")
    item.className = kind
    if who is not None:
        label = document.createElement("span")
        label.className = "who"
        label.textContent = who
        item.appendChild(label)
    item.appendChild(document.createTextNode(text))
    log.appendChild(item)
    log.scrollTop = log.scrollHeight


def set_status(text: str, kind: str) -> None:
    status.textContent = text
    status.className = kind


# The WebSocket. In Pyodide the default driver is this one too; naming it
# keeps the page working with any wsloop version.
ws = wsloop.WebSocket(driver=BrowserDriver)


@ws.event
def on_opened(event: wsloop.Opened) -> None:
    set_status(f"{name} in #{room}", "open")
    text_box.disabled = send_button.disabled = False
    reconnect_button.hidden = True
    text_box.focus()
    ws.send_text(json.dumps({"name": name, "text": "joined the room", "note": True}))


@ws.event
def on_text_message(event: wsloop.TextMessage) -> None:
    try:
        message = json.loads(event.text)
        who, text = str(message["name"]), str(message["text"])
    except (ValueError, KeyError, TypeError):
        message, who, text = {}, "?", event.text
    if message.get("note"):
        show(None, f"{who} {text}", "note")
    else:
        show(who, text, "other")


@ws.event
def on_error(event: wsloop.Error) -> None:
    show(None, event.message, "note")


@ws.event
def on_closed(event: wsloop.Closed) -> None:
    set_status(f"disconnected ({event.code})", "closed")
    text_box.disabled = send_button.disabled = True
    reconnect_button.hidden = False


def on_submit(event: object) -> None:
    event.preventDefault()  # type: ignore[attr-defined]
    text = text_box.value.strip()
    if text and ws.send_text(json.dumps({"name": name, "text": text})):
        show(name, text, "me")
        text_box.value = ""


def on_reconnect(event: object) -> None:
    set_status(f"connecting to {url}…", "connecting")
    ws.connect(url)


async def frames() -> None:
    while True:
        ws.poll()  # fire the triggers of whatever arrived since the last frame
        await asyncio.sleep(1 / 30)


document.getElementById("form").addEventListener("submit", create_proxy(on_submit))
reconnect_button.addEventListener("click", create_proxy(on_reconnect))
set_status(f"connecting to {url}…", "connecting")
ws.connect(url)
frame_loop = asyncio.ensure_future(frames())
frame_loop.add_done_callback(lambda task: set_status(f"stopped: {task.exception()!r}", "closed"))
