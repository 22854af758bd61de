"""Orders API (Chalice app) under moto, with the tables and streams the template declares."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.events import NewOrderCommand
from orders_fakes import OrdersWorld

ORDER = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "101.25"}


@pytest.fixture
def world(aws: Any) -> OrdersWorld:
    return OrdersWorld(aws)


def test_a_valid_order_is_stored_pending_new_and_sent(world: OrdersWorld) -> None:
    # GIVEN a valid limit order WHEN it is posted
    status, body = world.post({**ORDER, "client_order_id": "c-1"})
    # THEN 202 with the order, decimals as strings
    assert status == 202
    order = body["order"]
    assert order["status"] == "pending_new"
    assert (order["quantity"], order["price"], order["filled_quantity"]) == ("10", "101.25", "0")
    assert order["average_price"] is None and order["remaining_quantity"] == "10"
    assert order["time_in_force"] == "gtc" and order["account_id"] == "acc_1"
    assert order["created_at"].endswith("Z")
    # AND one item, and one new command with partition key = symbol
    (item,) = world.items()
    assert item["order_id"] == order["order_id"] and item["status"] == "pending_new"
    ((key, command),) = world.commands()
    assert key == "AAPL"
    assert isinstance(command, NewOrderCommand)
    assert (command.order_id, command.price, command.quantity) == (
        order["order_id"],
        Decimal("101.25"),
        Decimal("10"),
    )
    assert command.ts.tzinfo is not None


def test_json_numbers_are_accepted(world: OrdersWorld) -> None:
    raw = '{"symbol": "BTC", "side": "sell", "type": "limit", "quantity": 0.015, "price": 43000.5}'
    status, body = world.post(raw_body=raw)
    assert status == 202
    assert (body["order"]["quantity"], body["order"]["price"]) == ("0.015", "43000.5")


def test_a_market_order_defaults_to_ioc(world: OrdersWorld) -> None:
    status, body = world.post({"symbol": "AAPL", "side": "sell", "type": "market", "quantity": "5"})
    assert status == 202
    assert (body["order"]["time_in_force"], body["order"]["price"]) == ("ioc", None)


def test_a_repeated_client_order_id_returns_the_first_order_with_200(world: OrdersWorld) -> None:
    # GIVEN an order placed with a client_order_id
    _, first = world.post({**ORDER, "client_order_id": "dup-1"})
    # WHEN the same client_order_id is posted again with the same terms
    status, again = world.post({**ORDER, "client_order_id": "dup-1"})
    # THEN 200 with the first order, one item, and the command re-sent while pending_new
    assert status == 200 and again == first
    assert len(world.items()) == 1
    assert [c.order_id for _, c in world.commands()] == [first["order"]["order_id"]] * 2
    # AND with other terms: 409 naming the first order, nothing stored or sent
    status, reused = world.post({**ORDER, "quantity": "99", "client_order_id": "dup-1"})
    assert status == 409 and reused["error"]["code"] == "client_order_id_reused"
    assert first["order"]["order_id"] in reused["error"]["message"]
    assert len(world.items()) == 1 and len(world.commands()) == 2
    # AND once the engine has accepted it, a repeat sends nothing more
    world.set_status(first["order"]["order_id"], "new")
    status, third = world.post({**ORDER, "client_order_id": "dup-1"})
    assert status == 200 and third["order"]["status"] == "new"
    assert len(world.commands()) == 2


def test_the_same_client_order_id_in_two_accounts_makes_two_orders(world: OrdersWorld) -> None:
    _, one = world.post({**ORDER, "client_order_id": "same"}, account="acc_1")
    _, two = world.post({**ORDER, "client_order_id": "same"}, account="acc_2")
    assert one["order"]["order_id"] != two["order"]["order_id"]


BAD_BODIES = [
    ({**ORDER, "symbol": "NOPE"}, "unknown_symbol", "symbol"),
    ({**ORDER, "quantity": "0"}, "invalid_field", "quantity"),
    ({**ORDER, "quantity": "-3"}, "invalid_field", "quantity"),
    ({**ORDER, "quantity": "lots"}, "invalid_decimal", "quantity"),
    ({**ORDER, "quantity": None}, "invalid_decimal", "quantity"),
    ({**ORDER, "price": "101.255"}, "price_off_tick", "price"),
    ({**ORDER, "quantity": "1.5"}, "quantity_off_lot", "quantity"),
    ({k: v for k, v in ORDER.items() if k != "price"}, "missing_field", "price"),
    ({k: v for k, v in ORDER.items() if k != "quantity"}, "missing_field", "quantity"),
    ({**ORDER, "type": "market"}, "invalid_field", "price"),
    ({**ORDER, "side": "hold"}, "invalid_field", "side"),
    ({**ORDER, "time_in_force": "forever"}, "invalid_field", "time_in_force"),
    ({**ORDER, "client_order_id": "no spaces"}, "invalid_field", "client_order_id"),
    ({**ORDER, "client_order_id": "x" * 65}, "invalid_field", "client_order_id"),
    ({**ORDER, "stop_price": "100"}, "invalid_field", "stop_price"),
    ({**ORDER, "trigger": "100"}, "unknown_field", "trigger"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES)
def test_bad_input_answers_400_and_writes_and_sends_nothing(
    world: OrdersWorld, body: dict[str, Any], code: str, field: str
) -> None:
    status, answer = world.post(body)
    assert status == 400
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == field
    assert world.items() == [] and world.commands() == []


@pytest.mark.parametrize(
    "raw", ['{"symbol": "AAPL",', "[]", '{"quantity": NaN}', "", '{"a":1,"a":2}']
)
def test_malformed_json_answers_400(world: OrdersWorld, raw: str) -> None:
    status, answer = world.post(raw_body=raw)
    assert (status, answer["error"]["code"]) == (400, "malformed_json")
    assert world.items() == [] and world.commands() == []


def test_a_non_json_content_type_answers_415(world: OrdersWorld) -> None:
    status, answer = world.post(raw_body=json.dumps(ORDER), headers={"Content-Type": "text/plain"})
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type")
    assert world.items() == []


def test_no_authorizer_context_answers_401(world: OrdersWorld) -> None:
    status, answer = world.post(ORDER, account=None)
    assert (status, answer["error"]["code"]) == (401, "unauthorized")


def test_a_failed_command_send_answers_503(
    world: OrdersWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_common.settings import reset_lazy

    monkeypatch.setenv("ORDER_COMMANDS_STREAM", "no-such-stream")
    reset_lazy()
    status, answer = world.post({**ORDER, "client_order_id": "c-503"})
    assert (status, answer["error"]["code"]) == (503, "command_not_sent")


def test_get_answers_own_orders_and_hides_others(world: OrdersWorld) -> None:
    _, placed = world.post(ORDER)
    order_id = placed["order"]["order_id"]
    assert world.get(order_id) == (200, placed)
    for status, answer in (world.get(order_id, account="acc_other"), world.get("nope")):
        assert (status, answer["error"]["code"]) == (404, "order_not_found")


def test_get_many_reads_an_accounts_orders_in_one_go_and_hides_others(world: OrdersWorld) -> None:
    from nexus_common.errors import NotFound
    from nexus_orders.api import service

    ids = [world.post({**ORDER, "client_order_id": f"m-{i}"})[1]["order"]["order_id"] for i in range(3)]
    other = world.post(ORDER, account="acc_other")[1]["order"]["order_id"]
    world.set_status(ids[1], "filled")
    found = service().get_many("acc_1", ids)
    assert sorted(found) == sorted(ids) and found[ids[1]].status == "filled"
    assert [found[i].order_id for i in ids] == ids
    for asked in ([*ids, other], [ids[0], "nope"]):  # another account's order, or none: not found
        with pytest.raises(NotFound):
            service().get_many("acc_1", asked)
    assert service().get_many("acc_1", []) == {}


def test_list_is_newest_first_with_status_filter_and_limit(world: OrdersWorld) -> None:
    ids = [
        world.post({**ORDER, "client_order_id": f"l-{i}"})[1]["order"]["order_id"] for i in range(4)
    ]
    world.post(ORDER, account="acc_other")
    world.set_status(ids[1], "filled")
    status, body = world.list()
    assert status == 200
    assert [o["order_id"] for o in body["orders"]] == list(reversed(ids))
    assert [o["order_id"] for o in world.list(status="open")[1]["orders"]] == [
        ids[3],
        ids[2],
        ids[0],
    ]
    assert [o["order_id"] for o in world.list(status="filled")[1]["orders"]] == [ids[1]]
    assert [o["order_id"] for o in world.list(status="open", limit="2")[1]["orders"]] == ids[3:1:-1]
    for query, field in (({"status": "weird"}, "status"), ({"limit": "0"}, "limit"),
                         ({"limit": "x"}, "limit"), ({"page": "2"}, "page")):  # fmt: skip
        status, answer = world.list(**query)
        assert (status, answer["error"]["field"]) == (400, field)


def test_cancel_an_open_order_flags_it_and_sends_a_cancel(world: OrdersWorld) -> None:
    _, placed = world.post(ORDER)
    order_id = placed["order"]["order_id"]
    status, body = world.delete(order_id)
    assert status == 202
    assert body["order"]["cancel_requested"] is True
    assert body["order"]["status"] == "pending_new"  # only the consumer changes status
    kinds = [type(c).__name__ for _, c in world.commands()]
    assert kinds == ["NewOrderCommand", "CancelOrderCommand"]
    assert world.get(order_id)[1]["order"]["cancel_requested"] is True


def test_cancel_refuses_orders_that_are_not_open_or_not_yours(world: OrdersWorld) -> None:
    _, placed = world.post(ORDER)
    order_id = placed["order"]["order_id"]
    status, answer = world.delete(order_id, account="acc_other")
    assert (status, answer["error"]["code"]) == (404, "order_not_found")
    world.set_status(order_id, "filled")
    status, answer = world.delete(order_id)
    assert (status, answer["error"]["code"]) == (409, "order_not_open")
    assert len(world.commands()) == 1
