"""batch: a stream batch stops at the first failed record; decoding of execution events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, PoisonRecord, decode_execution_events
from nexus_common.events import AcceptedEvent, BookEvent


def record(payload: Any, seq: str) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "kinesis": {
            "partitionKey": "AAPL",
            "sequenceNumber": seq,
            "data": base64.b64encode(data).decode(),
        },
        "eventSource": "aws:kinesis",
        "eventID": f"shardId-000000000000:{seq}",
    }


def batch(*names: str) -> dict[str, Any]:
    return {"Records": [record({"name": name}, str(100 + i)) for i, name in enumerate(names)]}


def run(processor: Any, event: dict[str, Any], fail: set[str]) -> tuple[list[str], Any]:
    seen: list[str] = []

    def handler(record: KinesisStreamRecord) -> None:
        name = json.loads(record.kinesis.data_as_bytes())["name"]
        seen.append(name)
        if name in fail:
            raise RuntimeError(f"cannot process {name}")

    response = process_partial_response(event=event, record_handler=handler, processor=processor)
    return seen, response


def test_powertools_default_processor_would_let_later_records_overtake() -> None:
    # GIVEN Powertools' plain BatchProcessor (the behaviour we must not use for streams)
    seen, response = run(BatchProcessor(EventType.KinesisDataStreams), batch("a", "b", "c"), {"b"})
    # THEN it processes c after b failed: c would be applied before b's retry
    assert seen == ["a", "b", "c"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "101"}]}


def test_ordered_processor_stops_at_the_first_failure_and_reports_the_rest() -> None:
    # GIVEN four records where the second fails
    seen, response = run(OrderedStreamProcessor(), batch("a", "b", "c", "d"), {"b"})
    # THEN c and d are not processed, and b, c, d are reported for retry
    assert seen == ["a", "b"]
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": "101"},
            {"itemIdentifier": "102"},
            {"itemIdentifier": "103"},
        ]
    }


def test_ordered_processor_reports_everything_when_the_first_record_fails() -> None:
    seen, response = run(OrderedStreamProcessor(), batch("a", "b"), {"a"})
    assert seen == ["a"]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["100", "101"]


def test_ordered_processor_is_reusable_across_invocations() -> None:
    processor = OrderedStreamProcessor()
    run(processor, batch("a", "b"), {"a"})
    seen, response = run(processor, batch("x", "y"), set())
    assert seen == ["x", "y"]
    assert response == {"batchItemFailures": []}


def test_ordered_processor_refuses_queues() -> None:
    with pytest.raises(ValueError):
        OrderedStreamProcessor(EventType.SQS)


EVENT_BASE = {
    "version": 1,
    "ts": "2026-01-05T14:30:00.000000Z",
    "correlation_id": "c",
    "symbol": "AAPL",
    "epoch": 0,
}


def kinesis(payload: Any) -> KinesisStreamRecord:
    return KinesisStreamRecord(record(payload, "1"))


def test_decode_returns_typed_events_in_order_and_skips_unknown_types() -> None:
    payload = {
        "events": [
            {
                **EVENT_BASE,
                "event_id": "AAPL-1",
                "type": "accepted",
                "seq": 1,
                "order_id": "o",
                "account_id": "a",
                "side": "buy",
                "order_type": "limit",
                "price": "1.5",
                "quantity": "10",
                "time_in_force": "gtc",
            },
            {**EVENT_BASE, "event_id": "AAPL-2", "type": "halted_v2", "seq": 2},
            {
                **EVENT_BASE,
                "event_id": "AAPL-3",
                "type": "book",
                "seq": 3,
                "side": "buy",
                "price": "1.5",
                "quantity": "10",
                "orders": 1,
            },
        ]
    }
    events = decode_execution_events(kinesis(payload))
    assert [type(e) for e in events] == [AcceptedEvent, BookEvent]
    assert [e.seq for e in events] == [1, 3]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        {"no_events": []},
        {"events": "x"},
        {"events": [1]},
        {"events": [{**EVENT_BASE, "event_id": "AAPL-1", "type": "book", "seq": 1}]},
    ],
)
def test_decode_raises_poison_record_for_bad_payloads(payload: Any) -> None:
    with pytest.raises(PoisonRecord):
        decode_execution_events(kinesis(payload))
