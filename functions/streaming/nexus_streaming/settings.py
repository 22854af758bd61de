"""Settings of the streaming functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class CredentialTables(NexusSettings):
    """Where a connection's credential is checked again (``nexus_common.credentials``), and how
    long an answer is trusted: the bound within which a revoked credential stops being served."""

    users_table: str
    api_keys_table: str
    tokens_table: str
    credential_cache_seconds: int


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
