"""Rate limits while Redis is down, against a real redis-server stopped and started again: the
circuit breaker (its clock injected) refuses at once while open and closes after a half-open
probe; order entry fails closed (503 with Retry-After), reads and logins fail open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import Edge, register_and_login
from nexus_auth import api
from nexus_common.ratelimit import Bucket, CircuitBreaker, Limit, LimiterUnavailable, RateLimiter

from nexus.local.redis_server import RedisServer


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a loopback port that a test stops and restarts."""
    server = RedisServer(workdir=tmp_path)
    server.start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


BUCKET = [Bucket("user:usr_breaker", Limit(100, 100))]


def test_the_breaker_opens_when_redis_stops_and_closes_after_a_probe_when_it_returns(
    redis_process: RedisServer,
) -> None:
    # GIVEN a limiter on a live Redis, its breaker opening after 2 failures for 5 s
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_after=5.0, clock=clock)
    limiter = RateLimiter(redis.Redis.from_url(redis_process.url, socket_timeout=2, socket_connect_timeout=2),
                          breaker=breaker)
    assert limiter.take(BUCKET) == 0.0
    # WHEN Redis stops
    redis_process.stop()
    # THEN the first two requests fail (503 material) and the breaker opens
    for _ in range(2):
        with pytest.raises(LimiterUnavailable):
            limiter.take(BUCKET)
    assert breaker.state == "open"
    # AND WHEN Redis is back but the breaker's time has not come, requests are still refused at
    # once with a Retry-After of the time left: Redis is not even asked
    redis_process.start()
    clock.now += 2.0
    with pytest.raises(LimiterUnavailable) as refused:
        limiter.take(BUCKET)
    assert refused.value.status == 503 and refused.value.retry_after == 3
    assert breaker.state == "open"
    # AND once reset_after has passed, one probe goes through and closes the breaker
    clock.now += 3.0
    assert limiter.take(BUCKET) == 0.0
    assert breaker.state == "closed"
    assert limiter.take(BUCKET) == 0.0


def test_a_failed_probe_opens_the_breaker_again(redis_process: RedisServer) -> None:
    # GIVEN an open breaker (Redis stopped)
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_after=5.0, clock=clock)
    limiter = RateLimiter(redis.Redis.from_url(redis_process.url, socket_timeout=2), breaker=breaker)
    redis_process.stop()
    with pytest.raises(LimiterUnavailable):
        limiter.take(BUCKET)
    assert breaker.state == "open"
    # WHEN the probe time comes while Redis is still down
    clock.now += 5.0
    with pytest.raises(LimiterUnavailable):
        limiter.take(BUCKET)
    # THEN the breaker is open again, for another full period
    assert breaker.state == "open"
    clock.now += 4.0
    with pytest.raises(LimiterUnavailable) as refused:
        limiter.take(BUCKET)
    assert refused.value.retry_after == 1


def test_order_entry_fails_closed_and_reads_fail_open_while_redis_is_down(
    edge: Edge, redis_process: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_common.redis_store import reset_redis_client
    from nexus_common.settings import reset_lazy
    from nexus_orders import api as orders_api

    # GIVEN the platform's Redis is the stoppable one, and a logged-in user
    monkeypatch.setenv("REDIS_URL", redis_process.url)
    reset_redis_client()
    reset_lazy()
    session = register_and_login(edge, "redisdown@example.com")
    token = session["access_token"]
    # WHEN Redis stops
    redis_process.stop()
    # THEN order entry answers 503 rate_limiter_unavailable with Retry-After, before the view runs
    for _ in range(3):
        refused = edge.call(orders_api.app, "POST", "/v1/orders", credential=token,
                            body={"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "price": "1"})
        assert refused.status == 503, refused.body
        assert refused.body["error"]["code"] == "rate_limiter_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
    # AND reads are served without limits, AND a login still works (the lockout bounds guessing)
    assert edge.call(api.app, "GET", "/v1/users/me", credential=token).status == 200
    login = edge.call(api.app, "POST", "/v1/auth/login", public=True,
                      body={"email": "redisdown@example.com", "password": "correct horse battery staple"})
    assert login.status == 200
    # AND a registration fails closed
    register: Any = edge.call(api.app, "POST", "/v1/auth/register", public=True,
                              body={"email": "new@example.com", "password": "correct horse battery staple"})
    assert register.status == 503 and "Retry-After" in register.headers
