"""The audit table's record items as the entries they hold: the one format every reader of the
table (the audit API, surveillance's history, tests) goes through.

A record item (pk ``aggregate``, sk ``seq``: the record's number, 1, 2, 3, ... per aggregate)
holds one audit entry, or a run of consecutive entries of its aggregate that one consumer appended
together:

* the item's own attributes are its first entry (``event_id``, ``kind``, ``ts``, ``source``,
  ``actor``, ``correlation_id``, ``links``, ``details``) and what the run shares (``aggregate``,
  ``aggregate_type``, ``aggregate_id``, ``day``, ``recorded_at``, ``marks``);
* ``more`` (only when the run has more than one entry) lists the following entries, each a map of
  the entry attributes above;
* ``first`` (only when it differs from ``seq``) is the entry number of the first entry. Entries
  are numbered 1, 2, 3, ... per aggregate, without a gap, across items: an item's first entry
  follows the previous item's last. Items written before runs existed hold one entry each and
  have no ``first``: their entry number is their ``seq``.

The entries of one item share their UTC day, and none is earlier than the first or
``GROUP_SPAN`` or more later: the ``by-day`` index (``day``, ``ts``: the first entry's) finds
every entry of a time range by looking ``GROUP_SPAN`` further back (``by_time``).

The index's partition key is the day and a shard of it, ``<day>#<n>`` (``day_key``: ``n`` from the
aggregate, so an aggregate's records of a day are in one partition): one partition of a day would
take every audit write of the platform, and a partition takes about 1,000 write units a second.
Records written before the day was sharded have the day alone as their key; ``by_time`` reads
those too.
"""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from nexus_common.dynamo import paginate
from nexus_common.events import iso

TIME_INDEX: Final = "by-day"
GROUP_SPAN: Final = timedelta(seconds=5)  # never lowered: items written under a span are read under it
DAY_SHARDS: Final = 16  # never lowered: a day's records are read from every shard a writer may have used
MAX_GROUP: Final = 25  # entries per item
# the entries' text per item, in characters: at most 4 bytes each in UTF-8, well under an item's 400 KB
MAX_GROUP_BYTES: Final = 80_000

ENTRY_FIELDS: Final = ("event_id", "kind", "ts", "source", "actor", "correlation_id", "links", "details")
SHARED_FIELDS: Final = ("aggregate", "aggregate_type", "aggregate_id", "day", "recorded_at")
_ITEM_ONLY: Final = frozenset({"more", "first", "marks", "marks_from"})

# Where a record stands in a time-ordered read: (ts, aggregate, entry number)
TimeKey = tuple[str, str, int]


def first_entry(item: Mapping[str, Any]) -> int:
    """The entry number of the item's first entry."""
    return int(item.get("first", item["seq"]))


def entry_count(item: Mapping[str, Any]) -> int:
    return 1 + len(item.get("more") or ())


def event_ids(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The event ids of the item's entries, in order."""
    return (str(item["event_id"]), *(str(more["event_id"]) for more in item.get("more") or ()))


def expand(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The item's entries, each as a one-entry record (``seq``: its entry number), in order."""
    first = first_entry(item)
    head = {key: value for key, value in item.items() if key not in _ITEM_ONLY}
    head["seq"] = first
    shared = {key: item[key] for key in SHARED_FIELDS if key in item}
    return [head, *({**shared, **more, "seq": first + i} for i, more in enumerate(item.get("more") or (), 1))]


def day_key(day: str, aggregate: str) -> str:
    """The ``by-day`` index's partition key of an aggregate's records of ``day`` (``YYYY-MM-DD``)."""
    return f"{day}#{zlib.crc32(aggregate.encode()) % DAY_SHARDS}"


def day_keys(day: str) -> list[str]:
    """Every partition key a record of ``day`` may have: the shards, and the day alone (records
    from before the day was sharded)."""
    return [day, *(f"{day}#{n}" for n in range(DAY_SHARDS))]


def index_partition(table: Any, key: str, ts_from: str, ts_to: str, page: int = 100) -> Iterator[dict[str, Any]]:
    """The records of one partition of the table's ``by-day`` index (``day_keys``) with ``ts_from
    <= ts <= ts_to`` (their first entry's), in ``ts`` order, ``page`` records a request, read as
    they are needed (what ``by_time`` merges)."""
    return paginate(
        table.query,
        IndexName=TIME_INDEX,
        KeyConditionExpression=Key("day").eq(key) & Key("ts").between(ts_from, ts_to),
        ScanIndexForward=True,
        Limit=page,
    )


def time_key(record: Mapping[str, Any]) -> TimeKey:
    return str(record["ts"]), str(record["aggregate"]), int(record["seq"])


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1) - timedelta(microseconds=1)


def by_time(
    query_partition: Callable[[str, str, str], Iterable[Mapping[str, Any]]],
    start: datetime,
    end: datetime,
    after: TimeKey | None = None,
) -> Iterator[dict[str, Any]]:
    """Every entry with ``start <= ts <= end`` (and, resuming, after ``after``), in the order of
    ``(ts, aggregate, entry number)``, from the ``by-day`` index.

    ``query_partition(key, ts_from, ts_to)`` gives the index's items of one partition key with
    ``ts_from <= ts <= ts_to``, in ``ts`` order; a day's partitions (``day_keys``) are merged by
    ``ts``. An item's entries are no earlier than its ``ts`` and less than ``GROUP_SPAN`` later,
    so the items are read from ``GROUP_SPAN`` before ``start``, and an entry is given only once
    the index has passed its time (no item still to come can hold an earlier one). Lazy: a caller
    stops reading when its page is full (each partition is read a page at a time as the merge
    needs it)."""
    day = start.date() if after is None else max(start.date(), date.fromisoformat(after[0][:10]))
    while day <= end.date():
        day_start, day_end = _day_bounds(day)
        low, high = max(start, day_start), min(end, day_end)
        entries_from = iso(low) if after is None or after[0] < iso(low) else after[0]
        index_from = iso(max(day_start, datetime.fromisoformat(entries_from.replace("Z", "+00:00")) - GROUP_SPAN))
        entries_to = iso(high)
        waiting: list[tuple[TimeKey, int, dict[str, Any]]] = []  # (the int: records never compared)
        arrival = itertools.count()
        partitions = [iter(query_partition(key, index_from, entries_to)) for key in day_keys(day.isoformat())]
        for item in heapq.merge(*partitions, key=lambda item: str(item["ts"])):
            indexed = str(item["ts"])
            while waiting and waiting[0][0][0] < indexed:
                yield heapq.heappop(waiting)[2]
            for record in expand(item):
                key = time_key(record)
                if entries_from <= key[0] <= entries_to and (after is None or key > after):
                    heapq.heappush(waiting, (key, next(arrival), record))
        while waiting:
            yield heapq.heappop(waiting)[2]
        day += timedelta(days=1)
