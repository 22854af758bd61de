"""Portfolio analytics: the calculation library (no I/O).

Value at Risk and Expected Shortfall (historical, parametric, Monte Carlo), risk decomposition
(marginal and component VaR, beta and sector exposure), performance, correlation, stress tests
and VaR backtesting (Kupiec, Basel traffic light).

Numbers
-------
Money comes in and goes out as ``Decimal``; statistics are computed in float64 (numpy) and
reported as ``Decimal`` quantised with ``ROUND_HALF_EVEN``:

* USD amounts (VaR, ES, component VaR, stress P&L): 2 dp (cents);
* percentages of equity (``var_pct``, ``es_pct``): 4 dp, in percent (``"2.5000"`` is 2.5 %);
* returns, volatilities, ratios, betas, correlations, shares: 6 dp, as fractions (0.05 is 5 %).

Sums of money (stress P&L totals, exposures by sector, equity) are added in ``Decimal``; the sum
of the component VaRs equals the quantised total exactly (the rounding residual, at most a few
cents, goes to the largest component). A statistic that is undefined (a ratio over a zero
deviation, a beta without benchmark variance) is ``None``.

Returns
-------
``returns_matrix`` turns daily closes into simple returns ``close_t / close_{t-1} - 1`` on the
dates every symbol has a close; a day some symbol lacks is dropped, and the next return spans the
gap (close to close). ``Returns.pairwise`` keeps each symbol's own returns on the union of the
dates (NaN where a symbol lacks a day or the day before), which ``correlation`` uses pairwise.

Value at Risk (positive loss in USD; a quantile that is a gain is reported as 0)
-------------------------------------------------------------------------------
``exposures`` are signed USD market values (short < 0), held constant over the horizon.

* **historical**: the portfolio's P&L in each past scenario is ``R @ exposures``. For a horizon of
  h days the scenarios are the *overlapping* h-day sums of the daily P&L (n - h + 1 of them). VaR
  is the loss at the (1 - confidence) quantile with linear interpolation between order statistics
  (numpy's default percentile, empyrical's ``value_at_risk``); ES is minus the mean P&L of the
  ``floor((N - 1)(1 - c)) + 1`` worst scenarios (empyrical's ``conditional_value_at_risk``), so
  ES >= VaR (and ES is floored at the reported VaR when that VaR is floored at 0). Needed
  history: ``h - 1 + max(30, ceil(1 / (1 - c)))`` daily returns.
* **parametric** (variance-covariance, zero mean): ``VaR = z_c * sigma_p * sqrt(h)`` with
  ``sigma_p = sqrt(e' S e)``, S the sample covariance of the daily returns (ddof = 1);
  ``ES = phi(z_c) / (1 - c) * sigma_p * sqrt(h)``. Needed: 30 daily returns.
* **monte_carlo**: ``simulations`` draws (seeded, ``numpy.random.default_rng(seed)``) of
  correlated one-day returns with covariance S and zero mean: normal ``L z`` (L the Cholesky
  factor of S, or its eigen-decomposition when S is singular), or Student-t ``L z sqrt((nu-2)/W)``
  with ``W ~ chi2(nu)`` (unit-variance multivariate t, ``degrees_of_freedom`` nu, default 5),
  drawn as antithetic pairs (scenario ``ceil(N/2) + i`` is minus scenario ``i``: half the draws,
  an exactly symmetric zero-mean sample). The one-day P&L scenarios are scaled by ``sqrt(h)``;
  VaR and ES are read off as in historical.
  Needed: 30 daily returns.

Risk decomposition (Euler allocation: components sum to the total VaR)
-----------------------------------------------------------------------
``marginal_var_i`` = dVaR/de_i (USD of VaR per USD of exposure), ``component_var_i = e_i *
marginal_var_i``, ``share_i = component_i / VaR``.

* parametric: exact, ``marginal = z_c sqrt(h) (S e)_i / sigma_p``.
* historical and Monte Carlo: the Euler derivative is the expected loss of position i given the
  portfolio loss equals VaR; it is estimated by the mean loss of each position over the scenarios
  ranked within ``b = max(1, floor(sqrt(N) / 4))`` of the VaR's order statistic (a kernel
  estimator over N scenarios), then scaled so the components sum to the VaR exactly.

Performance
-----------
* Time-weighted returns: ``r_t = (V_t - F_t) / V_{t-1} - 1`` for consecutive valuations, where
  ``F_t`` is the net flow (deposits > 0, withdrawals < 0) dated after ``t-1`` and up to ``t``: a
  flow is in the valuation of its own day (end-of-day flow), so deposits and withdrawals are not
  performance. A period starting at a non-positive equity has no return (missing, NaN).
* Missing days: a period is the interval between two consecutive valuations given; a day without
  a valuation is not a period (the next return spans the gap). NaN returns compound as 0, are
  counted in the number of periods used to annualise (as empyrical does) and are left out of
  means and deviations.
* ``periods_per_year`` (default 252) annualises; the risk-free rate per period is
  ``(1 + risk_free_annual) ** (1 / periods_per_year) - 1`` (geometric).
* total return ``prod(1 + r) - 1``; annualised return ``(1 + total) ** (ppy / n) - 1`` (n the
  number of periods); volatility ``std(r, ddof=1) * sqrt(ppy)``.
* max drawdown: the most negative ``W_t / max_{s<=t} W_s - 1`` of the wealth ``W`` starting at 1
  on the first valuation date (a fraction <= 0, as empyrical), with its peak and trough dates.
* Sharpe ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.
* Sortino ``mean(r - rf) * ppy / (sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(ppy))``: the downside
  deviation is taken over ALL observations (the non-negative excess returns count as zeros), the
  target is the risk-free rate.
* Calmar ``annual_return / |max_drawdown|``.
* beta ``cov(r, b) / var(b)`` over the periods both have; alpha (annualised, geometric as
  empyrical) ``(1 + mean((r - rf) - beta (b - rf))) ** ppy - 1``; tracking error
  ``std(r - b, ddof=1) * sqrt(ppy)``; information ratio ``mean(r - b) * ppy / tracking_error``
  (empyrical's ``excess_sharpe`` is the same, not annualised: ours is it times ``sqrt(ppy)``).

Bounds (checked before any arithmetic): at most ``MAX_POSITIONS`` positions or symbols,
``MAX_DAYS`` days of history, ``MAX_SIMULATIONS`` simulations and ``MAX_SIMULATION_CELLS``
simulations x positions; confidence in (0.5, 1); horizon 1-30 days. Bad input raises
``InvalidInput`` (a 400, with ``code`` and ``field``); too little history raises
``InsufficientHistory`` (a 422 ``insufficient_history`` with the days available and needed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cached_property
from statistics import NormalDist
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from nexus_analytics import scenarios as _scenario_data

FloatArray = NDArray[np.float64]
Method = Literal["historical", "parametric", "monte_carlo"]
Distribution = Literal["normal", "t"]
METHODS: Final[tuple[str, ...]] = ("historical", "parametric", "monte_carlo")
DISTRIBUTIONS: Final[tuple[str, ...]] = ("normal", "t")

MAX_POSITIONS: Final = 500
MAX_DAYS: Final = 10_000
MAX_SIMULATIONS: Final = 100_000
MIN_SIMULATIONS: Final = 1_000
MAX_SIMULATION_CELLS: Final = 5_000_000
MAX_HORIZON_DAYS: Final = 30
MIN_OBSERVATIONS: Final = 30
MAX_EXPOSURE: Final = Decimal("1e13")
MAX_BACKTEST_OBSERVATIONS: Final = 1_000_000
MAX_RETURN_CELLS: Final = 6_000_000  # dates x symbols of the aligned closes
MAX_PRICE: Final = 1e12

USD: Final = Decimal("0.01")
PCT: Final = Decimal("0.0001")
RATIO: Final = Decimal("0.000001")
ROUNDING: Final = ROUND_HALF_EVEN

_NORMAL: Final = NormalDist()


# -- errors ------------------------------------------------------------------------------------


class InvalidInput(ValueError):
    """Bad input: the API answers 400 with ``code``, the message and ``field``."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class InsufficientHistory(ValueError):
    """Too little history for the figure asked: the API answers 422 ``insufficient_history``.
    ``available`` and ``needed`` count daily returns (observations)."""

    def __init__(self, available: int, needed: int, what: str = "history") -> None:
        super().__init__(f"insufficient {what}: {available} daily returns available, {needed} needed")
        self.available = available
        self.needed = needed


