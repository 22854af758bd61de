"""Pure money rules: fees and their rounding, the T+2 calendar, the pre-trade rules and the
reservation arithmetic, positions and P&L, the journal."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_common.calendar import (
    add_business_days,
    exchange_date,
    is_business_day,
    nyse_holidays,
    settlement_date,
    trade_date,
)
from nexus_common.fees import FeeSchedule, cash_amount, fee
from nexus_common.risk import (
    OrderRisk,
    RiskLimits,
    RiskRefused,
    check_order,
    collar,
    fill_release,
    protection_price,
    reserve_amount,
    reserve_rate,
)
from nexus_portfolio.ledger import balances, fill_entry, reversal, settlement_entry
from nexus_portfolio.positions import Position, apply_fill

D = Decimal
FEES = FeeSchedule.from_bps(D("1"), D("3"))
LIMITS = RiskLimits(
    max_order_quantity=D("1000"),
    max_order_value=D("100000"),
    position_limit=D("5000"),
    short_limit=D("0"),
    price_collar=D("0.10"),
    market_protection=D("0.05"),
    fee_buffer=FEES.max_rate,
    max_open_orders=4000,
)


# -- fees ------------------------------------------------------------------------------------


def test_fees_are_basis_points_of_the_cash_amount_rounded_half_even_to_the_cent() -> None:
    assert cash_amount(D("3"), D("33.3333")) == D("100.00")  # 99.9999 -> 100.00
    assert fee(FEES, "taker", D("600.00")) == D("0.18")
    assert fee(FEES, "maker", D("600.00")) == D("0.06")
    assert fee(FEES, "maker", D("250.00")) == D("0.02")  # 0.025 -> 0.02 (half even)
    assert fee(FEES, "maker", D("350.00")) == D("0.04")  # 0.035 -> 0.04 (half even)


def test_ten_thousand_fees_charged_equal_the_fees_earned_to_the_cent() -> None:
    # GIVEN 10,000 fills with awkward prices and quantities, each posted to the journal
    import random

    rng = random.Random(7)
    ts = datetime(2026, 1, 5, 15, tzinfo=UTC)
    charged, exact, entries = D(0), D(0), []
    for i in range(10_000):
        quantity, price = D(rng.randint(1, 500)), D(rng.randint(100, 99999)) / 100
        liquidity = rng.choice(("maker", "taker"))
        amount = cash_amount(quantity, price)
        one = fee(FEES, liquidity, amount)
        charged += one
        exact += amount * FEES.rate(liquidity)
        entries.append(fill_entry(event_id=f"X-{i}", liquidity=liquidity, account_id=f"acc-{i % 7}", symbol="X",
                                  side=rng.choice(("buy", "sell")), quantity=quantity, price=price, cash=amount,
                                  fee=one, ts=ts))
    # THEN every fee is whole cents; what the accounts paid is what the house earned, to the cent
    totals = balances(entries)
    paid = -sum(v for (book, account, _), v in totals.items() if book != "house" and account == "cash")
    assert charged == charged.quantize(D("0.01")) and paid == charged == totals[("house", "fees", "USD")]
    # AND banker's rounding keeps the rounded total within cents of the exact one (no drift)
    assert abs(charged - exact) < D("1.00")


# -- calendar --------------------------------------------------------------------------------


def test_settlement_is_two_business_days_after_the_trade_date() -> None:
    monday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert settlement_date(monday) == date(2026, 3, 4)
    thursday = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)
    assert settlement_date(thursday) == date(2026, 3, 9)  # over the weekend


def test_the_trade_date_is_the_new_york_date_across_dst() -> None:
    # 2026-03-08 is the spring-forward Sunday: EST (-5) before 07:00Z, EDT (-4) after
    assert exchange_date(datetime(2026, 3, 6, 4, 59, tzinfo=UTC)) == date(2026, 3, 5)  # 23:59 EST
    assert exchange_date(datetime(2026, 3, 6, 5, 0, tzinfo=UTC)) == date(2026, 3, 6)  # 00:00 EST
    assert exchange_date(datetime(2026, 3, 10, 3, 59, tzinfo=UTC)) == date(2026, 3, 9)  # 23:59 EDT
    assert exchange_date(datetime(2026, 3, 10, 4, 0, tzinfo=UTC)) == date(2026, 3, 10)  # 00:00 EDT
    # Friday 23:30 New York after the change back to EST (2026-11-01) is still Friday
    assert trade_date(datetime(2026, 11, 7, 4, 30, tzinfo=UTC)) == date(2026, 11, 6)
    assert settlement_date(datetime(2026, 11, 7, 4, 30, tzinfo=UTC)) == date(2026, 11, 10)
    # a Sunday evening UTC trade (still Sunday in New York) rolls to Monday, settles Wednesday
    assert settlement_date(datetime(2026, 3, 8, 23, 0, tzinfo=UTC)) == date(2026, 3, 11)


def test_holidays_are_not_business_days() -> None:
    # Thanksgiving 2026 is Thursday 26 November: a Wednesday trade settles on Friday
    assert settlement_date(datetime(2026, 11, 25, 15, 0, tzinfo=UTC)) == date(2026, 11, 30)
    # Good Friday 2026-04-03: a Thursday trade settles on Tuesday
    assert settlement_date(datetime(2026, 4, 2, 15, 0, tzinfo=UTC)) == date(2026, 4, 7)
    # Christmas 2026 is a Friday; a trade on that day is for Monday 28th, settles Wednesday 30th
    assert trade_date(datetime(2026, 12, 25, 15, 0, tzinfo=UTC)) == date(2026, 12, 28)
    assert add_business_days(date(2026, 12, 24), 2) == date(2026, 12, 29)


PUBLISHED_NYSE_CLOSURES = {  # the exchange's own published schedules
    2022: ["2022-01-17", "2022-02-21", "2022-04-15", "2022-05-30", "2022-06-20", "2022-07-04", "2022-09-05",
           "2022-11-24", "2022-12-26"],
    2025: ["2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26", "2025-06-19",
           "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25"],
    2026: ["2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19", "2026-07-03",
           "2026-09-07", "2026-11-26", "2026-12-25"],
    2027: ["2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18", "2027-07-05",
           "2027-09-06", "2027-11-25", "2027-12-24"],
    2028: ["2028-01-17", "2028-02-21", "2028-04-14", "2028-05-29", "2028-06-19", "2028-07-04", "2028-09-04",
           "2028-11-23", "2028-12-25"],
}  # fmt: skip


@pytest.mark.parametrize("year", sorted(PUBLISHED_NYSE_CLOSURES))
def test_the_holiday_rules_give_the_exchanges_published_closures(year: int) -> None:
    # GIVEN the NYSE's published full-day closures of a year (2022 and 2028: New Year's Day on a
    # Saturday closes nothing; 2025: the national day of mourning on 9 January)
    published = {date.fromisoformat(day) for day in PUBLISHED_NYSE_CLOSURES[year]}
    # THEN the rules give exactly those days, and each is not a business day
    assert nyse_holidays(year) == published
    assert not any(is_business_day(day) for day in published)


def test_the_calendar_has_no_last_year() -> None:
    # Thanksgiving 2040 is Thursday 22 November: a Wednesday trade settles on Monday 26th
    assert settlement_date(datetime(2040, 11, 21, 15, 0, tzinfo=UTC)) == date(2040, 11, 26)
    # Good Friday 2035 is 23 March; Christmas 2039 is a Sunday, observed on Monday 26th
    assert not is_business_day(date(2035, 3, 23)) and not is_business_day(date(2039, 12, 26))


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        exchange_date(datetime(2026, 3, 2, 15, 0))  # noqa: DTZ001


# -- pre-trade rules and reservations ------------------------------------------------------


def order(**kw: object) -> OrderRisk:
    base: dict[str, object] = {"symbol": "AAPL", "side": "buy", "order_type": "limit", "quantity": D(10),
                               "price": D("100")}
    base.update(kw)
    return OrderRisk(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "last", "ask", "code"),
    [
        (order(quantity=D(1001)), None, None, "max_quantity_exceeded"),
        (order(quantity=D(1000), price=D(101)), None, None, "max_order_value_exceeded"),
        (order(price=D("110.01")), D(100), None, "price_outside_collar"),
        (order(price=D("89.99")), D(100), None, "price_outside_collar"),
        (order(order_type="market", price=None), None, None, "no_reference_price"),
        (order(order_type="market", price=None, quantity=D(990)), D(100), None, "max_order_value_exceeded"),
    ],
)
def test_each_rule_refuses_with_its_reason(facts: OrderRisk, last: Decimal | None, ask: Decimal | None,
                                           code: str) -> None:
    with pytest.raises(RiskRefused) as refused:
        check_order(facts, LIMITS, last, ask)
    assert refused.value.code == code and refused.value.status == 422


def test_prices_inside_the_collar_pass_and_buys_reserve_at_their_price() -> None:
    assert collar(D(100), D("0.10")) == (D(90), D(110))
    assert check_order(order(price=D(110)), LIMITS, D(100), None) == D(110)
    assert check_order(order(side="sell", price=D(90)), LIMITS, D(100), None) is None
    # a market buy reserves at the best ask (else the last trade) plus the protection band
    assert check_order(order(order_type="market", price=None), LIMITS, D(100), D("101")) == D("106.05")
    assert check_order(order(order_type="market", price=None), LIMITS, D(100), None) == D(105)
    assert protection_price(D("33.33"), D("0.05")) == D("34.9965")
    # a market sell needs no reference price
    assert check_order(order(side="sell", order_type="market", price=None), LIMITS, None, None) is None


def test_a_reservation_is_rounded_up_and_its_releases_add_up_to_it_exactly() -> None:
    rate = reserve_rate(D("33.33"), FEES.max_rate)
    assert reserve_amount(D(7), rate) == D("233.38")  # 233.379999 -> up
    released = fill_release(D(2), D(5), rate) + fill_release(D(3), D(2), rate) + reserve_amount(D(2), rate)
    assert released == reserve_amount(D(7), rate)


@given(
    fills=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
    cents=st.integers(min_value=1, max_value=10_000_000),
    extra=st.integers(min_value=0, max_value=50),
)
@settings(max_examples=200, deadline=None)
def test_releases_telescope_to_the_reservation_whatever_the_fills(fills: list[int], cents: int, extra: int) -> None:
    rate = reserve_rate(D(cents) / 10000, FEES.max_rate)
    total = sum(fills) + extra
    remaining, released = D(total), D(0)
    for q in fills:
        remaining -= q
        released += fill_release(D(q), remaining, rate)
    released += reserve_amount(remaining, rate)  # the cancel of the rest
    assert released == reserve_amount(D(total), rate)


# -- positions -------------------------------------------------------------------------------


def test_average_cost_realized_and_unrealized_pnl() -> None:
    p = Position("a", "AAPL")
    p = apply_fill(p, D(10), D(100), D("0.30"), 1)
    p = apply_fill(p, D(10), D(110), D("0.33"), 2)
    assert (p.quantity, p.cost, p.average_cost) == (D(20), D(2100), D(105))
    p = apply_fill(p, D(-5), D(120), D("0.18"), 3)
    assert p.realized_pnl == D(75) and p.quantity == D(15) and p.cost == D(1575)
    assert p.unrealized_pnl(D(100)) == D(-75) and p.fees == D("0.81")
    # selling through zero closes the long and opens a short at the fill price
    p = apply_fill(p, D(-20), D(100), D(0), 4)
    assert p.quantity == D(-5) and p.cost == D(-500) and p.realized_pnl == D(0)
    p = apply_fill(p, D(5), D(90), D(0), 5)
    assert p.quantity == 0 and p.cost == 0 and p.realized_pnl == D(50)


signed_fills = st.lists(
    st.tuples(
        st.integers(min_value=-500, max_value=500).filter(lambda q: q != 0),
        st.integers(min_value=1, max_value=1_000_000),
    ),
    min_size=1,
    max_size=40,
)


@given(fills=signed_fills)
@settings(max_examples=300, deadline=None)
def test_positions_equal_the_sum_of_fills_and_pnl_conserves_cash(fills: list[tuple[int, int]]) -> None:
    p = Position("a", "X")
    for i, (q, cents) in enumerate(fills, start=1):
        p = apply_fill(p, D(q), D(cents) / 100, D(0), i)
    assert p.quantity == sum(D(q) for q, _ in fills)
    assert p.realized_pnl - p.cost == -sum(D(q) * D(c) / 100 for q, c in fills)
    if p.quantity == 0:
        assert p.cost == 0


# -- the journal -----------------------------------------------------------------------------


@given(
    fills=st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]),
            st.integers(min_value=1, max_value=10_000),
            st.integers(min_value=1, max_value=10_000_000),
            st.sampled_from(["maker", "taker"]),
        ),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=200, deadline=None)
def test_every_entry_balances_per_asset_and_so_do_the_books(fills: list[tuple[str, int, int, str]]) -> None:
    ts = datetime(2026, 3, 2, 15, tzinfo=UTC)
    entries = []
    for i, (side, q, cents, liquidity) in enumerate(fills):
        price = D(cents) / 10000
        amount = cash_amount(D(q), price)
        entry = fill_entry(event_id=f"X-{i}", liquidity=liquidity, account_id="acc", symbol="X", side=side,
                           quantity=D(q), price=price, cash=amount, fee=fee(FEES, liquidity, amount), ts=ts)  # type: ignore[arg-type]
        entries.append(entry)
        assert entry.imbalance() == {}
    settle = settlement_entry(batch_id="b", account_id="acc", symbol="X", cash=D("12.34"), quantity=D(-3), ts=ts)
    entries += [settle, reversal(settle, ts)]
    totals = balances(entries)
    for asset in ("USD", "X"):
        assert sum(v for (_, _, a), v in totals.items() if a == asset) == 0
    signed = sum(D(q) if side == "buy" else -D(q) for side, q, _, _ in fills)
    assert totals.get(("acc", "pending_securities", "X"), D(0)) == signed
    assert all(leg.amount == leg.amount.quantize(D("0.01"), ROUND_HALF_EVEN)
               for e in entries for leg in e.legs if leg.asset == "USD")


def test_a_market_buy_goes_to_the_engine_as_an_ioc_limit_at_its_protection_price() -> None:
    # GIVEN a market buy whose reservation was made at its protection price
    from datetime import UTC, datetime

    from nexus_orders.commands import new_order_command
    from nexus_orders.order import Order

    order = Order(order_id="o1", account_id="a1", symbol="AAPL", side="buy", type="market", quantity=D("10"),
                  time_in_force="ioc", status="pending_new", remaining_quantity=D("10"), created_at="t",
                  updated_at="t", reserved=True, protection_price=D("106.57"))  # fmt: skip
    # WHEN its command is built
    command = new_order_command(order, datetime(2026, 1, 5, 15, tzinfo=UTC))
    # THEN it can never fill above the price its cash was reserved at
    assert (command.order_type, command.price, command.time_in_force) == ("limit", D("106.57"), "ioc")
    # AND a market sell (reserving shares, not cash) stays a plain market order
    sell = order.model_copy(update={"side": "sell", "protection_price": None})
    assert new_order_command(sell, datetime(2026, 1, 5, 15, tzinfo=UTC)).order_type == "market"
