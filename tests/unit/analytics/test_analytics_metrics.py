"""The analytics calculation library: VaR properties, risk decomposition, a VaR backtest, stress
tests, correlation, returns alignment and bad inputs. Reference values (empyrical) are in
``test_analytics_metrics_reference.py``. Property tests draw small bounded examples."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_analytics import metrics as m

D = Decimal
CENT = D("0.01")
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def correlated_returns(seed: int, days: int, symbols: int, *, fat_tails: bool = False) -> np.ndarray:
    """Daily returns with a common market factor (vol about 1-2 %), seeded."""
    rng = np.random.default_rng(seed)
    market = rng.standard_t(4, days) * 0.008 if fat_tails else rng.normal(0, 0.01, days)
    loadings = rng.uniform(0.5, 1.5, symbols)
    idio = rng.normal(0, 0.01, (days, symbols))
    return np.outer(market, loadings) + idio


def universe(seed: int, days: int, symbols: int) -> m.Returns:
    return m.Returns.from_matrix(correlated_returns(seed, days, symbols), [f"S{i}" for i in range(symbols)])


exposure_amounts = st.integers(min_value=-500_000, max_value=500_000).map(lambda cents: D(cents) * 100 / 100)
methods = st.sampled_from(m.METHODS)


def portfolio(amounts: list[Decimal]) -> dict[str, Decimal]:
    return {f"S{i}": amount for i, amount in enumerate(amounts)}


def run(
    method: str, exposures: dict[str, Decimal], returns: m.Returns, confidence: Decimal, horizon: int = 1
) -> m.RiskFigure:
    return m.value_at_risk(method, exposures, returns, confidence, horizon, simulations=2_000, seed=11)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------------------


@PROPERTY
@given(
    method=methods,
    seed=st.integers(0, 10_000),
    amounts=st.lists(exposure_amounts, min_size=1, max_size=5),
    confidence=st.sampled_from([D("0.9"), D("0.95"), D("0.975"), D("0.99")]),
    horizon=st.integers(1, 10),
)
def test_component_var_sums_to_the_total_for_every_method(
    method: str, seed: int, amounts: list[Decimal], confidence: Decimal, horizon: int
) -> None:
    # GIVEN a portfolio of up to 5 long and short positions over 150 days of correlated returns
    returns = universe(seed, 150, len(amounts))
    # WHEN its VaR is decomposed
    dec = m.risk_decomposition(method, portfolio(amounts), returns, confidence, horizon, simulations=2_000, seed=seed)  # type: ignore[arg-type]
    # THEN the component VaRs add up to the total exactly (in cents), and the total is the VaR
    assert sum((p.component_var for p in dec.positions), D(0)) == dec.total
    assert dec.total == run_seeded(method, portfolio(amounts), returns, confidence, horizon, seed).var
    # AND each component is its exposure times its marginal VaR (to the marginal's 6 dp)
    for p in dec.positions:
        assert abs(p.component_var - p.exposure * p.marginal_var) <= abs(p.exposure) * D("0.000001") + D("0.05")


def run_seeded(
    method: str, exposures: dict[str, Decimal], returns: m.Returns, c: Decimal, h: int, seed: int
) -> m.RiskFigure:
    return m.value_at_risk(method, exposures, returns, c, h, simulations=2_000, seed=seed)  # type: ignore[arg-type]


@PROPERTY
@given(
    method=methods,
    seed=st.integers(0, 10_000),
    amounts=st.lists(exposure_amounts, min_size=1, max_size=4),
    levels=st.lists(st.integers(51, 99), min_size=2, max_size=2, unique=True),
)
def test_var_is_monotone_in_confidence_and_es_is_at_least_var(
    method: str, seed: int, amounts: list[Decimal], levels: list[int]
) -> None:
    # GIVEN a portfolio and two confidence levels c1 < c2
    returns = universe(seed, 120, len(amounts))
    low, high = (D(x) / 100 for x in sorted(levels))
    # WHEN VaR and ES are computed at both (Monte Carlo: the same seeded draws)
    a = run(method, portfolio(amounts), returns, low)
    b = run(method, portfolio(amounts), returns, high)
    # THEN VaR(c1) <= VaR(c2), and ES >= VaR at each
    assert a.var <= b.var
    assert a.expected_shortfall >= a.var
    assert b.expected_shortfall >= b.var
    assert a.var >= 0


@PROPERTY
@given(
    seed=st.integers(0, 10_000),
    amount=st.integers(-1_000_000, 1_000_000).filter(lambda x: x != 0).map(D),
    confidence=st.sampled_from([D("0.9"), D("0.95"), D("0.99")]),
    horizon=st.integers(1, 30),
)
def test_one_position_portfolio_equals_the_single_asset_formulas(
    seed: int, amount: Decimal, confidence: Decimal, horizon: int
) -> None:
    # GIVEN one position over 160 daily returns
    r = correlated_returns(seed, 160, 1)[:, 0]
    returns = m.Returns.from_matrix(r[:, None], ["X"])
    c = float(confidence)
    # WHEN its parametric and historical VaR are computed
    param = m.value_at_risk("parametric", {"X": amount}, returns, confidence, horizon)
    hist = m.value_at_risk("historical", {"X": amount}, returns, confidence, horizon)
    # THEN parametric is |e| z_c sigma sqrt(h), ES |e| phi(z_c) / (1 - c) sigma sqrt(h)
    z = NormalDist().inv_cdf(c)
    sigma = float(np.std(r, ddof=1))
    e = abs(float(amount))
    assert abs(float(param.var) - e * z * sigma * math.sqrt(horizon)) <= 0.006
    assert (
        abs(float(param.expected_shortfall) - e * NormalDist().pdf(z) / (1 - c) * sigma * math.sqrt(horizon)) <= 0.006
    )
    # AND historical is minus the (1 - c) percentile of the overlapping h-day P&L sums (floored at 0)
    pnl = float(amount) * np.array([r[i : i + horizon].sum() for i in range(len(r) - horizon + 1)])
    expected = max(0.0, -float(np.percentile(pnl, 100 * (1 - c))))
    assert abs(float(hist.var) - expected) <= 0.006


@PROPERTY
@given(seed=st.integers(0, 10_000), amounts=st.lists(exposure_amounts, min_size=1, max_size=4))
def test_parametric_var_scales_with_the_square_root_of_time(seed: int, amounts: list[Decimal]) -> None:
    # GIVEN a portfolio WHEN its 1-day and 25-day parametric VaR are computed
    returns = universe(seed, 90, len(amounts))
    one = m.value_at_risk("parametric", portfolio(amounts), returns, D("0.99"), 1)
    many = m.value_at_risk("parametric", portfolio(amounts), returns, D("0.99"), 25)
    # THEN the 25-day figure is 5 times the 1-day one (to the cent rounding)
    assert abs(many.var - one.var * 5) <= D("0.03")


# -- Monte Carlo ------------------------------------------------------------------------------------


def test_monte_carlo_normal_agrees_with_parametric_and_is_reproducible() -> None:
    # GIVEN a 3-position portfolio over 500 days
    returns = universe(3, 500, 3)
    exposures = {"S0": D("100000"), "S1": D("-40000"), "S2": D("75000")}
    # WHEN its 99 % 10-day VaR is computed by parametric and by Monte Carlo (normal, 20,000 draws)
    param = m.value_at_risk("parametric", exposures, returns, D("0.99"), 10)
    mc = m.value_at_risk("monte_carlo", exposures, returns, D("0.99"), 10, simulations=20_000, seed=5)
    again = m.value_at_risk("monte_carlo", exposures, returns, D("0.99"), 10, simulations=20_000, seed=5)
    other = m.value_at_risk("monte_carlo", exposures, returns, D("0.99"), 10, simulations=20_000, seed=6)
    # THEN Monte Carlo is within 4 % of the closed form, the same seed gives the same figure, another seed another
    assert abs(mc.var - param.var) / param.var < D("0.04")
    assert abs(mc.expected_shortfall - param.expected_shortfall) / param.expected_shortfall < D("0.05")
    assert again == mc
    assert other.var != mc.var
    assert mc.scenarios == 20_000 and mc.distribution == "normal"


def test_student_t_monte_carlo_has_the_same_variance_and_fatter_tails() -> None:
    # GIVEN one position WHEN simulated with normal and Student-t (5 degrees of freedom) draws
    returns = universe(4, 300, 1)
    exposures = {"S0": D("1000000")}
    normal = m.value_at_risk("monte_carlo", exposures, returns, D("0.995"), 1, simulations=40_000, seed=1)
    fat = m.value_at_risk(
        "monte_carlo", exposures, returns, D("0.995"), 1, simulations=40_000, seed=1, distribution="t"
    )
    # THEN the t tail is heavier: a larger 99.5 % VaR and a larger ES / VaR ratio
    assert fat.var > normal.var
    assert fat.expected_shortfall / fat.var > normal.expected_shortfall / normal.var
    # AND at a moderate level (where a unit-variance t lies inside the normal) its VaR is smaller
    fat_90 = m.value_at_risk(
        "monte_carlo", exposures, returns, D("0.9"), 1, simulations=40_000, seed=1, distribution="t"
    )
    normal_90 = m.value_at_risk("monte_carlo", exposures, returns, D("0.9"), 1, simulations=40_000, seed=1)
    assert fat_90.var < normal_90.var


def test_parametric_decomposition_is_the_exact_euler_allocation() -> None:
    # GIVEN two positions over 250 days
    r = correlated_returns(8, 250, 2)
    returns = m.Returns.from_matrix(r, ["A", "B"])
    e = np.array([200_000.0, 50_000.0])
    # WHEN the parametric VaR is decomposed
    dec = m.risk_decomposition("parametric", {"A": D("200000"), "B": D("50000")}, returns, D("0.99"))
    # THEN marginal VaR_i = z (S e)_i / sigma_p, component_i = e_i marginal_i
    cov = np.cov(r, rowvar=False, ddof=1)
    sigma = math.sqrt(e @ cov @ e)
    z = NormalDist().inv_cdf(0.99)
    marginal = z * (cov @ e) / sigma
    for p, g, exposure in zip(dec.positions, marginal, e, strict=True):
        assert abs(float(p.marginal_var) - g) < 1e-6
        assert abs(float(p.component_var) - exposure * g) < 0.02
    assert sum((p.share for p in dec.positions), D(0)) == pytest.approx(D(1), abs=D("0.000002"))


def test_monte_carlo_decomposition_estimates_the_exact_euler_shares() -> None:
    # GIVEN a long/short portfolio of 3 positions whose exact (parametric) Euler shares are known
    returns = universe(3, 500, 3)
    exposures = {"S0": D("100000"), "S1": D("-40000"), "S2": D("75000")}
    exact = m.risk_decomposition("parametric", exposures, returns, D("0.99"))
    # WHEN the normal Monte Carlo VaR (same covariance) is decomposed with its kernel estimator
    estimated = m.risk_decomposition("monte_carlo", exposures, returns, D("0.99"), simulations=40_000, seed=1)
    # THEN each share is within 0.08 of the exact one (its seed-to-seed deviation is about 0.02)
    for e, s in zip(exact.positions, estimated.positions, strict=True):
        assert abs(e.share - s.share) < D("0.08"), (e, s)
    assert sum((p.component_var for p in estimated.positions), D(0)) == estimated.total


def test_a_hedged_position_has_a_negative_component() -> None:
    # GIVEN a long and a short position in two highly correlated symbols, the long the larger
    r = correlated_returns(9, 300, 2)
    r[:, 1] = r[:, 0] * 0.95 + np.random.default_rng(2).normal(0, 0.001, 300)
    returns = m.Returns.from_matrix(r, ["LONG", "HEDGE"])
    # WHEN the historical VaR is decomposed
    dec = m.risk_decomposition("historical", {"LONG": D("100000"), "HEDGE": D("-60000")}, returns, D("0.95"))
    # THEN the hedge reduces the risk: its component is negative, the long's above the total
    long, hedge = dec.positions
    assert hedge.component_var < 0 < dec.total < long.component_var


# -- empty portfolio, history --------------------------------------------------------------------------


@pytest.mark.parametrize("method", m.METHODS)
def test_an_empty_portfolio_has_zero_risk_not_an_error(method: str) -> None:
    # GIVEN no positions and no history WHEN VaR and its decomposition are asked
    empty = m.Returns.from_matrix(np.zeros((0, 0)), [])
    figure = m.value_at_risk(method, {}, empty, D("0.99"), 1, equity=D("1000"))  # type: ignore[arg-type]
    dec = m.risk_decomposition(method, {}, empty, D("0.99"))  # type: ignore[arg-type]
    # THEN they are zero
    assert figure.var == figure.expected_shortfall == D("0.00")
    assert figure.var_pct == D("0.0000")
    assert dec.total == D("0.00") and dec.positions == ()


@pytest.mark.parametrize(
    ("method", "confidence", "horizon", "needed"),
    [
        ("historical", "0.99", 1, 100),
        ("historical", "0.95", 10, 39),
        ("historical", "0.999", 1, 1000),
        ("parametric", "0.99", 1, 30),
        ("monte_carlo", "0.99", 30, 30),
    ],
)
def test_too_little_history_says_how_much_is_available_and_needed(
    method: str, confidence: str, horizon: int, needed: int
) -> None:
    # GIVEN 29 days of returns
    returns = universe(1, 29, 2)
    # WHEN a VaR is asked THEN InsufficientHistory gives the days available and needed
    with pytest.raises(m.InsufficientHistory) as caught:
        m.value_at_risk(method, {"S0": D("100")}, returns, D(confidence), horizon)  # type: ignore[arg-type]
    assert (caught.value.available, caught.value.needed) == (29, needed)
    assert isinstance(caught.value, ValueError)


# -- backtest -----------------------------------------------------------------------------------------


def test_historical_var_backtest_over_250_days_is_in_the_basel_green_zone() -> None:
    # GIVEN 500 simulated days (one seeded path) of a two-stock portfolio with i.i.d. normal returns.
    # The count is a random variable: under a correct model about 89 % of 250-day paths are green
    # (P[X <= 4] for Binomial(250, 1 %)); with a fat-tailed market factor (t, 4 dof) a 250-day
    # historical window under-covers and about a quarter of paths land in yellow.
    r = correlated_returns(2024, 500, 2)
    exposures = {"S0": D("600000"), "S1": D("400000")}
    weights = np.array([600_000.0, 400_000.0])
    # WHEN each of the last 250 days is compared with the 99 % one-day historical VaR of the 250 days before
    exceptions = 0
    for t in range(250, 500):
        window = m.Returns.from_matrix(r[t - 250 : t], ["S0", "S1"])
        var = m.value_at_risk("historical", exposures, window, D("0.99"), 1).var
        loss = -float(r[t] @ weights)
        exceptions += loss > float(var)
    # THEN the exception count is in the Basel green zone and Kupiec does not reject the model
    zone = m.basel_zone(exceptions, 250)
    test = m.kupiec(exceptions, 250, D("0.99"))
    print(f"backtest: {exceptions} exceptions in 250 days, zone {zone}, Kupiec LR {test.lr_statistic} p {test.p_value}")
    assert zone == "green"
    assert not test.reject
    assert test.expected == D("2.50")


@pytest.mark.parametrize(
    ("exceptions", "zone"), [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red"), (30, "red")]
)
def test_basel_zones_for_250_days_are_the_published_table(exceptions: int, zone: str) -> None:
    # GIVEN 250 days of a 99 % VaR WHEN the zone is read THEN it is Basel's table (0-4, 5-9, 10+)
    assert m.basel_zone(exceptions, 250) == zone


def test_kupiec_statistic_matches_the_closed_form() -> None:
    # GIVEN 8 exceptions in 250 days at 99 %
    result = m.kupiec(8, 250, D("0.99"))
    # THEN LR = -2 ln[(0.99^242 0.01^8) / ((242/250)^242 (8/250)^8)] and the model is rejected at 5 %
    lr = -2 * (242 * math.log(0.99) + 8 * math.log(0.01) - 242 * math.log(242 / 250) - 8 * math.log(8 / 250))
    assert abs(float(result.lr_statistic) - lr) < 1e-6
    assert abs(float(result.p_value) - math.erfc(math.sqrt(lr / 2))) < 1e-6
    assert result.reject
    assert m.kupiec(0, 250, D("0.99")).lr_statistic == D(-2 * 250 * math.log(0.99)).quantize(D("0.000001"))


# -- stress tests ------------------------------------------------------------------------------------


def test_named_scenarios_include_the_crash_days_and_a_rates_shock() -> None:
    # GIVEN the scenario data THEN the 2008 crash day, March 2020 and a rates shock are there
    assert m.SCENARIOS["gfc_2008_10_15"].market_pct == D("-9.03")
    assert m.SCENARIOS["gfc_2008_10_15"].as_of == date(2008, 10, 15)
    assert m.SCENARIOS["covid_2020_03_16"].market_pct == D("-11.98")
    assert m.SCENARIOS["covid_2020_03_16"].as_of == date(2020, 3, 16)
    assert any("rates" in name for name in m.SCENARIOS)


def test_market_scenario_scales_each_position_by_its_beta() -> None:
    # GIVEN a long with beta 1.5, a short with beta 0.8, and a symbol without a beta (taken as 1)
    exposures = {"AAPL": D("10000.00"), "MSFT": D("-5000.00"), "XYZ": D("2000.00")}
    # WHEN the 2008 crash day is applied
    result = m.stress(exposures, m.SCENARIOS["gfc_2008_10_15"], {"AAPL": 1.5, "MSFT": 0.8})
    # THEN each P&L is exposure x (-9.03 % x beta), in cents, and the total is their Decimal sum
    pnl = {p.symbol: p.pnl for p in result.positions}
    assert pnl == {"AAPL": D("-1354.50"), "MSFT": D("361.20"), "XYZ": D("-180.60")}
    assert result.total_pnl == D("-1173.90")
    assert all(isinstance(p.pnl, Decimal) for p in result.positions)
    assert [p.source for p in result.positions] == ["market", "market", "market"]


def test_custom_shock_per_symbol_takes_precedence_over_the_market_move() -> None:
    # GIVEN a custom shock: AAPL -20 %, and the market -5 % for the rest
    scenario = m.Scenario.custom(per_symbol_pct={"AAPL": D("-20")}, market_pct=D("-5"))
    # WHEN applied to two positions, one with a beta of 3 (its move floored at -100 %)
    result = m.stress({"AAPL": D("1000"), "TSLA": D("1000")}, scenario, {"TSLA": 30.0})
    # THEN AAPL loses 20 % and TSLA cannot lose more than its value
    by = {p.symbol: p for p in result.positions}
    assert by["AAPL"].pnl == D("-200.00") and by["AAPL"].source == "symbol"
    assert by["TSLA"].shock_pct == D("-100.0000") and by["TSLA"].pnl == D("-1000.00")
    assert result.total_pnl == D("-1200.00")
    assert result.total_pct == D("-60.0000")


def test_sector_moves_apply_to_the_positions_of_the_sector() -> None:
    # GIVEN a shock of -7 % on Technology and -2 % on the market
    scenario = m.Scenario.custom(market_pct="-2", sector_pct={"Technology": "-7"})
    # WHEN applied with sectors
    result = m.stress({"AAPL": D("100"), "XOM": D("100")}, scenario, sectors={"AAPL": "Technology", "XOM": "Energy"})
    # THEN the tech position takes the sector move and the other the market move
    assert [(p.symbol, p.pnl, p.source) for p in result.positions] == [
        ("AAPL", D("-7.00"), "sector"),
        ("XOM", D("-2.00"), "market"),
    ]


# -- returns, correlation, factor exposure ---------------------------------------------------------------


def closes(start: date, prices: list[str], skip: set[int] = frozenset()) -> list[tuple[date, Decimal]]:  # type: ignore[assignment]
    return [(start + timedelta(days=i), D(p)) for i, p in enumerate(prices) if i not in skip]


def test_returns_are_aligned_on_common_dates_and_a_gap_is_spanned() -> None:
    # GIVEN two symbols, B missing the third day
    start = date(2026, 1, 5)
    data = {"A": closes(start, ["100", "110", "99", "99"]), "B": closes(start, ["50", "50", "55", "60.5"], skip={2})}
    # WHEN their returns are built
    returns = m.returns_matrix(data)
    # THEN the common dates drop day 3 and A's next return spans the gap (110 -> 99)
    assert returns.dates == (start + timedelta(days=1), start + timedelta(days=3))
    assert returns.observations == 2
    np.testing.assert_allclose(returns.matrix, [[0.10, 0.0], [-0.10, 0.21]])
    # AND a lookback keeps the last returns
    assert m.returns_matrix(data, lookback_days=1).observations == 1


def test_correlation_is_pearson_with_the_overlapping_observations_of_each_pair() -> None:
    # GIVEN three symbols over 40 days, C missing 10 days
    rng = np.random.default_rng(12)
    start = date(2025, 1, 1)
    prices = 100 * np.cumprod(1 + correlated_returns(12, 41, 3), axis=0)
    missing = set(rng.choice(range(1, 41), 10, replace=False).tolist())
    data = {
        s: closes(start, [f"{v:.4f}" for v in prices[:, j]], skip=missing if s == "C" else set())
        for j, s in enumerate("ABC")
    }
    # WHEN the correlation matrix is computed
    corr = m.correlation(m.returns_matrix(data))
    # THEN each pair's value is numpy's Pearson over the days both have, with that count
    pairwise = m.returns_matrix(data).pairwise
    assert pairwise is not None
    for i in range(3):
        for j in range(3):
            both = np.isfinite(pairwise[:, i]) & np.isfinite(pairwise[:, j])
            assert corr.observations[i][j] == int(both.sum())
            expected = np.corrcoef(pairwise[both, i], pairwise[both, j])[0, 1]
            got = corr.matrix[i][j]
            assert got is not None and abs(float(got) - expected) <= 0.5e-6 + 1e-9
    assert corr.observations[0][1] == 40 and corr.observations[0][2] < 40
    assert corr.matrix[0][0] == D("1.000000")


def test_factor_exposure_gives_betas_and_sectors() -> None:
    # GIVEN an index and two stocks with betas of about 2 and 0.5 to it
    rng = np.random.default_rng(3)
    index = rng.normal(0, 0.01, 300)
    r = np.column_stack([index, 2 * index + rng.normal(0, 0.002, 300), 0.5 * index + rng.normal(0, 0.002, 300)])
    returns = m.Returns.from_matrix(r, ["SPX", "HI", "LO"])
    # WHEN the exposure to SPX is computed with sectors
    fx = m.factor_exposure({"HI": D("1000"), "LO": D("3000")}, returns, "SPX", {"HI": "Technology"})
    # THEN the betas are near 2 and 0.5, the beta exposure their Decimal sum, and sectors are grouped
    betas = {p.symbol: p.beta for p in fx.positions}
    assert abs(float(betas["HI"] or 0) - 2) < 0.05 and abs(float(betas["LO"] or 0) - 0.5) < 0.05
    assert fx.beta_exposure == sum((p.beta_exposure or D(0) for p in fx.positions), D(0))
    assert fx.portfolio_beta == (fx.beta_exposure / D("4000")).quantize(D("0.000001"))
    assert [(s.sector, s.gross) for s in fx.sectors] == [("Unclassified", D("3000")), ("Technology", D("1000"))]


def test_an_account_funded_after_the_start_has_no_return_before_and_the_deposit_is_no_performance() -> None:
    # GIVEN an empty account for two days, a 1,000 deposit on day 3, then 1 % up and 2 % down
    day = date(2026, 3, 2)
    equity = [(day, D("0")), (day + timedelta(1), D("0")), (day + timedelta(2), D("1000.00")),
              (day + timedelta(3), D("1010.00")), (day + timedelta(4), D("989.80"))]  # fmt: skip
    flows = [(day + timedelta(2), D("1000.00"))]
    # WHEN its performance is computed
    perf = m.performance(equity, flows)
    # THEN the periods from zero equity have no return, and the rest compound to +1 % x -2 %
    assert perf.periods == 4 and perf.observations == 2
    assert perf.total_return == D("-0.010200")
    assert perf.max_drawdown == D("-0.020000")
    assert (perf.drawdown_peak, perf.drawdown_trough) == (day + timedelta(3), day + timedelta(4))
    assert perf.net_flows == D("1000.00")


# -- bad inputs -----------------------------------------------------------------------------------------


RET = universe(5, 200, 3)


@pytest.mark.parametrize("confidence", ["0.5", "1", "1.2", "0", "-0.9", "NaN", "Infinity", "abc", "0.5000000000001234"])
def test_a_confidence_outside_the_open_interval_is_refused(confidence: str) -> None:
    # GIVEN a confidence outside (0.5, 1) or not a number WHEN VaR is asked THEN InvalidInput on confidence
    with pytest.raises(m.InvalidInput) as caught:
        m.value_at_risk("historical", {"S0": D("1")}, RET, confidence, 1)  # type: ignore[arg-type]
    assert caught.value.field == "confidence"


@pytest.mark.parametrize("horizon", [0, 31, -1, True, 1.5])
def test_a_horizon_outside_1_to_30_days_is_refused(horizon: int) -> None:
    with pytest.raises(m.InvalidInput) as caught:
        m.value_at_risk("parametric", {"S0": D("1")}, RET, D("0.99"), horizon)
    assert caught.value.field == "horizon_days"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "garch"}, "method"),
        ({"exposures": {"NOPE": D("1")}}, "symbols"),
        ({"exposures": {"S0": D("NaN")}}, "exposures"),
        ({"exposures": {"S0": 1.5}}, "exposures"),
        ({"exposures": {"S0": D("1e20")}}, "exposures"),
        ({"exposures": {f"X{i}": D(1) for i in range(m.MAX_POSITIONS + 1)}}, "exposures"),
        ({"method": "monte_carlo", "simulations": m.MAX_SIMULATIONS + 1}, "simulations"),
        ({"method": "monte_carlo", "simulations": 10}, "simulations"),
        ({"method": "monte_carlo", "distribution": "cauchy"}, "distribution"),
        ({"method": "monte_carlo", "degrees_of_freedom": 2}, "degrees_of_freedom"),
    ],
)
def test_bad_var_inputs_are_refused_before_computing(kwargs: dict[str, object], field: str) -> None:
    # GIVEN one bad argument WHEN VaR is asked THEN InvalidInput names the field
    args: dict[str, object] = {"method": "historical", "exposures": {"S0": D("1")}, "simulations": 10_000}
    args.update(kwargs)
    with pytest.raises(m.InvalidInput) as caught:
        m.value_at_risk(
            args["method"],
            args["exposures"],
            RET,
            D("0.99"),
            1,  # type: ignore[arg-type]
            simulations=args["simulations"],
            **{k: v for k, v in kwargs.items() if k in ("distribution", "degrees_of_freedom")},  # type: ignore[arg-type]
        )
    assert caught.value.field == field


def test_simulations_times_positions_is_bounded() -> None:
    # GIVEN 400 positions and 20,000 simulations (8 million cells, over the bound)
    many = m.Returns.from_matrix(np.zeros((40, 400)), [f"P{i}" for i in range(400)])
    # WHEN Monte Carlo is asked THEN it is refused before any draw
    with pytest.raises(m.InvalidInput) as caught:
        m.value_at_risk("monte_carlo", {f"P{i}": D(1) for i in range(400)}, many, D("0.99"), 1, simulations=20_000)
    assert caught.value.field == "simulations"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"A": [(date(2026, 1, 1), D("1")), (date(2026, 1, 1), D("2"))]}, "duplicate_date"),
        ({"A": [(date(2026, 1, 1), D("0"))]}, "invalid_price"),
        ({"A": [(date(2026, 1, 1), D("-3"))]}, "invalid_price"),
        ({"A": [(date(2026, 1, 1), "x")]}, "invalid_decimal"),
        ({"A": [(date(2026, 1, 1), D("Infinity"))]}, "invalid_decimal"),
        ({"A": [(date(2026, 1, 1), D("sNaN"))]}, "invalid_decimal"),
        ({"A": [(date(2026, 1, 1), D("1")), ("2026-01-02", D("1"))]}, "invalid_date"),
        ({f"S{i}": [] for i in range(m.MAX_POSITIONS + 1)}, "too_many_symbols"),
    ],
)
def test_bad_closes_are_refused(data: dict[str, list[tuple[date, Decimal]]], code: str) -> None:
    with pytest.raises(m.InvalidInput) as caught:
        m.returns_matrix(data)
    assert caught.value.code == code


@pytest.mark.parametrize("lookback", [0, -5, m.MAX_DAYS + 1])
def test_a_lookback_out_of_range_is_refused(lookback: int) -> None:
    with pytest.raises(m.InvalidInput) as caught:
        m.returns_matrix({}, lookback_days=lookback)
    assert caught.value.field == "lookback_days"


def test_performance_needs_two_returns_and_refuses_duplicate_valuations() -> None:
    day = date(2026, 2, 2)
    with pytest.raises(m.InsufficientHistory) as caught:
        m.performance([(day, D("100")), (day + timedelta(days=1), D("101"))])
    assert (caught.value.available, caught.value.needed) == (1, 2)
    with pytest.raises(m.InvalidInput) as dup:
        m.performance([(day, D("100")), (day, D("101")), (day + timedelta(days=1), D("102"))])
    assert dup.value.code == "duplicate_date"
    with pytest.raises(m.InvalidInput):
        m.performance([(day, D("100"))] * 3, periods_per_year=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"market_pct": "-101"},
        {"market_pct": "5000"},
        {},
        {"per_symbol_pct": {"A": "NaN"}},
        {"per_symbol_pct": {"": "1"}},
    ],
)
def test_bad_custom_shocks_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(m.InvalidInput):
        m.Scenario.custom(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exceptions", "observations"), [(-1, 250), (251, 250), (0, 0), (1, m.MAX_BACKTEST_OBSERVATIONS + 1)]
)
def test_bad_backtest_counts_are_refused(exceptions: int, observations: int) -> None:
    with pytest.raises(m.InvalidInput):
        m.kupiec(exceptions, observations, D("0.99"))
    with pytest.raises(m.InvalidInput):
        m.basel_zone(exceptions, observations)


def test_an_explosive_annualised_return_is_null_not_an_error() -> None:
    # GIVEN three valuations that grow 50 % a day: annualised that is 2.25 ** 126, far more digits
    # than a Decimal quantised to 6 places can hold
    day = date(2026, 2, 2)
    equity = [(day, D("100")), (day + timedelta(days=1), D("150")), (day + timedelta(days=2), D("225"))]
    # WHEN the performance is computed
    perf = m.performance(equity)
    # THEN the figure too large to state is null and the stateable ones are still reported
    assert perf.annual_return is None
    assert perf.total_return == D("1.250000")
    assert perf.max_drawdown == D("0.000000")
