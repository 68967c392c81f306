"""Integrity under load: thousands of messages through real echo servers, byte-exact.

Each test runs for every driver adapter of conftest.py and both echo servers
(the ``websockets`` server and the npm ``ws`` server). Messages are mixed text
and binary, of random sizes up to 3 MiB, drawn from a seeded generator so that
a failure can be replayed. Only a digest of each message is kept on either
side: the comparison is of (kind, length, SHA-256) lists, which checks that
everything arrived, in order, byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import TYPE_CHECKING

import pytest

from servers import WAIT, WebsocketsServer, unique_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Client, DriverAdapter
    from servers import NodeServer
    from wsloop import BinaryMessage, TextMessage

    MakeClient = Callable[..., Client]
    EchoServer = WebsocketsServer | NodeServer

MiB = 2**20

SEED = 6
"""The seed of every message plan (issue 6)."""

Digest = tuple[str, int, bytes]


def digest(message: str | bytes) -> Digest:
    """What is compared of a message: its kind, its length in bytes, its SHA-256."""
    if isinstance(message, str):
        data = message.encode()
        return "text", len(data), hashlib.sha256(data).digest()
    return "binary", len(message), hashlib.sha256(message).digest()


@functools.cache
def text_pool() -> str:
    """256 Ki characters of 1- to 4-byte UTF-8, to cut text messages from."""
    rng = random.Random(SEED)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,;!?\n éüßçñ €✓→ 漢字かな 😀🎮🚀"
    return "".join(rng.choices(alphabet, k=256 * 1024))


def messages(rng: random.Random, count: int, largest: int) -> Iterator[str | bytes]:
    """``count`` messages, half text, half binary, most small, a few up to ``largest``.

    About 94 % are at most 2 KiB, 5.5 % up to 128 KiB and 0.5 % up to ``largest``
    bytes (characters for text). The sizes where the frame header changes
    come first.
    """
    pool = text_pool()
    edges = [0, 1, 125, 126, 127, 65535, 65536, 65537]
    for i in range(count):
        if i < len(edges):
            size = edges[i]
        else:
            roll = rng.random()
            if roll < 0.94:
                size = rng.randint(0, 2048)
            elif roll < 0.995:
                size = rng.randint(2049, 128 * 1024)
            else:
                size = rng.randint(128 * 1024 + 1, largest)
        if rng.random() < 0.5:
            start = rng.randrange(len(pool))
            repeat = (start + size) // len(pool) + 1
            yield (
                (pool * repeat)[start : start + size] if repeat > 1 else pool[start : start + size]
            )
        else:
            yield rng.randbytes(size)


class Tally:
    """The digests of what the client received, in order; the messages are dropped."""

    def __init__(self, client: Client) -> None:
        self.digests: list[Digest] = []
        client.ws.on_text_message = self.on_text_message
        client.ws.on_binary_message = self.on_binary_message

    def on_text_message(self, event: TextMessage) -> None:
        self.digests.append(digest(event.text))

    def on_binary_message(self, event: BinaryMessage) -> None:
        self.digests.append(digest(event.data))

    def __len__(self) -> int:
        return len(self.digests)


def assert_same(sent: list[Digest], received: list[Digest]) -> None:
    """Everything arrived, in order, byte-exact; say where it first went wrong."""
    for index, (want, got) in enumerate(zip(sent, received, strict=False)):
        assert got == want, f"message {index}: sent {want[:2]}, received {got[:2]}"
    assert len(received) == len(sent), f"{len(received)} of {len(sent)} messages came back"


def send(client: Client, message: str | bytes) -> None:
    if isinstance(message, str):
        accepted = client.ws.send_text(message)
    else:
        accepted = client.ws.send_binary(message)
    assert accepted, f"a {len(message)}-byte message was refused"


def close_cleanly(client: Client) -> None:
    client.ws.close()
    closed = client.wait_closed()
    assert client.kinds() == ["Opened", "Closed"]  # messages went to the Tally, no error
    assert (closed.code, closed.was_clean) == (1000, True)


def open_echo(
    make_client: MakeClient, echo_server: EchoServer, compression: str | None
) -> tuple[Client, Tally]:
    """A client open to the echo server, no size limits, with the tally of what comes back."""
    client = make_client(
        compression=compression, max_message_size=None, max_buffered_amount=256 * MiB
    )
    tally = Tally(client)
    client.connect(echo_server.url(unique_path("quiet")))
    opened = client.wait_open()
    assert opened.extensions == (() if compression is None else ("permessage-deflate",))
    return client, tally


@pytest.mark.parametrize(
    ("compression", "count", "largest"),
    [
        pytest.param(None, 2000, 3 * MiB, id="plain"),
        # Compressed: fewer and smaller messages, deflate costs CPU on both sides.
        pytest.param("deflate", 500, 256 * 1024, id="deflate"),
    ],
)
def test_mixed_messages_in_bursts_come_back_intact(
    make_client: MakeClient,
    echo_server: EchoServer,
    compression: str | None,
    count: int,
    largest: int,
) -> None:
    rng = random.Random(SEED)
    client, tally = open_echo(make_client, echo_server, compression)
    sent: list[Digest] = []
    plan = messages(rng, count, largest)
    while len(sent) < count:
        for message in [m for _, m in zip(range(rng.randint(1, 100)), plan, strict=False)]:
            send(client, message)
            sent.append(digest(message))
        # Let the echoes catch up to a random distance: up to 300 in flight.
        window = rng.randint(0, 300)
        client.pump(lambda w=window: len(sent) - len(tally) <= w, what="the echoes")
    client.pump(lambda: len(tally) >= count, what=f"{count} echoes")
    assert_same(sent, tally.digests)
    assert sum(size for _, size, _ in sent) > (16 * MiB if compression is None else 2 * MiB)
    close_cleanly(client)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_long_non_ascii_texts_come_back_intact(
    make_client: MakeClient, echo_server: EchoServer, compression: str | None
) -> None:
    # Several MiB each, encoded a slice of characters at a time as they are
    # sent (issue 12): 2-, 3- and 4-byte characters fall on every slice
    # boundary, and the server rebuilds the message from the fragments.
    texts = [
        "é" * (3 * MiB),  # 6 MiB in UTF-8, one script: the count is exact
        ("aé✓🎮é✓🎮" * MiB)[: 5 * MiB // 2 + 3],  # runs of 7: every width ends a slice
        "x" * (MiB // 2) + "漢字" * MiB,  # ASCII first, then 3-byte characters
        text_pool() * 6,  # random 1- to 4-byte characters, 1.5 Mi of them
    ]
    client, tally = open_echo(make_client, echo_server, compression)
    for text in texts:
        send(client, text)
    client.pump(lambda: len(tally) >= len(texts), what="the echoes of the long texts")
    assert_same([digest(text) for text in texts], tally.digests)
    assert client.ws.buffered_amount == 0
    close_cleanly(client)


def test_no_deadlock_when_both_directions_are_full(
    adapter: DriverAdapter, make_client: MakeClient, echo_server: EchoServer
) -> None:
    rng = random.Random(SEED + 1)
    # 24 MiB in one go, no poll() in between: the echoes fill the way back,
    # the server stops reading, and the rest waits in the client's buffer.
    burst: list[str | bytes] = []
    for _ in range(96):
        burst.append(rng.randbytes(256 * 1024 - rng.randrange(1024)))
        burst.extend(text_pool()[i : i + 100] for i in range(0, 1000, 100))
    client = make_client(compression=None, max_queue=16, max_buffered_amount=64 * MiB)
    tally = Tally(client)
    client.connect(echo_server.url(unique_path("quiet")))
    client.wait_open()
    sent = []
    for message in burst:
        send(client, message)
        sent.append(digest(message))
    if adapter.io_in_poll and isinstance(echo_server, WebsocketsServer):
        # Nothing is read outside poll(), and this server pushes back.
        assert client.ws.buffered_amount > 4 * MiB
    client.pump(lambda: len(tally) >= len(burst), timeout=WAIT, what="the echoes of the burst")
    assert_same(sent, tally.digests)
    assert client.ws.buffered_amount == 0
    close_cleanly(client)
