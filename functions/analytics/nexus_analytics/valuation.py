"""Valuing a portfolio: exact ``Decimal`` arithmetic, no I/O.

* A position's value is ``quantity x price`` rounded to cents (ROUND_HALF_EVEN), signed (a short
  position is a negative exposure); the equity is cash plus the sum of the position values.
* Gross exposure is the sum of the absolute position values, net exposure their sum.
* A pro-forma equity series (``holdings_equity``): today's holdings valued at each past close,
  cash held constant, on the dates where every held symbol has a close.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from nexus_common.money import quantize_usd

from nexus_analytics.ports import Holdings, Valuation

ZERO_USD = Decimal("0.00")


@dataclass(frozen=True)
class PricedPortfolio:
    account_id: str
    cash: Decimal
    quantities: Mapping[str, Decimal]
    prices: Mapping[str, Decimal]
    exposures: Mapping[str, Decimal]  # symbol -> signed USD value

    @property
    def positions_value(self) -> Decimal:
        return sum(self.exposures.values(), ZERO_USD)

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions_value

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(v) for v in self.exposures.values()), ZERO_USD)

    @property
    def empty(self) -> bool:
        return not self.exposures


def price_portfolio(holdings: Holdings, prices: Mapping[str, Decimal]) -> PricedPortfolio:
    """Value ``holdings`` at ``prices`` (every held symbol must have a price)."""
    missing = sorted(s for s in holdings.quantities if s not in prices)
    if missing:
        raise KeyError(f"no price for {', '.join(missing)}")
    exposures = {s: quantize_usd(q * prices[s]) for s, q in sorted(holdings.quantities.items()) if q != 0}
    return PricedPortfolio(
        account_id=holdings.account_id,
        cash=holdings.cash,
        quantities={s: holdings.quantities[s] for s in exposures},
        prices={s: prices[s] for s in exposures},
        exposures=exposures,
    )


def valuation_of(holdings: Holdings, closes: Mapping[str, Decimal], day: date, flows: Decimal) -> Valuation:
    """The end-of-day valuation of an account at the day's closes."""
    priced = price_portfolio(holdings, closes)
    return Valuation(
        account_id=holdings.account_id,
        day=day,
        cash=holdings.cash,
        positions_value=priced.positions_value,
        flows=flows,
        positions={s: (priced.quantities[s], priced.prices[s]) for s in priced.exposures},
    )


def holdings_equity(
    holdings: Holdings, closes: Mapping[str, Sequence[tuple[date, Decimal]]]
) -> list[tuple[date, Decimal]]:
    """Today's holdings at each past close (cash constant), where every held symbol has one."""
    held = [s for s, q in holdings.quantities.items() if q != 0]
    if not held:
        return []
    by_symbol = {s: dict(closes.get(s, ())) for s in held}
    common = set.intersection(*(set(days) for days in by_symbol.values()))
    return [
        (day, holdings.cash + sum((quantize_usd(holdings.quantities[s] * by_symbol[s][day]) for s in held), ZERO_USD))
        for day in sorted(common)
    ]
