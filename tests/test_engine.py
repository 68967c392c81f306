"""The adapter around the wrapped engine: what wsloop changes in its behaviour."""

from __future__ import annotations

import pytest
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

from sansio_helpers import TEXT, Pair, messages
from wsloop import BinaryMessage, State, TextMessage


def deflate_pair(**server_options: bool) -> Pair:
    pair = Pair(track=False)
    pair.server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory(**server_options)], max_size=None
    )
    pair.open()
    assert pair.session.state is State.OPEN
    assert pair.session.extensions == ("permessage-deflate",)
    return pair


def extension(pair: Pair) -> object:
    [ext] = pair.session._engine._proto.extensions
    return ext


def test_an_idle_deflate_connection_holds_no_zlib_object() -> None:
    ext = extension(deflate_pair())
    assert "decoder" not in vars(ext)
    assert "encoder" not in vars(ext)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"server_no_context_takeover": True},
        {"client_no_context_takeover": True},
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        {"server_max_window_bits": 9, "client_max_window_bits": 10},
    ],
)
def test_zlib_objects_are_made_on_first_use_with_the_negotiated_settings(
    options: dict[str, bool],
) -> None:
    pair = deflate_pair(**options)
    ext = extension(pair)
    texts = [("state of the game " * 40) + str(i) for i in range(4)]
    for i, text in enumerate(texts):
        # The server's messages repeat each other: with context takeover,
        # the later ones refer back to the earlier ones' bytes.
        pair.server.send_text(text.encode())
        pair.server_to_client()
        assert pair.events() == [TextMessage(text)]
        assert "encoder" not in vars(ext)  # nothing sent yet: no compressor
        if i == 0:
            decoder = vars(ext).get("decoder")
        elif not options.get("server_no_context_takeover"):
            assert vars(ext)["decoder"] is decoder  # one context for every message
    for text in texts:
        pair.session.send_binary(text.encode())
        chunks = pair.client_to_server()
        assert chunks[0][0] == 0x80 | 0x40 | 0x2  # FIN, RSV1: compressed
        assert messages(pair.server.events_received()) == [(0x2, text.encode())]  # type: ignore[arg-type]
    assert pair.session.state is State.OPEN
    assert pair.session.error is None


def test_a_connection_that_only_receives_never_makes_a_compressor() -> None:
    pair = deflate_pair()
    pair.server.send_binary(b"\x00" * 10_000)
    pair.server_to_client()
    assert pair.events() == [BinaryMessage(b"\x00" * 10_000)]
    ext = extension(pair)
    assert "encoder" not in vars(ext)
    assert "decoder" in vars(ext)
    pair.session.send_text("x")
    [chunk] = pair.client_to_server()
    assert chunk[0] == 0x80 | 0x40 | TEXT
    assert "encoder" in vars(ext)
