"""The audit consumers: Kinesis (audit-events, order-commands, execution-events) and DynamoDB
streams (ledger, settlements) -> the audit log.

A batch is decoded in order into entries tagged with their record's index, appended grouped by
aggregate (``sequencing.append``: one head read per aggregate), and the first record not fully
appended is reported with every record after it (``batchItemFailures``): the stream resumes from
there and what was already appended is dropped as duplicates. A record that cannot be decoded
stops the batch at that record (nothing after it is appended, so no aggregate's order changes)
and, once the mapping's retries are spent, goes to the audit DLQ.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nexus_common.audit import AuditEvent
from nexus_common.dynamo import deserialize
from nexus_common.events import ENGINE_EVENT_ADAPTER, utc_now
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.parallel import run_all
from nexus_common.settings import lazy, lazy_settings
from pydantic import ValidationError

from nexus_audit.records import (
    AuditEntry,
    UnreadableSource,
    from_audit_event,
    from_command,
    from_engine_events,
    from_ledger_change,
    from_settlement_change,
)
from nexus_audit.repo import DynamoAuditLog
from nexus_audit.sequencing import AppendOutcome, AuditLog, append
from nexus_audit.settings import AuditStreamsSettings, AuditTablesSettings

logger = get_logger()
streams_settings = lazy_settings(AuditStreamsSettings)
tables_settings = lazy_settings(AuditTablesSettings)
streams_log = lazy(lambda: DynamoAuditLog(streams_settings().audit_table))
tables_log = lazy(lambda: DynamoAuditLog(tables_settings().audit_table))

_ENGINE_TYPES = frozenset(
    {"accepted", "rejected", "trade", "cancelled", "cancel_rejected", "book", "expired", "replaced",
     "replace_rejected", "triggered"}
)  # fmt: skip


def _json(data: bytes, what: str) -> Any:
    try:
        return loads(data)
    except ValueError as exc:
        raise UnreadableSource(f"{what} record is not JSON: {exc}") from None


def decode_kinesis(stream: str, data: bytes, settings: AuditStreamsSettings) -> list[AuditEntry]:
    """The entries of one Kinesis record of ``stream`` (a stream name)."""
    if stream == settings.audit_events_stream:
        try:
            return from_audit_event(AuditEvent.model_validate(_json(data, "audit-events")))
        except ValidationError as exc:
            raise UnreadableSource(f"invalid audit event: {exc.error_count()} error(s)") from None
    if stream == settings.order_commands_stream:
        command = _json(data, "order-commands")
        if not isinstance(command, dict):
            raise UnreadableSource("a command record is not an object")
        return from_command(command)
    if stream == settings.execution_events_stream:
        payload = _json(data, "execution-events")
        raw_events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(raw_events, list):
            raise UnreadableSource('an execution-events record is not {"events": [...]}')
        try:
            events = [
                ENGINE_EVENT_ADAPTER.validate_python(raw)
                for raw in raw_events
                if isinstance(raw, dict) and raw.get("type") in _ENGINE_TYPES
            ]
        except ValidationError as exc:
            raise UnreadableSource(f"invalid engine event: {exc.error_count()} error(s)") from None
        return from_engine_events(events)
    raise UnreadableSource(f"records of stream {stream!r} are not audited here")


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
        return from_ledger_change(change, stream_event_id, new, old, at)
    if f":table/{settings.settlements_table}/stream/" in arn:
        return from_settlement_change(change, stream_event_id, new, old, at)
    raise UnreadableSource(f"records of {arn!r} are not audited here")


def process(
    records: list[dict[str, Any]],
    decode: Callable[[dict[str, Any]], list[AuditEntry]],
    item_id: Callable[[dict[str, Any]], str],
    log: AuditLog,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[dict[str, Any], AppendOutcome]:
    """Decode, append, and answer Lambda with the records to retry (see module docstring)."""
    entries: list[tuple[int, AuditEntry]] = []
    undecodable: int | None = None
    for index, record in enumerate(records):
        try:
            entries.extend((index, entry) for entry in decode(record))
        except (UnreadableSource, KeyError, TypeError, ValueError) as exc:
            logger.error("unreadable record", extra={"index": index, "error": str(exc)[:300]})
            undecodable = index
            break
    outcome = append(log, entries, clock, parallel=run_all)
    for error in outcome.errors:
        logger.warning("append failed", extra={"error": f"{type(error).__name__}: {str(error)[:300]}"})
    failed_from = min(i for i in (undecodable, outcome.first_failed) if i is not None) if (
        undecodable is not None or outcome.first_failed is not None) else None  # fmt: skip
    failures = [] if failed_from is None else [{"itemIdentifier": item_id(r)} for r in records[failed_from:]]
    logger.info(
        "audit batch",
        extra={"records": len(records), "written": outcome.written, "duplicates": outcome.duplicates,
               "failed": len(failures)},
    )  # fmt: skip
    return {"batchItemFailures": failures}, outcome


def _kinesis_decoder(settings: AuditStreamsSettings) -> Callable[[dict[str, Any]], list[AuditEntry]]:
    def decode(record: dict[str, Any]) -> list[AuditEntry]:
        stream = str(record.get("eventSourceARN", "")).rsplit("/", 1)[-1]
        return decode_kinesis(stream, base64.b64decode(record["kinesis"]["data"]), settings)

    return decode


@with_lambda_context(logger)
def kinesis_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = streams_settings()
    answer, _ = process(
        list(event.get("Records") or []),
        _kinesis_decoder(settings),
        lambda r: str(r["kinesis"]["sequenceNumber"]),
        streams_log(),
    )
    return answer


@with_lambda_context(logger)
def dynamodb_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = tables_settings()
    answer, _ = process(
        list(event.get("Records") or []),
        lambda r: decode_dynamodb(r, settings),
        lambda r: str(r["dynamodb"]["SequenceNumber"]),
        tables_log(),
    )
    return answer
