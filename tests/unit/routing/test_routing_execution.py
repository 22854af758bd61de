"""The router at work on three simulated venues (the real matching core): decisions handed over
before their children go out, children filled across venues at the NBBO or better, the parent
folded from its children exactly, remainders re-routed or resting, cancel, venue statistics and
rankings from the execution reports."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nexus_common.errors import Conflict, NotFound, ValidationFailed
from nexus_routing.execution import SmartOrderRouter
from nexus_routing.model import ChildOrder, ExecStatus, ExecutionReport, Fill, Liquidity, OrderType, Side, Strategy
from nexus_routing.parent import ParentOrder, ParentStatus
from nexus_routing.router import RouteRequest, RoutingDecision, route_order, trade_throughs
from nexus_routing.stats import VenueStats, size_bucket, update_venue_stats
from routing_world import NOW, SYMBOL, Clock, three_venues

D = Decimal


def router() -> tuple[SmartOrderRouter, list[RoutingDecision]]:
    decisions: list[RoutingDecision] = []
    clock = Clock()
    return SmartOrderRouter(three_venues(clock), clock, on_decision=decisions.append), decisions


def buy(order_id: str, quantity: int, limit: str | None, strategy: Strategy = Strategy.SMART) -> RouteRequest:
    return RouteRequest(order_id, SYMBOL, Side.BUY, D(quantity), strategy,
                        OrderType.MARKET if limit is None else OrderType.LIMIT, None if limit is None else D(limit))


def test_a_smart_marketable_order_fills_across_venues_at_the_nbbo_or_better() -> None:
    # GIVEN three venues whose NBBO offer is 300.00 (Alpha and Beta, 100 each)
    sor, decisions = router()
    nbbo = sor.nbbo(SYMBOL)
    assert (nbbo.ask, nbbo.ask_size, nbbo.bid) == (D("300.00"), D(200), D("299.99"))
    # WHEN a SMART buy of 250 up to 300.05 is routed
    parent = sor.route(buy("P1", 250, "300.05"))
    # THEN it fills completely across venues, nothing worse than the protected quotes it swept
    assert parent.status is ParentStatus.FILLED and parent.filled == D(250)
    assert {c.venue for c in parent.children.values()} == {"Alpha", "Beta", "Gamma"}
    assert all(trade_throughs(d) == [] for d in decisions)
    # the 300.00 offers first (Beta: the lower fee), then 50 at 300.01 as an ISO
    assert parent.notional == D(200) * D("300.00") + D(50) * D("300.01")
    assert parent.average_price == D("300.002000")
    # AND the parent's fees are its children's, exactly (Gamma pays the taker 0.001)
    assert parent.fees == D("0.1") + D("0.3") - D("0.05")
    # AND the decision was handed over before its children, with the NBBO at that moment
    assert [d.decision_id for d in decisions] == ["P1-r1"] and decisions[0].nbbo.ask == D("300.00")


def test_children_quantities_and_fills_add_up_to_the_parent_exactly() -> None:
    sor, _ = router()
    parent = sor.route(buy("P1", 1000, "300.01", Strategy.LOWEST_COST))
    children = list(parent.children.values())
    assert sum(c.filled for c in children) == parent.filled
    assert sum(c.notional for c in children) == parent.notional
    assert parent.filled + parent.open + parent.remaining == parent.quantity
    # 500 fill up to 300.01, the other 500 rest at 300.01 on the highest rebate (Alpha)
    assert (parent.filled, parent.open, parent.status) == (D(500), D(500), ParentStatus.PARTIALLY_FILLED)
    resting = [c for c in children if c.open]
    assert [(c.venue, c.action, c.limit_price) for c in resting] == [("Alpha", "rest", D("300.01"))]


def test_a_market_remainder_is_re_routed_then_left_unfilled_when_no_liquidity_is_left() -> None:
    # GIVEN 900 shares offered in all WHEN 1,000 are bought at market
    sor, decisions = router()
    parent = sor.route(buy("P1", 1000, None, Strategy.BEST_PRICE))
    # THEN the first round takes what the protection band allows and further rounds are tried
    # while they take something; the parent is done with the rest unfilled
    assert parent.filled == D(900) and parent.status is ParentStatus.DONE
    assert parent.remaining == D(100) and parent.open == 0
    assert decisions[0].remainder == "reroute"
    assert len(decisions) == 2 and decisions[-1].taken == 0


def test_resting_children_fill_later_and_cancelling_the_parent_cancels_them() -> None:
    # GIVEN a parent with 500 resting on Alpha at 300.01
    sor, _ = router()
    parent = sor.route(buy("P1", 1000, "300.01", Strategy.LOWEST_COST))
    child_id = next(c.order_id for c in parent.children.values() if c.open)
    # WHEN someone sells 200 into it on Alpha and the router polls
    alpha = sor.venues["Alpha"]
    alpha.submit(ChildOrder("s1", SYMBOL, Side.SELL, D(200), D("300.01"), "ioc", account_id="someone"))
    assert sor.poll() == 1
    # THEN the parent has 700, and the fill is a maker fill with Alpha's rebate
    assert parent.filled == D(700) and parent.children[child_id].filled == D(200)
    assert parent.children[child_id].fees == D("-0.002") * 200
    assert sor.poll() == 0  # nothing new: reports are applied once
    # WHEN the parent is cancelled THEN its resting child is cancelled on Alpha
    sor.cancel("P1")
    assert parent.status is ParentStatus.DONE and parent.open == 0 and parent.remaining == D(300)
    assert child_id not in alpha.live_orders()
    with pytest.raises(Conflict):
        parent.add_decision(parent.decisions[0])


def test_the_router_refuses_a_duplicate_parent_and_an_unknown_cancel() -> None:
    sor, _ = router()
    sor.route(buy("P1", 10, "300.00"))
    with pytest.raises(Conflict):
        sor.route(buy("P1", 10, "300.00"))
    with pytest.raises(NotFound):
        sor.cancel("nope")


def test_a_disabled_venue_is_neither_quoted_nor_routed_to() -> None:
    sor, _ = router()
    sor.set_enabled("Beta", False)
    assert sor.nbbo(SYMBOL).ask_venues == ("Alpha",)
    parent = sor.route(buy("P1", 150, "300.01", Strategy.LOWEST_COST))
    assert "Beta" not in {c.venue for c in parent.children.values()}
    with pytest.raises(NotFound):
        sor.set_enabled("Delta", True)


# -- parent folding --------------------------------------------------------------------------


def _report(report_id: str, order_id: str, venue: str, qty: str, status: ExecStatus) -> ExecutionReport:
    fills = (Fill(D("300.00"), D(qty), Liquidity.TAKER, D("0.001") * D(qty)),) if D(qty) else ()
    return ExecutionReport(report_id, venue, order_id, SYMBOL, Side.BUY, status, fills, D(qty), D(0), 100, NOW,
                           parent_id="P1")


def test_the_parent_applies_each_report_once_and_refuses_strangers_and_overfills() -> None:
    sor, _ = router()
    parent = ParentOrder(buy("P1", 100, "300.00", Strategy.LOWEST_COST))
    decision = route_order(parent.request, sor.books(SYMBOL), sor.configs, NOW)
    children = parent.add_decision(decision)
    first = children[0]
    venue = parent.children[first.order_id].venue
    report = _report("x:1", first.order_id, venue, str(first.quantity), ExecStatus.FILLED)
    assert parent.apply(report) is True and parent.apply(report) is False
    assert parent.filled == first.quantity
    with pytest.raises(ValidationFailed):
        parent.apply(_report("x:2", "stranger", venue, "1", ExecStatus.FILLED))
    with pytest.raises(Conflict):
        parent.apply(_report("x:3", first.order_id, venue, "1", ExecStatus.FILLED))
    with pytest.raises(ValidationFailed):
        parent.add_decision(decision._replace(order_id="P2"))


# -- statistics and rankings -----------------------------------------------------------------


def test_venue_statistics_come_from_execution_reports_once_each() -> None:
    sor, _ = router()
    sor.route(buy("P1", 250, "300.05"))
    stats = sor.stats
    beta = stats.stat("Beta", SYMBOL, Side.BUY, D(100))
    assert beta is not None and (beta.sent, beta.filled, beta.fill_rate) == (D(100), D(100), D(1))
    assert beta.latency_us is not None and 400 <= beta.latency_us < 600
    # all-in cost: 0.005 from the mid (299.995) plus Beta's 0.001 fee, per share
    assert beta.all_in_cost == D("0.006")
    # a report applied twice counts once
    report = ExecutionReport("Beta:dup", "Beta", "X", SYMBOL, Side.BUY, ExecStatus.CANCELLED, (), D(0), D(0), 1, NOW)
    assert update_venue_stats(stats, report, D(100)) is True
    assert update_venue_stats(stats, report, D(100)) is False
    assert stats.fill_rate("Beta", SYMBOL, Side.BUY, D(100)) == D("0.5")
    with pytest.raises(ValidationFailed):
        update_venue_stats(stats, report._replace(report_id="Beta:neg"), D(-1))


def test_rankings_order_venues_by_price_then_cost_fill_rate_and_latency() -> None:
    sor, _ = router()
    sor.route(buy("P1", 250, "300.05"))
    # WHEN the venues are ranked for a 100-share buy after the sweep (all three offer 300.01 now)
    rankings = sor.rankings(SYMBOL, Side.BUY, D(100))
    # THEN at one price by the all-in cost observed against the mid (299.995) in that size
    # bucket: Beta 0.005 + 0.001 fee, Alpha 0.005 + 0.003; Gamma's child was 50 shares (another
    # bucket): nothing observed, last
    assert [(r.rank, r.venue, r.price, r.all_in_cost) for r in rankings] == [
        (1, "Beta", D("300.01"), D("0.006")), (2, "Alpha", D("300.01"), D("0.008")),
        (3, "Gamma", D("300.01"), None),
    ]
    assert sor.stats.rankings(SYMBOL, Side.BUY, D(50), sor.books(SYMBOL))[0].venue == "Gamma"
    assert rankings[0].to_dict() == {"rank": 1, "venue": "Beta", "price": "300.01", "fill_rate": "1",
                                     "latency_us": rankings[0].latency_us, "all_in_cost_per_share": "0.006"}


def test_size_buckets_are_the_rule_605_ones() -> None:
    assert [size_bucket(D(q)) for q in (1, 99, 100, 499, 500, 1999, 2000, 4999, 5000, 9999, 10000)] == [
        "<100", "<100", "100-499", "100-499", "500-1999", "500-1999", "2000-4999", "2000-4999", "5000-9999",
        "5000-9999", "10000+",
    ]
    with pytest.raises(ValidationFailed):
        size_bucket(D(-1))
    assert VenueStats().fill_rate("Alpha", SYMBOL, Side.BUY, D(1)) is None


def test_the_router_nbbo_follows_the_books_and_fill_rates_feed_smart() -> None:
    # GIVEN the NBBO offer 300.00 WHEN 200 are bought (both 300.00 offers taken)
    sor, _ = router()
    assert sor.nbbo(SYMBOL).ask == D("300.00")
    assert sor.nbbo(SYMBOL) is sor.nbbo(SYMBOL)  # unchanged books: the same NBBO
    sor.route(buy("P1", 200, "300.00", Strategy.LOWEST_COST))
    # THEN the NBBO moves to the next offer, and the fill rates observed are the router's view
    assert sor.nbbo(SYMBOL).ask == D("300.01")
    assert sor.stats.fill_rates(SYMBOL, Side.BUY, D(100)) == {"Alpha": D(1), "Beta": D(1)}
    decision = sor.decide(buy("P2", 100, "300.01"))
    assert {c.venue: c.fill_rate for c in decision.considered} == {"Alpha": D(1), "Beta": D(1), "Gamma": None}


def test_done_parents_are_forgotten_and_working_ones_kept() -> None:
    sor, _ = router()
    sor.route(buy("P1", 100, "300.00", Strategy.LOWEST_COST))  # filled
    sor.route(buy("P2", 1000, "300.01", Strategy.LOWEST_COST))  # part resting
    assert sor.evict_done() == 1 and list(sor.parents) == ["P2"]
    sor.cancel("P2")
    assert sor.evict_done() == 1 and sor.parents == {}
