"""The audit table (``AuditTable``): the ``AuditLog`` of the consumers and the reads of the API.

Items (pk ``aggregate`` S, sk ``seq`` N):

* a record: ``aggregate`` = ``<type>#<id>``, ``seq`` >= 1, ``event_id``, ``kind``, ``ts`` (the
  event's instant, ISO UTC), ``day`` (its UTC date: the ``by-day`` index), ``recorded_at``,
  ``source``, ``actor``, ``correlation_id``?, ``links`` (list), ``details`` (map of strings),
  ``aggregate_type``, ``aggregate_id``, ``marks`` (map of strings: per ordered source, the highest
  position among the records ``marks_from``..seq; ``nexus_audit.sequencing``), ``marks_from``
  (only when it is not 1);
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
from nexus_common.dynamo import LazyTable, conditional, conditional_write
from nexus_common.dynamo_batch import batch_get
from nexus_common.events import iso

from nexus_audit.records import day_of
from nexus_audit.sequencing import AuditRecord, Head

TIME_INDEX: Final = "by-day"
CLAIM_PREFIX: Final = "claim#"


def claim_key(aggregate: str, event_id: str) -> dict[str, Any]:
    return {"aggregate": f"{CLAIM_PREFIX}{aggregate}#{event_id}", "seq": 0}


def record_to_item(record: AuditRecord) -> dict[str, Any]:
    entry = record.entry
    item: dict[str, Any] = {
        "aggregate": entry.aggregate,
        "seq": record.seq,
        "aggregate_type": entry.aggregate_type,
        "aggregate_id": entry.aggregate_id,
        "event_id": entry.event_id,
        "kind": entry.kind,
        "ts": iso(entry.ts),
        "day": day_of(entry.ts),
        "recorded_at": iso(record.recorded_at),
        "source": entry.source,
        "actor": entry.actor,
        "links": list(entry.links),
        "details": dict(entry.details),
        "marks": {key: str(position) for key, position in record.marks.items()},  # positions exceed 38 digits
    }
    if record.marks_from != 1:  # 1, covering every record, is the rule: not stored
        item["marks_from"] = record.marks_from
    if entry.correlation_id:
        item["correlation_id"] = entry.correlation_id
    return item


# What appending reads of a record: its key, event id and marks (``head_of``)
_RECORD_NAMES: Final = {"#a": "aggregate", "#s": "seq", "#e": "event_id", "#m": "marks", "#f": "marks_from"}
_HEAD_FIELDS: Final = {"ConsistentRead": True, "ProjectionExpression": ", ".join(_RECORD_NAMES),
                       "ExpressionAttributeNames": _RECORD_NAMES}  # fmt: skip
RECORDS_PAGE: Final = 25  # records read back per request when looking for an entry


def head_of(item: dict[str, Any]) -> Head:
    """A record item as a ``Head``. A record written before records carried marks covers nothing."""
    seq = int(item["seq"])
    if "marks" not in item:
        return Head(seq, {}, seq + 1)
    return Head(seq, {str(k): int(v) for k, v in item["marks"].items()}, int(item.get("marks_from", 1)))


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

    def records_down(self, aggregate: str, top: int, bottom: int) -> Iterator[tuple[str, Head]]:
        args: dict[str, Any] = {
            "KeyConditionExpression": Key("aggregate").eq(aggregate) & Key("seq").between(bottom, top),
            "ScanIndexForward": False,
            "Limit": RECORDS_PAGE,
            **_HEAD_FIELDS,
        }
        while True:
            answer = self.table.query(**args)
            for item in answer.get("Items") or []:
                yield str(item["event_id"]), head_of(item)
            if not answer.get("LastEvaluatedKey"):
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def event_at(self, aggregate: str, seq: int) -> str | None:
        item = self._probe(aggregate, seq)
        return None if item is None else str(item["event_id"])

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

    def put(self, record: AuditRecord) -> str | None:
        existing = self._put_new(record_to_item(record))
        aggregate = record.entry.aggregate
        if existing is None:
            self._saw(aggregate, record.head)
            return None
        self._saw(aggregate, head_of(existing))  # held by another: it exists
        return str(existing["event_id"])

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
    """The API's reads: an aggregate's records in seq order, a day's records in time order."""

    def by_aggregate(
        self, aggregate: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        args: dict[str, Any] = {
            "KeyConditionExpression": Key("aggregate").eq(aggregate) & Key("seq").gte(1),
            "Limit": limit,
            "ScanIndexForward": True,
        }
        if start is not None:
            args["ExclusiveStartKey"] = start
        answer = self.table.query(**args)
        return list(answer.get("Items") or []), answer.get("LastEvaluatedKey")

    def by_day(
        self, day: str, ts_from: str, ts_to: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        args: dict[str, Any] = {
            "IndexName": TIME_INDEX,
            "KeyConditionExpression": Key("day").eq(day) & Key("ts").between(ts_from, ts_to),
            "Limit": limit,
            "ScanIndexForward": True,
        }
        if start is not None:
            args["ExclusiveStartKey"] = start
        answer = self.table.query(**args)
        return list(answer.get("Items") or []), answer.get("LastEvaluatedKey")
