"""execution-events -> the account item (cash, buying power, holdings, reservation releases).

One batch at a time (``nexus_common.stream_batch``): the records are decoded, the engine steps
applied by ``nexus_risk.service.apply_batch`` (one ``BatchGetItem`` per 100 keys for the batch's
order facts and its accounts' watermarks together, one conditional write per account). Poison
records are reported (Lambda retries them, then the DLQ) without holding back the rest; any other
error fails the invocation and the batch is retried.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_risk import service
from nexus_risk.repo import DynamoAccounts, DynamoBatchReads, DynamoOrderFacts
from nexus_risk.settings import RiskConsumerSettings

logger = get_logger()
settings = lazy_settings(RiskConsumerSettings)
accounts = lazy(lambda: DynamoAccounts(settings().accounts_table))
order_facts = lazy(lambda: DynamoOrderFacts(settings().orders_table))
reads = lazy(lambda: DynamoBatchReads(order_facts(), accounts()))
fees = lazy(lambda: settings().fees())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    steps = [record.events for record in batch.records]
    written = service.apply_batch(steps, order_facts(), accounts(), fees(), reads())
    logger.debug("batch applied", extra={"records": len(batch.records), "accounts_written": written})
    return failures(batch.poison)