# -- Decimal helpers ---------------------------------------------------------------------------


STAT_LIMIT: Final = 1e15  # a statistic this large (or larger) is not stated: reported as None


def _q(value: float, step: Decimal) -> Decimal | None:
    """A float statistic as a Decimal quantised to ``step``; None when it is not finite or too large
    to state (``abs >= STAT_LIMIT``: e.g. an annualised return of a few explosive days), never an
    ``InvalidOperation`` from a quantisation beyond the Decimal context's precision."""
    if not math.isfinite(value) or abs(value) >= STAT_LIMIT:
        return None
    return Decimal(value).quantize(step, rounding=ROUNDING)


def _q0(value: float, step: Decimal) -> Decimal:
    out = _q(value, step)
    return Decimal(0).quantize(step) if out is None else out


def _decimal(value: Any, field_name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise InvalidInput(f"{field_name} must be a decimal", field=field_name, code="invalid_decimal")
    try:
        out = Decimal(value)
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field_name} must be a decimal", field=field_name, code="invalid_decimal") from None
    if not out.is_finite():
        raise InvalidInput(f"{field_name} must be finite", field=field_name, code="invalid_decimal")
    return out


def check_confidence(confidence: Decimal | str | float) -> Decimal:
    """The confidence as a Decimal in the open interval (0.5, 1)."""
    if isinstance(confidence, float):
        confidence = Decimal(repr(confidence))
    c = _decimal(confidence, "confidence")
    if not Decimal("0.5") < c < 1:
        raise InvalidInput("confidence must be in (0.5, 1)", field="confidence", code="invalid_confidence")
    if c.as_tuple().exponent < -12:  # type: ignore[operator]
        raise InvalidInput("confidence has more than 12 decimals", field="confidence", code="invalid_confidence")
    return c


def check_horizon(horizon_days: int) -> int:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int):
        raise InvalidInput("horizon_days must be an integer", field="horizon_days", code="invalid_horizon")
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise InvalidInput(
            f"horizon_days must be 1 to {MAX_HORIZON_DAYS}", field="horizon_days", code="invalid_horizon"
        )
    return horizon_days


def _check_exposures(exposures: Mapping[str, Decimal]) -> dict[str, Decimal]:
    if len(exposures) > MAX_POSITIONS:
        raise InvalidInput(f"at most {MAX_POSITIONS} positions", field="exposures", code="too_many_positions")
    out: dict[str, Decimal] = {}
    for symbol, value in exposures.items():
        if not isinstance(symbol, str) or not symbol:
            raise InvalidInput("a symbol must be a non-empty string", field="exposures", code="invalid_symbol")
        amount = value if type(value) is Decimal and value.is_finite() else _decimal(value, "exposures")
        if not -MAX_EXPOSURE <= amount <= MAX_EXPOSURE:
            raise InvalidInput(f"exposure of {symbol} out of range", field="exposures", code="invalid_decimal")
        out[symbol] = amount
    return out


