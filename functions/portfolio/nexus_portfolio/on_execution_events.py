"""execution-events -> positions, fill journal entries and settlement obligations.

One batch at a time (``nexus_common.stream_batch``): the positions the batch touches are read
together, its entries and obligations written in batches, then each position once, guarded by
its ``last_seq`` (``nexus_portfolio.service.apply_batch``): the same result as one event at a
time. Poison records are reported (Lambda retries them, then the DLQ) without holding back the
rest; any other error fails the invocation and the batch is retried.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_portfolio.repo import DynamoJournal, DynamoPositions, DynamoSettlements
from nexus_portfolio.service import apply_batch
from nexus_portfolio.settings import PortfolioConsumerSettings

logger = get_logger()
settings = lazy_settings(PortfolioConsumerSettings)
positions = lazy(lambda: DynamoPositions(settings().positions_table))
journal = lazy(lambda: DynamoJournal(settings().ledger_table))
obligations = lazy(lambda: DynamoSettlements(settings().settlements_table))
fees = lazy(lambda: settings().fees())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    written = apply_batch(batch.events, positions(), journal(), obligations(), fees())
    logger.debug("batch applied", extra={"records": len(batch.records), "positions_written": written})
    return failures(batch.poison)
