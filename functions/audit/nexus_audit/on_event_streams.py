"""audit-events, order-commands, execution-events (Kinesis) -> the audit log.

Each record is decoded by the stream it comes from (told apart by the stream's name) into audit
entries (``nexus_audit.records``); the batch is appended by ``nexus_audit.service.process``, which
reports the first record not fully appended and every record after it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from nexus_common.audit import AuditEvent
from nexus_common.audit_items import MAX_GROUP
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from pydantic import ValidationError

from nexus_audit import service
from nexus_audit.records import AuditEntry, UnreadableSource, from_audit_event, from_command, from_engine_events
from nexus_audit.repo import DynamoAuditLog
from nexus_audit.settings import AuditStreamsSettings

logger = get_logger()
streams_settings = lazy_settings(AuditStreamsSettings)
streams_log = lazy(lambda: DynamoAuditLog(streams_settings().audit_table))

_ENGINE_TYPES = frozenset(
    {"accepted", "rejected", "trade", "cancelled", "cancel_rejected", "book", "expired", "replaced",
     "replace_rejected", "triggered", "venue_fill", "route_working", "route_ended"}
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


def _kinesis_decoder(settings: AuditStreamsSettings) -> Callable[[dict[str, Any]], list[AuditEntry]]:
    def decode(record: dict[str, Any]) -> list[AuditEntry]:
        stream = str(record.get("eventSourceARN", "")).rsplit("/", 1)[-1]
        return decode_kinesis(stream, base64.b64decode(record["kinesis"]["data"]), settings)

    return decode


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = streams_settings()
    answer, _ = service.process(
        list(event.get("Records") or []),
        _kinesis_decoder(settings),
        lambda r: str(r["kinesis"]["sequenceNumber"]),
        streams_log(),
        max_group=MAX_GROUP if settings.audit_record_runs else 1,
    )
    return answer