# -- returns -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Returns:
    """Simple daily returns, aligned on the dates every symbol has.

    ``matrix[t, j]`` is the return of ``symbols[j]`` ending on ``dates[t]`` (float64, no NaN).
    ``pairwise`` (``pairwise_dates`` x symbols) keeps each symbol's own returns, NaN where absent.
    """

    dates: tuple[date, ...]
    symbols: tuple[str, ...]
    matrix: FloatArray
    pairwise: FloatArray | None = None
    pairwise_dates: tuple[date, ...] = ()

    @property
    def observations(self) -> int:
        return int(self.matrix.shape[0])

    @cached_property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}

    @cached_property
    def covariance(self) -> FloatArray:
        """Sample covariance of the daily returns (ddof = 1), computed once per ``Returns``."""
        n = self.observations
        if n < 2:
            return np.zeros((len(self.symbols), len(self.symbols)))
        centred = self.matrix - self.matrix.mean(axis=0)
        cov: FloatArray = centred.T @ centred / (n - 1)
        return cov

    @cached_property
    def _factors(self) -> dict[tuple[int, ...], FloatArray]:
        return {}

    def factor(self, columns: tuple[int, ...]) -> FloatArray:
        """A matrix L with L L' = the covariance of ``columns`` (Cholesky, or the eigen-decomposition
        when the covariance is singular); cached per column set."""
        cached = self._factors.get(columns)
        if cached is not None:
            return cached
        cov = (
            self.covariance if columns == tuple(range(len(self.symbols))) else self.covariance[np.ix_(columns, columns)]
        )
        try:
            factor: FloatArray = np.linalg.cholesky(cov).astype(np.float64, copy=False)
        except np.linalg.LinAlgError:
            values, vectors = np.linalg.eigh(cov)
            factor = (vectors * np.sqrt(np.clip(values, 0.0, None))).astype(np.float64, copy=False)
        if len(self._factors) < 8:  # a few portfolios per price-history load; 2 MB each at most
            self._factors[columns] = factor
        return factor

    def tail(self, days: int) -> Returns:
        """The last ``days`` returns."""
        if days >= self.observations:
            return self
        pairwise = None if self.pairwise is None else self.pairwise[-days:]
        pdates = self.pairwise_dates[-days:] if self.pairwise_dates else ()
        return Returns(self.dates[-days:], self.symbols, self.matrix[-days:], pairwise, pdates)

    @classmethod
    def from_matrix(
        cls, matrix: FloatArray | Sequence[Sequence[float]], symbols: Sequence[str], dates: Sequence[date] = ()
    ) -> Returns:
        """Returns given directly (tests, benchmarks, a cache of the service)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2 or m.shape[1] != len(symbols):
            raise InvalidInput("the matrix must be days x symbols", field="returns")
        if m.shape[0] > MAX_DAYS or m.shape[1] > MAX_POSITIONS:
            raise InvalidInput("too many days or symbols", field="returns", code="too_large")
        if not np.isfinite(m).all():
            raise InvalidInput("returns must be finite", field="returns")
        if len(set(symbols)) != len(symbols):
            raise InvalidInput("duplicate symbol", field="symbols", code="duplicate_symbol")
        return cls(tuple(dates), tuple(symbols), m, m, tuple(dates))


def _price(close: Any) -> float:
    if type(close) is Decimal:
        try:
            return float(close)
        except ValueError:  # a signalling NaN
            return math.nan
    return float(_decimal(close, "close"))


def _closes_arrays(symbol: str, rows: Sequence[tuple[date, Decimal]]) -> tuple[NDArray[np.int64], FloatArray]:
    """(day ordinals, float closes) of one symbol, checked: dates, finite positive closes, no
    date twice."""
    try:
        days = np.fromiter((d.toordinal() for d, _ in rows), dtype=np.int64, count=len(rows))
    except (AttributeError, TypeError, ValueError):
        raise InvalidInput(f"{symbol}: a close needs a date", field="date", code="invalid_date") from None
    prices = np.fromiter((_price(c) for _, c in rows), dtype=np.float64, count=len(rows))
    bad = ~np.isfinite(prices) | (prices <= 0) | (prices > MAX_PRICE)
    if bad.any():
        i = int(np.argmax(bad))
        day, close = rows[i]
        code = "invalid_price" if math.isfinite(prices[i]) else "invalid_decimal"
        raise InvalidInput(f"{symbol} close on {day} is not a positive price: {close}", field="close", code=code)
    if np.unique(days).shape[0] != days.shape[0]:
        ordered = np.sort(days)
        twice = date.fromordinal(int(ordered[np.argmax(ordered[1:] == ordered[:-1])]))
        raise InvalidInput(f"{symbol} has two closes on {twice}", field="date", code="duplicate_date")
    return days, prices


def returns_matrix(closes: Mapping[str, Sequence[tuple[date, Decimal]]], lookback_days: int | None = None) -> Returns:
    """Simple daily returns of each symbol from its daily closes, aligned on the dates all symbols
    have (see the module docstring); the last ``lookback_days`` returns when given."""
    if len(closes) > MAX_POSITIONS:
        raise InvalidInput(f"at most {MAX_POSITIONS} symbols", field="symbols", code="too_many_symbols")
    if lookback_days is not None and (
        isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or not 1 <= lookback_days <= MAX_DAYS
    ):
        raise InvalidInput(f"lookback_days must be 1 to {MAX_DAYS}", field="lookback_days", code="invalid_lookback")
    symbols = tuple(closes)
    days_of: list[NDArray[np.int64]] = []
    prices_of: list[FloatArray] = []
    for symbol in symbols:
        rows = closes[symbol]
        if len(rows) > MAX_DAYS + 1:
            raise InvalidInput(f"at most {MAX_DAYS + 1} closes per symbol", field="closes", code="too_large")
        days, prices = _closes_arrays(symbol, rows)
        days_of.append(days)
        prices_of.append(prices)

    if not symbols:
        return Returns((), (), np.zeros((0, 0)), np.zeros((0, 0)), ())
    union = np.unique(np.concatenate(days_of))
    if union.shape[0] * len(symbols) > MAX_RETURN_CELLS:
        raise InvalidInput("too many dates x symbols", field="closes", code="too_large")
    levels = np.full((union.shape[0], len(symbols)), np.nan)
    for j, (days, prices) in enumerate(zip(days_of, prices_of, strict=True)):
        levels[np.searchsorted(union, days), j] = prices
    k = len(symbols)
    pairwise = levels[1:] / levels[:-1] - 1.0 if union.shape[0] >= 2 else np.zeros((0, k))
    complete = np.isfinite(levels).all(axis=1)
    common = levels[complete]
    matrix = common[1:] / common[:-1] - 1.0 if common.shape[0] >= 2 else np.zeros((0, k))
    dates = tuple(date.fromordinal(int(d)) for d in union[complete][1:])
    union_dates = tuple(date.fromordinal(int(d)) for d in union[1:])
    out = Returns(dates, symbols, matrix, pairwise, union_dates)
    return out.tail(lookback_days) if lookback_days is not None else out


# -- Value at Risk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskFigure:
    method: str
    confidence: Decimal
    horizon_days: int
    var: Decimal
    expected_shortfall: Decimal
    var_pct: Decimal | None
    es_pct: Decimal | None
    observations: int
    scenarios: int
    distribution: str | None = None


@dataclass(frozen=True)
class PositionRisk:
    symbol: str
    exposure: Decimal
    marginal_var: Decimal
    component_var: Decimal
    share: Decimal


@dataclass(frozen=True)
class Decomposition:
    method: str
    confidence: Decimal
    horizon_days: int
    total: Decimal
    positions: tuple[PositionRisk, ...]
    observations: int


def historical_var_es(pnl: FloatArray, confidence: float) -> tuple[float, float]:
    """Loss VaR and ES of P&L scenarios (unfloored: a gain is a negative loss).

    VaR is minus the (1 - c) percentile with linear interpolation; ES minus the mean of the
    ``floor((N - 1)(1 - c)) + 1`` lowest scenarios (empyrical's conventions)."""
    values = np.asarray(pnl, dtype=np.float64)
    if values.ndim != 1 or not 1 <= values.shape[0] <= MAX_SIMULATIONS or not np.isfinite(values).all():
        raise InvalidInput(f"pnl must be 1 to {MAX_SIMULATIONS} finite scenarios", field="pnl")
    if not 0.0 < confidence < 1.0:
        raise InvalidInput("confidence must be in (0, 1)", field="confidence", code="invalid_confidence")
    return _var_es_core(values, 1.0 - confidence)[:2]


def _var_es_core(pnl: FloatArray, alpha: float) -> tuple[float, float, FloatArray, float, int]:
    """(var, es, partitioned pnl, interpolation weight, k) for tail probability ``alpha``."""
    n = pnl.shape[0]
    position = (n - 1) * alpha
    if abs(position - round(position)) < 1e-9:  # (n - 1)(1 - c) whole but for float error
        position = float(round(position))
    k = int(position)
    frac = position - k
    kth = [k, k + 1] if k + 1 < n else [k]
    part = np.partition(pnl, kth)
    lower = part[k]
    quantile = lower + frac * (part[k + 1] - lower) if k + 1 < n else lower
    es = -float(part[: k + 1].mean())
    return -float(quantile), es, part, frac, k


@dataclass
class _Setup:
    symbols: tuple[str, ...]
    exposures: tuple[Decimal, ...]
    weights: FloatArray
    columns: tuple[int, ...]
    alpha: float
    confidence: Decimal
    horizon: int


def _setup(
    method: str,
    exposures: Mapping[str, Decimal],
    returns: Returns,
    confidence: Decimal,
    horizon_days: int,
    simulations: int,
    distribution: str,
    degrees_of_freedom: int,
) -> _Setup:
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}", field="method", code="invalid_method")
    c = check_confidence(confidence)
    h = check_horizon(horizon_days)
    checked = _check_exposures(exposures)
    if method == "monte_carlo":
        if isinstance(simulations, bool) or not isinstance(simulations, int):
            raise InvalidInput("simulations must be an integer", field="simulations", code="invalid_simulations")
        if not MIN_SIMULATIONS <= simulations <= MAX_SIMULATIONS:
            raise InvalidInput(
                f"simulations must be {MIN_SIMULATIONS} to {MAX_SIMULATIONS}",
                field="simulations",
                code="invalid_simulations",
            )
        if simulations * max(len(checked), 1) > MAX_SIMULATION_CELLS:
            raise InvalidInput(
                f"simulations x positions must be at most {MAX_SIMULATION_CELLS}",
                field="simulations",
                code="invalid_simulations",
            )
        if distribution not in DISTRIBUTIONS:
            raise InvalidInput("distribution must be normal or t", field="distribution", code="invalid_distribution")
        if isinstance(degrees_of_freedom, bool) or not isinstance(degrees_of_freedom, int):
            raise InvalidInput("degrees_of_freedom must be an integer", field="degrees_of_freedom")
        if not 3 <= degrees_of_freedom <= 1000:
            raise InvalidInput("degrees_of_freedom must be 3 to 1000", field="degrees_of_freedom")
    index = returns.index
    unknown = [s for s in checked if s not in index]
    if unknown:
        raise InvalidInput(
            f"no price history for {', '.join(sorted(unknown)[:5])}", field="symbols", code="unknown_symbol"
        )
    symbols = tuple(checked)
    columns = tuple(index[s] for s in symbols)
    weights = np.fromiter((float(v) for v in checked.values()), dtype=np.float64, count=len(symbols))
    return _Setup(symbols, tuple(checked.values()), weights, columns, float(1 - c), c, h)


