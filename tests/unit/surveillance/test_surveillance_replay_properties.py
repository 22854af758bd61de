"""Property tests: a redelivered, replayed or differently interleaved stream gives the same alerts."""

from __future__ import annotations

import functools
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_surveillance.detectors import Alert
from nexus_surveillance.events import SurvEvent, from_execution_event
from nexus_surveillance.scan import build_detectors, scan
from nexus_surveillance.synthetic import generate_day

END = 1_767_646_800_000_000_000 + 3_600_000_000_000  # an hour after the close


@functools.cache
def stream() -> tuple[SurvEvent, ...]:
    """A small seeded day: two symbols, one episode of every pattern on each, little benign flow."""
    day = generate_day(seed=11, symbols=2, episodes=2, users=20, benign_rate=0.03)
    events: list[SurvEvent] = []
    for record in day.events:
        events.extend(from_execution_event(record, day.owners))
    return tuple(events)


def live(events: list[SurvEvent], detectors: list | None = None, flush_every: int = 0) -> list[Alert]:  # type: ignore[type-arg]
    """The live way: one event at a time, in arrival order (``flush`` at the event time every
    ``flush_every`` events, as the consumer does after each batch), then the windows closed."""
    chosen = detectors if detectors is not None else build_detectors()
    alerts: list[Alert] = []
    for n, e in enumerate(events, start=1):
        for d in chosen:
            alerts.extend(d.on_event(e))
        if flush_every and n % flush_every == 0:
            for d in chosen:
                alerts.extend(d.flush(e.ts))
    for d in chosen:
        alerts.extend(d.flush(END))
    return alerts


def by_id(alerts: list[Alert]) -> dict[str, Alert]:
    return {a.id: a for a in alerts}


@functools.cache
def clean() -> dict[str, Alert]:
    return by_id(live(list(stream())))


def test_the_small_day_raises_alerts_of_every_detector_and_scan_agrees_with_live() -> None:
    # GIVEN the small day WHEN scanned (grouped by symbol) and run live (interleaved)
    alerts = clean()
    # THEN every detector raised something, and both ways give the same alerts
    assert {a.detector for a in alerts.values()} == {
        "spoofing", "layering", "wash_trading", "momentum_ignition", "marking_the_close", "quote_stuffing"}
    assert by_id(scan(list(stream()), now_ns=END)) == alerts


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3_000))
def test_flushing_after_every_batch_at_the_batch_time_changes_no_alert(batch: int) -> None:
    # GIVEN the time-ordered stream cut in batches, each followed by flush(time of its last event),
    # which closes windows and forgets stale state WHEN run THEN the alerts are the clean run's
    assert by_id(live(list(stream()), flush_every=batch)) == clean()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=4))
def test_redelivered_batches_change_no_alert(redeliveries: list[tuple[float, float]]) -> None:
    # GIVEN the stream with some of its stretches delivered again later (at-least-once delivery)
    events = list(stream())
    for a, b in redeliveries:
        i, j = sorted((int(a * len(events)), int(b * len(events))))
        j = min(j, i + 2_000)
        events[j:j] = events[i:j]
    # WHEN run live THEN the alerts are those of the clean stream, none doubled
    alerts = live(events)
    assert len(alerts) == len(by_id(alerts))
    assert by_id(alerts) == clean()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0, 1), st.floats(0, 1))
def test_a_restart_from_a_snapshot_and_a_replay_from_before_it_change_no_alert(cut: float, back: float) -> None:
    # GIVEN the detectors ran to a cut, were snapshotted (as JSON) and the process stopped
    events = list(stream())
    k = int(cut * len(events))
    first = build_detectors()
    before: list[Alert] = []
    for e in events[:k]:
        for d in first:
            before.extend(d.on_event(e))
    saved = json.loads(json.dumps([d.snapshot() for d in first]))
    # WHEN fresh detectors restore it and the journal is replayed from an earlier point
    second = build_detectors()
    for d, snap in zip(second, saved, strict=True):
        d.restore(snap)
    m = int(back * k)
    after = live(events[m:], second)
    # THEN the alerts before and after the restart are the clean run's, each once
    assert len(before) + len(after) == len(by_id(before + after))
    assert by_id(before + after) == clean()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_any_interleaving_of_symbols_gives_the_same_alerts(seed: int) -> None:
    rnd = random.Random(seed)
    # GIVEN each symbol's events in order, merged across symbols in a random way (shards, batches)
    per_symbol: dict[str, list[SurvEvent]] = {}
    for e in stream():
        per_symbol.setdefault(e.symbol, []).append(e)
    queues = [list(reversed(v)) for v in per_symbol.values()]
    merged: list[SurvEvent] = []
    while any(queues):
        q = rnd.choice([q for q in queues if q])
        for _ in range(rnd.randint(1, 500)):
            if q:
                merged.append(q.pop())
    # WHEN / THEN
    assert by_id(live(merged)) == clean()
