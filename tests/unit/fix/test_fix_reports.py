"""Execution events -> execution reports: each state transition once, to the owning session,
whatever the stream redelivers. GIVEN / WHEN / THEN."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fix_world import fix_world, inline, msg, nos, tags
from nexus_common.events import (
    ENTRY_INCOMPLETE,
    CancelledEvent,
    CancelRejectedEvent,
    RejectedEvent,
    ReplacedEvent,
    TradeEvent,
)
from nexus_fix.fixorders import FixOrder, MemoryFixOrders, Pending
from nexus_fix.reports import OrderLocks, Outgoing, ReportRouter, apply_event, parse_records

D = Decimal
TS = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)


def _order(**changes: object) -> FixOrder:
    base = FixOrder(order_id="o-1", session_id="S", account_id="alice", cl_ord_id="c1", symbol="AAPL", side="buy",
                    ord_type="limit", quantity=D(10), price=D(100), time_in_force="gtc", status="0",
                    leaves_qty=D(10), seq=3)  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def _trade(seq: int, qty: str, cum: str, notional: str, left: str) -> TradeEvent:
    return TradeEvent(event_id=f"AAPL-{seq}", ts=TS, correlation_id="x", symbol="AAPL", seq=seq, price=D("100.5"),
                      quantity=D(qty), aggressor_side="sell", maker_order_id="o-1", maker_account_id="alice",
                      taker_order_id="t", taker_account_id="bob", maker_filled_quantity=D(cum),
                      maker_filled_notional=D(notional), maker_remaining_quantity=D(left), taker_filled_quantity=D(qty),
                      taker_filled_notional=D(notional), taker_remaining_quantity=D(0))  # fmt: skip


def test_a_trade_sets_the_cumulative_quantities_from_the_event() -> None:
    # GIVEN an open order of 10; WHEN a trade of 3 at 100.5 fills it (maker side)
    after, [report] = apply_event(_order(), _trade(4, "3", "3", "301.5", "7"))
    # THEN a partial fill with exact decimals and the maker's ExecID
    assert tags(report, 150, 39, 14, 151, 6, 31, 32, 17) == ("F", "1", "3", "7", "100.5", "100.5", "3", "AAPL-4-M")
    assert (after.cum_qty, after.leaves_qty, after.seq) == (D(3), D(7), 4)


def test_canceled_after_a_cancel_request_carries_its_clordids_and_the_filled_quantity() -> None:
    order = _order(cum_qty=D(4), cum_notional=D(400), leaves_qty=D(6), status="1",
                   pending=Pending("cancel", "c2", "c1"))  # fmt: skip
    event = CancelledEvent(event_id="AAPL-9", ts=TS, correlation_id="x", symbol="AAPL", seq=9, order_id="o-1",
                           account_id="alice", remaining_quantity=D(6), reason="user")  # fmt: skip
    after, [report] = apply_event(order, event)
    assert tags(report, 150, 39, 11, 41, 14, 151, 6) == ("4", "4", "c2", "c1", "4", "0", "100")
    assert (after.cl_ord_id, after.pending) == ("c2", None)


def test_a_cancel_the_engine_calls_unknown_is_too_late_for_an_order_the_gateway_knows() -> None:
    # GIVEN a cancel pending on an order the engine filled meanwhile (it no longer holds it)
    order = _order(pending=Pending("cancel", "c2", "c1"))
    event = CancelRejectedEvent(event_id="AAPL-7", ts=TS, correlation_id="x", symbol="AAPL", seq=7, order_id="o-1",
                                account_id="alice", reason="unknown_order")  # fmt: skip
    # WHEN the engine's refusal is applied
    after, [report] = apply_event(order, event)
    # THEN the client gets OrderCancelReject "too late to cancel" (0), not "unknown order" (1)
    assert (report.msg_type, *tags(report, 11, 41, 434, 102)) == ("9", "c2", "c1", "1", "0")
    assert after.pending is None


@pytest.mark.parametrize(("status", "reported"), [("A", True), ("2", False), ("0", False)])
def test_a_fence_rejection_is_reported_only_for_an_order_still_pending_new(status: str, reported: bool) -> None:
    # GIVEN an order reported pending new, filled, or new; WHEN the entry sweep's fence is rejected
    # (for a filled or new one: the engine had taken it, then forgotten its id)
    event = RejectedEvent(event_id="AAPL-8", ts=TS, correlation_id="fence-o-1", symbol="AAPL", seq=8,
                          order_id="o-1", account_id="alice", reason=ENTRY_INCOMPLETE)  # fmt: skip
    after, reports = apply_event(_order(status=status), event)
    # THEN only the pending one is reported rejected; the others stay as their events made them
    assert [tags(r, 150, 39) for r in reports] == ([("8", "8")] if reported else [])
    assert after.status == ("8" if reported else status)


def test_a_venue_change_is_a_restatement() -> None:
    event = ReplacedEvent(event_id="AAPL-5", ts=TS, correlation_id="x", symbol="AAPL", seq=5, order_id="o-1",
                          account_id="alice", quantity=D(8), remaining_quantity=D(8), kept_priority=True,
                          reason="self_trade")  # fmt: skip
    _, [report] = apply_event(_order(), event)
    assert tags(report, 150, 39, 38, 151, 378) == ("D", "0", "8", "8", "5")


def test_pending_status_takes_precedence_while_a_cancel_waits() -> None:
    order = _order(pending=Pending("cancel", "c2", "c1"))
    _, [report] = apply_event(order, _trade(4, "3", "3", "301.5", "7"))
    assert tags(report, 150, 39) == ("F", "6")


def test_redelivered_events_give_no_second_report() -> None:
    # GIVEN alice's order filled by bob, every report delivered
    world = fix_world()
    world.send("alice", nos("a1", qty="5", price="100"))
    world.send("bob", nos("b1", side="2", qty="5", price="100"))
    world.session("alice").take()
    # WHEN the stream delivers every event again
    asyncio.run(world.router.handle(list(world.venue.events)))
    # THEN nobody gets a report twice
    assert world.session("alice").take() == [] and world.session("bob").take() == []


def test_reports_of_an_applied_event_that_never_reached_the_session_are_sent_on_redelivery() -> None:
    # GIVEN a sender that fails once, after the record was updated
    world = fix_world()
    delivered: list[Outgoing] = []
    failures = [1]

    async def flaky(session_id: str, messages: list[Outgoing]) -> bool:
        if failures:
            failures.pop()
            raise ConnectionError("session store unavailable")
        delivered.extend(messages)
        return True

    async def enter() -> None:  # the order is entered; its engine events are not routed yet
        await world.app.on_message(world.session("alice"), nos("a1", qty="5", price="100"))
        await world.app.drain("FIX.4.4:NEXUS->ALICE")

    asyncio.run(enter())
    router = ReportRouter(world.store, flaky, OrderLocks(), run=inline)
    events = list(world.venue.events)
    # WHEN the first delivery fails and the batch is redelivered, twice
    with pytest.raises(ConnectionError):
        asyncio.run(router.handle(events))
    asyncio.run(router.handle(events))
    asyncio.run(router.handle(events))
    # THEN the New report went out exactly once, with the same ExecID the first attempt built
    assert [tags(s, 150, 17) for s in delivered] == [("0", events[0].event_id)]


def test_events_of_orders_entered_over_http_are_not_reported() -> None:
    world = fix_world()
    from nexus_orders.models import NewOrderRequest

    world.venue.service.place("alice", NewOrderRequest(symbol="AAPL", side="buy", type="limit", quantity=D(1),
                                                       price=D(100), client_order_id="http-1"))  # fmt: skip
    asyncio.run(world.route())
    assert world.session("alice").take() == []


def test_the_same_clordid_entered_over_http_first_is_a_duplicate_over_fix() -> None:
    world = fix_world()
    from nexus_orders.models import NewOrderRequest

    world.venue.service.place("alice", NewOrderRequest(symbol="AAPL", side="buy", type="limit", quantity=D(10),
                                                       price=D(100), client_order_id="same"))  # fmt: skip
    asyncio.run(world.route())
    sent = world.send("alice", nos("same", qty="10", price="100"))
    assert [tags(s, 150, 103) for s in sent] == [("8", "6")]
    # and the HTTP order stays the HTTP client's: its events reach no FIX session
    world.send("bob", nos("hit", side="2", qty="10", price="100"))
    assert world.session("alice").take() == []


def test_reports_for_a_removed_session_are_dropped_not_retried_forever() -> None:
    store = MemoryFixOrders()
    store.save(_order(session_id="gone"))

    async def nobody(session_id: str, messages: list[Outgoing]) -> bool:
        return False

    router = ReportRouter(store, nobody, OrderLocks(), run=inline)
    assert asyncio.run(router.handle([_trade(4, "3", "3", "301.5", "7")])) == 1
    stored = store.get("o-1")
    assert stored is not None and (stored.seq, stored.sent_seq) == (4, 4)


def test_unreadable_and_unknown_records_are_skipped() -> None:
    good = _trade(4, "1", "1", "100.5", "9").model_dump(mode="json")
    records = [
        b"not json",
        json.dumps(good),  # not an engine batch
        json.dumps({"events": [{"type": "book"}, {"type": "trade"}, good, "x"]}),
    ]
    events = parse_records(records)
    assert [e.event_id for e in events] == ["AAPL-4"]


def test_status_request_answers_from_the_gateways_record() -> None:
    world = fix_world()
    world.send("alice", nos("s1", qty="10", price="100"))
    world.send("bob", nos("s2", side="2", qty="4", price="100"))
    world.session("alice").take()
    [status] = world.send("alice", msg("H", (11, "s1"), (55, "AAPL"), (54, "1")))
    assert tags(status, 150, 39, 14, 151, 6) == ("I", "1", "4", "6", "100")