def needed_observations(method: str, confidence: Decimal, horizon_days: int = 1) -> int:
    """Daily returns a method needs (see the module docstring)."""
    if method == "historical":
        tail = 1 - confidence
        return horizon_days - 1 + max(MIN_OBSERVATIONS, int((1 / tail).to_integral_value(rounding="ROUND_CEILING")))
    return MIN_OBSERVATIONS


def _require_history(method: str, s: _Setup, returns: Returns) -> None:
    needed = needed_observations(method, s.confidence, s.horizon)
    if returns.observations < needed:
        raise InsufficientHistory(returns.observations, needed)


def _submatrix(returns: Returns, columns: tuple[int, ...]) -> FloatArray:
    if columns == tuple(range(len(returns.symbols))):
        return returns.matrix
    return returns.matrix[:, list(columns)]


def _kernel_rows(order: NDArray[np.intp], k: int, n: int) -> NDArray[np.intp]:
    b = max(1, int(math.sqrt(n) / 4))
    return order[max(0, k - b) : min(n, k + b + 1)]


@dataclass
class _Core:
    var: float
    es: float
    scenarios: int
    # per-position mean loss (per USD of exposure) over the kernel scenarios, or the exact gradient
    gradient: FloatArray


def _historical(s: _Setup, returns: Returns, with_gradient: bool) -> _Core:
    r = _submatrix(returns, s.columns)
    daily = r @ s.weights
    h = s.horizon
    if h == 1:
        pnl = daily
    else:
        c = np.concatenate(([0.0], np.cumsum(daily)))
        pnl = c[h:] - c[:-h]
    n = pnl.shape[0]
    var, es, _, _, k = _var_es_core(pnl, s.alpha)
    gradient = np.zeros(len(s.symbols))
    if with_gradient:
        rows = _kernel_rows(np.argsort(pnl, kind="stable"), k, n)
        if h == 1:
            gradient = -r[rows].mean(axis=0)
        else:
            cr = np.vstack((np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)))
            gradient = -(cr[rows + h] - cr[rows]).mean(axis=0)
    return _Core(var, es, n, gradient)


def _parametric(s: _Setup, returns: Returns, with_gradient: bool) -> _Core:
    cov = returns.covariance
    cols = list(s.columns)
    sub = cov if s.columns == tuple(range(len(returns.symbols))) else cov[np.ix_(cols, cols)]
    se = sub @ s.weights
    sigma = math.sqrt(max(float(s.weights @ se), 0.0))
    z = _NORMAL.inv_cdf(1.0 - s.alpha)
    root_h = math.sqrt(s.horizon)
    var = z * sigma * root_h
    es = _NORMAL.pdf(z) / s.alpha * sigma * root_h
    gradient = z * root_h * se / sigma if sigma > 0 else np.zeros(len(s.symbols))
    return _Core(var, es, 0, gradient)


def _monte_carlo(
    s: _Setup, returns: Returns, simulations: int, seed: int, distribution: str, dof: int, with_gradient: bool
) -> _Core:
    factor = returns.factor(s.columns)
    rng = np.random.default_rng(seed)
    half = (simulations + 1) // 2  # antithetic pairs: scenario half + i is minus scenario i
    z = rng.standard_normal((half, len(s.columns)))
    scale = np.sqrt((dof - 2) / rng.chisquare(dof, half)) if distribution == "t" else None
    root_h = math.sqrt(s.horizon)
    loadings = factor.T @ s.weights  # pnl = (z @ L') @ e = z @ (L' e)
    pnl_half = z @ loadings
    if scale is not None:
        pnl_half *= scale
    pnl_half *= root_h
    pnl = np.concatenate((pnl_half, -pnl_half))[:simulations]
    var, es, _, _, k = _var_es_core(pnl, s.alpha)
    gradient = np.zeros(len(s.symbols))
    if with_gradient:
        rows = _kernel_rows(np.argsort(pnl, kind="stable"), k, simulations)
        sign = np.where(rows < half, 1.0, -1.0)
        base = np.where(rows < half, rows, rows - half)
        draws = z[base] * sign[:, None]
        if scale is not None:
            draws *= scale[base][:, None]
        gradient = -(draws @ factor.T).mean(axis=0) * root_h
    return _Core(var, es, simulations, gradient)


def _core(
    method: str, s: _Setup, returns: Returns, simulations: int, seed: int, distribution: str, dof: int, grad: bool
) -> _Core:
    if method == "historical":
        return _historical(s, returns, grad)
    if method == "parametric":
        return _parametric(s, returns, grad)
    return _monte_carlo(s, returns, simulations, seed, distribution, dof, grad)


def _pct(amount: Decimal, equity: Decimal | None) -> Decimal | None:
    if equity is None or equity <= 0:
        return None
    return (amount * 100 / equity).quantize(PCT, rounding=ROUNDING)


