"""A ``routed_fills`` command (a routed order's executions on the simulated external venues): the
engine puts it in the symbol's sequence as ``venue_fill`` events and one ``route_ended``, leaves
the book alone, drops a resent command, and drops a malformed one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
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
