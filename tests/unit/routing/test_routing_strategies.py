"""The NBBO, each routing strategy on a known book, split_order, and the requests the router
refuses."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.errors import ValidationFailed
from nexus_routing.model import OrderType, Side, Strategy, Urgency
from nexus_routing.nbbo import compute_nbbo
from nexus_routing.router import REROUTE, REST, TAKE, RouteRequest, route_order, split_order, trade_throughs
from routing_world import NOW, SYMBOL, book, venue

D = Decimal


def fixed(us: int) -> dict[str, Any]:
    return {"base_us": us, "jitter_us": 0, "tail_probability": "0"}


VENUES = {
    "Alpha": venue("Alpha", "XALP", "0.003", "0.002", latency=fixed(900)),
    "Beta": venue("Beta", "XBET", "0.001", "0.001", latency=fixed(200)),
    "Gamma": venue("Gamma", "XGAM", "-0.001", "-0.0005", latency=fixed(500)),
    "Nexus": venue("Nexus", "NEXS", kind="internal", latency=fixed(50)),
}
BOOKS = {
    "Alpha": book("Alpha", bids="9.99x100 9.98x300", asks="10.00x300 10.01x200"),
    "Beta": book("Beta", bids="9.99x200", asks="10.00x100 10.02x500"),
    "Gamma": book("Gamma", bids="9.98x100", asks="10.00x50 10.01x100"),
    "Nexus": book("Nexus", bids="9.97x100", asks="10.01x80"),
}


def order(
    strategy: Strategy, quantity: int, limit: str | None = "10.01", side: Side = Side.BUY, **extra: Any
) -> RouteRequest:
    return RouteRequest(
        "P1", SYMBOL, side, D(quantity), strategy,
        OrderType.MARKET if limit is None else OrderType.LIMIT, None if limit is None else D(limit), **extra,
    )


def routed(decision: Any) -> list[tuple[str, str, str, str]]:
    return [(c.venue, c.action, str(c.quantity), str(c.limit_price)) for c in decision.children]


# -- NBBO ------------------------------------------------------------------------------------


def test_nbbo_is_the_best_protected_quotes_with_every_venue_quoting_them_and_their_depth() -> None:
    # GIVEN four enabled venues WHEN the NBBO is computed
    nbbo = compute_nbbo(SYMBOL, BOOKS, VENUES)
    # THEN the best bid and offer carry the size of every venue at that price
    assert (nbbo.bid, nbbo.bid_size, nbbo.bid_venues) == (D("9.99"), D(300), ("Alpha", "Beta"))
    assert (nbbo.ask, nbbo.ask_size, nbbo.ask_venues) == (D("10.00"), D(450), ("Alpha", "Beta", "Gamma"))
    assert nbbo.spread == D("0.01") and nbbo.midpoint == D("9.995")
    alpha = next(q for q in nbbo.quotes if q.venue == "Alpha")
    assert (alpha.bid_depth, alpha.ask_depth) == (D(400), D(500))


def test_nbbo_ignores_a_disabled_venue_and_a_missing_side() -> None:
    # GIVEN Beta disabled and Gamma with no bids
    venues = {**VENUES, "Beta": VENUES["Beta"].model_copy(update={"enabled": False})}
    books = {**BOOKS, "Gamma": book("Gamma", asks="9.99x10")}
    # WHEN the NBBO is computed
    nbbo = compute_nbbo(SYMBOL, books, venues)
    # THEN Beta's better bid does not count, and Gamma's offer is the best
    assert (nbbo.bid, nbbo.bid_venues) == (D("9.99"), ("Alpha",))
    assert (nbbo.ask, nbbo.ask_size, nbbo.ask_venues) == (D("9.99"), D(10), ("Gamma",))
    assert nbbo.crossed is False and [q.venue for q in nbbo.quotes] == ["Alpha", "Gamma", "Nexus"]


def test_nbbo_of_no_book_is_empty() -> None:
    nbbo = compute_nbbo(SYMBOL, {}, VENUES)
    assert (nbbo.bid, nbbo.ask, nbbo.midpoint, nbbo.quotes) == (None, None, None, ())


# -- strategies ------------------------------------------------------------------------------


def test_best_price_takes_the_best_prices_first_the_largest_size_first_at_one_price() -> None:
    # WHEN 500 shares are bought up to 10.01
    decision = route_order(order(Strategy.BEST_PRICE, 500), BOOKS, VENUES, NOW)
    # THEN the whole 10.00 level first (Alpha's 300 before Beta's 100 before Gamma's 50), then
    # Alpha's 10.01 as an ISO: every better protected offer is taken in the same sweep
    assert routed(decision) == [
        ("Alpha", TAKE, "350", "10.01"), ("Beta", TAKE, "100", "10.00"), ("Gamma", TAKE, "50", "10.00"),
    ]
    assert [c.iso for c in decision.children] == [True, False, False]
    assert trade_throughs(decision) == []


def test_lowest_cost_takes_the_cheapest_fee_first_at_each_price_and_costs_the_least() -> None:
    # WHEN 500 shares are bought up to 10.01
    lowest = route_order(order(Strategy.LOWEST_COST, 500), BOOKS, VENUES, NOW)
    # THEN at each price the cheapest fee first: at 10.00 Gamma (paid to take), Beta, Alpha; at
    # 10.01 Gamma again (all-in 10.009) before the internal venue (10.01, no fee)
    assert routed(lowest) == [
        ("Gamma", TAKE, "100", "10.01"), ("Beta", TAKE, "100", "10.00"), ("Alpha", TAKE, "300", "10.00"),
    ]
    assert lowest.expected_fees == D("-0.1") + D("0.1") + D("0.9")
    assert lowest.expected_all_in == D("4500.00") + D("500.50") + D("0.9") == D("5001.40")
    assert trade_throughs(lowest) == []
    assert [c.iso for c in lowest.children] == [True, False, False]  # Gamma sweeps past the 10.00 offers


def test_fastest_prefers_the_lowest_latency_at_each_price() -> None:
    decision = route_order(order(Strategy.FASTEST, 200, limit="10.00"), BOOKS, VENUES, NOW)
    assert routed(decision) == [("Beta", TAKE, "100", "10.00"), ("Gamma", TAKE, "50", "10.00"),
                                ("Alpha", TAKE, "50", "10.00")]
    assert [c.expected_latency_us for c in decision.children] == [200, 500, 900]


def test_internalize_first_takes_the_internal_venue_at_a_price_no_worse_than_the_nbbo() -> None:
    # GIVEN the internal venue at the NBBO
    books = {**BOOKS, "Nexus": book("Nexus", asks="10.00x80 10.01x80")}
    decision = route_order(order(Strategy.INTERNALIZE_FIRST, 100), books, VENUES, NOW)
    assert routed(decision) == [("Nexus", TAKE, "80", "10.00"), ("Gamma", TAKE, "20", "10.00")]
    # AND when the internal venue is worse than the NBBO it does not jump the better quotes
    later = route_order(order(Strategy.INTERNALIZE_FIRST, 100), BOOKS, VENUES, NOW)
    assert "Nexus" not in [c.venue for c in later.children]


def test_external_only_never_uses_the_internal_venue_and_never_trades_through_its_quote() -> None:
    # GIVEN the internal venue offering 10.00, better than everyone's second level
    books = {**BOOKS, "Nexus": book("Nexus", asks="10.00x80")}
    # WHEN 1,000 shares up to 10.02 are routed EXTERNAL_ONLY
    decision = route_order(order(Strategy.EXTERNAL_ONLY, 1000, limit="10.02"), books, VENUES, NOW)
    # THEN only the external 10.00 offers are taken, and the rest is re-routed rather than
    # executed at 10.01 while Nexus shows 10.00
    assert {c.venue for c in decision.children} == {"Alpha", "Beta", "Gamma"}
    assert all(c.limit_price == D("10.00") for c in decision.children)
    assert decision.remainder == REROUTE and decision.unrouted == D(550)
    assert "protected quote of Nexus" in decision.reason
    nexus = next(c for c in decision.considered if c.venue == "Nexus")
    assert (nexus.eligible, nexus.why) == (False, "internal venue excluded by EXTERNAL_ONLY")


def test_without_iso_the_sweep_stops_at_the_nbbo() -> None:
    decision = route_order(order(Strategy.LOWEST_COST, 500, allow_iso=False), BOOKS, VENUES, NOW)
    assert all(c.limit_price == D("10.00") and not c.iso for c in decision.children if c.action == TAKE)
    assert decision.taken == D(450)
    assert decision.remainder == REROUTE and "no ISO allowed" in decision.reason


def test_max_venues_limits_the_children_and_re_routes_what_it_blocks() -> None:
    decision = route_order(order(Strategy.LOWEST_COST, 500, max_venues=2), BOOKS, VENUES, NOW)
    assert routed(decision) == [("Gamma", TAKE, "50", "10.00"), ("Beta", TAKE, "100", "10.00")]
    assert decision.remainder == REROUTE and decision.unrouted == D(350)
    assert trade_throughs(decision) == []


def test_a_limit_remainder_rests_on_the_venue_its_strategy_prefers() -> None:
    # GIVEN more than the book holds up to 10.01
    big = 2000
    # WHEN routed LOWEST_COST THEN the remainder rests at the limit on the highest rebate (Alpha)
    lowest = route_order(order(Strategy.LOWEST_COST, big), BOOKS, VENUES, NOW)
    rest = lowest.children[-1]
    assert (rest.venue, rest.action, rest.quantity, rest.limit_price) == ("Alpha", REST, D(2000 - 830), D("10.01"))
    assert rest.fees == -D("0.002") * rest.quantity and lowest.remainder == REST and lowest.unrouted == 0
    # AND routed INTERNALIZE_FIRST it rests on the internal venue; FASTEST on the fastest
    assert route_order(order(Strategy.INTERNALIZE_FIRST, big), BOOKS, VENUES, NOW).children[-1].venue == "Nexus"
    assert route_order(order(Strategy.FASTEST, big), BOOKS, VENUES, NOW).children[-1].venue == "Nexus"


def test_a_market_order_remainder_is_re_routed() -> None:
    decision = route_order(order(Strategy.BEST_PRICE, 5000, limit=None), BOOKS, VENUES, NOW)
    assert decision.remainder == REROUTE and decision.taken == D(1330) and decision.unrouted == D(3670)
    assert sum(c.quantity for c in decision.children) + decision.unrouted == D(5000)


def test_smart_adapts_to_size_and_urgency() -> None:
    # GIVEN 1,000 shares, more than the 450 displayed at the NBBO
    # WHEN urgency is high THEN it sweeps to its limit (like LOWEST_COST)
    high = route_order(order(Strategy.SMART, 1000, limit="10.02", urgency=Urgency.HIGH), BOOKS, VENUES, NOW)
    lowest = route_order(order(Strategy.LOWEST_COST, 1000, limit="10.02"), BOOKS, VENUES, NOW)
    assert (high.taken, high.expected_all_in) == (lowest.taken, lowest.expected_all_in)
    # WHEN urgency is low THEN it takes the NBBO only and rests the rest passively, one tick
    # inside the next offer (it never locks a protected quote)
    low = route_order(order(Strategy.SMART, 1000, limit="10.02", urgency=Urgency.LOW), BOOKS, VENUES, NOW)
    assert low.taken == D(450) and {c.limit_price for c in low.children if c.action == TAKE} == {D("10.00")}
    rest = low.children[-1]
    assert (rest.action, rest.quantity, rest.limit_price) == (REST, D(550), D("10.00"))
    # WHEN urgency is normal THEN it goes two ticks through and re-routes the rest
    deeper = {**BOOKS, "Beta": book("Beta", bids="9.99x200", asks="10.00x100 10.02x500 10.03x900")}
    normal = route_order(order(Strategy.SMART, 2000, limit="10.05"), deeper, VENUES, NOW)
    assert max(c.limit_price for c in normal.children) == D("10.02") and normal.remainder == REROUTE
    assert normal.taken == D(1330) and normal.unrouted == D(670)
    # WHEN the NBBO covers the order THEN it just takes it, cheapest fee first
    small = route_order(order(Strategy.SMART, 40), BOOKS, VENUES, NOW)
    assert routed(small) == [("Gamma", TAKE, "40", "10.00")]
    assert "covers" in small.reason


def test_a_sell_is_routed_against_the_bids() -> None:
    decision = route_order(order(Strategy.LOWEST_COST, 350, limit="9.98", side=Side.SELL), BOOKS, VENUES, NOW)
    assert routed(decision) == [("Beta", TAKE, "200", "9.99"), ("Alpha", TAKE, "100", "9.99"),
                                ("Gamma", TAKE, "50", "9.98")]
    assert decision.expected_all_in == D("1998") + D("999") + D("499") - D("0.45")
    assert trade_throughs(decision) == []


def test_the_decision_record_is_json_with_the_nbbo_the_choice_and_the_alternatives() -> None:
    decision = route_order(order(Strategy.LOWEST_COST, 500), BOOKS, VENUES, NOW)
    record = json.loads(json.dumps(decision.to_dict()))
    assert record["decision_id"] == "P1-r1" and record["ts"] == "2026-11-02T15:30:00.000000Z"
    assert record["nbbo"]["ask"] == "10" and record["nbbo"]["ask_venues"] == ["Alpha", "Beta", "Gamma"]
    assert [c["venue"] for c in record["chosen"]] == ["Gamma", "Beta", "Alpha"]
    assert {c["venue"] for c in record["considered"]} == set(VENUES)
    alpha = next(a for a in record["alternatives"] if a["venue"] == "Alpha")
    assert alpha == {"venue": "Alpha", "fillable": "500", "expected_notional": "5002",
                     "expected_fees": "1.5", "expected_all_in": "5003.5"}
    assert record["expected_all_in"] == "5001.4" and record["reason"].startswith("LOWEST_COST")


# -- split_order -----------------------------------------------------------------------------


def test_split_order_is_proportional_to_displayed_liquidity_and_exact() -> None:
    parts = split_order(D(1001), {"A": D(300), "B": D(100), "C": D(0), "D": D(50)}, max_venues=2)
    assert parts == {"A": D(751), "B": D(250)} and sum(parts.values()) == D(1001)


def test_split_order_in_lots_and_with_nothing_displayed() -> None:
    assert split_order(D(700), {"A": D(1), "B": D(1), "C": D(1)}, 3, lot_size=D(100)) == {
        "A": D(300), "B": D(200), "C": D(200),
    }
    assert split_order(D(3), {"A": D(0), "B": D(0)}, 2) == {"A": D(2), "B": D(1)}


@pytest.mark.parametrize(
    ("quantity", "displayed", "max_venues", "field"),
    [
        (D(0), {"A": D(1)}, 1, "quantity"),
        (D("10.5"), {"A": D(1)}, 1, "quantity"),
        (D(10), {"A": D(1)}, 0, "max_venues"),
        (D(10), {"A": D(1)}, 17, "max_venues"),
        (D(10), {}, 1, "venues"),
        (D(10), {"A": D(-1)}, 1, "displayed"),
        (D("1e30"), {"A": D(1)}, 1, "quantity"),
    ],
)
def test_split_order_refuses_bad_input(
    quantity: Decimal, displayed: dict[str, Decimal], max_venues: int, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        split_order(quantity, displayed, max_venues)
    assert caught.value.field == field and caught.value.status == 400


# -- bad requests ----------------------------------------------------------------------------

GOOD = {"order_id": "P1", "symbol": SYMBOL, "side": "buy", "quantity": "100", "strategy": "SMART",
        "limit_price": "10.01"}


def test_a_request_parses_from_json() -> None:
    request = RouteRequest.parse({**GOOD, "max_venues": 3, "urgency": "high"})
    assert (request.quantity, request.limit_price, request.max_venues, request.urgency) == (
        D(100), D("10.01"), 3, Urgency.HIGH)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-5"}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": "1e999999"}, "quantity"),
        ({"quantity": "10.5"}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"strategy": "CHEAPEST"}, "strategy"),
        ({"side": "short"}, "side"),
        ({"limit_price": "10.015"}, "limit_price"),
        ({"limit_price": "-1"}, "limit_price"),
        ({"limit_price": None}, "limit_price"),
        ({"order_type": "market"}, "limit_price"),
        ({"max_venues": 0}, "max_venues"),
        ({"max_venues": "3"}, "max_venues"),
        ({"max_venues": 99}, "max_venues"),
        ({"allow_iso": "yes"}, "allow_iso"),
        ({"symbol": ""}, "symbol"),
        ({"order_id": "x" * 65}, "order_id"),
    ],
)
def test_a_bad_request_is_refused_naming_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        RouteRequest.parse({**GOOD, **change})
    assert caught.value.field == field and caught.value.status == 400


def test_a_naive_decision_instant_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        route_order(order(Strategy.SMART, 10), BOOKS, VENUES, NOW.replace(tzinfo=None))
    assert caught.value.field == "ts"


def test_a_venues_mapping_changed_in_place_is_read_again() -> None:
    # GIVEN a decision over a venues mapping WHEN Gamma is disabled in that same mapping
    venues = dict(VENUES)
    assert "Gamma" in {c.venue for c in route_order(order(Strategy.LOWEST_COST, 100), BOOKS, venues, NOW).children}
    venues["Gamma"] = VENUES["Gamma"].model_copy(update={"enabled": False})
    # THEN the next decision sees it disabled
    decision = route_order(order(Strategy.LOWEST_COST, 100), BOOKS, venues, NOW)
    assert "Gamma" not in {c.venue for c in decision.children}
    assert next(c for c in decision.considered if c.venue == "Gamma").why == "disabled"
