"""``nexus bench analytics`` is wired into the CLI and prints one line per measure (tiny sizes here;
the figures themselves are never asserted: a benchmark is measured with the command, not in tests)."""

from __future__ import annotations

from typer.testing import CliRunner

from nexus.cli import app
from nexus.cli_analytics import Figure, report


def test_bench_analytics_prints_every_measure_with_its_target() -> None:
    # GIVEN the CLI WHEN the analytics bench runs on a tiny portfolio with few runs
    result = CliRunner().invoke(
        app,
        ["bench", "analytics", "--positions", "4", "--days", "130", "--simulations", "1000", "--runs", "10",
         "--mc-runs", "5"],
    )  # fmt: skip
    # THEN it exits 0 and prints each method's line, the targets beside the figured ones
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("historical VaR+ES, 4 positions x 130 days", "parametric VaR+ES (warm)", "Monte Carlo normal (warm)",
                 "Monte Carlo Student-t (warm)", "historical decomposition"):  # fmt: skip
        assert any(line.strip().startswith(name) for line in lines), name
    assert sum("<= 25 ms" in line for line in lines) == 3


def test_bench_analytics_refuses_more_cells_than_the_library_allows() -> None:
    # GIVEN 500 positions x 50,000 simulations (over the library's bound) WHEN the bench is asked
    result = CliRunner().invoke(app, ["bench", "analytics", "--positions", "500", "--simulations", "50000"])
    # THEN it is a usage error before any computation
    assert result.exit_code == 2
    assert "simulations" in result.output


def test_report_states_whether_the_target_is_met() -> None:
    # GIVEN one figure under its target at p50 and over it at p99, and one without a target
    under = Figure("a", 1.0, seconds=[0.0005] * 95 + [0.01] * 5, cpu_seconds=[0.0005] * 100)
    free = Figure("b", None, seconds=[0.002] * 10, cpu_seconds=[0.002] * 10)
    lines: list[str] = []
    # WHEN reported
    report([under, free], lines.append)
    # THEN the first says the p50 meets it and the p99 not, the second names no target
    assert "<= 1 ms: p50 met, p99 not" in lines[1]
    assert "<=" not in lines[2]
