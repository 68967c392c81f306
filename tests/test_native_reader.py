"""The native frame reader of the open phase, checked against the engine.

While a connection is open without extensions, :class:`wsloop.Session` reads
data frames itself and hands the engine only control frames and what it does
not accept (see ``Session._receive_frames``). The property here is that this
changes nothing a user or a server can observe: for any bytes a server sends,
cut anywhere, with the client acting in between, a session reading natively
produces exactly the events (messages, error texts, close codes) and exactly
the frames to the server of a session that leaves every frame to the engine
(fed one byte at a time, see :func:`compare`).
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings, strategies as st

from sansio_helpers import BINARY, CONT, PING, TEXT, Pair, close_payload, frame
from test_fuzz_sansio import (
    act,
    any_ops,
    client_actions,
    cuts,
    mutate,
    mutations,
    server_bytes,
    split,
)
from wsloop import BinaryMessage, Closed, Error, State, TextMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wsloop import Event

DIFF = settings(max_examples=400, deadline=None)


def open_session(native: bool, max_message_size: int | None) -> Pair:
    pair = Pair(track=False, compression=None, max_message_size=max_message_size)
    pair.open()
    assert pair.session.state is State.OPEN
    assert pair.session._native  # the fast path is on by default without extensions
    pair.session._native = native
    return pair


def client_frames(chunks: Sequence[bytes]) -> list[tuple[int, bool, bytes] | str]:
    """Parse what a client wrote (masked frames, then maybe EOF) without a peer's state."""
    out: list[tuple[int, bool, bytes] | str] = []
    data = b""
    for chunk in chunks:
        if chunk == b"":
            out.append("EOF")
        else:
            data += chunk
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b1 & 0x80, "client frames are masked"
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            (length,), pos = struct.unpack_from("!H", data, pos), pos + 2
        elif length == 127:
            (length,), pos = struct.unpack_from("!Q", data, pos), pos + 8
        mask, pos = data[pos : pos + 4], pos + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[pos : pos + length]))
        pos += length
        out.append((b0 & 0x0F, bool(b0 & 0x80), payload))
    return out


def run(
    pair: Pair, chunks: Sequence[bytes], actions: Sequence[str], *, bytewise: bool = False
) -> tuple[list, list]:
    """Feed chunks with the client acting in between, then EOF; return events and frames."""
    session = pair.session
    sent: list[bytes] = []
    for i, chunk in enumerate(chunks):
        if bytewise or not session._native:
            for k in range(len(chunk)):
                session.receive_data(chunk[k : k + 1])
        else:
            session.receive_data(chunk)
        sent += act(session, actions[i] if i < len(actions) else "none")
    session.receive_eof()
    sent += session.data_to_send()
    return pair.events(), client_frames(sent)


def comparable(events: Sequence[Event]) -> list[object]:
    """Events with each Error as its text and exception type (exceptions compare by identity)."""
    return [
        ("Error", e.message, type(e.exception).__name__) if isinstance(e, Error) else e
        for e in events
    ]


def compare(opts: dict, data: bytes, points: list[int], actions: list[str]) -> list[Event]:
    chunks = split(data, points)
    native = run(open_session(True, opts["max_message_size"]), chunks, actions)
    # The engine parses every frame of a read before the session checks the
    # UTF-8 of the first, so it reports a later violation first when a read
    # holds two; the native reader checks each frame as it reads it. Fed one
    # byte at a time, the engine sees the violations in stream order too; so
    # is the native session's engine once it has given the reading back.
    engine = run(open_session(False, opts["max_message_size"]), chunks, actions, bytewise=True)
    assert comparable(native[0]) == comparable(engine[0])
    assert native[1] == engine[1]
    return native[0]


sizes = st.fixed_dictionaries({"max_message_size": st.sampled_from([None, 5, 32, 2**20])})


