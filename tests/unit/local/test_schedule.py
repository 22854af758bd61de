"""Schedule expressions the local runtime runs: rate() and EventBridge cron(), in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nexus.local.pollers import Cron, next_fire

T0 = datetime(2026, 11, 20, 21, 59, 30, tzinfo=UTC)  # a Friday


def test_rate() -> None:
    assert next_fire("rate(5 minutes)", T0) == datetime(2026, 11, 20, 22, 4, 30, tzinfo=UTC)
    assert next_fire("rate(1 hour)", T0) == datetime(2026, 11, 20, 22, 59, 30, tzinfo=UTC)
    assert next_fire("rate(1 day)", T0) == datetime(2026, 11, 21, 21, 59, 30, tzinfo=UTC)


def test_cron_weekdays_after_the_close() -> None:
    # 22:00 UTC Monday to Friday: next is Friday 22:00, then Monday 22:00 (skipping the weekend)
    first = next_fire("cron(0 22 ? * MON-FRI *)", T0)
    assert first == datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    assert next_fire("cron(0 22 ? * MON-FRI *)", first) == datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


def test_cron_lists_steps_and_months() -> None:
    cron = Cron.parse("0/15 9,17 1 JAN,JUL ? 2027")
    assert cron.next_after(T0) == datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
    assert cron.next_after(datetime(2027, 1, 1, 9, 0, tzinfo=UTC)) == datetime(2027, 1, 1, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression", ["cron(0 22 L * ? *)", "cron(0 22 * *)", "every 5 minutes", "rate(5 fortnights)"]
)
def test_unsupported_expressions_fail_fast(expression: str) -> None:
    with pytest.raises(ValueError):
        next_fire(expression, T0)
