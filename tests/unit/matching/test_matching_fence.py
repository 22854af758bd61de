"""Matching engine, ``fence``: closing an order entry that never completed (the entry sweep).

An id the engine has received (in its window of seen ids, or a live order or OCO group of the
symbol) changes nothing; any other is remembered, so a later ``new`` / ``oco`` of it is a
duplicate, and refused with one ``rejected`` event, reason ``entry_incomplete``. A replace's fence
(``replace_command_id``) does the same for a replace command: received changes nothing, else the
replace is refused (``replace_rejected``, ``entry_incomplete``) and dropped when it comes. Every event goes
through the ``venue`` fixture, which checks it against the shared-kernel event models, the
command's envelope fields and the per-symbol sequence (see ``conftest.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from nexus_common.events import ENTRY_INCOMPLETE
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine
from test_matching_compiled import compiled_available, replay_in_child

if TYPE_CHECKING:
    from conftest import Checked, Commands

Event = dict[str, Any]


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def oco(cmd: Commands, group: str, side: str, qty: str, take: str, stop: str) -> dict[str, Any]:
    command = cmd.new(group, side, qty, take, account="owner")
    command.pop("order_type")
    command.update(type="oco", stop_price=stop)
    return command


def test_fence_of_an_id_never_received_rejects_it_and_a_later_new_is_a_duplicate(venue: Checked, cmd: Commands) -> None:
    # GIVEN a symbol with one event already (seq 2 is next)
    venue.process(cmd.new("s1", "sell", "5", "101.00", account="maker"))
    book = venue.engine.book_depth("AAPL", 5)
    # WHEN a fence arrives for an order id the engine never received
    events = venue.process(cmd.fence("lost", account="acct-9"))
    # THEN one rejected event, reason entry_incomplete, with the symbol's next seq
    assert kinds(events) == ["rejected"]
    rejected = events[0]
    assert (rejected["order_id"], rejected["account_id"]) == ("lost", "acct-9")
    assert rejected["reason"] == ENTRY_INCOMPLETE == "entry_incomplete"
    assert rejected["message"]
    assert rejected["seq"] == 3  # after the accepted + book of s1
    assert venue.engine.dropped_commands == 0
    # AND a new of that id arriving later is dropped as a duplicate: no event, the book unchanged
    assert venue.process(cmd.new("lost", "buy", "5", "101.00", account="acct-9")) == []
    assert venue.engine.book_depth("AAPL", 5) == book
    assert "lost" not in venue.engine.live_orders("AAPL")


def test_fence_of_a_live_resting_order_changes_nothing(venue: Checked, cmd: Commands) -> None:
    # GIVEN a resting bid
    venue.process(cmd.new("b1", "buy", "10", "100.00"))
    before = venue.engine.snapshot()
    # WHEN a fence arrives for it
    events = venue.process(cmd.fence("b1"))
    # THEN no event, and the order still rests: the state is unchanged
    assert events == []
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [(10000, 10, 1)], "asks": []}
    assert "b1" in venue.engine.live_orders("AAPL")
    assert venue.engine.snapshot() == before
    assert venue.engine.dropped_commands == 0


def test_fence_of_an_order_received_and_already_filled_changes_nothing(venue: Checked, cmd: Commands) -> None:
    # GIVEN a maker and a taker that filled each other completely (both ids only in the seen window)
    venue.process(cmd.new("s1", "sell", "5", "100.00", account="maker"))
    venue.process(cmd.new("b1", "buy", "5", "100.00", account="taker"))
    assert venue.engine.live_orders("AAPL") == {}
    before = venue.engine.snapshot()
    # WHEN fences arrive for both
    # THEN neither emits anything, and nothing changes
    assert venue.process(cmd.fence("s1", account="maker")) == []
    assert venue.process(cmd.fence("b1", account="taker")) == []
    assert venue.engine.snapshot() == before


def test_fence_of_a_received_oco_group_changes_nothing_and_of_an_unknown_group_rejects_it(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN an OCO group received (last = 100, so the stop-loss parks)
    venue.process(cmd.new("seed-s", "sell", "1", "100.00", account="x"))
    venue.process(cmd.new("seed-b", "buy", "1", "100.00", account="y"))
    venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    live = set(venue.engine.live_orders("AAPL"))
    assert live == {"g.tp", "g.sl"}
    # WHEN a fence arrives for its group id, THEN no event and both legs are still live
    assert venue.process(cmd.fence("g", account="owner")) == []
    assert set(venue.engine.live_orders("AAPL")) == live
    # WHEN a fence arrives for a group id never received
    events = venue.process(cmd.fence("g2", account="owner"))
    # THEN it is rejected under the group id
    assert kinds(events) == ["rejected"]
    assert (events[0]["order_id"], events[0]["reason"]) == ("g2", ENTRY_INCOMPLETE)
    # AND an oco of that group id arriving later is dropped as a duplicate
    assert venue.process(oco(cmd, "g2", "sell", "10", "110.00", "90.00")) == []
    assert set(venue.engine.live_orders("AAPL")) == live


def test_fence_for_an_unknown_symbol_rejects_it(venue: Checked, cmd: Commands) -> None:
    # GIVEN a symbol that is not an instrument, with one rejection already
    venue.process(cmd.new("n1", "buy", "1", "1.00", symbol="NOPE"))
    # WHEN a fence arrives for an id never received on it
    events = venue.process(cmd.fence("n2", symbol="NOPE"))
    # THEN one rejected event, entry_incomplete, continuing that symbol's seq
    assert kinds(events) == ["rejected"]
    assert (events[0]["symbol"], events[0]["seq"], events[0]["reason"]) == ("NOPE", 2, ENTRY_INCOMPLETE)
    # AND a fence of the id the earlier (rejected) new used changes nothing: it was received
    assert venue.process(cmd.fence("n1", symbol="NOPE")) == []


def test_the_same_fence_twice_emits_only_once(venue: Checked, cmd: Commands) -> None:
    # GIVEN a fence of an id never received
    fence = cmd.fence("lost")
    assert kinds(venue.process(fence)) == ["rejected"]
    # WHEN the same fence comes again (a resend), and a fence of the id under a new command id
    # THEN neither emits anything
    assert venue.process(fence) == []
    assert venue.process(cmd.fence("lost")) == []
    assert venue.engine.dropped_commands == 0


def test_fence_expires_due_orders_first(venue: Checked, cmd: Commands) -> None:
    # GIVEN a DAY bid resting from 10:30 New York
    venue.process(cmd.new("d1", "buy", "3", "100.00", tif="day"))
    # WHEN a fence of an unknown id arrives after the 16:00 close
    events = venue.process(cmd.fence("lost", ts="2024-05-01T20:00:00.000000Z"))
    # THEN the DAY order expires first (its book delta too), then the fence's rejection
    assert kinds(events) == ["expired", "book", "rejected"]
    assert events[-1]["reason"] == ENTRY_INCOMPLETE


def test_fence_with_an_account_that_is_not_a_string_is_rejected_with_an_empty_account(
    venue: Checked, cmd: Commands
) -> None:
    events = venue.process(cmd.fence("lost") | {"account_id": 7})
    assert kinds(events) == ["rejected"]
    assert events[0]["account_id"] == ""


@pytest.mark.parametrize("field", ["order_id", "symbol"])
def test_fence_without_an_order_id_or_symbol_is_dropped(venue: Checked, cmd: Commands, field: str) -> None:
    command = cmd.fence("lost")
    command[field] = ""
    assert venue.process(command) == []
    assert venue.engine.dropped_commands == 1


def replace_of(cmd: Commands, order_id: str, command_id: str, **terms: str) -> dict[str, Any]:
    command = cmd.cancel(order_id)
    command.update(type="replace", command_id=command_id, **terms)
    return command


def test_a_replace_fenced_before_it_arrives_is_refused_once_and_dropped_when_it_comes(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN a resting bid of 5
    venue.process(cmd.new("b1", "buy", "5", "100.00"))
    book = venue.engine.book_depth("AAPL", 5)
    # WHEN a fence arrives for its replace 1, which the engine never received
    events = venue.process(cmd.fence("b1", replace="b1:replace:1"))
    # THEN the replace is refused, under its own command id, reason entry_incomplete
    assert kinds(events) == ["replace_rejected"]
    refused = events[0]
    assert (refused["order_id"], refused["correlation_id"], refused["reason"]) == (
        "b1", "b1:replace:1", ENTRY_INCOMPLETE)
    # AND the same fence again changes nothing
    assert venue.process(cmd.fence("b1", replace="b1:replace:1")) == []
    # AND the replace arriving late is dropped: no event, the order as it was
    assert venue.process(replace_of(cmd, "b1", "b1:replace:1", quantity="9")) == []
    assert venue.engine.book_depth("AAPL", 5) == book
    assert venue.engine.dropped_commands == 1
    # AND the order's next replace is taken as usual
    assert kinds(venue.process(replace_of(cmd, "b1", "b1:replace:2", quantity="3")))[0] == "replaced"


def test_a_replace_received_before_its_fence_stands_and_the_fence_changes_nothing(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN a resting bid replaced to 9 (replace 1), and one refused by the engine (replace 2)
    venue.process(cmd.new("b1", "buy", "5", "100.00"))
    assert kinds(venue.process(replace_of(cmd, "b1", "b1:replace:1", quantity="9")))[0] == "replaced"
    assert kinds(venue.process(replace_of(cmd, "b1", "b1:replace:2", quantity="0"))) == ["replace_rejected"]
    before = venue.engine.snapshot()
    # WHEN fences of both arrive
    # THEN neither changes anything: the engine received both
    assert venue.process(cmd.fence("b1", replace="b1:replace:1")) == []
    assert venue.process(cmd.fence("b1", replace="b1:replace:2")) == []
    assert venue.engine.snapshot() == before
    # AND a replace resent with a command id already taken is dropped
    assert venue.process(replace_of(cmd, "b1", "b1:replace:1", quantity="4")) == []
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [(10000, 9, 1)], "asks": []}


def test_a_replace_fence_of_an_order_the_engine_does_not_know_is_refused_and_a_bad_id_dropped(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN no order at all: the fence still refuses the replace (the orders consumer and the
    # risk consumer close it)
    events = venue.process(cmd.fence("ghost", replace="ghost:replace:3", account="acct-9"))
    assert [(e["type"], e["order_id"], e["account_id"]) for e in events] == [("replace_rejected", "ghost", "acct-9")]
    # AND a fence whose replace id is not a non-empty string is dropped
    for bad in ("", 7):
        command = cmd.fence("ghost")
        command["replace_command_id"] = bad
        assert venue.process(command) == []
    assert venue.engine.dropped_commands == 2


def fence_journal() -> list[dict[str, Any]]:
    """Orders, an OCO group, fences of received, unknown and fenced ids, a fence on a symbol that
    is not an instrument, a fence after the close (DAY expiry first), resends of fenced ids, and
    replace fences before and after their replace."""
    ts = "2024-05-01T14:30:00Z"
    base = {"account_id": "a1", "symbol": "AAPL", "ts": ts}
    new = {**base, "type": "new", "side": "buy", "order_type": "limit", "quantity": "3", "price": "100.00"}
    return [
        {**new, "command_id": "c1", "order_id": "o1"},
        {**new, "command_id": "c2", "order_id": "o2", "time_in_force": "day"},
        {**new, "command_id": "c3", "order_id": "o3", "side": "sell", "account_id": "a2"},  # fills o1
        {
            **base,
            "type": "oco",
            "command_id": "c4",
            "order_id": "g",
            "side": "sell",
            "quantity": "2",
            "price": "110.00",
            "stop_price": "90.00",
        },
        {**base, "type": "fence", "command_id": "c5", "order_id": "o1"},
        {**base, "type": "fence", "command_id": "c6", "order_id": "o2"},
        {**base, "type": "fence", "command_id": "c7", "order_id": "g"},
        {**base, "type": "fence", "command_id": "c8", "order_id": "lost"},
        {**base, "type": "fence", "command_id": "c8", "order_id": "lost"},
        {**new, "command_id": "c9", "order_id": "lost"},
        {**base, "type": "fence", "command_id": "c10", "order_id": "x", "symbol": "NOPE"},
        {**base, "type": "fence", "command_id": "c10r", "order_id": "o3", "replace_command_id": "o3:replace:1"},
        {**base, "type": "replace", "command_id": "o3:replace:1", "order_id": "o3", "account_id": "a2",
         "quantity": "9"},
        {**base, "type": "replace", "command_id": "o2:replace:1", "order_id": "o2", "quantity": "4"},
        {**base, "type": "fence", "command_id": "c10s", "order_id": "o2", "replace_command_id": "o2:replace:1"},
        {**base, "type": "fence", "command_id": "c11", "order_id": "late", "ts": "2024-05-01T20:00:00Z"},
        {
            **base,
            "type": "oco",
            "command_id": "c12",
            "order_id": "late",
            "side": "sell",
            "quantity": "2",
            "price": "110.00",
            "stop_price": "90.00",
            "ts": "2024-05-01T20:00:00Z",
        },
    ]


def test_replaying_a_journal_with_fences_gives_the_same_events_after_a_restore(
    instruments: dict[str, Instrument],
) -> None:
    # GIVEN a journal with fences, cut in two
    journal = fence_journal()
    cut = 6
    # WHEN one engine runs it whole, and another runs the first part, is snapshotted through JSON,
    # restored, and runs the rest
    whole = MatchingEngine(instruments)
    expected = [event for command in journal for event in whole.process(dict(command))]
    first = MatchingEngine(instruments)
    events = [event for command in journal[:cut] for event in first.process(dict(command))]
    restored = MatchingEngine.restore(json.loads(json.dumps(first.snapshot())), instruments)
    events += [event for command in journal[cut:] for event in restored.process(dict(command))]
    # THEN the events are the same, each fence of an id never received refused once, with the command's ts
    assert events == expected
    refused = [(e["order_id"], e["symbol"], e["ts"]) for e in expected if e.get("reason") == ENTRY_INCOMPLETE]
    assert refused == [
        ("lost", "AAPL", "2024-05-01T14:30:00Z"),
        ("x", "NOPE", "2024-05-01T14:30:00Z"),
        ("o3", "AAPL", "2024-05-01T14:30:00Z"),  # its replace, fenced before it came
        ("late", "AAPL", "2024-05-01T20:00:00Z"),
    ]
    assert [e["type"] for e in expected if e.get("reason") == ENTRY_INCOMPLETE].count("replace_rejected") == 1
    assert any(e["type"] == "replaced" and e["order_id"] == "o2" for e in expected)  # received before its fence
    assert "expired" in {e["type"] for e in expected}  # the late fence expired the DAY order first
    assert restored.snapshot() == whole.snapshot()


@pytest.mark.skipif(not compiled_available(), reason="the Cython extension is not built (no C compiler at install)")
def test_compiled_and_pure_engines_answer_fences_identically(tmp_path: Path) -> None:
    # GIVEN a journal with fences of received, unknown and fenced ids
    journal = tmp_path / "commands.jsonl"
    journal.write_text("".join(json.dumps(command) + "\n" for command in fence_journal()))
    # WHEN the compiled engine and the pure Python engine each replay it in their own process
    compiled = replay_in_child(journal, tmp_path / "compiled.jsonl", pure=False)
    pure = replay_in_child(journal, tmp_path / "pure.jsonl", pure=True)
    # THEN each ran the implementation asked for, and the event streams are byte-identical
    assert (compiled[0], pure[0]) == ("compiled", "pure")
    assert compiled[1:] == pure[1:]
    output = (tmp_path / "compiled.jsonl").read_bytes()
    assert output == (tmp_path / "pure.jsonl").read_bytes()
    assert output.count(b'"reason":"entry_incomplete"') == 4