@DIFF
@given(opts=sizes, data=st.binary(max_size=300), points=cuts, actions=client_actions)
def test_arbitrary_bytes_as_the_engine_sees_them(opts, data, points, actions) -> None:
    compare(opts, data, points, actions)


@DIFF
@given(opts=sizes, ops=any_ops, changes=mutations, points=cuts, actions=client_actions)
def test_mutated_streams_as_the_engine_sees_them(opts, ops, changes, points, actions) -> None:
    source = Pair(track=False, compression=None, server_deflate=False)
    source.open()
    data, _, _ = server_bytes(source, ops)
    compare(opts, mutate(data, changes), points, actions)


@DIFF
@given(opts=sizes, ops=any_ops, points=cuts, actions=client_actions)
def test_unmutated_streams_as_the_engine_sees_them(opts, ops, points, actions) -> None:
    source = Pair(track=False, compression=None, server_deflate=False)
    source.open()
    data, _, _ = server_bytes(source, ops)
    compare(opts, data, points, actions)


# The handshake response and the first frames in one read.


@settings(max_examples=200, deadline=None)
@given(points=st.lists(st.integers(min_value=0), max_size=4), text=st.text(max_size=20))
def test_frames_in_the_same_read_as_the_response(points: list[int], text: str) -> None:
    pair = Pair(track=False, compression=None)
    request = pair.request()
    pair.server.send_response(pair.server.accept(request))
    pair.server.send_text(text.encode())
    pair.server.send_binary(b"\x00\x01")
    stream = b"".join(pair.server.data_to_send())
    chunks = split(stream, points)
    for chunk in chunks:
        pair.session.receive_data(chunk)
    events = pair.events()
    assert [type(e).__name__ for e in events] == ["Opened", "TextMessage", "BinaryMessage"]
    assert events[1:] == [TextMessage(text), BinaryMessage(b"\x00\x01")]
    assert pair.session._native


def test_a_refused_handshake_with_a_body_is_still_read_whole() -> None:
    # The head is fed alone first; the body (with CRLFCRLF inside) must follow it.
    pair = Pair(track=False, compression=None)
    pair.request()
    body = b"not here\r\n\r\nat all"
    head = f"HTTP/1.1 404 Not Found\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    pair.session.receive_data(head + body)
    events = pair.events()
    assert [type(e) for e in events] == [Error, Closed]
    assert events[0].exception.status == 404
    assert events[0].exception.body == body


# Cases worth naming, each cut at every byte.


def every_cut(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [
        [data[i : i + 1] for i in range(len(data))]
    ]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(
            frame(TEXT, "é€".encode()[:3], fin=False)
            + frame(PING, b"mid")
            + frame(CONT, "é€".encode()[3:]),
            [TextMessage("é€")],
            id="utf8-split-across-fragments-with-a-ping",
        ),
        pytest.param(
            frame(BINARY, b"a" * 100, fin=False) + frame(CONT, b"b" * 300),
            [BinaryMessage(b"a" * 100 + b"b" * 300)],
            id="7-and-16-bit-lengths",
        ),
        pytest.param(
            frame(TEXT, b"ab", fin=False) + frame(TEXT, b"cd"),
            [Error, Closed(1002, "expected a continuation frame", False)],
            id="text-while-a-message-is-unfinished",
        ),
        pytest.param(
            frame(CONT, b"x"),
            [Error, Closed(1002, "unexpected continuation frame", False)],
            id="continuation-of-nothing",
        ),
        pytest.param(
            frame(TEXT, b"\xff"),
            [Error, Closed(1007, "invalid UTF-8", False)],
            id="invalid-utf8",
        ),
        pytest.param(
            frame(TEXT, b"ok") + frame(PING, b"x", fin=False),
            [TextMessage("ok"), Error, Closed(1002, "fragmented control frame", False)],
            id="fragmented-ping",
        ),
        pytest.param(
            frame(TEXT, b"ok") + frame(0x8, close_payload(1000, b"bye")) + frame(TEXT, b"late"),
            [TextMessage("ok"), Closed(1000, "bye", True)],
            id="nothing-after-a-close-frame",
        ),
    ],
)
def test_named_streams_cut_everywhere(stream: bytes, expected: list) -> None:
    for chunks in every_cut(stream):
        native = open_session(True, 2**20)
        engine = open_session(False, 2**20)
        for pair in (native, engine):
            for chunk in chunks:
                pair.session.receive_data(chunk)
            if expected[-1] != Closed(1000, "bye", True):
                pair.session.receive_eof()
            else:
                pair.session.data_to_send()
                pair.session.receive_eof()
        got = native.events()
        assert comparable(got) == comparable(engine.events())
        kept = TextMessage | BinaryMessage | Closed
        shape = [e if isinstance(e, kept) else type(e) for e in got]
        assert shape[: len(expected)] == expected


