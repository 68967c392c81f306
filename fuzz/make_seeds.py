"""Write the hand-made seeds of every target into ``fuzz/corpus/<target>/``.

Each seed is a small valid input (a good handshake response, valid frames, a
valid upgrade request, a valid room join...) named ``seed-<what>``; the
fuzzer starts from them. The files the fuzzer added (``fuzz/run.py
--merge``) are named by their SHA-1 and are left alone. Run it again after
changing a target's input format: ``python fuzz/make_seeds.py``.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

OK_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {ACCEPT}\r\n"
)


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, size])
    elif size < 2**16:
        head = bytes([first, 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, 127]) + struct.pack("!Q", size)
    return head + payload


def masked(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """A client frame, masked with the zero key (so the payload reads as it is)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, 0x80 | size])
    else:
        head = bytes([first, 0xFE]) + struct.pack("!H", size)
    return head + b"\x00\x00\x00\x00" + payload


def close(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def deflated(data: bytes) -> bytes:
    """permessage-deflate's payload: raw deflate, without the final empty block's tail."""
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


MESSAGES = (
    frame(1, b"hello")
    + frame(2, b"\x00\x01\x02")
    + frame(1, "h\u00e9".encode()[:2], fin=False)
    + frame(9, b"mid")
    + frame(0, "h\u00e9".encode()[2:])
    + frame(10, b"pong")
    + frame(2, b"x" * 200)
)


def session_seeds() -> dict[str, bytes]:
    end = frame(8, close(1000, b"bye"))
    return {
        "open-messages-close": b"\x00\x00" + OK_101 + b"\r\n" + MESSAGES + end,
        "open-in-small-reads": b"\x06\x07" + OK_101 + b"\r\n" + MESSAGES + end,
        "open-deflate": b"\x01\x00"
        + OK_101
        + b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
        + frame(1, deflated(b"compressed hello"), rsv1=True)
        + end,
        "open-subprotocol-client-closes": b"\x38\x00"
        + OK_101
        + b"Sec-WebSocket-Protocol: chat\r\n\r\n"
        + frame(8, close(4000, b"bye")),
        "refused-404-body": b"\x00\x00HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n"
        b"not here\n",
        "redirect": b"\x00\x00HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\n"
        b"Content-Length: 0\r\n\r\n",
        "too-big-then-eof": b"\x02\x00" + OK_101 + b"\r\n" + frame(2, b"y" * 40),
        "abort-mid-message": b"\x40\x00" + OK_101 + b"\r\n" + frame(1, b"part", fin=False),
    }


def native_seeds() -> dict[str, bytes]:
    end = frame(8, close(1000, b"bye"))
    deflate_stream = (
        frame(1, deflated(b"one"), rsv1=True)
        + frame(2, deflated(b"\x00" * 300), rsv1=True)
        + frame(1, deflated(b"frag")[:3], fin=False, rsv1=True)
        + frame(0, deflated(b"frag")[3:])
        + end
    )
    return {
        "messages-close": b"\x00\x00\x00" + MESSAGES + end,
        "messages-small-reads-acting": b"\x06\x05\xe4" + MESSAGES + end,
        "large-frame-limit": b"\x06\x00\x00" + frame(2, b"z" * 70000)[:100],
        "16-bit-length": b"\x00\x00\x00" + frame(1, b"a" * 300) + end,
        "bad-utf8": b"\x00\x00\x00" + frame(1, b"ok") + frame(1, b"\xff\xfe") + end,
        "deflate-messages": b"\x01\x00\x00" + deflate_stream,
        "deflate-small-reads": b"\x07\x03\x39" + deflate_stream,
    }


def upgrade(path: str, *extra: str) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def room(obj: object) -> bytes:
    return masked(1, json.dumps(obj).encode())


def relay_seeds() -> dict[str, bytes]:
    end = masked(8, close(1000))
    chat = masked(1, b"hi") + masked(2, b"\x00\x01") + masked(1, b"he", fin=False)
    chat += masked(9, b"p") + masked(0, b"llo") + end
    join = room({"type": "join", "name": "ann", "meta": {"colour": "red"}})
    return {
        "plain-room": b"\x00\x00" + upgrade("/lobby") + chat,
        "chat-subprotocol": b"\x00\x00" + upgrade("/lobby", "Sec-WebSocket-Protocol: chat") + chat,
        "room-protocol": b"\x00\x05"
        + upgrade("/game", "Sec-WebSocket-Protocol: wsloop.room.v1")
        + join
        + room({"type": "send", "data": {"move": 3}, "id": "c1"})
        + room({"type": "send", "binary": True})
        + masked(2, b"\x07\x08")
        + room({"type": "leave"}),
        "echo-with-token": b"\x01\x00" + upgrade("/echo?token=fuzz-token") + chat,
        "echo-bearer-too-many-fragments": b"\x01\x00"
        + upgrade("/echo", "Authorization: Bearer fuzz-token")
        + b"".join(masked(2 if i == 0 else 0, b"f", fin=i == 9) for i in range(10)),
        "healthz": b"\x00\x00GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "status-token": b"\x01\x00GET /status?token=fuzz-token HTTP/1.1\r\nHost: x\r\n\r\n",
        "metrics": b"\x00\x00GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad-version": b"\x00\x00" + upgrade("/x").replace(b"Version: 13", b"Version: 8"),
        "deflate-offer": b"\x00\x00"
        + upgrade("/x", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        + end,
    }


def rooms_seeds() -> dict[str, bytes]:
    def line(prefix: str, obj: object) -> bytes:
        return prefix.encode() + json.dumps(obj).encode() + b"\n"

    join_send = (
        line("0", {"type": "join", "name": "ann", "meta": {"c": 1}})
        + line("1", {"type": "join", "name": "bob"})
        + line("0", {"type": "send", "data": {"x": 1}, "id": "m1"})
        + line("1", {"type": "send", "binary": True})
        + b"b\x00\x01\x02\n"
    )
    resume = (
        b"x0\nn0\n"
        + b'0{"type":"resume","token":"$T0","since":0}\n'
        + line("0", {"type": "send", "data": "again", "id": "m1"})
        + line("1", {"type": "leave"})
    )
    return {
        "join-send-binary": b"\x00" + join_send,
        "join-send-resume-leave": b"\x00" + join_send + resume,
        "tight-limits": b"\x01"
        + join_send
        + line("2", {"type": "join", "name": "cat"})
        + b"".join(line("0", {"type": "send", "data": i, "id": f"i{i}"}) for i in range(8))
        + resume,
        "replaced-while-online": b"\x00"
        + join_send
        + b'2{"type":"resume","token":"$T1","since":1}\n'
        + line("1", {"type": "leave"}),
        "mistakes": b"\x00"
        + b"0not json\n0[1]\n"
        + line("0", {"type": "send", "data": 1})
        + line("0", {"type": "dance"})
        + line("0", {"type": "join", "name": 5})
        + b"a\x00\n",
    }


def main() -> None:
    for target, seeds in (
        ("session", session_seeds()),
        ("native", native_seeds()),
        ("relay", relay_seeds()),
        ("rooms", rooms_seeds()),
    ):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds in {folder}")


if __name__ == "__main__":
    main()
