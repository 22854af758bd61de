"""Decoders of the order-commands and execution-events records, on the platform's own shapes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from nexus_surveillance.events import DecodeError, from_execution_event, from_order_command

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_a_stream_record_of_a_fill_becomes_accepts_and_two_fill_legs() -> None:
    # GIVEN the engine's record of one step (a maker rests, a taker takes 40 of it)
    record = json.loads((EVENTS / "execution_events_fill.json").read_text())
    # WHEN it is decoded with the owners of the accounts
    events = from_execution_event(record, owners={"acc_maker": "u_m", "acc_taker": "u_t"})
    # THEN book deltas are skipped, the trade is a taker leg then a maker leg naming each other
    assert [e.kind for e in events] == ["accepted", "accepted", "fill", "fill"]
    taker, maker = events[2], events[3]
    assert (taker.order_id, taker.side, taker.aggressor, taker.cp_order_id) == ("TAKER", "buy", True, "MAKER")
    assert (maker.order_id, maker.side, maker.aggressor, maker.cp_order_id) == ("MAKER", "sell", False, "TAKER")
    assert taker.fill_price == Decimal("101.50") and taker.fill_quantity == Decimal("40")
    assert taker.trade_id == maker.trade_id == "AAPL-4"
    assert (taker.user_id, taker.cp_user_id, maker.user_id) == ("u_t", "u_m", "u_m")
    assert maker.leaves_quantity == Decimal("60")
    assert events[0].ts == 1_767_623_400_000_000_000 and events[0].seq == 1
    assert taker.order_key < maker.order_key


def test_audit_shaped_events_map_cancel_expiry_and_skip_unknown_types() -> None:
    # GIVEN the audit fixture: OCO legs, an OCO cancel, an expiry and a type from a newer engine
    record = json.loads((EVENTS / "audit_execution_events.json").read_text())
    # WHEN decoded without an owners map
    events = from_execution_event(record)
    # THEN each lifecycle fact maps one to one and the unknown type is skipped
    assert [e.kind for e in events] == ["accepted", "accepted", "fill", "fill", "accepted", "accepted",
                                        "cancelled", "expired"]
    cancelled = events[6]
    assert (cancelled.order_id, cancelled.quantity, cancelled.reason) == ("G1.sl", Decimal("40"), "oco")
    assert events[0].user_id is None and events[0].owner == "acc_maker"


def test_one_flat_journal_line_decodes_like_the_stream_record() -> None:
    # GIVEN one event as nexus replay writes it (a flat line)
    record = json.loads((EVENTS / "execution_events_fill.json").read_text())["events"][3]
    # WHEN decoded
    events = from_execution_event(record)
    # THEN it is the trade's two legs
    assert [(e.kind, e.aggressor) for e in events] == [("fill", True), ("fill", False)]


def test_commands_map_to_order_facts_and_clock_is_none() -> None:
    # GIVEN the command fixture (new with risk outcome, cancel, OCO, mass cancel, clock)
    commands = json.loads((EVENTS / "audit_order_commands.json").read_text())["commands"]
    # WHEN each is decoded
    decoded = [from_order_command(c, owners={"acc_1": "u_1"}) for c in commands]
    # THEN new/oco are new, cancel/mass_cancel are cancel requests, clock is not an order fact
    kinds = [None if e is None else e.kind for e in decoded]
    assert kinds == ["new", "cancel_request", "new", "cancel_request", None]
    new = decoded[0]
    assert new is not None
    assert (new.order_id, new.side, new.price, new.quantity, new.user_id, new.seq) == (
        "ORD1", "buy", Decimal("150.00"), Decimal("10"), "u_1", 0)


def test_a_record_that_names_its_owner_wins_over_the_map() -> None:
    command = {"type": "new", "order_id": "O", "account_id": "a", "symbol": "X", "side": "sell",
               "order_type": "limit", "price": "1", "quantity": "2", "ts": "2026-01-05T14:30:00Z",
               "user_id": "u_record"}
    event = from_order_command(command, owners={"a": "u_map"})
    assert event is not None and event.user_id == "u_record"


@pytest.mark.parametrize(
    "record",
    [
        {"type": "accepted", "symbol": "X", "seq": 0, "ts": "2026-01-05T14:30:00Z", "order_id": "o",
         "account_id": "a", "side": "buy", "quantity": "1"},
        {"type": "accepted", "symbol": "X", "seq": 1, "ts": "yesterday", "order_id": "o", "account_id": "a",
         "side": "buy", "quantity": "1"},
        {"type": "accepted", "symbol": "X", "seq": 1, "ts": "2026-01-05T14:30:00", "order_id": "o",
         "account_id": "a", "side": "buy", "quantity": "1"},
        {"type": "accepted", "symbol": "X", "seq": 1, "ts": "2026-01-05T14:30:00Z", "order_id": "o",
         "account_id": "a", "side": "hold", "quantity": "1"},
        {"type": "trade", "symbol": "X", "seq": 2, "ts": "2026-01-05T14:30:00Z", "price": "NaN", "quantity": "1",
         "aggressor_side": "buy", "maker_order_id": "m", "maker_account_id": "b", "taker_order_id": "t",
         "taker_account_id": "a"},
        {"type": "cancelled", "symbol": "X", "seq": 3, "ts": "2026-01-05T14:30:00Z", "order_id": "o",
         "account_id": "a", "remaining_quantity": "9" * 50},
        {"events": "not a list"},
        {"events": [1, 2]},
    ],
)
def test_malformed_event_records_raise_decode_error(record: dict) -> None:
    with pytest.raises(DecodeError):
        from_execution_event(record)


def test_malformed_commands_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        from_order_command({"type": "new", "symbol": "X", "order_id": "o", "ts": "2026-01-05T14:30:00Z"})
    with pytest.raises(DecodeError):
        from_order_command(["not", "a", "record"])  # type: ignore[arg-type]
