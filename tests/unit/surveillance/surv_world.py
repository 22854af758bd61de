"""Helpers of the surveillance tests: a scripted tape decoded the way the live path decodes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from nexus_surveillance.detectors import Alert, PatternDetector
from nexus_surveillance.events import SurvEvent, from_execution_event
from nexus_surveillance.tape import Tape

T0 = 1_767_623_400_000_000_000  # 2026-01-05T14:30:00Z
MS = 1_000_000
S = 1_000 * MS
D = Decimal


def at(ms: int) -> int:
    return T0 + ms * MS


def decoded(tape: Tape, owners: Mapping[str, str] | None = None) -> list[SurvEvent]:
    out: list[SurvEvent] = []
    for record in tape.events:
        out.extend(from_execution_event(record, owners))
    return out


def run(detector: PatternDetector, events: Iterable[SurvEvent], flush_at: int | None = None) -> list[Alert]:  # type: ignore[type-arg]
    alerts: list[Alert] = []
    for e in events:
        alerts.extend(detector.on_event(e))
    if flush_at is not None:
        alerts.extend(detector.flush(flush_at))
    return alerts
