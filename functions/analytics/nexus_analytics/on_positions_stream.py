"""Positions table stream (keys only) -> the analytics summary on ``analytics:<account>``.

The subscriber counts of the batch's accounts' channels are read first, in one ``BatchGetItem``
(``Publisher.prepare``). Then for each account whose positions changed in the batch, once per
batch:
1. nobody listens -> nothing more is read; else its channel's subscribers (one ``Query``). The channel
   is private: each subscriber's credential is re-checked (``nexus_common.guarded_push``, an
   answer cached ``CREDENTIAL_CACHE_SECONDS``); a subscriber whose API key was revoked, whose
   session was logged out or whose user was disabled is closed, not served, as the streaming
   fan-out does for orders and fills;
2. the push slot (one conditional ``UpdateItem``): taken less than
   ``ANALYTICS_PUSH_INTERVAL_SECONDS`` ago -> no message (the client sees the change in the next
   push, or asks ``GET /v1/analytics/summary``);
3. the summary (``AnalyticsService.summary``), numbered and posted to each subscriber.

A summary is a picture of the state, not an event: a redelivered batch may post the same picture
again once the slot is free, which a client treats as a refresh. Too little history for VaR is
pushed as ``{"type": "analytics", "error": {...insufficient_history...}}``; an account whose summary
cannot be made (``no_price`` for a holding, a refused input) gets ``{"type": "analytics", "error":
{"code", "message", "field"}}`` and the other accounts of the batch still get theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nexus_common.events import utc_now
from nexus_common.guarded_push import Guard, GuardedPublisher, StreamingConnections, credential_check
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import ManagementApi
from nexus_common.settings import lazy, lazy_settings

from nexus_analytics.repo import DynamoAccountsSource, DynamoPriceHistory, DynamoPushThrottle, DynamoValuations
from nexus_analytics.service import AnalyticsService, push_summaries
from nexus_analytics.settings import PushSettings

CHANNEL = "analytics"

logger = get_logger()
settings = lazy_settings(PushSettings)
connections = lazy(lambda: StreamingConnections(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))
guard = lazy(lambda: Guard(connections(), management(), credential_check(settings())))
throttle = lazy(lambda: DynamoPushThrottle(settings().connections_table))


@lazy
def service() -> AnalyticsService:
    config = settings()
    return AnalyticsService(
        source=DynamoAccountsSource(config.accounts_table, config.positions_table, config.trades_table, None),
        prices=DynamoPriceHistory(config.price_history_table),
        valuations=DynamoValuations(config.valuations_table),
        clock=lambda: utc_now(),  # looked up at each call: tests set the module's clock
    )


def changed_accounts(records: Iterable[dict[str, Any]]) -> list[str]:
    """The accounts of a batch's position changes, in first-seen order, each once."""
    seen: dict[str, None] = {}
    for record in records:
        keys = (record.get("dynamodb") or {}).get("Keys") or {}
        account = (keys.get("account_id") or {}).get("S")
        if isinstance(account, str) and account:
            seen.setdefault(account, None)
    return list(seen)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    accounts = changed_accounts(event.get("Records") or [])
    interval = settings().analytics_push_interval_seconds
    # subscribers read once per invocation, their credentials re-checked (cached for the bound)
    publisher = GuardedPublisher(connections(), management(), guard(), (CHANNEL,))
    pushed = push_summaries(
        CHANNEL,
        accounts,
        publisher,
        lambda channel: throttle().claim(channel, utc_now(), interval),
        service().summary,
    )
    if pushed:
        logger.debug("analytics push", extra={"accounts": len(accounts), "pushed": pushed})
    return {"batchItemFailures": []}
