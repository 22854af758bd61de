"""``POST /v1/orders`` with ``routing`` under moto (tables, streams and the routing-requests queue
from the template): the order is stored and reserved once, like any order, and handed to the
router instead of the engine; a repeat hands the same request again and reserves nothing more;
what a routed order may not be is a 4xx naming the field that changes nothing; a routed order
cannot be cancelled or replaced (it ends by itself). Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.risk import reserve_amount, reserve_rate
from orders_fakes import FEE_BUFFER, World

D = Decimal
ROUTED = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "100", "price": "100.50",
          "routing": {"strategy": "SMART", "max_venues": 3}}


@pytest.fixture
def world(aws: Any) -> World:
    return World(aws)


def route_requests(world: World) -> list[dict[str, Any]]:
    sqs: Any = world.aws.client("sqs")
    url = world.env["ROUTING_REQUESTS_QUEUE_URL"]
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if not got:
            return found
        for message in got:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_routed_order_is_reserved_once_and_handed_to_the_router(world: World) -> None:
    # WHEN a routed SMART limit buy is placed
    status, body = world.request("POST", "/v1/orders", {**ROUTED, "client_order_id": "r-1"})
    # THEN it is accepted as an immediate-or-cancel order with its routing instruction
    assert status == 202, body
    order = body["order"]
    assert order["time_in_force"] == "ioc" and order["status"] == "pending_new"
    assert order["routing"] == {"strategy": "SMART", "max_venues": 3, "urgency": "normal"}
    # AND its reservation is made once, as for any order
    reserved = reserve_amount(D(100), reserve_rate(D("100.50"), FEE_BUFFER))
    assert world.item()["available_cash"] == D("1000000.00") - reserved
    # AND the router, not the engine, gets it
    assert world.commands() == []
    [request] = route_requests(world)
    assert request == {"type": "route", "order_id": order["order_id"], "account_id": "acc_1", "symbol": "AAPL",
                       "side": "buy", "order_type": "limit", "quantity": "100", "price": "100.5",
                       "strategy": "SMART", "max_venues": 3, "urgency": "normal", "time_in_force": "ioc",
                       "ts": request["ts"]}
    # WHEN the client repeats it (same client_order_id), THEN the same request goes again and
    # nothing more is reserved
    status, again = world.request("POST", "/v1/orders", {**ROUTED, "client_order_id": "r-1"})
    assert status == 200 and again["order"]["order_id"] == order["order_id"]
    assert world.item()["available_cash"] == D("1000000.00") - reserved
    assert [r["order_id"] for r in route_requests(world)] == [order["order_id"]]


def test_a_routed_market_buy_is_capped_at_its_protection_price(world: World) -> None:
    status, body = world.request("POST", "/v1/orders", {"symbol": "AAPL", "side": "buy", "type": "market",
                                                        "quantity": "10", "routing": {"strategy": "LOWEST_COST"}})
    assert status == 202, body
    [request] = route_requests(world)
    # the last trade 100.00 + 5% market protection: the route never pays more than was reserved
    assert (request["order_type"], request["price"], request["strategy"]) == ("market", "105", "LOWEST_COST")


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"routing": {"strategy": "FAST"}}, None, "routing.strategy"),
    ({"routing": {"strategy": "SMART", "max_venues": 0}}, None, "routing.max_venues"),
    ({"routing": {"strategy": "SMART", "extra": 1}}, None, "routing.extra"),
    ({"time_in_force": "fok"}, "routing_unsupported", "time_in_force"),
    ({"type": "market", "price": None, "time_in_force": "day"}, None, "time_in_force"),
    ({"type": "market", "price": None, "time_in_force": "fok"}, "routing_unsupported", "time_in_force"),
    ({"type": "stop_limit", "stop_price": "101.00"}, "routing_unsupported", "type"),
    ({"post_only": True, "time_in_force": "ioc"}, None, "post_only"),
    ({"display_quantity": "10"}, "routing_unsupported", "display_quantity"),
    ({"stp": "cancel_newest"}, "routing_unsupported", "stp"),
])
def test_what_a_routed_order_may_not_be_is_a_4xx_that_changes_nothing(
    world: World, change: dict[str, Any], code: str | None, field: str
) -> None:
    before = world.item()
    status, body = world.request("POST", "/v1/orders", {**ROUTED, **change})
    assert 400 <= status < 500 and body["error"]["field"] == field, body
    if code is not None:
        assert body["error"]["code"] == code
    assert world.item() == before and world.orders() == [] and route_requests(world) == []


def test_a_gtc_routed_order_can_be_cancelled_once_it_rests(world: World) -> None:
    # GIVEN a gtc routed order (its remainder rests on the internal book once routed)
    status, body = world.request("POST", "/v1/orders", {**ROUTED, "time_in_force": "gtc"})
    assert status == 202 and body["order"]["time_in_force"] == "gtc"
    order_id = body["order"]["order_id"]
    assert route_requests(world)[0]["time_in_force"] == "gtc"
    # WHEN it is cancelled while still being routed, THEN 409: nothing rests yet to cancel
    early = world.request("DELETE", "/v1/orders/{order_id}", order_id=order_id)
    assert early[0] == 409 and early[1]["error"]["code"] == "routed_order"
    # WHEN it rests (the engine's accepted event made it new), THEN a cancel goes to the engine
    world.ddb.Table(world.env["ORDERS_TABLE"]).update_item(
        Key={"order_id": order_id}, UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "new"})
    status, cancelled = world.request("DELETE", "/v1/orders/{order_id}", order_id=order_id)
    assert status == 202, cancelled
    [command] = world.commands()
    assert (command.type, command.order_id) == ("cancel", order_id)


def test_an_immediate_routed_order_cannot_be_cancelled_or_replaced(world: World) -> None:
    _, body = world.request("POST", "/v1/orders", ROUTED)
    order_id = body["order"]["order_id"]
    cancel = world.request("DELETE", "/v1/orders/{order_id}", order_id=order_id)
    replace = world.request("PATCH", "/v1/orders/{order_id}", {"price": "100.60"}, order_id=order_id)
    assert cancel[0] == 409 and cancel[1]["error"]["code"] == "routed_order"
    assert replace[0] == 409 and replace[1]["error"]["code"] == "routed_order"
    assert world.commands() == []


def _working_on(world: World, order_id: str, venue: str) -> None:
    """The order as the orders consumer leaves it after its ``route_working``: new, resting on ``venue``."""
    world.ddb.Table(world.env["ORDERS_TABLE"]).update_item(
        Key={"order_id": order_id}, UpdateExpression="SET #s = :s, rests_on = :v",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": "new", ":v": venue})


def test_a_routed_order_resting_on_an_external_venue_is_cancelled_through_routing(world: World) -> None:
    # GIVEN a gtc routed order whose remainder rests on the simulated venue Alpha
    _, body = world.request("POST", "/v1/orders", {**ROUTED, "time_in_force": "gtc"})
    order_id = body["order"]["order_id"]
    route_requests(world)
    _working_on(world, order_id, "Alpha")
    # WHEN its owner cancels it
    status, cancelled = world.request("DELETE", "/v1/orders/{order_id}", order_id=order_id)
    # THEN the cancel is accepted and goes to routing (which cancels it on Alpha), not the engine
    assert status == 202, cancelled
    assert cancelled["order"]["cancel_requested"] is True and cancelled["order"]["rests_on"] == "Alpha"
    assert world.commands() == []
    [request] = route_requests(world)
    assert request == {"type": "cancel_route", "order_id": order_id, "account_id": "acc_1", "ts": request["ts"]}
    # AND the reservation stays until routing ends the order (the route_ended releases it)
    reserved = reserve_amount(D(100), reserve_rate(D("100.50"), FEE_BUFFER))
    assert world.item()["available_cash"] == D("1000000.00") - reserved


def test_a_mass_cancel_reaches_the_routed_orders_resting_on_external_venues(world: World) -> None:
    # GIVEN a gtc routed order resting on Alpha and one still being routed
    _, body = world.request("POST", "/v1/orders", {**ROUTED, "time_in_force": "gtc", "client_order_id": "m-1"})
    away = body["order"]["order_id"]
    world.request("POST", "/v1/orders", {**ROUTED, "time_in_force": "gtc", "client_order_id": "m-2"})
    route_requests(world)
    _working_on(world, away, "Alpha")
    # WHEN the account cancels all its AAPL orders
    status, answer = world.request("POST", "/v1/orders/mass-cancel", {"symbol": "AAPL"})
    # THEN the engine gets its mass cancel, and routing the cancel of the order resting on Alpha
    assert status == 202, answer
    assert [c.type for c in world.commands()] == ["mass_cancel"]
    assert [(r["type"], r["order_id"]) for r in route_requests(world)] == [("cancel_route", away)]


def test_a_retry_of_a_routed_entry_stopped_before_its_reservation_is_not_handed_to_the_router(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_orders.repo import DynamoRiskBook

    class Stopped(BaseException):
        """The entry's invocation ends here: no compensation runs."""

    def stopped(*_: Any) -> None:
        raise Stopped

    # GIVEN a routed entry that stopped after storing its order, before its reservation write
    with monkeypatch.context() as patch, pytest.raises(Stopped):
        patch.setattr(DynamoRiskBook, "reserve", stopped)
        world.request("POST", "/v1/orders", {**ROUTED, "client_order_id": "r-stop"})
    # WHEN the client retries with the same client_order_id
    status, body = world.request("POST", "/v1/orders", {**ROUTED, "client_order_id": "r-stop"})
    # THEN the stored order is answered, and not handed to the router: nothing is reserved for it
    assert status == 200 and body["order"]["status"] == "pending_new"
    assert route_requests(world) == []
    assert "available_cash" not in world.item() or world.item()["available_cash"] == D("1000000.00")
