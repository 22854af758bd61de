"""audit-events -> close the WebSockets of a credential that was just revoked.

The auth service's audit events that end a credential (``nexus_streaming.revocations``): for
each, this consumer closes that user's connections made with that key, that session, or
(disabled) all of them, through the Management API, and forgets them
(``nexus_streaming.service.close_ended``). Every other event is skipped. Closing a connection that is
gone already changes nothing, so a redelivered record is harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.guarded_push import Guard, StreamingConnections, credential_check
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import ManagementApi
from nexus_common.settings import lazy, lazy_settings

from nexus_streaming import service
from nexus_streaming.settings import RevocationsSettings

logger = get_logger()
settings = lazy_settings(RevocationsSettings)
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
store = lazy(lambda: StreamingConnections(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))
guard = lazy(lambda: Guard(store(), management(), credential_check(settings())))


def on_record(record: KinesisStreamRecord) -> None:
    event = loads(record.kinesis.data_as_bytes())
    if not isinstance(event, dict):
        return
    outcome = service.close_ended(event, guard())
    if outcome is not None and outcome[1]:
        logger.info("closed connections of an ended credential", extra={"kind": outcome[0], "closed": outcome[1]})


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=on_record, processor=processor, context=context)
