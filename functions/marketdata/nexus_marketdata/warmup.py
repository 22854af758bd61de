"""Warm-up of the snapshot cache before the New York open (scheduled function).

The template's rule fires at 13:29 and 14:29 UTC on weekdays (EventBridge cron is UTC); the
open, 09:30 America/New_York, is 13:30 UTC under EDT and 14:30 UTC under EST. ``due`` accepts a
run only when it is 09:00-09:30 in New York on a business day (``nexus_common.calendar``), so
exactly one of the two runs works, whatever the DST. ``{"force": true}`` runs one pass at any
time (an operator's manual run).

A run (1) pins the ``HOT_PINS`` symbols with the most volume on the previous business day (their
``1d`` candles) as hot until the session closes (16:00 New York), so the opening rush reads them
with tier-1 freshness from the first request instead of after the promotion threshold, and
(2) writes the book (L2) and ticker snapshots of every active instrument into the cache, again
each time the tier-1 fresh window passes, until ``HOLD_AFTER_OPEN`` after the open: the first
readers of the session find every snapshot fresh, and none of them waits for the source.
"""

from __future__ import annotations

import time as time_module
from collections.abc import Callable, Container
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from nexus_common.calendar import EXCHANGE_TZ, HOLIDAYS, is_business_day
from nexus_common.events import utc_now
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings

from nexus_marketdata import views
from nexus_marketdata.cache import SnapshotCache
from nexus_marketdata.candles import bucket_id
from nexus_marketdata.repo import DynamoBookLevels, DynamoCandles, DynamoTrades
from nexus_marketdata.settings import MarketDataWarmupSettings

HOT_PINS: Final = 4
OPEN: Final = time(9, 30)
HOLD_AFTER_OPEN: Final = timedelta(seconds=15)
WARM_FROM: Final = time(9, 0)
CLOSE: Final = time(16, 0)

logger = get_logger()
settings = lazy_settings(MarketDataWarmupSettings)
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
trades = lazy(lambda: DynamoTrades(settings().trades_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))


def due(now: datetime, holidays: Container[date] = HOLIDAYS) -> bool:
    """Is ``now`` in the half hour before the New York open of a business day?"""
    local = now.astimezone(EXCHANGE_TZ)
    return is_business_day(local.date(), holidays) and WARM_FROM <= local.time() < OPEN


def previous_business_day(day: date, holidays: Container[date] = HOLIDAYS) -> date:
    day -= timedelta(days=1)
    while not is_business_day(day, holidays):
        day -= timedelta(days=1)
    return day


def seconds_to_close(now: datetime) -> int:
    local = now.astimezone(EXCHANGE_TZ)
    close = datetime.combine(local.date(), CLOSE, tzinfo=EXCHANGE_TZ)
    return max(1, int((close - local).total_seconds()))


def open_instant(now: datetime) -> datetime:
    local = now.astimezone(EXCHANGE_TZ)
    return datetime.combine(local.date(), OPEN, tzinfo=EXCHANGE_TZ).astimezone(UTC)


def hot_symbols(active: list[str], now: datetime) -> tuple[date, list[str]]:
    """The previous business day and its ``HOT_PINS`` most traded symbols (``1d`` volume)."""
    yesterday = previous_business_day(now.astimezone(EXCHANGE_TZ).date())
    bucket = bucket_id(datetime.combine(yesterday, time(0), tzinfo=UTC))
    volumes: list[tuple[Decimal, str]] = []
    for symbol in active:
        candle = candles().get(symbol, "1d", bucket)
        if candle is not None and candle.volume > 0:
            volumes.append((candle.volume, symbol))
    return yesterday, [symbol for _, symbol in sorted(volumes, key=lambda v: (-v[0], v[1]))[:HOT_PINS]]


def warm(
    cache: SnapshotCache,
    now: datetime,
    hold_until: datetime | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time_module.sleep,
) -> dict[str, Any]:
    """Pin yesterday's most traded symbols, then keep every active instrument's snapshots in the
    cache (one pass, and more until ``hold_until``). Returns what it did."""
    active = [i.symbol for i in instruments().list_all() if i.status == "active"]
    yesterday, pinned = hot_symbols(active, now)
    for symbol in pinned:
        cache.pin(symbol, seconds_to_close(now))
    passes = 0
    while True:
        for symbol in active:
            cache.warm(symbol, "l2", views.book_l2(book_levels(), symbol))
            cache.warm(symbol, "ticker", views.ticker(book_levels(), trades(), candles(), symbol, clock()))
        passes += 1
        if hold_until is None or clock() >= hold_until:
            break
        sleep(cache.config.tier1.fresh_ms / 2000)
    return {"warmed": active, "pinned": pinned, "previous_session": yesterday.isoformat(), "passes": passes}


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raw = event.get("time") if isinstance(event, dict) else None
    now = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else utc_now()
    if not (isinstance(event, dict) and event.get("force") is True) and not due(now):
        logger.info("not the half hour before the New York open: nothing to warm", extra={"time": now.isoformat()})
        return {"warmed": [], "pinned": [], "skipped": True}
    forced = isinstance(event, dict) and event.get("force") is True
    hold = None if forced else open_instant(now) + HOLD_AFTER_OPEN
    result = warm(SnapshotCache(redis_client()), now, hold)
    logger.info("snapshot cache warmed", extra=result)
    return {**result, "skipped": False}
