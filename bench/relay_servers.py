"""The relay's peers in ``bench/relay_load.py``: a plain broadcast server and python-socketio.

::

    python bench/relay_servers.py broadcast --port 9001
    python bench/relay_servers.py socketio --port 9002

Theory of operation
-------------------
``broadcast`` is the floor: the ``websockets`` asyncio server keeping one set
of connections per URL path, each message handed to ``websockets.broadcast``
for the other members of its path. No queue, no limit, no bookkeeping: what
one process can do with the same engine the relay is built on, when it does
nothing else.

``socketio`` is what people would use instead of the relay: python-socketio's
``AsyncServer`` on aiohttp. A client names its room in the query string of its
Engine.IO URL (``/socket.io/?EIO=4&transport=websocket&room=NAME``); the
``connect`` handler puts it in that room (``enter_room``), and every ``msg``
event is emitted to the room, the sender skipped (``skip_sid``), as the relay
does.

Both listen on 127.0.0.1 and print ``ready <port>`` once they accept
connections. The harness pins each to its own core.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from collections import defaultdict
from typing import Any


async def broadcast_server(port: int) -> None:
    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    rooms: defaultdict[str, set[ServerConnection]] = defaultdict(set)

    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        path = conn.request.path.split("?", 1)[0]
        room = rooms[path]
        room.add(conn)
        try:
            async for message in conn:
                websockets.broadcast([c for c in room if c is not conn], message)
        finally:
            room.discard(conn)
            if not room:
                rooms.pop(path, None)

    async with serve(handler, "127.0.0.1", port, max_size=2**20, backlog=4096):
        print(f"ready {port}", flush=True)
        await asyncio.Future()


def socketio_server(port: int) -> None:
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)
    rooms: dict[str, str] = {}

    @sio.event  # type: ignore[misc]
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        room = query.get("room", ["/"])[0]
        rooms[sid] = room
        await sio.enter_room(sid, room)

    @sio.event  # type: ignore[misc]
    async def disconnect(sid: str, *_: Any) -> None:
        rooms.pop(sid, None)

    @sio.on("msg")  # type: ignore[misc]
    async def msg(sid: str, data: Any) -> None:
        await sio.emit("msg", data, room=rooms.get(sid, "/"), skip_sid=sid)

    async def ready(_: web.Application) -> None:
        print(f"ready {port}", flush=True)

    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=4096, access_log=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("kind", choices=["broadcast", "socketio"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        if args.kind == "broadcast":
            asyncio.run(broadcast_server(args.port))
        else:
            socketio_server(args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
