"""Hostile numbers on the order-entry and alerts routes, under moto (tables and streams from the
template): a decimal is the JSON number grammar, bounded in digits and exponent before any
arithmetic, answered 400 ``invalid_decimal`` naming the field otherwise; an accepted number is
stored and sent in plain notation; a client_order_id repeated with other terms is refused (409).
Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import call, rest_event
from nexus_common import instruments as instruments_module
from nexus_common.instruments import DEMO_INSTRUMENTS, InstrumentError
from nexus_common.money import MoneyError, to_decimal
from nexus_marketdata.repo import put_instruments
from nexus_notifications.api import app as notifications_app
from nexus_orders.api import app as orders_app
from orders_fakes import OCO, STOP, World

D = Decimal
LIMIT = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "100.00"}

# Not the JSON number grammar: Python-only syntax, other digits, padding, words.
NOT_JSON_NUMBERS = ["1_000", "\u0661", "\uff11", "+1", " 1", "1 ", "\t1", "1\n", "NaN", "nan", "Infinity",
                    "-Infinity", "inf", "0x10", "1e", ".5", "5.", "01", "1,000", "1.2.3", "", "--1", "1e+"]  # fmt: skip
# The JSON number grammar, but beyond what any instrument could need.
OUT_OF_BOUNDS = ["1e-999999999", "1e999999999", "1E-39", "0e-999999999", "0E999999999", "1e13",
                 "1" + "0" * 12, "0.000000000000000000000000000000000000001"]  # fmt: skip


@pytest.fixture
def world(aws: Any) -> World:
    return World(aws)


def _unreachable(value: Decimal, places: int) -> int | None:
    raise AssertionError(f"{value!r} reached the tick/lot arithmetic")


@pytest.fixture
def no_exact_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrument's exact tick/lot arithmetic fails the test if a refused number reaches it."""
    monkeypatch.setattr(instruments_module, "_exact_units", _unreachable)


def raw_order(raw: str) -> tuple[int, Any]:
    """``POST /v1/orders`` with the body as written (JSON numbers Python's json cannot write)."""
    return call(orders_app, rest_event("POST", "/v1/orders", raw_body=raw, account_id="acc_1"))


def refused(answer: Any, code: str, field: str) -> bool:
    error = answer["error"]
    return (error["code"], error.get("field")) == (code, field) and field in error["message"]


def unchanged(world: World, before: dict[str, Any], orders: int = 0, commands: int = 0) -> bool:
    return len(world.orders()) == orders and len(world.commands()) == commands and world.item() == before


