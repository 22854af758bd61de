"""The application layer of market data: what the handlers call.

* ``MarketDataQueries``: the API's reads. Book and ticker snapshots go through the Redis snapshot
  cache; if Redis cannot be had the source (DynamoDB) answers directly, so the cache is never a
  single point of failure (``snapshot``). Candle requests become a range of bucket ids
  (``candle_range``).
* ``ViewWriter``: a batch of execution events applied to the trade tape, L2 levels, L3 orders
  and candles (see ``nexus_marketdata.on_execution_events``).
* ``CacheWarmup``: the pre-open warm-up of the snapshot cache (see
  ``nexus_marketdata.on_before_open_schedule``).
"""

from __future__ import annotations

import time as time_module
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import redis
from botocore.exceptions import ClientError
from nexus_common.calendar import EXCHANGE_TZ
from nexus_common.errors import NotFound, ValidationFailed
from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent, utc_now
from nexus_common.instruments import Instrument
from nexus_common.parallel import run_all

from nexus_marketdata import views
from nexus_marketdata.candles import INTERVALS, Candle, bucket_id, bucket_start, candle_keys
from nexus_marketdata.domain import instrument_to_wire, trade_to_wire
from nexus_marketdata.l3 import L3Order, touched_order_ids
from nexus_marketdata.opening import (
    HOLD_AFTER_OPEN,
    HOT_PINS,
    due,
    open_instant,
    previous_business_day,
    seconds_to_close,
)
from nexus_marketdata.ports import (
    BookLevels,
    BookOrders,
    CacheRead,
    CandleSeries,
    InstrumentSource,
    SnapshotStore,
    TradeTape,
    ViewReadAhead,
)


def candle_range(interval: str, start: datetime | None, end: datetime, limit: int) -> tuple[str, str]:
    """The bucket ids of the first and the last candle of a request: up to the bucket holding
    ``end``, from the bucket holding ``start`` (default: ``limit - 1`` buckets before ``end``)."""
    seconds = INTERVALS[interval]
    first = start or end - timedelta(seconds=seconds * (limit - 1))
    return bucket_id(bucket_start(first, interval)), bucket_id(bucket_start(end, interval))


