"""Settlements table stream -> notifications queue: a settlement batch that ends (``settled`` or
``failed``) tells its account. The notification id comes from the batch, so it is stored once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from nexus_common.batch import OrderedStreamProcessor
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.sqs import SqsBatchSender

from nexus_notifications.alerts import settlement_notification
from nexus_notifications.settings import SettlementNotifierSettings

logger = get_logger()
settings = lazy_settings(SettlementNotifierSettings)
processor = OrderedStreamProcessor(EventType.DynamoDBStreams, logger=logger)
queue = lazy(lambda: SqsBatchSender(settings().notifications_queue_url))


def record_handler(record: DynamoDBRecord) -> bool:
    change = record.dynamodb
    if change is None or change.new_image is None:
        return False  # a removal: nothing to tell
    created = change.approximate_creation_date_time
    ts = created if isinstance(created, datetime) else datetime.now(UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    message = settlement_notification(dict(change.new_image), dict(change.old_image or {}) or None, ts)
    if message is None:
        return False
    queue().send([message])
    return True


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