def test_the_size_limit_counts_every_fragment() -> None:
    # 10 bytes allowed: 4 + 6 passes, 4 + 7 is refused with 1009 at the header.
    for extra, ok in ((6, True), (7, False)):
        native = open_session(True, 10)
        native.feed(frame(BINARY, b"a" * 4, fin=False), frame(CONT, b"b" * extra)[:3])
        events = native.events()
        if ok:
            assert events == []
            native.feed(frame(CONT, b"b" * extra)[3:])
            assert native.history[1:] == [BinaryMessage(b"a" * 4 + b"b" * extra)]
        else:
            assert [type(e) for e in native.history[1:]] == [Error]
            assert "max_message_size=10" in native.history[1].message
            assert native.session.state is State.CLOSING


def test_a_large_message_in_small_reads_is_assembled_once() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = frame(BINARY, payload)
    pair = open_session(True, None)
    for i in range(0, len(data), 65536):
        pair.session.receive_data(data[i : i + 65536])
    assert pair.events() == [BinaryMessage(payload)]
    assert len(pair.session._rbuf) == 0


# Large frames, collected read by read instead of buffered.

big_frame = st.tuples(
    st.sampled_from(["text", "binary", "fragments"]),
    st.integers(64 * 1024 - 16, 200 * 1024),  # around and above the collection threshold
    st.integers(0, 255),
)


def big_stream(frames: list[tuple[str, int, int]], bad_utf8_last: bool) -> tuple[bytes, list]:
    out = b""
    expected: list[object] = []
    for kind, size, seed in frames:
        if kind == "binary":
            payload = bytes((seed + i) % 256 for i in range(256)) * (size // 256)
            out += frame(BINARY, payload)
            expected.append(BinaryMessage(payload))
        else:
            text = ("é€" + chr(0x41 + seed % 26)) * (size // 6)  # multi-byte characters
            encoded = text.encode()
            if kind == "text":
                out += frame(TEXT, encoded)
            else:  # cut inside a character, a ping between the fragments
                cut = len(encoded) // 2 + 1
                out += frame(TEXT, encoded[:cut], fin=False) + frame(PING, b"p")
                out += frame(CONT, encoded[cut:])
            expected.append(TextMessage(text))
    if bad_utf8_last:
        out += frame(TEXT, b"x" * 70000 + b"\xff")
    return out, expected


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(big_frame, min_size=1, max_size=3),
    bad=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=10),
    actions=client_actions,
    limit=st.sampled_from([None, 150 * 1024]),
)
def test_large_frames_as_the_engine_sees_them(frames, bad, points, actions, limit) -> None:
    data, expected = big_stream(frames, bad)
    chunks = split(data, points)
    native = run(open_session(True, limit), chunks, actions)
    engine = run(open_session(False, limit), chunks, actions)
    assert comparable(native[0]) == comparable(engine[0])
    assert native[1] == engine[1]
    if limit is None and not actions:
        messages = [e for e in native[0] if isinstance(e, TextMessage | BinaryMessage)]
        assert messages == expected


