"""A stream mapping with ``MaximumBatchingWindowInSeconds`` gathers a batch over its window with
spaced reads (4 a second) and invokes once; without a window, each read's records go at once.
The poller runs on a fake clock: its waits move the clock, so nothing depends on real time."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.local import pollers
from nexus.local.pollers import WINDOW_POLL_S, StreamMapping, _Record


class World:
    """A shard that gives one new record per read, a clock moved by the poller's waits, and a
    mapping whose invocations are recorded."""

    def __init__(self, window: float, run_for: float) -> None:
        self.now = 0.0
        self.run_for = run_for
        self.reads: list[float] = []
        self.batches: list[list[str]] = []
        mapping = StreamMapping.__new__(StreamMapping)
        mapping.window = window
        mapping.batch_size = 100
        mapping.starting_position = "TRIM_HORIZON"
        mapping.key = "Fn:Records"
        mapping.stream = self  # type: ignore[assignment]
        mapping.checkpoints = self  # type: ignore[assignment]
        mapping.stop = self  # type: ignore[assignment]
        mapping._deliver = self._deliver  # type: ignore[method-assign]
        self.mapping = mapping
        self.arn = "arn:aws:kinesis:us-east-1:1:stream/s"

    # the shard
    def iterator(self, shard: str, after: str | None, position: str) -> str:
        return "it"

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str]:
        self.reads.append(self.now)
        self.now += 0.001  # a read takes a millisecond
        n = len(self.reads)
        return [_Record(sequence=str(n), arrival=self.now, event={"eventID": f"{{shard}}:{n}"})], iterator

    # checkpoints
    def get(self, key: str) -> str | None:
        return None

    def set(self, key: str, value: str) -> None:
        pass

    # the stop event, on the fake clock
    def is_set(self) -> bool:
        return self.now >= self.run_for

    def wait(self, seconds: float) -> bool:
        self.now += max(seconds, 0.001)
        return self.is_set()

    def _deliver(self, shard: str, batch: list[_Record], sizer: Any = None) -> int:
        self.batches.append([r.sequence for r in batch])
        return len(batch)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[World]:
    worlds: list[World] = []
    monkeypatch.setattr(pollers.time, "monotonic", lambda: worlds[-1].now)
    return worlds


def test_a_window_gathers_spaced_reads_into_one_batch_per_window(clock: list[World]) -> None:
    # GIVEN a mapping with a 1 s window on a shard that always has a new record
    world = World(window=1.0, run_for=3.0)
    clock.append(world)
    # WHEN it polls for 3 s
    world.mapping._run_shard("shardId-0")
    # THEN it read about 4 times a second, and each invocation took a window's records
    assert len(world.reads) <= 3 * (1 / WINDOW_POLL_S) + 3
    assert len(world.batches) <= 3
    assert all(len(batch) >= 4 for batch in world.batches)
    assert [seq for batch in world.batches for seq in batch] == [str(n) for n in range(1, len(world.reads) + 1)]


def test_without_a_window_each_read_is_delivered_at_once(clock: list[World]) -> None:
    # GIVEN a mapping with no window
    world = World(window=0.0, run_for=0.05)
    clock.append(world)
    # WHEN it polls
    world.mapping._run_shard("shardId-0")
    # THEN every read's record was its own invocation, in order
    assert world.batches and all(len(batch) == 1 for batch in world.batches)
    assert [batch[0] for batch in world.batches] == [str(n) for n in range(1, len(world.batches) + 1)]


class IdleShard(World):
    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str]:
        self.reads.append(self.now)
        self.now += 0.001
        return [], iterator


@pytest.mark.parametrize(("window", "slowest"), [(0.0, pollers.IDLE_WAIT_ON_PATH_S), (1.0, WINDOW_POLL_S)])
def test_an_idle_shard_is_polled_less_often_but_a_mapping_on_the_orders_path_stays_quick(
    clock: list[World], window: float, slowest: float
) -> None:
    # GIVEN an idle shard
    world = IdleShard(window=window, run_for=5.0)
    clock.append(world)
    # WHEN its mapping polls for 5 s
    world.mapping._run_shard("shardId-0")
    # THEN the reads back off, never further apart than the mapping's slowest rate
    gaps = [b - a for a, b in zip(world.reads, world.reads[1:], strict=False)]
    assert max(gaps) <= slowest + 0.002
    assert gaps[-1] >= slowest - 0.002
    assert not world.batches
