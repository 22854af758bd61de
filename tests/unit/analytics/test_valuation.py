"""Valuing a portfolio exactly (no I/O): position values in cents, short positions as negative
exposure, the pro-forma equity of today's holdings, and how metrics results cross the wire."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from nexus_analytics.ports import Holdings
from nexus_analytics.service import window_start, wire
from nexus_analytics.valuation import holdings_equity, price_portfolio, valuation_of


def test_a_long_and_a_short_position_are_valued_in_cents_with_gross_and_net_exposure() -> None:
    # GIVEN 3 AAPL long at 101.005 and 2 MSFT short at 300.125, and 1,000.00 cash
    holdings = Holdings("acc", Decimal("1000.00"), {"AAPL": Decimal(3), "MSFT": Decimal(-2)})
    # WHEN priced
    pf = price_portfolio(holdings, {"AAPL": Decimal("101.005"), "MSFT": Decimal("300.125")})
    # THEN each value is rounded half-even to cents, the short is negative, the sums are exact
    assert pf.exposures == {"AAPL": Decimal("303.02"), "MSFT": Decimal("-600.25")}
    assert (pf.positions_value, pf.gross_exposure, pf.equity) == (
        Decimal("-297.23"),
        Decimal("903.27"),
        Decimal("702.77"),
    )


def test_a_holding_without_a_price_is_refused_and_a_flat_position_is_left_out() -> None:
    holdings = Holdings("acc", Decimal(0), {"AAPL": Decimal(1), "MSFT": Decimal(0)})
    with pytest.raises(KeyError):
        price_portfolio(holdings, {"MSFT": Decimal(1)})
    assert price_portfolio(holdings, {"AAPL": Decimal(2), "MSFT": Decimal(1)}).exposures == {"AAPL": Decimal("2.00")}


def test_the_valuation_of_a_day_keeps_quantities_closes_and_flows() -> None:
    holdings = Holdings("acc", Decimal("50.00"), {"AAPL": Decimal(2)})
    valuation = valuation_of(holdings, {"AAPL": Decimal("10.50")}, date(2026, 3, 13), Decimal("25.00"))
    assert (valuation.equity, valuation.flows, valuation.positions) == (
        Decimal("71.00"),
        Decimal("25.00"),
        {"AAPL": (Decimal(2), Decimal("10.50"))},
    )


def test_pro_forma_equity_uses_the_days_every_held_symbol_has() -> None:
    # GIVEN closes of AAPL on three days and MSFT on two of them
    d1, d2, d3 = date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)
    closes = {
        "AAPL": [(d1, Decimal(10)), (d2, Decimal(11)), (d3, Decimal(12))],
        "MSFT": [(d1, Decimal(5)), (d3, Decimal(6))],
    }
    holdings = Holdings("acc", Decimal("100.00"), {"AAPL": Decimal(1), "MSFT": Decimal(2)})
    # WHEN today's holdings are valued at past closes
    # THEN only the common days, cash constant
    assert holdings_equity(holdings, closes) == [(d1, Decimal("120.00")), (d3, Decimal("124.00"))]
    assert holdings_equity(Holdings("acc", Decimal(1), {}), closes) == []


def test_metrics_results_cross_the_wire_as_strings_and_null() -> None:
    # GIVEN floats, a NaN, numpy arrays, dates and Decimals
    # WHEN made wire-ready
    given = {"a": 0.1234567891, "b": math.nan, "m": np.array([[1.0, 0.5]]), "d": date(2026, 3, 13)}
    given["x"] = Decimal("1.50")
    out = wire(given)
    # THEN floats are 6-place decimal strings, NaN is null, Decimal and dates as themselves / ISO
    assert out == {"a": "0.123457", "b": None, "m": [["1.000000", "0.500000"]], "d": "2026-03-13", "x": Decimal("1.50")}


def test_a_float_too_large_to_state_crosses_the_wire_as_null() -> None:
    # GIVEN a statistic of 2.25 ** 126 (an annualised return of two 50 % days) and a huge negative one
    # WHEN made wire-ready
    out = wire({"big": 2.25**126, "neg": -1e300, "ok": 1e14})
    # THEN the unstateable figures are null (no InvalidOperation), a large but stateable one is kept
    assert out == {"big": None, "neg": None, "ok": "100000000000000.000000"}


def test_a_lookback_of_sessions_starts_where_its_returns_need_on_any_day() -> None:
    from nexus_common.calendar import is_business_day

    # GIVEN every day of three years as "today", and lookbacks from 1 to 2520 sessions
    day = date(2025, 1, 1)
    while day < date(2028, 1, 1):
        for sessions in (1, 20, 250, 2520) if day.day == 1 else (20, 250):
            # WHEN a window of closes is started for that many daily returns before today
            start = window_start(day, sessions)
            # THEN it holds exactly sessions + 1 sessions before today (and today's own close, if any)
            held = sum(1 for n in range((day - start).days) if is_business_day(start + timedelta(days=n)))
            assert held == sessions + 1 and is_business_day(start), (day, sessions, start)
        day += timedelta(days=1)
    # the week a span of 365 calendar days held one session too few (2026-12-06, a Sunday)
    assert window_start(date(2026, 12, 6), 250) < date(2025, 12, 6)