class MarketDataQueries:
    """The API's reads. The data access is given as factories, each called when a read needs
    it: a request refused on its query alone touches nothing."""

    def __init__(
        self,
        instruments: Callable[[], InstrumentSource],
        book_levels: Callable[[], BookLevels],
        book_orders: Callable[[], BookOrders],
        trades: Callable[[], TradeTape],
        candles: Callable[[], CandleSeries],
        cache: Callable[[], SnapshotStore],
        logger: Any,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.instruments = instruments
        self.book_levels = book_levels
        self.book_orders = book_orders
        self.trades = trades
        self.candles = candles
        self.cache = cache
        self.logger = logger
        self.clock = clock

    def instrument(self, symbol: str) -> Instrument:
        found = self.instruments().get(symbol)
        if found is None:
            raise NotFound("unknown_symbol", f"unknown symbol {symbol!r}", "symbol")
        return found

    def markets(self) -> list[dict[str, Any]]:
        return [instrument_to_wire(i) for i in self.instruments().list_all()]

    def snapshot(self, symbol: str, view: str, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
        """The snapshot through the cache; straight from the source when Redis cannot be had (its
        URL unreadable, or the server down): slower, never wrong."""
        try:
            snapshots = self.cache()
        except (redis.RedisError, RuntimeError, ClientError) as exc:
            self.logger.warning("snapshot cache unavailable, reading the source", extra={"error": type(exc).__name__})
            return CacheRead(fetch(), "bypass", False)
        try:
            return snapshots.get(symbol, view, fetch)
        except redis.RedisError as exc:
            self.logger.warning("snapshot cache unavailable, reading the source", extra={"error": type(exc).__name__})
            return CacheRead(fetch(), "bypass", False)

    def book(self, symbol: str, level: int, depth: int) -> CacheRead:
        """L1/L2 from the L2 snapshot, L3 from its own (at most ``L3_SNAPSHOT_DEPTH`` levels), cut
        to ``depth`` levels a side."""
        if level == 3 and depth > views.L3_SNAPSHOT_DEPTH:
            raise ValidationFailed("invalid_field", f"L3 depth is at most {views.L3_SNAPSHOT_DEPTH}", "depth")
        instrument = self.instrument(symbol)
        if level == 3:
            read = self.snapshot(instrument.symbol, "l3", lambda: views.book_l3(self.book_orders(), instrument.symbol))
        else:
            read = self.snapshot(instrument.symbol, "l2", lambda: views.book_l2(self.book_levels(), instrument.symbol))
        return replace(read, value=views.cut(read.value, level, depth))

    def ticker(self, symbol: str) -> CacheRead:
        instrument = self.instrument(symbol)
        return self.snapshot(
            instrument.symbol,
            "ticker",
            lambda: views.ticker(self.book_levels(), self.trades(), self.candles(), instrument.symbol, self.clock()),
        )

    def recent_trades(self, symbol: str, limit: int) -> dict[str, Any]:
        instrument = self.instrument(symbol)
        rows = self.trades().recent(instrument.symbol, limit)
        return {"symbol": instrument.symbol, "trades": [trade_to_wire(r) for r in rows]}

    def candle_series(
        self, symbol: str, interval: str, start: datetime | None, end: datetime | None, limit: int
    ) -> dict[str, Any]:
        if start is not None and end is not None and start > end:
            raise ValidationFailed("invalid_range", "from must not be after to", "from")
        instrument = self.instrument(symbol)
        first, last = candle_range(interval, start, end or self.clock(), limit)
        rows = self.candles().range(instrument.symbol, interval, first, last, limit)
        return {"symbol": instrument.symbol, "interval": interval, "candles": [c.to_wire() for c in rows]}


class ViewWriter:
    """A batch of execution events (in shard order) applied to every view: each trade put on the
    tape, the book deltas coalesced to the last one per level, the candles and the L3 orders the
    events touch read (with ``reads``: every symbol's in one go; else once per symbol), folded
    and written back; the writes run concurrently (``nexus_common.parallel``), each independent
    of the others."""

    def __init__(
        self, trades: TradeTape, book_levels: BookLevels, candles: CandleSeries, book_orders: BookOrders,
        reads: ViewReadAhead | None = None,
    ) -> None:  # fmt: skip
        self.trades = trades
        self.book_levels = book_levels
        self.candles = candles
        self.book_orders = book_orders
        self.reads = reads

    def apply(self, records: Sequence[Sequence[AnyEngineEvent]]) -> int:
        """Apply a batch's events, record by record, to every view; returns how many items changed."""
        latest: dict[tuple[str, str, str], BookEvent] = {}
        records_of: dict[str, list[list[AnyEngineEvent]]] = {}  # each symbol's events, record by record
        for record in records:
            of_record: dict[str, list[AnyEngineEvent]] = {}
            for event in record:
                if isinstance(event, BookEvent):
                    latest[(event.symbol, event.side, str(event.price))] = event  # later seq wins
                of_record.setdefault(event.symbol, []).append(event)
            for symbol, symbol_events in of_record.items():
                records_of.setdefault(symbol, []).append(symbol_events)
        by_symbol = {symbol: [e for part in parts for e in part] for symbol, parts in records_of.items()}
        tape = [e for record in records for e in record if isinstance(e, TradeEvent)]
        writes: list[Callable[[], int]] = [self._put_trade(trade) for trade in tape]
        writes += [self._apply_level(delta) for delta in latest.values()]
        touched = {symbol: touched_order_ids(symbol_events) for symbol, symbol_events in by_symbol.items()}
        candles: dict[tuple[str, str], Candle] | None = None
        orders: dict[tuple[str, str], L3Order] | None = None
        if self.reads is not None:
            candles, orders = self.reads.load(candle_keys(tape), [(s, o) for s, ids in touched.items() for o in ids])
        for symbol, symbol_events in by_symbol.items():
            symbol_trades = [e for e in symbol_events if isinstance(e, TradeEvent)]
            if symbol_trades:
                stored = None if candles is None else {k: c for k, c in candles.items() if c.symbol == symbol}
                writes.append(self._apply_candles(symbol_trades, stored))
            its_orders = None if orders is None else {o: orders[(symbol, o)] for o in touched[symbol]
                                                      if (symbol, o) in orders}  # fmt: skip
            writes += self.book_orders.plan(symbol, records_of[symbol], its_orders)
        return sum(run_all(writes))

    def _put_trade(self, trade: TradeEvent) -> Callable[[], int]:
        return lambda: int(self.trades.put(trade))

    def _apply_level(self, delta: BookEvent) -> Callable[[], int]:
        return lambda: int(self.book_levels.apply(delta))

    def _apply_candles(
        self, symbol_trades: list[TradeEvent], stored: dict[tuple[str, str], Candle] | None
    ) -> Callable[[], int]:
        return lambda: self.candles.apply(symbol_trades, stored)


class CacheWarmup:
    """Before the New York open: (1) pin the ``HOT_PINS`` symbols with the most volume on the
    previous business day (their ``1d`` candles) as hot until the session closes (16:00 New
    York), so the opening rush reads them with tier-1 freshness from the first request instead
    of after the promotion threshold, and (2) write the book (L2) and ticker snapshots of every
    active instrument into the cache, again each time the tier-1 fresh window passes, until
    ``HOLD_AFTER_OPEN`` after the open: the first readers of the session find every snapshot
    fresh, and none of them waits for the source."""

    def __init__(
        self,
        instruments: Callable[[], InstrumentSource],
        book_levels: Callable[[], BookLevels],
        trades: Callable[[], TradeTape],
        candles: Callable[[], CandleSeries],
    ) -> None:
        """The data access as factories: a run that is not due touches nothing."""
        self.instruments = instruments
        self.book_levels = book_levels
        self.trades = trades
        self.candles = candles

    def run(self, now: datetime, forced: bool, cache: Callable[[], SnapshotStore]) -> dict[str, Any] | None:
        """A scheduled run (None when it is not the half hour before the open), or a forced one
        (one pass, at any time)."""
        if not forced and not due(now):
            return None
        hold = None if forced else open_instant(now) + HOLD_AFTER_OPEN
        return self.warm(cache(), now, hold)

    def hot_symbols(self, active: list[str], now: datetime) -> tuple[date, list[str]]:
        """The previous business day and its ``HOT_PINS`` most traded symbols (``1d`` volume)."""
        yesterday = previous_business_day(now.astimezone(EXCHANGE_TZ).date())
        bucket = bucket_id(datetime.combine(yesterday, time(0), tzinfo=UTC))
        volumes: list[tuple[Decimal, str]] = []
        for symbol in active:
            candle = self.candles().get(symbol, "1d", bucket)
            if candle is not None and candle.volume > 0:
                volumes.append((candle.volume, symbol))
        return yesterday, [symbol for _, symbol in sorted(volumes, key=lambda v: (-v[0], v[1]))[:HOT_PINS]]

    def warm(
        self,
        cache: SnapshotStore,
        now: datetime,
        hold_until: datetime | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time_module.sleep,
    ) -> dict[str, Any]:
        """Pin yesterday's most traded symbols, then keep every active instrument's snapshots in the
        cache (one pass, and more until ``hold_until``). Returns what it did."""
        active = [i.symbol for i in self.instruments().list_all() if i.status == "active"]
        yesterday, pinned = self.hot_symbols(active, now)
        for symbol in pinned:
            cache.pin(symbol, seconds_to_close(now))
        passes = 0
        while True:
            for symbol in active:
                cache.warm(symbol, "l2", views.book_l2(self.book_levels(), symbol))
                ticker = views.ticker(self.book_levels(), self.trades(), self.candles(), symbol, clock())
                cache.warm(symbol, "ticker", ticker)
            passes += 1
            if hold_until is None or clock() >= hold_until:
                break
            sleep(cache.config.tier1.fresh_ms / 2000)
        return {"warmed": active, "pinned": pinned, "previous_session": yesterday.isoformat(), "passes": passes}
