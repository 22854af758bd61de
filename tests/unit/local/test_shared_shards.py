"""The mappings of one stream read each shard through one shared feed (``SharedShards``): the
embedded AWS answers one read for all of them, and each mapping still gets every record once, in
order, from its own place (its checkpoint, the shard's start, or ``LATEST``)."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError
from helpers import eventually

from nexus.local import pollers
from nexus.local.pollers import SharedShards, _Record


class Shard:
    """A shard in memory with the ``_StreamSource`` protocol: records ``1``, ``2``, ... put by the
    test; iterators are positions; every call is counted."""

    arn = "arn:aws:kinesis:us-east-1:1:stream/s"
    info_key = "KinesisBatchInfo"

    def __init__(self) -> None:
        self.records: list[str] = []
        self.reads = 0
        self.iterators: list[tuple[str | None, str]] = []
        self.closed = False
        self.fail_next_read = False

    def put(self, count: int) -> None:
        start = len(self.records)
        self.records.extend(str(n) for n in range(start + 1, start + count + 1))

    def shards(self) -> list[str]:
        return ["shard-0"]

    def iterator(self, shard: str, after: str | None, starting_position: str) -> str | None:
        self.iterators.append((after, starting_position))
        if after is not None:
            if after not in self.records:
                raise ClientError({"Error": {"Code": "InvalidArgumentException"}}, "GetShardIterator")
            return str(self.records.index(after) + 1)
        return str(len(self.records)) if starting_position == "LATEST" else "0"

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]:
        self.reads += 1
        if self.fail_next_read:
            self.fail_next_read = False
            raise ClientError({"Error": {"Code": "ExpiredIteratorException"}}, "GetRecords")
        start = int(iterator)
        taken = self.records[start : start + limit]
        event = {"eventID": "{shard}:x"}
        out = [_Record(sequence=s, arrival=0.0, event=dict(event)) for s in taken]
        end = start + len(taken)
        return out, None if self.closed and end == len(self.records) else str(end)


@pytest.fixture(autouse=True)
def no_read_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subscriber that finds nothing new reads the shard: the spacing is a rate, not behaviour."""
    monkeypatch.setattr(pollers, "FEED_READ_INTERVAL_S", 0.0)
    monkeypatch.setattr(pollers, "BUSY_READ_INTERVAL_S", 0.0)


def drain(source: object, iterator: str, limit: int = 1000) -> list[str]:
    records, _ = source.read(iterator, limit)  # type: ignore[attr-defined]
    return [r.sequence for r in records]


def test_mappings_of_one_stream_share_each_read_and_each_gets_every_record_in_order() -> None:
    # GIVEN three mappings of one stream reading its shard through one feed
    shard, shared = Shard(), SharedShards()
    views = [shared.share(shard) for _ in range(3)]
    iterators = [v.iterator("shard-0", None, "TRIM_HORIZON") for v in views]
    shard.put(5)
    # WHEN the first reads, then the others
    first = drain(views[0], iterators[0])
    reads_after_first = shard.reads
    others = [drain(v, i) for v, i in zip(views[1:], iterators[1:], strict=True)]
    # THEN one read of the shard served all three, each got 1..5 with its shard in the event id
    assert first == others[0] == others[1] == ["1", "2", "3", "4", "5"]
    assert reads_after_first == 1 and shard.reads == 1
    records, _ = views[1].read(iterators[1], 10)  # nothing new: one more read of the shard, none buffered
    assert records == [] and shard.reads == 2
    shard.put(2)
    assert drain(views[2], iterators[2]) == ["6", "7"]
    assert drain(views[0], iterators[0]) == ["6", "7"] and shard.reads == 3


def test_a_subscriber_takes_at_most_its_limit_and_resumes_where_it_stopped() -> None:
    shard, shared = Shard(), SharedShards()
    view = shared.share(shard)
    iterator = view.iterator("shard-0", None, "TRIM_HORIZON")
    shard.put(7)
    assert drain(view, iterator, limit=3) == ["1", "2", "3"]
    assert drain(view, iterator, limit=3) == ["4", "5", "6"]
    assert drain(view, iterator, limit=3) == ["7"]


