"""The candle items' format (``nexus_common.candle_items``) reads what the market data service
writes: a closed candle's item and a symbol's live item."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from nexus_common.candle_items import LIVE_BUCKET, copy_of, counted, live_candles, live_key, series_id
from nexus_marketdata.candles import Candle, live_item

DAY = "2026-03-05T00:00:00Z"


def candle(interval: str, start: datetime, last_seq: int, epoch: int = 0) -> Candle:
    d = Decimal
    return Candle(symbol="AAPL", interval=interval, start=start, open=d("100.00"), high=d("101.00"), low=d("99.50"),
                  close=d("100.50"), volume=d(30), notional=d("3010.00"), trades=3, first_seq=1, last_seq=last_seq,
                  epoch=epoch)  # fmt: skip


def test_a_closed_candles_item_is_the_copy_of_its_own_bucket_only() -> None:
    item = candle("1d", datetime(2026, 3, 5, tzinfo=UTC), 7).to_item()
    assert (item["series"], item["bucket"]) == (series_id("AAPL", "1d"), DAY)
    assert copy_of(item, "1d", DAY) == item
    assert copy_of(item, "1d", "2026-03-06T00:00:00Z") is None
    assert live_candles(item) == {}


def test_a_live_item_holds_one_copy_per_interval_of_its_newest_bucket() -> None:
    minute = candle("1m", datetime(2026, 3, 5, 15, 30, tzinfo=UTC), 9)
    day = candle("1d", datetime(2026, 3, 5, tzinfo=UTC), 9)
    item = live_item("AAPL", {"1m": minute, "1d": day})
    assert (item["series"], item["bucket"]) == live_key("AAPL") == ("AAPL#live", LIVE_BUCKET)
    assert set(live_candles(item)) == {"1m", "1d"}
    found = copy_of(item, "1d", DAY)
    assert found is not None and found["close"] == Decimal("100.50") and counted(found) == (0, 9)
    assert copy_of(item, "1d", "2026-03-04T00:00:00Z") is None  # another day's candle is not this one
    assert copy_of(item, "1h", DAY) is None  # no such interval in the item
    assert copy_of(item, "1m", "2026-03-05T15:30:00Z") is not None


def test_the_copy_that_counted_further_wins_by_epoch_then_last_seq() -> None:
    day = datetime(2026, 3, 5, tzinfo=UTC)
    older_epoch = candle("1d", day, 50, epoch=0).to_item()
    newer_epoch = candle("1d", day, 3, epoch=1).to_item()
    assert counted(newer_epoch) > counted(older_epoch)
    assert counted(candle("1d", day, 8).to_item()) > counted(candle("1d", day, 7).to_item())
