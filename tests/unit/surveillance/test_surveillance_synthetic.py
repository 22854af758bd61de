"""The seeded synthetic day: labelled episodes of every pattern, deterministic, in the platform's formats."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from nexus_surveillance.events import from_execution_event, from_order_command
from nexus_surveillance.synthetic import MM_ACCOUNT, PATTERNS, Day, generate_day


@functools.cache
def small_day(seed: int = 3) -> Day:
    return generate_day(seed=seed, symbols=3, episodes=3, users=30, benign_rate=0.05)


def test_every_pattern_has_its_episodes_with_labels() -> None:
    day = small_day()
    counts = Counter(ep.pattern for ep in day.episodes)
    assert counts == {p: 3 for p in PATTERNS}
    assert {ep.kind for ep in day.episodes if ep.pattern == "wash_trading"} == {"same_owner", "round_trip"}
    for ep in day.episodes:
        assert ep.start_ns <= ep.end_ns and ep.users and ep.accounts
        assert all(day.owners[a] in ep.users for a in ep.accounts)


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    assert generate_day(seed=3, symbols=3, episodes=3, users=30, benign_rate=0.05).events == small_day().events
    assert generate_day(seed=4, symbols=3, episodes=3, users=30, benign_rate=0.05).events != small_day().events


def test_the_records_decode_and_each_symbol_counts_its_sequence_without_gaps() -> None:
    day = small_day()
    seqs: dict[str, list[int]] = {}
    last_ts: dict[str, int] = {}
    for record in day.events:
        events = from_execution_event(record, day.owners)
        assert events
        seqs.setdefault(record["symbol"], []).append(record["seq"])
        assert events[0].ts >= last_ts.get(record["symbol"], 0)
        last_ts[record["symbol"]] = events[0].ts
    for values in seqs.values():
        assert values == list(range(1, len(values) + 1))
    news = [from_order_command(c) for c in day.commands]
    assert all(e is not None and e.user_id == day.owners[e.account_id] for e in news if e and e.kind == "new")


def test_the_market_maker_cancels_most_of_its_quotes() -> None:
    day = small_day()
    kinds = Counter(r["type"] for r in day.events if r.get("account_id") == MM_ACCOUNT)
    assert kinds["cancelled"] / kinds["accepted"] > 0.8
    assert day.stats.market_maker_orders == kinds["accepted"]


def test_the_day_refuses_fewer_symbols_than_episodes() -> None:
    with pytest.raises(ValueError):
        generate_day(symbols=2, episodes=3)
