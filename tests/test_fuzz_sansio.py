"""Property tests: whatever an open connection's server sends, the session behaves.

After an in-memory handshake, the server side sends arbitrary bytes, or a
valid frame stream (made by websockets' ServerProtocol, plus hand-made frames)
that may be mutated, cut at random points, then EOF. The session must never
raise, must end with exactly one Closed as its last event, emit at most one
Error before it, and every Error must carry a :class:`wsloop.WebSocketError`.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from hypothesis import given, settings, strategies as st

from sansio_helpers import Pair, check_contract, frame
from wsloop import BinaryMessage, Closed, Error, State, TextMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wsloop import Event, Session

FUZZ = settings(max_examples=200, deadline=None)

VALID_CODES = [1000, 1001, 1003, 1008, 1011, 3000, 4321, 4999]

# One server action: a message, a fragmented message, a control frame, a
# close, or a raw frame written byte by byte (any opcode, bits and mask).
text_op = st.tuples(st.just("text"), st.text(max_size=40))
binary_op = st.tuples(st.just("binary"), st.binary(max_size=40))
fragments_op = st.tuples(
    st.just("fragments"),
    st.booleans(),  # text or binary
    st.lists(st.text(max_size=10), min_size=1, max_size=4),
    st.booleans(),  # a ping between the first two fragments
)
ping_op = st.tuples(st.just("ping"), st.binary(max_size=20))
pong_op = st.tuples(st.just("pong"), st.binary(max_size=20))
close_op = st.tuples(
    st.just("close"), st.none() | st.sampled_from(VALID_CODES), st.text(max_size=20)
)
raw_op = st.tuples(
    st.just("raw"),
    st.integers(0, 15),  # opcode
    st.binary(max_size=30),
    st.booleans(),  # fin
    st.integers(0, 7),  # rsv
    st.none() | st.binary(min_size=4, max_size=4),  # mask
)
valid_ops = st.lists(
    st.one_of(text_op, binary_op, fragments_op, ping_op, pong_op, close_op), max_size=8
)
any_ops = st.lists(
    st.one_of(text_op, binary_op, fragments_op, ping_op, pong_op, close_op, raw_op), max_size=8
)
mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete"]),
        st.integers(min_value=0),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)
cuts = st.lists(st.integers(min_value=0), max_size=6)
client_actions = st.lists(
    st.sampled_from(["none", "text", "binary", "ping", "close", "flush"]), max_size=8
)
options = st.fixed_dictionaries(
    {
        "compression": st.sampled_from(["deflate", None]),
        "max_message_size": st.sampled_from([None, 32, 2**20]),
    }
)


def open_pair(opts: dict[str, object]) -> Pair:
    pair = Pair(track=False, **opts)  # type: ignore[arg-type]
    pair.open()
    assert pair.session.state is State.OPEN
    return pair


def server_bytes(pair: Pair, ops: Sequence[tuple]) -> tuple[bytes, list[Event], Closed | None]:
    """Serialize ``ops`` from the server; return the bytes and what a client should see."""
    server = pair.server
    out: list[bytes] = []
    expected: list[Event] = []
    closed: Closed | None = None
    for op in ops:
        kind = op[0]
        if kind == "text":
            server.send_text(op[1].encode())
            expected.append(TextMessage(op[1]))
        elif kind == "binary":
            server.send_binary(op[1])
            expected.append(BinaryMessage(op[1]))
        elif kind == "fragments":
            _, is_text, parts, ping = op
            encoded = [p.encode() for p in parts]
            first = server.send_text if is_text else server.send_binary
            first(encoded[0], fin=len(encoded) == 1)
            if ping:
                server.send_ping(b"mid")
            for i, part in enumerate(encoded[1:], start=2):
                server.send_continuation(part, fin=i == len(encoded))
            joined = "".join(parts)
            expected.append(TextMessage(joined) if is_text else BinaryMessage(joined.encode()))
        elif kind == "ping":
            server.send_ping(op[1])
        elif kind == "pong":
            server.send_pong(op[1])
        elif kind == "close":
            _, code, reason = op
            if code is None:
                server.send_close()
                closed = Closed(1005, "", True)
            else:
                reason = reason.encode()[:100].decode("utf-8", "ignore")
                server.send_close(code, reason)
                closed = Closed(code, reason, True)
        else:  # raw
            out.extend(server.data_to_send())
            _, opcode, payload, fin, rsv, mask = op
            out.append(frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))
            continue
        out.extend(server.data_to_send())
        if closed is not None:
            break
    return b"".join(c for c in out if c), expected, closed


def mutate(data: bytes, changes: Sequence[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in changes:
        if kind == "insert":
            buf.insert(where % (len(buf) + 1), value)
        elif not buf:
            continue
        elif kind == "flip":
            buf[where % len(buf)] ^= 1 << (value % 8)
        elif kind == "set":
            buf[where % len(buf)] = value
        else:
            del buf[where % len(buf)]
    return bytes(buf)


def split(data: bytes, points: Sequence[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def act(session: Session, action: str) -> list[bytes]:
    """Do one of ``client_actions``; return the bytes a "flush" took."""
    if action == "text":
        session.send_text("from client")
    elif action == "binary":
        session.send_binary(b"\x00")
    elif action == "ping":
        session.send_ping(b"p")
    elif action == "close":
        session.send_close(4000, "bye")
    elif action == "flush":
        return session.data_to_send()
    return []


def deliver(pair: Pair, chunks: Sequence[bytes], actions: Sequence[str] = ()) -> list[Event]:
    """Feed chunks (the client acting in between), then EOF; check the contract."""
    session = pair.session
    for i, chunk in enumerate(chunks):
        session.receive_data(chunk)
        act(session, actions[i] if i < len(actions) else "none")
    session.receive_eof()
    pair.events()
    events = pair.history
    check_contract(events)
    assert session.state is State.CLOSED
    assert session.data_to_send() == []
    return events


@FUZZ
@given(opts=options, data=st.binary(max_size=600), points=cuts, actions=client_actions)
def test_arbitrary_bytes(opts: dict, data: bytes, points: list[int], actions: list[str]) -> None:
    pair = open_pair(opts)
    deliver(pair, split(data, points), actions)


@FUZZ
@given(opts=options, ops=any_ops, changes=mutations, points=cuts, actions=client_actions)
def test_mutated_frame_streams(
    opts: dict, ops: list[tuple], changes: list, points: list[int], actions: list[str]
) -> None:
    pair = open_pair(opts)
    data, _, _ = server_bytes(pair, ops)
    deliver(pair, split(mutate(data, changes), points), actions)


@FUZZ
@given(compression=st.sampled_from(["deflate", None]), ops=valid_ops, points=cuts)
def test_valid_frame_streams_arrive_intact(
    compression: str | None, ops: list[tuple], points: list[int]
) -> None:
    # With a well-behaved server the outcome is known exactly, however the
    # bytes are cut: a check that the properties above are not vacuous.
    pair = open_pair({"compression": compression, "max_message_size": None})
    data, expected, closed = server_bytes(pair, ops)
    events = deliver(pair, split(data, points))
    messages = [e for e in events if isinstance(e, TextMessage | BinaryMessage)]
    assert messages == expected
    if closed is None:
        assert [type(e) for e in events[-2:]] == [Error, Closed]
        assert events[-1] == Closed(1006, "", False)
    else:
        assert events[-1] == closed
        assert not any(isinstance(e, Error) for e in events)
