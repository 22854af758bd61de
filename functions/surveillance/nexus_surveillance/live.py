"""The live path's detectors of one symbol, pure: restore, apply the next events, snapshot.

A symbol's detectors live in the consumer's memory between batches (a warm Lambda keeps them) and
in Redis for every other container: a snapshot (``{detector: PatternDetector.snapshot()}``) plus
a journal of the batches applied since it (each batch's events, encoded). A container whose copy
is not the latest restores the snapshot and replays the journal, batch by batch as they were
applied (their alerts were stored when they were first applied: the replay's are dropped). A new
snapshot replaces the journal every ``SNAPSHOT_EVERY_EVENTS`` events, so a batch costs one small
append, not the whole state, and a restore replays a bounded number of events.

Each batch: the thresholds in force (a change takes effect from the next event; open windows are
kept), the symbol's events in stream order (the detectors drop what is at or below their
per-symbol watermark, so a redelivered or replayed event changes nothing and raises nothing
twice), then ``flush`` up to the batch's last event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from nexus_surveillance.detectors import DETECTORS, Alert
from nexus_surveillance.events import SurvEvent
from nexus_surveillance.scan import build_detectors, dedupe

SNAPSHOT_EVERY_EVENTS: Final = 2_000
_DECIMALS: Final = frozenset({"price", "quantity", "fill_price", "fill_quantity", "leaves_quantity"})
_FIELDS: Final = SurvEvent._fields
_DEFAULTS: Final = SurvEvent._field_defaults


def encode_events(events: Iterable[SurvEvent]) -> list[dict[str, Any]]:
    """Events as JSON-able dicts (fields at their default left out; decimals as strings)."""
    out: list[dict[str, Any]] = []
    for e in events:
        row: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(e, name)
            if name in _DEFAULTS and value == _DEFAULTS[name] and name not in ("kind", "ts", "seq", "symbol"):
                continue
            row[name] = str(value) if isinstance(value, Decimal) else value
        out.append(row)
    return out


def decode_events(rows: Iterable[Mapping[str, Any]]) -> list[SurvEvent]:
    return [
        SurvEvent(**{k: (Decimal(v) if k in _DECIMALS and v is not None else v) for k, v in row.items()})
        for row in rows
    ]


def journal_entry(
    thresholds: Mapping[str, Any], events: Iterable[SurvEvent], flush_ns: int | None = None
) -> dict[str, Any]:
    """One applied batch, as the journal keeps it: the thresholds in force, the events, and the
    time the windows were closed up to by a scheduled flush (``f``)."""
    entry: dict[str, Any] = {"t": dict(thresholds), "e": encode_events(events)}
    if flush_ns is not None:
        entry["f"] = flush_ns
    return entry


class SymbolDetectors:
    """Every detector of one symbol, and the thresholds they were last given."""

    def __init__(self, thresholds: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        wanted = {k: v for k, v in (thresholds or {}).items() if k in DETECTORS}
        self.detectors = build_detectors(wanted)
        self._given: dict[str, Any] = {d.name: wanted.get(d.name) for d in self.detectors}

    @classmethod
    def restored(cls, snapshot: Mapping[str, Any] | None, journal: Iterable[Mapping[str, Any]]) -> SymbolDetectors:
        """From a snapshot and the batches applied after it (``journal_entry``), each with the
        thresholds it was applied with; their alerts are dropped (stored when first raised)."""
        made = cls()
        for detector in made.detectors:
            saved = (snapshot or {}).get(detector.name)
            if saved is not None:
                detector.restore(saved)
                made._given[detector.name] = saved.get("thresholds")
        for entry in journal:
            made.use(entry.get("t") or {})
            made.apply(decode_events(entry.get("e") or []))
            if entry.get("f"):
                made.flush(int(entry["f"]))
        return made

    def use(self, thresholds: Mapping[str, Mapping[str, Any]]) -> None:
        """The thresholds in force (absent: the detector's defaults), set where they changed."""
        for detector in self.detectors:
            wanted = thresholds.get(detector.name)
            if wanted != self._given.get(detector.name):
                detector.set_thresholds(wanted if wanted is not None else type(detector).thresholds_model())
                self._given[detector.name] = wanted

    def apply(self, events: Iterable[SurvEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        last_ts = 0
        for event in events:
            if event.seq <= 0:
                continue  # commands: the engine echoes each with a sequenced event
            last_ts = max(last_ts, event.ts)
            for detector in self.detectors:
                found = detector.on_event(event)
                if found:
                    alerts.extend(found)
        if last_ts:
            for detector in self.detectors:
                alerts.extend(detector.flush(last_ts))
        return dedupe(alerts)

    def flush(self, now_ns: int) -> list[Alert]:
        """Close the windows that ended by ``now_ns`` (a scheduled flush: no new event needed)."""
        alerts: list[Alert] = []
        for detector in self.detectors:
            alerts.extend(detector.flush(now_ns))
        return dedupe(alerts)

    def snapshot(self) -> dict[str, Any]:
        return {d.name: d.snapshot() for d in self.detectors}
