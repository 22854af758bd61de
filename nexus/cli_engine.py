"""Matching engine commands of the ``nexus`` CLI: ``replay`` and ``bench matching``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""

    @app.command("replay")
    def replay(
        commands: Annotated[Path, typer.Option("--commands", help="Command journal (JSON Lines).", exists=True,
                                               dir_okay=False)],
        events: Annotated[Path | None, typer.Option("--events", help="Write the events here (JSON Lines); "
                                                    "default: standard output.")] = None,
        instruments: Annotated[Path | None, typer.Option("--instruments", help="JSON list of instruments; "
                                                         "default: the demo set.", exists=True,
                                                         dir_okay=False)] = None,
    ) -> None:
        """Run a command journal through the matching engine in process (no AWS) and write its
        events, byte-identical across runs. Formats: README, "Engine command and event formats"."""
        from nexus_matching.replay import replay_file

        try:
            stats = replay_file(commands, events, instruments, sys.stdout)
        except (OSError, ValueError) as exc:
            typer.echo(f"replay: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(
            f"replayed {stats.commands} commands: {stats.events} events, "
            f"{stats.dropped} dropped ({stats.unreadable} unreadable lines)",
            err=True,
        )

    @bench_app.command("matching")
    def bench_matching(
        ops: Annotated[int, typer.Option(min=1_000, help="Operations of workload W1.")] = 1_000_000,
        peer: Annotated[bool, typer.Option(help="Also run the published peer engine.")] = True,
        repeat: Annotated[int, typer.Option(min=1, help="Throughput runs (the fastest is the figure).")] = 3,
    ) -> None:
        """Matching engine alone on workload W1: ops/s, per-op latency, and a PyPI peer's ratio."""
        import nexus_matching
        import nexus_matching.bench as bench

        result = bench.run(ops, peer=peer, repeat=repeat)
        typer.echo(f"matching engine, workload W1 ({result.ops:,} ops, one symbol, integer fast path):")
        if nexus_matching.implementation() == "compiled":
            from nexus_matching.core_modules import CORE_MODULES

            typer.echo(f"  engine      compiled (Cython extension modules nexus_matching.{', .'.join(CORE_MODULES)})")
        elif nexus_matching.pure_requested():
            typer.echo(f"  engine      pure Python ({nexus_matching.PURE_ENV} is set)")
        else:
            typer.echo("  engine      pure Python (no extension, or one older than its source: pip install -e .)")
        typer.echo(
            f"  throughput  {result.ops_per_s:12,.0f} ops/s   ({result.seconds:.3f} s, one timer, gc frozen; best of "
            f"{len(result.runs)}, median {result.median_ops_per_s:,.0f} ops/s)"
        )
        typer.echo(
            f"  latency     p50 {result.p50_ns / 1000:.2f} us   p99 {result.p99_ns / 1000:.2f} us   "
            f"p99.9 {result.p999_ns / 1000:.2f} us   max {result.max_ns / 1000:.1f} us   (second pass, per op)"
        )
        peer_rate = result.peer_ops_per_s
        if peer_rate is None:
            typer.echo(f"  peer        {bench.PEER} not run ({bench.peer_version()}; pip install -e '.[bench]')")
        else:
            typer.echo(
                f"  peer        {bench.PEER} {bench.peer_version()}: {peer_rate:12,.0f} ops/s   "
                f"ratio engine/peer {result.ops_per_s / peer_rate:.2f}   (best of {len(result.peer_runs)} each)"
            )
