"""The JavaScript runtimes the browser driver runs on: Pyodide and pygbag.

Everything :class:`~wsloop.drivers.browser.BrowserDriver` asks of JavaScript
goes through one of these objects: making a ``WebSocket``, adding and
removing its listeners, reading its events, sending bytes. The driver never
touches ``js``, ``pyodide.ffi`` or ``platform.window`` itself.

Runtimes: Pyodide's FFI (``js``, ``pyodide.ffi.create_proxy``) and pygbag's
bridge (``platform.window``, whose ``pyodide`` stand-in has a
``create_proxy`` that returns the function itself). :class:`_PygbagRuntime`
keeps everything that crosses the bridge to strings (JSON, base64), which
its bridge is known to carry. :func:`_detect_runtime` tells which one this
Python runs in, if any.
"""

from __future__ import annotations

import base64
import importlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["is_available"]


class _Runtime:
    """Pyodide: ``js`` is the global object, ``pyodide.ffi`` makes proxies."""

    name = "pyodide"

    def __init__(self, js: Any, ffi: Any) -> None:
        self.js = js
        self._ffi = ffi

    def websocket_class(self) -> Any:
        return getattr(self.js, "WebSocket", None)

    def new_websocket(self, url: str, protocols: tuple[str, ...]) -> Any:
        cls = self.js.WebSocket
        if protocols:
            return cls.new(url, self._ffi.to_js(list(protocols)))
        return cls.new(url)

    def listen(self, sock: Any, handlers: dict[str, Callable[[Any], None]]) -> list[Any]:
        listeners = []
        for kind, fn in handlers.items():
            proxy = self._ffi.create_proxy(fn)
            sock.addEventListener(kind, proxy)
            listeners.append((kind, proxy))
        return listeners

    def unlisten(self, sock: Any, listeners: list[Any]) -> None:
        for kind, proxy in listeners:
            sock.removeEventListener(kind, proxy)
            proxy.destroy()

    def open_info(self, sock: Any) -> tuple[str, str]:
        return str(sock.protocol or ""), str(sock.extensions or "")

    def close_info(self, event: Any) -> tuple[int, str, bool]:
        return int(event.code), str(event.reason), bool(event.wasClean)

    def message_size(self, data: Any) -> int:
        if isinstance(data, str):
            return len(data)
        return int(data.byteLength)

    def message_data(self, data: Any) -> str | bytes:
        if isinstance(data, str):
            return data
        return bytes(data.to_bytes())

    def send_bytes(self, sock: Any, data: memoryview) -> None:
        array = self.js.Uint8Array.new(len(data))
        array.assign(data)
        sock.send(array)

    def error_text(self, exc: BaseException) -> str:
        return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


_PYGBAG_HELPERS = """(() => {
  const h = {};
  h.unpack = (data) => {
    if (typeof data === "string") return "t" + data;
    const bytes = new Uint8Array(data);
    let text = "";
    for (let i = 0; i < bytes.length; i += 32768) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
    }
    return "b" + btoa(text);
  };
  h.size = (data) => (typeof data === "string" ? data.length : data.byteLength);
  h.sendBase64 = (ws, text) => {
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    ws.send(out);
  };
  h.openInfo = (ws) => JSON.stringify([ws.protocol || "", ws.extensions || ""]);
  h.closeInfo = (ev) => JSON.stringify([ev.code, ev.reason || "", !!ev.wasClean]);
  h.newSocket = (url, protocols) =>
    protocols ? new WebSocket(url, JSON.parse(protocols)) : new WebSocket(url);
  h.hasWebSocket = () => (typeof WebSocket === "function" ? 1 : 0);
  return h;
})()"""


class _PygbagRuntime(_Runtime):
    """pygbag: ``platform.window`` is the page; plain functions become listeners.

    pygbag's bridge converts a Python callable assigned to a JavaScript
    property, and carries strings and numbers; its ``pyodide`` stand-in has
    neither a real ``create_proxy`` nor ``to_js``. So listeners are the
    ``on<event>`` properties (reset to ``null`` when the connection ends),
    and data crosses as strings made by small JavaScript helpers.
    """

    name = "pygbag"

    def __init__(self, window: Any) -> None:
        super().__init__(window, None)
        self._helpers: Any = None

    @property
    def helpers(self) -> Any:
        if self._helpers is None:
            self._helpers = self.js.eval(_PYGBAG_HELPERS)
        return self._helpers

    def websocket_class(self) -> Any:
        try:
            return self.js.WebSocket if int(self.helpers.hasWebSocket()) else None
        except Exception:  # the bridge may raise anything for a missing name
            return None

    def new_websocket(self, url: str, protocols: tuple[str, ...]) -> Any:
        return self.helpers.newSocket(url, json.dumps(list(protocols)) if protocols else "")

    def listen(self, sock: Any, handlers: dict[str, Callable[[Any], None]]) -> list[Any]:
        for kind, fn in handlers.items():
            setattr(sock, "on" + kind, fn)
        return list(handlers)

    def unlisten(self, sock: Any, listeners: list[Any]) -> None:
        for kind in listeners:
            setattr(sock, "on" + kind, None)

    def open_info(self, sock: Any) -> tuple[str, str]:
        protocol, extensions = json.loads(str(self.helpers.openInfo(sock)))
        return str(protocol), str(extensions)

    def close_info(self, event: Any) -> tuple[int, str, bool]:
        code, reason, clean = json.loads(str(self.helpers.closeInfo(event)))
        return int(code), str(reason), bool(clean)

    def message_size(self, data: Any) -> int:
        return int(self.helpers.size(data))

    def message_data(self, data: Any) -> str | bytes:
        packed = str(self.helpers.unpack(data))
        if packed[0] == "t":
            return packed[1:]
        return base64.b64decode(packed[1:])

    def send_bytes(self, sock: Any, data: memoryview) -> None:
        self.helpers.sendBase64(sock, base64.b64encode(data).decode("ascii"))


def _detect_runtime(prefer: str | None = None) -> _Runtime | None:
    """The JavaScript runtime this Python runs in, or ``None`` outside a browser."""
    if prefer in (None, "pyodide"):
        ffi: Any
        js: Any
        try:
            ffi = importlib.import_module("pyodide.ffi")
            js = importlib.import_module("js")
        except ImportError:
            ffi = js = None
        # pygbag's stand-in "pyodide" module has no JsProxy.
        if ffi is not None and hasattr(ffi, "JsProxy") and hasattr(ffi, "create_proxy"):
            return _Runtime(js, ffi)
        if prefer == "pyodide":
            return None
    try:
        platform = importlib.import_module("platform")
    except ImportError:  # pragma: no cover - the stdlib always has it
        return None
    window = getattr(platform, "window", None)
    if window is not None:
        return _PygbagRuntime(window)
    return None


def is_available() -> bool:
    """True when this Python runs in a page (or worker) that has a JavaScript ``WebSocket``.

    Pyodide and pygbag qualify; Emscripten's socket emulation does not, since
    it is not a WebSocket client.
    """
    runtime = _detect_runtime()
    return runtime is not None and runtime.websocket_class() is not None
