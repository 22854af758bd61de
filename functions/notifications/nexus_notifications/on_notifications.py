"""SQS notifications queue -> inbox table, then a push to the account's WebSocket connections.

Each message is one notification, delivered by ``nexus_notifications.service.deliver`` (exactly
once in the inbox, pushed once). The subscriber counts of the batch's accounts' channels are read
first, in one ``BatchGetItem`` (``Publisher.prepare``): an account nobody listens to costs no
``Query``; the subscribers of the others are read once per invocation. The notifications of a
batch are delivered concurrently (``nexus_common.parallel``); each failed one (a message that is
not a notification among them) is reported and comes back after the queue's visibility timeout
(then the DLQ).

Requests per invocation: one ``BatchGetItem`` per 100 accounts, then per notification one
conditional ``PutItem``, and for an account someone listens to a ``Query`` (once), the channel's
numbering ``UpdateItem`` and the pushed mark."""

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
    records = event.get("Records") or []
    parsed = [_parse(record) for record in records]
    channels = sorted({service.channel_of(n) for n in parsed if isinstance(n, Notification)})
    publisher.prepare(channels)  # one read: which have subscribers
    for channel in channels:  # the listened ones' subscribers, each read once, before the deliveries run side by side
        publisher.subscribers(channel)

    def job(record: dict[str, Any], notification: Notification | Exception) -> Callable[[], str | None]:
        def run() -> str | None:
            try:
                if isinstance(notification, Exception):
                    raise notification
                service.deliver(notification, publisher, inbox(), utc_now)
            except Exception as exc:  # noqa: BLE001 - per-message boundary: reported below, the rest is delivered
                details = {"message_id": record.get("messageId"), "error": f"{type(exc).__name__}: {exc}"[:300]}
                logger.warning("notification not delivered", extra=details)
                return str(record.get("messageId"))
            return None

        return run

    failed = [m for m in run_all([job(r, n) for r, n in zip(records, parsed, strict=True)]) if m is not None]
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}


def _parse(record: dict[str, Any]) -> Notification | Exception:
    """A message's notification, or why it is not one (reported with the message's id)."""
    try:
        return Notification.model_validate(loads(record["body"]))
    except Exception as exc:  # noqa: BLE001 - a bad message fails alone, in the delivery step
        return exc
