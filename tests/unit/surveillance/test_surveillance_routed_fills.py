"""A routed order's external fills are not trades of this venue: the surveillance decoders skip
the ``routed_fills`` command and the ``venue_fill`` / ``route_ended`` events without an error,
and the detectors never see them (no detector state, no alert)."""

from __future__ import annotations

from typing import Any

from lambda_events import FakeLambdaContext, load_event
from nexus_surveillance.events import from_execution_event, from_order_command
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