def value_at_risk(
    method: Method,
    exposures: Mapping[str, Decimal],
    returns: Returns,
    confidence: Decimal,
    horizon_days: int,
    *,
    simulations: int = 10_000,
    seed: int = 0,
    distribution: Distribution = "normal",
    degrees_of_freedom: int = 5,
    equity: Decimal | None = None,
) -> RiskFigure:
    """VaR and Expected Shortfall of the portfolio (positive USD losses; see the module docstring)."""
    s = _setup(method, exposures, returns, confidence, horizon_days, simulations, distribution, degrees_of_freedom)
    equity_d = None if equity is None else _decimal(equity, "equity")
    dist = distribution if method == "monte_carlo" else None
    if not s.symbols or not s.weights.any():
        zero = Decimal(0).quantize(USD)
        return RiskFigure(
            method,
            s.confidence,
            s.horizon,
            zero,
            zero,
            _pct(zero, equity_d),
            _pct(zero, equity_d),
            returns.observations,
            0,
            dist,
        )
    _require_history(method, s, returns)
    core = _core(method, s, returns, simulations, seed, distribution, degrees_of_freedom, False)
    var = max(core.var, 0.0)
    es = max(core.es, var)
    var_d, es_d = _q0(var, USD), _q0(es, USD)
    return RiskFigure(
        method,
        s.confidence,
        s.horizon,
        var_d,
        es_d,
        _pct(var_d, equity_d),
        _pct(es_d, equity_d),
        returns.observations,
        core.scenarios,
        dist,
    )


def risk_decomposition(
    method: Method,
    exposures: Mapping[str, Decimal],
    returns: Returns,
    confidence: Decimal,
    horizon_days: int = 1,
    *,
    simulations: int = 10_000,
    seed: int = 0,
    distribution: Distribution = "normal",
    degrees_of_freedom: int = 5,
) -> Decomposition:
    """Marginal and component VaR per position (Euler allocation; the components sum to the total)."""
    s = _setup(method, exposures, returns, confidence, horizon_days, simulations, distribution, degrees_of_freedom)
    zero = Decimal(0).quantize(USD)
    if not s.symbols or not s.weights.any():
        positions = tuple(
            PositionRisk(sym, e, Decimal(0).quantize(RATIO), zero, Decimal(0).quantize(RATIO))
            for sym, e in zip(s.symbols, s.exposures, strict=True)
        )
        return Decomposition(method, s.confidence, s.horizon, zero, positions, returns.observations)
    _require_history(method, s, returns)
    core = _core(method, s, returns, simulations, seed, distribution, degrees_of_freedom, True)
    var = max(core.var, 0.0)
    gradient = core.gradient
    if method != "parametric":
        raw = float(s.weights @ gradient)
        gradient = gradient * (var / raw) if var > 0 and abs(raw) > 1e-12 * max(var, 1.0) else np.zeros_like(gradient)
    elif var <= 0:
        gradient = np.zeros_like(gradient)
    total = _q0(var, USD)
    components = [_q0(float(x), USD) for x in s.weights * gradient]
    residual = total - sum(components, Decimal(0))
    if residual and components:
        largest = max(range(len(components)), key=lambda i: abs(components[i]))
        components[largest] += residual
    positions = tuple(
        PositionRisk(
            sym,
            e,
            _q0(float(g), RATIO),
            comp,
            (comp / total).quantize(RATIO, rounding=ROUNDING) if total else Decimal(0).quantize(RATIO),
        )
        for sym, e, g, comp in zip(s.symbols, s.exposures, gradient, components, strict=True)
    )
    return Decomposition(method, s.confidence, s.horizon, total, positions, returns.observations)


# -- beta and factor exposure -------------------------------------------------------------------


