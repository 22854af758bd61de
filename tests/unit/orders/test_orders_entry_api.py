"""The order-entry routes under moto (tables and streams from the template): every engine order
type and instruction, replace, mass cancel and OCO groups; bad input answers 4xx naming the
field and changes nothing; a risk refusal is audited. Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.risk import reserve_amount, reserve_rate
from orders_fakes import FEE_BUFFER, OCO, STOP, World, future

D = Decimal


@pytest.fixture
def world(aws: Any) -> World:
    return World(aws)


# -- new order types -------------------------------------------------------------------------


def test_a_stop_buy_is_sent_as_a_stop_limit_capped_at_its_reservation(world: World) -> None:
    status, body = world.request("POST", "/v1/orders", STOP)
    assert status == 202, body
    order = body["order"]
    assert order["type"] == "stop" and order["stop_price"] == "102" and order["triggered"] is False
    [command] = world.commands()
    # the protection price: 102 x 1.05 = 107.10, floored to the tick
    assert (command.order_type, command.stop_price, command.price, command.time_in_force) == (
        "stop_limit", D("102.00"), D("107.10"), "ioc")
    assert world.item()["available_cash"] == D("1000000.00") - reserve_amount(D(10), reserve_rate(D("107.1"),
                                                                                                  FEE_BUFFER))


def test_stop_limit_gtd_post_only_iceberg_and_stp_reach_the_engine(world: World) -> None:
    expire = future()
    bodies = [
        {**STOP, "type": "stop_limit", "price": "103.00", "side": "sell", "time_in_force": "gtd", "expire_at": expire,
         "client_order_id": "sl-1"},
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "50", "price": "99.00", "post_only": True,
         "display_quantity": "5", "stp": "cancel_oldest", "client_order_id": "ice-1"},
    ]  # fmt: skip
    for body in bodies:
        status, answer = world.request("POST", "/v1/orders", body)
        assert status == 202, answer
    stop_limit, iceberg = world.commands()
    assert (stop_limit.order_type, stop_limit.price, stop_limit.stop_price) == ("stop_limit", D("103.00"), D("102.00"))
    assert stop_limit.time_in_force == "gtd" and stop_limit.expire_at == datetime.fromisoformat(expire)
    assert iceberg.post_only and iceberg.display_quantity == 5 and iceberg.stp == "cancel_oldest"
    # an iceberg reserves for its full quantity, not the shown slice
    expected = reserve_amount(D(50), reserve_rate(D(99), FEE_BUFFER))
    assert world.item()["available_cash"] == D("1000000.00") - expected
    # a repeated client_order_id returns the first order and reserves nothing more; while it is
    # pending_new its same command goes again (same command id: the engine drops the duplicate)
    status, again = world.request("POST", "/v1/orders", bodies[1])
    assert status == 200 and again["order"]["display_quantity"] == "5"
    assert world.item()["available_cash"] == D("1000000.00") - expected
    assert world.commands()[-1].command_id == iceberg.command_id


BAD = [
    ({**STOP, "stop_price": None}, "missing_field", "stop_price"),
    ({k: v for k, v in STOP.items() if k != "stop_price"}, "missing_field", "stop_price"),
    ({**STOP, "price": "101.00"}, "invalid_field", "price"),
    ({**STOP, "type": "stop_limit"}, "missing_field", "price"),
    ({**STOP, "stop_price": "101.001"}, "price_off_tick", "stop_price"),
    ({**STOP, "time_in_force": "gtd"}, "missing_field", "expire_at"),
    ({**STOP, "time_in_force": "gtd", "expire_at": "2020-01-01T00:00:00Z"}, "invalid_field", "expire_at"),
    ({**STOP, "time_in_force": "gtd", "expire_at": "2030-01-01T00:00:00"}, "invalid_field", "expire_at"),
    ({**STOP, "expire_at": future()}, "invalid_field", "expire_at"),
    ({**STOP, "post_only": True}, "invalid_field", "post_only"),
    ({**STOP, "display_quantity": "2"}, "invalid_field", "display_quantity"),
    ({**STOP, "type": "stop_limit", "price": "103.00", "display_quantity": "11"}, "invalid_field",
     "display_quantity"),
    ({**STOP, "type": "stop_limit", "price": "103.00", "display_quantity": "0"}, "invalid_field", "display_quantity"),
    ({**STOP, "stp": "cancel_everything"}, "invalid_field", "stp"),
    ({**STOP, "type": "trailing_stop"}, "invalid_field", "type"),
    ({**STOP, "iceberg": True}, "unknown_field", "iceberg"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "code", "field"), BAD)
def test_bad_new_orders_answer_400_naming_the_field_and_change_nothing(
    world: World, body: dict[str, Any], code: str, field: str
) -> None:
    before = world.item()
    status, answer = world.request("POST", "/v1/orders", body)
    assert status == 400, answer
    assert answer["error"]["code"] == code and answer["error"]["field"] == field
    assert world.orders() == [] and world.commands() == [] and world.item() == before


# -- OCO -------------------------------------------------------------------------------------


def test_an_oco_group_is_one_command_and_one_reservation_for_the_larger_leg(world: World) -> None:
    # GIVEN acc_1 holds 100 AAPL; WHEN it places an OCO sell of 10
    status, body = world.request("POST", "/v1/orders/oco", {**OCO, "client_order_id": "g-1"})
    assert status == 202, body
    group_id = body["group_id"]
    assert group_id.startswith("oco-")
    assert [o["order_id"] for o in body["orders"]] == [f"{group_id}.tp", f"{group_id}.sl"]
    assert [o["leg"] for o in body["orders"]] == ["take_profit", "stop_loss"]
    # THEN 10 shares are reserved once (not 20), and one oco command went out
    assert world.item()["sellable#AAPL"] == 90
    [command] = world.commands()
    assert command.type == "oco" and command.order_id == group_id
    assert (command.price, command.stop_price, command.stop_limit_price) == (D("105.00"), D("95.00"), None)
    # a repeat returns the same group and reserves nothing more (its command goes again while
    # both legs are pending_new: same command id, which the engine drops)
    status, again = world.request("POST", "/v1/orders/oco", {**OCO, "client_order_id": "g-1"})
    assert status == 200 and again["group_id"] == group_id
    assert world.item()["sellable#AAPL"] == 90
    assert {c.command_id for c in world.commands()} == {command.command_id}
    # GET shows both legs; DELETE cancels the group with one cancel of the group id
    assert world.request("GET", "/v1/orders/oco/{group_id}", group_id=group_id)[0] == 200
    status, cancelled = world.request("DELETE", "/v1/orders/oco/{group_id}", group_id=group_id)
    assert status == 202 and all(o["cancel_requested"] for o in cancelled["orders"])
    assert world.commands()[-1].type == "cancel" and world.commands()[-1].order_id == group_id
    # another account sees no such group
    assert world.request("GET", "/v1/orders/oco/{group_id}", account="acc_2", group_id=group_id)[0] == 404


def test_an_oco_buy_reserves_the_dearer_leg_and_caps_a_stop_loss(world: World) -> None:
    body = {**OCO, "side": "buy", "take_profit": {"price": "96.00"}, "stop_loss": {"stop_price": "103.00"}}
    status, answer = world.request("POST", "/v1/orders/oco", body)
    assert status == 202, answer
    cap = D("108.15")  # 103 x 1.05: the stop-loss can spend at most this, more than the take-profit's 96
    assert world.item()["available_cash"] == D("1000000.00") - reserve_amount(D(10), reserve_rate(cap, FEE_BUFFER))
    [command] = world.commands()
    assert command.stop_limit_price == cap


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"stop_loss": {"stop_price": "106.00"}}, "invalid_oco", "stop_loss.stop_price"),
        ({"take_profit": {"price": "105.001"}}, "price_off_tick", "take_profit.price"),
        ({"time_in_force": "ioc"}, "invalid_field", "time_in_force"),
        ({"time_in_force": "gtd"}, "missing_field", "expire_at"),
        ({"stop_loss": {"price": "94.00"}}, "missing_field", "stop_loss.stop_price"),
        ({"take_profit": {"price": "105.00", "size": "1"}}, "unknown_field", "take_profit.size"),
        ({"quantity": "0"}, "invalid_field", "quantity"),
    ],
)
def test_bad_oco_groups_answer_400_and_change_nothing(world: World, change: dict[str, Any], code: str,
                                                      field: str) -> None:  # fmt: skip
    before = world.item()
    status, answer = world.request("POST", "/v1/orders/oco", {**OCO, **change})
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["field"]) == (code, field)
    assert world.orders() == [] and world.commands() == [] and world.item() == before


# -- replace ---------------------------------------------------------------------------------


def _placed(world: World, **body: Any) -> dict[str, Any]:
    base = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "100.00"}
    status, answer = world.request("POST", "/v1/orders", {**base, **body})
    assert status == 202, answer
    return dict(answer["order"])


def test_a_replace_reserves_the_difference_or_is_refused_with_422_and_nothing_changes(world: World) -> None:
    # GIVEN an account with 3,000 USD and a buy 10 @ 100
    world.account("acc_small", "3000.00")
    status, answer = world.request("POST", "/v1/orders", {"symbol": "AAPL", "side": "buy", "type": "limit",
                                                          "quantity": "10", "price": "100.00"}, account="acc_small")
    assert status == 202
    order_id = answer["order"]["order_id"]
    one = reserve_amount(D(10), reserve_rate(D(100), FEE_BUFFER))
    assert world.item("acc_small")["available_cash"] == D("3000.00") - one
    # WHEN it asks for 40 shares: THEN 422, nothing reserved, stored or sent
    status, refused = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "40"}, account="acc_small",
                                    order_id=order_id)  # fmt: skip
    assert status == 422 and refused["error"]["code"] == "insufficient_buying_power"
    assert world.item("acc_small")["available_cash"] == D("3000.00") - one
    assert len(world.commands()) == 1
    assert not any(o["order_id"].startswith(order_id + "~") for o in world.orders())
    # ... and the refusal is on the audit stream, with an id derived from account + request
    [audit] = [r["data"] for r in world.records("AUDIT_STREAM")]
    assert audit["kind"] == "risk_refused" and audit["aggregate_id"] == "acc_small"
    assert audit["details"]["reason"] == "insufficient_buying_power"
    # WHEN it asks for 20 @ 101: THEN the difference is reserved and a replace command is sent
    status, replaced = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "20", "price": "101.00"},
                                     account="acc_small", order_id=order_id)  # fmt: skip
    assert status == 202, replaced
    assert replaced["order"]["replace_pending"] is True
    command = world.commands()[-1]
    assert (command.type, command.order_id, command.quantity, command.price) == ("replace", order_id, 20, D(101))
    assert command.command_id == f"{order_id}:replace:1"
    held = D("3000.00") - world.item("acc_small")["available_cash"]
    assert held >= reserve_amount(D(20), reserve_rate(D(101), FEE_BUFFER))
    assert world.item("acc_small")["buying#AAPL"] == 20
    # a second replace waits for the first
    status, pending = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "12"}, account="acc_small",
                                    order_id=order_id)  # fmt: skip
    assert status == 409 and pending["error"]["code"] == "replace_pending"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 400, "invalid_field", None),
        ({"quantity": "-1"}, 400, "invalid_field", "quantity"),
        ({"quantity": "1.5"}, 400, "quantity_off_lot", "quantity"),
        ({"price": "100.001"}, 400, "price_off_tick", "price"),
        ({"stop_price": "99.00"}, 400, "invalid_field", "stop_price"),
        ({"price": "150.00"}, 422, "price_outside_collar", "price"),
        ({"side": "sell"}, 400, "unknown_field", "side"),
    ],
)
def test_bad_replaces_answer_4xx_and_change_nothing(world: World, body: dict[str, Any], status: int, code: str,
                                                    field: str | None) -> None:  # fmt: skip
    order = _placed(world)
    before = world.item()
    got, answer = world.request("PATCH", "/v1/orders/{order_id}", body, order_id=order["order_id"])
    assert got == status, answer
    assert answer["error"]["code"] == code and answer["error"].get("field") == field
    assert world.item() == before and len(world.commands()) == 1


def test_replacing_an_oco_leg_or_someone_elses_order_is_refused(world: World) -> None:
    _, group = world.request("POST", "/v1/orders/oco", OCO)
    leg = group["orders"][0]["order_id"]
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "5"}, order_id=leg)
    assert status == 409 and answer["error"]["code"] == "oco_leg"
    order = _placed(world)
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "5"}, account="acc_2",
                                   order_id=order["order_id"])  # fmt: skip
    assert status == 404


# -- mass cancel -----------------------------------------------------------------------------


def test_mass_cancel_sends_one_command_per_symbol_with_open_orders(world: World) -> None:
    _placed(world)
    _placed(world, symbol="MSFT", price="50.00")
    status, answer = world.request("POST", "/v1/orders/mass-cancel", {})
    assert status == 202, answer
    assert answer["mass_cancel"]["symbols"] == ["AAPL", "MSFT"]
    sent = [r for r in world.records("ORDER_COMMANDS_STREAM") if r["data"]["type"] == "mass_cancel"]
    assert sorted((r["key"], r["data"]["symbol"], r["data"]["account_id"]) for r in sent) == [
        ("AAPL", "AAPL", "acc_1"), ("MSFT", "MSFT", "acc_1")]
    status, one = world.request("POST", "/v1/orders/mass-cancel", {"symbol": "MSFT"})
    assert status == 202 and one["mass_cancel"]["symbols"] == ["MSFT"]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"symbol": "NOPE"}, "unknown_symbol", "symbol"),
    ({"account_id": "acc_2"}, "unknown_field", "account_id"),
    ({"symbol": ""}, "invalid_field", "symbol"),
])  # fmt: skip
def test_bad_mass_cancels_answer_400_and_send_nothing(world: World, body: dict[str, Any], code: str,
                                                      field: str) -> None:  # fmt: skip
    status, answer = world.request("POST", "/v1/orders/mass-cancel", body)
    assert status == 400 and (answer["error"]["code"], answer["error"]["field"]) == (code, field)
    assert world.commands() == []


# -- the risk consumer reads the replace terms the API wrote -----------------------------------


def test_the_risk_consumer_settles_a_replace_from_the_terms_the_api_stored(world: World) -> None:
    # GIVEN the risk consumer's environment too, and a buy 10 @ 100 replaced to 15 @ 101
    from lambda_events import FakeLambdaContext, kinesis_event
    from nexus_common.settings import reset_lazy
    from nexus_risk import on_execution_events as risk_consumer

    world.aws.use_function_env("RiskConsumerFunction")
    reset_lazy()
    order = _placed(world)
    order_id = order["order_id"]
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15", "price": "101.00"},
                                   order_id=order_id)  # fmt: skip
    assert status == 202, answer
    assert world.item()["buying#AAPL"] == 115
    ts = "2026-03-05T15:00:00.000000Z"

    def event(seq: int, kind: str, correlation: str, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"AAPL-{seq}", "type": kind, "version": 1, "ts": ts, "correlation_id": correlation,
                "symbol": "AAPL", "seq": seq, "epoch": 0, "order_id": order_id, "account_id": "acc_1", **fields}

    # WHEN the engine's replaced and (later) cancelled events reach the risk consumer
    replaced = event(1, "replaced", f"{order_id}:replace:1", price="101", quantity="15", remaining_quantity="15",
                     kept_priority=False, reason="user")  # fmt: skip
    cancelled = event(2, "cancelled", f"{order_id}:cancel:x", remaining_quantity="15", reason="user")
    for batch in ({"events": [replaced]}, {"events": [cancelled]}, {"events": [cancelled]}):
        answer = risk_consumer.handler(kinesis_event(batch), FakeLambdaContext())
        assert answer == {"batchItemFailures": []}, answer
    # THEN the whole reservation, price top-up included, is back, once
    item = world.item()
    assert item["available_cash"] == item["cash"] == D("1000000.00")
    assert item["buying#AAPL"] == 100
