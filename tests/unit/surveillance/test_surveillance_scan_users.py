"""A historical scan for some users detects on every owner's events of the scanned symbols (a
pattern is judged against the whole market), then keeps the alerts that name those users."""

from __future__ import annotations

from typing import Any

import pytest
from lambda_events import FakeLambdaContext, sqs_event
from surv_service_helpers import Flow, read_queue, request, wash_episode
from test_surveillance_thresholds_scans import put_audit


@pytest.fixture
def api(aws: Any, people: Any) -> Any:
    aws.use_function_env("SurveillanceApiFunction")
    from nexus_surveillance.api import app

    return app


def _scan(aws: Any, api: Any, users: list[str]) -> list[dict[str, Any]]:
    body = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z", "symbols": ["AAPL"], "users": users}
    status, started = request(api, "POST", "/v1/surveillance/scans", body=body)
    assert status == 202, started
    (message,) = read_queue(aws, "SurveillanceScansQueue")
    aws.use_function_env("SurveillanceScanFunction")
    from nexus_surveillance import on_scans

    assert on_scans.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    aws.use_function_env("SurveillanceApiFunction")
    status, got = request(api, "GET", "/v1/surveillance/scans/{scan_id}",
                          params={"scan_id": started["scan"]["scan_id"]})  # fmt: skip
    assert status == 200 and got["scan"]["status"] == "done", got
    alerts: list[dict[str, Any]] = got["scan"]["alerts"]
    return alerts


def _history(flow: Flow) -> list[dict[str, Any]]:
    """usr_b trades most of its volume back and forth with usr_c (a round trip), and four like
    trades back and forth with usr_a (a small share of usr_b's volume: no round trip); usr_a
    trades with itself once; usr_c's single account trades with itself once."""
    events: list[dict[str, Any]] = []
    for i in range(4):
        events.append(flow.trade((f"c{i}", "acc_c"), (f"bc{i}", "acc_b"), "100", "100.00",
                                 "buy" if i % 2 else "sell", 1_000 + i * 100))  # fmt: skip
    for i in range(4):
        maker, taker = (("a", "acc_a1"), ("b", "acc_b")) if i % 2 else (("b", "acc_b"), ("a", "acc_a1"))
        events.append(flow.trade((f"{maker[0]}m{i}", maker[1]), (f"{taker[0]}t{i}", taker[1]), "10", "100.00",
                                 "buy", 2_000 + i * 1_000))  # fmt: skip
    events += wash_episode(flow, 10_000)
    events.append(flow.trade(("cc1", "acc_c"), ("cc2", "acc_c"), "5", "100.00", "sell", 20_000))
    return events


def test_a_scan_for_a_user_judges_the_whole_market_and_keeps_that_users_alerts(aws: Any, api: Any) -> None:
    # GIVEN the day's history in the audit trail
    put_audit(aws, _history(Flow()))
    # WHEN compliance scans AAPL for usr_a
    alerts = _scan(aws, api, ["usr_a"])
    # THEN usr_a's own wash trade is found, no round trip is alerted between usr_a and usr_b (usr_b's
    # trades with usr_c, events of neither scanned user, count in its volume), and usr_c's
    # self-trade is not among the alerts
    assert [(a["detector"], a["severity"], a["users"]) for a in alerts] == [
        ("wash_trading", "CRITICAL", ["usr_a"])]  # fmt: skip


def test_a_scan_for_two_users_keeps_the_alerts_of_either(aws: Any, api: Any) -> None:
    # GIVEN the same history WHEN scanned for usr_a and usr_c
    put_audit(aws, _history(Flow()))
    alerts = _scan(aws, api, ["usr_a", "usr_c"])
    # THEN both self-trades are found, and usr_c's round trips with usr_b (most of the volume of
    # each), each once
    assert sorted((a["detector"], a["severity"], tuple(a["users"])) for a in alerts) == [
        ("wash_trading", "CRITICAL", ("usr_a",)), ("wash_trading", "CRITICAL", ("usr_c",)),
        ("wash_trading", "HIGH", ("usr_b", "usr_c"))]  # fmt: skip
