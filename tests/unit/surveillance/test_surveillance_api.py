"""/v1/surveillance/*: compliance and admin only (a trader: 403); alerts with filters and cursor
pages, evidence resolved to orders and trades, the workflow (audited, invalid changes 409),
closing with resume_trading re-enables the accounts the alert halted; bad input 400."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from surv_service_helpers import T0, account, read_stream, request

ROUTES = [
    ("GET", "/v1/surveillance/alerts", {}, None),
    ("GET", "/v1/surveillance/alerts/{alert_id}", {"alert_id": "x"}, None),
    ("POST", "/v1/surveillance/alerts/{alert_id}/acknowledge", {"alert_id": "x"}, {"note": "n"}),
    ("POST", "/v1/surveillance/alerts/{alert_id}/escalate", {"alert_id": "x"}, {"note": "n"}),
    ("POST", "/v1/surveillance/alerts/{alert_id}/close", {"alert_id": "x"}, {"note": "n"}),
    ("GET", "/v1/surveillance/thresholds/{detector}", {"detector": "spoofing"}, None),
    ("PUT", "/v1/surveillance/thresholds/{detector}", {"detector": "spoofing"}, {"thresholds": {}}),
    ("GET", "/v1/surveillance/profiles/{user_id}", {"user_id": "usr_a"}, None),
    ("POST", "/v1/surveillance/scans", {}, {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}),
    ("GET", "/v1/surveillance/scans/{scan_id}", {"scan_id": "scan_x"}, None),
]


def make_alert(n: int, *, severity: str = "HIGH", detector: str = "spoofing", symbol: str = "AAPL",
               accounts: tuple[str, ...] = ("acc_b",), evidence: dict[str, Any] | None = None) -> Any:  # fmt: skip
    from nexus_surveillance.detectors import Alert

    return Alert(
        id=f"{detector}-{n:032x}", detector=detector, severity=severity, symbol=symbol, accounts=list(accounts),
        users=["usr_b"], window_start=T0 + timedelta(minutes=n), window_end=T0 + timedelta(minutes=n, seconds=5),
        score=0.75, evidence=evidence or {"order_ids": [f"o{n}"]},
    )  # fmt: skip


@pytest.fixture
def api(aws: Any, people: Any) -> Any:
    aws.use_function_env("SurveillanceApiFunction")
    from nexus_surveillance.api import app

    return app


@pytest.fixture
def store(aws: Any) -> Any:
    from nexus_surveillance.repo import DynamoAlertStore

    return DynamoAlertStore(aws.table_name("SurveillanceAlertsTable"))


def seed(store: Any, *alerts: Any) -> None:
    from nexus_surveillance.alerts import alert_item

    for alert in alerts:
        assert store.put_new(alert_item(alert, T0)) is None


def test_a_trader_gets_403_on_every_route(api: Any) -> None:
    # GIVEN a caller with the trader role only
    for method, resource, params, body in ROUTES:
        # WHEN they call a surveillance route
        status, answer = request(api, method, resource, params=params, body=body, roles="trader")
        # THEN 403 with the error body
        assert (status, answer["error"]["code"]) == (403, "forbidden"), (method, resource)


def test_filters_and_cursor_pages(api: Any, store: Any) -> None:
    # GIVEN five alerts of two detectors, severities, symbols and accounts
    seed(store, make_alert(1), make_alert(2, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",)),
         make_alert(3, symbol="MSFT"), make_alert(4), make_alert(5, severity="LOW"))  # fmt: skip
    window = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    # WHEN compliance pages through them two at a time
    seen, cursor = [], None
    while True:
        query = {**window, "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = request(api, "GET", "/v1/surveillance/alerts", query=query)
        assert status == 200, body
        seen += [a["alert_id"] for a in body["alerts"]]
        cursor = body["cursor"]
        if cursor is None:
            break
    # THEN every alert comes once, newest first
    assert seen == [make_alert(n).id if n != 2 else make_alert(2, detector="wash_trading").id for n in (5, 4, 3, 2, 1)]
    # AND each filter narrows the list
    for query, expected in (
        ({"severity": "CRITICAL"}, [2]), ({"symbol": "MSFT"}, [3]), ({"account": "acc_a1"}, [2]),
        ({"detector": "spoofing", "severity": "HIGH", "symbol": "AAPL"}, [4, 1]), ({"status": "closed"}, []),
        ({"from": "2026-03-02T14:33:00Z", "to": "2026-03-02T14:34:30Z"}, [4, 3]),
    ):  # fmt: skip
        status, body = request(api, "GET", "/v1/surveillance/alerts", query={**window, **query})
        assert status == 200, body
        assert [int(a["alert_id"].rsplit("-", 1)[1], 16) for a in body["alerts"]] == expected, query


def test_pages_without_to_keep_the_first_page_window_end(
    api: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three alerts, and a query without from/to (the last 30 days up to now)
    import nexus_surveillance.api as surveillance_api

    seed(store, make_alert(1), make_alert(2), make_alert(3))
    now = {"at": T0 + timedelta(days=1)}
    monkeypatch.setattr(surveillance_api, "utc_now", lambda: now["at"])
    # WHEN compliance pages through them one at a time while the clock moves on
    seen, cursor = [], None
    while True:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        status, body = request(api, "GET", "/v1/surveillance/alerts", query=query)
        # THEN every page is a 200 (the cursor carries the first page's window end) ...
        assert status == 200, body
        seen += [a["alert_id"] for a in body["alerts"]]
        cursor = body["cursor"]
        now["at"] += timedelta(seconds=7)
        if cursor is None:
            break
    # ... and every alert comes once, newest first
    assert seen == [make_alert(n).id for n in (3, 2, 1)]


BAD_QUERIES = [
    ({"limit": "0"}, "invalid_field", "limit"),
    ({"limit": "201"}, "invalid_field", "limit"),
    ({"severity": "URGENT"}, "invalid_field", "severity"),
    ({"colour": "red"}, "unknown_field", "colour"),
    ({"from": "yesterday"}, "invalid_field", "from"),
    ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "invalid_range", "from"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "invalid_cursor", "cursor"),
]


def test_bad_list_queries_are_400(api: Any) -> None:
    for query, code, field in BAD_QUERIES:
        status, body = request(api, "GET", "/v1/surveillance/alerts", query=query)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, code, field), query


def test_far_past_or_future_dates_are_400_naming_the_field_not_an_overflow(api: Any) -> None:
    # GIVEN date-only bounds at the ends of the calendar (0001-01-05 minus 30 days overflows)
    cases = [({"to": "0001-01-05"}, "to"), ({"from": "0001-01-01", "to": "2026-03-01"}, "from"),
             ({"to": "9999-12-31"}, "to")]  # fmt: skip
    for query, field in cases:
        # WHEN the alerts are listed with them
        status, body = request(api, "GET", "/v1/surveillance/alerts", query=query)
        # THEN a 400 invalid_field naming the field, never a 500
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_field", field), query


def test_a_cursor_naming_a_key_outside_its_query_is_400(api: Any) -> None:
    # GIVEN a cursor bound to this query but resuming after a key outside its time range
    from nexus_surveillance import models as m

    query = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    parsed = m.AlertsQuery.model_validate(query)
    window = "2026-03-02T00:00:00.000000Z2026-03-03T00:00:00.000000Z"
    bound = parsed.model_dump_json(exclude={"cursor", "limit"}) + window
    forged = m.encode_cursor({"alert_id": "x", "feed": "alerts", "sort": "2030-01-01T00:00:00Z#x"}, bound)
    # WHEN it is used
    status, body = request(api, "GET", "/v1/surveillance/alerts", query={**query, "cursor": forged})
    # THEN 400 invalid_cursor, never a 500 from the table
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")


def test_an_alert_shows_its_evidence_resolved_to_orders_and_trades(aws: Any, api: Any, store: Any) -> None:
    # GIVEN an alert naming an order and a trade that the platform stored, and one it did not
    dynamo = boto3.resource("dynamodb", region_name="us-east-1")
    dynamo.Table(aws.table_name("OrdersTable")).put_item(Item={
        "order_id": "o-spoof", "account_id": "acc_a1", "symbol": "AAPL", "side": "buy", "quantity": Decimal(5000),
        "price": Decimal("99.00"), "status": "cancelled", "created_at": "2026-03-02T14:30:00.000000Z"})  # fmt: skip
    dynamo.Table(aws.table_name("TradesTable")).put_item(Item={
        "symbol": "AAPL", "seq": 4, "trade_id": "AAPL-4", "price": Decimal("100.00"), "quantity": Decimal(100),
        "aggressor_side": "sell", "ts": "2026-03-02T14:30:00.200000Z"})  # fmt: skip
    alert = make_alert(7, evidence={"order_ids": ["o-spoof", "o-gone"], "trade_ids": ["AAPL-4"], "ratio": "50"})
    seed(store, alert)
    # WHEN compliance reads it
    status, body = request(api, "GET", "/v1/surveillance/alerts/{alert_id}", params={"alert_id": alert.id})
    # THEN the orders and trades are there, with what they were
    assert status == 200, body
    got = body["alert"]
    assert [(o["order_id"], o["found"]) for o in got["orders"]] == [("o-spoof", True), ("o-gone", False)]
    assert got["orders"][0]["quantity"] == "5000" and got["orders"][0]["status"] == "cancelled"
    assert [(t["trade_id"], t["price"]) for t in got["trades"]] == [("AAPL-4", "100")]
    assert got["evidence"]["ratio"] == "50"
    # AND an unknown alert is 404
    status, body = request(api, "GET", "/v1/surveillance/alerts/{alert_id}", params={"alert_id": "nope"})
    assert status == 404 and body["error"]["code"] == "alert_not_found"


def test_the_workflow_is_audited_and_refuses_invalid_changes(aws: Any, api: Any, store: Any) -> None:
    # GIVEN an open alert
    alert = make_alert(8)
    seed(store, alert)
    path = "/v1/surveillance/alerts/{alert_id}/"
    params = {"alert_id": alert.id}
    # WHEN compliance acknowledges it, then tries again
    status, body = request(api, "POST", path + "acknowledge", params=params, body={"note": "looking"})
    assert status == 200 and body["alert"]["status"] == "acknowledged", body
    status, body = request(api, "POST", path + "acknowledge", params=params, body={"note": "again"})
    # THEN the second is 409, and so is any change once closed
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    assert request(api, "POST", path + "escalate", params=params, body={"note": "to legal"})[0] == 200
    status, body = request(api, "POST", path + "close", params=params, body={"note": "reported"})
    assert status == 200 and body["alert"]["status"] == "closed"
    assert [h["to"] for h in body["alert"]["history"]] == ["acknowledged", "escalated", "closed"]
    assert body["alert"]["history"][0]["by"] == "usr_c" and body["alert"]["history"][0]["note"] == "looking"
    assert request(api, "POST", path + "escalate", params=params, body={"note": "x"})[0] == 409
    # AND each change is an audit event by the compliance user
    changes = [e for e in read_stream(aws, "AuditEventsStream") if e["aggregate_id"] == alert.id]
    assert [(e["kind"], e["actor"]) for e in changes] == [
        ("surveillance_alert_acknowledged", "usr_c"), ("surveillance_alert_escalated", "usr_c"),
        ("surveillance_alert_closed", "usr_c")]  # fmt: skip
    # AND a change without a note, with an unknown field, or resume_trading off close is 400
    cases = (({}, "missing_field"), ({"note": "n", "x": 1}, "unknown_field"),
             ({"note": "n", "resume_trading": True}, "invalid_field"))  # fmt: skip
    for index, (body_in, code) in enumerate(cases):
        other = make_alert(10 + index)
        seed(store, other)
        status, body = request(api, "POST", path + "acknowledge", params={"alert_id": other.id}, body=body_in)
        assert status == 400 and body["error"]["code"] == code


def test_closing_a_critical_alert_with_resume_trading_switches_its_halted_accounts_back_on(
    aws: Any, api: Any, store: Any
) -> None:
    # GIVEN a CRITICAL alert that halted acc_a1
    alert = make_alert(20, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",))
    seed(store, alert)
    from nexus_surveillance.repo import KillSwitch

    assert KillSwitch(aws.table_name("AccountsTable")).halt("acc_a1", alert.id, T0)
    store.mark_dispatched(alert.id, T0, ["acc_a1"])
    assert account(aws, "acc_a1")["trading_enabled"] is False
    # WHEN compliance closes it and asks to resume trading
    status, body = request(api, "POST", "/v1/surveillance/alerts/{alert_id}/close", params={"alert_id": alert.id},
                           body={"note": "explained: a transfer between own accounts", "resume_trading": True})
    # THEN the account trades again, and the switch is audited with the compliance user as actor
    assert status == 200 and body["alert"]["resumed_accounts"] == ["acc_a1"], body
    assert account(aws, "acc_a1")["trading_enabled"] is True
    (resumed,) = [e for e in read_stream(aws, "AuditEventsStream") if e["kind"] == "kill_switch_off"]
    assert (resumed["aggregate_id"], resumed["actor"], resumed["details"]["alert_id"]) == ("acc_a1", "usr_c", alert.id)


def close_resuming(api: Any, alert_id: str) -> tuple[int, Any]:
    return request(api, "POST", "/v1/surveillance/alerts/{alert_id}/close", params={"alert_id": alert_id},
                   body={"note": "explained", "resume_trading": True})  # fmt: skip


def test_a_halt_on_an_account_an_admin_switched_off_does_not_take_it_over(aws: Any, api: Any, store: Any) -> None:
    # GIVEN acc_a1 switched off by an admin
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_surveillance.repo import KillSwitch

    admin = DynamoIdentityStore(TableNames(users=aws.table_name("UsersTable"), api_keys="", tokens="",
                                           accounts=aws.table_name("AccountsTable")))  # fmt: skip
    assert admin.set_trading_enabled("acc_a1", False)
    alert = make_alert(22, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",))
    seed(store, alert)
    # WHEN a CRITICAL alert halts it, and compliance closes that alert with resume_trading
    took = KillSwitch(aws.table_name("AccountsTable")).halt("acc_a1", alert.id, T0)
    store.mark_dispatched(alert.id, T0, ["acc_a1"])
    status, body = close_resuming(api, alert.id)
    # THEN the halt took nothing over and the admin's switch stands
    assert took is False
    assert "trading_halted_by" not in account(aws, "acc_a1")
    assert status == 200 and body["alert"]["resumed_accounts"] == [], body
    assert account(aws, "acc_a1")["trading_enabled"] is False


def test_an_account_halted_by_two_alerts_trades_again_only_when_both_are_closed(
    aws: Any, api: Any, store: Any
) -> None:
    # GIVEN acc_a1 halted by a first CRITICAL alert, then by a second
    from nexus_surveillance.repo import KillSwitch

    switch = KillSwitch(aws.table_name("AccountsTable"))
    first = make_alert(23, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",))
    second = make_alert(24, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",))
    for alert in (first, second):
        seed(store, alert)
        assert switch.halt("acc_a1", alert.id, T0)
        store.mark_dispatched(alert.id, T0, ["acc_a1"])
    # WHEN compliance closes the second with resume_trading
    status, body = close_resuming(api, second.id)
    # THEN the first still holds the account off
    assert status == 200 and body["alert"]["resumed_accounts"] == [], body
    assert account(aws, "acc_a1")["trading_enabled"] is False
    # WHEN the first is closed too
    status, body = close_resuming(api, first.id)
    # THEN the account trades again, and the halt's marks are gone
    assert status == 200 and body["alert"]["resumed_accounts"] == ["acc_a1"], body
    item = account(aws, "acc_a1")
    assert item["trading_enabled"] is True
    assert "trading_halted_by" not in item and "trading_halted_alerts" not in item


def test_an_admin_switch_after_a_halt_is_not_undone_by_closing_the_alert(aws: Any, api: Any, store: Any) -> None:
    # GIVEN acc_a1 halted by a CRITICAL alert, then switched off by an admin for their own reason
    alert = make_alert(21, severity="CRITICAL", detector="wash_trading", accounts=("acc_a1",))
    seed(store, alert)
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_surveillance.repo import KillSwitch

    assert KillSwitch(aws.table_name("AccountsTable")).halt("acc_a1", alert.id, T0)
    store.mark_dispatched(alert.id, T0, ["acc_a1"])
    admin = DynamoIdentityStore(TableNames(users=aws.table_name("UsersTable"), api_keys="", tokens="",
                                           accounts=aws.table_name("AccountsTable")))  # fmt: skip
    assert admin.set_trading_enabled("acc_a1", False)
    # WHEN compliance closes the alert with resume_trading
    status, body = request(api, "POST", "/v1/surveillance/alerts/{alert_id}/close", params={"alert_id": alert.id},
                           body={"note": "the alert is explained", "resume_trading": True})
    # THEN the alert is closed but the admin's switch stands
    assert status == 200 and body["alert"]["resumed_accounts"] == [], body
    assert account(aws, "acc_a1")["trading_enabled"] is False
