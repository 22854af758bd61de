"""Matching engine, example by example: order types, time in force, cancel, validation, events.

Every event goes through the ``venue`` fixture, which checks it against the shared-kernel event
models, the command's envelope fields and the per-symbol sequence (see ``conftest.py``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_common.instruments import Instrument
from nexus_common.money import fmt
from nexus_matching.engine import MatchingEngine, scaled_str

if TYPE_CHECKING:
    from conftest import Checked, Commands

Event = dict[str, Any]
TS = "2024-05-01T14:30:00.000000Z"


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def deltas(events: list[Event]) -> list[tuple[str, str, str, int]]:
    return [
        (e["side"], e["price"], e["quantity"], e["orders"]) for e in events if e["type"] == "book"
    ]


def trades(events: list[Event]) -> list[tuple[str, str, str]]:
    return [
        (e["maker_order_id"], e["price"], e["quantity"]) for e in events if e["type"] == "trade"
    ]


def one(events: list[Event], kind: str) -> Event:
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, kinds(events)
    return found[0]


# -- limit orders -----------------------------------------------------------------------------


def test_limit_order_rests_on_an_empty_book(venue: Checked, cmd: Commands) -> None:
    # GIVEN an empty book
    # WHEN a limit buy arrives
    events = venue.process(cmd.new("b1", "buy", "10", "100.00"))
    # THEN it is accepted and rests: one bid level with 10 lots
    assert kinds(events) == ["accepted", "book"]
    accepted = events[0]
    assert accepted["order_id"] == "b1"
    assert accepted["price"] == "100"
    assert accepted["quantity"] == "10"
    assert accepted["order_type"] == "limit"
    assert accepted["time_in_force"] == "gtc"
    assert deltas(events) == [("buy", "100", "10", 1)]
    assert [e["seq"] for e in events] == [1, 2]
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [(10000, 10, 1)], "asks": []}


def test_crossing_limit_trades_at_maker_prices_best_first(venue: Checked, cmd: Commands) -> None:
    # GIVEN asks at 100.02 and 100.01 (the better price arrives second)
    venue.process(cmd.new("s1", "sell", "5", "100.02", account="maker"))
    venue.process(cmd.new("s2", "sell", "5", "100.01", account="maker"))
    # WHEN a buy for 7 at 100.05 arrives
    events = venue.process(cmd.new("b1", "buy", "7", "100.05", account="taker"))
    # THEN it takes 100.01 first, then 100.02, each at the maker's price, and nothing rests
    assert kinds(events) == ["accepted", "trade", "trade", "book", "book"]
    assert trades(events) == [("s2", "100.01", "5"), ("s1", "100.02", "2")]
    first, second = events[1], events[2]
    assert first["aggressor_side"] == "buy"
    assert (first["taker_order_id"], first["taker_account_id"]) == ("b1", "taker")
    assert (first["maker_order_id"], first["maker_account_id"]) == ("s2", "maker")
    assert first["maker_filled_quantity"] == "5"
    assert first["maker_filled_notional"] == "500.05"
    assert first["maker_remaining_quantity"] == "0"
    assert first["taker_filled_quantity"] == "5"
    assert first["taker_filled_notional"] == "500.05"
    assert first["taker_remaining_quantity"] == "2"
    assert second["maker_filled_quantity"] == "2"
    assert second["maker_filled_notional"] == "200.04"
    assert second["maker_remaining_quantity"] == "3"
    assert second["taker_filled_quantity"] == "7"
    assert second["taker_filled_notional"] == "700.09"
    assert second["taker_remaining_quantity"] == "0"
    # book deltas: asks ascending, the emptied level reported as 0 / 0
    assert deltas(events) == [("sell", "100.01", "0", 0), ("sell", "100.02", "3", 1)]
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [], "asks": [(10002, 3, 1)]}


def test_orders_at_one_price_fill_first_in_first_out(venue: Checked, cmd: Commands) -> None:
    # GIVEN three asks at one price, arriving s1, s2, s3
    for order_id in ("s1", "s2", "s3"):
        venue.process(cmd.new(order_id, "sell", "2", "50.00"))
    # WHEN a buy takes 5
    events = venue.process(cmd.new("b1", "buy", "5", "50.00"))
    # THEN s1 and s2 fill completely and s3 partly, in arrival order
    assert trades(events) == [("s1", "50", "2"), ("s2", "50", "2"), ("s3", "50", "1")]
    assert deltas(events) == [("sell", "50", "1", 1)]


def test_partial_fill_rests_the_remainder_and_reports_both_sides(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN a bid at 99.99 and an ask of 3 at 100.00
    venue.process(cmd.new("b0", "buy", "4", "99.99"))
    venue.process(cmd.new("s1", "sell", "3", "100.00"))
    # WHEN a buy of 10 at 100.00 arrives
    events = venue.process(cmd.new("b1", "buy", "10", "100.00"))
    # THEN it fills 3 and rests 7; bids come before asks in the book deltas
    assert kinds(events) == ["accepted", "trade", "book", "book"]
    assert deltas(events) == [("buy", "100", "7", 1), ("sell", "100", "0", 0)]
    assert venue.engine.book_depth("AAPL", 5) == {
        "bids": [(10000, 7, 1), (9999, 4, 1)],
        "asks": [],
    }


def test_sell_aggressor_walks_bids_downwards(venue: Checked, cmd: Commands) -> None:
    # GIVEN bids at 10.00, 10.02 and 10.01
    for order_id, price in (("b1", "10.00"), ("b2", "10.02"), ("b3", "10.01")):
        venue.process(cmd.new(order_id, "buy", "1", price))
    # WHEN a sell of 5 at 10.01 arrives
    events = venue.process(cmd.new("s1", "sell", "5", "10.01"))
    # THEN it hits 10.02 then 10.01, stops at its limit and rests 3 at 10.01
    assert trades(events) == [("b2", "10.02", "1"), ("b3", "10.01", "1")]
    assert all(e["aggressor_side"] == "sell" for e in events if e["type"] == "trade")
    assert deltas(events) == [
        ("buy", "10.02", "0", 0),
        ("buy", "10.01", "0", 0),
        ("sell", "10.01", "3", 1),
    ]


def test_day_order_rests_like_gtc(venue: Checked, cmd: Commands) -> None:
    # GIVEN an empty book, WHEN a DAY limit order arrives, THEN it rests (expiry comes later)
    events = venue.process(cmd.new("d1", "sell", "3", "12.34", tif="day"))
    assert kinds(events) == ["accepted", "book"]
    assert events[0]["time_in_force"] == "day"
    assert venue.engine.book_depth("AAPL", 1)["asks"] == [(1234, 3, 1)]


# -- market orders ----------------------------------------------------------------------------


def test_market_order_fills_what_is_there_and_cancels_the_rest(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN 4 lots offered over two levels
    venue.process(cmd.new("s1", "sell", "1", "101.00"))
    venue.process(cmd.new("s2", "sell", "3", "105.00"))
    # WHEN a market buy for 10 arrives
    events = venue.process(cmd.new("m1", "buy", "10"))
    # THEN it takes all 4 at any price, its remainder is cancelled, and it does not rest
    assert kinds(events) == ["accepted", "trade", "trade", "cancelled", "book", "book"]
    accepted = events[0]
    assert accepted["order_type"] == "market"
    assert accepted["price"] is None
    cancelled = one(events, "cancelled")
    assert cancelled["reason"] == "market_no_liquidity"
    assert cancelled["remaining_quantity"] == "6"
    assert cancelled["order_id"] == "m1"
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [], "asks": []}


def test_market_order_on_an_empty_book_is_cancelled(venue: Checked, cmd: Commands) -> None:
    # GIVEN an empty book, WHEN a market sell arrives, THEN accepted then cancelled, no book event
    events = venue.process(cmd.new("m1", "sell", "5"))
    assert kinds(events) == ["accepted", "cancelled"]
    assert events[1]["reason"] == "market_no_liquidity"
    assert events[1]["remaining_quantity"] == "5"


def test_market_order_with_a_price_is_rejected(venue: Checked, cmd: Commands) -> None:
    events = venue.process(cmd.new("m1", "buy", "5", "10.00", order_type="market"))
    assert kinds(events) == ["rejected"]
    assert events[0]["reason"] == "unexpected_price"


def test_market_fok_without_enough_liquidity_is_cancelled_fok(
    venue: Checked, cmd: Commands
) -> None:
    venue.process(cmd.new("s1", "sell", "2", "10.00"))
    events = venue.process(cmd.new("m1", "buy", "3", tif="fok"))
    assert kinds(events) == ["accepted", "cancelled"]
    assert events[1]["reason"] == "fok"


# -- time in force ----------------------------------------------------------------------------


def test_ioc_fills_what_it_can_and_cancels_the_rest(venue: Checked, cmd: Commands) -> None:
    # GIVEN 2 lots at 10.00 and 5 lots at 10.50
    venue.process(cmd.new("s1", "sell", "2", "10.00"))
    venue.process(cmd.new("s2", "sell", "5", "10.50"))
    # WHEN an IOC buy for 5 at 10.00 arrives
    events = venue.process(cmd.new("i1", "buy", "5", "10.00", tif="ioc"))
    # THEN it fills 2, the remaining 3 are cancelled (reason ioc) and nothing rests on the bid
    assert kinds(events) == ["accepted", "trade", "cancelled", "book"]
    assert one(events, "cancelled")["reason"] == "ioc"
    assert one(events, "cancelled")["remaining_quantity"] == "3"
    assert deltas(events) == [("sell", "10", "0", 0)]
    assert venue.engine.book_depth("AAPL", 5)["bids"] == []


def test_ioc_filled_completely_is_not_cancelled(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "5", "10.00"))
    events = venue.process(cmd.new("i1", "buy", "5", "10.00", tif="ioc"))
    assert kinds(events) == ["accepted", "trade", "book"]


def test_ioc_that_does_not_cross_is_cancelled_without_book_change(
    venue: Checked, cmd: Commands
) -> None:
    venue.process(cmd.new("s1", "sell", "5", "10.00"))
    events = venue.process(cmd.new("i1", "buy", "5", "9.99", tif="ioc"))
    assert kinds(events) == ["accepted", "cancelled"]
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [], "asks": [(1000, 5, 1)]}


def test_fok_without_enough_liquidity_at_its_limit_does_nothing(
    venue: Checked, cmd: Commands
) -> None:
    # GIVEN 3 lots at 10.00 and 10 more at 10.01
    venue.process(cmd.new("s1", "sell", "3", "10.00"))
    venue.process(cmd.new("s2", "sell", "10", "10.01"))
    before = venue.engine.snapshot()["books"]
    # WHEN a FOK buy for 5 limited at 10.00 arrives (only 3 are available at that price)
    events = venue.process(cmd.new("f1", "buy", "5", "10.00", tif="fok"))
    # THEN it is accepted and cancelled (fok), with no trade, no book event, the book unchanged
    assert kinds(events) == ["accepted", "cancelled"]
    assert events[1]["reason"] == "fok"
    assert events[1]["remaining_quantity"] == "5"
    assert venue.engine.snapshot()["books"] == before


def test_fok_that_can_fill_fills_completely(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "3", "10.00"))
    venue.process(cmd.new("s2", "sell", "10", "10.01"))
    events = venue.process(cmd.new("f1", "buy", "5", "10.01", tif="fok"))
    assert kinds(events) == ["accepted", "trade", "trade", "book", "book"]
    assert events[2]["taker_remaining_quantity"] == "0"
    assert deltas(events) == [("sell", "10", "0", 0), ("sell", "10.01", "8", 1)]


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_removes_the_open_quantity(venue: Checked, cmd: Commands) -> None:
    # GIVEN two bids at 20.00 of which the first has been partly filled
    venue.process(cmd.new("b1", "buy", "10", "20.00", account="alice"))
    venue.process(cmd.new("b2", "buy", "1", "20.00", account="bob"))
    venue.process(cmd.new("s1", "sell", "4", "20.00", account="carol"))
    # WHEN alice cancels b1
    command = cmd.cancel("b1", account="alice")
    events = venue.process(command)
    # THEN the cancelled event carries the open quantity, and the level keeps bob's order
    assert kinds(events) == ["cancelled", "book"]
    assert events[0]["reason"] == "user"
    assert events[0]["remaining_quantity"] == "6"
    assert events[0]["account_id"] == "alice"
    assert deltas(events) == [("buy", "20", "1", 1)]


def test_cancel_of_the_last_order_empties_the_level(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "2", "30.00"))
    events = venue.process(cmd.cancel("s1"))
    assert deltas(events) == [("sell", "30", "0", 0)]
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [], "asks": []}


def test_cancel_in_the_middle_of_a_queue_keeps_the_others_in_order(
    venue: Checked, cmd: Commands
) -> None:
    for order_id in ("s1", "s2", "s3"):
        venue.process(cmd.new(order_id, "sell", "1", "30.00"))
    venue.process(cmd.cancel("s2"))
    events = venue.process(cmd.new("b1", "buy", "2", "30.00"))
    assert trades(events) == [("s1", "30", "1"), ("s3", "30", "1")]


@pytest.mark.parametrize(
    ("setup", "cancel", "reason"),
    [
        pytest.param([], ("nope", "acct-1", "AAPL"), "unknown_order", id="never-seen"),
        pytest.param(
            [("s1", "sell", "1", "5.00"), ("b1", "buy", "1", "5.00")],
            ("s1", "acct-1", "AAPL"),
            "unknown_order",
            id="already-filled",
        ),
        pytest.param(
            [("s1", "sell", "1", "5.00")], ("s1", "acct-1", "MSFT"), "unknown_order", id="other-sym"
        ),
        pytest.param([], ("s1", "acct-1", "NOPE"), "unknown_order", id="unknown-symbol"),
        pytest.param(
            [("s1", "sell", "1", "5.00")], ("s1", "mallory", "AAPL"), "not_owner", id="not-owner"
        ),
    ],
)
def test_cancel_rejections(
    venue: Checked,
    cmd: Commands,
    setup: list[tuple[str, str, str, str]],
    cancel: tuple[str, str, str],
    reason: str,
) -> None:
    # GIVEN the setup orders
    for order_id, side, qty, price in setup:
        venue.process(cmd.new(order_id, side, qty, price))
    # WHEN the cancel arrives
    order_id, account, symbol = cancel
    events = venue.process(cmd.cancel(order_id, account=account, symbol=symbol))
    # THEN it is rejected with the reason, and nothing else happens
    assert kinds(events) == ["cancel_rejected"]
    assert events[0]["reason"] == reason
    assert events[0]["order_id"] == order_id
    assert events[0]["account_id"] == account


def test_second_cancel_is_rejected_as_unknown(venue: Checked, cmd: Commands) -> None:
    venue.process(cmd.new("s1", "sell", "1", "5.00"))
    assert kinds(venue.process(cmd.cancel("s1"))) == ["cancelled", "book"]
    again = venue.process(cmd.cancel("s1"))
    assert kinds(again) == ["cancel_rejected"]
    assert again[0]["reason"] == "unknown_order"


# -- validation -------------------------------------------------------------------------------


def _valid_new(**changes: Any) -> dict[str, Any]:
    command: dict[str, Any] = {
        "type": "new",
        "command_id": "c1",
        "order_id": "o1",
        "account_id": "acct-1",
        "symbol": "AAPL",
        "side": "buy",
        "order_type": "limit",
        "price": "10.00",
        "quantity": "5",
        "time_in_force": "gtc",
        "ts": TS,
    }
    for key, value in changes.items():
        if value is _DROP:
            del command[key]
        else:
            command[key] = value
    return command


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"symbol": "NOPE"}, "unknown_symbol"),
        ({"symbol": "HALT"}, "symbol_halted"),
        ({"price": _DROP}, "missing_price"),
        ({"price": None}, "missing_price"),
        ({"price": "10.001"}, "price_off_tick"),
        ({"price": "10.005"}, "price_off_tick"),
        ({"price": "99999999999.9999999999999999999"}, "price_off_tick"),  # beyond 28 digits
        ({"price": "0"}, "invalid_price"),
        ({"price": "-1.00"}, "invalid_price"),
        ({"price": "abc"}, "invalid_price"),
        ({"price": ""}, "invalid_price"),
        ({"price": "NaN"}, "invalid_price"),
        ({"price": "Infinity"}, "invalid_price"),
        ({"price": 10.0}, "invalid_price"),  # floats never touch money
        ({"price": [1]}, "invalid_price"),
        ({"price": "1e13"}, "invalid_price"),  # beyond the kernel's magnitude limit
        ({"quantity": "1.5"}, "quantity_off_lot"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-3"}, "invalid_quantity"),
        ({"quantity": "five"}, "invalid_quantity"),
        ({"quantity": _DROP}, "invalid_quantity"),
        ({"quantity": 5.0}, "invalid_quantity"),
        ({"side": "hold"}, "invalid_command"),
        ({"side": _DROP}, "invalid_command"),
        ({"side": ["buy"]}, "invalid_command"),
        ({"order_type": "stop"}, "unexpected_price"),
        ({"order_type": "stop", "price": _DROP}, "missing_stop_price"),
        ({"order_type": "stop_loss"}, "invalid_command"),
        ({"time_in_force": "gtd"}, "missing_expire_at"),
        ({"time_in_force": "gtd", "expire_at": "tomorrow"}, "invalid_expire_at"),
        ({"time_in_force": "gtd", "expire_at": "2024-05-01T14:29:59Z"}, "already_expired"),
        ({"time_in_force": "gtx"}, "invalid_command"),
        ({"time_in_force": {"x": 1}}, "invalid_command"),
        ({"account_id": _DROP}, "invalid_command"),
        ({"account_id": 42}, "invalid_command"),
        ({"order_type": "market", "price": "10.00"}, "unexpected_price"),
    ],
)
def test_new_order_validation(
    changes: dict[str, Any], reason: str, instruments: Any, checked: Any
) -> None:
    # GIVEN an engine (HALT halted), WHEN an invalid new order arrives
    engine = MatchingEngine(instruments)
    engine.process({"type": "halt", "command_id": "h", "symbol": "HALT", "ts": TS})
    venue = checked(engine)
    command = _valid_new(**changes)
    events = venue.process(command)
    # THEN exactly one rejected event with the reason, and the book is untouched
    assert kinds(events) == ["rejected"]
    rejected = events[0]
    assert rejected["reason"] == reason
    assert rejected["order_id"] == "o1"
    assert rejected["message"]
    assert rejected["symbol"] == command["symbol"]
    assert rejected["seq"] == (2 if reason == "symbol_halted" else 1)  # after the halt's event
    assert venue.engine.book_depth("AAPL", 5) == {"bids": [], "asks": []}


def test_integer_and_decimal_inputs_are_accepted(venue: Checked, cmd: Commands) -> None:
    # The wire sends strings, but ints and Decimals (JSON parsed with parse_float=Decimal) work.
    command = cmd.new("b1", "buy", "1", "10.00")
    command["price"] = Decimal("10.50")
    command["quantity"] = 3
    events = venue.process(command)
    assert events[0]["price"] == "10.5"
    assert events[0]["quantity"] == "3"


def test_time_in_force_defaults_to_gtc(venue: Checked) -> None:
    events = venue.process(_valid_new(time_in_force=_DROP))
    assert kinds(events) == ["accepted", "book"]
    assert events[0]["time_in_force"] == "gtc"


def test_rejections_for_unknown_symbols_have_their_own_sequence(venue: Checked) -> None:
    # GIVEN an AAPL order already sequenced
    venue.process(_valid_new(order_id="a1"))
    # WHEN orders for an unknown symbol arrive
    first = venue.process(_valid_new(order_id="x1", symbol="ZZZ"))
    second = venue.process(_valid_new(order_id="x2", symbol="ZZZ"))
    # THEN they are numbered under that symbol string
    assert [(e["event_id"], e["seq"]) for e in first + second] == [("ZZZ-1", 1), ("ZZZ-2", 2)]


@pytest.mark.parametrize(
    "command",
    [
        None,
        "new",
        [],
        {},
        _valid_new(type=_DROP),
        _valid_new(type="amend"),
        _valid_new(order_id=_DROP),
        _valid_new(order_id=""),
        _valid_new(order_id=7),
        _valid_new(symbol=_DROP),
        _valid_new(symbol=""),
        _valid_new(symbol=["AAPL"]),
        _valid_new(command_id=_DROP),
        _valid_new(ts=_DROP),
        _valid_new(ts=""),
        _valid_new(ts="yesterday"),
        _valid_new(ts="2024-05-01 14:30:00Z"),  # not the wire shape
        _valid_new(ts="2024-05-01T14:30:00"),  # naive
        _valid_new(ts="2024-02-30T14:30:00Z"),  # no such day
        _valid_new(ts=1714573800),
    ],
)
def test_malformed_commands_are_dropped_and_counted(command: Any, instruments: Any) -> None:
    # GIVEN an engine, WHEN a command too malformed to answer arrives
    engine = MatchingEngine(instruments)
    events = engine.process(command)
    # THEN no event, no exception, and it is counted
    assert events == []
    assert engine.dropped_commands == 1


@pytest.mark.parametrize(
    "ts", ["2024-05-01T14:30:00Z", "2024-05-01T14:30:00.123+02:00", "2024-05-01T14:30:00.5-05:00"]
)
def test_usual_iso_timestamps_pass_through(ts: str, instruments: Any) -> None:
    engine = MatchingEngine(instruments)
    events = engine.process(_valid_new(ts=ts))
    assert [e["ts"] for e in events] == [ts, ts]


# -- idempotency, sequencing, epoch -----------------------------------------------------------


@pytest.mark.parametrize("state", ["resting", "filled", "rejected", "cancelled"])
def test_duplicate_new_order_is_ignored(venue: Checked, cmd: Commands, state: str) -> None:
    # GIVEN an order that is resting / filled / rejected / cancelled
    original = cmd.new("o1", "buy", "5", "10.00")
    if state == "rejected":
        original["price"] = "10.001"
    venue.process(original)
    if state == "filled":
        venue.process(cmd.new("s1", "sell", "5", "10.00"))
    if state == "cancelled":
        venue.process(cmd.cancel("o1"))
    before = venue.engine.snapshot()
    # WHEN the same new command (or another with the same order id) arrives again
    assert venue.process(original) == []
    assert venue.process(cmd.new("o1", "sell", "1", "9.00")) == []
    # THEN nothing happens at all
    assert venue.engine.snapshot() == before


def test_sequences_are_per_symbol_and_gapless(venue: Checked, cmd: Commands) -> None:
    a = venue.process(cmd.new("a1", "buy", "1", "10.00", symbol="AAPL"))
    m = venue.process(cmd.new("m1", "buy", "1", "10.00", symbol="MSFT"))
    a2 = venue.process(cmd.new("a2", "sell", "1", "10.00", symbol="AAPL"))
    assert [e["event_id"] for e in a] == ["AAPL-1", "AAPL-2"]
    assert [e["event_id"] for e in m] == ["MSFT-1", "MSFT-2"]
    assert [e["event_id"] for e in a2] == ["AAPL-3", "AAPL-4", "AAPL-5"]
    assert all(e["correlation_id"] == a2[0]["correlation_id"] for e in a2)


def test_events_carry_the_epoch(cmd: Commands, instruments: Any) -> None:
    engine = MatchingEngine(instruments, epoch=3)
    assert {e["epoch"] for e in engine.process(cmd.new("a1", "buy", "1", "10.00"))} == {3}
    engine.set_epoch(4)
    assert {e["epoch"] for e in engine.process(cmd.cancel("a1"))} == {4}
    assert engine.snapshot()["epoch"] == 4
    with pytest.raises(ValueError):
        engine.set_epoch(-1)


# -- decimals ---------------------------------------------------------------------------------


def test_fractional_lots_and_coarse_ticks_convert_exactly(venue: Checked, cmd: Commands) -> None:
    # GIVEN XBT (tick 0.5, lot 0.0001) with an ask of 0.0003 at 61234.5
    venue.process(cmd.new("s1", "sell", "0.0003", "61234.5", symbol="XBT"))
    # WHEN a buy of 0.0002 at 61235 arrives
    events = venue.process(cmd.new("b1", "buy", "0.0002", "61235.0", symbol="XBT"))
    # THEN the trade and its notional are exact: 0.0002 * 61234.5 = 12.2469
    trade = one(events, "trade")
    assert trade["price"] == "61234.5"
    assert trade["quantity"] == "0.0002"
    assert trade["taker_filled_notional"] == "12.2469"
    assert trade["maker_filled_notional"] == fmt(Decimal("0.0002") * Decimal("61234.5"))
    assert trade["maker_remaining_quantity"] == "0.0001"
    assert events[0]["price"] == "61235"
    assert venue.engine.book_depth("XBT", 1)["asks"] == [(122469, 1, 1)]
    # AND quantities off the lot grid or prices off the tick are refused
    assert venue.process(cmd.new("b2", "buy", "0.00001", "1", symbol="XBT"))[0]["reason"] == (
        "quantity_off_lot"
    )
    assert venue.process(cmd.new("b3", "buy", "1", "1.25", symbol="XBT"))[0]["reason"] == (
        "price_off_tick"
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=-3, max_value=20))
def test_scaled_str_is_exact_and_equals_the_kernel_fmt(units: int, places: int) -> None:
    # GIVEN an integer amount of 10**-places units, WHEN formatted without Decimal
    text = scaled_str(units, places)
    # THEN the text is exactly that value, in canonical form (no exponent, no trailing zeros)
    if places <= 0:
        assert text == str(units * 10**-places)
    else:
        whole, _, fraction = text.partition(".")
        assert not fraction.endswith("0")
        assert int(whole + fraction.ljust(places, "0")) == units
    # AND equals the kernel's fmt wherever Decimal's 28-digit context is exact
    if len(str(units)) + max(-places, 0) <= 28:
        assert text == fmt(Decimal(units).scaleb(-places))


# -- snapshot / restore / instruments ---------------------------------------------------------


def test_snapshot_is_json_and_restore_continues(
    venue: Checked, cmd: Commands, instruments: Any
) -> None:
    # GIVEN a book with queues on both sides, a partial fill and a sequence for an unknown symbol
    venue.process(cmd.new("b1", "buy", "5", "9.99", account="a"))
    venue.process(cmd.new("b2", "buy", "5", "9.99", account="b"))
    venue.process(cmd.new("s1", "sell", "5", "10.01", account="c"))
    venue.process(cmd.new("s2", "sell", "2", "9.99", account="d"))
    venue.process(_valid_new(order_id="z1", symbol="ZZZ"))
    venue.engine.set_epoch(2)
    # WHEN it is snapshotted through JSON and restored
    state = venue.engine.snapshot()
    text = json.dumps(state)
    restored = MatchingEngine.restore(json.loads(text), instruments)
    # THEN the snapshot is deterministic and survives a restore unchanged
    assert json.dumps(venue.engine.snapshot()) == text
    assert restored.snapshot() == state
    assert restored.epoch == 2
    # AND both engines answer the next command identically
    follow = cmd.new("s3", "sell", "10", "9.99", account="e")
    assert restored.process(follow) == venue.engine.process(follow)


def test_restore_refuses_a_snapshot_that_does_not_fit(
    venue: Checked, cmd: Commands, instruments: Any
) -> None:
    venue.process(cmd.new("b1", "buy", "5", "9.99"))
    state = venue.engine.snapshot()
    other_tick = dict(instruments)
    other_tick["AAPL"] = Instrument(symbol="AAPL", tick_size=Decimal("0.05"), lot_size=1)
    with pytest.raises(ValueError):
        MatchingEngine.restore(state, other_tick)
    without_aapl = {s: i for s, i in instruments.items() if s != "AAPL"}
    with pytest.raises(ValueError):
        MatchingEngine.restore(state, without_aapl)
    with pytest.raises(ValueError):
        MatchingEngine.restore({"format": 1}, instruments)


def test_halting_and_resuming_a_symbol(venue: Checked, cmd: Commands, instruments: Any) -> None:
    # GIVEN a resting order, WHEN a halt command for the symbol comes in
    venue.process(cmd.new("b1", "buy", "5", "9.99"))
    halted = venue.process(cmd.halt("AAPL", "news pending"))
    # THEN one trading_status event says so, and a second halt changes nothing
    assert [(e["type"], e["status"], e["reason"]) for e in halted] == [("trading_status", "halted", "news pending")]
    assert venue.process(cmd.halt("AAPL")) == []
    # AND new orders are rejected, the resting order stays, cancels still work
    assert venue.process(cmd.new("b2", "buy", "1", "9.99"))[0]["reason"] == "symbol_halted"
    assert venue.engine.book_depth("AAPL", 5)["bids"] == [(999, 5, 1)]
    assert kinds(venue.process(cmd.cancel("b1"))) == ["cancelled", "book"]
    # AND another symbol trades on
    assert kinds(venue.process(cmd.new("m1", "buy", "1", "9.99", symbol="MSFT"))) == ["accepted", "book"]
    # AND after a resume command, orders are accepted again, sequence continuing
    assert [e["status"] for e in venue.process(cmd.halt("AAPL", resume=True))] == ["active"]
    assert kinds(venue.process(cmd.new("b3", "buy", "1", "9.99"))) == ["accepted", "book"]


def test_the_instruments_table_status_does_not_halt_the_engine(cmd: Commands, instruments: Any) -> None:
    # GIVEN an engine built from instruments whose table status says halted (as a leader reads
    # them at a failover, after the halt), with no halt command in the journal
    engine = MatchingEngine({"AAPL": instruments["AAPL"].model_copy(update={"status": "halted"})})
    # WHEN an order of the journal comes in, THEN it is matched as the first leader matched it
    assert kinds(engine.process(cmd.new("b1", "buy", "1", "9.99"))) == ["accepted", "book"]


def test_a_halted_symbol_triggers_no_stop_and_parks_none(venue: Checked, cmd: Commands) -> None:
    # GIVEN a resting bid and ask and a parked sell stop at 9.95, and the symbol halted
    venue.process(cmd.new("b1", "buy", "5", "9.90", account="a"))
    venue.process(cmd.new("s1", "sell", "5", "10.00", account="a"))
    venue.process(cmd.new("t1", "buy", "1", "10.00", account="b"))  # last = 10.00
    stop = cmd.new("st", "sell", "2", None, order_type="stop", account="c")
    stop["stop_price"] = "9.95"
    assert kinds(venue.process(stop)) == ["accepted"]
    venue.process(cmd.halt("AAPL"))
    # WHEN an order that would trade through the stop comes in, and a new stop already triggered
    crossing = venue.process(cmd.new("x", "sell", "5", "9.90", account="d"))
    late = cmd.new("st2", "sell", "1", None, order_type="stop", account="c")
    late["stop_price"] = "10.50"
    # THEN both are refused: no trade, no trigger, the parked stop stays parked
    assert [e["reason"] for e in crossing] == ["symbol_halted"]
    assert [e["reason"] for e in venue.process(late)] == ["symbol_halted"]
    assert "st" in venue.engine.live_orders("AAPL") and venue.engine.last_price("AAPL") == 1000


def _halt_journal(cmd: Commands) -> list[dict[str, Any]]:
    return [
        cmd.new("b1", "buy", "5", "9.99", account="a"),
        cmd.halt("AAPL", "volatility"),
        cmd.new("s1", "sell", "3", "9.99", account="b"),  # refused: halted
        cmd.cancel("b1", account="a"),  # cancels go on
        cmd.new("b2", "buy", "2", "10.00", account="a"),  # refused: halted
        cmd.halt("AAPL", "reopening", resume=True),
        cmd.new("b3", "buy", "4", "10.00", account="a"),
        cmd.new("s2", "sell", "3", "10.00", account="b"),  # trades
        cmd.halt("AAPL", "again"),
        cmd.new("s3", "sell", "1", "10.00", account="b"),  # refused: halted
    ]


def test_halts_on_the_journal_replay_identically_at_every_snapshot_point(cmd: Commands, instruments: Any) -> None:
    # GIVEN a journal with a halt, a resume and a second halt between orders
    journal = _halt_journal(cmd)
    first = MatchingEngine(instruments)
    tape = [event for command in journal for event in first.process(command)]
    assert [e["reason"] for e in tape if e["type"] == "rejected"] == ["symbol_halted"] * 3
    assert [e["status"] for e in tape if e["type"] == "trading_status"] == ["halted", "active", "halted"]
    assert sum(e["type"] == "trade" for e in tape) == 1
    for cut in range(len(journal) + 1):
        # WHEN a successor restores a snapshot taken after any prefix (through JSON, with the
        # instruments table as it is now, whatever its status says) and replays the rest
        before = MatchingEngine(instruments)
        head = [event for command in journal[:cut] for event in before.process(command)]
        state = json.loads(json.dumps(before.snapshot()))
        now_listed = {s: i.model_copy(update={"status": "active"}) for s, i in instruments.items()}
        successor = MatchingEngine.restore(state, now_listed)
        tail = [event for command in journal[cut:] for event in successor.process(command)]
        # THEN it publishes exactly the events of the uninterrupted run, and ends in its state
        assert head + tail == tape, cut
        assert successor.snapshot() == first.snapshot()
    assert first.snapshot()["halted"] == ["AAPL"]


def test_a_format_3_snapshot_restores_with_nothing_halted(venue: Checked, cmd: Commands, instruments: Any) -> None:
    # GIVEN a snapshot of the format before halts were engine state
    venue.process(cmd.new("b1", "buy", "5", "9.99"))
    state = {k: v for k, v in venue.engine.snapshot().items() if k != "halted"} | {"format": 3}
    # WHEN restored, THEN nothing is halted and the book is back
    restored = MatchingEngine.restore(state, instruments)
    assert not restored.is_halted("AAPL") and restored.book_depth("AAPL", 1)["bids"] == [(999, 5, 1)]
    # AND a format-4 snapshot with a malformed halted list is refused
    with pytest.raises(ValueError):
        MatchingEngine.restore({**venue.engine.snapshot(), "halted": "AAPL"}, instruments)


@pytest.mark.parametrize("bad", [{"symbol": ""}, {"symbol": 7}, {"reason": 3}, {"symbol": None}])
def test_a_malformed_halt_is_dropped(venue: Checked, cmd: Commands, bad: dict[str, Any]) -> None:
    # GIVEN a halt command with a bad symbol or reason, WHEN processed
    events = venue.process(cmd.halt("AAPL") | bad)
    # THEN nothing happens but the drop count
    assert events == [] and venue.engine.dropped_commands == 1 and not venue.engine.is_halted("AAPL")


def test_book_depth_limits_levels_best_first(venue: Checked, cmd: Commands) -> None:
    for i, price in enumerate(("10.00", "10.02", "10.01", "10.02")):
        venue.process(cmd.new(f"b{i}", "buy", "1", price))
    assert venue.engine.book_depth("AAPL", 2) == {
        "bids": [(1002, 2, 2), (1001, 1, 1)],
        "asks": [],
    }
    with pytest.raises(KeyError):
        venue.engine.book_depth("NOPE", 1)
