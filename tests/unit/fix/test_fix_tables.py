"""The gateway's DynamoDB tables (moto, created from the template): FIX orders, ClOrdID claims,
checkpoints, and the sessions table with hashed passwords. GIVEN / WHEN / THEN."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from nexus_fix.fixorders import DynamoFixOrders, FixOrder, Pending
from nexus_fix.sessions import DynamoSessions, SessionError, new_session, verify_password

D = Decimal


def _order(order_id: str, seq: int = 0) -> FixOrder:
    return FixOrder(
        order_id=order_id, session_id="FIX.4.4:NEXUS->C1", account_id="acc_1", cl_ord_id="c1", symbol="AAPL",
        side="buy", ord_type="limit", quantity=D("10.5"), price=D("100.25"), seq=seq,
    )  # fmt: skip


def test_fix_orders_round_trip_claims_and_apply_once(aws: Any) -> None:
    store = DynamoFixOrders(aws.table_name("FixOrdersTable"))
    # GIVEN a claimed ClOrdID and a stored order
    assert store.claim("acc_1", "c1", "o-1") is True
    assert store.claim("acc_1", "c1", "o-2") is False
    assert store.lookup("acc_1", "c1") == "o-1" and store.lookup("acc_2", "c1") is None
    store.save(replace(_order("o-1"), pending=Pending("cancel", "c2", "c1")))
    # WHEN an event is applied, then applied again
    assert store.apply(replace(_order("o-1", seq=5), cum_qty=D("0.5"))) is True
    assert store.apply(_order("o-1", seq=5)) is False
    # THEN the record is the first application's, read one by one and in a batch
    got = store.get("o-1")
    assert got is not None and (got.seq, got.cum_qty, got.price, got.pending) == (5, D("0.5"), D("100.25"), None)
    many = store.get_many(["o-1", "o-404", *[f"x{i}" for i in range(120)]])
    assert list(many) == ["o-1"] and many["o-1"] == got
    store.mark_sent("o-1", 5)
    store.mark_sent("o-1", 4)
    assert store.get("o-1").sent_seq == 5  # type: ignore[union-attr]
    store.set_checkpoint("s", "shard-0", "49")
    assert store.checkpoint("s", "shard-0") == "49" and store.checkpoint("s", "shard-1") is None
    store.forget("o-1")
    assert store.get("o-1") is None


def test_sessions_table_keeps_only_a_hash_of_the_password(aws: Any) -> None:
    sessions = DynamoSessions(aws.table_name("FixSessionsTable"))
    record = new_session("CLIENT1", "NEXUS", ["acc_1", "acc_2"], "correct horse battery", {"MaxLatency": "30"})
    assert sessions.add(record) is True
    assert sessions.add(record) is False  # nothing overwritten
    stored = sessions.get("CLIENT1", "NEXUS")
    assert stored is not None and stored.accounts == ("acc_1", "acc_2")
    assert stored.password_hash is not None and "correct horse" not in stored.password_hash
    assert stored.password_hash.startswith("$argon2id$")
    assert verify_password(stored.password_hash, "correct horse battery") is True
    assert verify_password(stored.password_hash, "wrong horse battery") is False
    assert verify_password(None, "anything at all") is False
    assert verify_password(stored.password_hash, None) is False
    assert verify_password(stored.password_hash, "x" * 10_000) is False
    listed = sessions.list()[0].public()
    assert listed["password"] is True and "password_hash" not in listed and listed["settings"]["MaxLatency"] == "30"
    assert stored.session_id == "FIX.4.4:NEXUS->CLIENT1"
    assert sessions.remove("CLIENT1", "NEXUS") is True and sessions.remove("CLIENT1", "NEXUS") is False


@pytest.mark.parametrize(
    ("sender", "accounts", "password", "settings"),
    [
        ("BAD ID", ["acc_1"], None, {}),
        ("C1", [], None, {}),
        ("C1", ["acc 1"], None, {}),
        ("C1", ["acc_1"], "short", {}),
        ("C1", ["acc_1"], None, {"HeartBtInt": "30"}),
        ("C1", ["acc_1"], None, {"ResetOnLogon": "maybe"}),
        ("C1", ["acc_1"], None, {"MaxLatency": "0"}),
        ("C1", ["acc_1"], None, {"MinHeartBtInt": "60", "MaxHeartBtInt": "30"}),
    ],
)
def test_bad_session_definitions_are_refused(
    sender: str, accounts: list[str], password: str | None, settings: dict[str, str]
) -> None:
    with pytest.raises(SessionError):
        new_session(sender, "NEXUS", accounts, password, settings)


def test_the_template_runs_the_gateway_with_the_orders_service_code(aws: Any) -> None:
    # GIVEN the template WHEN the local runtime reads its containers
    gateway = next(c for c in aws.platform.containers if c.name == "fix")
    # THEN the gateway's image carries the orders service's own package, and its settings name
    # the FIX tables, the stream it consumes and the orders API's order-entry settings
    assert {p.name for p in gateway.python_path} == {"common", "orders", "fix"}
    assert gateway.command == ("python", "-m", "nexus_fix")
    env = gateway.environment
    assert env["FIX_COMP_ID"] == "NEXUS" and env["FIX_SESSIONS_TABLE"] == aws.table_name("FixSessionsTable")
    assert env["EXECUTION_EVENTS_STREAM"] == aws.stream_name("ExecutionEventsStream")
    orders = aws.env_for("OrdersApiFunction")
    for name in ("ORDERS_TABLE", "ACCOUNTS_TABLE", "ORDER_COMMANDS_STREAM", "RISK_PRICE_COLLAR", "RISK_MAX_OPEN_ORDERS",
                 "AUDIT_STREAM"):
        assert env[name] == orders[name], name
