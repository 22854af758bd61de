"""SQS notifications queue -> inbox table, then a push to the account's WebSocket connections.

Exactly once in the inbox: one conditional put per notification id, so a redelivered message
changes nothing. The push follows the put; a redelivery of a message whose push did not happen
(``pushed_at`` missing) pushes it then. When the account has no subscriber (read once per
invocation) there is nothing to push: the put stores the notification as pushed, one write
instead of two. The notifications of a batch are delivered concurrently (``nexus_common.parallel``);
each failed one is reported and comes back after the queue's visibility timeout (then the DLQ)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nexus_common.events import iso, utc_now
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.parallel import run_all
from nexus_common.push import ConnectionStore, ManagementApi, Publisher
from nexus_common.settings import lazy, lazy_settings

from nexus_notifications.domain import Notification, inbox_item, inbox_view
from nexus_notifications.repo import Inbox
from nexus_notifications.settings import NotificationsConsumerSettings

logger = get_logger()
settings = lazy_settings(NotificationsConsumerSettings)
inbox = lazy(lambda: Inbox(settings().notifications_table))
connections = lazy(lambda: ConnectionStore(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))


def deliver(notification: Notification, publisher: Publisher) -> bool:
    """Store and push one notification; False when it was already delivered (a redelivery)."""
    channel = f"notifications:{notification.account_id}"
    now = utc_now()
    item = inbox_item(notification, now)
    if not publisher.subscribers(channel):
        return inbox().add({**item, "pushed_at": iso(now)})  # nobody to push to: stored is delivered
    if not inbox().add(item):
        stored = inbox().get(notification.account_id, notification.notification_id)
        if stored is None or stored.get("pushed_at"):
            return False
        item = stored
    publisher.publish(channel, [{"type": "notifications", "notification": inbox_view(item)}])
    inbox().mark_pushed(notification.account_id, notification.notification_id, utc_now())
    return True


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Deliver the batch's notifications concurrently (each is its own inbox item and its own
    push); the messages that failed are reported, and come back after the visibility timeout."""
    publisher = Publisher(connections(), management())

    def job(record: dict[str, Any]) -> Callable[[], str | None]:
        def run() -> str | None:
            try:
                deliver(Notification.model_validate(loads(record["body"])), publisher)
            except Exception as exc:  # reported below; the rest of the batch is delivered
                details = {"message_id": record.get("messageId"), "error": f"{type(exc).__name__}: {exc}"[:300]}
                logger.warning("notification not delivered", extra=details)
                return str(record.get("messageId"))
            return None

        return run

    failed = [m for m in run_all([job(r) for r in event.get("Records") or []]) if m is not None]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
