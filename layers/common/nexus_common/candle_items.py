"""The candle items of ``CandlesTable``, as the market data service writes them and every service
reads them (no boto3; ``nexus_marketdata.candles`` has the candles themselves).

* A *closed* candle is an item of its own: series ``<symbol>#<interval>``, bucket its UTC start
  (``2026-03-05T00:00:00Z``), the candle's fields beside them.
* A symbol's newest candle of each interval is in its *live* item: series ``<symbol>#live``, bucket
  ``live``, ``candles`` = {interval: the candle's fields with its ``bucket``}, and ``last_seq``.

A bucket's candle may be in both (the live copy until the next bucket's first trade closes it,
then the closed one): the copy that counted further (``counted``: epoch, then ``last_seq``) is
the candle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

LIVE_BUCKET: Final = "live"  # the sort key of a symbol's live item (an interval is never "live")


def series_id(symbol: str, interval: str) -> str:
    """The partition key of a symbol's closed candles of ``interval``."""
    return f"{symbol}#{interval}"


def live_series(symbol: str) -> str:
    """The partition key of a symbol's live item."""
    return series_id(symbol, LIVE_BUCKET)


def live_key(symbol: str) -> tuple[str, str]:
    """The (series, bucket) key of a symbol's live item."""
    return live_series(symbol), LIVE_BUCKET


def is_live(item: Mapping[str, Any]) -> bool:
    return item.get("bucket") == LIVE_BUCKET


def live_candles(item: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A live item's candles by interval: each one's fields, with its ``bucket`` (empty for a
    closed candle's item)."""
    return dict(item.get("candles") or {}) if is_live(item) else {}


def copy_of(item: Mapping[str, Any], interval: str, bucket: str) -> Mapping[str, Any] | None:
    """The fields of the ``interval`` candle of ``bucket`` that ``item`` holds (a closed candle's
    item: itself; a live item: its entry for ``interval`` while that is the bucket), else None."""
    candle = live_candles(item).get(interval) if is_live(item) else item
    return candle if candle and candle.get("bucket") == bucket else None


def counted(candle: Mapping[str, Any]) -> tuple[int, int]:
    """How far a copy of a candle has counted: its engine epoch, then its last seq."""
    return int(candle.get("epoch", 0)), int(candle["last_seq"])
