"""Snapshot cache of market data views in Redis (book, ticker): pure logic, Redis injected.

``SnapshotCache.get(symbol, view, fetch)`` answers a snapshot from Redis, or from ``fetch`` (the
source: DynamoDB) when it must, with:

* **Freshness by tier.** A snapshot is *fresh* for ``fresh_ms`` and may be served *stale* until
  ``max_age_ms``, when Redis drops it (``PX``). Tier 1 (AAPL, GOOGL, MSFT, AMZN, and any hot
  symbol): fresh 50 ms, never served older than 100 ms. Other symbols: fresh 1 s, at most 5 s.
  Ages are measured on Redis's clock (``PTTL``), never across machines' clocks.
* **Jittered TTLs.** Each write scales both windows by a random factor in ``[1 - jitter, 1]``
  (downwards only, so a bound is never exceeded), so that the keys of many symbols written at
  the same instant do not expire together.
* **Stale-while-revalidate.** A stale snapshot is answered at once; one reader (the one that
  takes the refresh lock) fetches the source and writes the new snapshot, the others keep
  answering the stale one meanwhile. If that fetch fails, the stale snapshot is answered.
* **Request coalescing (single flight).** On a miss, readers race for a lock (``SET NX PX``);
  the winner fetches once and writes the snapshot, the others wait for it (polling the key with
  a short back-off) and answer it. A winner that fails releases the lock, and a waiter takes
  over; a waiter that waits longer than ``wait_ms`` fetches for itself rather than fail.
* **Hot-symbol promotion.** Reads are counted per symbol in a fixed window (``INCR`` on a key
  named after the window); a symbol read ``hot_reads`` times in one window gets tier-1 treatment
  for its next writes. A symbol can also be pinned hot until a given time (``pin``): the
  pre-open warm-up pins the previous session's most traded symbols.

A read is one pipelined round trip (GET, PTTL, INCR, EXPIRE, EXISTS pin) on a hit.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import redis

TIER1_SYMBOLS: Final = frozenset({"AAPL", "GOOGL", "MSFT", "AMZN"})

Outcome = Literal["hit", "stale", "fetched", "coalesced", "fallback", "bypass"]

_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Freshness:
    fresh_ms: int
    max_age_ms: int


@dataclass(frozen=True)
class CacheConfig:
    tier1_symbols: frozenset[str] = TIER1_SYMBOLS
    tier1: Freshness = Freshness(fresh_ms=50, max_age_ms=100)
    standard: Freshness = Freshness(fresh_ms=1_000, max_age_ms=5_000)
    jitter: float = 0.2
    hot_reads: int = 200  # reads in one window that promote a symbol to tier 1
    hot_window_s: int = 10
    lock_ms: int = 2_000  # how long a fetch may hold the lock before another reader may take over
    wait_ms: int = 3_000  # how long a waiter waits for the lock holder before fetching itself
    poll_ms: tuple[float, float] = (1.0, 10.0)  # waiter back-off: first and largest sleep
    prefix: str = "nexus:md:"


@dataclass
class CacheRead:
    value: dict[str, Any]
    outcome: Outcome
    tier1: bool
    age_ms: int = 0


@dataclass
class CacheStats:
    """What the cache did, per outcome (this process only)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


