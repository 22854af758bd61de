# cython: language_level=3, annotation_typing=False
"""The window of seen order ids: what makes a resent ``new`` / ``oco`` a no-op.

The engine remembers the ids of new orders, OCO groups and legs in two generations
(``SeenIds``): ids go into the current one; when it holds ``limit`` ids
(``EngineConfig.dedup_window``) it becomes the previous one and the generation before is
forgotten. A resent id is therefore recognised while fewer than ``limit`` other new ids came in
since, and forgotten once ``2 * limit - 1`` have (docs/matching-engine.md, "Idempotency").

On the hot path (every new order asks it), so compiled with the book and the engine: ``seen.pxd``
types both classes, and the engine's fast path reads their fields as C struct members.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

SEEN_SHARDS: Final = 16
_SEEN_MASK: Final = SEEN_SHARDS - 1


class IdSet:
    """A set of order ids in ``SEEN_SHARDS`` sets picked by the id's hash: one generation of the
    window of seen ids. Each generation grows from empty to ``dedup_window`` ids, and a set
    rebuilds its whole table each time it grows (over a millisecond at tens of thousands of
    ids); a shard's table is a 16th of it."""

    __slots__ = ("shards", "size")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.shards: list[set[str]] = [set() for _ in range(SEEN_SHARDS)]
        self.size = 0
        for order_id in ids:
            self.add(order_id)

    def contains(self, order_id: str) -> bool:
        return order_id in self.shards[hash(order_id) & _SEEN_MASK]

    def add(self, order_id: str) -> None:
        shard = self.shards[hash(order_id) & _SEEN_MASK]
        before = len(shard)
        shard.add(order_id)
        self.size += len(shard) - before

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.shards[hash(order_id) & _SEEN_MASK]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        for shard in self.shards:
            yield from shard


class SeenIds:
    """The two generations of seen ids (``previous``, ``current``) and the generation size."""

    __slots__ = ("current", "limit", "previous")

    def __init__(self, limit: int, previous: Iterable[str] = (), current: Iterable[str] = ()) -> None:
        self.limit = limit
        self.previous = IdSet(previous)
        self.current = IdSet(current)

    def contains(self, order_id: str) -> bool:
        return self.current.contains(order_id) or self.previous.contains(order_id)

    def add(self, order_id: str) -> bool:
        """Remember an id; True when that filled the current generation and a new one began."""
        current = self.current
        current.add(order_id)
        if current.size >= self.limit:
            self.rotate()
            return True
        return False

    def rotate(self) -> None:
        """Start a new generation, forgetting the oldest."""
        self.previous = self.current
        self.current = IdSet()


__all__ = ["SEEN_SHARDS", "IdSet", "SeenIds"]
