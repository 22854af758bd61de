"""execution-events -> the account item (cash, buying power, holdings, reservation releases).

One batch at a time (``nexus_common.stream_batch``): the records are decoded, the engine steps
applied by ``nexus_risk.service.apply_batch`` (one read of the batch's order facts, one of the
accounts' watermarks per 100 accounts, one conditional write per account). Poison records are
reported (Lambda retries them, then the DLQ) without holding back the rest; any other error fails
the invocation and the batch is retried.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_risk import service
from nexus_risk.repo import DynamoAccounts, DynamoOrderFacts
from nexus_risk.settings import RiskConsumerSettings

logger = get_logger()
settings = lazy_settings(RiskConsumerSettings)
accounts = lazy(lambda: DynamoAccounts(settings().accounts_table))
order_facts = lazy(lambda: DynamoOrderFacts(settings().orders_table))
fees = lazy(lambda: settings().fees())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    written = service.apply_batch([record.events for record in batch.records], order_facts(), accounts(), fees())
    logger.debug("batch applied", extra={"records": len(batch.records), "accounts_written": written})
    return failures(batch.poison)
