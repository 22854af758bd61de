"""Each audit source, from its JSON fixture (tests/events/audit_*.json) to the records it appends:
kinds, links between related records (a trade and its two orders, an OCO's legs, a fill's ledger
entry and settlement), details as strings, and nothing for what is not an audit fact."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from lambda_events import FakeLambdaContext, kinesis_record, load_event
from nexus_common.audit_items import day_key, expand

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/{name}"


def _records(aws: Any, aggregate: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AuditTable"))
    items = table.query(KeyConditionExpression=Key("aggregate").eq(aggregate), ConsistentRead=True)["Items"]
    return [entry for item in items for entry in expand(item)]  # a record may hold a run of entries


def _kinds(aws: Any, aggregate: str) -> list[str]:
    return [str(r["kind"]) for r in _records(aws, aggregate)]


def _kinesis(aws: Any, stream_logical_id: str, *payloads: Any) -> dict[str, Any]:
    name = aws.stream_name(stream_logical_id)
    records = []
    for i, payload in enumerate(payloads, start=1):
        record = kinesis_record(payload, f"4959{i:020d}", partition_key="pk")
        record["eventSourceARN"] = STREAM.format(name=name)
        records.append(record)
    return {"Records": records}


def _dynamodb(aws: Any, fixture: str, table_logical_id: str, placeholder: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event(fixture))
    for record in event["Records"]:
        record["eventSourceARN"] = record["eventSourceARN"].replace(placeholder, aws.table_name(table_logical_id))
    return {"Records": event["Records"]}


@pytest.fixture
def streams(aws: Any) -> Any:
    aws.use_function_env("AuditStreamsConsumerFunction")
    from nexus_audit import on_event_streams

    return on_event_streams


@pytest.fixture
def tables(aws: Any) -> Any:
    aws.use_function_env("AuditTablesConsumerFunction")
    from nexus_audit import on_table_streams

    return on_table_streams


def test_engine_events_become_order_trade_and_oco_records_linked_together(aws: Any, streams: Any) -> None:
    # GIVEN one execution-events record of the engine (fixture)
    event = _kinesis(aws, "ExecutionEventsStream", {"events": load_event("audit_execution_events.json")["events"]})
    # WHEN the audit consumer reads it
    assert streams.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN each order has its engine events in order; book deltas and unknown types are not recorded
    assert _kinds(aws, "order#MAKER") == ["order_accepted", "order_filled", "order_expired"]
    assert _kinds(aws, "order#TAKER") == ["order_accepted", "order_filled"]
    # AND the trade is linked to both orders, and each order's fill to the trade and the other order
    (trade,) = _records(aws, "trade#AAPL-4")
    assert trade["kind"] == "trade" and {"order:MAKER", "order:TAKER"} <= set(trade["links"])
    assert (trade["details"]["price"], trade["details"]["quantity"]) == ("101.5", "40")
    maker_fill = _records(aws, "order#MAKER")[1]
    assert {"trade:AAPL-4", "order:TAKER"} <= set(maker_fill["links"])
    assert maker_fill["details"]["liquidity"] == "maker" and maker_fill["details"]["remaining_quantity"] == "60"
    # AND an OCO's legs are linked to each other and to their group, which sees both legs' events
    tp, sl = _records(aws, "order#G1.tp"), _records(aws, "order#G1.sl")
    assert {"order:G1.sl", "oco:G1"} <= set(tp[0]["links"])
    assert [r["kind"] for r in sl] == ["order_accepted", "order_cancelled"]
    assert {"order:G1.tp", "oco:G1"} <= set(sl[1]["links"]) and sl[1]["details"]["reason"] == "oco"
    assert _kinds(aws, "oco#G1") == ["leg_accepted", "leg_accepted", "leg_cancelled"]
    # AND records keep the engine's facts as strings: instant, epoch, sequence, expiry
    expired = _records(aws, "order#MAKER")[2]
    assert expired["ts"] == "2026-01-05T21:00:00.000000Z" and expired["day"] == day_key("2026-01-05", "order#MAKER")
    assert (expired["details"]["epoch"], expired["details"]["engine_seq"], expired["details"]["reason"]) == (
        "3", "8", "day")
    assert all(isinstance(v, str) for v in expired["details"].values())


def test_commands_become_received_and_requested_records_with_the_risk_outcome(aws: Any, streams: Any) -> None:
    # GIVEN the order-commands records of the fixture
    commands = load_event("audit_order_commands.json")["commands"]
    # WHEN the audit consumer reads them
    assert streams.handler(_kinesis(aws, "OrderCommandsStream", *commands), FakeLambdaContext()) == {
        "batchItemFailures": []}
    # THEN the order shows its receipt (with the pre-trade risk outcome it carries) and the cancel request
    received, cancel = _records(aws, "order#ORD1")
    assert (received["kind"], cancel["kind"]) == ("order_received", "cancel_requested")
    assert received["details"]["risk_decision"] == "accepted"
    assert received["details"]["risk_reserved_amount"] == "1500.45"
    assert (received["details"]["price"], received["details"]["client_order_id"]) == ("150.00", "c-1")
    assert received["actor"] == "account:acc_1" and received["event_id"] == "cmd:ORD1:new"
    # AND an OCO is received on its group and on each leg, the legs linked to each other
    assert _kinds(aws, "oco#G1") == ["oco_received"]
    (leg,) = _records(aws, "order#G1.sl")
    assert leg["details"]["leg"] == "sl" and {"order:G1.tp", "oco:G1"} <= set(leg["links"])
    # AND a command without a risk object was sent after pre-trade risk accepted it
    assert (leg["details"]["risk_decision"], leg["details"]["risk_basis"]) == ("accepted", "sent_after_pre_trade_risk")
    # AND a mass cancel is on the account; a clock tick is nothing
    assert _kinds(aws, "account#acc_1") == ["mass_cancel_requested"]
    assert _records(aws, "order#clock-1") == []


def test_a_published_audit_event_is_appended_as_is(aws: Any, streams: Any) -> None:
    # GIVEN a risk refusal the orders service published on audit-events
    published = load_event("audit_event_risk_refused.json")
    # WHEN the audit consumer reads it, twice (the publisher retried)
    event = _kinesis(aws, "AuditEventsStream", published, published)
    assert streams.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the account has it once, with its actor, source, links and details
    (record,) = _records(aws, "account#acc_1")
    assert (record["kind"], record["actor"], record["source"], record["seq"]) == (
        "risk_refused", "usr_alice", "orders", 1)
    assert record["links"] == ["order:ORD9"] and record["details"]["reason"] == "insufficient_buying_power"
    # AND the order it refused shows the refusal too, linked back to the account
    (on_order,) = _records(aws, "order#ORD9")
    assert (on_order["kind"], on_order["event_id"], on_order["links"]) == (
        "risk_refused", "risk:acc_1:c-9", ["account:acc_1"])


def test_a_fill_entry_of_the_ledger_is_recorded_on_its_account_and_its_trade(aws: Any, tables: Any) -> None:
    # GIVEN the ledger stream record of a taker's fill entry
    event = _dynamodb(aws, "audit_ledger_stream.json", "LedgerTable", "LEDGER_TABLE")
    # WHEN the audit consumer reads it
    assert tables.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the account and the trade have the entry, with its legs, linked to each other
    (on_account,), (on_trade,) = _records(aws, "account#acc_taker"), _records(aws, "trade#AAPL-4")
    assert on_account["kind"] == on_trade["kind"] == "ledger_entry"
    assert on_account["event_id"] == "ledger:fill:AAPL-4:taker" and "trade:AAPL-4" in on_account["links"]
    assert "account:acc_taker" in on_trade["links"]
    assert "acc_taker/pending_cash/USD -4060" in on_trade["details"]["legs"]
    assert on_trade["ts"] == "2026-01-05T14:30:01.000000Z"


def test_an_obligation_created_then_settled_is_recorded_on_its_trade(aws: Any, tables: Any) -> None:
    # GIVEN the settlements stream records of an obligation created, then settled by a batch
    event = _dynamodb(aws, "audit_settlements_stream.json", "SettlementsTable", "SETTLEMENTS_TABLE")
    # WHEN the audit consumer reads them, and again (redelivery)
    for _ in range(2):
        assert tables.handler(copy.deepcopy(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the trade shows both steps once, the second linked to the settlement batch
    created, settled = _records(aws, "trade#AAPL-4")
    assert (created["kind"], settled["kind"]) == ("obligation_created", "obligation_settled")
    assert settled["details"]["previous_status"] == "settling"
    assert "settlement_batch:acc_taker:2026-01-07#AAPL#001" in settled["links"]
    assert _kinds(aws, "account#acc_taker") == ["obligation_created", "obligation_settled"]


def test_entries_named_by_their_place_in_a_source_carry_it_as_their_mark(aws: Any, tables: Any) -> None:
    from nexus_audit.records import RECEIVED, from_command, from_engine_events
    from nexus_common.events import ENGINE_EVENT_ADAPTER

    # GIVEN a ledger stream record, the engine's events and a command
    (record,) = _dynamodb(aws, "audit_ledger_stream.json", "LedgerTable", "LEDGER_TABLE")["Records"]
    settings = tables.tables_settings()
    engine = [ENGINE_EVENT_ADAPTER.validate_python(e) for e in load_event("audit_execution_events.json")["events"]
              if e.get("type") in {"accepted", "trade"}]  # fmt: skip
    # WHEN they become entries
    ledger = tables.decode_dynamodb(record, settings)
    executions = from_engine_events(engine)
    command = {"command_id": "c-1", "order_id": "o-1", "account_id": "a", "ts": "2026-01-05T14:30:00Z"}
    new, oco = from_command({**command, "type": "new"}), from_command({**command, "type": "oco"})
    cancel = from_command({**command, "type": "cancel"})
    # THEN a stream record's entries carry its stream and sequence number, and an engine event's its
    # symbol and seq (their ids say the same)
    sequence = int(record["dynamodb"]["SequenceNumber"])
    assert {e.mark for e in ledger} == {(f"s:{hashlib.sha256(record['eventSourceARN'].encode()).hexdigest()[:12]}",
                                         sequence)}  # fmt: skip
    assert executions and all(e.mark == (f"e:{e.event_id.split('-')[0]}", int(e.event_id.split("-")[1]))
                              for e in executions)  # fmt: skip
    # AND the command that creates an order or a group is its aggregate's receipt; a cancel has no mark
    assert [e.mark for e in new + oco] == [RECEIVED] * 4 and [e.mark for e in cancel] == [None]
    # AND a stream record without a numeric sequence number gives entries without a mark
    record["dynamodb"]["SequenceNumber"] = "not-a-number"
    assert all(e.mark is None for e in tables.decode_dynamodb(record, settings))


def test_a_record_of_another_stream_is_refused_not_guessed(aws: Any, streams: Any) -> None:
    # GIVEN a record from a stream the consumer does not audit
    event = _kinesis(aws, "ExecutionEventsStream", {"events": []})
    event["Records"][0]["eventSourceARN"] = STREAM.format(name="some-other-stream")
    # WHEN it is read
    answer = streams.handler(event, FakeLambdaContext())
    # THEN it is reported failed (retried, then the DLQ), and nothing is written
    assert answer["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AuditTable"))
    assert table.scan()["Items"] == []


def test_a_published_aggregate_type_is_keyed_in_one_safe_form() -> None:
    from nexus_audit.records import from_audit_event
    from nexus_common.audit import AuditEvent

    # GIVEN audit events whose publishers spelled their aggregate types loosely
    def published(aggregate_type: str) -> AuditEvent:
        return AuditEvent(kind="key_revoked", aggregate_type=aggregate_type, aggregate_id="nxk_AbCd1234", source="auth")

    # WHEN they are mapped
    types = [from_audit_event(published(t))[0].aggregate_type for t in ("API-Key", "api_key", "claim", "9x")]
    # THEN the keys are lower-case words, one per spelling, and never the store's own "claim"
    assert types == ["api_key", "api_key", "claim_", "t_9x"]


def test_a_command_type_not_known_yet_is_kept_on_its_order_not_dropped() -> None:
    from nexus_audit.records import from_command

    # GIVEN a command of a type a newer orders API might send
    command = {"type": "amend", "command_id": "ORD1:amend:1", "order_id": "ORD1", "account_id": "acc_1",
               "symbol": "AAPL", "quantity": "5", "ts": "2026-01-05T14:30:00Z"}  # fmt: skip
    # WHEN it is mapped
    (entry,) = from_command(command)
    # THEN the order's life keeps it, with what it carried
    assert (entry.aggregate, entry.kind, entry.event_id) == ("order#ORD1", "amend_requested", "cmd:ORD1:amend:1")
    assert entry.details["quantity"] == "5"


@pytest.mark.parametrize("target", ["ORD1", "oco-7f3c"])
def test_a_fence_command_is_an_entry_fence_requested_on_its_order_or_oco_group(target: str) -> None:
    from datetime import UTC, datetime

    from nexus_audit.records import from_command
    from nexus_common.events import FenceCommand

    # GIVEN the entry sweep's fence of an order, or of an OCO group (its group id)
    fence = FenceCommand(command_id=f"fence:{target}", order_id=target, account_id="acc_1", symbol="AAPL",
                         ts=datetime(2026, 1, 5, 14, 30, tzinfo=UTC))  # fmt: skip
    # WHEN it is mapped
    (entry,) = from_command(fence.model_dump(mode="json"))
    # THEN it is kept on the order, or on the group (linked to its legs), by its own name
    aggregate = "oco" if target.startswith("oco-") else "order"
    assert (entry.aggregate, entry.kind, entry.event_id) == (f"{aggregate}#{target}", "entry_fence_requested",
                                                             f"cmd:fence:{target}")  # fmt: skip
    assert entry.details == {"command_id": f"fence:{target}", "account_id": "acc_1", "symbol": "AAPL"}
    assert entry.actor == "account:acc_1" and entry.mark is None
    legs = (f"order:{target}.tp", f"order:{target}.sl") if aggregate == "oco" else ()
    assert entry.links == ("account:acc_1", *legs)


def test_a_replace_fence_is_a_replace_fence_requested_on_its_order() -> None:
    from datetime import UTC, datetime

    from nexus_audit.records import from_command
    from nexus_common.events import FenceCommand

    # GIVEN the orders API's fence of a replace it could not confirm sent
    fence = FenceCommand(command_id="fence-ORD1:replace:2", order_id="ORD1", account_id="acc_1", symbol="AAPL",
                         ts=datetime(2026, 1, 5, 14, 30, tzinfo=UTC), replace_command_id="ORD1:replace:2")  # fmt: skip
    # WHEN it is mapped
    (entry,) = from_command(fence.model_dump(mode="json"))
    # THEN it is kept on the order, naming the replace
    assert (entry.aggregate, entry.kind) == ("order#ORD1", "replace_fence_requested")
    assert entry.details["replace_command_id"] == "ORD1:replace:2" and entry.links == ("account:acc_1",)