def test_a_checkpointed_mapping_skips_what_it_has_done_and_an_older_checkpoint_gets_its_own_feed() -> None:
    # GIVEN a shard of 10 records and mappings with saved checkpoints (a restart)
    shard, shared = Shard(), SharedShards()
    shard.put(10)
    at_6, at_8, at_3 = shared.share(shard), shared.share(shard), shared.share(shard)
    it_6 = at_6.iterator("shard-0", "6", "TRIM_HORIZON")
    it_8 = at_8.iterator("shard-0", "8", "TRIM_HORIZON")  # later than the feed's start: shares it
    it_3 = at_3.iterator("shard-0", "3", "TRIM_HORIZON")  # earlier: a feed of its own
    # THEN each resumes just after its own checkpoint
    assert drain(at_6, it_6) == ["7", "8", "9", "10"]
    assert drain(at_8, it_8) == ["9", "10"]
    assert drain(at_3, it_3) == ["4", "5", "6", "7", "8", "9", "10"]
    # each checkpoint looked up once, and one iterator per feed
    assert shard.iterators == [("6", "TRIM_HORIZON"), ("8", "TRIM_HORIZON"), ("3", "TRIM_HORIZON"),
                               ("6", "TRIM_HORIZON"), ("3", "TRIM_HORIZON")]  # fmt: skip


def test_a_checkpoint_the_shard_does_not_have_is_refused_as_the_mappings_own_iterator_would_be() -> None:
    # GIVEN a shard created again (a new emulator) and a mapping with a checkpoint from before
    shard, shared = Shard(), SharedShards()
    shard.put(3)
    view = shared.share(shard)
    # THEN its iterator is refused, and the mapping starts at its position (StreamMapping._run_shard)
    with pytest.raises(ClientError):
        view.iterator("shard-0", "99", "TRIM_HORIZON")
    iterator = view.iterator("shard-0", None, "TRIM_HORIZON")
    assert drain(view, iterator) == ["1", "2", "3"]


def test_latest_mappings_get_only_what_is_put_after_they_join() -> None:
    shard, shared = Shard(), SharedShards()
    shard.put(4)
    live, horizon = shared.share(shard), shared.share(shard)
    it_live = live.iterator("shard-0", None, "LATEST")
    it_horizon = horizon.iterator("shard-0", None, "TRIM_HORIZON")
    assert drain(live, it_live) == []
    shard.put(2)
    assert drain(live, it_live) == ["5", "6"]
    assert drain(horizon, it_horizon) == ["1", "2", "3", "4", "5", "6"]
    # a LATEST mapping joining later starts from the next record the feed reads
    late = shared.share(shard)
    it_late = late.iterator("shard-0", None, "LATEST")
    shard.put(1)
    assert drain(late, it_late) == ["7"] and drain(live, it_live) == ["7"]


def test_records_all_subscribers_have_read_are_dropped_and_a_late_joiner_cannot_miss_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pollers, "FEED_TRIM_AT", 2)
    shard, shared = Shard(), SharedShards()
    a, b = shared.share(shard), shared.share(shard)
    it_a, it_b = a.iterator("shard-0", None, "TRIM_HORIZON"), b.iterator("shard-0", None, "TRIM_HORIZON")
    shard.put(5)
    assert drain(a, it_a) == ["1", "2", "3", "4", "5"]
    feed = next(iter(shared.feeds_by_id.values()))
    assert len(feed.records) == 5  # b has not read them yet
    assert drain(b, it_b, limit=3) == ["1", "2", "3"]
    assert len(feed.records) == 2 and feed.dropped_through == "3"
    # a mapping from the shard's start cannot join a feed that dropped records: it gets its own
    c = shared.share(shard)
    it_c = c.iterator("shard-0", None, "TRIM_HORIZON")
    assert drain(c, it_c) == ["1", "2", "3", "4", "5"]
    assert drain(b, it_b) == ["4", "5"]


def test_a_failed_read_is_raised_and_the_next_read_starts_after_the_last_record() -> None:
    shard, shared = Shard(), SharedShards()
    view = shared.share(shard)
    iterator = view.iterator("shard-0", None, "TRIM_HORIZON")
    shard.put(2)
    assert drain(view, iterator) == ["1", "2"]
    shard.put(2)
    shard.fail_next_read = True
    with pytest.raises(ClientError):
        view.read(iterator, 10)
    assert drain(view, iterator) == ["3", "4"]
    assert shard.iterators[-1] == ("2", "TRIM_HORIZON")


def test_a_closed_shard_ends_each_subscriber_once_it_has_read_everything() -> None:
    shard, shared = Shard(), SharedShards()
    a, b = shared.share(shard), shared.share(shard)
    it_a, it_b = a.iterator("shard-0", None, "TRIM_HORIZON"), b.iterator("shard-0", None, "TRIM_HORIZON")
    shard.put(3)
    shard.closed = True
    records, next_a = a.read(it_a, 10)
    assert [r.sequence for r in records] == ["1", "2", "3"] and next_a is None
    records, next_b = b.read(it_b, 2)
    assert [r.sequence for r in records] == ["1", "2"] and next_b is not None  # one left for b
    records, next_b = b.read(it_b, 2)
    assert [r.sequence for r in records] == ["3"] and next_b is None


