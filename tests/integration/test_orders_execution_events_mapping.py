"""The orders consumer through the template's own mapping of ``execution-events`` (its Handler as
the template names it, a real worker process, a real poller, a real moto server): an accepted
event and a fill reach the order item, and the fill's notification reaches the queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from template_functions import TS, TemplateFunctions
from template_functions import engine_event as envelope

CONSUMER = "OrdersConsumerFunction"


class Orders(TemplateFunctions):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, "ordersmap", (CONSUMER,))
        self.orders_table = self.table("OrdersTable")
        self.messages: list[dict[str, Any]] = []

    def start(self) -> None:
        self.start_streams()

    def put(self, *events: dict[str, Any]) -> None:
        self.clients.client("kinesis").put_record(
            StreamName=self.ref("ExecutionEventsStream"),
            Data=json.dumps({"events": list(events)}).encode(),
            PartitionKey="AAPL",
        )

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.orders_table.get_item(Key={"order_id": order_id}, ConsistentRead=True).get("Item") or {})

    def notifications(self) -> list[dict[str, Any]]:
        sqs = self.clients.client("sqs")
        answer = sqs.receive_message(QueueUrl=self.ref("NotificationsQueue"), MaxNumberOfMessages=10)
        self.messages.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
        return list(self.messages)



@pytest.fixture
def orders(moto_endpoint: str) -> Iterator[Orders]:
    world = Orders(moto_endpoint)
    yield world
    world.close()


def test_the_templates_mapping_applies_execution_events_to_the_order_and_notifies(orders: Orders) -> None:
    # GIVEN a buy of 10 AAPL @ 100 in the orders table, pending_new, and resting sell o-s elsewhere
    orders.orders_table.put_item(Item={
        "order_id": "o-b", "account_id": "acc_buyer", "symbol": "AAPL", "side": "buy", "type": "limit",
        "quantity": Decimal(10), "price": Decimal("100.00"), "time_in_force": "gtc", "status": "pending_new",
        "filled_quantity": Decimal(0), "filled_notional": Decimal(0), "remaining_quantity": Decimal(10),
        "created_at": TS, "updated_at": TS,
    })  # fmt: skip
    # AND on execution-events: the engine accepts it, then it fills in full against o-s
    orders.put(
        envelope(1, "accepted", order_id="o-b", account_id="acc_buyer", side="buy", order_type="limit",
                 price="100.00", quantity="10", time_in_force="gtc"),
        envelope(2, "trade", price="100.00", quantity="10", aggressor_side="buy",
                 maker_order_id="o-s", maker_account_id="acc_seller", taker_order_id="o-b",
                 taker_account_id="acc_buyer", maker_filled_quantity="10", maker_filled_notional="1000.00",
                 maker_remaining_quantity="0", taker_filled_quantity="10", taker_filled_notional="1000.00",
                 taker_remaining_quantity="0"),
    )  # fmt: skip
    # WHEN the template's mapping of the orders consumer runs
    orders.start()
    # THEN the order is filled at 100, with the engine's last seq
    order = eventually(lambda: orders.order("o-b"), lambda item: item.get("status") == "filled", timeout=60)
    assert order["status"] == "filled"
    assert (order["filled_quantity"], order["remaining_quantity"], order["average_price"]) == (
        Decimal(10), Decimal(0), Decimal("100.0000"),
    )
    assert order["last_seq"] == 2
    # AND the buyer hears of the fill (the seller's order is not in the table: nothing for it)
    found = eventually(orders.notifications, lambda messages: len(messages) >= 1, timeout=60)
    assert [(m["kind"], m["account_id"], m["order"]["order_id"]) for m in found] == [
        ("order_filled", "acc_buyer", "o-b")
    ]
