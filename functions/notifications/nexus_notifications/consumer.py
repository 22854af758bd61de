"""SQS notifications queue -> inbox table. A redelivered message changes nothing."""

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
from nexus_common import aws
from nexus_common.dynamo import is_condition_failed
from nexus_common.events import utc_now
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import NexusSettings, lazy, lazy_settings

from nexus_notifications.domain import Notification, inbox_item


class NotificationsConsumerSettings(NexusSettings):
    notifications_table: str


logger = get_logger()
settings = lazy_settings(NotificationsConsumerSettings)
# Powertools Logger quacks like logging.Logger: failed records are logged, redacted.
processor = BatchProcessor(event_type=EventType.SQS, logger=cast("logging.Logger", logger))
inbox = lazy(lambda: aws.dynamodb_table(settings().notifications_table))


def record_handler(record: SQSRecord) -> bool:
    """Store one notification; False when it was already stored (a redelivery)."""
    notification = Notification.model_validate(loads(record.body))
    try:
        inbox().put_item(
            Item=inbox_item(notification, utc_now()),
            ConditionExpression="attribute_not_exists(notification_id)",
        )
    except Exception as exc:
        if is_condition_failed(exc):
            return False
        raise
    return True


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
