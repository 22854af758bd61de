"""The exchange calendar: business days and settlement dates (T+2).

Everything is computed in the exchange's zone, America/New_York, from the UTC instant of the
trade: a trade at 2026-03-09T03:30Z is on 2026-03-08 in New York (23:30 EDT), whatever the
offset that day (zoneinfo handles the DST changes). The trade date is that New York date, rolled
forward to the next business day when it falls on a weekend or a holiday. The settlement date is
the trade date plus ``SETTLEMENT_DAYS`` business days. Business days are Monday to Friday minus
the NYSE full-day holidays below (early closes are business days).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

EXCHANGE_TZ: Final = ZoneInfo("America/New_York")
SETTLEMENT_DAYS: Final = 2

# NYSE full-day closures (observed dates).
HOLIDAYS: Final[frozenset[date]] = frozenset(
    date.fromisoformat(day)
    for day in (
        # 2025
        "2025-01-01", "2025-01-09", "2025-01-20", "2025-02-17", "2025-04-18", "2025-05-26",
        "2025-06-19", "2025-07-04", "2025-09-01", "2025-11-27", "2025-12-25",
        # 2026
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19",
        "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25",
        # 2027
        "2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31", "2027-06-18",
        "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24",
    )
)


def is_business_day(day: date, holidays: frozenset[date] = HOLIDAYS) -> bool:
    return day.weekday() < 5 and day not in holidays


def next_business_day(day: date, holidays: frozenset[date] = HOLIDAYS) -> date:
    """``day`` itself when it is a business day, else the first business day after it."""
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, count: int, holidays: frozenset[date] = HOLIDAYS) -> date:
    if count < 0:
        raise ValueError("count must be >= 0")
    for _ in range(count):
        day += timedelta(days=1)
        while not is_business_day(day, holidays):
            day += timedelta(days=1)
    return day


def exchange_date(instant: datetime) -> date:
    """The New York calendar date of a tz-aware instant."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime")
    return instant.astimezone(EXCHANGE_TZ).date()


def trade_date(instant: datetime, holidays: frozenset[date] = HOLIDAYS) -> date:
    """The trade date: the New York date, rolled to the next business day if it is not one."""
    return next_business_day(exchange_date(instant), holidays)


def settlement_date(
    instant: datetime, days: int = SETTLEMENT_DAYS, holidays: frozenset[date] = HOLIDAYS
) -> date:
    """T+``days`` business days from the trade date of ``instant``."""
    return add_business_days(trade_date(instant, holidays), days, holidays)
