"""The bounded window of seen order ids (engine doc, "Idempotency"): what a resend meets, that the
memory stays bounded, that the window survives a snapshot, and that a format-2 snapshot (one
unbounded list of seen ids) still restores.

Guarantee under test: a ``new``/``oco`` whose id is that of a live order of the symbol is
ignored however old it is; any other id is ignored as long as fewer than ``dedup_window`` other
new ids came in since it was first seen, and forgotten once ``2 * dedup_window - 1`` have.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_matching.engine import SNAPSHOT_FORMAT, EngineConfig, MatchingEngine

if TYPE_CHECKING:
    from conftest import Checked, Commands

WINDOW = 3


def small_window(instruments: Any) -> MatchingEngine:
    return MatchingEngine(instruments, config=EngineConfig(dedup_window=WINDOW))


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_a_resend_within_the_window_is_ignored_and_a_later_one_counts_as_new(
    checked: Any, cmd: Commands, instruments: Any
) -> None:
    venue: Checked = checked(small_window(instruments))
    # GIVEN an order that was placed and cancelled
    first = cmd.new("o1", "buy", "5", "9.99")
    assert kinds(venue.process(first)) == ["accepted", "book"]
    assert kinds(venue.process(cmd.cancel("o1"))) == ["cancelled", "book"]
    # WHEN it is resent after fewer than WINDOW other new ids, THEN it is ignored
    for i in range(WINDOW - 1):
        venue.process(cmd.new(f"x{i}", "sell", "1", "20.00", account="other"))
    assert venue.process(first) == []
    # WHEN 2 * WINDOW - 1 other new ids have come in (the most the window can hold beside it),
    # THEN the finished order's id counts as new again
    for i in range(WINDOW):
        venue.process(cmd.new(f"y{i}", "sell", "1", "20.00", account="other"))
    assert kinds(venue.process(first)) == ["accepted", "book"]


def test_a_live_order_is_never_duplicated_however_old(checked: Any, cmd: Commands, instruments: Any) -> None:
    venue: Checked = checked(small_window(instruments))
    # GIVEN a resting order, and then many more new ids than the window holds
    resting = cmd.new("keep", "buy", "5", "9.99")
    venue.process(resting)
    for i in range(10 * WINDOW):
        venue.process(cmd.new(f"x{i}", "sell", "1", "20.00", account="other"))
    # WHEN the resting order's command is resent, THEN it is ignored: the order is live
    assert venue.process(resting) == []
    assert venue.engine.book_depth("AAPL", 5)["bids"] == [(999, 5, 1)]
    # AND the fast path ignores it too
    venue.engine.submit("AAPL", "keep", "acct-1", True, 999, 5)
    assert venue.engine.book_depth("AAPL", 5)["bids"] == [(999, 5, 1)]


def test_a_live_oco_group_and_its_legs_are_never_duplicated(
    checked: Any, cmd: Commands, instruments: Any
) -> None:
    venue: Checked = checked(small_window(instruments))
    # GIVEN a live OCO group, and then more new ids than the window holds
    group = {
        "type": "oco", "command_id": "g1", "order_id": "g", "account_id": "acct-1", "symbol": "AAPL",
        "side": "sell", "quantity": "5", "price": "11.00", "stop_price": "9.00", "ts": cmd.new("_", "buy", "1")["ts"],
    }
    assert kinds(venue.process(group))[:2] == ["accepted", "accepted"]
    for i in range(10 * WINDOW):
        venue.process(cmd.new(f"x{i}", "sell", "1", "20.00", account="other"))
    # WHEN the group, or a new order with a leg's id or the group's id, is sent
    # THEN the group is ignored and the orders are not accepted
    assert venue.process({**group, "command_id": "g2"}) == []
    assert venue.process(cmd.new("g.tp", "buy", "1", "9.00")) == []
    assert venue.process(cmd.new("g", "buy", "1", "9.00")) == []


def test_memory_and_snapshot_stay_bounded(instruments: Any) -> None:
    # GIVEN an engine with a window of 100, WHEN 2,000 orders come and go on the fast path
    engine = MatchingEngine(instruments, config=EngineConfig(dedup_window=100))
    for i in range(2_000):
        engine.submit("AAPL", f"o{i}", "acct-1", i % 2 == 0, 1000, 1)
    # THEN the snapshot holds at most two generations of ids, the newest ones
    seen = engine.snapshot()["seen_order_ids"]
    assert len(seen["previous"]) == 100 and len(seen["current"]) <= 100
    assert "o1999" in seen["previous"] + seen["current"] and "o0" not in seen["previous"] + seen["current"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(st.integers(0, 11), st.sampled_from(["buy", "sell"]), st.integers(1, 4), st.integers(-2, 2)),
        max_size=40,
    ),
    split=st.integers(0, 40),
)
def test_the_window_survives_snapshot_and_restore(
    ops: list[tuple[int, str, int, int]], split: int, instruments: Any
) -> None:
    # GIVEN a journal with many resends (12 distinct ids) and a window of 3
    config = EngineConfig(dedup_window=WINDOW)
    journal = [
        {
            "type": "new", "command_id": f"c{n}", "order_id": f"o{i}", "account_id": "acct-1",
            "symbol": "AAPL", "side": side, "order_type": "limit", "quantity": str(qty),
            "price": f"{10 + tick / 100:.2f}", "time_in_force": "gtc" if i % 3 else "ioc",
            "ts": "2024-05-01T14:30:00.000000Z",
        }
        for n, (i, side, qty, tick) in enumerate(ops)
    ]
    straight = MatchingEngine(instruments, config=config)
    expected = [straight.process(c) for c in journal]
    # WHEN the run is snapshotted at any point, through JSON, and restored
    first = MatchingEngine(instruments, config=config)
    got = [first.process(c) for c in journal[:split]]
    state = json.loads(json.dumps(first.snapshot()))
    restored = MatchingEngine.restore(state, instruments, config)
    got += [restored.process(c) for c in journal[split:]]
    # THEN it continues exactly like the uninterrupted run, resends included
    assert got == expected
    assert restored.snapshot() == straight.snapshot()


def test_a_format_2_snapshot_restores_with_every_old_id_remembered(
    venue: Checked, cmd: Commands, instruments: Any
) -> None:
    # GIVEN a format-2 snapshot: one flat list of every seen id
    done = cmd.new("done", "buy", "1", "9.99", tif="ioc")
    venue.process(done)
    venue.process(cmd.new("live", "buy", "2", "9.98"))
    state = venue.engine.snapshot()
    seen = state["seen_order_ids"]
    old = {**state, "format": 2, "seen_order_ids": sorted(seen["previous"] + seen["current"])}
    assert SNAPSHOT_FORMAT == 5
    # WHEN it is restored
    restored = MatchingEngine.restore(json.loads(json.dumps(old)), instruments)
    # THEN the book is back, and a resend of either order is still ignored
    assert restored.book_depth("AAPL", 5) == venue.engine.book_depth("AAPL", 5)
    assert restored.process(done) == []
    assert restored.process(cmd.new("live", "buy", "2", "9.98")) == []
    # AND a format-2 snapshot whose live order is missing from its seen ids is refused
    broken = {**old, "seen_order_ids": ["done"]}
    with pytest.raises(ValueError):
        MatchingEngine.restore(broken, instruments)


@pytest.mark.parametrize(
    "seen",
    [["a", "b"], {"previous": ["a"]}, {"previous": ["a", 1], "current": []}, {"previous": "ab", "current": []}],
    ids=["flat-list", "no-current", "not-a-string", "not-a-list"],
)
def test_a_malformed_window_is_refused(seen: Any, venue: Checked, cmd: Commands, instruments: Any) -> None:
    venue.process(cmd.new("b1", "buy", "5", "9.99"))
    state = {**venue.engine.snapshot(), "seen_order_ids": seen}
    with pytest.raises(ValueError):
        MatchingEngine.restore(state, instruments)


def test_the_window_size_is_positive() -> None:
    with pytest.raises(ValueError):
        EngineConfig(dedup_window=0)
