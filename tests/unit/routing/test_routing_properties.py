"""Properties of the router over 10,000 seeded random consolidated books (3-8 venues, each with
its own fees within the Rule 610(c) cap, some disabled, sometimes an internal venue):

* no trade-through: no child may execute worse than another venue's protected quote, unless it is
  an ISO and the same sweep takes that whole protected quote;
* the children's quantities and the unrouted remainder sum exactly to the order's quantity;
* the fee-inclusive cost of a marketable order routed LOWEST_COST equals a greedy sweep of the
  combined book by fee-inclusive price, computed independently here (SMART at high urgency sweeps
  the same way: ``test_routing_strategies``);
* LOWEST_COST never costs more than BEST_PRICE, fees and rebates counted.

The books are generated directly from ``random.Random(seed)`` (no shrinking search), so the
module runs in a few seconds and a failure names its seed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

from nexus_routing.model import BookLevel, OrderType, Side, Strategy, Urgency, VenueBook
from nexus_routing.router import TAKE, RouteRequest, RoutingDecision, route_order, trade_throughs
from nexus_routing.venues import Venue

D = Decimal
TICK = D("0.01")
FEE_STEP = D("0.0001")
NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
CASES = 10_000


def _int(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint(low, high)``, faster (the generator runs 10,000 times)."""
    return low + int(rng.random() * (high - low + 1))


def venue_pool(seed: int = 20261102, per_slot: int = 64) -> list[list[Venue]]:
    """Configurations per venue slot (V0..V7): own fees within the Rule 610(c) cap, own latency,
    internal or simulated, enabled or not. Built once: a pydantic model is dear to build 55,000
    times, and a venue's configuration is drawn from its slot's pool for each book."""
    rng = random.Random(seed)
    pool: list[list[Venue]] = []
    for i in range(8):
        slot = []
        for _ in range(per_slot):
            slot.append(
                Venue(
                    name=f"V{i}",
                    mic=f"XV{i:02d}",
                    kind="internal" if rng.random() < 0.1 else "simulated",
                    fees={"taker_fee": FEE_STEP * _int(rng, -30, 30), "maker_rebate": FEE_STEP * _int(rng, -30, 30)},
                    latency={"base_us": _int(rng, 50, 2000), "jitter_us": _int(rng, 0, 500)},
                    enabled=rng.random() > 0.1,
                )
            )
        pool.append(slot)
    return pool


POOL = venue_pool()


def random_world(rng: random.Random) -> tuple[dict[str, Venue], dict[str, VenueBook]]:
    count = _int(rng, 3, 8)
    venues: dict[str, Venue] = {}
    books: dict[str, VenueBook] = {}
    mid_ticks = 10_000  # 100.00
    for i in range(count):
        name = f"V{i}"
        venues[name] = POOL[i][int(rng.random() * len(POOL[i]))]
        bids: list[BookLevel] = []
        asks: list[BookLevel] = []
        if rng.random() > 0.05:
            price = mid_ticks + _int(rng, 1, 6)
            for _ in range(_int(rng, 1, 6)):
                asks.append(BookLevel(TICK * price, D(_int(rng, 1, 30) * 10)))
                price += _int(rng, 1, 3)
        if rng.random() > 0.05:
            price = mid_ticks - _int(rng, 0, 5)
            for _ in range(_int(rng, 1, 6)):
                bids.append(BookLevel(TICK * price, D(_int(rng, 1, 30) * 10)))
                price -= _int(rng, 1, 3)
        books[name] = VenueBook(name, "PROP", tuple(bids), tuple(asks))
    return venues, books


def random_request(rng: random.Random, strategy: Strategy) -> RouteRequest:
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    market = rng.random() < 0.3
    limit = None
    if not market:
        offset = _int(rng, -4, 14)
        limit = TICK * (10_000 + offset if side is Side.BUY else 10_000 - offset)
    return RouteRequest(
        order_id="P",
        symbol="PROP",
        side=side,
        quantity=D(_int(rng, 1, 200) * 10),
        strategy=strategy,
        order_type=OrderType.MARKET if market else OrderType.LIMIT,
        limit_price=limit,
        max_venues=rng.choice([None, None, 1, 2, 3]),
        urgency=rng.choice(list(Urgency)),
        allow_iso=rng.random() > 0.1,
    )


