"""The handler of the ``execution-events`` stream: order state (and notifications).

One batch at a time (``nexus_common.stream_batch``): the events of every record, in order, go
through ``apply_events`` once (the orders updated concurrently, each order's changes in order:
``nexus_common.parallel``), and the notifications of the whole batch are sent together
(``SendMessageBatch``, 10 to a call, instead of one call per event). They are sent even when the
batch fails half way (before the error is raised), so an order change that was written always
has its notification sent. The batch stops at the first poison record: the records before it are
applied, it and the rest are reported (Lambda retries from it, then the DLQ); any other error
fails the invocation and the batch is retried (each order update is conditional on its ``seq``:
a redelivery changes nothing).
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.parallel import run_all
from nexus_common.settings import lazy, lazy_settings
from nexus_common.sqs import SqsBatchSender
from nexus_common.stream_batch import decode_batch, failures

from nexus_orders.repo import DynamoOrderRepository
from nexus_orders.service import BatchNotifier, apply_events
from nexus_orders.settings import OrdersConsumerSettings

logger = get_logger()
settings = lazy_settings(OrdersConsumerSettings)


@lazy
def orders() -> DynamoOrderRepository:
    return DynamoOrderRepository(settings().orders_table)


@lazy
def notifier() -> SqsBatchSender:
    return SqsBatchSender(settings().notifications_queue_url)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = decode_batch(event, logger)
    events, failed = batch.until_first_poison()
    outbox = BatchNotifier(notifier())
    try:
        written = apply_events(events, orders(), outbox, parallel=run_all)
    finally:
        outbox.flush()
    logger.debug("batch applied", extra={"records": len(batch.records), "orders_written": written})
    return failures(failed)
