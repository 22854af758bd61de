"""Settings of the orders functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class OrdersApiSettings(NexusSettings):
    orders_table: str
    instruments_table: str
    order_commands_stream: str


class OrdersConsumerSettings(NexusSettings):
    orders_table: str
    notifications_queue_url: str
