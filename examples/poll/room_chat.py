"""A chat room that remembers, in a plain game loop: ``wsloop.Room`` on the poll driver.

Start a relay, then two (or more) of these on the same room::

    wsloop serve
    python examples/poll/room_chat.py ws://127.0.0.1:8765/room/lobby ann
    python examples/poll/room_chat.py ws://127.0.0.1:8765/room/lobby bob

Type a line and press Enter to say it. A newcomer sees what was said before it
came; unplug the network for a few seconds and nothing is lost: the socket
reconnects (``reconnect=True``) and the room resumes the same seat, replays what
was missed and resends what did not get through, each line exactly once.

The loop never blocks: each turn it reads whatever the keyboard has (POSIX
``select`` on stdin), calls ``ws.poll()``, and the room's triggers fire there.

``--self-test`` starts its own relay and two members, has them talk, drops one
connection, and prints a JSON report; exit status 0 when everything arrived once.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from typing import Any

import wsloop


def make_room(name: str, out: list[str] | None = None) -> wsloop.Room:
    """A Room on a poll-driver socket that reconnects, printing (or recording) its triggers."""

    def show(line: str) -> None:
        if out is None:
            print(line, flush=True)
        else:
            out.append(line)

    room = wsloop.Room(wsloop.WebSocket(reconnect=True), name)
    room.on_joined = lambda me: show(f"* you are {me.id}" + (" (resumed)" if room.resumed else ""))
    room.on_member_joined = lambda m: show(f"* {m.name} joined")
    room.on_member_left = lambda m, why: show(f"* {m.name or m.id} {why}")
    room.on_message = lambda m, data: show(f"<{m.name or m.id}> {data}")
    room.on_gap = lambda missed: show(f"* {missed} messages were missed")
    return room


def chat(url: str, name: str) -> int:
    room = make_room(name)
    room.connect(url)
    while not room.ws.is_closed or room.ws.is_reconnecting:
        ready, _, _ = select.select([sys.stdin], [], [], 0.02)
        if ready:
            line = sys.stdin.readline()
            if not line:
                room.leave()
            elif line.strip():
                room.send(line.rstrip("\n"))
        room.ws.poll()
    return 0


def self_test() -> int:
    from wsloop.relay import serve

    report: dict[str, Any] = {}
    with serve() as relay:
        url = f"{relay.url}/room/self-test"
        ann_log: list[str] = []
        bob_log: list[str] = []
        ann, bob = make_room("ann", ann_log), make_room("bob", bob_log)
        ann.connect(url)
        bob.connect(url)
        end = time.monotonic() + 30

        def run(until: Any) -> None:
            while not until():
                if time.monotonic() > end:
                    raise TimeoutError(f"self-test timed out: {ann_log} {bob_log}")
                ann.ws.poll(0.01)
                bob.ws.poll(0.01)

        run(lambda: ann.joined and bob.joined)
        ann.send("hello")
        run(lambda: any("<ann> hello" in line for line in bob_log))
        # Drop ann's connection under it (as a network blink would); bob talks meanwhile.
        ann.ws.close(4000, "self-test: simulated drop")
        bob.send("did you get this?")
        ann.send("back again")  # kept until ann is seated again
        ann.connect(url)
        run(lambda: sum("<" in line for line in ann_log) == 3 and ann.unacked == 0)
        run(lambda: any("<ann> back again" in line for line in bob_log))
        ann.leave()
        run(lambda: ann.ws.is_closed)
        bob.ws.close()
        run(lambda: bob.ws.is_closed)
        said = [line for line in ann_log if line.startswith("<")]
        report = {
            "ann": ann_log,
            "bob": bob_log,
            "ok": said == ["<ann> hello", "<bob> did you get this?", "<ann> back again"]
            and ann.resumed,
        }
    print(json.dumps(report))
    return 0 if report["ok"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8765/room/lobby")
    parser.add_argument("name", nargs="?", default="guest")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    return self_test() if args.self_test else chat(args.url, args.name)


if __name__ == "__main__":
    sys.exit(main())