def test_leaving_the_native_reader_in_the_middle_of_a_large_frame() -> None:
    payload = b"z" * 300_000
    data = frame(BINARY, payload) + frame(0x8, close_payload(1000))
    for leave in ("close", "eof"):
        pair = open_session(True, None)
        pair.session.receive_data(data[:100_000])
        assert pair.session._collect_need > 0
        if leave == "close":
            pair.session.send_close(4000, "bye")
            pair.session.receive_data(data[100_000:])
            pair.session.receive_eof()
            # The message was sent before the server saw our close: it arrives.
            events = pair.events()
            assert events == [BinaryMessage(payload), Closed(1000, "", True)]
        else:
            pair.session.receive_eof()
            events = pair.events()
            assert [type(e) for e in events] == [Error, Closed]
            assert events[-1] == Closed(1006, "", False)


def test_invalid_utf8_in_a_large_text_frame_fails_as_soon_as_it_arrives() -> None:
    bad = "é".encode() * 40_000 + b"\xff" + b"a" * 200_000
    data = frame(TEXT, bad)
    pair = open_session(True, None)
    pair.session.receive_data(data[:100_000])  # the bad byte is in here; the frame is not done
    events = pair.events()
    assert [type(e) for e in events] == [Error]
    assert "UTF-8" in events[0].message  # type: ignore[union-attr]
    assert pair.session.state is State.CLOSING
    assert pair.session._collect_need == 0  # nothing more is collected


def test_a_large_text_in_small_reads_is_decoded_as_it_arrives() -> None:
    text = "é€✓" * 120_000  # 1 MiB of 2- and 3-byte characters
    data = frame(TEXT, text.encode())
    pair = open_session(True, None)
    for i in range(0, len(data) - 1, 65_537):  # cuts fall inside characters
        pair.session.receive_data(data[i : min(i + 65_537, len(data) - 1)])
    assert pair.events() == []
    assert len(pair.session._collect_text) > 1  # decoded read by read, not at the end
    pair.session.receive_data(data[-1:])
    assert pair.events() == [TextMessage(text)]


# A whole binary message filled in place: the object handed over is made at the header's size.


def test_a_large_binary_message_is_filled_in_place_and_handed_over_without_a_copy() -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB
    data = frame(BINARY, payload)
    pair = open_session(True, 8 * 2**20)
    session = pair.session
    session.receive_data(data[:100_000])
    target = session._fill
    assert type(target) is bytes
    assert len(target) == len(payload)  # made once, at the size the header announced
    assert session._collect_parts == []  # the reads are not kept
    for i in range(100_000, len(data) - 1, 262_144):
        session.receive_data(memoryview(data)[i : min(i + 262_144, len(data) - 1)])
        assert session._collect_parts == []
    assert pair.events() == []
    session.receive_data(data[-1:] + frame(BINARY, b"next"))
    events = pair.events()
    assert events == [BinaryMessage(payload), BinaryMessage(b"next")]
    assert events[0].data is target  # the completing read copied only its own bytes
    assert session._fill is None
    assert session._fill_view is None


def test_without_the_in_place_fill_the_reads_are_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wsloop._sansio.reader._new_bytes", None)
    payload = bytes(range(256)) * 1024
    data = frame(BINARY, payload)
    pair = open_session(True, None)
    pair.session.receive_data(data[:70_000])
    assert pair.session._fill is None
    assert len(pair.session._collect_parts) == 1
    pair.session.receive_data(data[70_000:])
    assert pair.events() == [BinaryMessage(payload)]


def test_a_header_beyond_the_fill_cap_is_collected_when_there_is_no_limit() -> None:
    from wsloop._sansio.reader import _FILL_MAX

    pair = open_session(True, None)
    pair.session.receive_data(frame(BINARY, b"", length=_FILL_MAX + 1) + b"x" * 70_000)
    assert pair.session._fill is None  # a header alone reserves nothing beyond the cap
    assert pair.session._collect_need == _FILL_MAX + 1 - 70_000


