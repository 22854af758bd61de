"""``GET /v1/orders`` pages through an account's whole history: newest first, ``limit`` + an opaque
``cursor`` / ``next_cursor`` as the notifications inbox pages, the status filter holding across
pages, and a cursor the API did not give refused with 400."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import call, rest_event
from nexus_orders import repo as orders_repo
from nexus_orders.api import app
from nexus_orders.order import Order
from nexus_orders.repo import DynamoOrderRepository, order_to_item


def stored_order(number: int, account_id: str = "acc_1", status: str = "new") -> Order:
    created = f"2026-03-05T15:{number // 60:02d}:{number % 60:02d}.000000Z"
    return Order(
        order_id=f"ord-{account_id}-{number:04d}", account_id=account_id, symbol="AAPL", side="buy", type="limit",
        quantity=Decimal(1), price=Decimal("100.00"), time_in_force="gtc", status=status,
        remaining_quantity=Decimal(1), created_at=created, updated_at=created,
    )  # fmt: skip


class Orders:
    def __init__(self, aws: Any) -> None:
        env = aws.use_function_env("OrdersApiFunction")
        self.repo = DynamoOrderRepository(env["ORDERS_TABLE"])

    def store(self, *orders: Order) -> list[str]:
        with self.repo.table.batch_writer() as batch:
            for order in orders:
                batch.put_item(Item=order_to_item(order))
        return [order.order_id for order in orders]

    def list(self, account: str = "acc_1", **query: str) -> tuple[int, Any]:
        return call(app, rest_event("GET", "/v1/orders", query=query or None, account_id=account))

    def all_pages(self, account: str = "acc_1", **query: str) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            status, body = self.list(account, **query, **({"cursor": cursor} if cursor else {}))
            assert status == 200, body
            pages.append([o["order_id"] for o in body["orders"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 100, "the cursor does not move on"


@pytest.fixture
def orders(aws: Any) -> Orders:
    return Orders(aws)


def test_pages_go_newest_first_through_every_order_and_end_with_a_null_cursor(orders: Orders) -> None:
    # GIVEN 7 orders of the caller and some of another account, interleaved in time
    mine = orders.store(*(stored_order(n) for n in range(7)))
    orders.store(*(stored_order(n, "acc_other") for n in range(7)))
    # WHEN the caller lists 3 at a time, following next_cursor
    pages = orders.all_pages(limit="3")
    # THEN the pages are its own orders, newest first, each once, and the last page ends the list
    assert pages == [mine[6:3:-1], mine[3:0:-1], mine[0:1]]


def test_the_status_filter_holds_on_every_page(orders: Orders) -> None:
    # GIVEN orders alternately filled and open
    ids = orders.store(*(stored_order(n, status="filled" if n % 2 else "new") for n in range(9)))
    # WHEN the filled ones are listed 2 at a time
    pages = orders.all_pages(status="filled", limit="2")
    # THEN exactly the filled orders come back, newest first
    assert [i for page in pages for i in page] == [ids[n] for n in (7, 5, 3, 1)]
    assert all(len(page) <= 2 for page in pages)


def test_a_filtered_page_that_reads_its_budget_comes_back_short_with_a_cursor(
    orders: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a listing that may read one index page of 2 orders per request
    monkeypatch.setattr(orders_repo, "MAX_PAGE_READS", 1)
    monkeypatch.setattr(orders_repo, "FILTERED_READ", 2)
    # AND the newest 4 orders open, the 3 before them filled
    ids = orders.store(*(stored_order(n, status="filled" if n < 3 else "new") for n in range(7)))
    # WHEN the filled orders are listed 2 at a time
    status, first = orders.list(status="filled", limit="2")
    pages = orders.all_pages(status="filled", limit="2")
    # THEN the first page is empty yet goes on, and following the cursor finds every filled order
    assert (status, first["orders"]) == (200, []) and first["next_cursor"] is not None
    assert [i for page in pages for i in page] == [ids[2], ids[1], ids[0]]


def test_more_than_500_orders_are_reachable(orders: Orders) -> None:
    # GIVEN an account with 501 orders (one more than the largest page)
    ids = orders.store(*(stored_order(n) for n in range(501)))
    # WHEN it lists 500, then follows next_cursor
    status, first = orders.list(limit="500")
    _, second = orders.list(limit="500", cursor=first["next_cursor"])
    # THEN the second page holds the oldest order, and nothing is left after it
    assert status == 200 and len(first["orders"]) == 500 and first["orders"][0]["order_id"] == ids[500]
    assert [o["order_id"] for o in second["orders"]] == [ids[0]] and second["next_cursor"] is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        _b64(b"\xff\xfe"),
        _b64(b"[1, 2]"),
        _b64(json.dumps({"t": "2026-03-05T15:00:00.000000Z"}).encode()),
        _b64(json.dumps({"t": "2026-03-05T15:00:00.000000Z", "o": 7}).encode()),
        _b64(json.dumps({"t": "x", "o": "y", "account_id": "acc_other"}).encode()),
        "A" * 1001,
    ],
)
def test_a_cursor_the_api_did_not_give_is_400_on_cursor(orders: Orders, cursor: str) -> None:
    # GIVEN an account with orders
    orders.store(*(stored_order(n) for n in range(3)))
    # WHEN it lists with a cursor that is not one the API gave
    status, body = orders.list(limit="2", cursor=cursor)
    # THEN 400 naming the cursor
    assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_field", "cursor")


def test_a_cursor_never_reaches_into_another_account(orders: Orders) -> None:
    # GIVEN two accounts with orders at the same instants
    orders.store(*(stored_order(n) for n in range(4)))
    theirs = orders.store(*(stored_order(n, "acc_other") for n in range(4)))
    cursor = orders.list(limit="2")[1]["next_cursor"]
    # WHEN the other account lists with a cursor given to acc_1
    status, body = orders.list("acc_other", limit="10", cursor=cursor)
    # THEN it only ever sees its own orders
    assert status == 200
    assert {o["order_id"] for o in body["orders"]} <= set(theirs)
    assert all(o["account_id"] == "acc_other" for o in body["orders"])
