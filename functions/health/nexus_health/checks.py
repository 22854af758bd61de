"""What ``GET /health`` decides: can the venue match orders now? Pure, no I/O.

The probes (``repo.py``) observe each dependency; ``assess`` turns the observations into the
public answer: ``ok`` (200) when every dependency answers, a matching engine leads under a live
lease and keeps up with ``order-commands``; else ``degraded`` (503), with the detail per
dependency. The detail is public: states, ages and counts only, never a host, a URL or an error
text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LAG_MS = 10_000  # the engine's last read further behind the stream tip than this: degraded
MAX_STATUS_AGE_MS = 10_000  # the leader's status record older than this: its loop is stuck


@dataclass(frozen=True)
class EngineObservation:
    """The leader lease and the leader's status record, as read from Redis."""

    lease_epoch: int | None  # None: no engine holds the lease
    lease_ttl_ms: int  # what is left of it
    status_epoch: int | None  # the status record's epoch (None: no record)
    status_at: datetime | None  # when the leader wrote it
    behind_ms: int  # MillisBehindLatest of the leader's last read of order-commands
    unpublished: bool  # the leader holds events it could not publish yet


@dataclass(frozen=True)
class Observations:
    tables: bool
    redis: bool
    engine: EngineObservation | None  # None: not observable (Redis down)


def _check(ok: bool, **detail: Any) -> dict[str, Any]:
    return {"status": "ok" if ok else "down", **detail}


def assess(seen: Observations, now: datetime) -> tuple[int, dict[str, Any]]:
    """The status code and body of ``GET /health``."""
    checks: dict[str, Any] = {"tables": _check(seen.tables), "redis": _check(seen.redis)}
    engine = seen.engine
    if engine is None:
        checks["engine"] = {"status": "unknown", "leader": None}
        checks["order_commands"] = {"status": "unknown", "lag_ms": None}
    else:
        leads = engine.lease_epoch is not None
        checks["engine"] = _check(leads, leader=leads, epoch=engine.lease_epoch,
                                  lease_ms_left=engine.lease_ttl_ms if leads else 0)  # fmt: skip
        current = leads and engine.status_epoch == engine.lease_epoch and engine.status_at is not None
        age_ms = int((now - engine.status_at).total_seconds() * 1000) if current and engine.status_at else None
        keeping_up = (
            age_ms is not None and age_ms <= MAX_STATUS_AGE_MS and engine.behind_ms <= MAX_LAG_MS
            and not engine.unpublished
        )  # fmt: skip
        checks["order_commands"] = {
            "status": "ok" if keeping_up else ("behind" if current else "unknown"),
            "lag_ms": engine.behind_ms if current else None,
            "engine_seen_ms_ago": age_ms,
            "publishing": not engine.unpublished if current else None,
        }
    healthy = all(check["status"] == "ok" for check in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks}
    return (200 if healthy else 503), body
