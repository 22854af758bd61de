"""SQS notifications queue -> inbox table, then a push to the account's WebSocket connections.

Exactly once in the inbox: one conditional put per notification id, so a redelivered message
changes nothing. The push follows the put; a redelivery of a message whose push did not happen
(``pushed_at`` missing) pushes it then. When the account has no subscriber (read once per
invocation) there is nothing to push: the put stores the notification as pushed, one write
instead of two."""

from __future__ import annotations

import logging
from typing import Any, cast

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from nexus_common.events import iso, utc_now
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import ConnectionStore, ManagementApi, Publisher
from nexus_common.settings import lazy, lazy_settings

from nexus_notifications.domain import Notification, inbox_item, inbox_view
from nexus_notifications.repo import Inbox
from nexus_notifications.settings import NotificationsConsumerSettings

logger = get_logger()
settings = lazy_settings(NotificationsConsumerSettings)
# Powertools Logger quacks like logging.Logger: failed records are logged, redacted.
processor = BatchProcessor(event_type=EventType.SQS, logger=cast("logging.Logger", logger))
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
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    publisher = Publisher(connections(), management())

    def record_handler(record: SQSRecord) -> bool:
        return deliver(Notification.model_validate(loads(record.body)), publisher)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
