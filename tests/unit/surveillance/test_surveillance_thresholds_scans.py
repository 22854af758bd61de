"""Thresholds (validated by the detectors' typed models, versioned, audited, live within the
consumer's cache bound), trading profiles and historical scans over the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from lambda_events import FakeLambdaContext, sqs_event
from surv_service_helpers import (
    T0,
    Flow,
    alert_items,
    kinesis_event,
    read_queue,
    read_stream,
    request,
    wash_episode,
)  # fmt: skip


@pytest.fixture
def api(aws: Any, people: Any) -> Any:
    aws.use_function_env("SurveillanceApiFunction")
    from nexus_surveillance.api import app

    return app


def put_audit(aws: Any, events: list[dict[str, Any]]) -> None:
    """The audit trail's records of engine events, written by the audit service's own code (its
    records may hold runs of entries: the history reads them as one record per entry)."""
    from nexus_audit.records import from_engine_events
    from nexus_audit.repo import DynamoAuditLog
    from nexus_audit.sequencing import append
    from nexus_common.events import ENGINE_EVENT_ADAPTER

    parsed = [ENGINE_EVENT_ADAPTER.validate_python({"version": 1, "epoch": 0, **event}) for event in events]
    entries = list(enumerate(from_engine_events(parsed)))
    log = DynamoAuditLog(aws.table_name("AuditTable"))
    assert append(log, entries, lambda: T0).first_failed is None


# -- thresholds ------------------------------------------------------------------------------------


def test_thresholds_are_validated_versioned_and_audited(aws: Any, api: Any) -> None:
    path = "/v1/surveillance/thresholds/{detector}"
    params = {"detector": "spoofing"}
    # GIVEN no change yet: the detector's defaults, version 0
    status, body = request(api, "GET", path, params=params)
    assert status == 200 and body["version"] == 0 and body["thresholds"]["min_quantity"] == "1000"
    # WHEN compliance changes them twice
    status, body = request(api, "PUT", path, params=params, body={"thresholds": {"min_quantity": "400"}, "note": "a"})
    assert status == 200 and body["version"] == 1 and body["thresholds"]["min_quantity"] == "400", body
    new = {"thresholds": {"min_quantity": "300", "max_lifetime_ms": 2000}, "note": "b", "expected_version": 1}
    status, body = request(api, "PUT", path, params=params, body=new)
    # THEN each is a version, the latest in force, the history kept, each change audited
    assert status == 200 and body["version"] == 2, body
    assert body["thresholds"]["max_lifetime_ms"] == 2000 and body["thresholds"]["max_filled_fraction"] == "0.1"
    assert [h["version"] for h in body["history"]] == [2, 1] and body["history"][0]["updated_by"] == "usr_c"
    changes = [e for e in read_stream(aws, "AuditEventsStream") if e["kind"] == "surveillance_thresholds_changed"]
    assert [e["details"]["version"] for e in changes] == ["1", "2"]
    # AND a stale expected_version, a bad value, an unknown key, an unknown detector are refused
    stale = {"thresholds": {"min_quantity": "200"}, "expected_version": 1}
    assert request(api, "PUT", path, params=params, body=stale)[1]["error"]["code"] == "version_conflict"
    status, body = request(api, "PUT", path, params=params, body={"thresholds": {"min_quantity": "-5"}})
    assert (status, body["error"]["field"]) == (400, "thresholds.min_quantity")
    status, body = request(api, "PUT", path, params=params, body={"thresholds": {"colour": 1}})
    assert (status, body["error"]["code"]) == (400, "unknown_field")
    status, body = request(api, "PUT", path, params={"detector": "astrology"}, body={"thresholds": {}})
    assert (status, body["error"]["code"]) == (404, "unknown_detector")
    assert request(api, "GET", path, params=params)[1]["version"] == 2


def test_a_thresholds_change_reaches_the_live_detectors_within_the_cache_bound(
    aws: Any, api: Any, redis_db: Any
) -> None:
    # GIVEN the live path, its thresholds cached for 5 s (a fake monotonic clock)
    from nexus_common.sqs import SqsBatchSender
    from nexus_surveillance.repo import (
        AccountOwners,
        AwsAlertEffects,
        CachedThresholds,
        ComplianceRecipients,
        DynamoAlertStore,
        KillSwitch,
        RedisSymbolState,
        ThresholdsRepo,
    )  # fmt: skip
    from nexus_surveillance.service import LiveSurveillance

    env = aws.use_function_env("SurveillanceConsumerFunction")
    clock = {"now": 0.0}
    live = LiveSurveillance(
        RedisSymbolState(redis_db, env["SURVEILLANCE_STATE_PREFIX"]), AccountOwners(env["ACCOUNTS_TABLE"]),
        CachedThresholds(ThresholdsRepo(env["SURVEILLANCE_THRESHOLDS_TABLE"]), 5, lambda: clock["now"]),
        DynamoAlertStore(env["SURVEILLANCE_ALERTS_TABLE"]),
        AwsAlertEffects(env["SURVEILLANCE_ALERTS_STREAM"], env["AUDIT_STREAM"],
                        SqsBatchSender(env["NOTIFICATIONS_QUEUE_URL"]), ComplianceRecipients(env["USERS_TABLE"]),
                        KillSwitch(env["ACCOUNTS_TABLE"])),
    )  # fmt: skip
    flow = Flow()

    def spoof_episode(n: int) -> list[tuple[str, bytes]]:
        """usr_a: a 500 buy cancelled within a second while selling 100 to usr_b."""
        at = n * 60_000
        events = [
            flow.accepted(f"spoof{n}", "acc_a1", "buy", "500", "99.00", at),
            flow.accepted(f"bid{n}", "acc_b", "buy", "100", "100.00", at + 100),
            flow.accepted(f"sell{n}", "acc_a2", "sell", "100", "100.00", at + 200),
            flow.trade((f"bid{n}", "acc_b"), (f"sell{n}", "acc_a2"), "100", "100.00", "sell", at + 200),
            flow.cancelled(f"spoof{n}", "acc_a1", "500", at + 900),
        ]
        record = kinesis_event([{"events": events}], first=n)["Records"][0]
        import base64

        return [(record["kinesis"]["sequenceNumber"], base64.b64decode(record["kinesis"]["data"]))]

    # WHEN a 500 spoof passes under the default 1000 minimum
    assert live.process(spoof_episode(1), commands=False).alerts == []
    # AND compliance lowers the minimum to 400
    body = {"thresholds": {"min_quantity": "400"}, "note": "tighter"}
    assert request(api, "PUT", "/v1/surveillance/thresholds/{detector}", params={"detector": "spoofing"},
                   body=body)[0] == 200  # fmt: skip
    # THEN within the cache bound the old thresholds still apply, and after it the new ones do
    clock["now"] = 4.0
    assert live.process(spoof_episode(2), commands=False).alerts == []
    clock["now"] = 5.5
    raised = live.process(spoof_episode(3), commands=False).alerts
    assert len(raised) == 1 and raised[0].startswith("spoofing-")
    assert [a["alert_id"] for a in alert_items(aws)] == raised


# -- profiles -----------------------------------------------------------------------------------


def test_a_profile_reads_ratios_timing_self_trades_volume_and_alerts(aws: Any, people: Any) -> None:
    # GIVEN usr_a's history in the audit trail: 3 orders, one cancelled after 400 ms, one self-trade
    flow = Flow()
    events = [
        flow.accepted("s1", "acc_a1", "buy", "900", "99.00", 0),
        flow.cancelled("s1", "acc_a1", "900", 400),
        *wash_episode(flow, 1000),
        flow.accepted("b1", "acc_b", "buy", "300", "100.00", 2000),
        flow.trade(("b1", "acc_b"), ("x1", "acc_c"), "300", "100.00", "sell", 2100),
    ]
    put_audit(aws, events)
    from nexus_surveillance.repo import AuditHistory, DynamoAlertStore, Lookups
    from nexus_surveillance.service import ProfileService

    env = aws.use_function_env("SurveillanceApiFunction")
    service = ProfileService(
        Lookups(env["ORDERS_TABLE"], env["TRADES_TABLE"], env["USERS_TABLE"]), AuditHistory(env["AUDIT_TABLE"]),
        DynamoAlertStore(env["SURVEILLANCE_ALERTS_TABLE"]), clock=lambda: T0 + timedelta(hours=1),
    )  # fmt: skip
    # WHEN compliance reads usr_a's profile over a day
    profile = service.profile("usr_a", 1)
    # THEN the figures are usr_a's
    assert (profile["orders"], profile["orders_traded"], profile["order_to_trade_ratio"]) == (3, 2, "1.5000")
    assert (profile["cancelled"], profile["cancel_rate"]) == (1, "0.3333")
    assert profile["cancel_timing_ms"] == {"median": 400, "p10": 400, "within_1s": 1}
    assert profile["self_trades"] == 1
    assert profile["volume_by_symbol"] == [{"symbol": "AAPL", "quantity": "200", "notional": "20000.00",
                                            "share": "0.2500"}]  # fmt: skip


BAD_PROFILES = [
    ("usr_nobody", {}, 404, "user_not_found"),
    ("usr_a", {"lookback_days": "0"}, 400, "invalid_field"),
    ("usr_a", {"lookback_days": "91"}, 400, "invalid_field"),
    ("usr_a", {"lookback_days": "ten"}, 400, "invalid_field"),
]


def test_bad_profile_requests(api: Any) -> None:
    for user_id, query, status, code in BAD_PROFILES:
        got, body = request(api, "GET", "/v1/surveillance/profiles/{user_id}", params={"user_id": user_id},
                            query=query)  # fmt: skip
        assert (got, body["error"]["code"]) == (status, code), (user_id, query)


# -- scans --------------------------------------------------------------------------------------


def test_a_scan_runs_asynchronously_over_the_stored_history(aws: Any, api: Any) -> None:
    # GIVEN a same-owner trade in the audit trail, and a benign one
    flow = Flow()
    put_audit(aws, [*wash_episode(flow, 0), flow.accepted("b1", "acc_b", "buy", "5", "100.00", 500)])
    # WHEN compliance starts a scan of that day
    body = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z", "symbols": ["AAPL"]}
    status, started = request(api, "POST", "/v1/surveillance/scans", body=body)
    assert status == 202 and started["scan"]["status"] == "queued", started
    scan_id = started["scan"]["scan_id"]
    # THEN it is queued, the worker runs it, and its status and alerts are readable
    (message,) = read_queue(aws, "SurveillanceScansQueue")
    aws.use_function_env("SurveillanceScanFunction")
    from nexus_surveillance import on_scans

    assert on_scans.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    aws.use_function_env("SurveillanceApiFunction")
    status, got = request(api, "GET", "/v1/surveillance/scans/{scan_id}", params={"scan_id": scan_id})
    assert status == 200 and got["scan"]["status"] == "done", got
    assert [(a["detector"], a["severity"], a["accounts"]) for a in got["scan"]["alerts"]] == [
        ("wash_trading", "CRITICAL", ["acc_a1", "acc_a2"])]  # fmt: skip
    # AND a scan neither halts nor stores live alerts
    assert alert_items(aws) == []


BAD_SCANS = [
    ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "invalid_range", "from"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "invalid_range", "from"),
    ({"from": "2026-03-01T00:00:00", "to": "2026-03-02T00:00:00Z"}, "invalid_field", "from"),
    ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "symbols": ["aapl"]}, "invalid_field",
     "symbols.0"),
    ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "symbols": ["A"] * 51}, "invalid_field",
     "symbols"),
    ({"to": "2026-03-02T00:00:00Z"}, "missing_field", "from"),
]  # fmt: skip


def test_bad_scan_requests_are_400_and_an_unknown_scan_404(api: Any) -> None:
    for body, code, field in BAD_SCANS:
        status, answer = request(api, "POST", "/v1/surveillance/scans", body=body)
        assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, code, field), body
    status, answer = request(api, "GET", "/v1/surveillance/scans/{scan_id}", params={"scan_id": "scan_nope"})
    assert (status, answer["error"]["code"]) == (404, "scan_not_found")
