"""Reading the audit trail: an aggregate's records in seq order, or every record of a time range
in time order, a page at a time. Pure apart from the ``Reader`` port.

``GET /v1/audit?aggregate_type=order&aggregate_id=<id>[&limit=&next_token=]`` or
``GET /v1/audit?from=<ISO>&to=<ISO>[&limit=&next_token=]`` (``from`` inclusive, ``to``
exclusive, dates or instants with a zone, at most 31 days). ``next_token`` is opaque: the key to
resume after, bound to the query it came from (a token of another query is refused).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, Final, Protocol

from nexus_common.audit_items import MAX_GROUP, TimeKey, by_time, entry_count, expand
from nexus_common.errors import ValidationFailed
from nexus_common.events import iso
from pydantic import BaseModel, ConfigDict, Field

from nexus_audit.records import AGGREGATE_TYPE, RESERVED_TYPES, aggregate_key, record_to_wire

MAX_RANGE: Final = timedelta(days=31)
ONE_MICROSECOND: Final = timedelta(microseconds=1)
MAX_SEQ: Final = 10**18


class AuditQuery(BaseModel):
    """Either ``aggregate_type`` + ``aggregate_id``, or ``from`` + ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    aggregate_type: str | None = Field(default=None, min_length=1, max_length=32)
    aggregate_id: str | None = Field(default=None, min_length=1, max_length=400)
    from_: str | None = Field(default=None, alias="from", min_length=1, max_length=40)
    to: str | None = Field(default=None, min_length=1, max_length=40)
    limit: int = Field(default=100, ge=1, le=1000)
    next_token: str | None = Field(default=None, min_length=1, max_length=2000)


class AuditRecordOut(BaseModel):
    aggregate_type: str
    aggregate_id: str
    seq: int
    event_id: str
    kind: str
    ts: str
    recorded_at: str
    source: str
    actor: str
    correlation_id: str | None = None
    links: list[str]
    details: dict[str, str]


class AuditPage(BaseModel):
    records: list[AuditRecordOut]
    next_token: str | None = None


class Reader(Protocol):
    def by_aggregate(self, aggregate: str, from_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]: ...

    def by_day(self, partition: str, ts_from: str, ts_to: str, page: int) -> Iterable[dict[str, Any]]: ...


def _bad(message: str, field: str | None = None, code: str = "invalid_field") -> ValidationFailed:
    return ValidationFailed(code, message, field)