@pytest.mark.parametrize("fill", [True, False])
def test_leaving_in_the_middle_of_a_filled_frame_hands_the_engine_what_arrived(
    fill: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fill:
        monkeypatch.setattr("wsloop._sansio.reader._new_bytes", None)
    payload = os.urandom(300_000)
    data = frame(BINARY, payload) + frame(0x8, close_payload(1000))
    pair = open_session(True, None)
    for i in range(0, 150_000, 50_000):
        pair.session.receive_data(data[i : i + 50_000])
    assert (pair.session._fill is not None) is fill
    pair.session.send_close(4000, "bye")  # the engine reads from here on
    pair.session.receive_data(data[150_000:])
    pair.session.receive_eof()
    assert pair.events() == [BinaryMessage(payload), Closed(1000, "", True)]


# permessage-deflate: whole compressed messages are read natively too.


def deflate_session(native: bool, max_message_size: int | None, **server_options: bool) -> Pair:
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.server import ServerProtocol

    pair = Pair(track=False, max_message_size=max_message_size)
    pair.server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory(**server_options)], max_size=None
    )
    pair.open()
    assert pair.session.extensions == ("permessage-deflate",)
    assert pair.session._native  # compressed frames no longer keep the engine reading
    pair.session._native = native
    return pair


@pytest.mark.parametrize(
    "options", [{}, {"server_no_context_takeover": True}, {"server_max_window_bits": 9}]
)
def test_compressed_messages_read_natively_as_the_engine_reads_them(
    options: dict[str, bool],
) -> None:
    texts = ["état de la partie " * 50 + str(i) for i in range(3)]
    blob = os.urandom(100_000) + b"\x00" * 100_000  # a large frame, collected
    sessions = []
    for native in (True, False):
        pair = deflate_session(native, None, **options)
        server = pair.server
        for text in texts:
            server.send_text(text.encode())  # later messages refer back to earlier ones
        server.send_binary(blob)
        server.send_text(b"frag-", fin=False)  # fragmented: the engine reads from here on
        server.send_continuation(b"ment", fin=True)
        server.send_text(texts[0].encode())
        data = b"".join(server.data_to_send())
        for i in range(0, len(data), 4096):
            pair.session.receive_data(data[i : i + 4096])
        sessions.append(pair.events())
    expected = [TextMessage(t) for t in texts] + [BinaryMessage(blob)]
    expected += [TextMessage("frag-ment"), TextMessage(texts[0])]
    assert sessions[0] == sessions[1] == expected


def test_a_deflate_bomb_stops_at_max_message_size_with_1009() -> None:
    from websockets.frames import Frame

    limit = 2**20
    for native in (True, False):
        pair = deflate_session(native, limit)
        pair.server.send_binary(b"\x00" * (64 * 2**20))  # 64 MiB inflate from ~64 KiB
        data = b"".join(pair.server.data_to_send())
        assert len(data) < 100_000
        pair.session.receive_data(data)
        events = pair.events()
        assert [type(e) for e in events] == [Error], native
        assert f"max_message_size={limit}" in events[0].message  # type: ignore[union-attr]
        [close] = [f for f in pair.frames_to_server() if isinstance(f, Frame)]
        assert close.data[:2] == (1009).to_bytes(2, "big")


def test_a_message_that_inflates_to_exactly_the_limit_passes() -> None:
    for extra, ok in ((0, True), (1, False)):
        pair = deflate_session(True, 1000)
        pair.server.send_binary(b"a" * (1000 + extra))
        pair.server_to_client()
        events = pair.events()
        assert (events == [BinaryMessage(b"a" * 1000)]) is ok, events


def test_invalid_compressed_data_read_natively_fails_with_1002() -> None:
    pair = deflate_session(True, None)
    events = pair.feed(frame(BINARY, b"\xff\xff\xff\xff", rsv=4))
    assert [type(e) for e in events] == [Error]
    assert "decompression failed" in events[0].message  # type: ignore[union-attr]
    assert pair.session.state is State.CLOSING
