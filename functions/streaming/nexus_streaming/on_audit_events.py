"""audit-events -> close the WebSockets of a credential that was just revoked.

The auth service publishes its security decisions as audit events; three of them end a
credential: ``api_key_revoked`` (aggregate: the key's display id; actor: its user),
``session_revoked`` (a logout or a refresh-token reuse; aggregate: the user; ``session_id`` in
the details) and ``user_disabled`` (aggregate: the user). For each, this consumer closes that
user's connections made with that key, that session, or (disabled) all of them, through the
Management API, and forgets them. Every other event is skipped. Closing a connection that is
gone already changes nothing, so a redelivered record is harmless.
"""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import ManagementApi
from nexus_common.settings import lazy, lazy_settings

from nexus_streaming.connections import Guard, StreamingConnections, credential_check
from nexus_streaming.settings import RevocationsSettings

ENDING_KINDS: Final = frozenset({"api_key_revoked", "session_revoked", "user_disabled"})

logger = get_logger()
settings = lazy_settings(RevocationsSettings)
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
store = lazy(lambda: StreamingConnections(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))
guard = lazy(lambda: Guard(store(), management(), credential_check(settings())))


def ended_credential(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(user_id, key_id, session_id)`` of a credential the audit event ends, else None
    (``key_id`` and ``session_id`` both empty: every credential of the user)."""
    kind = event.get("kind")
    if kind not in ENDING_KINDS:
        return None
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    if kind == "api_key_revoked":
        user_id, key_id, session_id = str(event.get("actor") or ""), str(event.get("aggregate_id") or ""), ""
        if not key_id:
            return None
    elif kind == "session_revoked":
        user_id, key_id, session_id = str(event.get("aggregate_id") or ""), "", str(details.get("session_id") or "")
        if not session_id:
            return None
    else:
        user_id, key_id, session_id = str(event.get("aggregate_id") or ""), "", ""
    if not user_id.startswith("usr_"):
        return None
    return user_id, key_id, session_id


def on_record(record: KinesisStreamRecord) -> None:
    event = loads(record.kinesis.data_as_bytes())
    if not isinstance(event, dict) or event.get("source") != "auth":
        return
    ended = ended_credential(event)
    if ended is None:
        return
    closed = guard().close_matching(*ended)
    if closed:
        logger.info("closed connections of an ended credential", extra={"kind": event.get("kind"), "closed": closed})


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=on_record, processor=processor, context=context)
