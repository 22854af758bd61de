"""execution-events -> price alerts: a trade that reaches an armed alert's threshold fires it
(armed -> fired, one conditional write) and puts its notification on the notifications queue
(``nexus_notifications.service.fire_alerts``, which also says what a redelivery does). Records are
taken in order; the first that fails is reported with those after it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.sqs import SqsBatchSender

from nexus_notifications import service
from nexus_notifications.alerts import Alert
from nexus_notifications.repo import AlertsTable
from nexus_notifications.settings import AlertsConsumerSettings

logger = get_logger()
settings = lazy_settings(AlertsConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
table = lazy(lambda: AlertsTable(settings().alerts_table))
queue = lazy(lambda: SqsBatchSender(settings().notifications_queue_url))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    armed: dict[str, list[Alert]] = {}  # per invocation: the index is read once per symbol

    def record_handler(record: KinesisStreamRecord) -> int:
        return service.fire_alerts(decode_execution_events(record), armed, table(), queue())

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
