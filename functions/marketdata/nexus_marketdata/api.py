"""Market data HTTP API (Chalice): instruments, ticker, L1/L2/L3 book, trade tape, candles.

The routes parse and answer; ``nexus_marketdata.service.MarketDataQueries`` reads. Book and ticker
snapshots are served through the Redis snapshot cache (``repo.SnapshotCache``); if Redis
cannot be reached the source (DynamoDB) answers directly, so the cache is never a single point
of failure. ``X-Cache`` tells how a snapshot was served (hit, stale, fetched, coalesced,
fallback, bypass) and ``X-Cache-Age-Ms`` its age on a hit or stale answer.
"""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.http import install_error_handling, json_response, parse_query
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings
from pydantic import BaseModel, ConfigDict

from nexus_marketdata import views
from nexus_marketdata.domain import TradesQuery
from nexus_marketdata.ports import CacheRead
from nexus_marketdata.repo import DynamoBookLevels, DynamoBookOrders, DynamoCandles, DynamoTrades, SnapshotCache
from nexus_marketdata.service import MarketDataQueries
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
queries = lazy(lambda: MarketDataQueries(instruments, book_levels, book_orders, trades, candles, cache, logger))


class _NoQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketsOut(BaseModel):
    markets: list[dict[str, str]]


class TradesOut(BaseModel):
    symbol: str
    trades: list[views.LastTradeOut]


def _cache_headers(read: CacheRead) -> dict[str, str]:
    return {"X-Cache": read.outcome, "X-Cache-Age-Ms": str(read.age_ms)}


@app.route("/v1/markets", methods=["GET"])
@documented(summary="List instruments", response=MarketsOut, tags=("markets",))
def list_markets() -> Response:
    """Every instrument with its tick size, lot size and status."""
    return json_response({"markets": queries().markets()})


@app.route("/v1/markets/{symbol}/book", methods=["GET"])
@documented(summary="Order book: L1, L2 or L3", query=views.BookQuery, response=views.BookOut, tags=("markets",))
def get_book(symbol: str) -> Response:
    """``?level=1|2|3`` (default 2) and ``?depth=N`` levels a side (1..100; L3: 1..20).

    L1: the best bid and offer. L2: aggregated levels. L3: each level's resting orders in time
    priority, anonymous (opaque ids, no accounts). Bids best (highest) first, asks lowest first."""
    query = parse_query(app.current_request, views.BookQuery)
    read = queries().book(symbol, query.level, query.depth)
    return json_response(read.value, headers=_cache_headers(read))


@app.route("/v1/markets/{symbol}/ticker", methods=["GET"])
@documented(summary="Ticker: best bid/offer, last trade, UTC-day volume", response=views.TickerOut, tags=("markets",))
def get_ticker(symbol: str) -> Response:
    parse_query(app.current_request, _NoQuery)
    read = queries().ticker(symbol)
    return json_response(read.value, headers=_cache_headers(read))


@app.route("/v1/markets/{symbol}/trades", methods=["GET"])
@documented(summary="Trade tape, newest first", query=TradesQuery, response=TradesOut, tags=("markets",))
def get_trades(symbol: str) -> Response:
    """Trade tape, newest first: ``?limit=1..500`` (default 50)."""
    query = parse_query(app.current_request, TradesQuery)
    return json_response(queries().recent_trades(symbol, query.limit))


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
    return json_response(queries().candle_series(symbol, query.interval, query.from_, query.to, query.limit))
