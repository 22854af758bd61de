"""Ledger and settlements table streams (DynamoDB) -> the audit log.

Each record's change (new and old image) becomes audit entries by the table it comes from
(``nexus_audit.records``); the batch is appended by ``nexus_audit.service.process``, which
reports the first record not fully appended and every record after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from nexus_common.audit_items import MAX_GROUP
from nexus_common.dynamo import deserialize
from nexus_common.events import utc_now
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_audit import service
from nexus_audit.records import AuditEntry, Mark, UnreadableSource, from_ledger_change, from_settlement_change
from nexus_audit.repo import DynamoAuditLog
from nexus_audit.settings import AuditTablesSettings

logger = get_logger()
tables_settings = lazy_settings(AuditTablesSettings)
tables_log = lazy(lambda: DynamoAuditLog(tables_settings().audit_table))


def decode_dynamodb(record: dict[str, Any], settings: AuditTablesSettings) -> list[AuditEntry]:
    """The entries of one DynamoDB stream record of the ledger or settlements table."""
    arn = str(record.get("eventSourceARN", ""))
    change = str(record.get("eventName", ""))
    data = record.get("dynamodb") or {}
    new = deserialize(data["NewImage"]) if data.get("NewImage") else None
    old = deserialize(data["OldImage"]) if data.get("OldImage") else None
    created = data.get("ApproximateCreationDateTime")
    at = datetime.fromtimestamp(float(created), UTC) if created is not None else utc_now()
    stream_event_id = str(record.get("eventID") or data.get("SequenceNumber") or "")
    if not stream_event_id:
        raise UnreadableSource("a DynamoDB stream record without an id")
    if f":table/{settings.ledger_table}/stream/" in arn:
        entries = from_ledger_change(change, stream_event_id, new, old, at)
    elif f":table/{settings.settlements_table}/stream/" in arn:
        entries = from_settlement_change(change, stream_event_id, new, old, at)
    else:
        raise UnreadableSource(f"records of {arn!r} are not audited here")
    return [replace(entry, mark=mark) for entry in entries] if (mark := stream_mark(arn, data)) else entries


def stream_mark(arn: str, data: dict[str, Any]) -> Mark | None:
    """A stream record's place in its stream, the mark of its entries (``nexus_audit.sequencing``).

    Their event ids are the stream record's own, or (a journal entry's creation) the entry's id:
    a journal entry is one item whose key comes from its event, never removed, so it is created
    once, and that id, too, comes from one stream record only."""
    sequence = str(data.get("SequenceNumber") or "")
    if not sequence.isdigit() or len(sequence) > 64:
        return None
    return f"s:{hashlib.sha256(arn.encode()).hexdigest()[:12]}", int(sequence)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = tables_settings()
    answer, _ = service.process(
        list(event.get("Records") or []),
        lambda r: decode_dynamodb(r, settings),
        lambda r: str(r["dynamodb"]["SequenceNumber"]),
        tables_log(),
        max_group=MAX_GROUP if settings.audit_record_runs else 1,
    )
    return answer
