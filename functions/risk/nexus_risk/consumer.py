"""execution-events -> the account item (cash, buying power, holdings, reservation releases).
Stops at the first failed record (``OrderedStreamProcessor``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, decode_execution_events
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_risk.domain import changes_of
from nexus_risk.repo import DynamoAccounts, DynamoOrderFacts
from nexus_risk.settings import RiskConsumerSettings

logger = get_logger()
settings = lazy_settings(RiskConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
accounts = lazy(lambda: DynamoAccounts(settings().accounts_table))
order_facts = lazy(lambda: DynamoOrderFacts(settings().orders_table))
fees = lazy(lambda: settings().fees())


def record_handler(record: KinesisStreamRecord) -> int:
    written = 0
    for change in changes_of(decode_execution_events(record), order_facts(), fees()):
        written += int(accounts().apply(change))
    return written


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
