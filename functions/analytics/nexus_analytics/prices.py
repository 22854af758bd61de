"""Daily price history: reading a CSV of closes (``nexus prices import``). No I/O beyond the
text given.

The file has a header row naming its columns: ``date``, ``symbol``, ``close`` are required;
``open``, ``high``, ``low``, ``volume`` are optional (any order, no other column). Dates are ISO
(``YYYY-MM-DD``, the exchange's session date); prices are positive decimals with at most 4
places (per-share precision), volumes non-negative with at most 8. A file is all or nothing:
the first problem is reported with its line number (the header is line 1) and nothing is kept.
Refused: a duplicate (symbol, date), a non-positive price, a high below the low or a close
outside [low, high] when both are given, a symbol the instrument list does not have (when
one is given), more than ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Container
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final

from nexus_analytics.ports import PriceBar

REQUIRED: Final = ("date", "symbol", "close")
OPTIONAL: Final = ("open", "high", "low", "volume")
MAX_ROWS: Final = 1_000_000
MAX_FIELD_CHARS: Final = 32
_SYMBOL: Final = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")
_DECIMAL: Final = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,8})?$")


class PriceFileError(ValueError):
    """A price file that cannot be imported: ``line`` (1 = the header) and what is wrong."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


def _number(raw: str, name: str, line: int, places: int, positive: bool) -> Decimal:
    text = raw.strip()
    if len(text) > MAX_FIELD_CHARS or not _DECIMAL.match(text):
        raise PriceFileError(line, f"{name} {raw!r} is not a plain decimal number")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise PriceFileError(line, f"{name} {raw!r} is not a number") from None
    if positive and value <= 0:
        raise PriceFileError(line, f"{name} must be positive, not {text}")
    if -value.as_tuple().exponent > places:  # type: ignore[operator]
        raise PriceFileError(line, f"{name} {text} has more than {places} decimal places")
    return value


def parse_price_csv(text: str, known_symbols: Container[str] | None = None) -> list[PriceBar]:
    """Every row of the file as a ``PriceBar``, or ``PriceFileError`` at the first problem."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise PriceFileError(1, "the file is empty (expected a header: date,symbol,close)") from None
    columns = [name.strip().lower() for name in header]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise PriceFileError(1, f"unknown column {unknown[0]!r} (columns: date,symbol,close[,open,high,low,volume])")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise PriceFileError(1, f"missing column {missing[0]!r}")
    if len(set(columns)) != len(columns):
        raise PriceFileError(1, "a column is named twice")
    at = {name: i for i, name in enumerate(columns)}
    bars: list[PriceBar] = []
    seen: dict[tuple[str, date], int] = {}
    for index, row in enumerate(reader):
        line = index + 2
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(bars) >= MAX_ROWS:
            raise PriceFileError(line, f"more than {MAX_ROWS} rows")
        if len(row) != len(columns):
            raise PriceFileError(line, f"{len(row)} fields, expected {len(columns)}")
        symbol = row[at["symbol"]].strip()
        if not _SYMBOL.match(symbol):
            raise PriceFileError(line, f"symbol {symbol!r} is not upper-case letters and digits")
        if known_symbols is not None and symbol not in known_symbols:
            raise PriceFileError(line, f"unknown symbol {symbol}")
        raw_day = row[at["date"]].strip()
        try:
            if len(raw_day) != 10:
                raise ValueError(raw_day)
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise PriceFileError(line, f"date {raw_day!r} is not YYYY-MM-DD") from None
        if (symbol, day) in seen:
            first = seen[(symbol, day)]
            raise PriceFileError(line, f"duplicate date {day.isoformat()} for {symbol} (first on line {first})")
        seen[(symbol, day)] = line
        close = _number(row[at["close"]], "close", line, 4, positive=True)
        optional: dict[str, Decimal | None] = {}
        for name in ("open", "high", "low"):
            cell = row[at[name]].strip() if name in at else ""
            optional[name] = _number(cell, name, line, 4, positive=True) if cell else None
        cell = row[at["volume"]].strip() if "volume" in at else ""
        volume = _number(cell, "volume", line, 8, positive=False) if cell else None
        high, low = optional["high"], optional["low"]
        if high is not None and low is not None:
            if high < low:
                raise PriceFileError(line, f"high {high} is below low {low}")
            if not low <= close <= high:
                raise PriceFileError(line, f"close {close} is outside [low {low}, high {high}]")
        bars.append(
            PriceBar(symbol, day, close, optional["open"], high, low, volume, source="import")
        )
    if not bars:
        raise PriceFileError(1, "the file has no rows")
    return bars
