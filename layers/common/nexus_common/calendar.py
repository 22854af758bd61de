"""The exchange calendar: business days and settlement dates (T+2).

Everything is computed in the exchange's zone, America/New_York, from the UTC instant of the
trade: a trade at 2026-03-09T03:30Z is on 2026-03-08 in New York (23:30 EDT), whatever the
offset that day (zoneinfo handles the DST changes). The trade date is that New York date, rolled
forward to the next business day when it falls on a weekend or a holiday. The settlement date is
the trade date plus ``SETTLEMENT_DAYS`` business days. Business days are Monday to Friday minus
the NYSE full-day holidays of any year, computed by the exchange's rules (early closes are
business days).
"""

from __future__ import annotations

import functools
from collections.abc import Container
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

EXCHANGE_TZ: Final = ZoneInfo("America/New_York")
SETTLEMENT_DAYS: Final = 2

# Closures the rules below do not produce (a national day of mourning, a storm): add them here.
SPECIAL_CLOSURES: Final[frozenset[date]] = frozenset({date(2025, 1, 9)})


def _easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (0 = Monday) of the month; ``n = -1`` for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """A fixed-date holiday on a Saturday is observed the Friday before, on a Sunday the Monday after."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@functools.cache
def nyse_holidays(year: int) -> frozenset[date]:
    """NYSE full-day closures of ``year`` (observed dates), by the exchange's rules (Rule 7.2): New
    Year's Day (not moved back into December when it falls on a Saturday), Martin Luther King Jr.
    Day, Washington's Birthday, Good Friday, Memorial Day, Juneteenth (from 2022), Independence
    Day, Labor Day, Thanksgiving and Christmas; plus ``SPECIAL_CLOSURES`` of that year."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day: third Monday of January
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday: third Monday of February
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day: last Monday of May
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day: first Monday of September
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving: fourth Thursday of November
        _observed(date(year, 12, 25)),
    }
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:  # on a Saturday the exchange does not close the Friday before
        days.add(_observed(new_year))
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    days.update(day for day in SPECIAL_CLOSURES if day.year == year)
    return frozenset(days)


class NyseHolidays(Container[date]):
    """Every NYSE full-day closure, of any year: ``day in HOLIDAYS``."""

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in nyse_holidays(day.year)


HOLIDAYS: Final = NyseHolidays()


def is_business_day(day: date, holidays: Container[date] = HOLIDAYS) -> bool:
    return day.weekday() < 5 and day not in holidays


def next_business_day(day: date, holidays: Container[date] = HOLIDAYS) -> date:
    """``day`` itself when it is a business day, else the first business day after it."""
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, count: int, holidays: Container[date] = HOLIDAYS) -> date:
    if count < 0:
        raise ValueError("count must be >= 0")
    for _ in range(count):
        day += timedelta(days=1)
        while not is_business_day(day, holidays):
            day += timedelta(days=1)
    return day


def subtract_business_days(day: date, count: int, holidays: Container[date] = HOLIDAYS) -> date:
    """The ``count``-th business day before ``day`` (``day`` itself when ``count`` is 0)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    for _ in range(count):
        day -= timedelta(days=1)
        while not is_business_day(day, holidays):
            day -= timedelta(days=1)
    return day


def exchange_date(instant: datetime) -> date:
    """The New York calendar date of a tz-aware instant."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime")
    return instant.astimezone(EXCHANGE_TZ).date()


def trade_date(instant: datetime, holidays: Container[date] = HOLIDAYS) -> date:
    """The trade date: the New York date, rolled to the next business day if it is not one."""
    return next_business_day(exchange_date(instant), holidays)


def settlement_date(
    instant: datetime, days: int = SETTLEMENT_DAYS, holidays: Container[date] = HOLIDAYS
) -> date:
    """T+``days`` business days from the trade date of ``instant``."""
    return add_business_days(trade_date(instant, holidays), days, holidays)
