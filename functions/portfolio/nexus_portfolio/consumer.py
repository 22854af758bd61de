"""execution-events -> positions, fill journal entries and settlement obligations.
Stops at the first failed record (``OrderedStreamProcessor``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_portfolio.posttrade import apply_events
from nexus_portfolio.repo import DynamoJournal, DynamoPositions, DynamoSettlements
from nexus_portfolio.settings import PortfolioConsumerSettings

logger = get_logger()
settings = lazy_settings(PortfolioConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
positions = lazy(lambda: DynamoPositions(settings().positions_table))
journal = lazy(lambda: DynamoJournal(settings().ledger_table))
obligations = lazy(lambda: DynamoSettlements(settings().settlements_table))
fees = lazy(lambda: settings().fees())


def record_handler(record: KinesisStreamRecord) -> int:
    events = decode_execution_events(record)
    return apply_events(events, positions(), journal(), obligations(), fees())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
