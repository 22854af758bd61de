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
  L3 book (one conditional put per order, except an order that began and ended within one
  record: a market, IOC or FOK order, or a limit order filled on arrival, never rests and needs
  no item).

Every item is written at most once per batch and each write is independent of the others (its own
item, its own seq/epoch watermark), so they run concurrently (``nexus_common.parallel``): a batch of a
hundred engine steps is a few hundred writes in flight together, not a thousand one after the
other. A redelivered or replayed batch changes nothing (the watermarks), and a batch retried after
a function error rewrites nothing it had written.

This module decodes the batch and reports the failed records; ``nexus_marketdata.service.ViewWriter``
applies the events.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_marketdata.repo import DynamoBookLevels, DynamoBookOrders, DynamoCandles, DynamoTrades, ViewReads
from nexus_marketdata.service import ViewWriter
from nexus_marketdata.settings import MarketDataConsumerSettings

logger = get_logger()
settings = lazy_settings(MarketDataConsumerSettings)
trades = lazy(lambda: DynamoTrades(settings().trades_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))
book_orders = lazy(lambda: DynamoBookOrders(settings().book_orders_table))
writer = lazy(
    lambda: ViewWriter(trades(), book_levels(), candles(), book_orders(), ViewReads(candles(), book_orders()))
)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    records, failed = batch.records_until_first_poison()
    for view in (trades(), book_levels(), candles(), book_orders()):
        view.table  # noqa: B018 - made here, once, not by the writer threads at the same time
    changed = writer().apply(records)
    logger.debug("batch applied", extra={"records": len(batch.sequence_numbers), "changed": changed})
    return failures(failed)
