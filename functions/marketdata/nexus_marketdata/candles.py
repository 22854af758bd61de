"""OHLCV candles from the trade tape: pure domain, no boto3.

Intervals ``1m``, ``5m``, ``1h`` and ``1d``; every bucket is a half-open UTC interval
``[start, start + interval)`` aligned on the Unix epoch, so ``1d`` is the UTC calendar day
(00:00:00Z to 24:00:00Z), not the New York session. A trade belongs to the bucket of its ``ts``
(the engine's time, from the command; never a clock).

A candle carries its watermark: ``last_seq`` (the symbol's engine seq of the last trade it
counts) and ``epoch``. ``merge`` folds into a candle only the trades whose seq is above the
watermark (and whose epoch is not older), so a redelivered or replayed trade cannot count twice;
trades of one symbol arrive in seq order (one Kinesis shard per symbol, in order), so a seq at or
below the watermark was already counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from nexus_common.events import TradeEvent
from nexus_common.money import fmt

Interval = Literal["1m", "5m", "1h", "1d"]
INTERVALS: Final[dict[str, int]] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(ts: datetime, interval: str) -> datetime:
    """The UTC start of the ``interval`` bucket holding ``ts``."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime")
    seconds = INTERVALS[interval]
    elapsed = int((ts.astimezone(UTC) - _EPOCH) // timedelta(seconds=1))
    return _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


def bucket_id(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def series_id(symbol: str, interval: str) -> str:
    return f"{symbol}#{interval}"


@dataclass(frozen=True)
class Candle:
    symbol: str
    interval: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal  # shares
    notional: Decimal  # sum of price x quantity, exact
    trades: int
    first_seq: int
    last_seq: int
    epoch: int

    @property
    def key(self) -> tuple[str, str]:
        return series_id(self.symbol, self.interval), bucket_id(self.start)

    def to_item(self) -> dict[str, Any]:
        series, bucket = self.key
        return {
            "series": series,
            "bucket": bucket,
            "symbol": self.symbol,
            "interval": self.interval,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "notional": self.notional,
            "trades": self.trades,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "epoch": self.epoch,
        }

    def to_wire(self) -> dict[str, Any]:
        end = self.start + timedelta(seconds=INTERVALS[self.interval])
        return {
            "start": bucket_id(self.start),
            "end": bucket_id(end),
            "open": fmt(self.open),
            "high": fmt(self.high),
            "low": fmt(self.low),
            "close": fmt(self.close),
            "volume": fmt(self.volume),
            "notional": fmt(self.notional),
            "trades": self.trades,
        }


def candle_from_item(item: Mapping[str, Any]) -> Candle:
    def dec(name: str) -> Decimal:
        return Decimal(str(item[name]))

    return Candle(
        symbol=str(item["symbol"]),
        interval=str(item["interval"]),
        start=datetime.strptime(str(item["bucket"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        open=dec("open"),
        high=dec("high"),
        low=dec("low"),
        close=dec("close"),
        volume=dec("volume"),
        notional=dec("notional"),
        trades=int(item["trades"]),
        first_seq=int(item["first_seq"]),
        last_seq=int(item["last_seq"]),
        epoch=int(item["epoch"]),
    )


def fold(candle: Candle | None, trade: TradeEvent, interval: str) -> Candle | None:
    """``candle`` with ``trade`` counted; None (nothing to do) when the watermark has it."""
    if candle is not None and (trade.seq <= candle.last_seq or trade.epoch < candle.epoch):
        return None
    if candle is None:
        return Candle(
            symbol=trade.symbol,
            interval=interval,
            start=bucket_start(trade.ts, interval),
            open=trade.price,
            high=trade.price,
            low=trade.price,
            close=trade.price,
            volume=trade.quantity,
            notional=trade.price * trade.quantity,
            trades=1,
            first_seq=trade.seq,
            last_seq=trade.seq,
            epoch=trade.epoch,
        )
    return replace(
        candle,
        high=max(candle.high, trade.price),
        low=min(candle.low, trade.price),
        close=trade.price,
        volume=candle.volume + trade.quantity,
        notional=candle.notional + trade.price * trade.quantity,
        trades=candle.trades + 1,
        last_seq=trade.seq,
        epoch=trade.epoch,
    )


def candle_keys(trades: Iterable[TradeEvent]) -> list[tuple[str, str]]:
    """Every (series, bucket) key the trades touch, each once, in first-touch order."""
    keys: dict[tuple[str, str], None] = {}
    for trade in trades:
        for interval in INTERVALS:
            keys[(series_id(trade.symbol, interval), bucket_id(bucket_start(trade.ts, interval)))] = None
    return list(keys)


def merge(
    existing: Mapping[tuple[str, str], Candle], trades: Iterable[TradeEvent]
) -> dict[tuple[str, str], Candle]:
    """The candles changed by ``trades`` (in seq order), folded onto what is stored.

    One entry per changed (series, bucket): a record's many trades become one write per candle.
    """
    current: dict[tuple[str, str], Candle] = dict(existing)
    changed: dict[tuple[str, str], Candle] = {}
    for trade in sorted(trades, key=lambda t: t.seq):
        for interval in INTERVALS:
            key = (series_id(trade.symbol, interval), bucket_id(bucket_start(trade.ts, interval)))
            folded = fold(current.get(key), trade, interval)
            if folded is not None:
                current[key] = changed[key] = folded
    return changed