def assert_no_trade_through(decision: RoutingDecision, books: dict[str, VenueBook], venues: dict[str, Venue]) -> None:
    buy = decision.side is Side.BUY
    takes = {c.venue: c for c in decision.children if c.action == TAKE}
    for child in takes.values():
        for name, book in books.items():
            if name == child.venue or not venues[name].enabled:
                continue
            levels = book.asks if buy else book.bids
            if not levels:
                continue
            top = levels[0]
            worse = child.limit_price > top.price if buy else child.limit_price < top.price
            if worse:
                assert child.iso, f"non-ISO child on {child.venue} trades through {name}"
                other = takes.get(name)
                assert other is not None and other.quantity >= top.quantity, f"ISO leaves {name}'s quote"
    assert trade_throughs(decision) == []


def greedy_sweep(
    request: RouteRequest, books: dict[str, VenueBook], venues: dict[str, Venue]
) -> tuple[Decimal, Decimal]:
    """Shares and fee-inclusive cost (paid for a buy, received for a sell) of sweeping the
    combined book of the enabled venues, cheapest fee-inclusive price first, within the limit."""
    buy = request.side is Side.BUY
    candidates: list[tuple[Decimal, Decimal]] = []  # (fee-inclusive price, shares)
    for name, book in books.items():
        venue = venues[name]
        if not venue.enabled:
            continue
        for level in book.asks if buy else book.bids:
            if request.limit_price is not None and (
                level.price > request.limit_price if buy else level.price < request.limit_price
            ):
                break
            fee = venue.fees.taker_fee
            candidates.append((level.price + fee if buy else level.price - fee, level.quantity))
    candidates.sort(key=lambda c: c[0], reverse=not buy)
    remaining, cost = request.quantity, D(0)
    for all_in, qty in candidates:
        if not remaining:
            break
        take = min(qty, remaining)
        cost += take * all_in
        remaining -= take
    return request.quantity - remaining, cost


def test_random_consolidated_books_route_without_trade_through_exactly_and_at_the_lowest_cost() -> None:
    checked_sweeps = compared = 0
    for seed in range(CASES):
        # GIVEN a seeded random consolidated book and an order
        rng = random.Random(seed)
        venues, books = random_world(rng)
        request = random_request(rng, rng.choice(list(Strategy)))

        # WHEN it is routed with a random strategy
        decision = route_order(request, books, venues, NOW)

        # THEN no child trades through a protected quote (ISOs excepted), quantities are exact
        assert_no_trade_through(decision, books, venues), seed
        assert sum((c.quantity for c in decision.children), D(0)) + decision.unrouted == request.quantity, seed
        assert all(c.quantity > 0 for c in decision.children), seed

        # AND a marketable sweep with every venue usable costs exactly the greedy sweep
        sweep = RouteRequest(
            "P", "PROP", request.side, request.quantity, Strategy.LOWEST_COST, request.order_type, request.limit_price
        )
        lowest = route_order(sweep, books, venues, NOW)
        shares, cost = greedy_sweep(sweep, books, venues)
        assert (lowest.taken, lowest.expected_all_in) == (shares, cost), seed
        assert_no_trade_through(lowest, books, venues)
        checked_sweeps += 1 if shares else 0

        # AND LOWEST_COST never costs more than BEST_PRICE, fees and rebates counted
        best = route_order(
            RouteRequest("P", "PROP", request.side, request.quantity, Strategy.BEST_PRICE, request.order_type,
                         request.limit_price),
            books, venues, NOW,
        )
        assert_no_trade_through(best, books, venues)
        assert best.taken == lowest.taken, seed
        if request.side is Side.BUY:
            assert lowest.expected_all_in <= best.expected_all_in, seed
        else:
            assert lowest.expected_all_in >= best.expected_all_in, seed
        compared += 1 if lowest.expected_all_in != best.expected_all_in else 0
    # the generator does produce sweeps, and books where the strategies' costs differ
    assert checked_sweeps > CASES // 2
    assert compared > CASES // 20
