"""Portfolio analytics commands of the ``nexus`` CLI: ``bench analytics``.

``nexus bench analytics`` times the calculation library (``nexus_analytics.metrics``) in process on
seeded synthetic data: a 100-position portfolio over 1,000 days of correlated daily returns (a
one-factor model), 99 % one-day VaR + ES by each method, repeated; it prints p50/p99 per measure
against the issue's targets, and the CPU time beside (on a shared machine the wall clock includes
waiting for a core). OpenBLAS runs one thread by default (``--blas-threads``): on two contended
cores its threads slow a 100 x 1,000 covariance from 0.5 ms to tens of ms. Nothing is asserted (a
benchmark, not a test).

- "warm": the ``Returns`` of the portfolio is reused across runs, so its covariance and Cholesky
  factor are computed once (what a service keeps per price-history load); "cold" builds a new
  ``Returns`` every run, so the covariance (and the Cholesky factor) are in the figure.
- Monte Carlo draws 10,000 scenarios x 100 positions (antithetic pairs, see the library).

Figures of other layers (e.g. the summary route on the local platform) add themselves as more
``Figure`` rows: see ``library_figures`` and ``report``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import typer


@dataclass
class Figure:
    """One measure: its repeated timings (seconds) and the issue's target (ms)."""

    name: str
    target_ms: float | None
    seconds: list[float] = field(default_factory=list)  # wall clock
    cpu_seconds: list[float] = field(default_factory=list)  # CPU time of the process (all its threads)
    note: str = ""

    def percentile(self, q: float, *, cpu: bool = False) -> float:
        import numpy as np

        return float(np.percentile(np.array(self.cpu_seconds if cpu else self.seconds), q)) * 1000.0

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def cpu_p50_ms(self) -> float:
        return self.percentile(50, cpu=True) if self.cpu_seconds else float("nan")

    @property
    def cpu_p99_ms(self) -> float:
        return self.percentile(99, cpu=True) if self.cpu_seconds else float("nan")


def timed(name: str, target_ms: float | None, runs: int, call: Callable[[], Any], note: str = "") -> Figure:
    """``call`` run ``runs`` times after one warm-up run, each timed with ``perf_counter``."""
    figure = Figure(name, target_ms, note=note)
    call()
    gc_was = gc.isenabled()
    gc.disable()  # a collection in the middle of one sample is noise, not the library
    try:
        for _ in range(runs):
            cpu = time.process_time()
            start = time.perf_counter()
            call()
            figure.seconds.append(time.perf_counter() - start)
            figure.cpu_seconds.append(time.process_time() - cpu)
    finally:
        if gc_was:
            gc.enable()
    return figure


def synthetic_portfolio(positions: int, days: int, seed: int) -> tuple[Any, dict[str, Decimal]]:
    """Seeded daily returns of ``positions`` symbols over ``days`` (market factor + idiosyncratic)
    and a long/short book of USD exposures."""
    import numpy as np
    from nexus_analytics import metrics

    rng = np.random.default_rng(seed)
    market = rng.standard_t(5, days) * 0.009
    loadings = rng.uniform(0.4, 1.6, positions)
    matrix = np.outer(market, loadings) + rng.normal(0, 0.012, (days, positions))
    symbols = [f"SYM{i:03d}" for i in range(positions)]
    returns = metrics.Returns.from_matrix(matrix, symbols)
    amounts = rng.integers(-200_000, 800_000, positions)
    exposures = {s: Decimal(int(a)).quantize(Decimal("0.01")) for s, a in zip(symbols, amounts, strict=True)}
    return returns, exposures


