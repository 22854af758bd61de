"""execution-events -> order state (and notifications). Stops at the first failed record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_orders.repo import DynamoOrderRepository, SqsNotifier
from nexus_orders.service import apply_events
from nexus_orders.settings import OrdersConsumerSettings

logger = get_logger()
settings = lazy_settings(OrdersConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)


@lazy
def orders() -> DynamoOrderRepository:
    return DynamoOrderRepository(settings().orders_table)


@lazy
def notifier() -> SqsNotifier:
    return SqsNotifier(settings().notifications_queue_url)


def record_handler(record: KinesisStreamRecord) -> int:
    events = decode_execution_events(record)
    return apply_events(events, orders(), notifier())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