def test_event_ids_name_the_shard() -> None:
    shard, shared = Shard(), SharedShards()
    view = shared.share(shard)
    iterator = view.iterator("shard-0", None, "TRIM_HORIZON")
    shard.put(1)
    records, _ = view.read(iterator, 1)
    assert records[0].event["eventID"] == "shard-0:x"


def test_reads_of_a_shard_are_spaced_whoever_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a feed read at most once per interval, on a clock the test moves
    monkeypatch.setattr(pollers, "FEED_READ_INTERVAL_S", 0.025)
    now = [100.0]
    monkeypatch.setattr(pollers.time, "monotonic", lambda: now[0])
    shard, shared = Shard(), SharedShards()
    views = [shared.share(shard) for _ in range(4)]
    iterators = [v.iterator("shard-0", None, "TRIM_HORIZON") for v in views]
    # WHEN four idle mappings ask within the interval
    for view, iterator in zip(views, iterators, strict=True):
        view.read(iterator, 10)
    # THEN the shard was read once; after the interval, the next ask reads again
    assert shard.reads == 1
    now[0] += 0.025
    shard.put(1)
    assert drain(views[2], iterators[2]) == ["1"] and shard.reads == 2
    assert drain(views[0], iterators[0]) == ["1"] and shard.reads == 2


def test_a_busy_shard_is_read_less_often_and_a_quiet_one_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a feed spaced 25 ms while quiet and 100 ms while busy (20 records a second), on a clock
    # the test moves
    monkeypatch.setattr(pollers, "FEED_READ_INTERVAL_S", 0.025)
    monkeypatch.setattr(pollers, "BUSY_READ_INTERVAL_S", 0.1)
    monkeypatch.setattr(pollers, "BUSY_RECORDS_PER_S", 20)
    now = [100.0]
    monkeypatch.setattr(pollers.time, "monotonic", lambda: now[0])
    shard, shared = Shard(), SharedShards()
    view = shared.share(shard)
    iterator = view.iterator("shard-0", None, "TRIM_HORIZON")

    def ask_after(seconds: float, put: int = 0) -> list[str]:
        now[0] += seconds
        shard.put(put)
        return drain(view, iterator)

    # WHEN records come a few at a time (an idle platform's round trip): read every 25 ms
    assert ask_after(0.0, 2) == ["1", "2"]
    assert ask_after(0.025, 1) == ["3"] and shard.reads == 2
    # ... and once 20 have been read within a second, the next read waits 100 ms
    assert len(ask_after(0.025, 17)) == 17 and shard.reads == 3
    assert ask_after(0.025, 1) == [] and shard.reads == 3
    assert ask_after(0.05) == [] and shard.reads == 3
    assert ask_after(0.025) == ["21"] and shard.reads == 4
    # THEN once the flow has been under the rate for a second, reads are 25 ms apart again
    assert ask_after(1.0, 1) == ["22"] and shard.reads == 5
    assert ask_after(0.025, 1) == ["23"] and shard.reads == 6


class SlowShard(Shard):
    """A shard whose reads wait (as an empty read waits at the embedded AWS) until the test lets
    them answer."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()  # a read has started
        self.answer = threading.Event()  # ... and may answer

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]:
        self.reading.set()
        assert self.answer.wait(10)
        return super().read(iterator, limit)


def test_while_one_mapping_reads_the_shard_the_others_take_what_was_read_and_wait_for_the_rest() -> None:
    # GIVEN three mappings of a shard of 3 records; the first two have read them all, the third none
    shard, shared = SlowShard(), SharedShards()
    views = [shared.share(shard) for _ in range(3)]
    iterators = [v.iterator("shard-0", None, "TRIM_HORIZON") for v in views]
    shard.put(3)
    shard.answer.set()
    assert drain(views[0], iterators[0]) == drain(views[1], iterators[1]) == ["1", "2", "3"]
    shard.answer.clear()
    # WHEN the first reads the shard again (a read that waits for records) ...
    got: dict[str, list[str]] = {}
    first = threading.Thread(target=lambda: got.update(first=drain(views[0], iterators[0])))
    first.start()
    assert shard.reading.wait(10)
    # ... the third takes the records read before, without waiting for that read
    assert drain(views[2], iterators[2]) == ["1", "2", "3"]
    # ... and the second, which has nothing new, waits for the first's read instead of reading
    second = threading.Thread(target=lambda: got.update(second=drain(views[1], iterators[1])))
    second.start()
    (feed,) = shared.feeds_by_id.values()
    eventually(lambda: len(feed.changed._waiters), lambda waiting: waiting == 1)  # type: ignore[attr-defined]
    shard.put(2)  # records are added while the read waits: it answers with them
    shard.answer.set()
    first.join(10)
    second.join(10)
    # THEN both got the new records from the one read
    assert got == {"first": ["4", "5"], "second": ["4", "5"]}
    assert shard.reads == 2
