"""SQS notifications queue -> inbox table, then a push to the account's WebSocket connections.

Each message is one notification, delivered by ``nexus_notifications.service.deliver`` (exactly
once in the inbox, pushed once; the account's subscribers are read once per invocation). The
notifications of a batch are delivered concurrently (``nexus_common.parallel``);
each failed one is reported and comes back after the queue's visibility timeout (then the DLQ)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nexus_common.events import utc_now
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.parallel import run_all
from nexus_common.push import ConnectionStore, ManagementApi, Publisher
from nexus_common.settings import lazy, lazy_settings

from nexus_notifications import service
from nexus_notifications.domain import Notification
from nexus_notifications.repo import Inbox
from nexus_notifications.settings import NotificationsConsumerSettings

logger = get_logger()
settings = lazy_settings(NotificationsConsumerSettings)
inbox = lazy(lambda: Inbox(settings().notifications_table))
connections = lazy(lambda: ConnectionStore(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Deliver the batch's notifications concurrently (each is its own inbox item and its own
    push); the messages that failed are reported, and come back after the visibility timeout."""
    publisher = Publisher(connections(), management())

    def job(record: dict[str, Any]) -> Callable[[], str | None]:
        def run() -> str | None:
            try:
                service.deliver(Notification.model_validate(loads(record["body"])), publisher, inbox(), utc_now)
            except Exception as exc:  # noqa: BLE001 - per-message boundary: reported below, the rest is delivered
                details = {"message_id": record.get("messageId"), "error": f"{type(exc).__name__}: {exc}"[:300]}
                logger.warning("notification not delivered", extra=details)
                return str(record.get("messageId"))
            return None

        return run

    failed = [m for m in run_all([job(r) for r in event.get("Records") or []]) if m is not None]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
