"""The live path raises the same alerts as the library's scan() over the same events, however the
stream splits them into batches and whichever container applies each batch."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from surv_service_helpers import Flow, alert_items, kinesis_event, wash_episode

DAY_NS = 86_400 * 1_000_000_000


def episodes() -> list[dict[str, Any]]:
    """Engine events of two symbols: a same-owner wash trade and a spoof on AAPL, usr_a marking
    MSFT's close, benign trading in between."""
    aapl, msft = Flow("AAPL"), Flow("MSFT")
    events = [
        *wash_episode(aapl, 0),
        aapl.accepted("sp", "acc_a1", "buy", "5000", "99.00", 1_000),
        aapl.accepted("bid", "acc_b", "buy", "100", "100.00", 1_100),
        aapl.accepted("ask", "acc_a2", "sell", "100", "100.00", 1_200),
        aapl.trade(("bid", "acc_b"), ("ask", "acc_a2"), "100", "100.00", "sell", 1_200),
        aapl.cancelled("sp", "acc_a1", "5000", 1_900),
        msft.trade(("m0", "acc_b"), ("t0", "acc_c"), "10", "300.00", "buy", 22_800_000),
        msft.trade(("m1", "acc_b"), ("t1", "acc_a1"), "10", "300.60", "buy", 23_220_000),
        msft.trade(("m2", "acc_b"), ("t2", "acc_a1"), "10", "301.50", "buy", 23_280_000),
        aapl.accepted("x1", "acc_b", "buy", "5", "100.00", 23_300_000),
        aapl.cancelled("x1", "acc_b", "5", 23_400_000),
    ]
    return events


def scan_ids(events: list[dict[str, Any]]) -> set[str]:
    from nexus_surveillance.events import from_execution_event
    from nexus_surveillance.scan import scan

    owners = {"acc_a1": "usr_a", "acc_a2": "usr_a", "acc_b": "usr_b", "acc_c": "usr_c"}
    decoded = [e for raw in events for e in from_execution_event(raw, owners)]
    return {a.id for a in scan(decoded)}


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_live_batches_raise_what_the_scan_raises(aws: Any, redis_db: Any, people: Any, batch_size: int) -> None:
    # GIVEN the events as the engine records them, a record per event
    aws.use_function_env("SurveillanceConsumerFunction")
    from nexus_surveillance.on_streams import build_live

    events = episodes()
    records = kinesis_event([{"events": [e]} for e in events])["Records"]
    # WHEN the stream delivers them in batches of batch_size, each to a new container every other
    # batch, the first batch again at the end, and the flush runs a day after the last event
    container = build_live()
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    for number, batch in enumerate([*batches, batches[0]]):
        if number % 2:
            container = build_live()
        pairs = [(r["kinesis"]["sequenceNumber"], base64.b64decode(r["kinesis"]["data"])) for r in batch]
        assert container.process(pairs, commands=False).failed == []
    from nexus_surveillance.events import ts_ns

    container.flush(max(ts_ns(e["ts"]) for e in events) + DAY_NS)
    # THEN the stored alerts are exactly the scan's: the same ids, each once
    stored = [a["alert_id"] for a in alert_items(aws)]
    assert len(stored) == len(set(stored))
    assert set(stored) == scan_ids(events)
    assert {a.split("-")[0] for a in stored} >= {"wash_trading", "spoofing", "marking_the_close"}
