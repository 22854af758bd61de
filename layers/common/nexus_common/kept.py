"""Values kept per key for a bounded time.

Reference data a warm function reads on every request (an instrument, a symbol's last trade) is
read at most once per key per ``ttl_seconds``; the bound is the staleness the caller states. An
absent value (None) is never kept, so what appears (a listing, a first trade) counts at once, and
a read that raises keeps nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeptFor(Generic[V]):
    """Per key, the value last read, kept ``ttl_seconds`` (on ``clock``, monotonic seconds)."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._kept: dict[str, tuple[float, V]] = {}  # key -> (kept until, value)

    def get(self, key: str, read: Callable[[], V | None]) -> V | None:
        """The kept value of ``key`` while it is fresh, else ``read()`` (kept unless None)."""
        now = self.clock()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        value = read()
        if value is None:
            self._kept.pop(key, None)
        else:
            self._kept[key] = (now + self.ttl_seconds, value)
        return value
