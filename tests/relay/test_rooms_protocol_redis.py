"""The room protocol tests of ``test_rooms`` again, every relay on a real redis-server.

The same raw clients, the same assertions: a room kept in Redis behaves as a
room kept in one process. (Left out: the tests that read the process's room
core, and echo mode, which cannot use Redis.)
"""

from __future__ import annotations

import pytest
import test_rooms as single
from test_rooms import *  # noqa: F403  (the tests, collected again here)
from test_rooms import relay  # noqa: F401  (the fixture)

from wsloop.relay import serve

NOT_HERE = {
    "test_history_is_bounded_by_count_and_by_bytes": "reads the room core of one process",
    "test_an_echo_relay_does_not_select_the_room_protocol": "echo mode cannot use Redis",
}


@pytest.fixture(autouse=True)
def over_redis(request, redis_server, monkeypatch):
    why = NOT_HERE.get(request.node.originalname)
    if why is not None:
        pytest.skip(why)

    def serve_over_redis(*args, **options):
        return serve(*args, redis_url=redis_server.url, **options)

    monkeypatch.setattr(single, "serve", serve_over_redis)


def test_these_relays_do_keep_their_rooms_in_redis(redis_server):
    import redis

    with single.serve() as running:  # the serve of test_rooms, as patched above
        assert running.relay.redis_url == redis_server.url
        raw = single.Raw(f"{running.url}/room/r")
        try:
            raw.join("ann")
        finally:
            raw.ws.close()
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.hlen("wsloop:room:/room/r:seats") == 1  # dropped, in its grace
    finally:
        client.close()
