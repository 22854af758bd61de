"""A routed order's external fills are not trades of this venue: the surveillance decoders skip
the ``routed_fills`` command and the ``venue_fill`` / ``route_ended`` events without an error,
and the detectors never see them (no detector state, no alert)."""

from __future__ import annotations

from typing import Any

from lambda_events import FakeLambdaContext, load_event
from nexus_surveillance.events import from_execution_event, from_order_command
from nexus_surveillance.history import engine_record
from surv_service_helpers import alert_items, kinesis_event


def test_the_decoders_skip_routed_fills_and_their_events() -> None:
    # GIVEN the routing service's command and the engine's record of it
    routed = load_event("routed_fills.json")
    # WHEN they are decoded for the detectors
    # THEN neither is an order fact of this venue (and neither is an error)
    assert from_order_command(routed["command"]) is None
    assert from_execution_event({"events": routed["events"]}) == []
    assert [from_execution_event(event) for event in routed["events"]] == [[], [], []]


def test_the_consumer_takes_routed_records_without_failing_or_touching_the_detectors(
    aws: Any, redis_db: Any, people: Any
) -> None:
    aws.use_function_env("SurveillanceConsumerFunction")
    from nexus_surveillance import on_streams

    routed = load_event("routed_fills.json")
    # WHEN the command and the events reach the consumer (each on its own stream)
    commands = on_streams.handler(kinesis_event([routed["command"]], commands=True), FakeLambdaContext())
    events = on_streams.handler(kinesis_event([{"events": routed["events"]}]), FakeLambdaContext())
    # THEN no record failed, no detector state was written, and no alert was raised
    assert commands == events == {"batchItemFailures": []}
    assert redis_db.keys("*surveillance:*") == []  # no generation, journal, snapshot or lag
    assert alert_items(aws) == []


def test_a_route_resting_on_an_external_venue_is_skipped_by_the_decoders_and_the_history() -> None:
    # GIVEN a working route's commands and records, and its route_working as the audit trail keeps it
    working = load_event("routed_working.json")
    audit_item = {"source": "execution-events", "kind": "order_route_working", "aggregate_type": "order",
                  "aggregate_id": "PARENT", "event_id": "AAPL-6", "ts": "2026-01-05T14:31:00.000000Z",
                  "details": {"engine_seq": "6", "symbol": "AAPL", "venue": "BATS-SIM", "price": "100"}}
    # WHEN they are decoded for the detectors, THEN none is an order fact of this venue
    assert [from_order_command(command) for command in working["commands"]] == [None, None, None]
    assert [from_execution_event(record) for record in working["records"]] == [[], [], []]
    assert engine_record(audit_item) is None


def test_the_consumer_takes_a_working_routes_records_without_touching_the_detectors(
    aws: Any, redis_db: Any, people: Any
) -> None:
    aws.use_function_env("SurveillanceConsumerFunction")
    from nexus_surveillance import on_streams

    working = load_event("routed_working.json")
    commands = on_streams.handler(kinesis_event(working["commands"], commands=True), FakeLambdaContext())
    events = on_streams.handler(kinesis_event(working["records"]), FakeLambdaContext())
    assert commands == events == {"batchItemFailures": []}
    assert redis_db.keys("*surveillance:*") == []
    assert alert_items(aws) == []
