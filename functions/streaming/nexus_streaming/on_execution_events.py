"""execution-events -> WebSocket subscribers: trades, book and ticker per symbol, orders and fills
per account (``nexus_streaming.service.publish_step``). Stops at the first failed record
(per-symbol order is kept). A private channel
(orders, fills) reaches only subscribers whose credential is still good (re-checked, cached for
``CREDENTIAL_CACHE_SECONDS``); the others are closed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.guarded_push import Guard, GuardedPublisher, StreamingConnections, credential_check
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import ManagementApi, PublishReport
from nexus_common.settings import lazy, lazy_settings

from nexus_streaming import service
from nexus_streaming.domain import PRIVATE_CHANNELS
from nexus_streaming.settings import FanOutSettings

logger = get_logger()
settings = lazy_settings(FanOutSettings)
processor = OrderedStreamProcessor(logger=logger)
store = lazy(lambda: StreamingConnections(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))
guard = lazy(lambda: Guard(store(), management(), credential_check(settings())))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    # subscribers read once per invocation; a private channel's are re-checked (cached for the bound)
    publisher = GuardedPublisher(store(), management(), guard(), PRIVATE_CHANNELS)
    publisher.prepare(service.channels_of(event.get("Records") or []))  # one read: which have subscribers
    report = PublishReport()

    def record_handler(record: KinesisStreamRecord) -> None:
        service.publish_step(decode_execution_events(record), publisher, report)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    if report.messages:
        logger.debug("fan-out", extra={"messages": report.messages, "posts": report.posts, "gone": len(report.gone)})
    return response
