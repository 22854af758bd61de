"""Settings of the audit functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings


class AuditStreamsSettings(NexusSettings):
    """The Kinesis consumer: the table, and the streams it tells apart by their names."""

    audit_table: str
    audit_events_stream: str
    execution_events_stream: str
    order_commands_stream: str
    audit_record_runs: bool  # a record may hold a run of entries (``nexus_audit.sequencing``)


class AuditTablesSettings(NexusSettings):
    """The DynamoDB streams consumer: the table, and the tables whose streams it reads."""

    audit_table: str
    ledger_table: str
    settlements_table: str
    audit_record_runs: bool


class AuditApiSettings(NexusSettings):
    audit_table: str
