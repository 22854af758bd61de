"""Market data commands of the ``nexus`` CLI: ``nexus bench cache``."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""

    @bench_app.command("cache")
    def bench_cache(
        readers: Annotated[int, typer.Option(min=1, max=5000, help="Concurrent reader threads.")] = 1000,
        reads: Annotated[int, typer.Option(min=1, help="Book reads per reader.")] = 3,
        orders: Annotated[int, typer.Option(min=10, help="Orders in the burst of trades.")] = 3000,
        seed: Annotated[int, typer.Option(help="Random seed of the burst and the readers.")] = 1,
    ) -> None:
        """Book snapshot source reads with and without the Redis cache, during a burst of trades
        (real Redis, moto DynamoDB as the source; see nexus/bench_cache.py)."""
        from nexus import bench_cache as bench

        typer.echo(f"nexus bench cache: {readers} readers x {reads} book reads during a burst of {orders} orders")
        result = bench.run(readers=readers, reads=reads, orders=orders, seed=seed)
        bench.report(result, typer.echo)
