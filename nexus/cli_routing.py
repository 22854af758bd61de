"""Best-execution commands of the ``nexus`` CLI: ``bench routing``."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""

    @bench_app.command("routing")
    def bench_routing(
        venues: Annotated[int, typer.Option(min=3, max=8, help="Simulated venues.")] = 6,
        levels: Annotated[int, typer.Option(min=1, max=50, help="Price levels a side on each venue.")] = 10,
        decisions: Annotated[int, typer.Option(min=1_000, help="Timed NBBO calls and routing decisions.")] = 20_000,
        rate: Annotated[int, typer.Option(min=1, max=100_000, help="Sustained requests per second.")] = 1_200,
        seconds: Annotated[float, typer.Option(min=0.5, max=600, help="Length of the sustained run.")] = 10.0,
        repeat: Annotated[int, typer.Option(min=1, max=20, help="Runs of the NBBO and decision timings.")] = 3,
    ) -> None:
        """The router in process: NBBO and routing decision latency, and routing requests sustained
        at a fixed rate (end to end on simulated venues) with their latency at that rate."""
        from nexus_routing import bench

        for line in bench.report(bench.run(venues, levels, decisions, rate, seconds, repeat=repeat)):
            typer.echo(line)
