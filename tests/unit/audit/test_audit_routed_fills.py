"""A routed parent order's trail: the routing service's ``routed_fills`` command, then each
external ``venue_fill`` (venue, price, quantity, the venue's fee) and the ``route_ended`` the
engine made of it, all on the parent order, under moto."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from lambda_events import FakeLambdaContext, kinesis_record
from nexus_common.audit_items import expand

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/{name}"
ENVELOPE = {"version": 1, "correlation_id": "route-P1", "symbol": "AAPL", "epoch": 0}
FILL = {
    "type": "venue_fill", "order_id": "P1", "account_id": "acc_1", "side": "buy", "child_id": "P1-c1",
    "venue": "ARCA", "mic": "ARCX", "price": "100.10", "quantity": "30", "liquidity": "maker", "fee": "-0.06",
    "report_id": "r1", "filled_quantity": "30", "filled_notional": "3003.00", "remaining_quantity": "70",
}  # fmt: skip
ENDED = {
    "type": "route_ended", "order_id": "P1", "account_id": "acc_1", "side": "buy", "quantity": "100",
    "filled_quantity": "30", "filled_notional": "3003.00", "remaining_quantity": "70", "reason": "no_liquidity",
}  # fmt: skip
COMMAND = {
    "type": "routed_fills", "command_id": "route-P1", "order_id": "P1", "account_id": "acc_1", "symbol": "AAPL",
    "side": "buy", "quantity": "100", "end_reason": "no_liquidity", "ts": "2026-01-05T14:31:00.000000Z",
    "fills": [{k: FILL[k] for k in ("child_id", "venue", "mic", "price", "quantity", "liquidity", "fee",
                                     "report_id", "filled_quantity", "filled_notional", "remaining_quantity")}],
}  # fmt: skip


def _kinesis(aws: Any, stream_logical_id: str, payload: Any) -> dict[str, Any]:
    record = kinesis_record(payload, "4959" + "1".zfill(20), partition_key="AAPL")
    record["eventSourceARN"] = STREAM.format(name=aws.stream_name(stream_logical_id))
    return {"Records": [record]}


def _records(aws: Any, aggregate: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AuditTable"))
    items = table.query(KeyConditionExpression=Key("aggregate").eq(aggregate), ConsistentRead=True)["Items"]
    return [entry for item in items for entry in expand(item)]  # a record may hold a run of entries


@pytest.fixture
def streams(aws: Any) -> Any:
    aws.use_function_env("AuditStreamsConsumerFunction")
    from nexus_audit import on_event_streams

    return on_event_streams


def test_a_routed_parent_keeps_its_command_its_venue_fill_and_its_end(aws: Any, streams: Any) -> None:
    # GIVEN the routing service's command and the engine's record of it
    command = _kinesis(aws, "OrderCommandsStream", COMMAND)
    events = _kinesis(aws, "ExecutionEventsStream", {"events": [
        {**ENVELOPE, **FILL, "event_id": "AAPL-5", "seq": 5, "ts": "2026-01-05T14:31:00.000000Z"},
        {**ENVELOPE, **ENDED, "event_id": "AAPL-6", "seq": 6, "ts": "2026-01-05T14:31:00.000000Z"},
    ]})  # fmt: skip
    # WHEN the audit consumer reads both, the events twice (a redelivery)
    for batch in (command, events, events):
        assert streams.handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the parent order's trail holds the command, the fill and the end, each once
    trail = _records(aws, "order#P1")
    assert [(r["kind"], r["event_id"]) for r in trail] == [
        ("routed_fills_received", "cmd:route-P1"),
        ("order_venue_fill", "AAPL-5"),
        ("order_route_ended", "AAPL-6"),
    ]
    received, fill, ended = trail
    assert (received["details"]["fills"], received["details"]["end_reason"]) == ("1", "no_liquidity")
    # AND the fill names its venue, price, quantity and the venue's own fee (a rebate: negative)
    assert {k: fill["details"][k] for k in ("venue", "mic", "price", "quantity", "fee", "liquidity")} == {
        "venue": "ARCA", "mic": "ARCX", "price": "100.1", "quantity": "30", "fee": "-0.06", "liquidity": "maker",
    }  # fmt: skip
    assert fill["details"]["remaining_quantity"] == "70"
    # AND it links its account and the event id its ledger entry and settlement are kept under
    assert {"account:acc_1", "trade:AAPL-5"} <= set(fill["links"])
    # AND the end says why and what will never fill
    assert (ended["details"]["reason"], ended["details"]["remaining_quantity"]) == ("no_liquidity", "70")
    # AND no platform trade was recorded for an external fill
    assert _records(aws, "trade#AAPL-5") == []


def test_a_routed_parent_resting_on_a_venue_keeps_where_it_rests_and_its_later_commands(
    aws: Any, streams: Any
) -> None:
    # GIVEN the route's first command (30 filled, 70 rest on ARCA at 99.90) and a later one
    first = {**COMMAND, "end_reason": "rest", "working": True, "rest_venue": "ARCA", "rest_mic": "ARCX",
             "rest_price": "99.90", "time_in_force": "gtc"}
    later = {**COMMAND, "command_id": "route-P1-1", "end_reason": "rest", "working": True, "fills": [],
             "time_in_force": "gtc"}
    working = {
        "type": "route_working", "order_id": "P1", "account_id": "acc_1", "side": "buy", "quantity": "100",
        "venue": "ARCA", "mic": "ARCX", "price": "99.90", "time_in_force": "gtc", "filled_quantity": "30",
        "filled_notional": "3003.00", "remaining_quantity": "70",
    }  # fmt: skip
    events = _kinesis(aws, "ExecutionEventsStream", {"events": [
        {**ENVELOPE, **FILL, "event_id": "AAPL-5", "seq": 5, "ts": "2026-01-05T14:31:00.000000Z"},
        {**ENVELOPE, **working, "event_id": "AAPL-6", "seq": 6, "ts": "2026-01-05T14:31:00.000000Z"},
    ]})  # fmt: skip
    # WHEN the audit consumer reads them, the events twice (a redelivery)
    for batch in (_kinesis(aws, "OrderCommandsStream", first), _kinesis(aws, "OrderCommandsStream", later),
                  events, events):
        assert streams.handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the parent's trail holds both commands, the fill and where it rests, each once
    trail = _records(aws, "order#P1")
    assert sorted((r["kind"], r["event_id"]) for r in trail) == [
        ("order_route_working", "AAPL-6"),
        ("order_venue_fill", "AAPL-5"),
        ("routed_fills_received", "cmd:route-P1"),
        ("routed_fills_received", "cmd:route-P1-1"),
    ]
    by_id = {r["event_id"]: r for r in trail}
    assert {k: by_id["cmd:route-P1"]["details"][k] for k in ("working", "rest_venue", "rest_price")} == {
        "working": "true", "rest_venue": "ARCA", "rest_price": "99.90"}
    assert "rest_venue" not in by_id["cmd:route-P1-1"]["details"]
    rest = by_id["AAPL-6"]
    assert {k: rest["details"][k] for k in ("venue", "mic", "price", "time_in_force", "remaining_quantity")} == {
        "venue": "ARCA", "mic": "ARCX", "price": "99.9", "time_in_force": "gtc", "remaining_quantity": "70"}
    assert "account:acc_1" in rest["links"]
