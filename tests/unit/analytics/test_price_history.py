"""The price history: ``nexus prices import`` (a file checked whole, nothing written on error,
the line named), the store under moto, and the demo seed (deterministic, two years, written once)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from nexus_analytics.prices import PriceFileError, parse_price_csv
from nexus_analytics.repo import CachedPriceHistory, DynamoPriceHistory
from nexus_analytics.synthetic import DEMO_DAYS, synthetic_history

from nexus.cli_analytics_data import import_prices, read_price_file
from nexus.local.demo import seed_price_history

GOOD = "date,symbol,close,open,high,low,volume\n2026-03-02,AAPL,101.25,100,102,99.5,1200000\n2026-03-03,AAPL,102,,,,\n"


def test_a_file_with_optional_columns_becomes_bars() -> None:
    # GIVEN a file with every column, one row leaving the optional ones empty
    # WHEN it is read
    bars = parse_price_csv(GOOD, {"AAPL"})
    # THEN one bar per row, the optional fields where given
    assert [(b.day, b.close, b.high, b.volume) for b in bars] == [
        (date(2026, 3, 2), Decimal("101.25"), Decimal("102"), Decimal("1200000")),
        (date(2026, 3, 3), Decimal("102"), None, None),
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("date,symbol,close\n2026-03-02,AAPL,10\n2026-03-02,AAPL,11\n", 3, "duplicate date 2026-03-02 for AAPL"),
        ("date,symbol,close\n2026-03-02,AAPL,0\n", 2, "close must be positive"),
        ("date,symbol,close\n2026-03-02,AAPL,-3\n", 2, "not a plain decimal"),
        ("date,symbol,close,low\n2026-03-02,AAPL,10,0\n", 2, "low must be positive"),
        ("date,symbol,close\n2026-03-02,AAPL,1e3\n", 2, "not a plain decimal"),
        ("date,symbol,close\n2026-03-02,AAPL,NaN\n", 2, "not a plain decimal"),
        ("date,symbol,close\n2026-03-02,AAPL,10.12345\n", 2, "more than 4 decimal places"),
        ("date,symbol,close\n2026-3-2,AAPL,10\n", 2, "is not YYYY-MM-DD"),
        ("date,symbol,close\n2026-03-02,ZZZZ,10\n", 2, "unknown symbol ZZZZ"),
        ("date,symbol,close\n2026-03-02,aapl,10\n", 2, "upper-case"),
        ("date,symbol,close\n2026-03-02,AAPL\n", 2, "2 fields, expected 3"),
        ("date,symbol,close,high,low\n2026-03-02,AAPL,10,9,8\n", 2, "outside [low 8, high 9]"),
        ("date,symbol\n2026-03-02,AAPL\n", 1, "missing column 'close'"),
        ("date,symbol,close,price\n", 1, "unknown column 'price'"),
        ("", 1, "empty"),
        ("date,symbol,close\n", 1, "no rows"),
    ],
)
def test_a_bad_file_is_refused_with_its_line_number(text: str, line: int, words: str) -> None:
    # GIVEN a file with one problem
    # WHEN it is read
    with pytest.raises(PriceFileError) as refused:
        parse_price_csv(text, {"AAPL"})
    # THEN the error names the line and what is wrong
    assert refused.value.line == line
    assert words in str(refused.value)


def test_an_import_writes_the_closes_and_a_bad_file_writes_nothing(aws: Any) -> None:
    # GIVEN the platform's tables with the instrument AAPL
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("InstrumentsTable")).put_item(
        Item={"symbol": "AAPL"}
    )
    store = DynamoPriceHistory(aws.table_name("PriceHistoryTable"))
    # WHEN a good file is imported, then a file whose third line is a duplicate
    answer = import_prices(GOOD, aws.table_name)
    bad = "date,symbol,close\n2026-03-04,AAPL,103\n2026-03-04,AAPL,104\n"
    with pytest.raises(PriceFileError) as refused:
        import_prices(bad, aws.table_name)
    # THEN the good file's closes are stored, and nothing of the bad file (not even its good line)
    assert answer == {"imported": 2, "symbols": {"AAPL": 2}, "from": "2026-03-02", "to": "2026-03-03"}
    assert refused.value.line == 3
    assert store.closes("AAPL", date(2026, 3, 1), date(2026, 3, 31)) == [
        (date(2026, 3, 2), Decimal("101.25")),
        (date(2026, 3, 3), Decimal("102")),
    ]
    assert store.last_close_on_or_before("AAPL", date(2026, 3, 10)) == (date(2026, 3, 3), Decimal("102"))


def test_reading_a_price_file_refuses_what_is_not_utf8_text(tmp_path: Path) -> None:
    # GIVEN a binary file and a missing one
    binary = tmp_path / "prices.csv"
    binary.write_bytes(b"date,symbol,close\n\xff\xfe")
    # WHEN they are read
    # THEN a ValueError names the problem
    with pytest.raises(ValueError, match="not UTF-8"):
        read_price_file(binary)
    with pytest.raises(ValueError, match="no such file"):
        read_price_file(tmp_path / "absent.csv")


def test_synthetic_history_is_deterministic_correlated_and_positive() -> None:
    # GIVEN the demo parameters
    # WHEN two years of history are drawn twice for the same end date
    first = synthetic_history(date(2026, 3, 13))
    again = synthetic_history(date(2026, 3, 13))
    # THEN the same bars, 504 sessions per symbol ending on the end date, sane OHLC, positive closes
    assert first == again
    assert len(first) == 4 * DEMO_DAYS
    aapl = [b for b in first if b.symbol == "AAPL"]
    assert aapl[-1].day == date(2026, 3, 13)
    assert all(b.close > 0 and b.low <= b.close <= b.high and b.low <= b.open <= b.high for b in first)  # type: ignore[operator]
    # AND the daily returns of two symbols are positively correlated (the model's 0.55)
    import numpy as np

    msft = [b for b in first if b.symbol == "MSFT"]
    a = np.diff(np.log([float(b.close) for b in aapl]))
    m = np.diff(np.log([float(b.close) for b in msft]))
    assert 0.4 < float(np.corrcoef(a, m)[0, 1]) < 0.7


def test_the_demo_seed_writes_two_years_once(aws: Any) -> None:
    # GIVEN a fresh platform
    store = DynamoPriceHistory(aws.table_name("PriceHistoryTable"))
    # WHEN the demo seed runs on a Monday, then again (a restart)
    written = seed_price_history(aws.table_name, today=date(2026, 3, 16))
    again = seed_price_history(aws.table_name, today=date(2026, 3, 16))
    # THEN two years of closes up to the Friday before, and nothing the second time
    assert (written, again) == (4 * DEMO_DAYS, 0)
    closes = store.closes("GOOGL", date(2024, 1, 1), date(2026, 3, 16))
    assert len(closes) == DEMO_DAYS
    assert closes[-1][0] == date(2026, 3, 13)


def test_a_warm_function_reads_a_symbols_closes_once_per_cache_interval(aws: Any) -> None:
    # GIVEN AAPL's closes and a cached store with a 60-second bound on a test clock
    name = aws.table_name("PriceHistoryTable")
    writer = DynamoPriceHistory(name)
    writer.put_many(parse_price_csv(GOOD))
    clock = [1000.0]
    cached = CachedPriceHistory(name, ttl=60, clock=lambda: clock[0])
    year = (date(2026, 1, 1), date(2026, 12, 31))
    assert cached.closes("AAPL", *year) == [(date(2026, 3, 2), Decimal("101.25")), (date(2026, 3, 3), Decimal("102"))]
    # WHEN a close is imported inside the interval
    writer.put_many(parse_price_csv("date,symbol,close\n2026-03-04,AAPL,103\n"))
    # THEN a narrower range is answered from memory (without the new close), a wider one is read
    assert cached.closes("AAPL", date(2026, 3, 3), date(2026, 3, 31)) == [(date(2026, 3, 3), Decimal("102"))]
    assert len(cached.closes("AAPL", date(2025, 1, 1), date(2026, 12, 31))) == 3
    # and once the interval has passed the table is read again
    clock[0] += 61
    assert cached.closes("AAPL", *year)[-1] == (date(2026, 3, 4), Decimal("103"))
    # and a bound of 0 always reads the table
    uncached = CachedPriceHistory(name, ttl=0)
    writer.put_many(parse_price_csv("date,symbol,close\n2026-03-05,AAPL,104\n"))
    assert uncached.closes("AAPL", *year)[-1] == (date(2026, 3, 5), Decimal("104"))
