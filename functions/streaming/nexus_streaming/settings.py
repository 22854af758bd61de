"""Settings of the streaming functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class RoutesSettings(NexusSettings):
    connections_table: str
    instruments_table: str
    ws_management_endpoint: str


class FanOutSettings(NexusSettings):
    connections_table: str
    ws_management_endpoint: str
