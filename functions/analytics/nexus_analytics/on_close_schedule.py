"""Scheduled at the session close: the day's closes and every account's valuation.

The schedule's event may carry ``{"as_of": "YYYY-MM-DD"}`` (an operator's catch-up run, tests);
otherwise the day is today's date in New York at the time of the run. A weekend or holiday is
skipped."""

from __future__ import annotations

from datetime import date
from typing import Any

from nexus_common.calendar import exchange_date
from nexus_common.errors import ValidationFailed
from nexus_common.events import utc_now
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_analytics.repo import DynamoAccountsSource, DynamoDailyCandles, DynamoPriceHistory, DynamoValuations
from nexus_analytics.service import ClosingRun
from nexus_analytics.settings import ClosingSettings

logger = get_logger()
settings = lazy_settings(ClosingSettings)


@lazy
def closing() -> ClosingRun:
    config = settings()
    return ClosingRun(
        source=DynamoAccountsSource(
            config.accounts_table,
            config.positions_table,
            None,  # the closing run reads no trades: closes come from the candles
            config.instruments_table,
            config.ledger_table,
        ),
        candles=DynamoDailyCandles(config.candles_table),
        prices=DynamoPriceHistory(config.price_history_table),
        valuations=DynamoValuations(config.valuations_table),
    )


def session_date(event: dict[str, Any]) -> date:
    given = event.get("as_of") if isinstance(event, dict) else None
    if given is None:
        return exchange_date(utc_now())
    try:
        if len(str(given)) != 10:
            raise ValueError(given)
        return date.fromisoformat(str(given))
    except ValueError:
        raise ValidationFailed("invalid_field", "as_of must be YYYY-MM-DD", "as_of") from None


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = closing().run(session_date(event)).to_dict()
    logger.info("closing run", extra=report)
    return report
