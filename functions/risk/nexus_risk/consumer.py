"""execution-events -> the account item (cash, buying power, holdings, reservation releases).

One batch at a time (``nexus_common.stream_batch``): the facts of every order in the batch are
read together (``prefetch_ids``), the changes computed per record (one engine step, as
``changes_of`` expects), the accounts' watermarks read with one read per 100 accounts, and each account gets
one conditional write for the whole batch (``nexus_risk.coalesce``), which leaves it as one
write per event would have. Poison records are reported (Lambda retries them, then the DLQ)
without holding back the rest; any other error fails the invocation and the batch is retried.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.stream_batch import decode_batch, failures

from nexus_risk.coalesce import coalesce
from nexus_risk.domain import changes_of, prefetch_ids
from nexus_risk.repo import DynamoAccounts, DynamoOrderFacts
from nexus_risk.settings import RiskConsumerSettings

logger = get_logger()
settings = lazy_settings(RiskConsumerSettings)
accounts = lazy(lambda: DynamoAccounts(settings().accounts_table))
order_facts = lazy(lambda: DynamoOrderFacts(settings().orders_table))
fees = lazy(lambda: settings().fees())


def apply_batch(steps: list[list[Any]]) -> int:
    """Apply a batch of engine steps (the events of each record, in order); returns how many
    account items were written."""
    facts = order_facts()
    facts.prefetch(prefetch_ids(event for step in steps for event in step))
    changes = [change for step in steps for change in changes_of(step, facts, fees())]
    if not changes:
        return 0
    watermarks = accounts().watermarks((change.account_id, change.symbol) for change in changes)
    writes = coalesce(changes, watermarks)
    for write in writes.values():
        accounts().write(write)
    return len(writes)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    written = apply_batch([record.events for record in batch.records])
    logger.debug("batch applied", extra={"records": len(batch.records), "accounts_written": written})
    return failures(batch.poison)
