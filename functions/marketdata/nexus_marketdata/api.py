"""Market data HTTP API (Chalice): instruments, ticker, L1/L2/L3 book, trade tape, candles.

Book and ticker snapshots are served through the Redis snapshot cache (``cache.py``); if Redis
cannot be reached the source (DynamoDB) answers directly, so the cache is never a single point
of failure. ``X-Cache`` tells how a snapshot was served (hit, stale, fetched, coalesced,
fallback, bypass) and ``X-Cache-Age-Ms`` its age on a hit or stale answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
from botocore.exceptions import ClientError
from chalice.app import Chalice, Response
from nexus_common.errors import NotFound, ValidationFailed
from nexus_common.events import utc_now
from nexus_common.http import install_error_handling, json_response, parse_query
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import Instrument
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings
from pydantic import BaseModel, ConfigDict

from nexus_marketdata import views
from nexus_marketdata.cache import CacheRead, SnapshotCache
from nexus_marketdata.candles import INTERVALS, bucket_id, bucket_start
from nexus_marketdata.domain import TradesQuery, instrument_to_wire, trade_to_wire
from nexus_marketdata.repo import DynamoBookLevels, DynamoBookOrders, DynamoCandles, DynamoTrades
from nexus_marketdata.settings import MarketDataApiSettings

app = Chalice(app_name="nexus-marketdata", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(MarketDataApiSettings)
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
book_orders = lazy(lambda: DynamoBookOrders(settings().book_orders_table))
trades = lazy(lambda: DynamoTrades(settings().trades_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))
cache = lazy(lambda: SnapshotCache(redis_client()))


class _NoQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketsOut(BaseModel):
    markets: list[dict[str, str]]


class TradesOut(BaseModel):
    symbol: str
    trades: list[views.LastTradeOut]


def _instrument(symbol: str) -> Instrument:
    found = instruments().get(symbol)
    if found is None:
        raise NotFound("unknown_symbol", f"unknown symbol {symbol!r}", "symbol")
    return found


def _cached(symbol: str, view: str, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
    """The snapshot through the cache; straight from the source when Redis cannot be had (its
    URL unreadable, or the server down): slower, never wrong."""
    try:
        snapshots = cache()
    except (redis.RedisError, RuntimeError, ClientError) as exc:
        logger.warning("snapshot cache unavailable, reading the source", extra={"error": type(exc).__name__})
        return CacheRead(fetch(), "bypass", False)
    try:
        return snapshots.get(symbol, view, fetch)
    except redis.RedisError as exc:
        logger.warning("snapshot cache unavailable, reading the source", extra={"error": type(exc).__name__})
        return CacheRead(fetch(), "bypass", False)


def _cache_headers(read: CacheRead) -> dict[str, str]:
    return {"X-Cache": read.outcome, "X-Cache-Age-Ms": str(read.age_ms)}


@app.route("/v1/markets", methods=["GET"])
@documented(summary="List instruments", response=MarketsOut, tags=("markets",))
def list_markets() -> Response:
    """Every instrument with its tick size, lot size and status."""
    return json_response({"markets": [instrument_to_wire(i) for i in instruments().list_all()]})


@app.route("/v1/markets/{symbol}/book", methods=["GET"])
@documented(summary="Order book: L1, L2 or L3", query=views.BookQuery, response=views.BookOut, tags=("markets",))
def get_book(symbol: str) -> Response:
    """``?level=1|2|3`` (default 2) and ``?depth=N`` levels a side (1..100; L3: 1..20).

    L1: the best bid and offer. L2: aggregated levels. L3: each level's resting orders in time
    priority, anonymous (opaque ids, no accounts). Bids best (highest) first, asks lowest first."""
    query = parse_query(app.current_request, views.BookQuery)
    if query.level == 3 and query.depth > views.L3_SNAPSHOT_DEPTH:
        raise ValidationFailed("invalid_field", f"L3 depth is at most {views.L3_SNAPSHOT_DEPTH}", "depth")
    instrument = _instrument(symbol)
    if query.level == 3:
        read = _cached(instrument.symbol, "l3", lambda: views.book_l3(book_orders(), instrument.symbol))
    else:
        read = _cached(instrument.symbol, "l2", lambda: views.book_l2(book_levels(), instrument.symbol))
    return json_response(views.cut(read.value, query.level, query.depth), headers=_cache_headers(read))


@app.route("/v1/markets/{symbol}/ticker", methods=["GET"])
@documented(summary="Ticker: best bid/offer, last trade, UTC-day volume", response=views.TickerOut, tags=("markets",))
def get_ticker(symbol: str) -> Response:
    parse_query(app.current_request, _NoQuery)
    instrument = _instrument(symbol)
    read = _cached(
        instrument.symbol,
        "ticker",
        lambda: views.ticker(book_levels(), trades(), candles(), instrument.symbol, utc_now()),
    )
    return json_response(read.value, headers=_cache_headers(read))


@app.route("/v1/markets/{symbol}/trades", methods=["GET"])
@documented(summary="Trade tape, newest first", query=TradesQuery, response=TradesOut, tags=("markets",))
def get_trades(symbol: str) -> Response:
    """Trade tape, newest first: ``?limit=1..500`` (default 50)."""
    query = parse_query(app.current_request, TradesQuery)
    instrument = _instrument(symbol)
    rows = trades().recent(instrument.symbol, query.limit)
    return json_response({"symbol": instrument.symbol, "trades": [trade_to_wire(r) for r in rows]})


@app.route("/v1/markets/{symbol}/candles", methods=["GET"])
@documented(
    summary="OHLCV candles, oldest first", query=views.CandlesQuery, response=views.CandlesOut, tags=("markets",)
)
def get_candles(symbol: str) -> Response:
    """``?interval=1m|5m|1h|1d`` (required), ``from``/``to`` (ISO-8601 instants with an offset;
    default: the last ``limit`` buckets up to now), ``limit`` (1..1000, default 500). Buckets are
    UTC; ``1d`` is the UTC calendar day. A bucket is listed when ``from`` falls in it or after it
    starts, up to the bucket holding ``to``; buckets without trades are absent."""
    query = parse_query(app.current_request, views.CandlesQuery)
    if query.from_ is not None and query.to is not None and query.from_ > query.to:
        raise ValidationFailed("invalid_range", "from must not be after to", "from")
    instrument = _instrument(symbol)
    seconds = INTERVALS[query.interval]
    end = query.to or utc_now()
    start = query.from_ or end - timedelta(seconds=seconds * (query.limit - 1))
    rows = candles().range(
        instrument.symbol,
        query.interval,
        bucket_id(bucket_start(start, query.interval)),
        bucket_id(bucket_start(end, query.interval)),
        query.limit,
    )
    return json_response(
        {"symbol": instrument.symbol, "interval": query.interval, "candles": [c.to_wire() for c in rows]}
    )
