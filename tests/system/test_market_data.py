"""Market data over HTTP against the whole local platform: two accounts trade AMZN, then the
ticker, the L1/L2/L3 book and the candles show it (served through the Redis snapshot cache)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system

SYMBOL = "AMZN"


def _new_account(platform: Any, name: str, cash: str = "1000000.00") -> Api:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, Decimal(cash))
    return Api(platform.api_url, created["api_key"])


def _free_price(api: Api) -> Decimal:
    """A price inside the spread (so that only our two orders meet), near the last trade."""
    ticker = api.get(f"/v1/markets/{SYMBOL}/ticker").body
    last = Decimal(ticker["last"]["price"]) if ticker["last"] else Decimal("100.00")
    book = api.get(f"/v1/markets/{SYMBOL}/book?depth=1").body
    price = last
    if book["bids"]:
        price = max(price, Decimal(book["bids"][0]["price"]) + Decimal("0.01"))
    if book["asks"]:
        price = min(price, Decimal(book["asks"][0]["price"]) - Decimal("0.01"))
    assert not book["bids"] or price > Decimal(book["bids"][0]["price"]), "no room in the spread"
    return price


def test_a_trade_shows_in_the_ticker_the_book_and_the_candles(local_platform: Any) -> None:
    seller, buyer = _new_account(local_platform, "MdSeller"), _new_account(local_platform, "MdBuyer")
    try:
        _trade_and_read(seller, buyer)
    finally:
        # the platform is shared: leave no resting order behind for the tests that come next
        for order in seller.get("/v1/orders?status=open").body["orders"]:
            assert seller.delete(f"/v1/orders/{order['order_id']}").status in (202, 409)


def _trade_and_read(seller: Api, buyer: Api) -> None:
    price = _free_price(seller)
    before = seller.get(f"/v1/markets/{SYMBOL}/ticker")
    assert before.status == 200, before.body
    day_volume = Decimal(before.body["volume"])
    # GIVEN a resting sell of 7 at a level of its own
    sell = seller.post(
        "/v1/orders", {"symbol": SYMBOL, "side": "sell", "type": "limit", "quantity": "7", "price": str(price)}
    )
    assert sell.status == 202, sell.body
    eventually(
        lambda: seller.get(f"/v1/orders/{sell.body['order']['order_id']}").body["order"]["status"],
        lambda s: s == "new",
    )
    # WHEN a buyer takes 3 of it
    buy = buyer.post(
        "/v1/orders", {"symbol": SYMBOL, "side": "buy", "type": "limit", "quantity": "3", "price": str(price)}
    )
    assert buy.status == 202, buy.body
    # THEN the ticker shows the trade as the last one and 3 more shares traded today (UTC); the tape
    # and the candles are written side by side (``ViewWriter``), so one may show the trade first
    ticker = eventually(
        lambda: buyer.get(f"/v1/markets/{SYMBOL}/ticker").body,
        lambda t: t["last"] is not None and Decimal(t["last"]["quantity"]) == 3
        and Decimal(t["volume"]) == day_volume + 3,
    )
    assert Decimal(ticker["last"]["price"]) == price and Decimal(ticker["last"]["quantity"]) == 3
    assert Decimal(ticker["volume"]) == day_volume + 3
    # AND the book's level holds the 4 left: in L2, and in L3 as one anonymous order
    l2 = eventually(
        lambda: buyer.get(f"/v1/markets/{SYMBOL}/book?level=2&depth=100").body,
        lambda b: any(Decimal(a["price"]) == price and Decimal(a["quantity"]) == 4 for a in b["asks"]),
    )
    assert next(a for a in l2["asks"] if Decimal(a["price"]) == price)["orders"] == 1
    l3 = eventually(
        lambda: buyer.get(f"/v1/markets/{SYMBOL}/book?level=3&depth=20").body,
        lambda b: any(Decimal(a["price"]) == price for a in b["asks"]),
    )
    level = next(a for a in l3["asks"] if Decimal(a["price"]) == price)
    assert [Decimal(o["quantity"]) for o in level["orders"]] == [Decimal(4)]
    assert sell.body["order"]["order_id"] not in str(l3) and "account" not in str(l3)
    answer = buyer.get(f"/v1/markets/{SYMBOL}/book?level=1")
    assert answer.status == 200 and answer.headers.get("X-Cache") in {"hit", "stale", "fetched", "coalesced"}
    assert len(answer.body["asks"]) <= 1 and len(answer.body["bids"]) <= 1
    # AND the day's 1d candle counts the 3 shares and the 1m candle of the trade closes at its price
    trade_ts = ticker["last"]["ts"]
    minute = trade_ts[:16] + ":00Z"
    candles = eventually(
        lambda: buyer.get(f"/v1/markets/{SYMBOL}/candles?interval=1m&from={minute}&to={minute}").body["candles"],
        lambda c: len(c) == 1 and Decimal(c[0]["close"]) == price,
    )
    assert candles[0]["start"] == minute and Decimal(candles[0]["volume"]) >= 3
    day = buyer.get(f"/v1/markets/{SYMBOL}/candles?interval=1d&from={trade_ts[:10]}T00:00:00Z").body["candles"]
    assert [Decimal(c["volume"]) for c in day] == [day_volume + 3]
    # AND bad inputs answer 400 with the error body
    for query, field in (("?level=9", "level"), ("?depth=0", "depth")):
        bad = buyer.get(f"/v1/markets/{SYMBOL}/book{query}")
        assert (bad.status, bad.body["error"]["field"]) == (400, field)
    bad = buyer.get(f"/v1/markets/{SYMBOL}/candles?interval=1m&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_range")
