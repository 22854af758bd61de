"""Settings of the orders functions (environment given by the template; no defaults)."""

from __future__ import annotations

from decimal import Decimal

from nexus_common.fees import FeeSchedule
from nexus_common.risk import MAX_OPEN_ORDERS_CEILING, RiskLimits
from nexus_common.settings import NexusSettings
from pydantic import Field


class OrdersApiSettings(NexusSettings):
    orders_table: str
    instruments_table: str
    order_commands_stream: str
    # pre-trade risk: the account item, the reference prices, the limits and the fee schedule
    accounts_table: str
    trades_table: str
    book_levels_table: str
    risk_max_order_quantity: Decimal = Field(gt=0)
    risk_max_order_value: Decimal = Field(gt=0)
    risk_position_limit: Decimal = Field(gt=0)
    risk_short_limit: Decimal = Field(ge=0)
    risk_price_collar: Decimal = Field(gt=0, lt=1)
    risk_market_protection: Decimal = Field(ge=0, lt=1)
    risk_max_open_orders: int = Field(gt=0, le=MAX_OPEN_ORDERS_CEILING)
    maker_fee_bps: Decimal = Field(ge=0, lt=10000)
    taker_fee_bps: Decimal = Field(ge=0, lt=10000)
    # risk refusals are recorded on the audit-events stream
    audit_stream: str
    # routed orders are handed to the routing service here; unset where the entry channel (the
    # FIX gateway, the market maker) takes no routed orders
    routing_requests_queue_url: str | None = None

    def risk_limits(self) -> RiskLimits:
        fees = FeeSchedule.from_bps(self.maker_fee_bps, self.taker_fee_bps)
        return RiskLimits(
            max_order_quantity=self.risk_max_order_quantity,
            max_order_value=self.risk_max_order_value,
            position_limit=self.risk_position_limit,
            short_limit=self.risk_short_limit,
            price_collar=self.risk_price_collar,
            market_protection=self.risk_market_protection,
            fee_buffer=fees.max_rate,
            max_open_orders=self.risk_max_open_orders,
        )


class OrdersConsumerSettings(NexusSettings):
    orders_table: str
    notifications_queue_url: str


class EntrySweepSettings(NexusSettings):
    orders_table: str
    order_commands_stream: str
