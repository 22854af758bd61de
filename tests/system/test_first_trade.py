"""The first trade, end to end, over HTTP against the whole local platform: API Gateway and the
authorizer, the orders function, the order-commands stream, the matching engine process, the
execution-events stream, and the consumers that keep orders, the book and the tape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system


def _new_account(platform: Any, name: str, cash: str = "100000.00") -> Api:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, Decimal(cash))
    return Api(platform.api_url, created["api_key"])


def _order(api: Api, order_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/orders/{order_id}")
    assert answer.status == 200, answer.body
    order: dict[str, Any] = answer.body["order"]
    return order


def test_two_crossing_orders_trade_and_both_sides_see_it(local_platform: Any) -> None:
    # GIVEN two accounts
    seller, buyer = _new_account(local_platform, "Seller"), _new_account(local_platform, "Buyer")
    # WHEN the seller rests 10 AAPL at 150.00 and the buyer sends a crossing buy for 4 at 151.00
    sell = seller.post(
        "/v1/orders",
        {
            "symbol": "AAPL",
            "side": "sell",
            "type": "limit",
            "quantity": "10",
            "price": "150.00",
            "client_order_id": "s-1",
        },
    )
    assert sell.status == 202, sell.body
    assert sell.body["order"]["status"] == "pending_new"
    eventually(lambda: _order(seller, sell.body["order"]["order_id"])["status"], lambda s: s == "new")
    buy = buyer.post("/v1/orders", {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": 4, "price": "151.00"})
    assert buy.status == 202, buy.body
    sell_id, buy_id = sell.body["order"]["order_id"], buy.body["order"]["order_id"]
    # THEN the buy fills 4 at the resting price and the sell is partially filled
    bought = eventually(lambda: _order(buyer, buy_id), lambda o: o["status"] == "filled")
    sold = eventually(lambda: _order(seller, sell_id), lambda o: o["status"] == "partially_filled")
    assert bought["status"] == "filled"
    assert Decimal(bought["filled_quantity"]) == 4 and Decimal(bought["average_price"]) == Decimal("150")
    assert sold["status"] == "partially_filled"
    assert Decimal(sold["filled_quantity"]) == 4 and Decimal(sold["remaining_quantity"]) == 6
    # AND the public tape shows the trade, and the book the 6 left at 150.00
    tape = eventually(
        lambda: seller.get("/v1/markets/AAPL/trades?limit=10").body["trades"],
        lambda t: any(x["quantity"] == "4" for x in t),
    )
    trade = next(x for x in tape if Decimal(x["quantity"]) == 4)
    assert Decimal(trade["price"]) == Decimal("150") and trade["aggressor_side"] == "buy"
    book = eventually(
        lambda: buyer.get("/v1/markets/AAPL/book?depth=5").body,
        lambda b: b["asks"] and Decimal(b["asks"][0]["quantity"]) == 6,
    )
    assert [(Decimal(a["price"]), Decimal(a["quantity"])) for a in book["asks"]] == [(Decimal("150"), Decimal("6"))]
    assert book["bids"] == []
    # AND the open orders of the seller list the resting sell, and the buyer has none open
    assert [o["order_id"] for o in seller.get("/v1/orders?status=open").body["orders"]] == [sell_id]
    assert buyer.get("/v1/orders?status=open").body["orders"] == []
    # AND a repeated client_order_id returns the first order, not a second one
    again = seller.post(
        "/v1/orders",
        {
            "symbol": "AAPL",
            "side": "sell",
            "type": "limit",
            "quantity": "10",
            "price": "150.00",
            "client_order_id": "s-1",
        },
    )
    assert again.status in (200, 202) and again.body["order"]["order_id"] == sell_id
    # WHEN the seller cancels the rest
    cancel = seller.delete(f"/v1/orders/{sell_id}")
    assert cancel.status == 202, cancel.body
    # THEN the order ends cancelled with its fill kept, and the book is empty
    done = eventually(lambda: _order(seller, sell_id), lambda o: o["status"] == "cancelled")
    assert done["status"] == "cancelled" and Decimal(done["filled_quantity"]) == 4
    book = eventually(lambda: buyer.get("/v1/markets/AAPL/book").body, lambda b: not b["asks"])
    assert book["asks"] == [] and book["bids"] == []


def test_market_order_takes_the_book_in_price_time_priority(local_platform: Any) -> None:
    # GIVEN three resting sells on MSFT: 5 @ 300.10, then 5 @ 300.00, then 5 more @ 300.00
    maker, taker = _new_account(local_platform, "Maker"), _new_account(local_platform, "Taker")
    ids = []
    for price in ("300.10", "300.00", "300.00"):
        answer = maker.post(
            "/v1/orders", {"symbol": "MSFT", "side": "sell", "type": "limit", "quantity": "5", "price": price}
        )
        ids.append(answer.body["order"]["order_id"])
        eventually(lambda i=ids[-1]: _order(maker, i)["status"], lambda s: s == "new")
    # WHEN a market buy for 12 arrives
    buy = taker.post("/v1/orders", {"symbol": "MSFT", "side": "buy", "type": "market", "quantity": "12"})
    assert buy.status == 202, buy.body
    # THEN it fills 5 + 5 at 300.00 (oldest first) and 2 at 300.10
    filled = eventually(lambda: _order(taker, buy.body["order"]["order_id"]), lambda o: o["status"] == "filled")
    assert Decimal(filled["filled_quantity"]) == 12
    # (average price: 4 dp, ROUND_HALF_EVEN, as documented)
    expected = ((Decimal("3000.00") + Decimal("600.20")) / 12).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
    assert Decimal(filled["average_price"]) == expected
    states = [eventually(lambda i=i: _order(maker, i), lambda o: o["status"] != "new") for i in ids]
    assert [s["status"] for s in states] == ["partially_filled", "filled", "filled"]
    assert Decimal(states[0]["remaining_quantity"]) == 3
    # AND the 3 left are cancelled: the platform is shared, and the next tests cross at the last price
    assert maker.delete(f"/v1/orders/{ids[0]}").status == 202


def test_operator_command_creates_an_account_whose_key_trades(local_platform: Any) -> None:
    # WHEN an operator runs `nexus accounts create` against the running platform
    env = {**os.environ, "NEXUS_STAGE": local_platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "accounts", "create", "--name", "Carol", "--cash", "2500.50"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    # THEN it prints one JSON object with the account id and the one-time key
    created = json.loads(out.stdout)
    assert set(created) == {"account_id", "api_key"}
    # AND the key authenticates on the API, and only its hash is stored
    api = Api(local_platform.api_url, created["api_key"])
    assert api.get("/v1/orders").status == 200
    table = local_platform.table("ApiKeysTable")
    import boto3

    items = boto3.client("dynamodb", endpoint_url=local_platform.aws_endpoint).scan(TableName=table)["Items"]
    assert created["api_key"] not in json.dumps(items)
