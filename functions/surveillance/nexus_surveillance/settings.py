"""Settings of the surveillance functions (environment given by the template; no defaults
beyond harmless ones)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class ConsumerSettings(NexusSettings):
    """The live path: order-commands + execution-events -> detectors -> alerts."""

    surveillance_alerts_table: str
    surveillance_thresholds_table: str
    surveillance_alerts_stream: str
    surveillance_state_prefix: str
    thresholds_cache_seconds: int = 5
    accounts_table: str
    users_table: str
    audit_stream: str
    notifications_queue_url: str


class FlushSettings(NexusSettings):
    """The scheduled flush (it also builds the consumer, with ``ConsumerSettings``)."""

    flush_lag_seconds: int = 120


class ScanSettings(NexusSettings):
    """The historical scan worker."""

    surveillance_scans_table: str
    surveillance_thresholds_table: str
    audit_table: str
    accounts_table: str


class ApiSettings(NexusSettings):
    """The compliance API."""

    surveillance_alerts_table: str
    surveillance_thresholds_table: str
    surveillance_scans_table: str
    surveillance_scans_queue_url: str
    orders_table: str
    trades_table: str
    users_table: str
    accounts_table: str
    audit_table: str
    audit_stream: str
