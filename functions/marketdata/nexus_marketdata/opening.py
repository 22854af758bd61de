"""The New York opening, as the pre-open warm-up of the snapshot cache sees it. Pure, no I/O.

The template's rule fires at 13:29 and 14:29 UTC on weekdays (EventBridge cron is UTC); the
open, 09:30 America/New_York, is 13:30 UTC under EDT and 14:30 UTC under EST. ``due`` accepts a
run only when it is 09:00-09:30 in New York on a business day (``nexus_common.calendar``), so
exactly one of the two runs works, whatever the DST.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from nexus_common.calendar import EXCHANGE_TZ, HOLIDAYS, is_business_day

HOT_PINS: Final = 4
OPEN: Final = time(9, 30)
HOLD_AFTER_OPEN: Final = timedelta(seconds=15)
WARM_FROM: Final = time(9, 0)
CLOSE: Final = time(16, 0)


def due(now: datetime, holidays: Container[date] = HOLIDAYS) -> bool:
    """Is ``now`` in the half hour before the New York open of a business day?"""
    local = now.astimezone(EXCHANGE_TZ)
    return is_business_day(local.date(), holidays) and WARM_FROM <= local.time() < OPEN


def previous_business_day(day: date, holidays: Container[date] = HOLIDAYS) -> date:
    day -= timedelta(days=1)
    while not is_business_day(day, holidays):
        day -= timedelta(days=1)
    return day


def seconds_to_close(now: datetime) -> int:
    local = now.astimezone(EXCHANGE_TZ)
    close = datetime.combine(local.date(), CLOSE, tzinfo=EXCHANGE_TZ)
    return max(1, int((close - local).total_seconds()))


def open_instant(now: datetime) -> datetime:
    local = now.astimezone(EXCHANGE_TZ)
    return datetime.combine(local.date(), OPEN, tzinfo=EXCHANGE_TZ).astimezone(UTC)
