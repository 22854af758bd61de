"""Rate limits: token buckets in Redis, taken atomically by one Lua script.

A bucket holds at most ``burst`` tokens and gains ``rate`` tokens per second; a request takes one
token from *every* bucket that applies to it (per user, per source IP, and the stricter
order-entry buckets per user and per account for ``POST``/``DELETE /v1/orders``), or from none: the script checks
all buckets and only then takes, so a refused request costs nothing. Redis' own clock (``TIME``)
is used, so every function instance sees the same time. Buckets expire once full again.

    limiter = RateLimiter(redis_client())
    wait = limiter.take([Bucket("key:nxk_AbCd1234", Limit(20, 40)), Bucket("ip:203.0.113.9", Limit(50, 100))])
    if wait > 0: answer 429 with Retry-After: ceil(wait)

The edge authorizer takes the tokens of authenticated requests and passes the verdict in its
context (``retry_after``); ``nexus_common.http`` answers ``429`` with ``Retry-After`` before the
view runs. Public routes (login, register, refresh) take their own buckets in their handler.

**Redis down.** A ``CircuitBreaker`` (its clock injected) guards the limiter: after
``failures`` Redis errors in a row it opens, and for ``reset_after`` seconds ``take`` raises
``LimiterUnavailable`` at once, without a connection attempt, so no request waits out the client's
2 s socket timeouts; then one request probes Redis (half-open): success closes the breaker,
failure opens it again. What a route does with ``LimiterUnavailable`` is its choice: order entry
fails closed (``503 rate_limiter_unavailable`` with ``Retry-After``), reads and the other routes
fail open (served without limits, logged).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from redis.exceptions import RedisError

from nexus_common.errors import NexusError, Unavailable

KEY_PREFIX: Final = "nexus:rl:"

# KEYS: bucket keys. ARGV: n, then per bucket: rate (tokens/s), burst. Returns
# {allowed (1/0), retry_after_ms}. State per bucket: hash {tokens, ts_us}.
BUCKET_SCRIPT: Final = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local n = tonumber(ARGV[1])
local levels = {}
local wait_ms = 0
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = burst
    ts = now_us
  end
  local elapsed = math.max(0, now_us - ts) / 1000000
  tokens = math.min(burst, tokens + elapsed * rate)
  levels[i] = tokens
  if tokens < 1 then
    local need_ms = math.ceil((1 - tokens) / rate * 1000)
    if need_ms > wait_ms then wait_ms = need_ms end
  end
end
if wait_ms > 0 then
  return {0, wait_ms}
end
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local left = levels[i] - 1
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now_us))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - left) / rate * 1000) + 1000)
end
return {1, 0}
"""


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a limit needs rate > 0 and burst >= 1")

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"20/40"`` = 20 per second, bursts of 40."""
        rate, _, burst = text.partition("/")
        return cls(float(Decimal(rate)), int(burst or rate))


@dataclass(frozen=True)
class Bucket:
    name: str  # e.g. "key:nxk_AbCd1234", "user:usr_...", "ip:203.0.113.9", "orders:usr_..."
    limit: Limit


class RateLimited(NexusError):
    """429 ``rate_limited``; ``retry_after`` whole seconds go into the ``Retry-After`` header."""

    status = 429
    default_code = "rate_limited"

    def __init__(self, retry_after: int, code: str = "rate_limited", message: str = "too many requests") -> None:
        super().__init__(code, message)
        self.retry_after = max(1, int(retry_after))


class LimiterUnavailable(Unavailable):
    """503 ``rate_limiter_unavailable``: Redis cannot be asked; ``retry_after`` whole seconds."""

    default_code = "rate_limiter_unavailable"

    def __init__(self, retry_after: float, message: str = "rate limits cannot be checked; try again shortly") -> None:
        super().__init__("rate_limiter_unavailable", message)
        self.retry_after = max(1, math.ceil(retry_after))


class CircuitBreaker:
    """Closed (calls go through) -> open after ``failures`` errors in a row (calls refused at
    once) -> half-open after ``reset_after`` seconds (one probe call) -> closed on its success,
    open again on its failure. ``clock`` is monotonic seconds (injected in tests). Thread-safe."""

    CLOSED: Final = "closed"
    OPEN: Final = "open"
    HALF_OPEN: Final = "half_open"

    def __init__(
        self, failures: int = 2, reset_after: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset_after <= 0:
            raise ValueError("a breaker needs failures >= 1 and reset_after > 0")
        self.failures = failures
        self.reset_after = reset_after
        self._clock = clock
        self._lock = threading.Lock()
        self._state: str = self.CLOSED
        self._errors = 0
        self._opened_at = 0.0

    @property
    def state(self) -> str:
        return self._state

    def before_call(self) -> float:
        """0 when a call may go ahead (closed, or this is the half-open probe), else the seconds
        until the next probe."""
        with self._lock:
            if self._state == self.CLOSED:
                return 0.0
            left = self._opened_at + self.reset_after - self._clock()
            if self._state == self.OPEN and left <= 0:
                self._state = self.HALF_OPEN  # this caller probes; the others keep being refused
                return 0.0
            return max(left, 1.0) if self._state == self.OPEN else 1.0

    def succeeded(self) -> None:
        with self._lock:
            self._state, self._errors = self.CLOSED, 0

    def failed(self) -> None:
        with self._lock:
            self._errors += 1
            if self._state == self.HALF_OPEN or self._errors >= self.failures:
                self._state, self._opened_at = self.OPEN, self._clock()


class RateLimiter:
    def __init__(self, redis: Any, prefix: str = KEY_PREFIX, breaker: CircuitBreaker | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(BUCKET_SCRIPT)
        self.breaker = breaker or CircuitBreaker()

    def take(self, buckets: Sequence[Bucket]) -> float:
        """Take one token from every bucket, or none; 0 when allowed, else seconds to wait.
        ``LimiterUnavailable`` when Redis fails, or at once while the breaker is open."""
        if not buckets:
            return 0.0
        wait = self.breaker.before_call()
        if wait > 0:
            raise LimiterUnavailable(wait)
        keys = [self._prefix + bucket.name for bucket in buckets]
        args: list[Any] = [len(buckets)]
        for bucket in buckets:
            args.extend([repr(bucket.limit.rate), bucket.limit.burst])
        try:
            allowed, wait_ms = self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self.breaker.failed()
            raise LimiterUnavailable(self.breaker.reset_after) from exc
        self.breaker.succeeded()
        return 0.0 if int(allowed) == 1 else int(wait_ms) / 1000.0

    def check(self, buckets: Sequence[Bucket]) -> None:
        """``take``, raising ``RateLimited`` when refused."""
        wait = self.take(buckets)
        if wait > 0:
            raise RateLimited(math.ceil(wait))