def placed(world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = world.request("POST", "/v1/orders", body or LIMIT)
    assert status == 202, answer
    return dict(answer["order"])


# -- 1. exponents and digit counts are bounded before any arithmetic --------------------------


@pytest.mark.parametrize("text", OUT_OF_BOUNDS)
def test_the_parser_refuses_an_unbounded_exponent_or_digit_count_from_the_text(text: str) -> None:
    # GIVEN a JSON number beyond the bounds; WHEN it is parsed, as a string or as a JSON number
    # THEN it is refused, by its digits and exponent alone
    with pytest.raises(MoneyError):
        to_decimal(text)
    with pytest.raises(MoneyError):
        to_decimal(Decimal(text))


def test_the_instrument_refuses_a_scale_it_would_have_to_compute_a_huge_power_for() -> None:
    # GIVEN AAPL (tick 0.01); WHEN a price of 10^200 reaches the exact conversion directly
    aapl = DEMO_INSTRUMENTS[0]
    # THEN it is refused instead of being counted in ticks
    with pytest.raises(InstrumentError):
        aapl.price_to_ticks(D("1E+200"))
    with pytest.raises(InstrumentError):
        aapl.quantity_to_lots(D("1E+200"))


@pytest.mark.usefixtures("no_exact_arithmetic")
def test_a_new_order_with_an_unbounded_exponent_is_refused_before_any_arithmetic(world: World) -> None:
    # GIVEN the account before; WHEN an order's price or quantity has a huge exponent
    before = world.item()
    for field in ("quantity", "price"):
        for text in ("1e-999999999", "1e999999999", "0e-999999999"):
            status, answer = world.request("POST", "/v1/orders", {**LIMIT, field: text})
            # THEN 400 invalid_decimal naming the field, the tick/lot arithmetic never reached
            assert status == 400 and refused(answer, "invalid_decimal", field), (field, text, answer)
    # and nothing was reserved, stored or sent
    assert unchanged(world, before)


@pytest.mark.usefixtures("no_exact_arithmetic")
def test_a_json_number_with_an_unbounded_exponent_or_digit_count_is_refused_too(world: World) -> None:
    before = world.item()
    for number in ("1e-999999999", "1E999999999", "1.5e-400000", "1" + "0" * 60, "0." + "0" * 60 + "1"):
        raw = '{"symbol": "AAPL", "side": "sell", "type": "stop", "quantity": 10, "stop_price": ' + number + "}"
        status, answer = raw_order(raw)
        assert status == 400 and refused(answer, "invalid_decimal", "stop_price"), (number, answer)
    assert unchanged(world, before)


def test_a_replace_with_an_unbounded_exponent_is_refused_before_any_arithmetic(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an open buy 10 @ 100; from now on no tick/lot arithmetic may run
    order = placed(world)
    before = world.item()
    monkeypatch.setattr(instruments_module, "_exact_units", _unreachable)
    # WHEN replaces carry a huge exponent
    for body, field in (({"price": "1e-999999999"}, "price"), ({"quantity": "1e999999999"}, "quantity"),
                        ({"quantity": "20", "stop_price": "1E-999999999"}, "stop_price")):  # fmt: skip
        status, answer = world.request("PATCH", "/v1/orders/{order_id}", body, order_id=order["order_id"])
        # THEN 400 invalid_decimal naming the field
        assert status == 400 and refused(answer, "invalid_decimal", field), (body, answer)
    # and the order, the account and the stream are unchanged
    assert unchanged(world, before, orders=1, commands=1)
    assert world.request("GET", "/v1/orders/{order_id}", order_id=order["order_id"])[1]["order"] == order


@pytest.mark.usefixtures("no_exact_arithmetic")
def test_an_oco_group_with_an_unbounded_exponent_is_refused_before_any_arithmetic(world: World) -> None:
    before = world.item()
    for change, field in (
        ({"quantity": "1e-999999999"}, "quantity"),
        ({"take_profit": {"price": "1e999999999"}}, "take_profit.price"),
        ({"stop_loss": {"stop_price": "1E-999999999"}}, "stop_loss.stop_price"),
        ({"stop_loss": {"stop_price": "95.00", "price": "9.5e-999999999"}}, "stop_loss.price"),
    ):
        status, answer = world.request("POST", "/v1/orders/oco", {**OCO, **change})
        assert status == 400 and refused(answer, "invalid_decimal", field), (change, answer)
    assert unchanged(world, before)


# -- 2. an overflowing quantity is a 400, not a 500 --------------------------------------------


def test_an_overflowing_quantity_answers_400_and_logs_no_error(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN the account before; WHEN an order's quantity would overflow the decimal context
    before = world.item()
    for quantity in ("1e999999999", "-1e999999999", "9.99e999999"):
        with caplog.at_level(logging.INFO):
            status, answer = world.request("POST", "/v1/orders", {**LIMIT, "quantity": quantity})
        # THEN 400 invalid_decimal naming quantity
        assert status == 400 and refused(answer, "invalid_decimal", "quantity"), (quantity, answer)
    # no ERROR (no traceback) logged, nothing written
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert unchanged(world, before)


# -- 3. the wire grammar is the JSON number grammar --------------------------------------------


@pytest.mark.parametrize("text", NOT_JSON_NUMBERS)
def test_the_parser_accepts_only_the_json_number_grammar(text: str) -> None:
    with pytest.raises(MoneyError):
        to_decimal(text)


def test_a_new_order_with_a_number_outside_the_json_grammar_is_refused(world: World) -> None:
    # GIVEN the account before
    before = world.item()
    for field in ("quantity", "price"):
        for text in NOT_JSON_NUMBERS:
            # WHEN a price or quantity is Python-only syntax, other digits, padding, a word...
            status, answer = world.request("POST", "/v1/orders", {**LIMIT, field: text})
            # THEN 400 invalid_decimal naming the field
            assert status == 400 and refused(answer, "invalid_decimal", field), (field, text, answer)
    # no order, no reservation, no command
    assert unchanged(world, before)


def test_stop_price_display_quantity_replace_and_oco_refuse_them_too(world: World) -> None:
    order = placed(world)
    before = world.item()
    for text in ("1_000", "\u0661", "\uff11", "+1", " 1"):
        cases = [
            ("POST", "/v1/orders", {**STOP, "side": "sell", "stop_price": text}, "stop_price"),
            ("POST", "/v1/orders", {**LIMIT, "display_quantity": text}, "display_quantity"),
            ("POST", "/v1/orders/oco", {**OCO, "quantity": text}, "quantity"),
            ("POST", "/v1/orders/oco", {**OCO, "take_profit": {"price": text}}, "take_profit.price"),
            ("PATCH", "/v1/orders/{order_id}", {"quantity": text}, "quantity"),
            ("PATCH", "/v1/orders/{order_id}", {"price": text}, "price"),
        ]
        for method, resource, body, field in cases:
            path = {"order_id": order["order_id"]} if "{order_id}" in resource else {}
            status, answer = world.request(method, resource, body, **path)
            assert status == 400 and refused(answer, "invalid_decimal", field), (resource, body, answer)
    assert unchanged(world, before, orders=1, commands=1)


def test_json_numbers_and_every_spelling_of_the_grammar_are_accepted_exactly(world: World) -> None:
    # GIVEN orders whose quantity and price are JSON numbers or decimal strings in the grammar
    raw = '{"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": 10, "price": 100.10}'
    status, answer = raw_order(raw)
    assert status == 202, answer
    assert (answer["order"]["quantity"], answer["order"]["price"]) == ("10", "100.1")
    for quantity, price in (("10.00", "1.0001E2"), ("1e1", "100100e-3"), ("0.1E2", "100")):
        status, answer = world.request("POST", "/v1/orders", {**LIMIT, "quantity": quantity, "price": price})
        assert status == 202, (quantity, price, answer)
        assert D(answer["order"]["quantity"]) == 10 and D(answer["order"]["price"]) == D(price)


# -- 4. numbers are stored and sent in plain notation ------------------------------------------


def _raw_numbers(world: World) -> list[dict[str, str]]:
    """The orders table's number attributes as DynamoDB holds them (strings, as written)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = client.scan(TableName=world.env["ORDERS_TABLE"])["Items"]
    return [{name: value["N"] for name, value in item.items() if "N" in value} for item in items]


def test_an_exponent_quantity_is_a_plain_ten_everywhere(world: World) -> None:
    # GIVEN acc_1 with 1,000,000 USD; WHEN it buys "1E1" @ "1.0E2"
    status, answer = world.request("POST", "/v1/orders", {**LIMIT, "quantity": "1E1", "price": "1.0E2"})
    # THEN the order is a buy of 10 @ 100, reserved like one (not a 503 from the account write)
    assert status == 202, answer
    assert (answer["order"]["quantity"], answer["order"]["price"]) == ("10", "100")
    assert world.item()["buying#AAPL"] == 110
    # and no number stored or sent carries an exponent
    [numbers] = _raw_numbers(world)
    assert numbers["quantity"] == "10" and numbers["remaining_quantity"] == "10"
    assert all("e" not in value.lower() for value in numbers.values()), numbers
    [record] = world.records("ORDER_COMMANDS_STREAM")
    assert (record["data"]["quantity"], record["data"]["price"]) == ("10", "100")


def test_exponent_numbers_in_a_replace_and_an_oco_group_are_plain_too(world: World) -> None:
    # GIVEN an open buy 10 @ 100; WHEN it is replaced to "2E1" and an OCO sell of "1E1" is placed
    order = placed(world)
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "2E1"},
                                   order_id=order["order_id"])  # fmt: skip
    assert status == 202, answer
    status, group = world.request("POST", "/v1/orders/oco", {**OCO, "quantity": "1E1",
                                                               "take_profit": {"price": "1.05E2"}})  # fmt: skip
    # THEN both are accepted with plain numbers on the stream and in the account
    assert status == 202, group
    assert [leg["quantity"] for leg in group["orders"]] == ["10", "10"]
    replace, oco = [r["data"] for r in world.records("ORDER_COMMANDS_STREAM")][1:]
    assert replace["quantity"] == "20" and (oco["quantity"], oco["price"]) == ("10", "105")
    assert world.item()["buying#AAPL"] == 120 and world.item()["sellable#AAPL"] == 90
    assert all("e" not in value.lower() for numbers in _raw_numbers(world) for value in numbers.values())


# -- 5. a client_order_id repeated with other terms --------------------------------------------

FIRST = {**LIMIT, "client_order_id": "c-1", "time_in_force": "gtc"}
OTHER_TERMS = [{"symbol": "MSFT"}, {"side": "sell"}, {"quantity": "11"}, {"price": "99.99"},
               {"type": "stop_limit", "stop_price": "99.00"}, {"time_in_force": "day"}, {"post_only": True},
               {"display_quantity": "5"}, {"stp": "cancel_newest"}]  # fmt: skip


def test_a_client_order_id_repeated_with_other_terms_is_refused_naming_the_first_order(world: World) -> None:
    # GIVEN an order under client_order_id c-1
    first = placed(world, FIRST)
    before = world.item()
    for change in OTHER_TERMS:
        # WHEN c-1 comes again with other terms
        status, answer = world.request("POST", "/v1/orders", {**FIRST, **change})
        # THEN 409 client_order_id_reused naming the first order
        assert status == 409, (change, answer)
        assert (answer["error"]["code"], answer["error"]["field"]) == ("client_order_id_reused", "client_order_id")
        assert first["order_id"] in answer["error"]["message"]
    # and nothing was reserved, stored or sent
    assert unchanged(world, before, orders=1, commands=1)


def test_a_client_order_id_repeated_with_the_same_terms_returns_the_first_order(world: World) -> None:
    # GIVEN an order under client_order_id c-1, replaced since to 12 (as the orders consumer
    # leaves the item once the engine has replaced it)
    first = placed(world, FIRST)
    status, _ = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "12"}, order_id=first["order_id"])
    assert status == 202
    boto3.resource("dynamodb", region_name="us-east-1").Table(world.env["ORDERS_TABLE"]).update_item(
        Key={"order_id": first["order_id"]}, UpdateExpression="SET quantity = :q, remaining_quantity = :q "
        "REMOVE replace_pending", ExpressionAttributeValues={":q": D(12)})  # fmt: skip
    before, orders = world.item(), len(world.orders())
    new_command = world.commands()[0]
    # WHEN c-1 comes again with the terms it was entered with, however they are spelt (decimals
    # by value, the default time in force left out)
    same = [FIRST, {**FIRST, "quantity": "1E1", "price": "100"},
            {k: v for k, v in FIRST.items() if k != "time_in_force"}]  # fmt: skip
    for body in same:
        status, answer = world.request("POST", "/v1/orders", body)
        # THEN 200 with the first order as it is now
        assert status == 200, (body, answer)
        assert answer["order"]["order_id"] == first["order_id"] and answer["order"]["quantity"] == "12"
    # nothing more reserved or stored; what went out again is the first order's own command
    # (still pending_new here: the engine drops it by command id)
    assert world.item() == before and len(world.orders()) == orders
    assert {command.command_id for command in world.commands()[2:]} == {new_command.command_id}


def test_a_repeat_the_rules_would_refuse_now_returns_the_first_order_and_a_new_order_reads_no_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from nexus_common import aws as nexus_aws
    from nexus_orders.api import service

    # GIVEN an order of 10 under client_order_id c-1, entered without reading the orders table
    read: list[str] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.GetItem", lambda params, **_: read.append(
        str(params["TableName"])))
    first = placed(world, FIRST)
    assert world.env["ORDERS_TABLE"] not in read
    before, orders, commands = world.item(), len(world.orders()), len(world.commands())
    # AND a maximum order quantity lowered to 5 since: a new order of 10 is refused
    risk = service().risk
    assert risk is not None
    monkeypatch.setattr(risk, "limits", replace(risk.limits, max_order_quantity=D(5)))
    status, answer = world.request("POST", "/v1/orders", {**FIRST, "client_order_id": "c-2"})
    assert (status, answer["error"]["code"]) == (422, "max_quantity_exceeded")
    # WHEN c-1 comes again with the same terms
    status, answer = world.request("POST", "/v1/orders", FIRST)
    # THEN 200 with the first order: not refused, nothing more reserved or stored
    assert status == 200, answer
    assert answer["order"]["order_id"] == first["order_id"]
    assert world.item() == before and len(world.orders()) == orders
    assert {c.command_id for c in world.commands()[commands:]} <= {world.commands()[0].command_id}


def test_an_oco_client_order_id_repeated_with_other_terms_is_refused_naming_the_group(world: World) -> None:
    # GIVEN an OCO group under client_order_id g-1
    status, group = world.request("POST", "/v1/orders/oco", {**OCO, "client_order_id": "g-1"})
    assert status == 202, group
    before = world.item()
    # WHEN g-1 comes again with the same terms THEN it is the first group (its command resent
    # while pending_new, as before)
    status, again = world.request("POST", "/v1/orders/oco", {**OCO, "quantity": "10.0", "client_order_id": "g-1"})
    assert status == 200 and again["group_id"] == group["group_id"]
    assert world.item() == before and len(world.commands()) == 2
    # WHEN g-1 comes again with other terms THEN 409 naming the group
    for change in (
        {"quantity": "11"},
        {"side": "buy", "take_profit": {"price": "95.00"}, "stop_loss": {"stop_price": "105.00"}},
        {"take_profit": {"price": "106.00"}},
        {"stop_loss": {"stop_price": "94.00"}},
        {"stop_loss": {"stop_price": "95.00", "price": "94.50"}},
        {"time_in_force": "day"},
    ):
        status, answer = world.request("POST", "/v1/orders/oco", {**OCO, **change, "client_order_id": "g-1"})
        assert status == 409, (change, answer)
        assert answer["error"]["code"] == "client_order_id_reused" and group["group_id"] in answer["error"]["message"]
    # and nothing more was reserved, stored or sent
    assert unchanged(world, before, orders=2, commands=2)


def test_an_order_stored_before_the_terms_digest_is_compared_on_its_fields() -> None:
    # GIVEN orders as stored before they carried a terms digest: one never replaced, one replaced
    from nexus_orders.entry import new_order
    from nexus_orders.models import NewOrderRequest
    from nexus_orders.order import same_terms

    now = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)
    aapl = DEMO_INSTRUMENTS[0]

    def entered(**change: Any) -> Any:
        return new_order("acc_1", NewOrderRequest.model_validate({**FIRST, **change}), aapl, now)

    legacy = entered().model_copy(update={"terms_digest": None})
    replaced = legacy.model_copy(update={"quantity": D(12), "replace_count": 1})
    # THEN the same terms match and other terms do not; after a replace, the terms a replace
    # changes are not held against a repeat
    assert same_terms(legacy, entered(quantity="10.00"))
    assert not same_terms(legacy, entered(quantity="11"))
    assert not same_terms(legacy, entered(side="sell"))
    assert same_terms(replaced, entered())
    assert not same_terms(replaced, entered(time_in_force="day"))


# -- alerts ----------------------------------------------------------------------------------


@pytest.fixture
def alerts_env(aws: Any) -> dict[str, str]:
    env = aws.use_function_env("NotificationsApiFunction")
    put_instruments(env["INSTRUMENTS_TABLE"], DEMO_INSTRUMENTS)
    return env


def post_alert(body: dict[str, Any] | None = None, raw: str | None = None) -> tuple[int, Any]:
    return call(notifications_app, rest_event("POST", "/v1/alerts", body=body, raw_body=raw, account_id="acc_1"))


def stored_alerts(env: dict[str, str]) -> list[dict[str, Any]]:
    return list(boto3.resource("dynamodb", region_name="us-east-1").Table(env["ALERTS_TABLE"]).scan()["Items"])


def test_an_alert_with_a_number_outside_the_grammar_or_bounds_is_refused(alerts_env: dict[str, str]) -> None:
    for kind, field in (("above", "price"), ("below", "price"), ("percent_move", "percent")):
        for text in ("1_000", "\u0661", "\uff11", "+1", " 1", "NaN", "1e-999999999", "1e999999999", "1" + "0" * 45):
            # WHEN an alert's price or percent is not a bounded JSON number
            status, answer = post_alert({"symbol": "AAPL", "type": kind, field: text})
            # THEN 400 invalid_decimal naming the field
            assert status == 400 and refused(answer, "invalid_decimal", field), (kind, text, answer)
        status, answer = post_alert(raw=f'{{"symbol": "AAPL", "type": "{kind}", "{field}": 1e-999999999}}')
        assert status == 400 and refused(answer, "invalid_decimal", field), (kind, answer)
    # and no alert was stored
    assert stored_alerts(alerts_env) == []


def test_an_alert_price_with_an_exponent_is_stored_plain(alerts_env: dict[str, str]) -> None:
    # WHEN an alert above "1.5E2" is set
    status, answer = post_alert({"symbol": "AAPL", "type": "above", "price": "1.5E2"})
    # THEN it is an alert above 150, stored without exponent notation
    assert status == 201, answer
    assert answer["alert"]["price"] == "150"
    client = boto3.client("dynamodb", region_name="us-east-1")
    [item] = client.scan(TableName=alerts_env["ALERTS_TABLE"])["Items"]
    assert all("e" not in value["N"].lower() for value in item.values() if "N" in value), item
