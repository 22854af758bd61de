"""A ``routed_fills`` command (a routed order's executions on the simulated external venues): the
engine puts it in the symbol's sequence as ``venue_fill`` events and one ``route_ended``, leaves
the book alone, drops a resent command, and drops a malformed one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from lambda_events import load_event
from nexus_matching.engine import MatchingEngine

if TYPE_CHECKING:
    from conftest import Checked, Commands

TS = "2024-05-01T14:30:00.000000Z"


def fill(
    n: int, price: str, quantity: str, filled: str, notional: str, remaining: str, fee: str = "0.03"
) -> dict[str, Any]:
    return {"child_id": f"p1-1-{n}", "venue": "ARCX-SIM", "mic": "ARCX", "price": price, "quantity": quantity,
            "liquidity": "taker", "fee": fee, "report_id": f"ARCX-SIM-{n}", "filled_quantity": filled,
            "filled_notional": notional, "remaining_quantity": remaining}


def routed(fills: list[dict[str, Any]], *, order_id: str = "p1", reason: str = "ioc") -> dict[str, Any]:
    return {"type": "routed_fills", "command_id": f"route-{order_id}", "order_id": order_id, "account_id": "acct-1",
            "symbol": "AAPL", "side": "buy", "quantity": "100", "fills": fills, "end_reason": reason, "ts": TS}


def test_fills_become_venue_fill_events_then_route_ended_in_the_symbols_sequence(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN a resting order on the internal book (seq 1, 2)
    venue.process(cmd.new("rest", "sell", "5", "101"))
    # WHEN a routed order's two external fills arrive
    events = venue.process(routed([fill(1, "100.01", "60", "60", "6000.6", "40"),
                                   fill(2, "100.02", "30", "90", "9001.2", "10", fee="-0.006")]))
    # THEN two venue fills and the end, next in AAPL's sequence, the totals of the last fill at the end
    assert [e["type"] for e in events] == ["venue_fill", "venue_fill", "route_ended"]
    assert [e["seq"] for e in events] == [3, 4, 5]
    assert events[1]["fee"] == "-0.006" and events[1]["venue"] == "ARCX-SIM" and events[1]["side"] == "buy"
    end = events[2]
    assert (end["filled_quantity"], end["filled_notional"], end["remaining_quantity"], end["reason"]) == (
        "90", "9001.2", "10", "ioc")
    # AND the internal book is untouched
    assert venue.engine.book_depth("AAPL", 5)["asks"] == [(10100, 5, 1)]


def test_nothing_filled_is_one_route_ended_with_everything_remaining(venue: Checked) -> None:
    events = venue.process(routed([], reason="no_liquidity"))
    assert [e["type"] for e in events] == ["route_ended"]
    assert (events[0]["filled_quantity"], events[0]["remaining_quantity"]) == ("0", "100")


def test_a_resent_command_is_dropped(venue: Checked) -> None:
    command = routed([fill(1, "100.01", "100", "100", "10001", "0")], reason="filled")
    assert len(venue.process(command)) == 2
    # WHEN routing retries and sends the same command again, THEN nothing is emitted
    assert venue.process(dict(command)) == []


@pytest.mark.parametrize("broken", [
    {"side": "hold"},
    {"quantity": "1e9"},
    {"account_id": ""},
    {"fills": [fill(1, "100.01", "60", "60", "6000.6", "40") | {"price": 100.01}]},
    {"fills": [fill(1, "100.01", "60", "60", "6000.6", "40") | {"quantity": "-60"}]},
    {"fills": [fill(1, "100.01", "60", "60", "6000.6", "40") | {"liquidity": "both"}]},
    {"fills": [fill(1, "100.01", "60", "60", "6000.6", "40") | {"child_id": "x" * 200}]},
    {"fills": [fill(i, "1", "1", "1", "1", "1") for i in range(501)]},
    {"fills": "none"},
])
def test_a_malformed_command_is_dropped_and_changes_no_sequence(venue: Checked, broken: dict[str, Any]) -> None:
    engine: MatchingEngine = venue.engine
    before = engine.dropped_commands
    assert venue.process(routed([fill(1, "100.01", "60", "60", "6000.6", "40")]) | broken) == []
    assert engine.dropped_commands == before + 1
    # AND the next good command still gets seq 1: nothing was consumed
    assert venue.process(routed([], order_id="p2"))[0]["seq"] == 1


def test_what_the_external_fills_left_runs_on_the_internal_book_under_the_parents_id(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN the internal book offers 50 at 100.00 and 30 at 100.02 (another account)
    venue.process(cmd.new("s1", "sell", "50", "100.00", account="acct-2"))
    venue.process(cmd.new("s2", "sell", "30", "100.02", account="acct-2"))
    # WHEN a routed buy of 100 filled 40 at 100.01 externally and sends the rest at 100.00 inside
    command = routed([fill(1, "100.01", "40", "40", "4000.4", "60")]) | {"internal_price": "100", "end_reason":
                                                                        "internal"}
    events = venue.process(command)
    # THEN the venue fill, then the parent's trade on the book at 100.00 with the parent's totals,
    # then its IOC cancel (no route_ended: the engine's own end of the order ends it)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["venue_fill", "trade"] and "route_ended" not in kinds
    trade = events[1]
    assert (trade["taker_order_id"], trade["taker_account_id"], trade["price"], trade["quantity"]) == (
        "p1", "acct-1", "100", "50")
    assert (trade["taker_filled_quantity"], trade["taker_filled_notional"], trade["taker_remaining_quantity"]) == (
        "90", "9000.4", "10")
    cancel = next(e for e in events if e["type"] == "cancelled")
    assert (cancel["order_id"], cancel["remaining_quantity"], cancel["reason"]) == ("p1", "10", "ioc")
    # AND nothing of it rests, and the 100.02 offer was not taken (above the internal price)
    assert venue.engine.book_depth("AAPL", 5)["asks"] == [(10002, 30, 1)]


def test_an_internal_part_that_cannot_run_ends_the_route_with_its_reason(venue: Checked) -> None:
    command = routed([]) | {"symbol": "HALT", "internal_price": "100", "end_reason": "internal"}
    events = venue.process(command)
    assert [e["type"] for e in events] == ["route_ended"]
    assert events[0]["reason"] == "symbol_halted" and events[0]["remaining_quantity"] == "100"


def test_an_internal_price_that_is_not_a_decimal_drops_the_command(venue: Checked) -> None:
    assert venue.process(routed([]) | {"internal_price": 100}) == []


def test_a_gtc_routed_order_takes_inside_then_rests_its_remainder_at_the_rest_price(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN the internal book offers 50 at 100.00 (another account)
    venue.process(cmd.new("s1", "sell", "50", "100.00", account="acct-2"))
    # WHEN a gtc routed buy of 100 filled 40 externally, takes inside up to 100.00 and rests at 99.99
    command = routed([fill(1, "100.01", "40", "40", "4000.4", "60")]) | {
        "internal_price": "100", "rest_price": "99.99", "time_in_force": "gtc", "end_reason": "internal"}
    events = venue.process(command)
    # THEN the venue fill, the trade inside with the parent's totals, and no end: 10 rest at 99.99
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["venue_fill", "trade"] and "cancelled" not in kinds and "route_ended" not in kinds
    assert events[1]["taker_remaining_quantity"] == "10"
    assert venue.engine.book_depth("AAPL", 5)["bids"] == [(9999, 10, 1)]
    # AND it is an ordinary resting order: a cancel ends it with its 10 left
    cancelled = venue.process(cmd.cancel("p1"))
    assert (cancelled[0]["type"], cancelled[0]["remaining_quantity"]) == ("cancelled", "10")


def test_a_routed_order_with_nothing_filled_rests_announced_by_accepted(venue: Checked) -> None:
    events = venue.process(routed([]) | {"rest_price": "99.50", "time_in_force": "day", "end_reason": "rest"})
    assert [e["type"] for e in events] == ["accepted", "book"]
    accepted = events[0]
    assert (accepted["order_id"], accepted["price"], accepted["quantity"], accepted["time_in_force"]) == (
        "p1", "99.5", "100", "day")
    assert accepted["expire_at"] is not None


# -- a routed order working on an external venue ----------------------------------------------


def resting_on_arcx(fills: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The route's first command of a gtc routed buy whose remainder rests on ARCX-SIM at 99.99."""
    return routed(fills, reason="rest") | {"working": True, "rest_venue": "ARCX-SIM", "rest_mic": "ARCX",
                                           "rest_price": "99.99", "time_in_force": "gtc"} | extra


