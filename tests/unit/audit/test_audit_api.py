"""GET /v1/audit: compliance and admin only, an aggregate in seq order or a time range in time
order, paged; every bad input a 400 with the error body; no route that changes a record."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lambda_events import call, rest_event
from nexus_audit.records import SOURCE_AUDIT_EVENTS, AuditEntry
from nexus_audit.repo import DynamoAuditLog
from nexus_audit.sequencing import append

T0 = datetime(2026, 1, 5, 23, 59, 58, tzinfo=UTC)


def _get(app: Any, query: dict[str, str] | None, roles: str | None = "compliance") -> tuple[int, Any]:
    event = rest_event("GET", "/v1/audit", query=query)
    context = event["requestContext"]["authorizer"]
    context.update(user_id="usr_test", accounts="acc_test", scopes="read")
    if roles is not None:
        context["roles"] = roles
    return call(app, event)


@pytest.fixture
def api(aws: Any) -> Any:
    aws.use_function_env("AuditApiFunction")
    log = DynamoAuditLog(aws.table_name("AuditTable"))
    # an order's 5 records, one a second apart across midnight, and 3 records of an account
    entries = [
        (i, AuditEntry("order", "ORD1", f"o{i}", f"kind{i}", T0 + timedelta(seconds=i), SOURCE_AUDIT_EVENTS))
        for i in range(5)
    ] + [
        (5 + i, AuditEntry("account", "acc_1", f"a{i}", "login_failed", T0 + timedelta(seconds=i, milliseconds=500),
                           SOURCE_AUDIT_EVENTS, links=("order:ORD1",), details={"ip": "10.0.0.1"}))
        for i in range(3)
    ]  # fmt: skip
    assert append(log, entries, lambda: T0).written == 8
    from nexus_audit.api import app

    return app


def test_compliance_reads_an_aggregate_in_sequence_order_page_by_page(api: Any) -> None:
    # GIVEN an order with 5 audit records
    # WHEN compliance reads it 2 at a time
    seen, token, pages = [], None, 0
    while True:
        query = {"aggregate_type": "order", "aggregate_id": "ORD1", "limit": "2"}
        if token:
            query["next_token"] = token
        status, body = _get(api, query)
        assert status == 200, body
        seen += [(r["seq"], r["event_id"]) for r in body["records"]]
        token, pages = body["next_token"], pages + 1
        if token is None:
            break
    # THEN it gets 1..5 in order, once each
    assert seen == [(1, "o0"), (2, "o1"), (3, "o2"), (4, "o3"), (5, "o4")]
    assert pages >= 3


def test_admin_reads_a_time_range_across_days_in_time_order(api: Any) -> None:
    # WHEN an admin asks for [T0+1s, T0+3s) in pages of 3 (the range crosses midnight UTC)
    start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    records, token = [], None
    while True:
        query = {"from": start.isoformat(), "to": end.isoformat().replace("+00:00", "Z"), "limit": "3"}
        if token:
            query["next_token"] = token
        status, body = _get(api, query, roles="trader,admin")
        assert status == 200, body
        records += body["records"]
        token = body["next_token"]
        if token is None:
            break
    # THEN it gets the 4 records of that range, oldest first, each with its fields
    assert [r["event_id"] for r in records] == ["o1", "a1", "o2", "a2"]
    assert records[1] == {
        "aggregate_type": "account", "aggregate_id": "acc_1", "seq": 2, "event_id": "a1", "kind": "login_failed",
        "ts": "2026-01-05T23:59:59.500000Z", "recorded_at": "2026-01-05T23:59:58.000000Z",
        "source": SOURCE_AUDIT_EVENTS, "actor": "system", "correlation_id": None, "links": ["order:ORD1"],
        "details": {"ip": "10.0.0.1"},
    }  # fmt: skip


def test_a_trader_is_refused(api: Any) -> None:
    # WHEN a caller without the compliance or admin role asks (no roles at all: a trader's key)
    for roles in ("trader", None, "", "trader,auditor"):
        status, body = _get(api, {"aggregate_type": "order", "aggregate_id": "ORD1"}, roles=roles)
        # THEN 403 with the error body, and no record
        assert status == 403, roles
        assert body["error"]["code"] == "forbidden" and "records" not in body


def test_no_credentials_is_401(api: Any) -> None:
    event = rest_event("GET", "/v1/audit", query={"aggregate_type": "order", "aggregate_id": "ORD1"}, account_id=None)
    status, body = call(api, event)
    assert status == 401 and body["error"]["code"] == "unauthorized"




def _pages(api: Any, query: dict[str, str], roles: str = "compliance") -> tuple[list[dict[str, Any]], int]:
    records, token, pages = [], None, 0
    while pages < 50:  # (a token that does not move on would page forever)
        status, body = _get(api, {**query, **({"next_token": token} if token else {})}, roles=roles)
        assert status == 200, body
        records += body["records"]
        token, pages = body["next_token"], pages + 1
        if token is None:
            return records, pages
    raise AssertionError(f"still paging after {pages} pages")


def test_records_holding_runs_of_entries_read_as_one_entry_each_in_order(api: Any, aws: Any) -> None:
    # GIVEN an order whose engine events came in two batches (runs: two records holding 3 and 4
    # entries), and an account whose records interleave with them in time
    log = DynamoAuditLog(aws.table_name("AuditTable"))
    t1 = T0 + timedelta(hours=1)  # 00:59:58 of the next day

    def engine(n: int, ms: int) -> tuple[int, AuditEntry]:
        entry = AuditEntry("order", "ORD2", f"AAPL-{n}", f"step{n}", t1 + timedelta(milliseconds=ms),
                           SOURCE_AUDIT_EVENTS, mark=("e:AAPL", n))  # fmt: skip
        return n, entry

    assert append(log, [engine(1, 0), engine(2, 2000), engine(3, 4000)], lambda: t1).written == 3
    others = [(i, AuditEntry("account", "acc_2", f"x{i}", "k", t1 + timedelta(milliseconds=1000 * i + 500),
                             SOURCE_AUDIT_EVENTS)) for i in range(6)]  # fmt: skip
    assert append(log, others, lambda: t1).written == 6
    assert append(log, [engine(4, 4500), engine(5, 5000), engine(6, 6000), engine(7, 8000)], lambda: t1).written == 4
    assert [len(log.events_at("order#ORD2", seq) or ()) for seq in (1, 2, 3)] == [3, 4, 0]
    # WHEN compliance reads the order 2 at a time (pages end inside a record)
    records, pages = _pages(api, {"aggregate_type": "order", "aggregate_id": "ORD2", "limit": "2"})
    # THEN it gets entries 1..7 in order, once each, one record per entry
    assert [(r["seq"], r["event_id"], r["kind"]) for r in records] == [
        (n, f"AAPL-{n}", f"step{n}") for n in range(1, 8)
    ]
    assert pages == 4 and records[4]["ts"] == "2026-01-06T01:00:03.000000Z"
    # AND a page as large as the log reads it in one
    assert _pages(api, {"aggregate_type": "order", "aggregate_id": "ORD2", "limit": "7"}) == (records, 1)
    # WHEN an admin reads that hour's time range, 3 at a time
    hour = {"from": t1.isoformat(), "to": (t1 + timedelta(seconds=10)).isoformat()}
    timed, _ = _pages(api, {**hour, "limit": "3"}, roles="admin")
    # THEN every entry comes once, in time order, though a record's later entries are later than
    # other records' first
    assert [r["event_id"] for r in timed] == [
        "AAPL-1", "x0", "x1", "AAPL-2", "x2", "x3", "AAPL-3", "x4", "AAPL-4", "AAPL-5", "x5", "AAPL-6", "AAPL-7"]
    assert _pages(api, {**hour, "limit": "100"}, roles="admin") == (timed, 1)


def test_records_written_before_the_day_was_sharded_are_read_with_the_others(api: Any, aws: Any) -> None:
    import boto3
    from nexus_audit.repo import record_to_item
    from nexus_audit.sequencing import AuditRecord

    # GIVEN a record written under the day alone (before the by-day index's key was the day's shard)
    t2 = T0 + timedelta(days=3)
    old = record_to_item(AuditRecord((AuditEntry("order", "OLD", "old-1", "kind", t2, SOURCE_AUDIT_EVENTS),), 1, t2))
    old["day"] = t2.date().isoformat()
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AuditTable")).put_item(Item=old)
    # AND records appended since, around it in time
    log = DynamoAuditLog(aws.table_name("AuditTable"))
    around = [(i, AuditEntry("account", f"acc_{i}", f"new-{i}", "k", t2 + timedelta(seconds=i - 1),
                             SOURCE_AUDIT_EVENTS)) for i in range(3)]  # fmt: skip
    assert append(log, around, lambda: t2).written == 3
    # WHEN the day is read, a record at a time
    day = {"from": t2.date().isoformat(), "to": (t2.date() + timedelta(days=1)).isoformat(), "limit": "1"}
    records, pages = _pages(api, day, roles="admin")
    # THEN the old record is among them, in its place in time
    assert [r["event_id"] for r in records] == ["new-0", "new-1", "old-1", "new-2"] and pages == 4


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


DEEP_TOKEN = base64.urlsafe_b64encode(b"[" * 1400).decode()  # nested past the JSON parser's depth
HUGE_SEQ_TOKEN = _token({"m": "aggregate", "k": {"aggregate": "order#ORD1", "seq": 10**40}})
EMPTY_KEY_TOKEN = _token(
    {"m": "time", "d": "2026-01-05", "k": {"aggregate": "", "seq": 1, "day": "2026-01-05", "ts": "2026-01-05T10:00Z"}}
)
OTHER_TOKEN = _token({"m": "aggregate", "k": {"aggregate": "order#OTHER", "seq": 1}})
BAD_TIME_TOKENS = [  # (from, to, the resume key's ts): not an instant as the store writes them
    ("2024-01-01", "2024-01-02", "2024-01-01T12:00:00"),
    ("2024-01-01", "2024-01-02", "2024-01-01T12:00:00.000000Z\x7f"),
    ("2024-01-31", "2024-02-02", "2024-01-99"),
    ("2024-01-01", "2024-01-02", "2024-01-01T12:00:00.000000+00:00"),
]
BAD_SKIP_TOKENS = [_token({"m": "aggregate", "k": {"aggregate": "order#ORD1", "seq": 1}, "i": i})
                   for i in (-1, 26, "2", True, 10**30)]  # fmt: skip


BAD_QUERIES: list[tuple[dict[str, str], str, str | None]] = [
        ({}, "missing_field", "aggregate_type"),
        ({"aggregate_type": "order"}, "missing_field", "aggregate_id"),
        ({"aggregate_id": "ORD1"}, "missing_field", "aggregate_type"),
        ({"aggregate_type": "Order!", "aggregate_id": "ORD1"}, "invalid_field", "aggregate_type"),
        ({"aggregate_type": "claim", "aggregate_id": "x"}, "invalid_field", "aggregate_type"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "from": "2026-01-01"}, "invalid_query", None),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "limit": "0"}, "invalid_field", "limit"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "limit": "1001"}, "invalid_field", "limit"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "limit": "ten"}, "invalid_field", "limit"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "sort": "desc"}, "unknown_field", "sort"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "next_token": "%%%"}, "invalid_field", "next_token"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "next_token": OTHER_TOKEN}, "invalid_field",
         "next_token"),
        ({"from": "2026-01-05"}, "missing_field", "to"),
        ({"to": "2026-01-05"}, "missing_field", "from"),
        ({"from": "yesterday", "to": "2026-01-05"}, "invalid_field", "from"),
        ({"from": "2026-01-05T10:00:00", "to": "2026-01-06"}, "invalid_field", "from"),
        ({"from": "2026-01-06", "to": "2026-01-05"}, "invalid_field", "to"),
        ({"from": "2026-01-05", "to": "2026-01-05"}, "invalid_field", "to"),
        ({"from": "2026-01-01", "to": "2026-03-01"}, "invalid_field", "to"),
        ({"from": "2026-01-05", "to": "2026-01-06", "next_token": OTHER_TOKEN}, "invalid_field", "next_token"),
        ({"from": "0001-01-01T00:00:00+05:00", "to": "2026-01-06"}, "invalid_field", "from"),
        ({"from": "9999-12-31", "to": "9999-12-31T23:59:59-05:00"}, "invalid_field", "to"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "next_token": DEEP_TOKEN}, "invalid_field", "next_token"),
        ({"aggregate_type": "order", "aggregate_id": "ORD1", "next_token": HUGE_SEQ_TOKEN}, "invalid_field",
         "next_token"),
        ({"from": "2026-01-05", "to": "2026-01-06", "next_token": EMPTY_KEY_TOKEN}, "invalid_field", "next_token"),
        *(({"aggregate_type": "order", "aggregate_id": "ORD1", "next_token": token}, "invalid_field", "next_token")
          for token in BAD_SKIP_TOKENS),
        *(({"from": start, "to": end, "next_token": _token(
            {"m": "time", "d": start, "k": {"aggregate": "order#ORD1", "seq": 1, "day": start, "ts": ts}})},
           "invalid_field", "next_token") for start, end, ts in BAD_TIME_TOKENS),
]


def test_bad_input_is_a_400_naming_the_field(api: Any) -> None:
    for query, code, field in BAD_QUERIES:
        # WHEN compliance sends a bad query
        status, body = _get(api, query)
        # THEN 400 with the code and the field at fault
        assert (status, body["error"]["code"], body["error"].get("field")) == (400, code, field), query


def test_nothing_can_change_a_record_through_the_api(api: Any) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        # WHEN compliance tries to write to the audit route
        event = rest_event(method, "/v1/audit", body={"seq": 1, "kind": "edited"})
        event["requestContext"]["authorizer"]["roles"] = "compliance,admin"
        status, body = call(api, event)
        # THEN the method is not allowed
        assert (status, body["error"]["code"]) == (405, "method_not_allowed"), method
    # AND the order's records are as they were
    status, page = _get(api, {"aggregate_type": "order", "aggregate_id": "ORD1"})
    assert [r["kind"] for r in page["records"]] == [f"kind{i}" for i in range(5)]
