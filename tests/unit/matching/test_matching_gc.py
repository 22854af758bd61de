"""The engine process's garbage-collection policy (``runner.settle_heap``)."""

from __future__ import annotations

import gc
import weakref

from nexus_matching.runner import settle_heap


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def test_settle_heap_reclaims_cycles_then_freezes_the_survivors() -> None:
    # GIVEN a reference cycle that is garbage, frozen by an earlier settle, and a live object
    cycle = Node()
    cycle.peer = cycle
    gone = weakref.ref(cycle)
    settle_heap()
    del cycle
    alive = Node()
    try:
        assert gone() is not None, "a frozen cycle is not collected by ordinary collections"
        gc.collect()
        assert gone() is not None
        # WHEN the heap is settled again (after a snapshot)
        settle_heap()
        # THEN the frozen garbage is reclaimed, and what is alive now sits in the permanent
        # generation, out of every automatic collection's scan
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())
    finally:
        gc.unfreeze()
