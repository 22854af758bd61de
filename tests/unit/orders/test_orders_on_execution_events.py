"""The orders execution-events handler under moto: execution events -> order items and notifications."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import call, load_event, rest_event
from nexus_orders import api
from orders_fakes import ConsumerWorld


def fill_payload(maker: str, taker: str) -> dict[str, Any]:
    payload = copy.deepcopy(load_event("execution_events_fill.json"))
    text = json.dumps(payload["events"]).replace("MAKER", maker).replace("TAKER", taker)
    return {"events": json.loads(text)}


def event(seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"AAPL-{seq}",
        "version": 1,
        "ts": "2026-01-05T14:31:00.000000Z",
        "correlation_id": "c",
        "symbol": "AAPL",
        "seq": seq,
        "epoch": 0,
        **fields,
    }


@pytest.fixture
def world(aws: Any) -> ConsumerWorld:
    return ConsumerWorld(aws)


@pytest.fixture
def two_orders(world: ConsumerWorld) -> tuple[str, str]:
    maker = world.place(
        "acc_maker",
        {"symbol": "AAPL", "side": "sell", "type": "limit", "quantity": "100", "price": "101.50"},
    )
    taker = world.place(
        "acc_taker",
        {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "40", "price": "102.00"},
    )
    return maker, taker


def test_a_fill_updates_both_orders_and_notifies_both_accounts(
    world: ConsumerWorld, two_orders: tuple[str, str]
) -> None:
    # GIVEN a resting maker and a taker that trades 40 against it
    maker, taker = two_orders
    # WHEN the engine's events for that step are consumed
    response = world.handle(fill_payload(maker, taker))
    # THEN no failure, and each order holds the absolute values after the trade
    assert response == {"batchItemFailures": []}
    maker_item, taker_item = world.item(maker), world.item(taker)
    assert maker_item["status"] == "partially_filled"
    assert (maker_item["filled_quantity"], maker_item["remaining_quantity"]) == (40, 60)
    assert maker_item["average_price"] == Decimal("101.5")
    assert maker_item["last_seq"] == 4
    assert taker_item["status"] == "filled" and taker_item["remaining_quantity"] == 0
    assert taker_item["updated_at"] == "2026-01-05T14:30:01.000000Z"
    # AND one notification per (order, event) with a deterministic id
    notes = {n["notification_id"]: n for n in world.notifications()}
    assert set(notes) == {f"AAPL-4:{maker}", f"AAPL-4:{taker}"}
    assert notes[f"AAPL-4:{taker}"]["kind"] == "order_filled"
    assert notes[f"AAPL-4:{taker}"]["account_id"] == "acc_taker"
    assert notes[f"AAPL-4:{taker}"]["order"]["average_price"] == "101.5"
    assert notes[f"AAPL-4:{maker}"]["kind"] == "order_partially_filled"
    assert notes[f"AAPL-4:{maker}"]["trade"] == {
        "price": "101.5",
        "quantity": "40",
        "liquidity": "maker",
    }


def test_a_redelivered_batch_changes_nothing(world: ConsumerWorld, two_orders: tuple[str, str]) -> None:
    # GIVEN the step already consumed
    maker, taker = two_orders
    world.handle(fill_payload(maker, taker))
    before = (world.item(maker), world.item(taker))
    first_notes = {n["notification_id"] for n in world.notifications()}
    # WHEN the same record is delivered again
    assert world.handle(fill_payload(maker, taker)) == {"batchItemFailures": []}
    # THEN the items are unchanged; the notifications, if re-sent, carry the same ids
    assert (world.item(maker), world.item(taker)) == before
    assert {n["notification_id"] for n in world.notifications()} <= first_notes


def test_an_older_event_never_overwrites_a_newer_one(
    world: ConsumerWorld, two_orders: tuple[str, str]
) -> None:
    maker, taker = two_orders
    world.handle(fill_payload(maker, taker))
    stale = event(
        3,
        type="accepted",
        order_id=taker,
        account_id="acc_taker",
        side="buy",
        order_type="limit",
        price="102",
        quantity="40",
        time_in_force="gtc",
    )
    world.handle({"events": [stale]})
    assert world.item(taker)["status"] == "filled"


def test_cancel_and_cancel_rejected(world: ConsumerWorld, two_orders: tuple[str, str]) -> None:
    maker, taker = two_orders
    world.handle(fill_payload(maker, taker))
    world.notifications()
    # GIVEN a cancel request on the partially filled maker
    status, _ = call(
        api.app,
        rest_event(
            "DELETE",
            "/v1/orders/{order_id}",
            path_params={"order_id": maker},
            account_id="acc_maker",
        ),
    )
    assert status == 202 and world.item(maker)["cancel_requested"] is True
    # WHEN the engine cancels it THEN it is cancelled, with its fills kept, and notified
    cancelled = event(
        6, type="cancelled", order_id=maker, account_id="acc_maker", remaining_quantity="60",
        reason="user",
    )  # fmt: skip
    world.handle({"events": [cancelled]})
    item = world.item(maker)
    assert (item["status"], item["filled_quantity"], item["remaining_quantity"]) == (
        "cancelled",
        40,
        0,
    )
    assert [n["kind"] for n in world.notifications()] == ["order_cancelled"]
    # AND a cancel_rejected on the filled taker only clears its cancel flag
    world.table.update_item(
        Key={"order_id": taker},
        UpdateExpression="SET cancel_requested = :t",
        ExpressionAttributeValues={":t": True},
    )
    rejected = event(7, type="cancel_rejected", order_id=taker, account_id="acc_taker",
                     reason="unknown_order")  # fmt: skip
    world.handle({"events": [rejected]})
    item = world.item(taker)
    assert item["status"] == "filled" and "cancel_requested" not in item
    assert world.notifications() == []


def test_a_rejection_is_stored_and_notified(world: ConsumerWorld) -> None:
    order_id = world.place(
        "acc_1", {"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "5"}
    )
    rejected = event(1, type="rejected", order_id=order_id, account_id="acc_1",
                     reason="no_liquidity", message="no resting orders")  # fmt: skip
    world.handle({"events": [rejected]})
    item = world.item(order_id)
    assert (item["status"], item["reject_reason"]) == ("rejected", "no_liquidity")
    (note,) = world.notifications()
    assert note["kind"] == "order_rejected" and note["order"]["reject_reason"] == "no_liquidity"


def test_events_for_orders_not_in_the_table_are_skipped(world: ConsumerWorld) -> None:
    accepted = event(1, type="accepted", order_id="entered-over-fix", account_id="acc_fix",
                     side="buy", order_type="limit", price="1", quantity="1",
                     time_in_force="gtc")  # fmt: skip
    assert world.handle({"events": [accepted]}) == {"batchItemFailures": []}
    assert world.notifications() == []


def test_the_batch_stops_at_the_first_failed_record(
    world: ConsumerWorld, two_orders: tuple[str, str]
) -> None:
    # GIVEN three records: the maker's acceptance, a poison record, then the taker's acceptance
    maker, taker = two_orders
    accept = dict(type="accepted", side="buy", order_type="limit", price="1", quantity="1",
                  time_in_force="gtc")  # fmt: skip
    first = {"events": [event(1, order_id=maker, account_id="acc_maker", **accept)]}
    third = {"events": [event(3, order_id=taker, account_id="acc_taker", **accept)]}
    # WHEN they are consumed
    response = world.handle(first, b"{not json", third)
    # THEN the first is applied, the second and third are reported and the third not applied
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        "495900000000000000000002",
        "495900000000000000000003",
    ]
    assert world.item(maker)["status"] == "new"
    assert world.item(taker)["status"] == "pending_new"


def test_a_deposed_engine_leaders_events_change_nothing(world: ConsumerWorld, two_orders: tuple[str, str]) -> None:
    # GIVEN a maker order whose last event came from engine leader epoch 2
    maker, taker = two_orders
    cancel_by_new_leader = event(
        5, type="cancelled", order_id=maker, account_id="acc_maker", remaining_quantity="100", reason="user"
    )
    world.handle({"events": [{**cancel_by_new_leader, "epoch": 2}]})
    assert world.item(maker)["status"] == "cancelled"
    # WHEN a paused old leader (epoch 1) wakes up and publishes a fill with a newer seq
    stale = {"events": [{**e, "epoch": 1, "seq": e["seq"] + 10, "event_id": f"AAPL-{e['seq'] + 10}"}
                        for e in fill_payload(maker, taker)["events"]]}  # fmt: skip
    assert world.handle(stale) == {"batchItemFailures": []}
    # THEN the order keeps the state the current leader gave it
    item = world.item(maker)
    assert item["status"] == "cancelled" and item["filled_quantity"] == 0
    assert (item["last_seq"], item["last_epoch"]) == (5, 2)
