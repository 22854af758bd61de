"""Batch processing for stream consumers: in order, stopping at the first failure.

Powertools' ``BatchProcessor`` processes every record of a batch and reports each failed one. For
an SQS queue that is right. For a Kinesis (or DynamoDB) stream it is wrong for NexusTrade: Lambda
resumes the shard from the lowest reported sequence number, but the records *after* the failure
were already applied, so a later event would overtake an earlier one, and the per-item
``seq`` guard of the consumers would then drop the earlier event on its retry.

``OrderedStreamProcessor`` processes records in order and, after the first failure, reports the
failed record and every record after it as failed *without processing them*, like Powertools'
``SqsFifoPartialProcessor`` does for FIFO queues. It never raises ``BatchProcessingError`` when
every record failed: the answer is always a ``batchItemFailures`` list, which Lambda (and the
local runtime) treats the same as a failed batch, from the first failed record onward.
"""

from __future__ import annotations

import logging
from typing import Any, Final, get_args

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from pydantic import ValidationError

from nexus_common.events import ENGINE_EVENT_ADAPTER, TradingStatusEvent
from nexus_common.events import ExecutionEventT as ExecutionEventT  # what decode_execution_events returns
from nexus_common.jsonutil import loads

# The types of ``ExecutionEventT``: an expiry, a replace or a trigger changes orders and
# reservations as much as a cancel does (consumers skip the types they have nothing to do with).
KNOWN_EVENT_TYPES: Final = frozenset(kind.model_fields["type"].default for kind in get_args(ExecutionEventT))


class SkippedAfterFailure(Exception):
    """A record not processed because an earlier record of the same batch failed."""


class OrderedStreamProcessor(BatchProcessor):
    """``BatchProcessor`` that stops at the first failed record (see module docstring)."""

    _skipped: Final = (
        SkippedAfterFailure,
        SkippedAfterFailure("an earlier record of this batch failed"),
        None,
    )

    def __init__(
        self,
        event_type: EventType = EventType.KinesisDataStreams,
        logger: logging.Logger | Any | None = None,
    ) -> None:
        if event_type not in (EventType.KinesisDataStreams, EventType.DynamoDBStreams):
            raise ValueError("OrderedStreamProcessor is for Kinesis and DynamoDB streams")
        super().__init__(event_type, raise_on_entire_batch_failure=False, logger=logger)

    def _process_record(self, record: dict[str, Any]) -> Any:
        if self.fail_messages:
            return self.failure_handler(
                record=self._to_batch_type(record=record, event_type=self.event_type),
                exception=self._skipped,
            )
        return super()._process_record(record)


class PoisonRecord(ValueError):
    """A record whose payload can never be processed (bad JSON, invalid event)."""


def decode_execution_events(record: KinesisStreamRecord) -> list[ExecutionEventT]:
    """The events of one ``execution-events`` record (``{"events": [...]}``), in order.

    Events of a type this code does not know (a newer engine) are skipped, so that an upgrade of
    the producer cannot stall a consumer; a known type that does not validate is a poison record.
    """
    try:
        payload = loads(record.kinesis.data_as_bytes())
    except ValueError as exc:
        raise PoisonRecord(f"record is not JSON: {exc}") from None
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(raw_events, list):
        raise PoisonRecord('record is not {"events": [...]}')
    events: list[ExecutionEventT] = []
    for raw in raw_events:
        if not isinstance(raw, dict):
            raise PoisonRecord("event is not an object")
        if raw.get("type") not in KNOWN_EVENT_TYPES:
            continue
        try:
            event = ENGINE_EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            raise PoisonRecord(
                f"invalid {raw.get('type')} event: {exc.error_count()} error(s)"
            ) from exc
        if not isinstance(event, TradingStatusEvent):  # not in KNOWN_EVENT_TYPES: no consumer's business
            events.append(event)
    return events
