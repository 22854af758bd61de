"""Settings of the notification and alert functions (environment given by the template)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class NotificationsConsumerSettings(NexusSettings):
    notifications_table: str
    connections_table: str
    ws_management_endpoint: str


class NotificationsApiSettings(NexusSettings):
    notifications_table: str
    alerts_table: str
    trades_table: str
    instruments_table: str
    max_alerts_per_user: int  # over the accounts the credential acts for; more: 409 limit_reached


class AlertsConsumerSettings(NexusSettings):
    alerts_table: str
    notifications_queue_url: str


class SettlementNotifierSettings(NexusSettings):
    notifications_queue_url: str
