"""The audit table (``AuditTable``): the ``AuditLog`` of the consumers and the reads of the API.

Items (pk ``aggregate`` S, sk ``seq`` N):

* a record: ``aggregate`` = ``<type>#<id>``, ``seq`` >= 1, ``event_id``, ``kind``, ``ts`` (the
  event's instant, ISO UTC), ``day`` (its UTC date and a shard of it, ``<date>#<n>``: the
  ``by-day`` index's partition), ``recorded_at``,
  ``source``, ``actor``, ``correlation_id``?, ``links`` (list), ``details`` (map of strings),
  ``aggregate_type``, ``aggregate_id``, ``marks`` (map of strings: per ordered source, the highest
  position among the records ``marks_from``..seq; ``nexus_audit.sequencing``), ``marks_from``
  (only when it is not 1), and for a record holding a run of entries ``more`` and ``first``
  (``nexus_common.audit_items``: the format every reader goes through);
* a claim: ``aggregate`` = ``claim#<type>#<id>#<event id>``, ``seq`` = 0, ``claimed_seq``,
  ``event_id`` (no ``day``: claims are not in the time index).

Writes are conditional puts (``attribute_not_exists``) and one conditional update of a claim's
``claimed_seq``: no record is ever updated or deleted. Claims are made only for entries without a
mark (``nexus_audit.sequencing``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from nexus_common.audit_items import day_key, entry_count, event_ids, first_entry, index_partition
from nexus_common.dynamo import LazyTable, conditional, conditional_write
from nexus_common.dynamo_batch import batch_get
from nexus_common.events import iso

from nexus_audit.records import AuditEntry, day_of
from nexus_audit.sequencing import AuditRecord, Head

CLAIM_PREFIX: Final = "claim#"


def claim_key(aggregate: str, event_id: str) -> dict[str, Any]:
    return {"aggregate": f"{CLAIM_PREFIX}{aggregate}#{event_id}", "seq": 0}


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": entry.event_id,
        "kind": entry.kind,
        "ts": iso(entry.ts),
        "source": entry.source,
        "actor": entry.actor,
        "links": list(entry.links),
        "details": dict(entry.details),
    }
    if entry.correlation_id:
        fields["correlation_id"] = entry.correlation_id
    return fields


def record_to_item(record: AuditRecord) -> dict[str, Any]:
    """The item of a record (``nexus_common.audit_items``): its first entry's attributes, the
    others in ``more``."""
    entry = record.entries[0]
    item: dict[str, Any] = {
        "aggregate": entry.aggregate,
        "seq": record.seq,
        "aggregate_type": entry.aggregate_type,
        "aggregate_id": entry.aggregate_id,
        **_entry_fields(entry),
        "day": day_key(day_of(entry.ts), entry.aggregate),  # the by-day index's partition: the day's shard
        "recorded_at": iso(record.recorded_at),
        "marks": {key: str(position) for key, position in record.marks.items()},  # positions exceed 38 digits
    }
    if record.marks_from != 1:  # 1, covering every record, is the rule: not stored
        item["marks_from"] = record.marks_from
    if record.first != record.seq:
        item["first"] = record.first
    if len(record.entries) > 1:
        item["more"] = [_entry_fields(more) for more in record.entries[1:]]
    return item


# What appending reads of a record: its key, event id and marks (``head_of``)
_RECORD_NAMES: Final = {"#a": "aggregate", "#s": "seq", "#e": "event_id", "#m": "marks", "#f": "marks_from",
                        "#n": "first", "#r": "more"}  # fmt: skip
_HEAD_FIELDS: Final = {"ConsistentRead": True, "ProjectionExpression": ", ".join(_RECORD_NAMES),
                       "ExpressionAttributeNames": _RECORD_NAMES}  # fmt: skip
RECORDS_PAGE: Final = 25  # records read back per request when looking for an entry


def head_of(item: dict[str, Any]) -> Head:
    """A record item as a ``Head``. A record written before records carried marks covers nothing."""
    seq = int(item["seq"])
    next_entry = first_entry(item) + entry_count(item)
    if "marks" not in item:
        return Head(seq, {}, seq + 1, next_entry)
    marks = {str(k): int(v) for k, v in item["marks"].items()}
    return Head(seq, marks, int(item.get("marks_from", 1)), next_entry)


class _HeadSearch:
    """One aggregate's head search, a probe at a time (``DynamoAuditLog.head``'s, step by step):
    gallop from ``low`` (a record that exists, or the empty log) until a seq is missing, then bisect."""

    def __init__(self, low: Head) -> None:
        self.low = low  # exists (seq 0: nothing needs to)
        self.high: int | None = None  # does not exist (None: not found yet, still galloping)
        self.step = 1

    @property
    def done(self) -> bool:
        return self.high is not None and self.high - self.low.seq <= 1

    def probe(self) -> int:
        return self.low.seq + self.step if self.high is None else (self.low.seq + self.high) // 2

    def saw(self, seq: int, item: dict[str, Any] | None) -> None:
        if item is not None:
            self.low = head_of(item)
            if self.high is None:
                self.step *= 2
        else:
            self.high = seq


class DynamoAuditLog(LazyTable):
    """``AuditLog`` over the audit table: conditional puts only.

    The head is found with consistent ``GetItem`` probes (one when the head is known: "is there a
    record after it?"; a galloping search otherwise), never with a ``Query``: records are
    contiguous, so probing is exact, and it stays cheap on any DynamoDB emulation. The heads this
    process saw are kept (bounded) as where the next search starts; a head that was seen is a
    lower bound forever (records are never removed), which is all the append needs."""

    HINTS: Final = 50_000

    def __init__(self, table_name: str, table: Any = None) -> None:
        super().__init__(table_name, table)
        self._hints: OrderedDict[str, Head] = OrderedDict()
        self._hints_lock = threading.Lock()  # aggregates are appended on several threads

    def _probe(self, aggregate: str, seq: int) -> dict[str, Any] | None:
        key = {"aggregate": aggregate, "seq": seq}
        return self.table.get_item(Key=key, **_HEAD_FIELDS).get("Item")

    def _saw(self, aggregate: str, head: Head) -> None:
        with self._hints_lock:
            known = self._hints.get(aggregate)
            if known is None or head.seq > known.seq:
                self._hints[aggregate] = head
            self._hints.move_to_end(aggregate)
            while len(self._hints) > self.HINTS:
                self._hints.popitem(last=False)

    def known_head(self, aggregate: str) -> Head | None:
        with self._hints_lock:
            return self._hints.get(aggregate)

    def head(self, aggregate: str, known: Head | None = None) -> Head:
        hint = self.known_head(aggregate)
        start = max((h for h in (known, hint) if h is not None), key=lambda h: h.seq, default=Head())
        search = _HeadSearch(start)  # from a record that exists (seq 0: none needed)
        while not search.done:
            seq = search.probe()
            search.saw(seq, self._probe(aggregate, seq))
        if search.low.seq:
            self._saw(aggregate, search.low)
        return search.low

    def heads(self, aggregates: Sequence[str]) -> dict[str, Head]:
        """``head`` of each aggregate, searched side by side: each round probes the next seq of
        every aggregate still searched, with consistent ``BatchGetItem`` calls (100 keys each). A
        new aggregate takes one round; one with ``n`` records about ``2 log2 n``."""
        searches = {aggregate: _HeadSearch(self.known_head(aggregate) or Head())
                    for aggregate in dict.fromkeys(aggregates)}  # fmt: skip
        while pending := {aggregate: s.probe() for aggregate, s in searches.items() if not s.done}:
            keys = [{"aggregate": aggregate, "seq": seq} for aggregate, seq in pending.items()]
            found = {(str(i["aggregate"]), int(i["seq"])): i for i in batch_get(self.table, keys, **_HEAD_FIELDS)}
            for aggregate, seq in pending.items():
                searches[aggregate].saw(seq, found.get((aggregate, seq)))
        for aggregate, search in searches.items():
            if search.low.seq:
                self._saw(aggregate, search.low)
        return {aggregate: search.low for aggregate, search in searches.items()}

    def records_down(self, aggregate: str, top: int, bottom: int) -> Iterator[tuple[tuple[str, ...], Head]]:
        args: dict[str, Any] = {
            "KeyConditionExpression": Key("aggregate").eq(aggregate) & Key("seq").between(bottom, top),
            "ScanIndexForward": False,
            "Limit": RECORDS_PAGE,
            **_HEAD_FIELDS,
        }
        while True:
            answer = self.table.query(**args)
            for item in answer.get("Items") or []:
                yield event_ids(item), head_of(item)
            if not answer.get("LastEvaluatedKey"):
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def events_at(self, aggregate: str, seq: int) -> tuple[str, ...] | None:
        item = self._probe(aggregate, seq)
        return None if item is None else event_ids(item)

    def claim(self, aggregate: str, event_id: str, seq: int) -> int | None:
        item = {**claim_key(aggregate, event_id), "claimed_seq": seq, "event_id": event_id}
        existing = self._put_new(item)
        if existing is None:
            return None
        return int(existing["claimed_seq"])

    def move_claim(self, aggregate: str, event_id: str, old: int, new: int) -> bool:
        return conditional_write(
            self.table.update_item,
            Key=claim_key(aggregate, event_id),
            UpdateExpression="SET claimed_seq = :new",
            ConditionExpression="claimed_seq = :old",
            ExpressionAttributeValues={":new": new, ":old": old},
        )

    def put(self, record: AuditRecord) -> tuple[str, ...] | None:
        existing = self._put_new(record_to_item(record))
        if existing is None:
            self._saw(record.aggregate, record.head)
            return None
        self._saw(record.aggregate, head_of(existing))  # held by another: it exists
        return event_ids(existing)

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Put ``item`` unless its key exists: None when written, else the item that is there."""
        outcome = conditional(
            self.table.put_item,
            Item=item,
            ConditionExpression=Attr("aggregate").not_exists(),  # a reserved word: the builder names it
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if outcome.written:
            return None
        if outcome.old is not None:
            return outcome.old
        key = {"aggregate": item["aggregate"], "seq": item["seq"]}
        found = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        if found is None:  # cannot be: the condition failed because the item exists
            raise outcome.error or RuntimeError(f"audit item {key} refused a put but is not there")
        return dict(found)


class DynamoAuditReader(LazyTable):
    """The API's reads of record items (``nexus_common.audit_items`` makes entries of them): an
    aggregate's in seq order, a day's in time order."""

    def by_aggregate(self, aggregate: str, from_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` records from ``from_seq`` on, and whether there may be more."""
        answer = self.table.query(
            KeyConditionExpression=Key("aggregate").eq(aggregate) & Key("seq").gte(max(1, from_seq)),
            Limit=limit,
            ScanIndexForward=True,
        )
        return list(answer.get("Items") or []), "LastEvaluatedKey" in answer

    def by_day(self, partition: str, ts_from: str, ts_to: str, page: int = 100) -> Iterator[dict[str, Any]]:
        """``nexus_common.audit_items.index_partition`` of this table."""
        return index_partition(self.table, partition, ts_from, ts_to, page)
