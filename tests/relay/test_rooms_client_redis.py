"""The ``wsloop.Room`` tests of ``test_rooms_client`` again, every relay on a real redis-server.

Every trigger, resume through the cutting proxy, gaps, rejoin past the grace
period, kicks and the three members x 1000 messages with random faults: the
same assertions hold when the room lives in Redis.
"""

from __future__ import annotations

import pytest
import test_rooms_client as single
from test_rooms_client import *  # noqa: F403  (the tests and fixtures, collected again here)

from wsloop.relay import serve


@pytest.fixture(autouse=True)
def over_redis(redis_server, monkeypatch):
    def serve_over_redis(*args, **options):
        return serve(*args, redis_url=redis_server.url, **options)

    monkeypatch.setattr(single, "serve", serve_over_redis)