def parse_instant(text: str, field: str) -> datetime:
    """An ISO date (midnight UTC) or an instant with a zone, as tz-aware UTC."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise _bad(f"{field} needs a time zone (e.g. Z)", field)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that leaves the calendar (year 1)
        raise _bad(f"{field} must be an ISO date or instant", field) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    return value


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=_plain).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _bad("next_token is not a token of this API", "next_token") from None
    if not isinstance(payload, dict):
        raise _bad("next_token is not a token of this API", "next_token")
    return payload


def _key(payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
    key = payload.get("k")
    if key is None:
        return None
    if not isinstance(key, dict) or set(key) != set(names):
        raise _bad("next_token does not belong to this query", "next_token")
    seq = key.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise _bad("next_token does not belong to this query", "next_token")
    if any(not isinstance(key[name], str) or not 0 < len(key[name]) <= 1024 for name in names if name != "seq"):
        raise _bad("next_token does not belong to this query", "next_token")
    return key


def _is_instant(text: str) -> bool:
    """Whether ``text`` is an instant as the store writes one (``iso``: UTC, microseconds, ``Z``)."""
    try:
        return iso(parse_instant(text, "next_token")) == text
    except ValidationFailed:
        return False


class AuditReader:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def search(self, query: AuditQuery) -> dict[str, Any]:
        by_aggregate = query.aggregate_type is not None or query.aggregate_id is not None
        by_time = query.from_ is not None or query.to is not None
        if by_aggregate and by_time:
            raise _bad("ask by aggregate (aggregate_type, aggregate_id) or by time (from, to), not both",
                       code="invalid_query")  # fmt: skip
        if by_aggregate:
            return self._aggregate(query)
        if by_time:
            return self._time_range(query)
        raise _bad("give aggregate_type and aggregate_id, or from and to", "aggregate_type", "missing_field")

    def _aggregate(self, query: AuditQuery) -> dict[str, Any]:
        if query.aggregate_type is None:
            raise _bad("missing required field: aggregate_type", "aggregate_type", "missing_field")
        if query.aggregate_id is None:
            raise _bad("missing required field: aggregate_id", "aggregate_id", "missing_field")
        if not AGGREGATE_TYPE.match(query.aggregate_type) or query.aggregate_type in RESERVED_TYPES:
            raise _bad("aggregate_type is a lower-case word (order, trade, account, ...)", "aggregate_type")
        aggregate = aggregate_key(query.aggregate_type, query.aggregate_id)
        # a record (item) holds one entry or a run of them; the token names the last record a page
        # reached and how many of its entries it gave ("i"; none: all of them)
        from_seq, skip = 1, 0
        if query.next_token is not None:
            payload = decode_token(query.next_token)
            start = _key(payload, ("aggregate", "seq"))
            given = payload.get("i", 0)
            if (
                payload.get("m") != "aggregate"
                or start is None
                or start["aggregate"] != aggregate
                or not isinstance(given, int)
                or isinstance(given, bool)
                or not 0 <= given <= MAX_GROUP
            ):
                raise _bad("next_token does not belong to this query", "next_token")
            from_seq, skip = (start["seq"], given) if given else (start["seq"] + 1, 0)
        items, more = self.reader.by_aggregate(aggregate, from_seq, query.limit)
        records: list[dict[str, Any]] = []
        token = None
        for position, item in enumerate(items):
            entries = expand(item)[skip if int(item["seq"]) == from_seq else 0 :]
            room = query.limit - len(records)
            records.extend(entries[:room])
            if len(entries) > room:  # the page ends inside this record
                given = entry_count(item) - len(entries) + room
                token = encode_token({"m": "aggregate", "k": {"aggregate": aggregate, "seq": item["seq"]}, "i": given})
                break
            if len(records) == query.limit and (more or position + 1 < len(items)):
                token = encode_token({"m": "aggregate", "k": {"aggregate": aggregate, "seq": item["seq"]}})
                break
        else:
            if more and items:
                token = encode_token({"m": "aggregate", "k": {"aggregate": aggregate, "seq": items[-1]["seq"]}})
        return {"records": [record_to_wire(record) for record in records], "next_token": token}

    def _time_range(self, query: AuditQuery) -> dict[str, Any]:
        if query.from_ is None:
            raise _bad("missing required field: from", "from", "missing_field")
        if query.to is None:
            raise _bad("missing required field: to", "to", "missing_field")
        start_at, end_at = parse_instant(query.from_, "from"), parse_instant(query.to, "to")
        if end_at <= start_at:
            raise _bad("to must be after from", "to")
        if end_at - start_at > MAX_RANGE:
            raise _bad("a time range spans at most 31 days: page through longer ones", "to")
        last_at = end_at - ONE_MICROSECOND
        ts_from, ts_to = iso(start_at), iso(last_at)
        day, last_day = start_at.date(), last_at.date()
        after: TimeKey | None = None
        if query.next_token is not None:
            payload = decode_token(query.next_token)
            try:
                day = date.fromisoformat(str(payload.get("d")))
            except ValueError:
                raise _bad("next_token does not belong to this query", "next_token") from None
            start = _key(payload, ("aggregate", "seq", "day", "ts"))
            if payload.get("m") != "time" or not start_at.date() <= day <= last_day or (
                start is not None and (start["day"][:10] != day.isoformat() or not ts_from <= start["ts"] <= ts_to)
            ):  # fmt: skip
                raise _bad("next_token does not belong to this query", "next_token")
            if start is not None:
                if not _is_instant(start["ts"]):
                    raise _bad("next_token does not belong to this query", "next_token")
                after = (start["ts"], start["aggregate"], start["seq"])
        begin = max(start_at, datetime.combine(day, datetime.min.time(), UTC))
        def partition(key: str, ts_from: str, ts_to: str) -> Iterable[dict[str, Any]]:
            return self.reader.by_day(key, ts_from, ts_to, query.limit + 1)  # a page need read no more per shard

        records = list(islice(by_time(partition, begin, last_at, after), query.limit + 1))
        token = None
        if len(records) > query.limit:
            del records[query.limit :]
            last = records[-1]
            key = {"aggregate": last["aggregate"], "seq": last["seq"], "day": last["day"], "ts": last["ts"]}
            token = encode_token({"m": "time", "d": str(last["day"])[:10], "k": key})
        return {"records": [record_to_wire(record) for record in records], "next_token": token}
