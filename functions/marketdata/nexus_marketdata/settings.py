"""Settings of the market data functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class MarketDataApiSettings(NexusSettings):
    instruments_table: str
    trades_table: str
    book_levels_table: str
    candles_table: str
    book_orders_table: str


class MarketDataConsumerSettings(NexusSettings):
    trades_table: str
    book_levels_table: str
    candles_table: str
    book_orders_table: str


class MarketDataWarmupSettings(NexusSettings):
    instruments_table: str
    trades_table: str
    book_levels_table: str
    candles_table: str
