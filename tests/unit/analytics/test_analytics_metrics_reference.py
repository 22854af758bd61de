"""The analytics metrics against published reference values.

The return series and the expected values are empyrical's own (quantopian/empyrical,
``empyrical/tests/test_stats.py``, the last release): its ``mixed_returns``, ``negative_returns``,
``positive_returns``, ``simple_benchmark``, ``flat_line_1`` and ``weekly_returns``/``monthly_returns``
data, and the figures its tests assert to 8 decimals. We assert the float statistics to 1e-8 and
the reported Decimals (6 dp) to half a unit of their last place.

Where our conventions differ from empyrical's, the test says so:
- information ratio: empyrical's ``excess_sharpe`` is not annualised; ours is annualised
  (``mean(active) * ppy / tracking_error``), i.e. empyrical's value times ``sqrt(ppy)``;
- VaR is a positive loss: empyrical's ``value_at_risk`` is the (1 - c) percentile of the returns
  (a negative number for a loss), ours is minus that percentile times the exposure;
- a missing return (NaN) compounds as 0 and counts as a period when annualising, and is left out
  of means and deviations: empyrical's own treatment, so its values hold unchanged.

Parametric VaR and ES have no empyrical counterpart: they are checked against the standard normal
constants published for RiskMetrics and the Basel FRTB (z_0.99 = 2.326348, ES_0.99 = 2.665214,
ES_0.975 = 2.337803).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from nexus_analytics import metrics as m

D = Decimal
PLACES = 8
NAN = np.nan

# empyrical's test data (percent / 100), daily unless named otherwise
MIXED = np.array([NAN, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
NEGATIVE = np.array([0.0, -6.0, -7.0, -1.0, -9.0, -2.0, -6.0, -8.0, -5.0]) / 100
ALL_NEGATIVE = np.array([-2.0, -6.0, -7.0, -1.0, -9.0, -2.0, -6.0, -8.0, -5.0]) / 100
POSITIVE = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) / 100
SIMPLE_BENCHMARK = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]) / 100
FLAT_LINE_1 = np.full(9, 0.01)
WEEKLY = np.array([0.0, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100  # also empyrical's monthly


def near(actual: float, expected: float, places: int = PLACES) -> bool:
    return abs(actual - expected) < 1.5 * 10 ** (-places)


def decimal_near(actual: Decimal | None, expected: float) -> bool:
    """A reported 6-dp Decimal is the reference value rounded (half a unit of the 6th place)."""
    assert actual is not None
    return abs(float(actual) - expected) <= 0.5e-6 + 1e-12


# -- max drawdown, annual return, volatility, Calmar ------------------------------------------------


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        (MIXED, -0.1),
        (POSITIVE, -0.0),
        (SIMPLE_BENCHMARK, 0.0),
        (NEGATIVE, float(np.prod(1 + NEGATIVE) - 1)),  # empyrical: cum_returns_final(negative_returns)
        (ALL_NEGATIVE, float(np.prod(1 + ALL_NEGATIVE) - 1)),
        (np.array([10.0, -10.0, 10.0]) / 100, -0.10),
    ],
)
def test_max_drawdown_matches_empyrical(returns: np.ndarray, expected: float) -> None:
    # GIVEN one of empyrical's return series WHEN its statistics are computed
    stats = m.return_statistics(returns)
    # THEN the max drawdown is empyrical's (a fraction <= 0)
    assert near(stats.max_drawdown, expected)


@pytest.mark.parametrize(
    ("returns", "periods_per_year", "annual_return", "volatility", "calmar"),
    [
        (MIXED, 252, 1.9135925373194231, 0.9136465399704637, 19.135925373194233),
        (WEEKLY, 52, 0.24690830513998208, 0.38851569394870583, 2.4690830513998208),
        (WEEKLY, 12, 0.052242061386048144, 0.18663690238892558, 0.52242061386048144),
    ],
)
def test_annual_return_volatility_and_calmar_match_empyrical(
    returns: np.ndarray, periods_per_year: int, annual_return: float, volatility: float, calmar: float
) -> None:
    # GIVEN empyrical's daily, weekly and monthly series WHEN annualised with their periods per year
    stats = m.return_statistics(returns, periods_per_year=periods_per_year)
    # THEN the CAGR, the annualised volatility (ddof = 1) and Calmar are empyrical's
    assert near(stats.annual_return, annual_return)
    assert near(stats.volatility, volatility)
    assert near(stats.calmar, calmar)


# -- Sharpe and Sortino ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returns", "risk_free", "expected"),
    [
        (MIXED, 0.0, 1.7238613961706866),
        (MIXED, SIMPLE_BENCHMARK, 0.34111411441060574),
        (POSITIVE, 0.0, 52.915026221291804),
        (NEGATIVE, 0.0, -24.406808633910085),
    ],
)
def test_sharpe_ratio_matches_empyrical(returns: np.ndarray, risk_free: float | np.ndarray, expected: float) -> None:
    # GIVEN empyrical's series and risk-free returns per period WHEN the Sharpe ratio is computed
    stats = m.return_statistics(returns, risk_free_per_period=risk_free)
    # THEN it is empyrical's
    assert near(stats.sharpe, expected)


def test_sharpe_is_undefined_for_one_return_and_unbounded_for_a_flat_line() -> None:
    # GIVEN one return, and a flat line of 1 % a day (empyrical: NaN and inf)
    # WHEN their Sharpe ratios are computed
    one = m.return_statistics(np.array([0.01]))
    flat = m.return_statistics(FLAT_LINE_1)
    # THEN one return has none and the flat line's is infinite (reported as None, see performance)
    assert math.isnan(one.sharpe)
    assert flat.sharpe == math.inf


@pytest.mark.parametrize(
    ("returns", "required", "periods_per_year", "expected"),
    [
        (MIXED, 0.0, 252, 2.605531251673693),
        (MIXED, FLAT_LINE_1, 252, -1.3934779588919977),
        (NEGATIVE, 0.0, 252, -13.532743075043401),
        (WEEKLY, 0.0, 52, 1.1158901056866439),
        (WEEKLY, 0.0, 12, 0.53605626741889756),
    ],
)
def test_sortino_ratio_matches_empyrical(
    returns: np.ndarray, required: float | np.ndarray, periods_per_year: int, expected: float
) -> None:
    # GIVEN empyrical's series, the target return being the risk-free rate per period
    # WHEN Sortino is computed with the downside deviation over ALL observations
    stats = m.return_statistics(returns, risk_free_per_period=required, periods_per_year=periods_per_year)
    # THEN it is empyrical's
    assert near(stats.sortino, expected)


def test_sortino_without_a_downside_is_unbounded() -> None:
    # GIVEN empyrical's all-positive series WHEN Sortino is computed THEN it is +inf, as empyrical's
    assert m.return_statistics(POSITIVE).sortino == math.inf
    assert m.return_statistics(SIMPLE_BENCHMARK).sortino == math.inf


def test_downside_deviation_matches_empyrical_downside_risk() -> None:
    # GIVEN mixed_returns WHEN the downside deviation is computed (required return 0, daily)
    # THEN it is empyrical's downside_risk 0.60448325038829653
    assert near(m.return_statistics(MIXED).downside_deviation, 0.60448325038829653)


# -- alpha, beta, tracking error, information ratio -----------------------------------------------------


def test_alpha_and_beta_match_empyrical_on_partly_overlapping_series() -> None:
    # GIVEN mixed_returns and negative_returns[1:] aligned on dates (the first benchmark day missing)
    benchmark = np.concatenate(([NAN], NEGATIVE[1:]))
    # WHEN alpha and beta are computed over the periods both have
    stats = m.return_statistics(MIXED, benchmark)
    # THEN they are empyrical's alpha_beta: (-0.9997853834885004, -0.71296296296296313)
    assert near(stats.alpha, -0.9997853834885004)
    assert near(stats.beta, -0.71296296296296313)


@pytest.mark.parametrize(("sign", "expected_beta"), [(1.0, 1.0), (-1.0, -1.0)])
def test_alpha_and_beta_against_itself_match_empyrical(sign: float, expected_beta: float) -> None:
    # GIVEN mixed_returns against itself and against its negation
    stats = m.return_statistics(MIXED, sign * MIXED)
    # THEN alpha is 0 and beta +1 / -1 (empyrical's test_alpha_beta)
    assert near(stats.alpha, 0.0)
    assert near(stats.beta, expected_beta)


@pytest.mark.parametrize(
    ("benchmark", "excess_sharpe"),
    [(np.zeros(9), 0.10859306069076737), (FLAT_LINE_1, -0.06515583641446039)],
)
def test_information_ratio_is_empyrical_excess_sharpe_annualised(benchmark: np.ndarray, excess_sharpe: float) -> None:
    # GIVEN mixed_returns against a zero and a 1 %-a-day benchmark
    stats = m.return_statistics(MIXED, benchmark)
    # THEN our (annualised) information ratio is empyrical's excess_sharpe times sqrt(252)
    assert near(stats.information_ratio, excess_sharpe * math.sqrt(252), PLACES - 1)


def test_beta_function_of_scaled_and_inverted_series_matches_empyrical() -> None:
    # GIVEN noise and its multiples (empyrical's test_beta: noise, 2*noise, inverted noise)
    noise = np.random.default_rng(1337).normal(0, 0.001, 1000)
    # THEN the betas are 1, 2, -1 and -2
    assert near(m.beta(noise, noise), 1.0)
    assert near(m.beta(2 * noise, noise), 2.0)
    assert near(m.beta(noise, -noise), -1.0)
    assert near(m.beta(2 * noise, -noise), -2.0)


# -- VaR and ES (historical) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pnl", "confidence", "empyrical_var"),
    [
        ([1.0, 2.0], 0.7, 1.3),
        ([1, 81, 82, 83, 84, 85], 0.9, 41),
        ([1, 81, 82, 83, 84, 85], 0.8, 81),
        ([1, 81, 82, 83, 84, 85], 0.7, 81.5),
    ],
)
def test_historical_var_is_minus_empyrical_value_at_risk(
    pnl: list[float], confidence: float, empyrical_var: float
) -> None:
    # GIVEN empyrical's value_at_risk cases (cutoff = 1 - confidence)
    var, _ = m.historical_var_es(np.array(pnl, dtype=float), confidence)
    # THEN our loss VaR is minus its percentile (here gains, so negative losses)
    assert near(var, -empyrical_var)


@pytest.mark.parametrize("cutoff", [0.0499, 0.05, 0.20])
def test_historical_es_is_empyrical_conditional_value_at_risk(cutoff: float) -> None:
    # GIVEN 21 normal returns (empyrical's test stream: N(0, 0.02), 21 points)
    returns = np.random.RandomState(1337).normal(0, 0.02, 21)
    # WHEN VaR and ES are computed at confidence 1 - cutoff
    var, es = m.historical_var_es(returns, 1 - cutoff)
    # THEN VaR is minus numpy's percentile, ES minus the mean of the returns at or below it
    percentile = np.percentile(returns, cutoff * 100)
    assert near(var, -percentile)
    assert near(es, -float(np.mean(returns[returns <= percentile])))


def test_value_at_risk_of_one_position_is_exposure_times_the_return_percentile() -> None:
    # GIVEN 60 daily returns of one symbol and a $250,000 long position
    rng = np.random.default_rng(7)
    r = rng.normal(0, 0.015, 60)
    returns = m.Returns.from_matrix(r[:, None], ["AAPL"])
    # WHEN the 95 % one-day historical VaR and ES are computed
    figure = m.value_at_risk("historical", {"AAPL": D("250000")}, returns, D("0.95"), 1, equity=D("500000"))
    # THEN they are -exposure x empyrical's VaR and CVaR of the returns, in cents, and as % of equity
    percentile = np.percentile(r, 5)
    expected_var = D(-250000 * percentile).quantize(D("0.01"))
    expected_es = D(-250000 * float(np.mean(r[r <= percentile]))).quantize(D("0.01"))
    assert abs(figure.var - expected_var) <= D("0.01")
    assert abs(figure.expected_shortfall - expected_es) <= D("0.01")
    assert figure.var_pct == (figure.var * 100 / D("500000")).quantize(D("0.0001"))


# -- parametric constants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "var_multiple", "es_multiple"),
    [("0.99", 2.326348, 2.665214), ("0.975", 1.959964, 2.337803), ("0.95", 1.644854, 2.062713)],
)
def test_parametric_var_and_es_of_one_position_are_the_normal_multiples(
    confidence: str, var_multiple: float, es_multiple: float
) -> None:
    # GIVEN one position of $1,000,000 whose daily returns have a sample deviation of exactly 1 %
    r = np.array([0.01, -0.01] * 20)
    r = r / np.std(r, ddof=1) * 0.01
    returns = m.Returns.from_matrix(r[:, None], ["SPY"])
    # WHEN the parametric VaR and ES are computed for 1 and 10 days
    one = m.value_at_risk("parametric", {"SPY": D("1000000")}, returns, D(confidence), 1)
    ten = m.value_at_risk("parametric", {"SPY": D("1000000")}, returns, D(confidence), 10)
    # THEN they are the published normal multiples of sigma (z_c and phi(z_c)/(1-c)), sqrt-of-time scaled
    assert abs(float(one.var) - var_multiple * 10_000) < 0.01 + 1e-6 * 10_000
    assert abs(float(one.expected_shortfall) - es_multiple * 10_000) < 0.01 + 1e-6 * 10_000
    assert abs(float(ten.var) - var_multiple * 10_000 * math.sqrt(10)) < 0.05
    assert abs(float(ten.expected_shortfall) - es_multiple * 10_000 * math.sqrt(10)) < 0.05


# -- performance from an equity curve --------------------------------------------------------------------


def equity_curve(
    returns: np.ndarray, start: date, step: timedelta, flows: dict[int, Decimal] | None = None
) -> list[tuple[date, Decimal]]:
    """Valuations growing by ``returns``, a flow landing at the end of its period: V_t = V_{t-1}(1 + r_t) + F_t."""
    value = D("10000")
    curve = [(start, value)]
    for i, r in enumerate(returns, start=1):
        value = (value * (1 + D(repr(float(r)))) + (flows or {}).get(i, D(0))).quantize(D("0.000001"))
        curve.append((start + i * step, value))
    return curve


def test_performance_of_weekly_valuations_reports_empyrical_figures() -> None:
    # GIVEN weekly valuations following empyrical's weekly_returns, and a deposit and a withdrawal
    start = date(2000, 1, 30)
    curve = equity_curve(WEEKLY, start, timedelta(weeks=1), {3: D("5000.00"), 6: D("-2500.00")})
    flows = [(curve[3][0], D("5000.00")), (curve[6][0], D("-2500.00"))]
    # WHEN the performance is computed with 52 periods a year
    perf = m.performance(curve, flows, periods_per_year=52)
    # THEN the time-weighted figures are empyrical's (the flows are not performance)
    assert decimal_near(perf.annual_return, 0.24690830513998208)
    assert decimal_near(perf.volatility, 0.38851569394870583)
    assert decimal_near(perf.calmar, 2.4690830513998208)
    assert decimal_near(perf.sortino, 1.1158901056866439)
    assert decimal_near(perf.max_drawdown, -0.1)
    # AND the drawdown runs from the peak before the last week to the last week
    assert perf.drawdown_peak == curve[8][0]
    assert perf.drawdown_trough == curve[9][0]
    assert perf.net_flows == D("2500.00")
    assert perf.periods == 9


def test_performance_against_a_benchmark_reports_empyrical_beta() -> None:
    # GIVEN daily valuations following positive_returns and a benchmark following negative_returns
    start = date(2000, 1, 30)
    curve = equity_curve(POSITIVE, start, timedelta(days=1))
    bench = equity_curve(NEGATIVE, start, timedelta(days=1))
    # WHEN the performance is computed against it
    perf = m.performance(curve, benchmark=bench)
    stats = m.return_statistics(POSITIVE, NEGATIVE)
    # THEN Sharpe is empyrical's, and beta, alpha, tracking error and IR are those of the returns
    assert decimal_near(perf.sharpe, 52.915026221291804)
    assert decimal_near(perf.beta, stats.beta)
    assert decimal_near(perf.alpha, stats.alpha)
    assert decimal_near(perf.tracking_error, stats.tracking_error)
    assert decimal_near(perf.information_ratio, stats.information_ratio)
    assert perf.beta is not None and float(perf.beta) == pytest.approx(
        float(np.cov(POSITIVE, NEGATIVE)[0, 1] / np.var(NEGATIVE, ddof=1)), abs=1e-6
    )
