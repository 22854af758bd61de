"""Order types and instructions beyond plain limit/market: protection band, stops, DAY/GTD
expiry, post-only, iceberg, replace, mass cancel, self-trade prevention, OCO, collar, sizes.

Every event goes through the ``venue`` fixture (checked against the kernel's models).
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from nexus_common.money import MAX_MAGNITUDE
from nexus_matching.engine import EngineConfig, MatchingEngine
from nexus_matching.replay import replay

if TYPE_CHECKING:
    from conftest import Checked, Commands

Event = dict[str, Any]
TS = "2024-05-01T14:30:00.000000Z"


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def trades(events: list[Event]) -> list[tuple[str, str, str, str]]:
    return [
        (e["maker_order_id"], e["taker_order_id"], e["price"], e["quantity"])
        for e in events
        if e["type"] == "trade"
    ]


def of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e["type"] == kind]


def at(command: dict[str, Any], ts: str) -> dict[str, Any]:
    return {**command, "ts": ts}


# -- market protection band ---------------------------------------------------------------------


def test_market_order_stops_at_the_protection_band(venue: Checked, cmd: Commands) -> None:
    # GIVEN asks at 100.00, 104.00 and 106.00 (5 % of 100.00 is 5.00: the band ends at 105.00)
    for i, price in enumerate(("100.00", "104.00", "106.00")):
        venue.process(cmd.new(f"s{i}", "sell", "1", price, account="maker"))
    # WHEN a market buy for 3 arrives
    events = venue.process(cmd.new("m1", "buy", "3", account="taker"))
    # THEN it fills within the band and the rest is cancelled: market_protection
    assert [t[2] for t in trades(events)] == ["100", "104"]
    assert of(events, "cancelled")[0]["reason"] == "market_protection"
    assert of(events, "cancelled")[0]["remaining_quantity"] == "1"
    assert venue.engine.book_depth("AAPL", 5)["asks"] == [(10600, 1, 1)]


# -- stops --------------------------------------------------------------------------------------


def test_stop_triggers_on_the_last_trade_and_executes_as_market(venue: Checked, cmd: Commands) -> None:
    # GIVEN a sell stop at 99.00 and bids at 99.00 and 98.50
    stop = cmd.new("st", "sell", "2", order_type="stop", account="owner")
    stop["stop_price"] = "99.00"
    events = venue.process(stop)
    assert kinds(events) == ["accepted"]
    assert events[0]["stop_price"] == "99" and events[0]["price"] is None
    venue.process(cmd.new("b1", "buy", "1", "99.00", account="x"))
    venue.process(cmd.new("b2", "buy", "5", "98.50", account="x"))
    # WHEN a trade prints at 99.00
    events = venue.process(cmd.new("s1", "sell", "1", "99.00", account="y"))
    # THEN in the same step the stop triggers and sells 2 into the next bid
    assert kinds(events) == ["accepted", "trade", "triggered", "trade", "book", "book"]
    triggered = of(events, "triggered")[0]
    assert (triggered["order_id"], triggered["trigger_price"], triggered["order_type"]) == ("st", "99", "stop")
    assert trades(events)[1] == ("b2", "st", "98.5", "2")
    assert venue.engine.last_price("AAPL") == 9850


def test_stops_trigger_in_arrival_order_and_cascade_in_one_step(venue: Checked, cmd: Commands) -> None:
    # GIVEN sell stops: late at 99.50 (arrives first), s-a at 99.00, then a stop-limit at 98.00
    for oid, stop_price in (("first", "99.50"), ("second", "99.00")):
        c = cmd.new(oid, "sell", "1", order_type="stop")
        c["stop_price"] = stop_price
        venue.process(c)
    third = cmd.new("third", "sell", "1", "97.00", order_type="stop_limit")
    third["stop_price"] = "98.00"
    venue.process(third)
    for oid, price in (("b1", "99.00"), ("b2", "98.00"), ("b3", "97.50")):
        venue.process(cmd.new(oid, "buy", "1", price, account="bidder"))
    # WHEN a trade at 99.00 happens
    events = venue.process(cmd.new("hit", "sell", "1", "99.00", account="z"))
    # THEN first and second trigger (arrival order), second's trade at 98.00 triggers third
    assert [e["order_id"] for e in of(events, "triggered")] == ["first", "second", "third"]
    assert trades(events) == [
        ("b1", "hit", "99", "1"),
        ("b2", "first", "98", "1"),
        ("b3", "second", "97.5", "1"),
    ]
    # the stop-limit rests at 97.00 after no bid is left
    assert venue.engine.book_depth("AAPL", 5)["asks"] == [(9700, 1, 1)]


def test_stop_already_reached_at_arrival_triggers_at_once(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "1", "50.00", account="a"))
    venue.process(cmd.new("b1", "buy", "1", "50.00", account="b"))  # last = 50.00
    venue.process(cmd.new("s2", "sell", "3", "50.10", account="a"))
    stop = cmd.new("st", "buy", "1", order_type="stop", account="c")
    stop["stop_price"] = "49.00"
    events = venue.process(stop)
    assert kinds(events) == ["accepted", "triggered", "trade", "book"]


# -- DAY / GTD ----------------------------------------------------------------------------------


def test_day_order_expires_at_the_session_close_on_a_clock_command(venue: Checked, cmd: Commands) -> None:
    # GIVEN a DAY bid on 2024-05-01 (New York close 16:00 EDT = 20:00Z)
    events = venue.process(cmd.new("d1", "buy", "3", "10.00", tif="day"))
    assert events[0]["expire_at"] == "2024-05-01T20:00:00.000000Z"
    # WHEN a clock command before the close, then at it
    assert venue.process({"type": "clock", "command_id": "k1", "symbol": "AAPL", "ts": "2024-05-01T19:59:59Z"}) == []
    events = venue.process({"type": "clock", "command_id": "k2", "symbol": "AAPL", "ts": "2024-05-01T20:00:00Z"})
    # THEN it expires with its open quantity and leaves the book
    assert kinds(events) == ["expired", "book"]
    assert (events[0]["reason"], events[0]["remaining_quantity"]) == ("day", "3")
    assert venue.engine.book_depth("AAPL", 1)["bids"] == []


def test_gtd_expires_before_the_next_command_of_its_symbol(venue: Checked, cmd: Commands) -> None:
    gtd = cmd.new("g1", "sell", "2", "11.00", tif="gtd")
    gtd["expire_at"] = "2024-05-01T15:00:00Z"
    assert kinds(venue.process(gtd)) == ["accepted", "book"]
    # WHEN a crossing buy arrives after the expiry instant
    events = venue.process(at(cmd.new("b1", "buy", "2", "11.00"), "2024-05-01T15:00:00.000001Z"))
    # THEN the GTD order expires first and the buy does not trade with it
    assert kinds(events) == ["expired", "accepted", "book", "book"]
    assert trades(events) == []


# -- post-only, iceberg ---------------------------------------------------------------------------


def test_post_only_is_rejected_when_it_would_take(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "1", "10.00", account="a"))
    taking = cmd.new("p1", "buy", "1", "10.00", account="b")
    taking["post_only"] = True
    assert [(e["type"], e["reason"]) for e in venue.process(taking)] == [("rejected", "post_only_would_take")]
    resting = cmd.new("p2", "buy", "1", "9.99", account="b")
    resting["post_only"] = True
    events = venue.process(resting)
    assert kinds(events) == ["accepted", "book"] and events[0]["post_only"] is True


def test_iceberg_shows_its_slice_and_refreshes_at_the_back(venue: Checked, cmd: Commands) -> None:
    # GIVEN an iceberg of 10 showing 3, then a plain order at the same price
    ice = cmd.new("ice", "sell", "10", "20.00", account="a")
    ice["display_quantity"] = "3"
    events = venue.process(ice)
    assert events[0]["display_quantity"] == "3"
    assert venue.engine.book_depth("AAPL", 1)["asks"] == [(2000, 3, 1)]
    venue.process(cmd.new("plain", "sell", "2", "20.00", account="b"))
    # WHEN a buy of 5 arrives
    events = venue.process(cmd.new("b1", "buy", "5", "20.00", account="c"))
    # THEN the shown 3 fill, the next slice goes behind "plain", which fills next
    assert trades(events) == [("ice", "b1", "20", "3"), ("plain", "b1", "20", "2")]
    assert events[1]["maker_remaining_quantity"] == "7"
    assert venue.engine.book_depth("AAPL", 1)["asks"] == [(2000, 3, 1)]
    # AND a large taker walks through every slice
    events = venue.process(cmd.new("b2", "buy", "8", "20.00", account="c"))
    assert [t[3] for t in trades(events)] == ["3", "3", "1"]
    assert of(events, "trade")[-1]["maker_remaining_quantity"] == "0"


# -- replace, mass cancel -------------------------------------------------------------------------


def replace(cmd: Commands, order_id: str, **terms: str) -> dict[str, Any]:
    command = cmd.cancel(order_id)
    command.update(type="replace", **terms)
    return command


def test_replace_down_keeps_priority_and_up_loses_it(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("a", "buy", "5", "10.00"))
    venue.process(cmd.new("b", "buy", "5", "10.00"))
    events = venue.process(replace(cmd, "a", quantity="3"))
    assert kinds(events) == ["replaced", "book"]
    assert (events[0]["kept_priority"], events[0]["quantity"], events[0]["remaining_quantity"]) == (True, "3", "3")
    fills = venue.process(cmd.new("s", "sell", "1", "10.00", account="z"))
    assert trades(fills)[0][0] == "a"
    # size up: a goes behind b
    events = venue.process(replace(cmd, "a", quantity="6"))
    assert events[0]["kept_priority"] is False
    fills = venue.process(cmd.new("s2", "sell", "1", "10.00", account="z"))
    assert trades(fills)[0][0] == "b"


def test_replace_to_a_crossing_price_trades(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s", "sell", "2", "10.05", account="z"))
    venue.process(cmd.new("a", "buy", "5", "10.00"))
    events = venue.process(replace(cmd, "a", price="10.05"))
    assert kinds(events)[:2] == ["replaced", "trade"]
    assert venue.engine.book_depth("AAPL", 1)["bids"] == [(1005, 3, 1)]


@pytest.mark.parametrize(
    ("terms", "reason"),
    [({"quantity": "1"}, "quantity_below_filled"), ({}, "invalid_command"), ({"price": "10.001"}, "price_off_tick")],
)
def test_replace_rejections(venue: Checked, cmd: Commands, terms: dict[str, str], reason: str) -> None:
    venue.process(cmd.new("a", "buy", "5", "10.00"))
    venue.process(cmd.new("s", "sell", "1", "10.00", account="z"))
    events = venue.process(replace(cmd, "a", **terms))
    assert [(e["type"], e["reason"]) for e in events] == [("replace_rejected", reason)]
    other = replace(cmd, "a", quantity="9")
    other["account_id"] = "mallory"
    assert venue.process(other)[0]["reason"] == "not_owner"


def test_mass_cancel_cancels_an_accounts_live_orders(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("a1", "buy", "1", "10.00", account="alice"))
    venue.process(cmd.new("b1", "buy", "1", "10.00", account="bob"))
    venue.process(cmd.new("a2", "sell", "1", "11.00", account="alice"))
    stop = cmd.new("a3", "sell", "1", order_type="stop", account="alice")
    stop["stop_price"] = "9.00"
    venue.process(stop)
    venue.process(cmd.new("a4", "buy", "1", "10.00", account="alice", symbol="MSFT"))
    command = {"type": "mass_cancel", "command_id": "mc", "account_id": "alice", "symbol": "AAPL", "ts": TS}
    events = venue.process(command)
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [
        ("a1", "mass_cancel"), ("a2", "mass_cancel"), ("a3", "mass_cancel")
    ]
    assert set(venue.engine.live_orders("AAPL")) == {"b1"}
    assert set(venue.engine.live_orders("MSFT")) == {"a4"}


# -- self-trade prevention ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected_trades", "cancelled", "left"),
    [
        ("cancel_newest", [], [("t", "self_trade")], {"own", "other"}),
        ("cancel_oldest", [("other", "t", "10", "3")], [("own", "self_trade")], {"t"}),
        ("cancel_both", [], [("own", "self_trade"), ("t", "self_trade")], {"other"}),
        ("decrement", [("other", "t", "10", "3")], [("own", "self_trade")], {"t"}),
    ],
)
def test_self_trade_prevention_modes(
    venue: Checked, cmd: Commands, mode: str, expected_trades: list[Any], cancelled: list[Any], left: set[str]
) -> None:
    # GIVEN my ask of 2 ahead of someone else's ask of 3, both at 10.00
    venue.process(cmd.new("own", "sell", "2", "10.00", account="me"))
    venue.process(cmd.new("other", "sell", "3", "10.00", account="you"))
    # WHEN I buy 6 at 10.00 with the mode
    taker = cmd.new("t", "buy", "6", "10.00", account="me")
    taker["stp"] = mode
    events = venue.process(taker)
    # THEN no self trade, and the mode decides who is cancelled
    assert trades(events) == expected_trades
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == cancelled
    assert set(venue.engine.live_orders("AAPL")) == left
    if mode == "decrement":
        replaced = of(events, "replaced")[0]
        assert (replaced["order_id"], replaced["quantity"], replaced["reason"]) == ("t", "4", "self_trade")


def test_without_stp_an_account_may_trade_with_itself(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("own", "sell", "2", "10.00", account="me"))
    assert trades(venue.process(cmd.new("t", "buy", "2", "10.00", account="me"))) == [("own", "t", "10", "2")]


def test_fok_that_would_meet_its_own_stp_order_is_cancelled(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("own", "sell", "2", "10.00", account="me"))
    venue.process(cmd.new("other", "sell", "3", "10.00", account="you"))
    fok = cmd.new("f", "buy", "5", "10.00", account="me", tif="fok")
    fok["stp"] = "cancel_oldest"
    assert kinds(venue.process(fok)) == ["accepted", "cancelled"]



def test_fok_counts_an_iceberg_reserve_only_after_the_queue_it_shows_again_behind(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN an iceberg showing 1 of 10 lots, then an order of the taker's own account at its price
    iceberg = cmd.new("ice", "sell", "10", "10.00", account="you")
    iceberg["display_quantity"] = "1"
    venue.process(iceberg)
    venue.process(cmd.new("own", "sell", "3", "10.00", account="me"))
    before = venue.engine.snapshot()["books"]
    # WHEN a FOK buy with self-trade prevention needs more than the shown slice: the refreshed
    # slice would queue behind its own order, which self-trade prevention stops it at
    fok = cmd.new("f", "buy", "4", "10.00", account="me", tif="fok")
    fok["stp"] = "decrement"
    events = venue.process(fok)
    # THEN it is cancelled whole, with no trade and no change to the book
    assert kinds(events) == ["accepted", "cancelled"]
    assert of(events, "cancelled")[0]["reason"] == "fok"
    assert venue.engine.snapshot()["books"] == before
    # AND a FOK of another account meets no order of its own: shown slices and the reserve count
    other = cmd.new("g", "buy", "6", "10.00", account="them", tif="fok")
    assert trades(venue.process(other)) == [("ice", "g", "10", "1"), ("own", "g", "10", "3")] + [
        ("ice", "g", "10", "1")
    ] * 2

# -- OCO ------------------------------------------------------------------------------------------


def oco(cmd: Commands, group: str, side: str, qty: str, take: str, stop: str, **extra: Any) -> dict[str, Any]:
    command = cmd.new(group, side, qty, take, account="owner")
    command.pop("order_type")
    command.update(type="oco", stop_price=stop, **extra)
    return command


def test_oco_partial_fill_reduces_the_other_leg_and_full_fill_cancels_it(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("seed-s", "sell", "1", "100.00", account="x"))
    venue.process(cmd.new("seed-b", "buy", "1", "100.00", account="y"))  # last = 100
    events = venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    assert [(e["order_id"], e["group_id"], e["order_type"]) for e in of(events, "accepted")] == [
        ("g.tp", "g", "limit"), ("g.sl", "g", "stop")
    ]
    # WHEN the take-profit fills 4
    events = venue.process(cmd.new("b", "buy", "4", "110.00", account="z"))
    # THEN the stop-loss is reduced to 6 in the same step
    assert [(e["order_id"], e["quantity"], e["reason"]) for e in of(events, "replaced")] == [("g.sl", "6", "oco")]
    # WHEN the rest of the take-profit fills, THEN the stop-loss is cancelled
    events = venue.process(cmd.new("b2", "buy", "6", "110.00", account="z"))
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [("g.sl", "oco")]
    assert venue.engine.live_orders("AAPL") == {}


def test_oco_stop_leg_fill_reduces_the_take_profit(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("seed-s", "sell", "1", "100.00", account="x"))
    venue.process(cmd.new("seed-b", "buy", "1", "100.00", account="y"))
    venue.process(oco(cmd, "g", "sell", "5", "110.00", "95.00"))
    venue.process(cmd.new("bid", "buy", "2", "94.00", account="y"))
    events = venue.process(cmd.new("ask", "sell", "1", "95.00", account="x"))  # rests: 95 > 94
    assert trades(events) == []
    # WHEN a trade prints at 95.00
    events = venue.process(cmd.new("lift", "buy", "1", "95.00", account="y"))
    assert [e["order_id"] for e in of(events, "triggered")] == ["g.sl"]
    # the stop sells 2 into the 94 bid (within the band), the rest is cancelled; tp reduced by 2
    sl_fills = [t for t in trades(events) if t[1] == "g.sl"]
    assert sl_fills == [("bid", "g.sl", "94", "2")]
    reduced = [(e["order_id"], e["quantity"], e["remaining_quantity"]) for e in of(events, "replaced")]
    assert reduced == [("g.tp", "3", "3")]


def test_oco_gap_through_both_levels_executes_the_take_profit(venue: Checked, cmd: Commands) -> None:
    # GIVEN a last trade at 80.00 and, after a gap up, bids at 88.00
    venue.process(cmd.new("s0", "sell", "1", "80.00", account="x"))
    venue.process(cmd.new("b0", "buy", "1", "80.00", account="y"))
    venue.process(cmd.new("b1", "buy", "5", "88.00", account="y"))
    # WHEN a sell OCO arrives whose stop (84.00) the last price is through and whose
    # take-profit (85.00) the bids are through
    events = venue.process(oco(cmd, "g", "sell", "3", "85.00", "84.00"))
    # THEN the take-profit (better for the owner) sells 3 at 88.00; the stop-loss is cancelled
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [("g.sl", "oco")]
    assert trades(events) == [("b1", "g.tp", "88", "3")]
    assert of(events, "triggered") == []


def test_cancelling_the_group_cancels_both_legs(venue: Checked, cmd: Commands) -> None:
    venue.process(oco(cmd, "g", "buy", "2", "90.00", "110.00"))
    events = venue.process(cmd.cancel("g", account="owner"))
    assert sorted((e["order_id"], e["reason"]) for e in of(events, "cancelled")) == [
        ("g.sl", "user"), ("g.tp", "user")
    ]
    assert venue.engine.live_orders("AAPL") == {}


def test_self_trade_prevention_cancelling_a_resting_leg_cancels_the_group(venue: Checked, cmd: Commands) -> None:
    # GIVEN my sell OCO: take-profit resting at 110.00, stop-loss parked at 90.00
    venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    # WHEN my own buy meets the take-profit with cancel_oldest
    taker = cmd.new("t", "buy", "3", "110.00", account="owner")
    taker["stp"] = "cancel_oldest"
    events = venue.process(taker)
    # THEN both legs end in the same step and my buy rests
    assert trades(events) == []
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [
        ("g.tp", "self_trade"), ("g.sl", "self_trade")
    ]
    assert set(venue.engine.live_orders("AAPL")) == {"t"}


def test_self_trade_prevention_cancelling_an_arriving_leg_cancels_the_group(venue: Checked, cmd: Commands) -> None:
    # GIVEN my own bid at 110.00 with cancel_newest
    bid = cmd.new("bid", "buy", "4", "110.00", account="owner")
    bid["stp"] = "cancel_newest"
    venue.process(bid)
    # WHEN my sell OCO arrives with a take-profit that would take my bid
    events = venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    # THEN the take-profit is cancelled as the newest, and the stop-loss with it
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [
        ("g.tp", "self_trade"), ("g.sl", "self_trade")
    ]
    assert set(venue.engine.live_orders("AAPL")) == {"bid"}


def test_self_trade_decrement_of_an_arriving_leg_takes_as_much_off_its_sibling(
    venue: Checked, cmd: Commands
) -> None:
    bid = cmd.new("bid", "buy", "4", "110.00", account="owner")
    bid["stp"] = "decrement"
    venue.process(bid)
    events = venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    # THEN my bid is used up, the take-profit keeps 6 and rests, and the stop-loss is cut to 6 after them
    assert [(e["type"], e["order_id"], e["reason"], e["remaining_quantity"]) for e in events
            if e["type"] in ("cancelled", "replaced")] == [
        ("cancelled", "bid", "self_trade", "4"),
        ("replaced", "g.tp", "self_trade", "6"),
        ("replaced", "g.sl", "oco", "6"),
    ]  # fmt: skip
    live = venue.engine.live_orders("AAPL")
    assert set(live) == {"g.tp", "g.sl"}
    assert live["g.tp"].remaining + live["g.tp"].hidden == live["g.sl"].remaining == 6


def test_self_trade_decrement_of_a_resting_leg_takes_as_much_off_its_sibling(venue: Checked, cmd: Commands) -> None:
    venue.process(oco(cmd, "g", "sell", "10", "110.00", "90.00"))
    taker = cmd.new("t", "buy", "4", "110.00", account="owner")
    taker["stp"] = "decrement"
    events = venue.process(taker)
    assert [(e["type"], e["order_id"], e["reason"], e["remaining_quantity"]) for e in events
            if e["type"] in ("cancelled", "replaced")] == [
        ("replaced", "g.tp", "self_trade", "6"), ("cancelled", "t", "self_trade", "4"), ("replaced", "g.sl", "oco", "6")
    ]  # fmt: skip
    # AND a decrement that uses the group up cancels both legs
    taker = cmd.new("t2", "buy", "6", "110.00", account="owner")
    taker["stp"] = "decrement"
    events = venue.process(taker)
    assert [(e["order_id"], e["reason"]) for e in of(events, "cancelled")] == [
        ("g.tp", "self_trade"), ("t2", "self_trade"), ("g.sl", "oco")
    ]
    assert venue.engine.live_orders("AAPL") == {}


def test_oco_with_levels_the_wrong_way_round_is_rejected(venue: Checked, cmd: Commands) -> None:
    events = venue.process(oco(cmd, "g", "sell", "2", "90.00", "110.00"))
    assert [(e["type"], e["reason"]) for e in events] == [("rejected", "invalid_oco")]


# -- collar, halts, sizes -------------------------------------------------------------------------


def test_price_collar_around_the_last_trade(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s", "sell", "1", "100.00", account="a"))
    venue.process(cmd.new("b", "buy", "1", "100.00", account="b"))
    # 10 % of 100.00: buys above 110.00 and sells below 90.00 are refused; passive prices are free
    assert venue.process(cmd.new("x1", "buy", "1", "110.01"))[0]["reason"] == "price_collar"
    assert venue.process(cmd.new("x2", "sell", "1", "89.99"))[0]["reason"] == "price_collar"
    assert kinds(venue.process(cmd.new("x3", "buy", "1", "110.00"))) == ["accepted", "book"]
    assert kinds(venue.process(cmd.new("x4", "buy", "1", "1.00"))) == ["accepted", "book"]


def test_configured_reference_price_collars_before_the_first_trade(instruments: Any, checked: Any) -> None:
    venue = checked(MatchingEngine(instruments, config=EngineConfig(reference_prices={"AAPL": Decimal("50")})))
    command = {
        "type": "new", "command_id": "c", "order_id": "o", "account_id": "a", "symbol": "AAPL",
        "side": "buy", "order_type": "limit", "price": "56.00", "quantity": "1", "ts": TS,
    }
    assert venue.process(command)[0]["reason"] == "price_collar"


def test_the_largest_admitted_sizes_are_exact(venue: Checked, cmd: Commands) -> None:
    # GIVEN price and quantity just below the kernel's magnitude limit
    big_qty = str(MAX_MAGNITUDE - 1)
    big_price = str(MAX_MAGNITUDE - Decimal("0.01"))
    venue.process(cmd.new("s", "sell", big_qty, big_price, account="a"))
    events = venue.process(cmd.new("b", "buy", big_qty, big_price, account="b"))
    trade = of(events, "trade")[0]
    # THEN the notional is exact (no overflow, no rounding)
    assert Decimal(trade["taker_filled_notional"]) == Decimal(big_qty) * Decimal(big_price)
    assert venue.process(cmd.new("c", "buy", str(MAX_MAGNITUDE), "1"))[0]["reason"] == "invalid_quantity"


# -- replay ---------------------------------------------------------------------------------------


def test_replay_defaults_ids_and_time_and_is_byte_identical(instruments: Any) -> None:
    lines = [
        json.dumps({"type": "new", "order_id": "s", "account_id": "a", "symbol": "AAPL", "side": "sell",
                    "order_type": "limit", "price": "10.00", "quantity": "5"}),
        "",
        json.dumps({"type": "new", "order_id": "b", "account_id": "b", "symbol": "AAPL", "side": "buy",
                    "order_type": "limit", "price": "10.00", "quantity": "2", "ts": TS}),
        "not json",
        json.dumps({"type": "cancel", "order_id": "s", "account_id": "a", "symbol": "AAPL"}),
    ]
    first, second = io.StringIO(), io.StringIO()
    stats = replay(lines, first, instruments)
    replay(lines, second, instruments)
    assert first.getvalue() == second.getvalue()
    events = [json.loads(line) for line in first.getvalue().splitlines()]
    assert events[0]["correlation_id"] == "L1" and events[0]["ts"] == "1970-01-01T00:00:00.000000Z"
    assert events[-1]["correlation_id"] == "L5" and events[-1]["ts"] == TS
    assert (stats.commands, stats.unreadable, stats.dropped) == (4, 1, 1)


def test_halted_symbol_rejects_replace_but_takes_cancels(venue: Checked, cmd: Commands, instruments: Any) -> None:
    venue.process(cmd.new("a", "buy", "5", "10.00"))
    venue.process(cmd.halt("AAPL"))
    assert venue.process(replace(cmd, "a", quantity="3"))[0]["reason"] == "symbol_halted"
    assert kinds(venue.process(cmd.cancel("a"))) == ["cancelled", "book"]
