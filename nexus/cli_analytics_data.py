"""Analytics data commands of the ``nexus`` CLI: ``nexus prices import`` and ``nexus bench
analytics-route``.

``nexus prices import FILE.csv`` loads daily closes (``date,symbol,close`` and optionally
``open,high,low,volume``) into the analytics price history of the platform it acts on (the
running ``nexus up`` unless named otherwise, see ``nexus.platform``). The file is checked whole
before anything is written (``nexus_analytics.prices``): a duplicate date for a symbol, a
non-positive price, an unknown symbol (not an instrument of the platform) or a malformed line is
reported with its line number and nothing is written (exit 2). A bar of a (symbol, date) already
stored is replaced.

``nexus bench analytics-route`` times ``GET /v1/analytics/summary`` on the local platform
(``nexus up --demo`` in its own process, as ``nexus bench local``): a demo account buys three
symbols from the other, then the route is called repeatedly; it prints p50/p99 against the
issue's 300 ms target, as a row of ``nexus bench analytics``'s table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from nexus import platform

MAX_FILE_BYTES: Final = 64 * 1024 * 1024


def import_prices(text: str, table: Callable[[str], str]) -> dict[str, Any]:
    """Validate the whole file, then write it; raises ``PriceFileError`` (nothing written)."""
    from nexus_analytics.prices import parse_price_csv
    from nexus_analytics.repo import DynamoAccountsSource, DynamoPriceHistory

    known = DynamoAccountsSource(table("AccountsTable"), table("PositionsTable"), None, table("InstrumentsTable"))
    bars = parse_price_csv(text, set(known.symbols()))
    written = DynamoPriceHistory(table("PriceHistoryTable")).put_many(bars)
    by_symbol: dict[str, int] = {}
    for bar in bars:
        by_symbol[bar.symbol] = by_symbol.get(bar.symbol, 0) + 1
    return {
        "imported": written,
        "symbols": dict(sorted(by_symbol.items())),
        "from": min(b.day for b in bars).isoformat(),
        "to": max(b.day for b in bars).isoformat(),
    }


def read_price_file(path: Path) -> str:
    """The file's text (UTF-8, a BOM allowed); a ``ValueError`` naming what is wrong."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def summary_route_figure(requests: int = 200, symbols: tuple[str, ...] = ("AAPL", "MSFT", "GOOGL")) -> Any:
    """p50/p99 of ``GET /v1/analytics/summary`` on a local platform, as a ``cli_analytics.Figure``."""
    from nexus.bench_local import PRICES, LocalPlatform, _call
    from nexus.cli_analytics import timed
    from nexus.local.runtime import wait_until

    local = LocalPlatform(stage="benchan")
    try:
        seller, buyer = local.keys
        for symbol in symbols:
            # at the symbol's reference price, where the demo market maker quotes: at 100.00 (a
            # third or more below each reference) the buyer never came to hold a position
            order = {"symbol": symbol, "type": "limit", "quantity": "10", "price": PRICES[symbol]}
            _call(local.url, seller, "POST", "/v1/orders", {**order, "side": "sell"})
            _call(local.url, buyer, "POST", "/v1/orders", {**order, "side": "buy"})

        def held() -> int:
            return len(_call(local.url, buyer, "GET", "/v1/positions")[1]["positions"])

        wait_until(lambda: held() >= len(symbols), 60, "positions")
        time.sleep(1)  # let the consumers of the fills go quiet

        def summary() -> None:
            status, body = _call(local.url, buyer, "GET", "/v1/analytics/summary")
            if status != 200:
                raise RuntimeError(f"summary answered {status}: {json.dumps(body)[:200]}")

        return timed(
            f"summary route on the local platform ({len(symbols)} positions, HTTP)",
            300.0,
            requests,
            summary,
            note="  (sequential requests over loopback; moto server as AWS)",
        )
    finally:
        local.stop()


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    prices_app = typer.Typer(help="Daily price history of the analytics.", no_args_is_help=True)
    app.add_typer(prices_app, name="prices")

    @prices_app.command("import")
    @platform.command
    def prices_import(
        file: Annotated[Path, typer.Argument(help="CSV: date,symbol,close[,open,high,low,volume], a header row.")],
    ) -> None:
        """Load daily closes into the price history; the whole file is checked first, and a
        problem is reported with its line number and nothing written (exit 2)."""
        from nexus_analytics.prices import PriceFileError

        try:
            answer = import_prices(read_price_file(file), platform.tables())
        except PriceFileError as exc:
            error = {"code": "invalid_price_file", "message": str(exc), "line": exc.line}
            typer.echo(json.dumps({"error": error}), err=True)
            raise typer.Exit(2) from exc
        except ValueError as exc:
            typer.echo(json.dumps({"error": {"code": "invalid_price_file", "message": str(exc)}}), err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(answer))

    @bench_app.command("analytics-route")
    def bench_analytics_route(
        requests: Annotated[int, typer.Option(min=10, max=10_000, help="Timed summary requests.")] = 200,
    ) -> None:
        """p50/p99 of GET /v1/analytics/summary on the local platform (target p99 <= 300 ms)."""
        from nexus.cli_analytics import report

        typer.echo(f"nexus bench analytics-route: {requests} sequential summary requests on nexus up --demo")
        report([summary_route_figure(requests)], typer.echo)
