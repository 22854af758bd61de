"""Warm-up of the snapshot cache before the New York open: the handler of the ``BeforeOpen``
schedule (the template's rule fires at 13:29 and 14:29 UTC on weekdays).

The event's ``time`` is the run's instant; ``{"force": true}`` runs one pass at any time (an
operator's manual run). Whether a run is due (``nexus_marketdata.opening``) and what it does
(``nexus_marketdata.service.CacheWarmup``) are the service's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nexus_common.events import utc_now
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings

from nexus_marketdata.repo import DynamoBookLevels, DynamoCandles, DynamoTrades, SnapshotCache
from nexus_marketdata.service import CacheWarmup
from nexus_marketdata.settings import MarketDataWarmupSettings

logger = get_logger()
settings = lazy_settings(MarketDataWarmupSettings)
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
trades = lazy(lambda: DynamoTrades(settings().trades_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))
warmup = lazy(lambda: CacheWarmup(instruments, book_levels, trades, candles))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raw = event.get("time") if isinstance(event, dict) else None
    now = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else utc_now()
    forced = isinstance(event, dict) and event.get("force") is True
    result = warmup().run(now, forced, lambda: SnapshotCache(redis_client()))
    if result is None:
        logger.info("not the half hour before the New York open: nothing to warm", extra={"time": now.isoformat()})
        return {"warmed": [], "pinned": [], "skipped": True}
    logger.info("snapshot cache warmed", extra=result)
    return {**result, "skipped": False}
