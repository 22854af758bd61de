"""The market data snapshots the API serves (and the cache stores), built from the stored views.
No boto3: the data access is given.

* ``book_l2``: aggregated depth, best first, up to ``L2_SNAPSHOT_DEPTH`` levels a side (a
  request for ``depth=N`` is cut from it); L1 is its first level of each side.
* ``book_l3``: the resting orders of the best ``L3_SNAPSHOT_DEPTH`` levels, in time priority.
* ``ticker``: L1 (best bid and offer), the last trade, and the UTC day's OHLCV (the ``1d``
  candle of the day of ``now``: ``volume`` is the shares traded since 00:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from nexus_common.money import fmt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from nexus_marketdata.candles import Candle, bucket_id, bucket_start
from nexus_marketdata.domain import BookLevel, trade_to_wire
from nexus_marketdata.l3 import L3Level

L2_SNAPSHOT_DEPTH: Final = 100
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
L3_SNAPSHOT_DEPTH: Final = 20


class LevelsSource(Protocol):
    def top(self, symbol: str, side: str, depth: int) -> list[BookLevel]: ...


class OrdersSource(Protocol):
    def side(self, symbol: str, side: str, depth: int) -> list[L3Level]: ...


class TapeSource(Protocol):
    def recent(self, symbol: str, limit: int) -> list[dict[str, Any]]: ...


class CandleSource(Protocol):
    def get(self, symbol: str, interval: str, bucket: str) -> Candle | None: ...


# -- queries ---------------------------------------------------------------------------------


class BookQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: int = Field(default=2, ge=1, le=3, description="1: best bid and offer, 2: aggregated depth, 3: orders")
    depth: int = Field(default=10, ge=1, le=L2_SNAPSHOT_DEPTH)


class CandlesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Literal["1m", "5m", "1h", "1d"]
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None
    limit: int = Field(default=500, ge=1, le=1000)

    @field_validator("from_", "to")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        """Instants from 1970 to 9000 (UTC): no bucket arithmetic can overflow."""
        if value is None:
            return None
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("instant out of range") from None
        if not EARLIEST <= utc <= LATEST:
            raise ValueError("instant must be between 1970 and 9000 (UTC)")
        return utc


# -- responses (documentation of the wire shapes) ----------------------------------------------


class LevelOut(BaseModel):
    price: str
    quantity: str
    orders: int


class L3OrderOut(BaseModel):
    id: str
    quantity: str


class L3LevelOut(BaseModel):
    price: str
    quantity: str
    orders: list[L3OrderOut]


class BookOut(BaseModel):
    symbol: str
    level: int
    bids: list[LevelOut] | list[L3LevelOut]
    asks: list[LevelOut] | list[L3LevelOut]


class LastTradeOut(BaseModel):
    trade_id: str
    seq: int
    price: str
    quantity: str
    aggressor_side: str
    ts: str


class DayOut(BaseModel):
    date: str
    open: str | None
    high: str | None
    low: str | None
    volume: str
    notional: str
    trades: int


class TickerOut(BaseModel):
    symbol: str
    bid: LevelOut | None
    ask: LevelOut | None
    last: LastTradeOut | None
    volume: str
    day: DayOut


class CandleOut(BaseModel):
    start: str
    end: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    notional: str
    trades: int


class CandlesOut(BaseModel):
    symbol: str
    interval: str
    candles: list[CandleOut]


# -- snapshots -------------------------------------------------------------------------------


def book_l2(levels: LevelsSource, symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "bids": [lv.to_wire() for lv in levels.top(symbol, "buy", L2_SNAPSHOT_DEPTH)],
        "asks": [lv.to_wire() for lv in levels.top(symbol, "sell", L2_SNAPSHOT_DEPTH)],
    }


def book_l3(orders: OrdersSource, symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "bids": [lv.to_wire() for lv in orders.side(symbol, "buy", L3_SNAPSHOT_DEPTH)],
        "asks": [lv.to_wire() for lv in orders.side(symbol, "sell", L3_SNAPSHOT_DEPTH)],
    }


def cut(snapshot: dict[str, Any], level: int, depth: int) -> dict[str, Any]:
    """The answer to ``?level=&depth=`` from a cached snapshot."""
    if level == 1:
        depth = 1
    return {
        "symbol": snapshot["symbol"],
        "level": level,
        "bids": snapshot["bids"][:depth],
        "asks": snapshot["asks"][:depth],
    }


def ticker(
    levels: LevelsSource, tape: TapeSource, candles: CandleSource, symbol: str, now: datetime
) -> dict[str, Any]:
    bids = levels.top(symbol, "buy", 1)
    asks = levels.top(symbol, "sell", 1)
    last = tape.recent(symbol, 1)
    day = bucket_id(bucket_start(now, "1d"))
    candle = candles.get(symbol, "1d", day)
    volume = candle.volume if candle is not None else Decimal(0)
    return {
        "symbol": symbol,
        "bid": bids[0].to_wire() if bids else None,
        "ask": asks[0].to_wire() if asks else None,
        "last": trade_to_wire(last[0]) if last else None,
        "volume": fmt(volume),
        "day": {
            "date": day[:10],
            "open": fmt(candle.open) if candle else None,
            "high": fmt(candle.high) if candle else None,
            "low": fmt(candle.low) if candle else None,
            "volume": fmt(volume),
            "notional": fmt(candle.notional) if candle else "0",
            "trades": candle.trades if candle else 0,
        },
    }