class SnapshotCache:
    def __init__(
        self,
        client: redis.Redis,
        config: CacheConfig | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.config = config or CacheConfig()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.monotonic = monotonic
        self.wall = wall
        self.stats = CacheStats()
        self._release = client.register_script(_RELEASE)

    # -- keys ------------------------------------------------------------------------------

    def key(self, symbol: str, view: str) -> str:
        return f"{self.config.prefix}snap:{symbol}:{view}"

    def _lock_key(self, key: str) -> str:
        return f"{key}:lock"

    def _hot_key(self, symbol: str) -> str:
        window = int(self.wall() // self.config.hot_window_s)
        return f"{self.config.prefix}hot:{symbol}:{window}"

    def _pin_key(self, symbol: str) -> str:
        return f"{self.config.prefix}pin:{symbol}"

    # -- policy ----------------------------------------------------------------------------

    def is_tier1(self, symbol: str, reads: int, pinned: bool) -> bool:
        return symbol in self.config.tier1_symbols or pinned or reads >= self.config.hot_reads

    def freshness(self, tier1: bool) -> Freshness:
        """The jittered windows of one write (each scaled by a factor in [1 - jitter, 1])."""
        base = self.config.tier1 if tier1 else self.config.standard
        factor = 1.0 - self.config.jitter * self.rng.random()
        fresh = max(1, int(base.fresh_ms * factor))
        return Freshness(fresh_ms=fresh, max_age_ms=max(fresh + 1, int(base.max_age_ms * factor)))

    # -- reads -----------------------------------------------------------------------------

    def get(self, symbol: str, view: str, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
        """The snapshot ``view`` of ``symbol``: from Redis when fresh enough, else from ``fetch``
        (at most one caller fetches at a time; see the module doc)."""
        key = self.key(symbol, view)
        hot = self._hot_key(symbol)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        pipe.incr(hot)
        pipe.expire(hot, self.config.hot_window_s * 2)
        pipe.exists(self._pin_key(symbol))
        raw, pttl, reads, _, pinned = pipe.execute()
        tier1 = self.is_tier1(symbol, int(reads), bool(pinned))
        entry = _decode(raw)
        if entry is not None and int(pttl) > 0:
            age = int(entry["px"]) - int(pttl)
            if age <= int(entry["fresh"]):
                return self._done(CacheRead(entry["v"], "hit", tier1, age))
            # Stale: one reader revalidates, the rest answer the stale snapshot meanwhile.
            token = self._try_lock(key)
            if token is None:
                return self._done(CacheRead(entry["v"], "stale", tier1, age))
            try:
                return self._done(self._fetch_locked(key, token, tier1, fetch))
            except redis.RedisError:
                raise
            except Exception:  # the source failed: the stale snapshot is still within its bound
                return self._done(CacheRead(entry["v"], "stale", tier1, age))
        return self._done(self._miss(key, tier1, fetch))

    def _done(self, read: CacheRead) -> CacheRead:
        self.stats.add(read.outcome)
        return read

    def _miss(self, key: str, tier1: bool, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
        deadline = self.monotonic() + self.config.wait_ms / 1000
        pause, longest = self.config.poll_ms
        while True:
            token = self._try_lock(key)
            if token is not None:
                # Another leader may have written it between our GET and our lock.
                entry = _decode(self.redis.get(key))
                if entry is not None:
                    self._unlock(key, token)
                    return CacheRead(entry["v"], "coalesced", tier1)
                return self._fetch_locked(key, token, tier1, fetch)
            # Someone is fetching: wait for the snapshot (or for the lock to go, then race again).
            while True:
                self.sleep(pause / 1000)
                pause = min(pause * 2, longest)
                pipe = self.redis.pipeline(transaction=False)
                pipe.get(key)
                pipe.exists(self._lock_key(key))
                raw, locked = pipe.execute()
                entry = _decode(raw)
                if entry is not None:
                    return CacheRead(entry["v"], "coalesced", tier1)
                if self.monotonic() > deadline:
                    return CacheRead(fetch(), "fallback", tier1)
                if not locked:
                    break

    def _try_lock(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        if self.redis.set(self._lock_key(key), token, nx=True, px=self.config.lock_ms):
            return token
        return None

    def _unlock(self, key: str, token: str) -> None:
        self._release(keys=[self._lock_key(key)], args=[token])

    def _fetch_locked(
        self, key: str, token: str, tier1: bool, fetch: Callable[[], dict[str, Any]]
    ) -> CacheRead:
        try:
            value = fetch()
            self.put(key, value, tier1)
        finally:
            self._unlock(key, token)
        return CacheRead(value, "fetched", tier1)

    # -- writes ----------------------------------------------------------------------------

    def put(self, key: str, value: dict[str, Any], tier1: bool) -> Freshness:
        windows = self.freshness(tier1)
        entry = {"v": value, "px": windows.max_age_ms, "fresh": windows.fresh_ms}
        self.redis.set(key, json.dumps(entry, separators=(",", ":")), px=windows.max_age_ms)
        return windows

    def warm(self, symbol: str, view: str, value: dict[str, Any]) -> Freshness:
        """Write a snapshot ahead of demand (the pre-open warm-up)."""
        return self.put(self.key(symbol, view), value, symbol in self.config.tier1_symbols)

    def pin(self, symbol: str, seconds: int) -> None:
        """Treat ``symbol`` as tier 1 for ``seconds`` (hot-symbol promotion ahead of demand)."""
        self.redis.set(self._pin_key(symbol), b"1", ex=max(1, seconds))


def _decode(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    entry = json.loads(raw)
    return entry if isinstance(entry, dict) and "v" in entry else None
