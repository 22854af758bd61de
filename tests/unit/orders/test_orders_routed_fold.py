"""A routed parent order's external fills folded into order state: ``venue_fill`` SETs the
parent's totals like a trade does, ``route_ended`` fills or cancels what is left. Pure folding
first, then the execution-events handler under moto on a parent the orders API stored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from nexus_common.events import ENGINE_EVENT_ADAPTER, RouteEndedEvent, RouteWorkingEvent, VenueFillEvent
from nexus_orders.folding import order_changes
from nexus_orders.order import Order
from orders_fakes import ConsumerWorld

D = Decimal


def wire(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"AAPL-{seq}",
        "version": 1,
        "ts": f"2026-01-05T14:31:{seq:02d}.000000Z",
        "correlation_id": "route-o1",
        "symbol": "AAPL",
        "seq": seq,
        "epoch": 0,
        **fields,
    }


def venue_fill(seq: int, order_id: str = "o1", **fields: Any) -> dict[str, Any]:
    body = {
        "type": "venue_fill", "order_id": order_id, "account_id": "acc_1", "side": "buy",
        "child_id": f"c{seq}", "venue": "ARCA", "mic": "ARCX", "price": "100.10", "quantity": "30",
        "liquidity": "taker", "fee": "0.09", "report_id": f"r{seq}",
        "filled_quantity": "30", "filled_notional": "3003.00", "remaining_quantity": "70",
    }  # fmt: skip
    return wire(seq, **{**body, **fields})


def route_ended(seq: int, order_id: str = "o1", **fields: Any) -> dict[str, Any]:
    body = {
        "type": "route_ended", "order_id": order_id, "account_id": "acc_1", "side": "buy",
        "quantity": "100", "filled_quantity": "30", "filled_notional": "3003.00",
        "remaining_quantity": "70", "reason": "no_liquidity",
    }  # fmt: skip
    return wire(seq, **{**body, **fields})


def route_working(seq: int, order_id: str = "o1", **fields: Any) -> dict[str, Any]:
    body = {
        "type": "route_working", "order_id": order_id, "account_id": "acc_1", "side": "buy",
        "quantity": "100", "venue": "ARCA", "mic": "ARCX", "price": "99.90", "time_in_force": "gtc",
        "filled_quantity": "30", "filled_notional": "3003.00", "remaining_quantity": "70",
    }  # fmt: skip
    return wire(seq, **{**body, **fields})


def fold(raw: dict[str, Any]) -> Any:
    event = ENGINE_EVENT_ADAPTER.validate_python(raw)
    assert isinstance(event, VenueFillEvent | RouteEndedEvent | RouteWorkingEvent)
    (change,) = order_changes(event)
    return change


# -- pure folding ----------------------------------------------------------------------------


def test_a_venue_fill_sets_the_parents_totals_like_a_trade() -> None:
    # GIVEN a first external fill of 30 of a parent of 100
    # WHEN it is folded
    change = fold(venue_fill(7))
    # THEN the parent (not the child) gets the absolute totals, partially filled, notified
    assert (change.order_id, change.account_id, change.seq, change.event_id) == ("o1", "acc_1", 7, "AAPL-7")
    assert change.values == {
        "status": "partially_filled",
        "filled_quantity": D(30),
        "filled_notional": D("3003.00"),
        "average_price": D("100.1"),
        "remaining_quantity": D(70),
        "updated_at": "2026-01-05T14:31:07.000000Z",
    }
    assert change.notify == "order_partially_filled"
    # AND the notification carries this fill with the venue's own fee
    assert change.extra == {
        "trade": {"price": "100.1", "quantity": "30", "liquidity": "taker", "venue": "ARCA", "fee": "0.09"}
    }


def test_the_last_venue_fill_fills_the_parent_and_a_rebate_stays_negative() -> None:
    # GIVEN a maker fill that completes the parent and earns a rebate
    raw = venue_fill(
        8, price="100.00", quantity="70", liquidity="maker", fee="-0.14",
        filled_quantity="100", filled_notional="10003.00", remaining_quantity="0",
    )  # fmt: skip
    # WHEN it is folded
    change = fold(raw)
    # THEN the parent is filled at the average of both fills, and the fee is passed on as is
    assert change.values["status"] == "filled" and change.values["remaining_quantity"] == 0
    assert change.values["average_price"] == D("100.03")
    assert change.notify == "order_filled"
    assert change.extra["trade"]["fee"] == "-0.14"


def test_route_ended_with_nothing_left_sets_the_filled_totals_again_without_a_second_notice() -> None:
    # GIVEN the route ended because the parent filled
    raw = route_ended(9, filled_quantity="100", filled_notional="10003.00", remaining_quantity="0", reason="filled")
    # WHEN it is folded
    change = fold(raw)
    # THEN the values are those of the last fill (idempotent), and the account is not told twice
    assert change.values["status"] == "filled"
    assert (change.values["filled_quantity"], change.values["remaining_quantity"]) == (D(100), D(0))
    assert change.values["average_price"] == D("100.03")
    assert change.notify is None


def test_route_ended_with_a_remainder_cancels_it_like_an_ioc() -> None:
    # GIVEN the route ended with 70 of 100 unfilled
    # WHEN it is folded
    change = fold(route_ended(9))
    # THEN the parent is cancelled with the route's reason, its fills kept, nothing left open
    assert change.values["status"] == "cancelled"
    assert change.values["cancel_reason"] == "no_liquidity"
    assert change.values["remaining_quantity"] == 0
    assert (change.values["filled_quantity"], change.values["average_price"]) == (D(30), D("100.1"))
    assert change.notify == "order_cancelled"


def test_route_ended_alone_cancels_an_unfilled_parent() -> None:
    # GIVEN a route that filled nothing
    raw = route_ended(3, filled_quantity="0", filled_notional="0", remaining_quantity="100", reason="ioc")
    # WHEN it is folded
    change = fold(raw)
    # THEN the parent is cancelled, nothing filled, no average price (removed, not stored)
    assert (change.values["status"], change.values["cancel_reason"]) == ("cancelled", "ioc")
    assert change.values["filled_quantity"] == 0 and change.values["average_price"] is None
    assert change.notify == "order_cancelled"


def test_route_working_with_nothing_filled_opens_the_parent_on_its_venue_like_an_accepted_order() -> None:
    # GIVEN a routed gtc parent whose whole quantity came to rest on ARCA
    raw = route_working(4, filled_quantity="0", filled_notional="0", remaining_quantity="100")
    # WHEN it is folded
    change = fold(raw)
    # THEN the parent is new, rests on ARCA, nothing filled, and (as an accepted order) no notice
    assert change.values == {
        "status": "new",
        "rests_on": "ARCA",
        "filled_quantity": D(0),
        "filled_notional": D(0),
        "average_price": None,
        "remaining_quantity": D(100),
        "updated_at": "2026-01-05T14:31:04.000000Z",
    }
    assert change.notify is None and change.remove == ()


def test_route_working_after_fills_keeps_the_parent_partially_filled_with_its_totals() -> None:
    # GIVEN 30 of 100 filled before the remainder came to rest on ARCA
    # WHEN the route_working is folded
    change = fold(route_working(8))
    # THEN the fill's totals again, partially filled, the venue it rests on, no second notice
    assert change.values["status"] == "partially_filled"
    assert (change.values["filled_quantity"], change.values["remaining_quantity"]) == (D(30), D(70))
    assert change.values["average_price"] == D("100.1") and change.values["rests_on"] == "ARCA"
    assert change.notify is None


def test_route_ended_expired_expires_the_parent_like_an_expired_order() -> None:
    # GIVEN a day parent resting on a venue that expired at the close with 70 left
    # WHEN its route end is folded
    change = fold(route_ended(12, reason="expired"))
    # THEN it is expired (not cancelled) with its fills kept, the account told it expired
    assert (change.values["status"], change.values["cancel_reason"]) == ("expired", "expired")
    assert change.values["remaining_quantity"] == 0 and change.values["filled_quantity"] == D(30)
    assert change.notify == "order_expired"


@pytest.mark.parametrize("fields", [
    {"reason": "cancelled"},
    {"reason": "expired"},
    {"reason": "filled", "filled_quantity": "100", "filled_notional": "10003.00", "remaining_quantity": "0"},
])
def test_every_route_end_settles_a_cancel_request(fields: dict[str, Any]) -> None:
    change = fold(route_ended(12, **fields))
    assert change.remove == ("cancel_requested", "cancel_requested_at")


# -- the handler under moto ------------------------------------------------------------------


@pytest.fixture
def world(aws: Any) -> ConsumerWorld:
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    ddb.Table(aws.table_name("AccountsTable")).put_item(
        Item={"account_id": "acc_1", "name": "acc_1", "cash": D("1000000.00"), "currency": "USD", "status": "active"}
    )
    ddb.Table(aws.table_name("TradesTable")).put_item(
        Item={"symbol": "AAPL", "seq": 0, "price": D("100.00"), "quantity": D(1)}
    )
    return ConsumerWorld(aws)


def test_a_stored_parent_takes_two_venue_fills_then_its_route_end(world: ConsumerWorld) -> None:
    # GIVEN a parent of 100 stored (and reserved for) by the orders API
    parent = world.place(
        "acc_1", {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "100", "price": "101.00",
                  "time_in_force": "ioc"},
    )  # fmt: skip
    first = venue_fill(5, parent)
    second = venue_fill(
        6, parent, venue="BATS", mic="BATS", price="100.20", quantity="20", fee="-0.04", liquidity="maker",
        filled_quantity="50", filled_notional="5007.00", remaining_quantity="50",
    )  # fmt: skip
    ended = route_ended(7, parent, filled_quantity="50", filled_notional="5007.00", remaining_quantity="50")
    # WHEN the engine's record of the route is consumed
    assert world.handle({"events": [first, second, ended]}) == {"batchItemFailures": []}
    # THEN the parent holds both fills and is cancelled for the rest
    item = world.item(parent)
    assert (item["status"], item["cancel_reason"]) == ("cancelled", "no_liquidity")
    assert (item["filled_quantity"], item["filled_notional"], item["remaining_quantity"]) == (50, D("5007"), 0)
    assert item["average_price"] == D("100.14") and item["last_seq"] == 7
    # AND the account heard of each fill and of the end, in order
    notes = world.notifications()
    assert [(n["notification_id"], n["kind"]) for n in notes] == [
        (f"AAPL-5:{parent}", "order_partially_filled"),
        (f"AAPL-6:{parent}", "order_partially_filled"),
        (f"AAPL-7:{parent}", "order_cancelled"),
    ]
    assert notes[1]["trade"] == {"price": "100.2", "quantity": "20", "liquidity": "maker", "venue": "BATS",
                                 "fee": "-0.04"}  # fmt: skip
    # WHEN an older fill is delivered again
    assert world.handle({"events": [second]}) == {"batchItemFailures": []}
    # THEN nothing changes (the parent's last_seq is newer), and no notice is sent again
    assert world.item(parent) == item
    assert world.notifications() == []


def test_a_parent_resting_on_a_venue_is_open_there_then_its_cancel_ends_it(world: ConsumerWorld) -> None:
    # GIVEN a gtc parent of 100 stored by the orders API
    parent = world.place(
        "acc_1", {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "100", "price": "101.00",
                  "time_in_force": "gtc"},
    )  # fmt: skip
    # WHEN its remainder comes to rest on ARCA with nothing filled
    assert world.handle({"events": [route_working(5, parent, filled_quantity="0", filled_notional="0",
                                                  remaining_quantity="100")]}) == {"batchItemFailures": []}
    # THEN it is new, rests on ARCA, shows it on the wire, and nobody was notified
    item = world.item(parent)
    assert (item["status"], item["rests_on"], item["remaining_quantity"], item["last_seq"]) == (
        "new", "ARCA", 100, 5)
    assert "average_price" not in item
    assert world.notifications() == []
    # WHEN the venue fills 30, and its cancel is asked for (as the orders API marks it)
    world.table.update_item(Key={"order_id": parent}, UpdateExpression="SET cancel_requested = :t, "
                            "cancel_requested_at = :at", ExpressionAttributeValues={
                                ":t": True, ":at": "2026-01-05T14:31:06.500000Z"})
    cancelled = route_ended(7, parent, reason="cancelled")
    assert world.handle({"events": [venue_fill(6, parent), cancelled]}) == {"batchItemFailures": []}
    # THEN the parent holds the fill, is cancelled for the rest, and its cancel request is settled
    item = world.item(parent)
    assert (item["status"], item["cancel_reason"], item["filled_quantity"], item["remaining_quantity"]) == (
        "cancelled", "cancelled", 30, 0)
    assert "cancel_requested" not in item and "cancel_requested_at" not in item
    assert [n["kind"] for n in world.notifications()] == ["order_partially_filled", "order_cancelled"]
    # WHEN the route_working is delivered again, THEN nothing changes (its seq is older)
    assert world.handle({"events": [route_working(5, parent)]}) == {"batchItemFailures": []}
    assert world.item(parent) == item


def test_rests_on_is_on_the_wire_only_when_set() -> None:
    order = Order(order_id="o1", account_id="acc_1", symbol="AAPL", side="buy", type="limit", quantity=D(100),
                  price=D("99.9"), time_in_force="gtc", status="new", remaining_quantity=D(100),
                  created_at="2026-01-05T14:31:00.000000Z", updated_at="2026-01-05T14:31:00.000000Z")
    assert "rests_on" not in order.to_wire()
    assert order.model_copy(update={"rests_on": "ARCA"}).to_wire()["rests_on"] == "ARCA"
