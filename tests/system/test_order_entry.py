"""Stop, iceberg and OCO orders over HTTP against the whole local platform: the orders function
takes them, the matching engine acts on them (a trade at the stop price triggers the stop; a fill
of one OCO leg cancels the other), the consumers show it, and the reservations come back.

The session's other tests trade GOOGL by crossing at its last price (nothing of theirs rests), so
these tests price around the last trade too, and leave nothing resting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system

D = Decimal
SYMBOL = "GOOGL"
FIRST_PRICE = D("150.00")  # GOOGL's price before its first trade in the session


def _account(platform: Any, name: str) -> Api:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, D("1000000.00"))
    return Api(platform.api_url, created["api_key"])


def _last(api: Api) -> Decimal:
    trades = (api.get(f"/v1/markets/{SYMBOL}/trades?limit=1").body or {}).get("trades") or []
    return D(trades[0]["price"]) if trades else FIRST_PRICE


def _post(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, body)
    assert answer.status == 202, answer.body
    return dict(answer.body)


def _order(api: Api, order_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/orders/{order_id}")
    assert answer.status == 200, answer.body
    return dict(answer.body["order"])


def _limit(side: str, quantity: int, price: Decimal, **extra: Any) -> dict[str, Any]:
    return {"symbol": SYMBOL, "side": side, "type": "limit", "quantity": str(quantity), "price": str(price), **extra}


def _reserved(api: Api) -> Decimal:
    return D((api.get("/v1/portfolio").body or {})["portfolio"]["reserved"])


@pytest.fixture(scope="module")
def traders(local_platform: Any) -> dict[str, Api]:
    return {name: _account(local_platform, f"OrderEntry {name}") for name in ("buyer", "maker", "seller", "taker")}


def test_a_trade_at_the_stop_price_triggers_a_stop_buy(traders: dict[str, Api]) -> None:
    buyer, maker, seller, taker = (traders[n] for n in ("buyer", "maker", "seller", "taker"))
    base = _last(buyer)
    stop = base + 1
    # GIVEN 5 offered at stop + 0.50 and a stop buy of 5 at the stop price
    offer = _post(maker, "/v1/orders", _limit("sell", 5, stop + D("0.50")))["order"]
    placed = _post(buyer, "/v1/orders", {"symbol": SYMBOL, "side": "buy", "type": "stop", "quantity": "5",
                                         "stop_price": str(stop)})["order"]  # fmt: skip
    parked = eventually(lambda: _order(buyer, placed["order_id"]), lambda o: o["status"] == "new")
    assert parked["triggered"] is False
    assert _reserved(buyer) > 0  # held while the stop waits
    # WHEN a trade prints at the stop price
    _post(seller, "/v1/orders", _limit("sell", 1, stop))
    _post(taker, "/v1/orders", _limit("buy", 1, stop))
    # THEN the stop triggers and buys the 5 offered, and its reservation comes back
    done = eventually(lambda: _order(buyer, placed["order_id"]), lambda o: o["status"] == "filled")
    assert done["triggered"] is True and D(done["average_price"]) == stop + D("0.50")
    assert eventually(lambda: _order(maker, offer["order_id"]), lambda o: o["status"] == "filled")
    assert eventually(lambda: _reserved(buyer), lambda r: r == 0) == 0


def test_an_iceberg_shows_a_slice_and_fills_through_its_hidden_quantity(traders: dict[str, Api]) -> None:
    seller, taker = traders["seller"], traders["taker"]
    price = _last(seller) + D("0.25")
    # GIVEN an iceberg sell of 30 showing 10
    ice = _post(seller, "/v1/orders", _limit("sell", 30, price, display_quantity="10"))["order"]
    assert ice["display_quantity"] == "10"
    eventually(lambda: _order(seller, ice["order_id"]), lambda o: o["status"] == "new")

    def shown() -> Decimal:
        asks = (seller.get(f"/v1/markets/{SYMBOL}/book?depth=20").body or {}).get("asks") or []
        return sum((D(level["quantity"]) for level in asks if D(level["price"]) == price), D(0))

    assert eventually(shown, lambda q: q == 10) == 10  # only the slice is in the book
    # WHEN 25 are bought at its price
    _post(taker, "/v1/orders", _limit("buy", 25, price))
    # THEN it fills 25 across three slices and shows the 5 left; a cancel takes them out
    partly = eventually(lambda: _order(seller, ice["order_id"]), lambda o: D(o["filled_quantity"]) == 25)
    assert partly["status"] == "partially_filled" and D(partly["remaining_quantity"]) == 5
    assert eventually(shown, lambda q: q == 5) == 5
    # WHEN it is cut to 28 in all (a replace): THEN the engine keeps 3 open
    cut = seller.call("PATCH", f"/v1/orders/{ice['order_id']}", {"quantity": "28"})
    assert cut.status == 202 and cut.body["order"]["replace_pending"] is True, cut.body
    replaced = eventually(lambda: _order(seller, ice["order_id"]), lambda o: "replace_pending" not in o)
    assert D(replaced["quantity"]) == 28 and D(replaced["remaining_quantity"]) == 3
    assert seller.delete(f"/v1/orders/{ice['order_id']}").status == 202
    eventually(lambda: _order(seller, ice["order_id"]), lambda o: o["status"] == "cancelled")


def test_a_fill_of_one_oco_leg_cancels_the_other(traders: dict[str, Api]) -> None:
    holder, taker = traders["buyer"], traders["taker"]
    base = _last(holder)
    # GIVEN an OCO sell of 5: take profit at base + 2, stop loss at base - 2
    group = _post(holder, "/v1/orders/oco", {
        "symbol": SYMBOL, "side": "sell", "quantity": "5", "take_profit": {"price": str(base + 2)},
        "stop_loss": {"stop_price": str(base - 2)}, "client_order_id": "oe-oco-1"})  # fmt: skip
    group_id = group["group_id"]

    def legs() -> dict[str, dict[str, Any]]:
        answer = holder.get(f"/v1/orders/oco/{group_id}")
        assert answer.status == 200, answer.body
        return {leg["leg"]: leg for leg in answer.body["orders"]}

    eventually(legs, lambda found: all(leg["status"] == "new" for leg in found.values()))
    # WHEN the take profit is lifted
    _post(taker, "/v1/orders", _limit("buy", 5, base + 2))
    # THEN the take profit is filled and the engine cancelled the stop loss in the same step;
    # each leg is its own order in the read model, so the two updates may land in either order
    done = eventually(legs, lambda found: found["stop_loss"]["status"] == "cancelled"
                      and found["take_profit"]["status"] == "filled")  # fmt: skip
    assert done["stop_loss"]["cancel_reason"] == "oco"
    # and a second group is cancelled as one by its group id
    other = _post(holder, "/v1/orders/oco", {
        "symbol": SYMBOL, "side": "sell", "quantity": "3", "take_profit": {"price": str(base + 3)},
        "stop_loss": {"stop_price": str(base - 3)}})  # fmt: skip
    assert holder.delete(f"/v1/orders/oco/{other['group_id']}").status in (202, 409)
    cancelled = eventually(lambda: holder.get(f"/v1/orders/oco/{other['group_id']}").body["orders"],
                           lambda found: all(leg["status"] == "cancelled" for leg in found))  # fmt: skip
    assert {leg["cancel_reason"] for leg in cancelled} == {"user"}
