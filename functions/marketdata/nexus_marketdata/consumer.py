"""execution-events -> trade tape and L2 book levels. Stops at the first failed record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.events import BookEvent, TradeEvent
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_marketdata.repo import DynamoBookLevels, DynamoTrades
from nexus_marketdata.settings import MarketDataConsumerSettings

logger = get_logger()
settings = lazy_settings(MarketDataConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
trades = lazy(lambda: DynamoTrades(settings().trades_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))


def record_handler(record: KinesisStreamRecord) -> int:
    """Apply each trade and book event of the record; returns how many rows changed."""
    changed = 0
    for event in decode_execution_events(record):
        if isinstance(event, TradeEvent):
            changed += trades().put(event)
        elif isinstance(event, BookEvent):
            changed += book_levels().apply(event)
    return changed


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
