"""Synthetic, correlated daily history for the demo symbols (``nexus up --demo``): deterministic
for a seed and an end date, so every metric has two years of closes on a fresh machine.

Model: geometric Brownian motion per symbol over the exchange's business days, with daily log
returns drawn from a multivariate normal (a one-factor correlation: every pair of symbols has
``CORRELATION``), annual drift and volatility per symbol below. float64 only for the draw;
closes are rounded to cents (ROUND_HALF_EVEN) as ``Decimal`` and never go below one cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

import numpy as np
from nexus_common.calendar import is_business_day

from nexus_analytics.ports import PriceBar

# symbol -> (price at the start, annual drift, annual volatility)
DEMO_PARAMETERS: Final[dict[str, tuple[str, float, float]]] = {
    "AAPL": ("150.00", 0.12, 0.28),
    "MSFT": ("250.00", 0.10, 0.25),
    "GOOGL": ("110.00", 0.09, 0.30),
    "AMZN": ("120.00", 0.11, 0.33),
}
CORRELATION: Final = 0.55
TRADING_DAYS: Final = 252
DEMO_DAYS: Final = 2 * TRADING_DAYS  # two years of sessions
DEMO_SEED: Final = 20240101
_CENT: Final = Decimal("0.01")


def business_days_until(end: date, count: int) -> list[date]:
    """The last ``count`` exchange business days up to and including ``end``, oldest first."""
    if not 1 <= count <= 10 * TRADING_DAYS:
        raise ValueError(f"count {count} out of 1..{10 * TRADING_DAYS}")
    days: list[date] = []
    day = end
    while len(days) < count:
        if is_business_day(day):
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def synthetic_history(
    end: date,
    symbols: Sequence[str] | None = None,
    days: int = DEMO_DAYS,
    seed: int = DEMO_SEED,
) -> list[PriceBar]:
    """``days`` sessions of closes (with open/high/low/volume) for ``symbols`` up to ``end``."""
    chosen = list(symbols) if symbols is not None else list(DEMO_PARAMETERS)
    unknown = [s for s in chosen if s not in DEMO_PARAMETERS]
    if unknown:
        raise ValueError(f"no synthetic parameters for {', '.join(unknown)}")
    sessions = business_days_until(end, days)
    n = len(chosen)
    vol = np.array([DEMO_PARAMETERS[s][2] for s in chosen]) / np.sqrt(TRADING_DAYS)
    drift = np.array([DEMO_PARAMETERS[s][1] for s in chosen]) / TRADING_DAYS - 0.5 * vol**2
    corr = np.full((n, n), CORRELATION)
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(vol, vol)
    rng = np.random.default_rng(seed)
    log_returns = rng.multivariate_normal(drift, cov, size=len(sessions) - 1, method="cholesky")
    starts = np.array([float(DEMO_PARAMETERS[s][0]) for s in chosen])
    paths = starts * np.exp(np.vstack([np.zeros(n), np.cumsum(log_returns, axis=0)]))
    intraday = np.abs(rng.normal(0.0, 0.6, size=paths.shape)) * vol  # high/low spread
    gaps = rng.normal(0.0, 0.25, size=paths.shape) * vol  # open vs previous close
    volumes = rng.integers(1_000_000, 20_000_000, size=paths.shape)
    bars: list[PriceBar] = []
    for j, symbol in enumerate(chosen):
        previous = paths[0, j]
        for i, day in enumerate(sessions):
            close = _cents(paths[i, j])
            open_ = _cents(previous * (1.0 + gaps[i, j]))
            high = max(close, open_, _cents(max(paths[i, j], previous) * (1.0 + intraday[i, j])))
            low = min(close, open_, _cents(min(paths[i, j], previous) * (1.0 - intraday[i, j])))
            bars.append(
                PriceBar(symbol, day, close, open_, high, max(low, _CENT), Decimal(int(volumes[i, j])), source="demo")
            )
            previous = paths[i, j]
    return bars


def _cents(value: float) -> Decimal:
    return max(Decimal(repr(float(value))).quantize(_CENT, rounding=ROUND_HALF_EVEN), _CENT)
