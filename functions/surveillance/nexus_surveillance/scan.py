"""The historical scan: every detector over a set of events, symbol by symbol in engine order.

``scan`` gives the same alerts as the live path fed the same events: the detectors keep all
state per symbol, skip what is at or below a symbol's watermark, and close their windows on event
time, so grouping by symbol (here) or interleaving symbols (live shards) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from nexus_surveillance.detectors import DETECTORS, Alert, PatternDetector
from nexus_surveillance.events import SurvEvent

_DAY_NS = 86_400 * 1_000_000_000


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
    for bucket in by_symbol.values():
        bucket.sort(key=_order_key)
    return by_symbol


def _order_key(e: SurvEvent) -> int:
    return e.seq * 2 + (1 if e.kind == "fill" and not e.aggressor else 0)


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
    by_symbol = order_events(events)
    alerts: list[Alert] = []
    last = 0
    for symbol in sorted(by_symbol):
        bucket = by_symbol[symbol]
        if bucket and bucket[-1].ts > last:
            last = max(last, max(e.ts for e in bucket))
        for detector in chosen:
            on_event = detector.on_event
            kinds = detector.KINDS
            # the kinds a detector does not read never reach it (on_event would skip them too)
            mine = bucket if len(kinds) >= 6 else [e for e in bucket if e.kind in kinds]
            for e in mine:
                found = on_event(e)
                if found:
                    alerts.extend(found)
    end = now_ns if now_ns is not None else last + _DAY_NS
    for detector in chosen:
        alerts.extend(detector.flush(end))
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
