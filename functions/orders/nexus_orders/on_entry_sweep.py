"""The entry sweep (scheduled, every minute): closes the order entries that stopped half way.

An order entry stores the order ``pending_new``, writes its reservation, then sends the ``new``
command (``nexus_orders.service.OrderService``). An invocation stopped in between (a timeout, a
crash) leaves the order ``pending_new``; ``EntrySweep`` sends each such entry older than a minute a
``fence`` command, and the engine's answer ends it (``nexus_orders.service.EntrySweep``); so
does a replace that waits that long for the engine's answer.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_orders.repo import DynamoOrderRepository, KinesisCommandPublisher
from nexus_orders.service import EntrySweep
from nexus_orders.settings import EntrySweepSettings

logger = get_logger()
settings = lazy_settings(EntrySweepSettings)


@lazy
def sweep() -> EntrySweep:
    config = settings()
    return EntrySweep(DynamoOrderRepository(config.orders_table), KinesisCommandPublisher(config.order_commands_stream))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    fenced = sweep().run()
    return {"fenced": len(fenced)}
