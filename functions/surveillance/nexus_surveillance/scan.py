"""The historical scan: every detector over a set of events, symbol by symbol in engine order.

``scan`` gives the same alerts as the live path fed the same events: the detectors keep all
state per symbol, skip what is at or below a symbol's watermark, and close their windows on event
time, so grouping by symbol (here) or interleaving symbols (live shards) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

from pydantic import BaseModel

from nexus_surveillance.detectors import DETECTORS, Alert, PatternDetector
from nexus_surveillance.events import SurvEvent

DAY_NS = 86_400 * 1_000_000_000


def build_detectors(
    thresholds: Mapping[str, BaseModel | Mapping[str, Any]] | None = None,
    only: Iterable[str] | None = None,
) -> list[PatternDetector]:  # type: ignore[type-arg]
    """One detector of each pattern (or of the ``only`` names), with ``thresholds`` by name."""
    thresholds = thresholds or {}
    unknown = set(thresholds) - set(DETECTORS)
    if unknown:
        raise ValueError(f"unknown detector(s): {', '.join(sorted(unknown))}")
    names = list(DETECTORS) if only is None else list(only)
    return [DETECTORS[name](thresholds.get(name)) for name in names]


def order_events(events: Iterable[SurvEvent]) -> dict[str, list[SurvEvent]]:
    """Engine events by symbol in engine order (commands, which carry no sequence, dropped)."""
    by_symbol: dict[str, list[SurvEvent]] = {}
    for e in events:
        if e.seq > 0:
            bucket = by_symbol.get(e.symbol)
            if bucket is None:
                bucket = by_symbol[e.symbol] = []
            bucket.append(e)
    for symbol, bucket in by_symbol.items():
        keys = [_order_key(e) for e in bucket]
        if any(a >= b for a, b in pairwise(keys)):
            by_symbol[symbol] = [bucket[i] for i in sorted(range(len(bucket)), key=keys.__getitem__)]  # stable
    return by_symbol


def _order_key(e: SurvEvent) -> int:
    return e.seq * 2 + (1 if e.kind == "fill" and not e.aggressor else 0)


_ENGINE_KINDS = frozenset({"accepted", "fill", "cancelled", "expired", "rejected", "replace"})


def detect(
    by_symbol: Mapping[str, list[SurvEvent]],
    detectors: list[PatternDetector],  # type: ignore[type-arg]
) -> tuple[list[Alert], int]:
    """The events' part of a scan: each symbol's events (``order_events``), symbols in sorted
    order, through every detector. Returns the alerts (grouped by symbol, in that order) and the
    last event time. A symbol whose events are strictly increasing in engine order and new to
    every detector takes the detectors' ``fold`` (the common case: a journal holds each event
    once); any other (a repeated event) goes event by event through ``on_event``, which drops
    what is at or below each detector's watermark."""
    alerts: list[Alert] = []
    last = 0
    for symbol in sorted(by_symbol):
        bucket = by_symbol[symbol]
        if not bucket:
            continue
        last = max(last, max(e.ts for e in bucket))
        keys = [_order_key(e) for e in bucket]
        fresh = all(a < b for a, b in pairwise(keys)) and all(
            d.watermark(symbol) < keys[0] for d in detectors
        )
        chosen: dict[frozenset[str], tuple[list[SurvEvent], int]] = {}  # the events of each set of kinds
        for detector in detectors:
            kinds = detector.KINDS
            whole = kinds >= _ENGINE_KINDS
            if fresh:
                if whole:
                    mine, last_key = bucket, keys[-1]
                elif kinds in chosen:
                    mine, last_key = chosen[kinds]
                else:
                    picked = [i for i, e in enumerate(bucket) if e.kind in kinds]
                    mine = [bucket[i] for i in picked]
                    last_key = keys[picked[-1]] if picked else 0
                    chosen[kinds] = (mine, last_key)
                alerts.extend(detector.fold(symbol, mine, last_key))
                continue
            on_event = detector.on_event
            # the kinds a detector does not read never reach it (on_event would skip them too)
            for e in bucket if whole else [e for e in bucket if e.kind in kinds]:
                found = on_event(e)
                if found:
                    alerts.extend(found)
    return alerts, last


def finish(detectors: list[PatternDetector], end_ns: int) -> list[Alert]:  # type: ignore[type-arg]
    """The windows still open at the end of a scan, closed at ``end_ns``."""
    alerts: list[Alert] = []
    for detector in detectors:
        alerts.extend(detector.flush(end_ns))
    return alerts


def scan(
    events: Iterable[SurvEvent],
    thresholds: Mapping[str, BaseModel | Mapping[str, Any]] | None = None,
    *,
    now_ns: int | None = None,
    detectors: list[PatternDetector] | None = None,  # type: ignore[type-arg]
) -> list[Alert]:
    """All alerts of ``events``. Windows still open at the end close at ``now_ns`` (default: a day
    after the last event, when a live path would have closed them too)."""
    chosen = detectors if detectors is not None else build_detectors(thresholds)
    alerts, last = detect(order_events(events), chosen)
    alerts.extend(finish(chosen, now_ns if now_ns is not None else last + DAY_NS))
    return dedupe(alerts)


def dedupe(alerts: Iterable[Alert]) -> list[Alert]:
    """Alerts by id, the first kept (ids are deterministic: a repeat is the same alert)."""
    seen: set[str] = set()
    out: list[Alert] = []
    for alert in alerts:
        if alert.id not in seen:
            seen.add(alert.id)
            out.append(alert)
    return out
