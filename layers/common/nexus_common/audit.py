"""Audit events: what the services tell the audit trail, and how they send it.

Any service that makes a decision worth a regulator's eye (a security event, a risk refusal, an
admin action) publishes an ``AuditEvent`` on the ``audit-events`` Kinesis stream (partition key =
the aggregate, so one aggregate's events stay in order). The audit service (functions/audit)
appends them to the append-only audit store with a per-aggregate sequence number; engine events
and ledger/settlement changes reach the store from their own streams, not through this module.

``event_id`` must be deterministic where the caller can make it so (derived from the request or
the command that caused it): the store drops an ``event_id`` it already holds, so a retried
publish changes nothing. Details are strings only (no floats, no secrets: never put a password,
token or key in an audit event; a key's display id is fine).
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from nexus_common import aws
from nexus_common.events import iso, utc_now
from nexus_common.jsonutil import dumps

AUDIT_STREAM_ENV = "AUDIT_STREAM"


class AuditEvent(BaseModel):
    """One audit fact about one aggregate (``user``/``account``/``order``/``api_key``/``symbol``...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=64)  # e.g. "login_failed", "risk_refused"
    aggregate_type: str = Field(min_length=1, max_length=32)
    aggregate_id: str = Field(min_length=1, max_length=200)
    ts: AwareDatetime = Field(default_factory=utc_now)
    actor: str = Field(default="system", max_length=200)  # user id, key id, or "system"
    source: str = Field(min_length=1, max_length=32)  # the service that published it
    correlation_id: str | None = Field(default=None, max_length=200)
    links: tuple[str, ...] = ()  # related aggregates as "type:id" (an OCO's legs, a trade's orders)
    details: dict[str, str] = Field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        data["ts"] = iso(self.ts)
        data["links"] = list(self.links)
        return data

    @property
    def partition_key(self) -> str:
        return f"{self.aggregate_type}#{self.aggregate_id}"


class AuditSink(Protocol):
    def publish(self, event: AuditEvent) -> None: ...


class KinesisAuditSink:
    """Publishes audit events on the ``audit-events`` stream (one ``PutRecord`` each)."""

    def __init__(self, stream_name: str) -> None:
        self._stream = stream_name

    def publish(self, event: AuditEvent) -> None:
        aws.client("kinesis").put_record(
            StreamName=self._stream,
            Data=dumps(event.to_wire()).encode("utf-8"),
            PartitionKey=event.partition_key,
        )


class MemoryAuditSink:
    """In-memory sink for domain tests."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def publish(self, event: AuditEvent) -> None:
        self.events.append(event)
