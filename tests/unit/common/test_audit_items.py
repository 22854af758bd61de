"""audit_items: a record item's entries, and a time range read from the ``by-day`` index in exact
(ts, aggregate, entry number) order, whatever runs the records hold and wherever a page ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_common.audit_items import DAY_SHARDS, GROUP_SPAN, MAX_GROUP, TimeKey, by_time, day_key, expand, time_key
from nexus_common.events import iso

MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)


def _item(aggregate: str, seq: int, first: int, entries: list[datetime], legacy: bool = False) -> dict[str, Any]:
    def fields(n: int, ts: datetime) -> dict[str, Any]:
        return {"event_id": f"{aggregate}-{n}", "kind": "k", "ts": iso(ts), "source": "s", "actor": "a",
                "links": [], "details": {}}  # fmt: skip

    item = {"aggregate": aggregate, "seq": seq, "aggregate_type": "account", "aggregate_id": aggregate,
            "day": entries[0].date().isoformat() if legacy else day_key(entries[0].date().isoformat(), aggregate),
            "recorded_at": iso(MIDNIGHT), "marks": {},
            **fields(first, entries[0])}  # fmt: skip
    if first != seq:
        item["first"] = first
    if len(entries) > 1:
        item["more"] = [fields(first + i, ts) for i, ts in enumerate(entries[1:], 1)]
    return item


def test_an_item_expands_to_its_entries_numbered_on_from_its_first() -> None:
    item = _item("account#a", 3, 7, [MIDNIGHT, MIDNIGHT + timedelta(seconds=1)])
    records = expand(item)
    assert [(r["seq"], r["event_id"], r["ts"], r["day"], r["aggregate"]) for r in records] == [
        (7, "account#a-7", iso(MIDNIGHT), day_key("2026-03-02", "account#a"), "account#a"),
        (8, "account#a-8", iso(MIDNIGHT + timedelta(seconds=1)), day_key("2026-03-02", "account#a"), "account#a"),
    ]
    assert all("more" not in r and "first" not in r and "marks" not in r for r in records)
    # an item of one entry, written before runs existed (no "first"), is its own entry
    assert [r["seq"] for r in expand(_item("account#a", 4, 4, [MIDNIGHT]))] == [4]


@st.composite
def _logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Records of five aggregates, each a run of entries as the audit writes them: on one UTC day,
    none earlier than the first, less than GROUP_SPAN later, at most MAX_GROUP (near midnight, so
    that days are crossed), in the by-day index's shard of their aggregate or (written before the
    day was sharded) under the day alone."""
    items = []
    for aggregate in ("account#a", "account#b", "trade#t", "order#o", "account#c"):
        offsets = draw(st.lists(st.integers(-12_000, 12_000), min_size=0, max_size=30))
        times = [MIDNIGHT + timedelta(milliseconds=ms) for ms in offsets]
        seq, first, run = 0, 1, []
        for ts in times:
            joins = run and run[0] <= ts < run[0] + GROUP_SPAN and run[0].date() == ts.date() and len(run) < MAX_GROUP
            if run and not (joins and draw(st.booleans())):
                seq += 1
                items.append(_item(aggregate, seq, first, run, legacy=draw(st.booleans())))
                first += len(run)
                run = []
            run.append(ts)
        if run:
            items.append(_item(aggregate, seq + 1, first, run, legacy=draw(st.booleans())))
    return items


@settings(max_examples=150, deadline=None)
@given(
    items=_logs(),
    window=st.tuples(st.integers(-13_000, 13_000), st.integers(0, 26_000)),
    page=st.integers(1, 7),
    data=st.data(),
)
def test_a_time_range_is_every_entry_in_it_in_order_across_pages(
    items: list[dict[str, Any]], window: tuple[int, int], page: int, data: st.DataObject
) -> None:
    # GIVEN the by-day index of those records (equal times in any order)
    start = MIDNIGHT + timedelta(milliseconds=window[0])
    end = start + timedelta(milliseconds=window[1])
    ties = data.draw(st.randoms(use_true_random=False))

    def query_partition(key: str, ts_from: str, ts_to: str) -> Iterator[dict[str, Any]]:
        found = [i for i in items if i["day"] == key and ts_from <= i["ts"] <= ts_to]
        ties.shuffle(found)
        return iter(sorted(found, key=lambda i: i["ts"]))

    assert len({i["day"] for i in items}) <= 2 * (1 + DAY_SHARDS)
    # WHEN the range is read a page at a time, each page resuming after the last one's last entry
    read: list[dict[str, Any]] = []
    after: TimeKey | None = None
    while True:
        got = list(islice(by_time(query_partition, start, end, after), page))
        read += got
        if len(got) < page:
            break
        after = time_key(got[-1])
    # THEN it is every entry of the range once, in (ts, aggregate, entry number) order
    every = [entry for item in items for entry in expand(item)]
    expected = sorted((e for e in every if iso(start) <= e["ts"] <= iso(end)), key=time_key)
    assert [time_key(e) for e in read] == [time_key(e) for e in expected]


def test_a_days_records_are_spread_over_its_shards_by_aggregate() -> None:
    keys = {day_key("2026-03-02", f"order#{n}") for n in range(500)}
    assert keys == {f"2026-03-02#{n}" for n in range(DAY_SHARDS)}
    assert day_key("2026-03-02", "order#1") == day_key("2026-03-02", "order#1")  # stable