def library_figures(
    positions: int = 100,
    days: int = 1_000,
    simulations: int = 10_000,
    runs: int = 200,
    mc_runs: int = 50,
    seed: int = 7,
) -> list[Figure]:
    """The calculation library's figures (see the module docstring)."""
    from nexus_analytics import metrics

    returns, exposures = synthetic_portfolio(positions, days, seed)
    c = Decimal("0.99")
    size = f"{positions} positions x {days} days"
    mc_size = f"{simulations:,} scenarios x {positions} positions"

    def cold() -> Any:
        return metrics.Returns.from_matrix(returns.matrix, returns.symbols)

    figures = [
        timed(
            f"historical VaR+ES, {size}",
            1.0,
            runs,
            lambda: metrics.value_at_risk("historical", exposures, returns, c, 1),
        ),
        timed(
            f"historical VaR+ES 10-day (overlapping sums), {size}",
            None,
            runs,
            lambda: metrics.value_at_risk("historical", exposures, returns, c, 10),
        ),
        timed(
            f"parametric VaR+ES (warm), {size}",
            2.0,
            runs,
            lambda: metrics.value_at_risk("parametric", exposures, returns, c, 1),
        ),
        timed(
            f"parametric VaR+ES (cold: covariance included), {size}",
            2.0,
            runs,
            lambda: metrics.value_at_risk("parametric", exposures, cold(), c, 1),
        ),
        timed(
            f"Monte Carlo normal (warm), {mc_size}",
            25.0,
            mc_runs,
            lambda: metrics.value_at_risk("monte_carlo", exposures, returns, c, 1, simulations=simulations),
        ),
        timed(
            f"Monte Carlo Student-t (warm), {mc_size}",
            25.0,
            mc_runs,
            lambda: metrics.value_at_risk(
                "monte_carlo", exposures, returns, c, 1, simulations=simulations, distribution="t"
            ),
        ),
        timed(
            f"Monte Carlo normal (cold: covariance + Cholesky included), {mc_size}",
            25.0,
            mc_runs,
            lambda: metrics.value_at_risk("monte_carlo", exposures, cold(), c, 1, simulations=simulations),
        ),
        timed(
            f"historical decomposition (marginal + component), {size}",
            None,
            runs,
            lambda: metrics.risk_decomposition("historical", exposures, returns, c),
        ),
        timed(
            f"Monte Carlo decomposition (warm), {mc_size}",
            None,
            mc_runs,
            lambda: metrics.risk_decomposition("monte_carlo", exposures, returns, c, simulations=simulations),
        ),
    ]
    return figures


def report(figures: list[Figure], echo: Callable[[str], None]) -> None:
    """One line per figure: wall p50 and p99, CPU p50 and p99, the target and whether the wall p50 and p99
    meet it (on a shared machine the wall figures include waiting for a core; CPU does not)."""
    width = max(len(f.name) for f in figures)
    echo(f"  {'measure':<{width}}  {'runs':>5}  {'p50 ms':>9}  {'p99 ms':>9}  {'cpu p50':>9}  {'cpu p99':>9}  target")
    for f in figures:
        if f.target_ms is None:
            verdict = ""
        else:
            met = "met" if f.p99_ms <= f.target_ms else ("p50 met, p99 not" if f.p50_ms <= f.target_ms else "NOT met")
            verdict = f"<= {f.target_ms:g} ms: {met}"
        echo(
            f"  {f.name:<{width}}  {len(f.seconds):>5}  {f.p50_ms:>9.3f}  {f.p99_ms:>9.3f}"
            f"  {f.cpu_p50_ms:>9.3f}  {f.cpu_p99_ms:>9.3f}"
            f"  {verdict}{f.note}"
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""

    @bench_app.command("analytics")
    def bench_analytics(
        positions: Annotated[int, typer.Option(min=1, max=500, help="Positions in the portfolio.")] = 100,
        days: Annotated[int, typer.Option(min=130, max=10_000, help="Days of daily returns.")] = 1_000,
        simulations: Annotated[int, typer.Option(min=1_000, max=50_000, help="Monte Carlo scenarios.")] = 10_000,
        runs: Annotated[int, typer.Option(min=10, max=10_000, help="Timed runs of each fast measure.")] = 200,
        mc_runs: Annotated[int, typer.Option(min=5, max=1_000, help="Timed runs of each Monte Carlo measure.")] = 50,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic returns.")] = 7,
        blas_threads: Annotated[
            int, typer.Option(min=1, max=64, help="OpenBLAS threads (set before numpy loads; 1 as on a 1-vCPU Lambda).")
        ] = 1,
    ) -> None:
        """VaR + ES by each method (nexus_analytics.metrics, in process): p50/p99 of repeated runs."""
        import os
        import sys

        numpy_loaded = "numpy" in sys.modules
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(blas_threads)
        from nexus_analytics.metrics import MAX_SIMULATION_CELLS

        if positions * simulations > MAX_SIMULATION_CELLS:
            raise typer.BadParameter(
                f"positions x simulations must be at most {MAX_SIMULATION_CELLS:,}", param_hint="--simulations"
            )
        typer.echo(
            f"nexus bench analytics: {positions} positions, {days} days, {simulations:,} Monte Carlo scenarios, "
            f"99 % one-day VaR + ES, {runs} runs ({mc_runs} for Monte Carlo), seed {seed}"
        )
        if numpy_loaded:
            typer.echo("  (numpy was loaded before this command: --blas-threads may not apply)")
        typer.echo(f"  BLAS threads {blas_threads}; wall-clock p50/p99 judged against the targets, CPU time beside")
        figures = library_figures(positions, days, simulations, runs, mc_runs, seed)
        report(figures, typer.echo)