def test_a_remainder_resting_on_an_external_venue_is_the_fills_then_route_working(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN an offer on the internal book at the routed order's price (seq 1, 2)
    venue.process(cmd.new("s1", "sell", "50", "99.99", account="acct-2"))
    # WHEN a gtc routed buy of 100 filled 40 on ARCX-SIM and its 60 left rest there at 99.99
    events = venue.process(resting_on_arcx([fill(1, "100.01", "40", "40", "4000.4", "60")]))
    # THEN the venue fill then route_ended's sibling, route_working, with the parent's totals
    assert [e["type"] for e in events] == ["venue_fill", "route_working"]
    assert [e["seq"] for e in events] == [3, 4]
    working = events[1]
    assert (working["order_id"], working["account_id"], working["side"], working["quantity"]) == (
        "p1", "acct-1", "buy", "100")
    assert (working["venue"], working["mic"], working["price"], working["time_in_force"]) == (
        "ARCX-SIM", "ARCX", "99.99", "gtc")
    assert (working["filled_quantity"], working["filled_notional"], working["remaining_quantity"]) == (
        "40", "4000.4", "60")
    # AND nothing ran on the internal book: the offer at 99.99 is untouched, no bid rests
    depth = venue.engine.book_depth("AAPL", 5)
    assert depth["asks"] == [(9999, 50, 1)] and depth["bids"] == []


def test_a_remainder_resting_with_nothing_filled_is_route_working_with_everything_remaining(
    venue: Checked,
) -> None:
    events = venue.process(resting_on_arcx([], time_in_force="day", rest_mic=None))
    assert [e["type"] for e in events] == ["route_working"]
    working = events[0]
    assert (working["filled_quantity"], working["filled_notional"], working["remaining_quantity"]) == (
        "0", "0", "100")
    assert (working["time_in_force"], working["mic"]) == ("day", None)


def test_a_working_orders_later_fills_then_its_end_follow_in_the_sequence(venue: Checked) -> None:
    # GIVEN a routed order resting on ARCX-SIM after 40 filled (seq 1, 2)
    venue.process(resting_on_arcx([fill(1, "100.01", "40", "40", "4000.4", "60")]))
    # WHEN the venue fills 50 of the resting child (a continuation command, still working)
    later = routed([fill(2, "99.99", "50", "90", "8999.9", "10")], reason="rest") | {
        "command_id": "route-p1-1", "working": True, "time_in_force": "gtc"}
    events = venue.process(later)
    # THEN only the fill, next in the sequence: no route_working again, no end
    assert [(e["type"], e["seq"]) for e in events] == [("venue_fill", 3)]
    assert events[0]["filled_quantity"] == "90"
    # WHEN the order is then cancelled on the venue (its last command, no longer working, no fill)
    end = routed([], reason="cancelled") | {"command_id": "route-p1-2", "time_in_force": "gtc"}
    events = venue.process(end)
    # THEN one route_ended with the reason and the order's totals of its last fill: 10 will not fill
    assert [(e["type"], e["seq"]) for e in events] == [("route_ended", 4)]
    ended = events[0]
    assert (ended["reason"], ended["filled_quantity"], ended["filled_notional"], ended["remaining_quantity"]) == (
        "cancelled", "90", "8999.9", "10")


def test_a_working_orders_last_fill_then_route_ended_filled(venue: Checked) -> None:
    venue.process(resting_on_arcx([]))
    end = routed([fill(2, "99.99", "100", "100", "9999", "0")], reason="filled") | {
        "command_id": "route-p1-1", "time_in_force": "gtc", "working": False}
    events = venue.process(end)
    assert [e["type"] for e in events] == ["venue_fill", "route_ended"]
    assert (events[1]["reason"], events[1]["filled_quantity"], events[1]["remaining_quantity"]) == (
        "filled", "100", "0")


def test_a_working_continuation_with_no_fill_emits_nothing_and_is_not_dropped(venue: Checked) -> None:
    engine: MatchingEngine = venue.engine
    venue.process(resting_on_arcx([]))
    before = engine.dropped_commands
    assert venue.process(routed([]) | {"command_id": "route-p1-1", "working": True}) == []
    assert engine.dropped_commands == before


def test_a_resent_working_command_is_dropped(venue: Checked) -> None:
    # GIVEN the route's first command and one continuation were applied
    first = resting_on_arcx([fill(1, "100.01", "40", "40", "4000.4", "60")])
    later = routed([fill(2, "99.99", "50", "90", "8999.9", "10")]) | {"command_id": "route-p1-1", "working": True}
    assert len(venue.process(first)) == 2
    assert len(venue.process(later)) == 1
    engine: MatchingEngine = venue.engine
    before = engine.dropped_commands
    # WHEN routing resends either, THEN nothing is emitted and the sequence does not move
    assert venue.process(dict(first)) == []
    assert venue.process(dict(later)) == []
    assert engine.dropped_commands == before + 2
    assert venue.process(routed([], order_id="p2"))[0]["seq"] == 4


@pytest.mark.parametrize("broken", [
    {"working": "yes"},
    {"working": 1},
    {"rest_venue": ""},
    {"rest_venue": 7},
    {"rest_venue": "V" * 65},
    {"rest_mic": "M" * 17},
    {"rest_mic": ["ARCX"]},
    {"working": False},  # a rest on a venue is working
    {"time_in_force": "ioc"},  # only a gtc / day remainder rests
    {"rest_price": None},
    {"rest_price": "99.99.1"},
    {"rest_venue": None},  # a rest_mic without its venue
])
def test_a_malformed_working_command_is_dropped(venue: Checked, broken: dict[str, Any]) -> None:
    engine: MatchingEngine = venue.engine
    before = engine.dropped_commands
    assert venue.process(resting_on_arcx([fill(1, "100.01", "40", "40", "4000.4", "60")], **broken)) == []
    assert engine.dropped_commands == before + 1
    assert venue.process(routed([], order_id="p2"))[0]["seq"] == 1


def test_an_order_that_rested_with_nothing_filled_ends_with_everything_remaining(venue: Checked) -> None:
    venue.process(resting_on_arcx([], time_in_force="day"))
    events = venue.process(routed([], reason="expired") | {"command_id": "route-p1-1", "time_in_force": "day"})
    assert [(e["type"], e["reason"], e["filled_quantity"], e["remaining_quantity"]) for e in events] == [
        ("route_ended", "expired", "0", "100")]


def test_a_restored_engine_ends_a_working_order_with_its_totals(venue: Checked, instruments: Any) -> None:
    # GIVEN a routed order that filled 40 and rests on ARCX-SIM, then a snapshot (through JSON)
    venue.process(resting_on_arcx([fill(1, "100.01", "40", "40", "4000.4", "60")]))
    state = json.loads(json.dumps(venue.engine.snapshot()))
    assert state["working_routes"] == {"p1": ["40", "4000.4", "60"]}
    restored = MatchingEngine.restore(state, instruments)
    # WHEN its end (cancelled on the venue, no fill) reaches the restored engine
    events = restored.process(routed([], reason="cancelled") | {"command_id": "route-p1-1", "time_in_force": "gtc"})
    # THEN the end carries the totals from before the snapshot, and the order is forgotten
    assert [(e["type"], e["filled_quantity"], e["remaining_quantity"]) for e in events] == [
        ("route_ended", "40", "60")]
    assert restored.snapshot()["working_routes"] == {}


def test_a_format_4_snapshot_restores_with_no_working_order(venue: Checked, instruments: Any) -> None:
    state = {k: v for k, v in venue.engine.snapshot().items() if k != "working_routes"} | {"format": 4}
    assert MatchingEngine.restore(state, instruments).snapshot()["working_routes"] == {}


@pytest.mark.parametrize("working", [
    [["p1", "1", "1", "1"]],
    {"p1": ["1", "1"]},
    {"p1": ["1", "1", 1]},
    {"p1": ["1", "1", "1e3"]},
    {"": ["1", "1", "1"]},
])
def test_a_snapshot_with_malformed_working_routes_is_refused(
    venue: Checked, instruments: Any, working: Any
) -> None:
    with pytest.raises(ValueError):
        MatchingEngine.restore(venue.engine.snapshot() | {"working_routes": working}, instruments)


def test_the_consumers_fixture_of_a_working_route_is_what_the_engine_emits(venue: Checked, cmd: Commands) -> None:
    # GIVEN tests/events/routed_working.json, which the consumers' tests read
    fixture = load_event("routed_working.json")
    venue.process(cmd.new("w0", "sell", "5", "105", account="acc_9"))  # AAPL-1..4 come before the route
    venue.process(cmd.new("w1", "sell", "5", "105", account="acc_9"))
    # WHEN its commands are processed, THEN each record is exactly what the engine emits
    for command, record in zip(fixture["commands"], fixture["records"], strict=True):
        assert venue.process(command) == record["events"]
