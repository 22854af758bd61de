"""The audit table (``AuditTable``): the ``AuditLog`` of the consumers and the reads of the API.

Items (pk ``aggregate`` S, sk ``seq`` N):

* a record: ``aggregate`` = ``<type>#<id>``, ``seq`` >= 1, ``event_id``, ``kind``, ``ts`` (the
  event's instant, ISO UTC), ``day`` (its UTC date: the ``by-day`` index), ``recorded_at``,
  ``source``, ``actor``, ``correlation_id``?, ``links`` (list), ``details`` (map of strings),
  ``aggregate_type``, ``aggregate_id``;
* a claim: ``aggregate`` = ``claim#<type>#<id>#<event id>``, ``seq`` = 0, ``claimed_seq``,
  ``event_id`` (no ``day``: claims are not in the time index).

Writes are conditional puts (``attribute_not_exists``) and one conditional update of a claim's
``claimed_seq``: no record is ever updated or deleted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from nexus_common.dynamo import LazyTable, conditional, conditional_write
from nexus_common.dynamo_batch import batch_get
from nexus_common.events import iso

from nexus_audit.records import day_of
from nexus_audit.sequencing import AuditRecord

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
    }
    if entry.correlation_id:
        item["correlation_id"] = entry.correlation_id
    return item


_KEYS_ONLY: Final = {"ConsistentRead": True, "ProjectionExpression": "#a, #s",
                     "ExpressionAttributeNames": {"#a": "aggregate", "#s": "seq"}}  # fmt: skip


class _HeadSearch:
    """One aggregate's head search, a probe at a time (``DynamoAuditLog.head``'s, step by step):
    gallop from ``low`` (a seq that exists, or 0) until a seq is missing, then bisect."""

    def __init__(self, low: int) -> None:
        self.low = low  # exists (0: nothing needs to)
        self.high: int | None = None  # does not exist (None: not found yet, still galloping)
        self.step = 1

    @property
    def done(self) -> bool:
        return self.high is not None and self.high - self.low <= 1

    def probe(self) -> int:
        return self.low + self.step if self.high is None else (self.low + self.high) // 2

    def saw(self, seq: int, exists: bool) -> None:
        if exists:
            self.low = seq
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
        self._hints: OrderedDict[str, int] = OrderedDict()
        self._hints_lock = threading.Lock()  # aggregates are appended on several threads

    def _exists(self, aggregate: str, seq: int) -> bool:
        key = {"aggregate": aggregate, "seq": seq}
        return "Item" in self.table.get_item(Key=key, ConsistentRead=True)

    def _saw(self, aggregate: str, seq: int) -> None:
        with self._hints_lock:
            if seq > self._hints.get(aggregate, 0):
                self._hints[aggregate] = seq
            self._hints.move_to_end(aggregate)
            while len(self._hints) > self.HINTS:
                self._hints.popitem(last=False)

    def known_head(self, aggregate: str) -> int | None:
        with self._hints_lock:
            return self._hints.get(aggregate)

    def head(self, aggregate: str, known: int = 0) -> int:
        search = _HeadSearch(max(known, self.known_head(aggregate) or 0))  # from a seq that exists (0: none needed)
        while not search.done:
            seq = search.probe()
            search.saw(seq, self._exists(aggregate, seq))
        if search.low:
            self._saw(aggregate, search.low)
        return search.low

    def heads(self, aggregates: Sequence[str]) -> dict[str, int]:
        """``head`` of each aggregate, searched side by side: each round probes the next seq of
        every aggregate still searched, with consistent ``BatchGetItem`` calls (100 keys each). A
        new aggregate takes one round; one with ``n`` records about ``2 log2 n``."""
        searches = {aggregate: _HeadSearch(self.known_head(aggregate) or 0) for aggregate in dict.fromkeys(aggregates)}
        while pending := {aggregate: s.probe() for aggregate, s in searches.items() if not s.done}:
            keys = [{"aggregate": aggregate, "seq": seq} for aggregate, seq in pending.items()]
            found = {(str(i["aggregate"]), int(i["seq"])) for i in batch_get(self.table, keys, **_KEYS_ONLY)}
            for aggregate, seq in pending.items():
                searches[aggregate].saw(seq, (aggregate, seq) in found)
        for aggregate, search in searches.items():
            if search.low:
                self._saw(aggregate, search.low)
        return {aggregate: search.low for aggregate, search in searches.items()}

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
        self._saw(record.entry.aggregate, record.seq)  # written, or held by another: it exists
        return None if existing is None else str(existing["event_id"])

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