def beta(asset: FloatArray, benchmark: FloatArray) -> float:
    """OLS beta ``cov(asset, benchmark) / var(benchmark)`` over the periods both have (NaN elsewhere)."""
    a = np.asarray(asset, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInput("asset and benchmark must be 1-d series of one length", field="benchmark")
    if a.shape[0] > MAX_DAYS:
        raise InvalidInput(f"at most {MAX_DAYS} days", field="benchmark", code="too_large")
    mask = np.isfinite(a) & np.isfinite(b)
    n = int(mask.sum())
    if n < 2:
        raise InsufficientHistory(n, 2, "overlapping history")
    a, b = a[mask], b[mask]
    bc = b - b.mean()
    variance = float(bc @ bc)
    if variance <= 1e-30 * n:
        raise InvalidInput("the benchmark has no variance over the period", field="benchmark", code="flat_benchmark")
    return float(bc @ a) / variance


@dataclass(frozen=True)
class PositionExposure:
    symbol: str
    exposure: Decimal
    beta: Decimal | None
    beta_exposure: Decimal | None
    sector: str | None


@dataclass(frozen=True)
class SectorExposure:
    sector: str
    net: Decimal
    gross: Decimal
    share_of_gross: Decimal


@dataclass(frozen=True)
class FactorExposure:
    benchmark: str
    positions: tuple[PositionExposure, ...]
    net_exposure: Decimal
    gross_exposure: Decimal
    beta_exposure: Decimal
    portfolio_beta: Decimal | None
    sectors: tuple[SectorExposure, ...]
    observations: int


UNCLASSIFIED: Final = "Unclassified"


def factor_exposure(
    exposures: Mapping[str, Decimal],
    returns: Returns,
    benchmark_symbol: str,
    sectors: Mapping[str, str] | None = None,
) -> FactorExposure:
    """Each position's beta to ``benchmark_symbol`` (a column of ``returns``) and its beta-weighted
    exposure (USD), the portfolio beta (beta exposure / net exposure), and net and gross exposure
    by sector (a symbol without a sector is ``Unclassified``)."""
    checked = _check_exposures(exposures)
    index = returns.index
    if benchmark_symbol not in index:
        raise InvalidInput(f"no price history for {benchmark_symbol}", field="benchmark", code="unknown_symbol")
    unknown = [s for s in checked if s not in index]
    if unknown:
        raise InvalidInput(
            f"no price history for {', '.join(sorted(unknown)[:5])}", field="symbols", code="unknown_symbol"
        )
    if checked and returns.observations < MIN_OBSERVATIONS:
        raise InsufficientHistory(returns.observations, MIN_OBSERVATIONS)
    bench = returns.matrix[:, index[benchmark_symbol]]
    positions = []
    beta_total = Decimal(0)
    for symbol, amount in checked.items():
        b = beta(returns.matrix[:, index[symbol]], bench)
        b_d = _q0(b, RATIO)
        b_exp = (amount * b_d).quantize(USD, rounding=ROUNDING)
        beta_total += b_exp
        sector = (sectors or {}).get(symbol)
        positions.append(PositionExposure(symbol, amount, b_d, b_exp, sector))
    net = sum(checked.values(), Decimal(0))
    gross = sum((abs(v) for v in checked.values()), Decimal(0))
    by_sector: dict[str, tuple[Decimal, Decimal]] = {}
    for p in positions:
        key = p.sector or UNCLASSIFIED
        n0, g0 = by_sector.get(key, (Decimal(0), Decimal(0)))
        by_sector[key] = (n0 + p.exposure, g0 + abs(p.exposure))
    sector_rows = tuple(
        SectorExposure(k, n, g, (g / gross).quantize(RATIO, rounding=ROUNDING) if gross else Decimal(0).quantize(RATIO))
        for k, (n, g) in sorted(by_sector.items(), key=lambda kv: (-kv[1][1], kv[0]))
    )
    portfolio_beta = (beta_total / net).quantize(RATIO, rounding=ROUNDING) if net else None
    return FactorExposure(
        benchmark_symbol, tuple(positions), net, gross, beta_total, portfolio_beta, sector_rows, returns.observations
    )


# -- performance -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnStatistics:
    """Float statistics of a return series (NaN undefined, inf where the ratio is unbounded)."""

    periods: int
    observations: int
    total_return: float
    annual_return: float
    volatility: float
    max_drawdown: float
    drawdown_peak: int | None  # index into the wealth series (0 = before the first return)
    drawdown_trough: int | None
    sharpe: float
    sortino: float
    downside_deviation: float
    calmar: float
    beta: float
    alpha: float
    tracking_error: float
    information_ratio: float


def _ratio(num: float, den: float) -> float:
    if not math.isfinite(num) or not math.isfinite(den):
        return math.nan
    if den == 0:
        if num == 0:
            return math.nan
        return math.copysign(math.inf, num)
    return num / den


def _std(x: FloatArray) -> float:
    x = x[np.isfinite(x)]
    if x.shape[0] < 2:
        return math.nan
    return float(np.std(x, ddof=1))


def _mean(x: FloatArray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.shape[0] else math.nan


def return_statistics(
    returns: FloatArray | Sequence[float],
    benchmark: FloatArray | Sequence[float] | None = None,
    *,
    risk_free_per_period: float | FloatArray = 0.0,
    periods_per_year: int = 252,
) -> ReturnStatistics:
    """The performance statistics of periodic simple returns (NaN = missing period), with the
    conventions of the module docstring; ``performance`` reports them as Decimals."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.shape[0] > MAX_DAYS:
        raise InvalidInput(f"returns must be a 1-d series of at most {MAX_DAYS}", field="returns")
    if not 1 <= periods_per_year <= 366:
        raise InvalidInput("periods_per_year must be 1 to 366", field="periods_per_year")
    n = r.shape[0]
    obs = int(np.isfinite(r).sum())
    nan = math.nan
    if n == 0:
        return ReturnStatistics(0, 0, nan, nan, nan, nan, None, None, nan, nan, nan, nan, nan, nan, nan, nan)
    ppy = float(periods_per_year)
    filled = np.where(np.isfinite(r), r, 0.0)
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + filled)))
    total = float(wealth[-1] - 1.0)
    annual = (wealth[-1] ** (ppy / n) - 1.0) if wealth[-1] > 0 else -1.0
    peaks = np.maximum.accumulate(wealth)
    drawdowns = wealth / peaks - 1.0
    trough = int(np.argmin(drawdowns))
    mdd = float(drawdowns[trough])
    peak: int | None = int(np.argmax(wealth[: trough + 1])) if mdd < 0 else None
    trough_i: int | None = trough if mdd < 0 else None

    excess = r - risk_free_per_period
    sd = _std(excess)
    sharpe = _ratio(_mean(excess), sd) * math.sqrt(ppy)
    fin = excess[np.isfinite(excess)]
    downside = float(math.sqrt(np.mean(np.square(np.minimum(fin, 0.0))))) * math.sqrt(ppy) if fin.size else nan
    sortino = _ratio(_mean(excess) * ppy, downside) if fin.size else nan
    if obs < 2:
        sharpe = nan
        sortino = nan
    calmar = _ratio(annual, abs(mdd)) if mdd < 0 else nan
    volatility = _std(r) * math.sqrt(ppy)

    b_beta = b_alpha = te = ir = nan
    if benchmark is not None:
        b = np.asarray(benchmark, dtype=np.float64)
        if b.shape != r.shape:
            raise InvalidInput("the benchmark must have one return per period", field="benchmark")
        mask = np.isfinite(r) & np.isfinite(b)
        if int(mask.sum()) >= 2:
            rm, bm = r[mask], b[mask]
            bc = bm - bm.mean()
            var_b = float(bc @ bc)
            b_beta = float(bc @ rm) / var_b if var_b > 1e-30 * rm.shape[0] else nan
            rf = risk_free_per_period[mask] if isinstance(risk_free_per_period, np.ndarray) else risk_free_per_period
            if math.isfinite(b_beta):
                b_alpha = (1.0 + float(np.mean((rm - rf) - b_beta * (bm - rf)))) ** ppy - 1.0
            active = rm - bm
            te = _std(active) * math.sqrt(ppy)
            ir = _ratio(float(active.mean()) * ppy, te)
    return ReturnStatistics(
        n,
        obs,
        total,
        annual,
        volatility,
        mdd,
        peak,
        trough_i,
        sharpe,
        sortino,
        downside,
        calmar,
        b_beta,
        b_alpha,
        te,
        ir,
    )


@dataclass(frozen=True)
class Performance:
    start: date | None
    end: date | None
    periods: int
    observations: int
    total_return: Decimal | None
    annual_return: Decimal | None
    volatility: Decimal | None
    max_drawdown: Decimal | None
    drawdown_peak: date | None
    drawdown_trough: date | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    beta: Decimal | None
    alpha: Decimal | None
    tracking_error: Decimal | None
    information_ratio: Decimal | None
    periods_per_year: int
    risk_free_per_period: Decimal
    net_flows: Decimal


def _series(
    rows: Iterable[tuple[date, Decimal]], field_name: str, *, positive: bool = False
) -> list[tuple[date, Decimal]]:
    out: dict[date, Decimal] = {}
    for i, row in enumerate(rows):
        if i >= MAX_DAYS + 1:
            raise InvalidInput(f"at most {MAX_DAYS + 1} rows", field=field_name, code="too_large")
        day, value = row
        if not isinstance(day, date):
            raise InvalidInput("a date is required", field=field_name, code="invalid_date")
        amount = _decimal(value, field_name)
        if abs(amount) > MAX_EXPOSURE:
            raise InvalidInput(f"{field_name} out of range", field=field_name, code="invalid_decimal")
        if positive and amount <= 0:
            raise InvalidInput(f"{field_name} on {day} is not positive", field=field_name, code="invalid_price")
        if day in out:
            raise InvalidInput(f"two {field_name} values on {day}", field=field_name, code="duplicate_date")
        out[day] = amount
    return sorted(out.items())


def time_weighted_returns(
    equity: Sequence[tuple[date, Decimal]], flows: Sequence[tuple[date, Decimal]] = ()
) -> tuple[tuple[date, ...], FloatArray, Decimal]:
    """(end dates, returns, net flows counted) of the time-weighted periods (module docstring)."""
    values = _series(equity, "equity")
    if len(flows) > MAX_DAYS * 10:
        raise InvalidInput("too many flows", field="flows", code="too_large")
    flow_rows: list[tuple[date, Decimal]] = []
    for day, amount in flows:
        if not isinstance(day, date):
            raise InvalidInput("a date is required", field="flows", code="invalid_date")
        flow_rows.append((day, _decimal(amount, "flows")))
    flow_rows.sort(key=lambda r: r[0])
    dates = tuple(d for d, _ in values[1:])
    out = np.full(len(dates), np.nan)
    j = 0
    counted = Decimal(0)
    while j < len(flow_rows) and values and flow_rows[j][0] <= values[0][0]:
        j += 1  # flows up to the first valuation are in its value already
    for t in range(1, len(values)):
        net = Decimal(0)
        while j < len(flow_rows) and flow_rows[j][0] <= values[t][0]:
            net += flow_rows[j][1]
            j += 1
        counted += net
        previous = values[t - 1][1]
        if previous > 0:
            out[t - 1] = float((values[t][1] - net) / previous - 1)
    return dates, out, counted


def performance(
    equity: Sequence[tuple[date, Decimal]],
    flows: Sequence[tuple[date, Decimal]] = (),
    benchmark: Sequence[tuple[date, Decimal]] | None = None,
    risk_free_annual: Decimal = Decimal(0),
    periods_per_year: int = 252,
) -> Performance:
    """Performance of an account from its valuations (equity) and its deposits/withdrawals."""
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int) or not 1 <= periods_per_year <= 366:
        raise InvalidInput("periods_per_year must be 1 to 366", field="periods_per_year")
    rf_annual = _decimal(risk_free_annual, "risk_free_annual")
    if not Decimal("-0.5") <= rf_annual <= 1:
        raise InvalidInput("risk_free_annual must be -0.5 to 1", field="risk_free_annual")
    dates, r, net_flows = time_weighted_returns(equity, flows)
    if len(dates) < 2:
        raise InsufficientHistory(len(dates), 2, "performance history")
    rf = (1.0 + float(rf_annual)) ** (1.0 / periods_per_year) - 1.0
    all_dates = (min(d for d, _ in equity), *dates)
    bench_r = None
    if benchmark is not None:
        closes = dict(_series(benchmark, "benchmark", positive=True))
        levels = np.array([float(closes[d]) if d in closes else np.nan for d in all_dates], dtype=np.float64)
        bench_r = levels[1:] / levels[:-1] - 1.0
    st = return_statistics(r, bench_r, risk_free_per_period=rf, periods_per_year=periods_per_year)
    return Performance(
        start=all_dates[0],
        end=all_dates[-1],
        periods=st.periods,
        observations=st.observations,
        total_return=_q(st.total_return, RATIO),
        annual_return=_q(st.annual_return, RATIO),
        volatility=_q(st.volatility, RATIO),
        max_drawdown=_q(st.max_drawdown, RATIO),
        drawdown_peak=None if st.drawdown_peak is None else all_dates[st.drawdown_peak],
        drawdown_trough=None if st.drawdown_trough is None else all_dates[st.drawdown_trough],
        sharpe=_q(st.sharpe, RATIO),
        sortino=_q(st.sortino, RATIO),
        calmar=_q(st.calmar, RATIO),
        beta=_q(st.beta, RATIO),
        alpha=_q(st.alpha, RATIO),
        tracking_error=_q(st.tracking_error, RATIO),
        information_ratio=_q(st.information_ratio, RATIO),
        periods_per_year=periods_per_year,
        risk_free_per_period=_q0(rf, Decimal("1e-10")),
        net_flows=net_flows,
    )


# -- correlation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correlation:
    symbols: tuple[str, ...]
    matrix: tuple[tuple[Decimal | None, ...], ...]  # 6 dp; None with fewer than 3 overlaps or no variance
    observations: tuple[tuple[int, ...], ...]  # overlapping daily returns of each pair
    values: FloatArray = field(repr=False, compare=False)  # float64, NaN where undefined


MIN_CORRELATION_OVERLAP: Final = 3


def correlation(returns: Returns) -> Correlation:
    """Pearson correlation of each pair of symbols over the days both have a return."""
    x = returns.pairwise if returns.pairwise is not None else returns.matrix
    k = len(returns.symbols)
    if k > MAX_POSITIONS:
        raise InvalidInput(f"at most {MAX_POSITIONS} symbols", field="symbols", code="too_many_symbols")
    present = np.isfinite(x)
    m = present.astype(np.float64)
    x0 = np.where(present, x, 0.0)
    counts = m.T @ m  # n_ij
    sx = x0.T @ m  # sum of x_i over the days j is present too
    sxx = (x0 * x0).T @ m
    sxy = x0.T @ x0
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = counts * sxy - sx * sx.T
        var_i = counts * sxx - sx * sx
        denom = np.sqrt(var_i * var_i.T)
        values = np.where((counts >= MIN_CORRELATION_OVERLAP) & (denom > 1e-300), cov / denom, np.nan)
    values = np.clip(values, -1.0, 1.0)
    for i in range(k):
        if math.isfinite(values[i, i]):
            values[i, i] = 1.0
    matrix = tuple(tuple(_q(float(v), RATIO) for v in row) for row in values)
    obs = tuple(tuple(int(c) for c in row) for row in counts)
    return Correlation(returns.symbols, matrix, obs, values)


# -- stress tests ----------------------------------------------------------------------------------

MAX_SHOCK_PCT: Final = Decimal(1000)
MIN_SHOCK_PCT: Final = Decimal(-100)


def _pct_value(value: Any, field_name: str) -> Decimal:
    pct = _decimal(value, field_name)
    if not MIN_SHOCK_PCT <= pct <= MAX_SHOCK_PCT:
        raise InvalidInput(f"{field_name} must be -100 to 1000 (percent)", field=field_name, code="invalid_shock")
    return pct


@dataclass(frozen=True)
class Scenario:
    """A stress scenario: moves in percent, per symbol, per sector, or market-wide (times beta)."""

    name: str
    description: str = ""
    market_pct: Decimal | None = None
    per_symbol_pct: Mapping[str, Decimal] = field(default_factory=dict)
    sector_pct: Mapping[str, Decimal] = field(default_factory=dict)
    as_of: date | None = None

    @classmethod
    def custom(
        cls,
        per_symbol_pct: Mapping[str, Decimal | str | int] | None = None,
        market_pct: Decimal | str | int | None = None,
        *,
        sector_pct: Mapping[str, Decimal | str | int] | None = None,
        name: str = "custom",
    ) -> Scenario:
        """A user's shock, validated: per-symbol moves and/or a market-wide move (percent)."""
        per_symbol = per_symbol_pct or {}
        sectors = sector_pct or {}
        if len(per_symbol) > MAX_POSITIONS or len(sectors) > MAX_POSITIONS:
            raise InvalidInput(f"at most {MAX_POSITIONS} shocks", field="shocks", code="too_many_shocks")
        if not per_symbol and not sectors and market_pct is None:
            raise InvalidInput("a shock needs per-symbol, sector or market moves", field="shocks", code="empty_shock")
        for key in (*per_symbol, *sectors):
            if not isinstance(key, str) or not key or len(key) > 64:
                raise InvalidInput("a shocked symbol or sector must be a short string", field="shocks")
        return cls(
            name=name,
            description="custom shock",
            market_pct=None if market_pct is None else _pct_value(market_pct, "market_pct"),
            per_symbol_pct={s: _pct_value(v, "per_symbol_pct") for s, v in per_symbol.items()},
            sector_pct={s: _pct_value(v, "sector_pct") for s, v in sectors.items()},
        )


def _load_scenarios() -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}
    for row in _scenario_data.HISTORICAL:
        out[row["name"]] = Scenario(
            name=row["name"],
            description=row.get("description", ""),
            market_pct=Decimal(row["market_pct"]) if "market_pct" in row else None,
            per_symbol_pct={k: Decimal(v) for k, v in row.get("per_symbol_pct", {}).items()},
            sector_pct={k: Decimal(v) for k, v in row.get("sector_pct", {}).items()},
            as_of=date.fromisoformat(row["as_of"]) if "as_of" in row else None,
        )
    return out


SCENARIOS: Final[Mapping[str, Scenario]] = _load_scenarios()


@dataclass(frozen=True)
class StressPosition:
    symbol: str
    exposure: Decimal
    shock_pct: Decimal  # the move applied, percent (4 dp)
    source: Literal["symbol", "sector", "market", "none"]
    beta: Decimal | None  # the beta that scaled a market move
    pnl: Decimal


@dataclass(frozen=True)
class StressResult:
    scenario: str
    positions: tuple[StressPosition, ...]
    total_pnl: Decimal
    total_pct: Decimal | None  # of gross exposure, percent


def stress(
    exposures: Mapping[str, Decimal],
    scenario: Scenario,
    betas: Mapping[str, float] | None = None,
    *,
    sectors: Mapping[str, str] | None = None,
) -> StressResult:
    """P&L of each position and in total under ``scenario``.

    A position's move is its symbol's move when the scenario names it, else its sector's, else the
    market move times its beta (``betas``; 1 when absent), floored at -100 %; the P&L is
    ``exposure * move / 100`` rounded to cents (half-even), the total the Decimal sum of those."""
    checked = _check_exposures(exposures)
    if betas is not None and len(betas) > MAX_POSITIONS * 2:
        raise InvalidInput("too many betas", field="betas", code="too_large")
    positions = []
    total = Decimal(0)
    gross = Decimal(0)
    for symbol, amount in checked.items():
        b_used: Decimal | None = None
        source: Literal["symbol", "sector", "market", "none"]
        sector = (sectors or {}).get(symbol)
        if symbol in scenario.per_symbol_pct:
            move, source = scenario.per_symbol_pct[symbol], "symbol"
        elif sector is not None and sector in scenario.sector_pct:
            move, source = scenario.sector_pct[sector], "sector"
        elif scenario.market_pct is not None:
            raw = (betas or {}).get(symbol, 1.0)
            if not isinstance(raw, (int, float, Decimal)) or isinstance(raw, bool) or not math.isfinite(float(raw)):
                raise InvalidInput(f"beta of {symbol} must be a finite number", field="betas")
            if abs(float(raw)) > 100:
                raise InvalidInput(f"beta of {symbol} out of range", field="betas")
            b_used = Decimal(float(raw)).quantize(PCT, rounding=ROUNDING)
            move, source = scenario.market_pct * b_used, "market"
        else:
            move, source = Decimal(0), "none"
        move = max(move, MIN_SHOCK_PCT).quantize(PCT, rounding=ROUNDING)
        pnl = (amount * move / 100).quantize(USD, rounding=ROUNDING)
        total += pnl
        gross += abs(amount)
        positions.append(StressPosition(symbol, amount, move, source, b_used, pnl))
    total_pct = (total * 100 / gross).quantize(PCT, rounding=ROUNDING) if gross else None
    return StressResult(scenario.name, tuple(positions), total, total_pct)


# -- backtesting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KupiecResult:
    exceptions: int
    observations: int
    expected: Decimal  # exceptions expected at the VaR's confidence (2 dp)
    lr_statistic: Decimal  # likelihood ratio, chi-squared with 1 degree of freedom (6 dp)
    p_value: Decimal  # 6 dp
    reject: bool  # the VaR model is rejected at the 5 % level


def _check_counts(exceptions: int, observations: int) -> None:
    for name, value in (("exceptions", exceptions), ("observations", observations)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{name} must be an integer", field=name)
    if not 1 <= observations <= MAX_BACKTEST_OBSERVATIONS:
        raise InvalidInput(f"observations must be 1 to {MAX_BACKTEST_OBSERVATIONS}", field="observations")
    if not 0 <= exceptions <= observations:
        raise InvalidInput("exceptions must be 0 to observations", field="exceptions")


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def kupiec(exceptions: int, observations: int, confidence: Decimal) -> KupiecResult:
    """Kupiec's proportion-of-failures test of a VaR model: H0 says the exception rate is 1 - c.

    ``LR = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]``, p = 1 - c, chi-squared(1);
    p-value ``erfc(sqrt(LR / 2))``."""
    _check_counts(exceptions, observations)
    c = check_confidence(confidence)
    p = float(1 - c)
    n, x = observations, exceptions
    rate = x / n
    log_h0 = _xlogy(n - x, 1 - p) + _xlogy(x, p)
    log_h1 = _xlogy(n - x, 1 - rate) + _xlogy(x, rate)
    lr = max(0.0, -2.0 * (log_h0 - log_h1))
    p_value = math.erfc(math.sqrt(lr / 2.0))
    return KupiecResult(
        x,
        n,
        _q0(n * p, USD),
        _q0(lr, RATIO),
        _q0(p_value, RATIO),
        p_value < 0.05,
    )


def binomial_cdf(exceptions: int, observations: int, probability: float) -> float:
    """P(X <= exceptions) for X ~ Binomial(observations, probability)."""
    if exceptions >= observations:
        return 1.0
    logs = [
        math.lgamma(observations + 1)
        - math.lgamma(i + 1)
        - math.lgamma(observations - i + 1)
        + _xlogy(i, probability)
        + _xlogy(observations - i, 1 - probability)
        for i in range(exceptions + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def basel_zone(exceptions: int, observations: int, *, confidence: Decimal = Decimal("0.99")) -> str:
    """The Basel traffic-light zone of a VaR backtest: ``green`` while the binomial probability of
    at most that many exceptions is below 95 %, ``red`` from 99.99 %, else ``yellow`` (for 250
    days at 99 %: 0-4 green, 5-9 yellow, 10+ red)."""
    _check_counts(exceptions, observations)
    c = check_confidence(confidence)
    cumulative = binomial_cdf(exceptions, observations, float(1 - c))
    if cumulative < 0.95:
        return "green"
    if cumulative < 0.9999:
        return "yellow"
    return "red"
