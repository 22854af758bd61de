"""execution-events -> trade tape, L2 book levels, L3 resting orders and OHLCV candles.

A whole batch at a time (``nexus_common.stream_batch``), as the post-trade consumers do: the
events of every record before the first poison one are applied together, and that record and
every later one are reported (Lambda retries from it, then the DLQ). The writes of the batch:

* each trade is put on the tape (conditional on its seq and epoch);
* the book deltas are coalesced to the last one per level across the batch (one conditional
  update each: a level that moved ten times in the batch is written once);
* the candles the trades touch are read once per symbol, folded and written back (one
  conditional put per candle);
* the orders the events name are read once per symbol (one batched read) and folded into the
  L3 book (one conditional put per order).

Every item is written at most once per batch and each write is independent of the others (its own
item, its own seq/epoch watermark), so they run concurrently (``nexus_common.parallel``): a batch of a
hundred engine steps is a few hundred writes in flight together, not a thousand one after the
other. A redelivered or replayed batch changes nothing (the watermarks), and a batch retried after
a function error rewrites nothing it had written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.parallel import run_all
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_marketdata.repo import DynamoBookLevels, DynamoBookOrders, DynamoCandles, DynamoTrades
from nexus_marketdata.settings import MarketDataConsumerSettings

logger = get_logger()
settings = lazy_settings(MarketDataConsumerSettings)
trades = lazy(lambda: DynamoTrades(settings().trades_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))
book_orders = lazy(lambda: DynamoBookOrders(settings().book_orders_table))

def apply_events(events: list[AnyEngineEvent]) -> int:
    """Apply a batch's events (in shard order) to every view; returns how many items changed."""
    tape = [e for e in events if isinstance(e, TradeEvent)]
    latest: dict[tuple[str, str, str], BookEvent] = {}
    by_symbol: dict[str, list[AnyEngineEvent]] = {}
    for event in events:
        if isinstance(event, BookEvent):
            latest[(event.symbol, event.side, str(event.price))] = event  # later seq wins
        by_symbol.setdefault(event.symbol, []).append(event)
    writes: list[Callable[[], int]] = [_put_trade(trade) for trade in tape]
    writes += [_apply_level(delta) for delta in latest.values()]
    for symbol, symbol_events in by_symbol.items():
        symbol_trades = [e for e in symbol_events if isinstance(e, TradeEvent)]
        if symbol_trades:
            writes.append(_apply_candles(symbol_trades))
        writes += book_orders().plan(symbol, symbol_events)
    return sum(run_all(writes))


def _put_trade(trade: TradeEvent) -> Callable[[], int]:
    return lambda: int(trades().put(trade))


def _apply_level(delta: BookEvent) -> Callable[[], int]:
    return lambda: int(book_levels().apply(delta))


def _apply_candles(symbol_trades: list[TradeEvent]) -> Callable[[], int]:
    return lambda: candles().apply(symbol_trades)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    events, failed = batch.until_first_poison()
    for view in (trades(), book_levels(), candles(), book_orders()):
        view.table  # noqa: B018 - made here, once, not by the writer threads at the same time
    changed = apply_events(events)
    logger.debug("batch applied", extra={"records": len(batch.sequence_numbers), "changed": changed})
    return failures(failed)
