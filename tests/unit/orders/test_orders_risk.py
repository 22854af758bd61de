"""Reservations of every order type from entry to end, in memory: the real order service and
pre-trade risk, the real matching engine, the real orders and risk consumer code
(``orders_fakes.venue``). Each test reads GIVEN / WHEN / THEN."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_common.audit import MemoryAuditSink
from nexus_common.errors import Conflict, Unavailable
from nexus_common.events import ENGINE_EVENT_ADAPTER, ENTRY_INCOMPLETE
from nexus_common.risk import (
    RiskRefused,
    expected_reservations,
    held_reservation_ids,
    protection_price,
    reserve_amount,
    reserve_rate,
)
from nexus_orders.models import MassCancelRequest, ReplaceOrderRequest
from nexus_orders.order import OPEN_STATUSES
from nexus_risk.domain import changes_of, prefetch_ids
from orders_fakes import FEES, LIMITS, Venue, oco, order, venue

D = Decimal
RICH = "1000000.00"


def rate(price: str) -> Decimal:
    return reserve_rate(D(price), LIMITS.fee_buffer)


def trade_at(v: Venue, price: str, quantity: str = "1") -> None:
    """Two other accounts print a trade at ``price`` (the last trade price)."""
    v.service.place("mm_sell", order(side="sell", type="limit", quantity=quantity, price=price))
    v.service.place("mm_buy", order(side="buy", type="limit", quantity=quantity, price=price))


def all_released(v: Venue) -> None:
    for name, account in v.accounts.items():
        assert v.open_orders(name) == [], name
        assert account.reserved_cash == 0, name
        assert account.reserved_buy == 0, name
        assert account.reserved_sell == 0, name
        assert account.reservations == set(), name


@pytest.fixture
def v() -> Venue:
    world = venue(alice=RICH, bob=RICH, mm_sell=RICH, mm_buy=RICH)
    trade_at(world, "100.00")
    return world


# -- stops -----------------------------------------------------------------------------------


def test_a_stop_buy_reserves_at_its_protection_price_and_holds_it_until_it_triggers_and_fills(v: Venue) -> None:
    # GIVEN a stop buy 10 @ stop 101 (parked: the last trade is 100)
    placed, _ = v.service.place("alice", order(side="buy", type="stop", quantity="10", stop_price="101.00"))
    expected = reserve_amount(D(10), rate(str(protection_price(D("101.00"), LIMITS.market_protection))))
    assert v.accounts["alice"].reserved_cash == expected
    assert v.orders.get(placed.order_id).status == "new"  # type: ignore[union-attr]
    # WHEN liquidity rests at 101.50 and a trade prints at the stop price
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="101.50"))
    assert v.accounts["alice"].reserved_cash == expected  # still parked
    trade_at(v, "101.00")
    # THEN the stop triggered, filled at 101.50, and its reservation is all released
    filled = v.orders.get(placed.order_id)
    assert filled is not None and filled.triggered and filled.status == "filled"
    assert any(e.type == "triggered" and e.order_id == placed.order_id for e in v.events)
    assert v.accounts["alice"].pos == 10
    all_released(v)


@pytest.mark.parametrize("end", ["cancel", "expiry"])
def test_a_stop_sell_holds_its_shares_until_cancelled_or_expired(v: Venue, end: str) -> None:
    # GIVEN alice holds 20 and parks a gtd stop sell of 20 @ 95
    v.service.place("alice", order(side="buy", type="limit", quantity="20", price="100.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="20", price="100.00"))
    body = {"side": "sell", "type": "stop", "quantity": "20", "stop_price": "95.00", "time_in_force": "gtd",
            "expire_at": (v.clock.now + timedelta(minutes=30)).isoformat()}
    stop, _ = v.service.place("alice", order(**body))
    assert v.accounts["alice"].reserved_sell == 20
    # WHEN it is cancelled, or its expiry passes
    if end == "cancel":
        v.service.cancel("alice", stop.order_id)
    else:
        v.clock_tick(3600)
    # THEN the shares are sellable again
    assert v.orders.get(stop.order_id).status == ("cancelled" if end == "cancel" else "expired")  # type: ignore[union-attr]
    all_released(v)


# -- iceberg ---------------------------------------------------------------------------------


def test_an_iceberg_reserves_its_full_quantity_and_releases_as_slices_fill(v: Venue) -> None:
    # GIVEN an iceberg buy 50 showing 10
    ice, _ = v.service.place("alice", order(side="buy", type="limit", quantity="50", price="100.00",
                                            display_quantity="10"))  # fmt: skip
    assert v.accounts["alice"].reserved_cash == reserve_amount(D(50), rate("100.00"))
    book = [e for e in v.events if e.type == "book" and e.side == "buy" and e.price == D("100.00")]
    assert book[-1].quantity == 10  # only the slice is shown
    # WHEN 25 fill over three slices and the rest is cancelled
    v.service.place("bob", order(side="sell", type="limit", quantity="25", price="100.00", time_in_force="ioc"))
    assert v.accounts["alice"].reserved_cash == reserve_amount(D(25), rate("100.00"))
    v.service.cancel("alice", ice.order_id)
    # THEN nothing stays reserved
    assert v.accounts["alice"].pos == 25
    all_released(v)


# -- OCO -------------------------------------------------------------------------------------


def test_an_oco_sell_reserves_its_quantity_once_and_a_take_profit_fill_cancels_the_stop(v: Venue) -> None:
    # GIVEN alice holds 10 and protects them with an OCO sell: take profit 105, stop 95
    v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="100.00"))
    legs, created = v.service.place_oco("alice", oco(side="sell", quantity="10", take_profit={"price": "105.00"},
                                                     stop_loss={"stop_price": "95.00"}))  # fmt: skip
    assert created and v.book.writes > 0
    # THEN the larger leg's exposure is reserved (10 shares), not the sum (20)
    assert v.accounts["alice"].reserved_sell == 10
    # WHEN bob lifts 4 then 6 at 105
    v.service.place("bob", order(side="buy", type="limit", quantity="4", price="105.00"))
    assert v.accounts["alice"].reserved_sell == 6
    stop = v.orders.get(legs[1].order_id)
    assert stop is not None and stop.remaining_quantity == 6  # cut in the same step
    v.service.place("bob", order(side="buy", type="limit", quantity="6", price="105.00"))
    # THEN the take profit filled, the stop loss was cancelled by it, nothing stays reserved
    take, stop = v.orders.get(legs[0].order_id), v.orders.get(legs[1].order_id)
    assert take is not None and take.status == "filled"
    assert stop is not None and stop.status == "cancelled" and stop.cancel_reason == "oco"
    all_released(v)


def test_an_oco_buy_reserves_the_larger_legs_exposure_not_the_sum(v: Venue) -> None:
    # GIVEN an OCO buy 10: take profit 95 (limit), stop loss stop 103 limit 104
    v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                     stop_loss={"stop_price": "103.00", "price": "104.00"}))  # fmt: skip
    # THEN one reservation at the dearer leg: 10 x 104 (+ fees), and 10 shares of buying
    larger = reserve_amount(D(10), rate("104.00"))
    assert v.accounts["alice"].reserved_cash == larger
    assert larger < reserve_amount(D(10), rate("95.00")) + reserve_amount(D(10), rate("104.00"))
    assert v.accounts["alice"].reserved_buy == 10


@pytest.mark.parametrize("how", ["group", "leg", "mass"])
def test_cancelling_the_group_or_either_leg_cancels_both_and_releases_once(v: Venue, how: str) -> None:
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00"}))  # fmt: skip
    # a partial fill of the take profit first
    v.service.place("bob", order(side="sell", type="limit", quantity="3", price="95.00"))
    assert v.accounts["alice"].pos == 3
    if how == "group":
        v.service.cancel_group("alice", legs[0].group_id or "")
    elif how == "leg":
        v.service.cancel("alice", legs[1].order_id)
    else:
        v.service.mass_cancel("alice", MassCancelRequest())
    statuses = {leg.order_id: v.orders.get(leg.order_id).status for leg in legs}  # type: ignore[union-attr]
    assert set(statuses.values()) == {"cancelled"}
    all_released(v)


def test_a_stop_loss_triggered_by_a_trade_fills_and_cuts_the_take_profit(v: Venue) -> None:
    # GIVEN alice holds 10 with an OCO sell (take profit 105, stop 98) and bids rest at 97.50
    v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="100.00"))
    legs, _ = v.service.place_oco("alice", oco(side="sell", quantity="10", take_profit={"price": "105.00"},
                                               stop_loss={"stop_price": "98.00"}))  # fmt: skip
    v.service.place("bob", order(side="buy", type="limit", quantity="10", price="97.50"))
    # WHEN a trade prints at 98
    trade_at(v, "98.00")
    # THEN the stop loss sold 10 at 97.50 and the take profit is cancelled (oco)
    take, stop = v.orders.get(legs[0].order_id), v.orders.get(legs[1].order_id)
    assert stop is not None and stop.status == "filled" and stop.average_price == D("97.50")
    assert take is not None and take.status == "cancelled" and take.cancel_reason == "oco"
    assert v.accounts["alice"].pos == 0
    all_released(v)


def test_an_oco_that_expires_releases_the_group_once(v: Venue) -> None:
    expire_at = v.clock.now + timedelta(minutes=20)
    v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                     stop_loss={"stop_price": "103.00"}, time_in_force="gtd",
                                     expire_at=expire_at.isoformat()))  # fmt: skip
    assert v.accounts["alice"].reserved_cash > 0
    v.clock_tick(3600)
    assert [e.type for e in v.events[-3:]] == ["expired", "expired", "book"]  # both legs, one step
    all_released(v)


# -- replace ---------------------------------------------------------------------------------


def test_a_size_increase_reserves_the_difference_and_one_beyond_buying_power_changes_nothing() -> None:
    # GIVEN alice with 2,000 USD and a buy 10 @ 100 (1,000.30 reserved with fees)
    v = venue(alice="2000.00", bob=RICH, mm_sell=RICH, mm_buy=RICH)
    trade_at(v, "100.00")
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    before = v.accounts["alice"].reserved_cash
    assert before == reserve_amount(D(10), rate("100.00"))
    # WHEN she asks for 30 (3,000.90 needed)
    commands = len(v.events)
    with pytest.raises(RiskRefused) as refused:
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(30)))
    # THEN 422 insufficient_buying_power, and nothing changed: reservation, order, engine
    assert refused.value.code == "insufficient_buying_power"
    assert v.accounts["alice"].reserved_cash == before
    current = v.orders.get(placed.order_id)
    assert current is not None and current.quantity == 10 and not current.replace_pending
    assert current.replace_count == 0 and len(v.events) == commands
    # WHEN she asks for 15: the difference is reserved and the engine replaces the order
    replaced = v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(15)))
    assert replaced.replace_count == 1
    assert v.accounts["alice"].reserved_cash == reserve_amount(D(15), rate("100.00"))
    assert v.orders.get(placed.order_id).quantity == 15  # type: ignore[union-attr]
    # THEN a fill and a cancel release it all
    v.service.place("bob", order(side="sell", type="limit", quantity="5", price="100.00"))
    v.service.cancel("alice", placed.order_id)
    all_released(v)


def test_a_decrease_is_released_on_the_engines_replaced_event(v: Venue) -> None:
    placed, _ = v.service.place("alice", order(side="sell", type="limit", quantity="20", price="101.00"))
    assert v.accounts["alice"].reserved_sell == 20
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(8)))
    replaced = [e for e in v.events if e.type == "replaced"]
    assert replaced and replaced[-1].kept_priority and replaced[-1].remaining_quantity == 8
    assert v.accounts["alice"].reserved_sell == 8
    v.service.cancel("alice", placed.order_id)
    all_released(v)


def test_a_price_increase_of_a_buy_is_covered_until_the_order_ends(v: Venue) -> None:
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(price=D("102.00")))
    # the reservation now covers 10 at the new price
    assert v.accounts["alice"].reserved_cash >= reserve_amount(D(10), rate("102.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="4", price="102.00"))
    assert v.accounts["alice"].reserved_cash >= reserve_amount(D(6), rate("102.00"))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(price=D("98.00"), quantity=D(12)))
    v.service.place("bob", order(side="sell", type="limit", quantity="8", price="98.00"))
    assert v.orders.get(placed.order_id).status == "filled"  # type: ignore[union-attr]
    all_released(v)


def test_a_replace_the_engine_refuses_gives_the_difference_back(v: Venue) -> None:
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    # the order fills while the replace is on its way (the orders table has not heard of it yet)
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="100.00"))
    v.orders.items[placed.order_id].update(status="new", remaining_quantity=D(10), filled_quantity=D(0))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(20)))
    assert [e.type for e in v.events][-1] == "replace_rejected"
    assert v.accounts["alice"].reserved_cash == 0 and v.accounts["alice"].reserved_buy == 0


def replaced_unconfirmed(v: Venue, **failure: bool) -> Any:
    """alice's resting buy of 10 @ 100.00, replaced to 20 while the stream fails as ``failure``
    says (``Venue`` flags): the API answers 503 replace_unconfirmed. Returns the order placed."""
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    for flag, value in failure.items():
        setattr(v, flag, value)
    with pytest.raises(Unavailable) as unconfirmed:
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(20)))
    assert unconfirmed.value.code == "replace_unconfirmed"
    return placed


def test_a_replace_whose_send_fails_is_fenced_and_refused_by_the_engine_and_given_back(v: Venue) -> None:
    # GIVEN a resting buy of 10 replaced to 20, the stream failing the replace's send (it never lands)
    placed = replaced_unconfirmed(v, fail_next_send=True)
    held = reserve_amount(D(10), rate("100.00"))
    # THEN 503 replace_unconfirmed; the fence behind it made the engine refuse the replace it never
    # received, and the consumers applied that: no replace pending, the difference given back
    assert [(e.type, e.reason, e.correlation_id) for e in v.events[-1:]] == [
        ("replace_rejected", ENTRY_INCOMPLETE, f"{placed.order_id}:replace:1")]
    after = v.orders.get(placed.order_id)
    assert after is not None and not after.replace_pending and after.replace_reject_reason == ENTRY_INCOMPLETE
    assert after.quantity == 10 and v.accounts["alice"].reserved_cash == held
    # AND the next replace goes through, and the order fills and releases everything
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(12)))
    assert v.orders.get(placed.order_id).quantity == 12  # type: ignore[union-attr]
    v.service.place("bob", order(side="sell", type="limit", quantity="12", price="100.00"))
    all_released(v)


def test_a_replace_whose_send_failed_but_landed_stands_with_its_reservation(v: Venue) -> None:
    # GIVEN a resting buy of 10 replaced to 20, the send reaching the engine but answering an error
    placed = replaced_unconfirmed(v, fail_next_send=True, failed_send_lands=True)
    # THEN the engine replaced it, its fence changed nothing, and the account still holds what 20 need
    assert [e.type for e in v.events].count("replace_rejected") == 0
    after = v.orders.get(placed.order_id)
    assert after is not None and after.quantity == 20 and not after.replace_pending
    assert v.accounts["alice"].reserved_cash >= reserve_amount(D(20), rate("100.00"))
    # AND filled, it releases exactly what it held
    v.service.place("bob", order(side="sell", type="limit", quantity="20", price="100.00"))
    assert v.orders.get(placed.order_id).status == "filled"  # type: ignore[union-attr]
    all_released(v)


@pytest.mark.parametrize("terms", [
    {"quantity": D(5), "price": D("101.00")},  # nothing reserved up front: fewer shares, a higher price
    {"price": D("101.00")},  # only a price top-up reserved up front
    {"quantity": D(5)},  # a decrease: nothing reserved
])  # fmt: skip
def test_a_fenced_replace_of_any_terms_leaves_nothing_held_once_the_order_ends(v: Venue, terms: dict[str, Any]) -> None:
    # GIVEN a resting buy of 10 @ 100.00 whose replace's send fails (it never lands): refused by
    # its fence
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    v.fail_next_send = True
    with pytest.raises(Unavailable):
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(**terms))
    assert [(e.type, e.reason) for e in v.events[-1:]] == [("replace_rejected", ENTRY_INCOMPLETE)]
    # WHEN the order is cancelled
    v.service.cancel("alice", placed.order_id)
    # THEN the account holds nothing, and no more than it had is available
    all_released(v)
    assert v.accounts["alice"].available == v.accounts["alice"].cash


def test_a_fence_refusal_of_a_replace_the_engine_applied_gives_nothing_back(v: Venue) -> None:
    from nexus_matching.engine import MatchingEngine
    from orders_fakes import INSTRUMENT, SYMBOL

    # GIVEN a buy of 10 replaced to 20 (replace 1 applied: the account holds what 20 need)
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00"))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(20)))
    held = (v.accounts["alice"].reserved_cash, v.accounts["alice"].reserved_buy)
    # WHEN a refusal of replace 1 by a fence comes all the same, later in the symbol's sequence (an
    # engine whose window of seen ids had forgotten the replace)
    snapshot = v.engine.snapshot()
    snapshot["seen_order_ids"] = {"previous": [], "current": []}
    other = MatchingEngine.restore(snapshot, {SYMBOL: INSTRUMENT})
    raw = other.process({"type": "fence", "command_id": "late-fence", "order_id": placed.order_id,
                         "account_id": "alice", "symbol": SYMBOL, "ts": "2026-03-06T15:00:00.000000Z",
                         "replace_command_id": f"{placed.order_id}:replace:1"})  # fmt: skip
    v.deliver([ENGINE_EVENT_ADAPTER.validate_python(event) for event in raw])
    # THEN nothing is given back: the replace's id was ended when the engine replaced the order
    assert [e["type"] for e in raw] == ["replace_rejected"]
    assert (v.accounts["alice"].reserved_cash, v.accounts["alice"].reserved_buy) == held
    # AND the order keeps its replaced terms, with no refusal reason and no notice of one
    after = v.orders.get(placed.order_id)
    assert after is not None and after.quantity == 20 and after.replace_reject_reason is None
    assert "order_replace_rejected" not in [m["kind"] for m in v.notifier.sent]


def test_a_replace_whose_fence_cannot_be_sent_either_stays_pending_with_its_reservation(v: Venue) -> None:
    # GIVEN a resting buy of 10 replaced to 20, the stream failing both the replace and its fence
    placed = replaced_unconfirmed(v, fail_next_send=True, fail_after_next=True)
    # THEN the replace stays pending, and what it reserved stays held (never less than the engine
    # may be working with): one replace at a time, so the next answers 409
    assert v.orders.get(placed.order_id).replace_pending  # type: ignore[union-attr]
    assert v.accounts["alice"].reserved_cash >= reserve_amount(D(20), rate("100.00"))
    with pytest.raises(Conflict) as pending:
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(15)))
    assert pending.value.code == "replace_pending"


# -- the property ----------------------------------------------------------------------------

PRICES = st.sampled_from(["97.00", "98.00", "99.00", "100.00", "101.00", "102.00", "103.00"])
QTY = st.integers(min_value=1, max_value=30)
WHO = st.sampled_from(["alice", "bob"])
STP = st.sampled_from([None, None, "decrement", "cancel_oldest", "cancel_newest", "cancel_both"])
ACTIONS = st.one_of(
    st.tuples(st.just("limit"), WHO, st.sampled_from(["buy", "sell"]), PRICES, QTY,
              st.sampled_from(["gtc", "ioc", "day", "gtd", "gtd"]), st.booleans(), STP),
    st.tuples(st.just("stop"), WHO, st.sampled_from(["buy", "sell"]), PRICES, QTY, st.booleans()),
    st.tuples(st.just("oco"), WHO, st.sampled_from(["buy", "sell"]), QTY, st.booleans(), st.booleans()),
    st.tuples(st.just("cancel"), WHO, st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("replace"), WHO, st.integers(min_value=0, max_value=50), PRICES, QTY),
    st.tuples(st.just("mass"), WHO),
    st.tuples(st.just("time"), st.integers(min_value=60, max_value=4000)),
    st.tuples(st.just("time"), st.integers(min_value=500, max_value=1000)),
)  # fmt: skip


def _act(v: Venue, action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "limit":
        _, who, side, price, qty, tif, iceberg, stp = action
        body: dict[str, Any] = {"side": side, "type": "limit", "quantity": str(qty), "price": price,
                                "time_in_force": tif}  # fmt: skip
        if stp is not None:
            body["stp"] = stp  # against the account's own orders, OCO legs included
        if tif == "gtd":
            body["expire_at"] = (v.clock.now + timedelta(minutes=10)).isoformat()
        if iceberg and tif != "ioc" and qty > 3:
            body["display_quantity"] = "3"
        v.service.place(who, order(**body))
    elif kind == "stop":
        _, who, side, price, qty, limit = action
        body = {"side": side, "type": "stop_limit" if limit else "stop", "quantity": str(qty), "stop_price": price}
        if limit:
            body["price"] = price
        v.service.place(who, order(**body))
    elif kind == "oco":
        _, who, side, qty, limit, gtd = action
        take, stop = ("104.00", "97.00") if side == "sell" else ("97.00", "103.00")
        loss: dict[str, str] = {"stop_price": stop}
        if limit:
            loss["price"] = stop
        timing: dict[str, Any] = {}
        if gtd:
            timing = {"time_in_force": "gtd", "expire_at": (v.clock.now + timedelta(minutes=10)).isoformat()}
        v.service.place_oco(who, oco(side=side, quantity=str(qty), take_profit={"price": take}, stop_loss=loss,
                                     **timing))  # fmt: skip
    elif kind == "cancel":
        _, who, pick = action
        mine = v.open_orders(who)
        if mine:
            v.service.cancel(who, mine[pick % len(mine)].order_id)
    elif kind == "replace":
        _, who, pick, price, qty = action
        mine = [o for o in v.open_orders(who) if o.group_id is None and not o.replace_pending]
        if mine:
            target = mine[pick % len(mine)]
            change: dict[str, Any] = {"quantity": D(qty) + target.filled_quantity}
            if target.type in ("limit", "stop_limit"):
                change["price"] = D(price)
            v.service.replace(who, target.order_id, ReplaceOrderRequest(**change))
    elif kind == "mass":
        v.service.mass_cancel(action[1], MassCancelRequest(symbol="AAPL"))
    else:
        v.clock_tick(action[1])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=40))
def test_after_any_sequence_reservations_never_go_negative_and_return_to_zero(actions: list[Any]) -> None:
    # GIVEN two traders with cash and 200 shares each, and a last trade at 100
    v = venue(alice="200000.00", bob="200000.00", mm_sell=RICH, mm_buy=RICH)
    for who in ("alice", "bob"):
        v.accounts[who].pos = v.accounts[who].sellable = v.accounts[who].buying = D(200)
    trade_at(v, "100.00")
    # WHEN any sequence of orders (some icebergs, some with self-trade prevention), stops, OCO
    # groups, cancels, replaces, mass cancels and time
    for action in actions:
        try:
            _act(v, action)
        except (RiskRefused, Conflict):
            pass  # refused: nothing reserved, nothing sent (checked below like everything else)
        for name in ("alice", "bob"):
            account = v.accounts[name]
            # THEN no reservation is ever negative
            assert account.reserved_cash >= 0, (name, action)
            assert account.reserved_buy >= 0, (name, action)
            assert account.reserved_sell >= 0, (name, action)
        # THEN the account's set of reservation ids is exactly what its open reserved orders,
        # OCO groups and waiting replaces hold
        held = held_reservation_ids(v.orders.items.values(), OPEN_STATUSES)
        for name, account in v.accounts.items():
            assert account.reservations == held.get(name, set()), (name, action)
    # THEN what the open orders should hold (reconciliation's formula) is what the accounts hold
    expected = expected_reservations(v.orders.items.values(), OPEN_STATUSES)
    for name in ("alice", "bob"):
        account = v.accounts[name]
        assert account.reserved_cash == expected.cash.get(name, 0), name
        assert account.reserved_buy == expected.quantity.get((name, "AAPL", "buy"), 0), name
        assert account.reserved_sell == expected.quantity.get((name, "AAPL", "sell"), 0), name
    # WHEN every account cancels everything that is left
    for name in ("alice", "bob", "mm_sell", "mm_buy"):
        v.service.mass_cancel(name, MassCancelRequest(symbol="AAPL"))
    # THEN every reservation is back to zero, to the cent and the share
    all_released(v)
    assert FEES.max_rate == LIMITS.fee_buffer


def test_a_group_the_engine_refuses_rejects_both_legs_and_releases_the_group(v: Venue) -> None:
    # GIVEN an OCO buy whose reservation is made and whose legs are stored
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00"}, client_order_id="g-r"))  # fmt: skip
    group_id = legs[0].group_id or ""
    v.service.cancel_group("alice", group_id)
    all_released(v)
    # WHEN the engine refuses a group (as it does a halted symbol): a rejected event names the group
    again, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                                stop_loss={"stop_price": "103.00"}, client_order_id="g2"))  # fmt: skip
    assert v.accounts["alice"].reserved_cash > 0
    seq = max(e.seq for e in v.events) + 1
    rejected = ENGINE_EVENT_ADAPTER.validate_python({
        "type": "rejected", "event_id": f"AAPL-{seq}", "ts": v.clock().isoformat(), "correlation_id": "x",
        "symbol": "AAPL", "seq": seq, "order_id": again[0].group_id, "account_id": "alice", "reason": "symbol_halted"})
    v.deliver([rejected])
    # THEN both legs are rejected and the group's one reservation is released
    assert {v.orders.get(leg.order_id).status for leg in again} == {"rejected"}  # type: ignore[union-attr]
    all_released(v)


def test_a_self_trade_decrement_releases_what_it_took_off_the_order_that_stays(v: Venue) -> None:
    # GIVEN alice rests a buy of 10 and sells 4 into it with self-trade decrement
    bid, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.place("alice", order(side="sell", type="limit", quantity="4", price="99.00", stp="decrement"))
    # THEN no trade, the bid is cut to 6, and only 6 stay reserved
    assert v.orders.get(bid.order_id).remaining_quantity == 6  # type: ignore[union-attr]
    assert v.accounts["alice"].reserved_cash == reserve_amount(D(6), rate("99.00"))
    assert v.accounts["alice"].reserved_buy == 6 and v.accounts["alice"].reserved_sell == 0
    v.service.cancel("alice", bid.order_id)
    all_released(v)


@pytest.mark.parametrize("mode", ["cancel_oldest", "cancel_both"])
def test_self_trade_prevention_ending_an_oco_leg_releases_the_group_once(v: Venue, mode: str) -> None:
    # GIVEN alice's OCO buy of 10 (take-profit resting at 95.00, stop-loss parked at 103.00)
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00"}))  # fmt: skip
    assert v.accounts["alice"].reservations == {legs[0].group_id}
    # WHEN she sells 4 into her own take-profit with self-trade prevention that cancels it
    v.service.place("alice", order(side="sell", type="limit", quantity="4", price="95.00", stp=mode))
    # THEN both legs are cancelled and the group's reservation is given back in full
    assert {v.orders.get(leg.order_id).cancel_reason for leg in legs} == {"self_trade"}  # type: ignore[union-attr]
    assert v.accounts["alice"].reserved_cash == 0 and v.accounts["alice"].reserved_buy == 0
    v.service.mass_cancel("alice", MassCancelRequest(symbol="AAPL"))
    all_released(v)


def test_a_self_trade_decrement_of_an_oco_leg_releases_the_cut_once_for_the_group(v: Venue) -> None:
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00"}))  # fmt: skip
    group_rate = v.orders.facts(legs[0].order_id).reserve_rate  # type: ignore[union-attr]
    # WHEN she sells 4 into her take-profit with decrement: both legs lose 4
    v.service.place("alice", order(side="sell", type="limit", quantity="4", price="95.00", stp="decrement"))
    assert [v.orders.get(leg.order_id).remaining_quantity for leg in legs] == [6, 6]  # type: ignore[union-attr]
    # THEN the group holds 6 at its rate, once
    assert v.accounts["alice"].reserved_cash == reserve_amount(D(6), group_rate)
    assert v.accounts["alice"].reserved_buy == 6
    # WHEN a decrement uses up what is left, THEN the group ends and nothing stays reserved
    v.service.place("alice", order(side="sell", type="limit", quantity="6", price="95.00", stp="decrement"))
    assert {v.orders.get(leg.order_id).status for leg in legs} == {"cancelled"}  # type: ignore[union-attr]
    all_released(v)


def test_prefetch_ids_name_every_facts_item_the_release_of_a_batch_reads(v: Venue) -> None:
    # GIVEN a day with a replaced buy that ends, an OCO group, a refused replace and a cancel
    bid, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.replace("alice", bid.order_id, ReplaceOrderRequest(price=D("100.00")))
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="100.00"))
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="5", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00"}))  # fmt: skip
    v.service.cancel("alice", legs[0].order_id)
    # WHEN the risk consumer's domain runs over all of its events, recording what it reads
    read: list[str] = []

    def facts(order_id: str) -> Any:
        read.append(order_id)
        return v.orders.facts(order_id)

    changes_of(v.events, facts, FEES)
    # THEN a batched read of prefetch_ids(events) holds all of it but the later top-ups of a
    # replaced order (read one by one after its first)
    wanted = set(prefetch_ids(v.events))
    assert f"{bid.order_id}~r1" in wanted and f"{bid.order_id}~p1" in wanted
    assert set(read) - wanted == {f"{bid.order_id}~p2"}


def test_a_refusal_is_audited_once_per_request_with_an_id_from_account_and_client_order_id() -> None:
    # GIVEN an account that cannot afford an order, and an audit sink
    v = venue(alice="100.00", mm_sell=RICH, mm_buy=RICH)
    sink = MemoryAuditSink()
    v.service.audit = sink
    body = order(side="buy", type="stop_limit", quantity="10", price="101.00", stop_price="100.50",
                 client_order_id="c-1")  # fmt: skip
    # WHEN it is sent twice, then once under another client order id
    for request in (body, body, body.model_copy(update={"client_order_id": "c-2"})):
        with pytest.raises(RiskRefused):
            v.service.place("alice", request)
    # THEN three audit events, the first two with the same id (the store keeps one), naming the reason
    first, again, other = sink.events
    assert first.event_id == again.event_id != other.event_id
    assert first.kind == "risk_refused" and first.aggregate_id == "alice"
    assert first.details["reason"] == "insufficient_buying_power" and first.details["type"] == "stop_limit"
    assert v.accounts["alice"].reserved_cash == 0 and v.orders.items == {}


_REPLACES = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(min_value=1, max_value=50),  # the order's quantity
    st.integers(min_value=1, max_value=50),  # the new quantity
    st.sampled_from(["90.00", "99.99", "100.00", "100.01", "105.00", "110.00"]),  # the new price (in the collar)
)


@settings(max_examples=200, deadline=None)
@given(_REPLACES)
def test_reconciliation_expects_a_replaces_id_exactly_when_the_orders_api_wrote_one(replace: Any) -> None:
    from nexus_orders.order import Order
    from nexus_orders.repo import _terms_items, order_to_item
    from nexus_orders.risk import replace_reservation

    # GIVEN an open reserved order at 100.00, and a replace to any quantity and price (a price
    # increase with a much smaller quantity needs no cash: its top-up is less than what it frees)
    side, quantity, new_quantity, new_price = replace
    placed = Order.model_validate({
        "order_id": "o-1", "account_id": "alice", "symbol": "AAPL", "side": side, "type": "limit",
        "quantity": D(quantity), "price": D("100.00"), "time_in_force": "gtc", "status": "new",
        "remaining_quantity": D(quantity), "created_at": "2026-03-05T15:00:00Z", "updated_at": "2026-03-05T15:00:00Z",
        "reserved": True, "reserve_rate": rate("100.00") if side == "buy" else None,
    })  # fmt: skip
    # WHEN the orders API computes what replace 1 reserves up front, and the replace waits for the engine
    terms, reservation, _ = replace_reservation(placed, D(new_quantity), D(new_price), None, 1, LIMITS, D("100.00"))
    rid = reservation.reservation_id if reservation is not None else None
    pending = {**order_to_item(placed), "replace_count": 1, "replace_pending": True}
    items = [pending, *_terms_items(placed, 1, terms.quantity_change, terms.settle_cash, terms.topup, rid)]
    # THEN reconciliation expects the replace's id held exactly when a reservation was written
    held = held_reservation_ids(items, OPEN_STATUSES)["alice"]
    assert held - {"o-1"} == ({rid} if rid is not None else set())


def test_a_price_increase_with_a_much_smaller_quantity_reserves_nothing_and_is_expected_to_hold_nothing() -> None:
    from nexus_orders.order import Order
    from nexus_orders.risk import replace_reservation

    # GIVEN an open buy of 10 at 100.00, replaced to 2 at 110.00 (the top-up for 2 at 110 is less
    # than what the 8 shares fewer free)
    placed = Order.model_validate({
        "order_id": "o-1", "account_id": "alice", "symbol": "AAPL", "side": "buy", "type": "limit",
        "quantity": D(10), "price": D("100.00"), "time_in_force": "gtc", "status": "new",
        "remaining_quantity": D(10), "created_at": "2026-03-05T15:00:00Z", "updated_at": "2026-03-05T15:00:00Z",
        "reserved": True, "reserve_rate": rate("100.00"),
    })  # fmt: skip
    terms, reservation, _ = replace_reservation(placed, D(2), D("110.00"), None, 1, LIMITS, D("100.00"))
    # THEN nothing is reserved up front, though the price top-up is positive
    assert reservation is None and terms.topup > 0 and terms.settle_cash < 0
