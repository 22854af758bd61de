"""Settings of the analytics functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.guarded_push import CredentialTables
from nexus_common.settings import NexusSettings
from pydantic import Field


class AnalyticsApiSettings(NexusSettings):
    accounts_table: str
    positions_table: str
    trades_table: str
    instruments_table: str
    price_history_table: str
    valuations_table: str
    closes_cache_seconds: int = Field(ge=0, le=3600)


class ClosingSettings(NexusSettings):
    price_history_table: str
    valuations_table: str
    accounts_table: str
    positions_table: str
    ledger_table: str
    instruments_table: str
    candles_table: str


class PushSettings(CredentialTables):
    """The push, and where each subscriber's credential is checked again (``users_table``,
    ``api_keys_table``, ``tokens_table``, ``credential_cache_seconds`` from ``CredentialTables``)."""

    accounts_table: str
    positions_table: str
    trades_table: str
    price_history_table: str
    valuations_table: str
    connections_table: str
    ws_management_endpoint: str
    analytics_push_interval_seconds: int = Field(ge=1, le=3600)
