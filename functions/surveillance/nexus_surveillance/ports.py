"""What the surveillance service needs from the outside world (implemented in ``repo.py``; the
tests use the real adapters over moto and a real Redis)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nexus_common.audit import AuditEvent


@dataclass(frozen=True)
class BatchProgress:
    """How far the live consumer has got, recorded with an ``execution-events`` batch's commit:
    the shard's newest engine time applied (its event-time high-water mark, what the scheduled
    flush closes windows up to) and the batch's lag (the consumer's clock minus that time)."""

    shard: str
    newest_ns: int  # the newest engine timestamp among the batch's events (epoch ns)
    lag_ms: int  # the consumer's clock when it applied the batch, minus newest_ns
    records: int  # stream records in the batch
    at: datetime  # the consumer's clock then
    symbols: tuple[str, ...]  # the batch's symbols (they live on this shard)


class SymbolStateStore(Protocol):
    def locked(self, symbols: Iterable[str]) -> AbstractContextManager[dict[str, int]]:
        """Hold every symbol's lock; yields each symbol's latest generation (0: none yet)."""
        ...

    def load(self, symbols: Iterable[str]) -> dict[str, tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        """symbol -> (snapshot or None, journal entries after it)."""
        ...

    def commit(self, commits: Mapping[str, tuple[int, dict[str, Any], dict[str, Any] | None]],
               progress: BatchProgress | None = None) -> None: ...  # fmt: skip

    def symbols(self) -> list[str]: ...

    def progress(self) -> tuple[dict[str, int], dict[str, str]]:
        """(shard -> its event-time high-water mark in epoch ns, symbol -> its shard)."""
        ...


class OwnerDirectory(Protocol):
    def owners(self, account_ids: Iterable[str]) -> dict[str, str]:
        """account id -> owner user id, for the accounts that have an owner."""
        ...


class ThresholdsSource(Protocol):
    def current(self) -> dict[str, dict[str, Any]]:
        """detector name -> thresholds in force (absent: the detector's defaults)."""
        ...


class AlertStore(Protocol):
    def put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """None when stored now; the stored item when it existed already."""
        ...

    def mark_dispatched(self, alert_id: str, at: datetime, halted: list[str]) -> None: ...

    def mark_halted(self, alert_id: str, halted: list[str]) -> None: ...

    def undispatched(self, since: datetime, until: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Stored alerts with a window ending in [since, until] and no ``dispatched_at``."""
        ...


class AlertEffects(Protocol):
    """What a new alert sets in motion; each step idempotent (ids derived from the alert)."""

    def publish(self, alerts: list[dict[str, Any]]) -> None: ...

    def audit(self, events: list[AuditEvent]) -> None: ...

    def notify_compliance(self, alerts: list[dict[str, Any]], at: datetime) -> None: ...

    def halt(self, account_id: str, alert_id: str, at: datetime) -> bool: ...
