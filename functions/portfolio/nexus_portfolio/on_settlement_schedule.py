"""Scheduled settlement run: settles every obligation due by today (New York) as a saga.

The schedule's event may carry ``{"as_of": "YYYY-MM-DD"}`` (an operator's catch-up run, tests);
otherwise ``as_of`` is today's date in New York at the time of the run."""

from __future__ import annotations

from datetime import date
from typing import Any

from nexus_common.calendar import exchange_date
from nexus_common.errors import ValidationFailed
from nexus_common.events import utc_now
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_portfolio.repo import DynamoJournal, DynamoSettlements
from nexus_portfolio.service import Settlement
from nexus_portfolio.settings import SettlementRunSettings

logger = get_logger()
settings = lazy_settings(SettlementRunSettings)
settlement = lazy(
    lambda: Settlement(
        DynamoSettlements(settings().settlements_table), DynamoJournal(settings().ledger_table), utc_now
    )
)


def as_of_date(event: dict[str, Any]) -> date:
    given = event.get("as_of") if isinstance(event, dict) else None
    if given is None:
        return exchange_date(utc_now())
    try:
        return date.fromisoformat(str(given))
    except ValueError:
        raise ValidationFailed("invalid_field", "as_of must be YYYY-MM-DD", "as_of") from None


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = settlement().run(as_of_date(event)).to_dict()
    logger.info("settlement run", extra=report)
    return report
