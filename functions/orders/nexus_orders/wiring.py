"""The orders service as every entry channel builds it (the composition root of order entry).

The HTTP API (``nexus_orders.api``), the FIX gateway (``nexus_fix.main``) and the market maker
(``nexus_marketmaker.main``) all enter orders through ``order_service``: the same validation,
pre-trade risk, reservation, order table, idempotency, engine command and audit trail, so nothing
downstream can tell which channel an order came from.
"""

from __future__ import annotations

from nexus_common.audit import KinesisAuditSink
from nexus_common.instrument_store import CachedInstruments, DynamoInstruments
from nexus_common.sqs import SqsBatchSender

from nexus_orders.repo import (
    DynamoMarketReference,
    DynamoOrderRepository,
    DynamoRiskBook,
    KinesisCommandPublisher,
)
from nexus_orders.service import KeptLastTrade, OrderService, PreTradeRisk
from nexus_orders.settings import OrdersApiSettings

INSTRUMENT_TTL_SECONDS = 5.0  # a halt reaches order entry within this; the engine checks halts too
LAST_TRADE_TTL_SECONDS = 1.0  # the price collar's reference is at most this much older than the trades table


def order_service(config: OrdersApiSettings) -> OrderService:
    return OrderService(
        orders=DynamoOrderRepository(config.orders_table, accounts_table=config.accounts_table),
        instruments=CachedInstruments(DynamoInstruments(config.instruments_table), INSTRUMENT_TTL_SECONDS),
        commands=KinesisCommandPublisher(config.order_commands_stream),
        risk=PreTradeRisk(
            DynamoRiskBook(config.accounts_table),
            KeptLastTrade(DynamoMarketReference(config.trades_table, config.book_levels_table), LAST_TRADE_TTL_SECONDS),
            config.risk_limits(),
        ),
        audit=KinesisAuditSink(config.audit_stream),
        routes=None if config.routing_requests_queue_url is None else SqsBatchSender(
            config.routing_requests_queue_url),
    )
