"""Settings of the health function (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class HealthSettings(NexusSettings):
    instruments_table: str
    order_commands_stream: str  # names the engine's lease and status keys in Redis
