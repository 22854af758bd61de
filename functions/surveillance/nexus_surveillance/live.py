"""The live path's fold, pure: one symbol's detector state + the next events -> new state + alerts.

The state of a symbol is ``{detector name: snapshot}`` (``PatternDetector.snapshot()``), kept in
Redis by the consumer. Each batch restores a fresh set of detectors from it, sets the thresholds
in force (a change takes effect from the next event; open windows are kept), applies the
symbol's events in stream order, closes the windows that ended by the last event's time
(``flush``), and snapshots them again. The detectors keep a watermark per symbol, so a
redelivered or replayed event (at or below it) changes nothing and raises nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from nexus_surveillance.detectors import DETECTORS, Alert
from nexus_surveillance.events import SurvEvent
from nexus_surveillance.scan import build_detectors, dedupe

Snapshot = dict[str, Any]


@dataclass(frozen=True)
class SymbolResult:
    state: dict[str, Snapshot]
    alerts: list[Alert]
    applied: int  # engine events given to the detectors (commands and repeats included)


def apply_symbol(
    state: Mapping[str, Snapshot] | None,
    thresholds: Mapping[str, BaseModel | Mapping[str, Any]],
    events: Iterable[SurvEvent],
) -> SymbolResult:
    detectors = build_detectors({k: v for k, v in thresholds.items() if k in DETECTORS})
    for detector in detectors:
        snapshot = (state or {}).get(detector.name)
        if snapshot is not None:
            detector.restore(snapshot)
            wanted = thresholds.get(detector.name)
            if wanted is not None:
                detector.set_thresholds(wanted)
            elif detector.thresholds != type(detector).thresholds_model():
                detector.set_thresholds(type(detector).thresholds_model())
    alerts: list[Alert] = []
    last_ts = 0
    applied = 0
    for event in events:
        if event.seq <= 0:
            continue  # commands: the engine echoes each with a sequenced event
        applied += 1
        last_ts = max(last_ts, event.ts)
        for detector in detectors:
            found = detector.on_event(event)
            if found:
                alerts.extend(found)
    if last_ts:
        for detector in detectors:
            alerts.extend(detector.flush(last_ts))
    return SymbolResult({d.name: d.snapshot() for d in detectors}, dedupe(alerts), applied)
