"""OHLCV candles from the trade tape: pure domain, no boto3.

Intervals ``1m``, ``5m``, ``1h`` and ``1d``; every bucket is a half-open UTC interval
``[start, start + interval)`` aligned on the Unix epoch, so ``1d`` is the UTC calendar day
(00:00:00Z to 24:00:00Z), not the New York session. A trade belongs to the bucket of its ``ts``
(the engine's time, from the command; never a clock).

A candle carries its watermark: ``last_seq`` (the symbol's engine seq of the last trade it
counts) and ``epoch``. ``fold`` counts in a candle only the trades whose seq is above the
watermark (and whose epoch is not older), so a redelivered or replayed trade cannot count twice;
trades of one symbol arrive in seq order (one Kinesis shard per symbol, in order), so a seq at or
below the watermark was already counted.

Where a candle is kept: each symbol's newest candle of every interval (its *live* candles) are in
one item, ``live_item`` (series ``<symbol>#live``, bucket ``live``), so a batch of trades is one
write per symbol, not one per interval. A candle leaves the live item when a trade opens the next
bucket of its interval: it is then *closed*, written as an item of its own (series
``<symbol>#<interval>``, bucket = its UTC start), before the live item that no longer holds it. A
reader of a bucket looks in both places and takes the copy that counted further (epoch, then
``last_seq``: ``newest``); in memory the live candles are keyed ``(<symbol>#live, <interval>)`` beside the
closed ones (``candles_from_item``). ``advance`` folds a batch's trades into both. The items'
format is ``nexus_common.candle_items``, which the other services read too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from nexus_common.candle_items import LIVE_BUCKET, is_live, live_candles, live_key, live_series, series_id
from nexus_common.events import TradeEvent
from nexus_common.money import fmt

Interval = Literal["1m", "5m", "1h", "1d"]
INTERVALS: Final[dict[str, int]] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
_ITEM_TIME: Final = "%Y-%m-%dT%H:%M:%SZ"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(ts: datetime, interval: str) -> datetime:
    """The UTC start of the ``interval`` bucket holding ``ts``."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime")
    seconds = INTERVALS[interval]
    elapsed = int((ts.astimezone(UTC) - _EPOCH) // timedelta(seconds=1))
    return _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


def bucket_id(start: datetime) -> str:
    return start.astimezone(UTC).strftime(_ITEM_TIME)


def candle_key(symbol: str, interval: str, ts: datetime) -> tuple[str, str]:
    """The (series, bucket) key of the ``interval`` candle holding instant ``ts``."""
    return series_id(symbol, interval), bucket_id(bucket_start(ts, interval))



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
        return {"series": series, "bucket": bucket, "symbol": self.symbol, "interval": self.interval, **self._fields()}

    def _fields(self) -> dict[str, Any]:
        return {
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


def live_item(symbol: str, candles: Mapping[str, Candle]) -> dict[str, Any]:
    """A symbol's live item: its newest candle of each interval (by interval, each with its
    ``bucket``), and ``last_seq``, the highest of theirs (what the next write is conditional on)."""
    return {
        "series": live_series(symbol),
        "bucket": LIVE_BUCKET,
        "symbol": symbol,
        "last_seq": max(candle.last_seq for candle in candles.values()),
        "candles": {
            interval: {"bucket": bucket_id(candle.start), **candle._fields()} for interval, candle in candles.items()
        },
    }


def candles_from_item(item: Mapping[str, Any]) -> dict[tuple[str, str], Candle]:
    """The candles of a stored item: a closed candle under its key, or a live item's candles
    under ``(<symbol>#live, <interval>)``."""
    if not is_live(item):
        return {(str(item["series"]), str(item["bucket"])): candle_from_item(item)}
    symbol = str(item["symbol"])
    return {
        (live_series(symbol), str(interval)): candle_from_item({**fields, "symbol": symbol, "interval": interval})
        for interval, fields in live_candles(item).items()
        if interval in INTERVALS
    }


def newest(*candles: Candle | None) -> Candle | None:
    """Of the copies of one bucket's candle (live, closed), the one that counted further
    (``nexus_common.candle_items.counted``)."""
    found = [candle for candle in candles if candle is not None]
    return max(found, key=lambda c: (c.epoch, c.last_seq)) if found else None


def candle_from_item(item: Mapping[str, Any]) -> Candle:
    def dec(name: str) -> Decimal:
        return Decimal(str(item[name]))

    return Candle(
        symbol=str(item["symbol"]),
        interval=str(item["interval"]),
        start=datetime.strptime(str(item["bucket"]), _ITEM_TIME).replace(tzinfo=UTC),
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
    """Every key a fold of the trades reads, each once: each symbol's live item, then the
    (series, bucket) of every candle the trades touch, in first-touch order. The closed candles
    are read too: a bucket whose candle is not live (a redelivered record whose minute has closed
    since, or candles written before the live item existed) is folded onto its stored one."""
    keys: dict[tuple[str, str], None] = {}
    for trade in trades:
        keys[live_key(trade.symbol)] = None
        for interval in INTERVALS:
            keys[candle_key(trade.symbol, interval, trade.ts)] = None
    return list(keys)


@dataclass(frozen=True)
class Advance:
    """What a symbol's trades change: its live candles (None: unchanged), and the candles to write
    as items of their own (the ones the trades closed, and a bucket before the live one that a
    trade changed), oldest first."""

    live: dict[str, Candle] | None
    closed: list[Candle]


def advance(stored: Mapping[tuple[str, str], Candle], symbol: str, trades: Iterable[TradeEvent]) -> Advance:
    """Fold one symbol's ``trades`` (any order: folded in seq order) onto what is stored
    (``candles_from_item`` of its live item and of the closed candles the trades touch: see
    ``candle_keys``). Each trade counts in the newest stored copy of its bucket's candle,
    once (the watermark); a trade in a later bucket than an interval's live candle closes it."""
    live = {i: stored[(live_series(symbol), i)] for i in INTERVALS if (live_series(symbol), i) in stored}
    closed: dict[tuple[str, str], Candle] = {}
    live_changed = False
    for trade in sorted((t for t in trades if t.symbol == symbol), key=lambda t: t.seq):
        for interval in INTERVALS:
            key = candle_key(symbol, interval, trade.ts)
            head = live.get(interval)
            kept = newest(closed.get(key), stored.get(key))
            folded = fold(newest(head, kept) if head is not None and head.key == key else kept, trade, interval)
            if folded is None:
                continue
            if head is not None and folded.start < head.start:
                closed[key] = folded  # a late trade, in a bucket closed before
                continue
            if head is not None and head.start < folded.start:
                # the trade opens the next bucket: the live one closes (its newest copy: an attempt
                # that stopped before its live write may have closed it with more trades)
                closed[head.key] = newest(head, closed.get(head.key), stored.get(head.key)) or head
            live[interval] = folded
            live_changed = True
    return Advance(live if live_changed else None, sorted(closed.values(), key=lambda c: (c.start, c.interval)))

