"""Settings of the streaming functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.guarded_push import CredentialTables

__all__ = ["CredentialTables", "FanOutSettings", "RevocationsSettings", "RoutesSettings"]


class RoutesSettings(CredentialTables):
    connections_table: str
    instruments_table: str
    ws_management_endpoint: str


class FanOutSettings(CredentialTables):
    connections_table: str
    ws_management_endpoint: str


class RevocationsSettings(CredentialTables):
    connections_table: str
    ws_management_endpoint: str
