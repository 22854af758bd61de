"""FIX order entry on the orders service's own code, and the execution reports of every state
transition (in memory: the real service and engine, see ``fix_world``). GIVEN / WHEN / THEN."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal

import pytest
from fix_world import FixWorld, fix_world, msg, nos, tags
from nexus_fix.application import CATCH_UP_SECONDS, EntryRejected, new_order_request
from nexus_fix.fixorders import FixOrder
from nexus_orders.models import NewOrderRequest
from nexus_orders.order import derive_order_id

D = Decimal
EXEC = (150, 39, 14, 151, 6)  # ExecType, OrdStatus, CumQty, LeavesQty, AvgPx


# -- NewOrderSingle mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({40: "1"}, {"type": "market", "price": None}),
        ({40: "2", 44: "100.25"}, {"type": "limit", "price": D("100.25")}),
        ({40: "3", 99: "101"}, {"type": "stop", "stop_price": D(101)}),
        ({40: "4", 44: "102", 99: "101"}, {"type": "stop_limit", "price": D(102), "stop_price": D(101)}),
        ({40: "2", 44: "1", 59: "0"}, {"time_in_force": "day"}),
        ({40: "2", 44: "1"}, {"time_in_force": None}),  # the orders API's default, as over HTTP
        ({40: "2", 44: "1", 59: "1"}, {"time_in_force": "gtc"}),
        ({40: "2", 44: "1", 59: "3"}, {"time_in_force": "ioc"}),
        ({40: "2", 44: "1", 59: "4"}, {"time_in_force": "fok"}),
        ({40: "2", 44: "1", 18: "6"}, {"post_only": True}),
        ({40: "2", 44: "1", 111: "5"}, {"display_quantity": D(5)}),
        ({40: "2", 44: "1", 54: "2"}, {"side": "sell"}),
    ],
)
def test_a_new_order_single_maps_onto_the_orders_api_request(
    fields: dict[int, str], expected: dict[str, object]
) -> None:
    # GIVEN a NewOrderSingle with these fields
    base = {11: "c1", 55: "AAPL", 54: "1", 38: "10"}
    message = msg("D", *{**base, **fields}.items())
    # WHEN it is mapped
    request = new_order_request(message)
    # THEN the request has the NexusTrade terms
    for name, value in expected.items():
        assert getattr(request, name) == value, name
    assert (request.client_order_id, request.quantity) == ("c1", D(10))


def test_good_till_date_takes_expire_time_as_utc() -> None:
    message = msg("D", (11, "c"), (55, "AAPL"), (54, "1"), (38, "1"), (40, "2"), (44, "1"), (59, "6"),
                  (126, "20260306-20:00:00.250"))  # fmt: skip
    request = new_order_request(message)
    assert request.time_in_force == "gtd"
    assert request.expire_at is not None and request.expire_at.isoformat() == "2026-03-06T20:00:00.250000+00:00"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({54: "5"}, "unsupported"),  # sell short
        ({40: "P"}, "unsupported"),  # pegged
        ({59: "2"}, "unsupported"),  # at the opening
        ({18: "6 G"}, "unsupported"),  # all or none
        ({38: "abc"}, "invalid_quantity"),
        ({38: "1e999999999"}, "invalid_quantity"),
        ({38: "-5"}, "invalid_quantity"),
        ({44: "NaN"}, "invalid_decimal"),
        ({126: "tomorrow"}, "invalid_field"),
    ],
)
def test_values_nexustrade_cannot_take_are_refused_before_the_service(fields: dict[int, str], code: str) -> None:
    base = {11: "c1", 55: "AAPL", 54: "1", 38: "10", 40: "2", 44: "10"}
    with pytest.raises(EntryRejected) as refused:
        new_order_request(msg("D", *{**base, **fields}.items()))
    assert refused.value.code == code


# -- order life --------------------------------------------------------------------------------


def test_a_limit_order_is_pending_new_then_new_and_goes_through_the_orders_service() -> None:
    # GIVEN a session for alice
    world = fix_world()
    # WHEN it sends a limit buy
    sent = world.send("alice", nos("o1", price="100.50"))
    # THEN pending new, then new, with exact decimals and the order id the orders service derives
    assert [tags(s, *EXEC) for s in sent] == [("A", "A", "0", "10", "0"), ("0", "0", "0", "10", "0")]
    order_id = derive_order_id("alice", "o1")
    assert {s.get(37) for s in sent} == {order_id}
    assert sent[1].get(44) == "100.5" and sent[1].get(1) == "alice"
    stored = world.venue.orders.get(order_id)
    assert stored is not None and stored.status == "new" and stored.client_order_id == "o1"
    # AND the audit trail records the order's FIX entry with source fix
    [entry] = world.audit.events
    assert (entry.kind, entry.source, entry.aggregate_id) == ("fix_order_entered", "fix", order_id)


def test_partial_fill_then_fill_each_with_cumulative_quantities_and_unique_exec_ids() -> None:
    # GIVEN alice resting a buy of 10 at 100
    world = fix_world()
    world.send("alice", nos("buy1", qty="10", price="100"))
    # WHEN bob sells 4 then 6 at 100
    bob_first = world.send("bob", nos("s1", side="2", qty="4", price="100"))
    alice_first = world.session("alice").take()
    world.send("bob", nos("s2", side="2", qty="6", price="100"))
    alice_second = world.session("alice").take()
    # THEN alice sees a partial fill then a fill
    assert [tags(s, *EXEC, 31, 32) for s in alice_first] == [("F", "1", "4", "6", "100", "100", "4")]
    assert [tags(s, *EXEC, 31, 32) for s in alice_second] == [("F", "2", "10", "0", "100", "100", "6")]
    # AND bob's taker order was filled at once
    assert [tags(s, 150, 39) for s in bob_first] == [("A", "A"), ("0", "0"), ("F", "2")]
    exec_ids = [s.get(17) for s in [*alice_first, *alice_second, *bob_first]]
    assert len(set(exec_ids)) == len(exec_ids)


def test_avg_px_is_exact_over_fills_at_different_prices() -> None:
    world = fix_world()
    world.send("bob", nos("a1", side="2", qty="1", price="100.01"))
    world.send("bob", nos("a2", side="2", qty="2", price="100.02"))
    sent = world.send("alice", nos("b1", qty="3", price="100.02"))
    fills = [s for s in sent if s.get(150) == "F"]
    assert [tags(s, 14, 6, 31) for s in fills] == [("1", "100.01", "100.01"), ("3", "100.0167", "100.02")]


def test_market_stop_stop_limit_post_only_and_iceberg_orders() -> None:
    world = fix_world()
    world.send("bob", nos("first", side="2", qty="1", price="100"))
    world.send("alice", nos("first", qty="1", price="100"))  # a last trade: the market buy's reference
    world.send("bob", nos("ask", side="2", qty="5", price="100"))
    world.session("alice").take()
    # a market buy takes the ask
    market = world.send("alice", nos("m1", qty="5", ord_type="1", price=None))
    assert [s.get(150) for s in market] == ["A", "0", "F"] and market[-1].get(39) == "2"
    # a stop and a stop-limit rest untriggered
    stop = world.send("alice", nos("st1", qty="1", ord_type="3", price=None, t99="103"))
    stop_limit = world.send("alice", nos("sl1", qty="1", ord_type="4", price="106", t99="105"))
    assert [tags(s, 150, 99) for s in stop] == [("A", "103"), ("0", "103")]
    assert [tags(s, 150, 44, 99) for s in stop_limit] == [("A", "106", "105"), ("0", "106", "105")]
    # a post-only order that would take is rejected by the engine (OrdRejReason 11)
    world.send("bob", nos("ask2", side="2", qty="5", price="101"))
    post = world.send("alice", nos("po1", qty="1", price="101", t18="6"))
    assert [tags(s, 150, 39) for s in post][-1] == ("8", "8") and post[-1].get(103) == "11"
    # an iceberg rests with its full quantity open
    ice = world.send("alice", nos("ice1", qty="50", price="99", t111="10"))
    assert tags(ice[-1], 150, 151) == ("0", "50")


@pytest.mark.parametrize(
    ("qty", "open_orders", "code"),
    [
        ("20000", 0, "insufficient_buying_power"),  # 2,000,000 > 1,000,000 cash
        ("200000", 0, "max_quantity_exceeded"),  # above the 100,000 an order may have
        ("1", 4000, "max_open_orders_exceeded"),  # the account holds as many open orders as it may
    ],
)
def test_an_order_the_risk_check_refuses_is_rejected_with_order_exceeds_limit(
    qty: str, open_orders: int, code: str
) -> None:
    world = fix_world()
    world.venue.accounts["alice"].reservations |= {f"held-{n}" for n in range(open_orders)}
    sent = world.send("alice", nos("big", qty=qty, price="100"))
    assert [tags(s, 150, 39, 103) for s in sent] == [("8", "8", "3")]
    assert code in (sent[0].get(58) or "")
    assert world.venue.events == []  # nothing reached the engine


def test_a_session_acts_only_for_its_accounts() -> None:
    world = fix_world()
    sent = world.send("alice", nos("x1", t1="bob"))
    assert [tags(s, 150, 39, 103) for s in sent] == [("8", "8", "15")]
    assert world.venue.events == []


def test_repeated_clordid_rejected_possresend_duplicate_ignored_possresend_unseen_accepted() -> None:
    world = fix_world()
    world.send("alice", nos("dup"))
    # a repeated ClOrdID is rejected as a duplicate order
    again = world.send("alice", nos("dup"))
    assert [tags(s, 150, 39, 103, 37) for s in again] == [("8", "8", "6", "NONE")]
    # a PossResend copy of an order already received is ignored
    assert world.send("alice", nos("dup", t97="Y")) == []
    # a PossResend order never seen is entered
    fresh = world.send("alice", nos("fresh", t97="Y"))
    assert [s.get(150) for s in fresh] == ["A", "0"]
    assert len([e for e in world.venue.events if e.type == "accepted"]) == 2


def test_bad_input_is_answered_and_nothing_is_sent_to_the_engine() -> None:
    world = fix_world()
    for message in (nos("q1", qty="abc"), nos("q2", qty="1.5"), nos("q3", price="0"), nos("q4", symbol="ZZZZ")):
        sent = world.send("alice", message)
        assert [s.get(150) for s in sent] == ["8"], message
    assert world.venue.events == []


# -- cancel, replace, status, mass cancel --------------------------------------------------------


def test_cancel_gives_pending_cancel_then_canceled_with_the_clordid_chain() -> None:
    world = fix_world()
    world.send("alice", nos("c1", qty="10", price="100"))
    sent = world.send("alice", msg("F", (41, "c1"), (11, "c2"), (55, "AAPL"), (54, "1")))
    assert [tags(s, 150, 39, 11, 41) for s in sent] == [("6", "6", "c2", "c1"), ("4", "4", "c2", "c1")]
    assert tags(sent[-1], 14, 151) == ("0", "0")
    # cancelling the canceled order is refused: too late to cancel
    late = world.send("alice", msg("F", (41, "c2"), (11, "c3"), (55, "AAPL"), (54, "1")))
    assert [(s.msg_type, *tags(s, 434, 102, 39)) for s in late] == [("9", "1", "0", "4")]


def test_a_cancel_or_replace_of_an_order_reported_done_is_too_late_while_the_orders_read_model_lags() -> None:
    # GIVEN alice's order canceled over FIX: the gateway has reported it canceled
    world = fix_world()
    world.send("alice", nos("l1", qty="10", price="100"))
    [order_id] = [k for k, item in world.venue.orders.items.items() if item.get("account_id") == "alice"]
    before_cancel = copy.deepcopy(world.venue.orders.items[order_id])
    world.send("alice", msg("F", (41, "l1"), (11, "l2"), (55, "AAPL"), (54, "1")))
    # ... but the orders service's read model has not folded the cancel yet (its consumer lags)
    world.venue.orders.items[order_id] = before_cancel
    sent_before = len(world.venue.events)
    # WHEN alice cancels it again, and then tries to replace it
    late_cancel = world.send("alice", msg("F", (41, "l2"), (11, "l3"), (55, "AAPL"), (54, "1")))
    late_replace = world.send("alice", msg("G", (41, "l2"), (11, "l4"), (55, "AAPL"), (54, "1"), (38, "8"),
                                           (40, "2"), (44, "100")))  # fmt: skip
    # THEN both are too late (CxlRejReason 0) with the order canceled, and nothing reached the engine
    assert [(s.msg_type, *tags(s, 434, 102, 39)) for s in late_cancel] == [("9", "1", "0", "4")]
    assert [(s.msg_type, *tags(s, 434, 102, 39)) for s in late_replace] == [("9", "2", "0", "4")]
    assert len(world.venue.events) == sent_before


def _replace_then_lag(world: FixWorld) -> dict[str, object]:
    """alice's order replaced once over FIX; the orders read model has not folded the replace yet
    (its item still says a replace is pending). Its item."""
    world.send("alice", nos("w1", qty="10", price="100"))
    world.send("alice", msg("G", (41, "w1"), (11, "w2"), (55, "AAPL"), (54, "1"), (38, "9"), (40, "2"), (44, "100")))
    [item] = [i for i in world.venue.orders.items.values() if i.get("account_id") == "alice"]
    item["replace_pending"] = True
    return item


def test_a_replace_right_after_a_replaced_report_waits_for_the_orders_read_model() -> None:
    # GIVEN a replace reported done to alice, not yet folded by the orders read model
    world = fix_world()
    item = _replace_then_lag(world)
    waits: list[float] = []

    async def read_model_catches_up(seconds: float) -> None:
        waits.append(seconds)
        item["replace_pending"] = False

    world.app.sleep = read_model_catches_up
    # WHEN she replaces again along the chain
    sent = world.send("alice", msg("G", (41, "w2"), (11, "w3"), (55, "AAPL"), (54, "1"), (38, "8"), (40, "2"),
                                   (44, "99")))  # fmt: skip
    # THEN the gateway waited for the read model, and the replace went through
    assert [tags(s, 150, 11, 41, 38, 44) for s in sent] == [("E", "w3", "w2", "9", "100"), ("5", "w3", "w2", "8", "99")]
    assert len(waits) == 1


def test_a_replace_the_read_model_never_catches_up_with_is_refused_after_a_bounded_wait() -> None:
    # GIVEN a read model that stays behind
    world = fix_world()
    _replace_then_lag(world)
    waits: list[float] = []

    async def no_progress(seconds: float) -> None:
        waits.append(seconds)

    world.app.sleep = no_progress
    # WHEN alice replaces again
    sent = world.send("alice", msg("G", (41, "w2"), (11, "w3"), (55, "AAPL"), (54, "1"), (38, "8"), (40, "2"),
                                   (44, "99")))  # fmt: skip
    # THEN after at most CATCH_UP_SECONDS of waiting she gets OrderCancelReject, and the order is as it was
    assert [(s.msg_type, *tags(s, 11, 434, 102)) for s in sent] == [("9", "w3", "2", "3")]
    assert CATCH_UP_SECONDS <= sum(waits) < CATCH_UP_SECONDS + 1
    status = world.send("alice", msg("H", (11, "w2"), (55, "AAPL"), (54, "1")))
    assert [tags(s, 150, 38, 44) for s in status] == [("I", "9", "100")]


def test_cancel_of_an_unknown_order_or_with_a_used_clordid_is_refused() -> None:
    world = fix_world()
    unknown = world.send("alice", msg("F", (41, "nope"), (11, "x"), (55, "AAPL"), (54, "1")))
    assert [(s.msg_type, *tags(s, 102, 37)) for s in unknown] == [("9", "1", "NONE")]
    world.send("alice", nos("k1"))
    reused = world.send("alice", msg("F", (41, "k1"), (11, "k1"), (55, "AAPL"), (54, "1")))
    assert [(s.msg_type, s.get(102)) for s in reused] == [("9", "6")]


def test_an_order_of_another_session_cannot_be_cancelled() -> None:
    world = fix_world()
    world.send("bob", nos("b1", side="2", price="120"))
    sent = world.send("alice", msg("F", (41, "b1"), (11, "a9"), (55, "AAPL"), (54, "2"), (1, "bob")))
    assert [(s.msg_type, s.get(102)) for s in sent] == [("9", "1")]


def test_replace_chain_follows_orig_clordid() -> None:
    world = fix_world()
    world.send("alice", nos("r1", qty="10", price="100"))
    first = world.send("alice", msg("G", (41, "r1"), (11, "r2"), (55, "AAPL"), (54, "1"), (38, "8"), (40, "2"),
                                    (44, "100")))  # fmt: skip
    assert [tags(s, 150, 39, 11, 41, 38) for s in first] == [("E", "E", "r2", "r1", "10"),
                                                             ("5", "0", "r2", "r1", "8")]  # fmt: skip
    second = world.send("alice", msg("G", (41, "r2"), (11, "r3"), (55, "AAPL"), (54, "1"), (38, "8"), (40, "2"),
                                     (44, "99.5")))  # fmt: skip
    assert [tags(s, 150, 11, 41, 44) for s in second] == [("E", "r3", "r2", "100"), ("5", "r3", "r2", "99.5")]
    # the status of the order under its latest ClOrdID
    status = world.send("alice", msg("H", (11, "r3"), (55, "AAPL"), (54, "1"), (790, "q1")))
    assert [tags(s, 150, 39, 11, 44, 38, 151, 790) for s in status] == [("I", "0", "r3", "99.5", "8", "8", "q1")]


def test_a_replace_whose_send_fails_is_pending_until_the_engine_refuses_it_by_its_fence() -> None:
    # GIVEN alice's resting order, and a stream that fails the replace's send (it never lands)
    world = fix_world()
    world.send("alice", nos("f1", qty="10", price="100"))
    world.session("alice").take()
    world.venue.fail_next_send = True
    # WHEN she replaces it
    sent = world.send("alice", msg("G", (41, "f1"), (11, "f2"), (55, "AAPL"), (54, "1"), (38, "8"), (40, "2"),
                                   (44, "100")))  # fmt: skip
    # THEN she hears PendingReplace (the replace may have reached the engine), then, once the engine
    # answered the fence that followed it, OrderCancelReject; the order keeps its terms
    assert [(s.msg_type, *tags(s, 11, 41)) for s in sent] == [("8", "f2", "f1"), ("9", "f2", "f1")]
    assert (sent[0].get(150), sent[1].get(434)) == ("E", "2")
    status = world.send("alice", msg("H", (11, "f1"), (55, "AAPL"), (54, "1")))
    assert [tags(s, 150, 38) for s in status] == [("I", "10")]


def test_a_replace_the_engine_refuses_gives_order_cancel_reject() -> None:
    world = fix_world()
    world.send("alice", nos("p1", qty="10", price="100"))
    world.send("bob", nos("p2", side="2", qty="5", price="100"))  # alice filled 5
    world.session("alice").take()
    sent = world.send("alice", msg("G", (41, "p1"), (11, "p3"), (55, "AAPL"), (54, "1"), (38, "3"), (40, "2"),
                                   (44, "100")))  # fmt: skip
    assert [(s.msg_type, *tags(s, 434, 39)) for s in sent] == [("9", "2", "1")]  # quantity below filled
    changing_side = world.send("alice", msg("G", (41, "p1"), (11, "p4"), (55, "AAPL"), (54, "2"), (38, "9"),
                                            (40, "2"), (44, "100")))  # fmt: skip
    assert [(s.msg_type, s.get(102)) for s in changing_side] == [("9", "99")]


def test_status_of_an_unknown_order() -> None:
    world = fix_world()
    sent = world.send("alice", msg("H", (11, "ghost"), (55, "AAPL"), (54, "1")))
    assert [tags(s, 150, 39, 37) for s in sent] == [("I", "8", "NONE")]


def test_mass_cancel_reports_then_cancels_every_open_order() -> None:
    world = fix_world()
    world.send("alice", nos("m1", price="99"))
    world.send("alice", nos("m2", price="98"))
    sent = world.send("alice", msg("q", (11, "mc1"), (530, "7")))
    assert (sent[0].msg_type, *tags(sent[0], 11, 530, 531)) == ("r", "mc1", "7", "7")
    assert sorted(s.get(11) for s in sent[1:] if s.get(150) == "4") == ["m1", "m2"]
    refused = world.send("alice", msg("q", (11, "mc2"), (530, "3")))
    assert [(s.msg_type, *tags(s, 531, 532)) for s in refused] == [("r", "0", "0")]


def test_an_unsupported_application_message_gets_a_business_message_reject() -> None:
    world = fix_world()
    sent = world.send("alice", msg("AB", (11, "x")))
    assert [(s.msg_type, *tags(s, 45, 372, 380)) for s in sent] == [("j", "7", "AB", "3")]


def test_day_order_expires_at_the_close() -> None:
    world = fix_world()
    world.send("alice", nos("d1", price="100", t59="0"))
    world.venue.clock_tick(6 * 3600)
    asyncio.run(world.route())
    sent = world.session("alice").take()
    assert [tags(s, 150, 39, 151) for s in sent] == [("C", "C", "0")]


def test_a_cancel_sent_right_after_its_order_waits_for_it() -> None:
    # GIVEN orders are entered concurrently
    world = fix_world()
    alice = world.session("alice")

    async def burst() -> None:
        # WHEN three orders and a cancel of the first arrive back to back
        for cl in ("b1", "b2", "b3"):
            await world.app.on_message(alice, nos(cl, price="99"))
        await world.app.on_message(alice, msg("F", (41, "b1"), (11, "b1x"), (55, "AAPL"), (54, "1")))
        await world.app.drain(alice.session_id)
        await world.route()

    asyncio.run(burst())
    sent = alice.take()
    # THEN every order was entered, and the cancel found the order it names
    assert sorted(s.get(11) for s in sent if s.get(150) == "0") == ["b1", "b2", "b3"]
    assert [s.get(150) for s in sent if s.get(11) == "b1x"] == ["6", "4"]


# -- an entry cut short, a ClOrdID of another channel ---------------------------------------------


def test_an_order_whose_place_failed_with_a_fault_is_entered_when_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    # GIVEN a throttle escapes the orders service on alice's first order (not a NexusError)
    world = fix_world()
    place = world.venue.service.place
    faults = [ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")]

    def throttled(account: str, request: NewOrderRequest) -> object:
        if faults:
            raise faults.pop()
        return place(account, request)

    monkeypatch.setattr(world.venue.service, "place", throttled)
    # WHEN alice sends it, and then sends it again as a plain resend
    first = world.send("alice", nos("t1"))
    again = world.send("alice", nos("t1"))
    # THEN the first is answered "retry", and the resend is entered (not refused as a duplicate)
    assert [(s.msg_type, s.get(380)) for s in first] == [("j", "0")]
    assert [tags(s, 150, 39) for s in again] == [("A", "A"), ("0", "0")]
    assert world.venue.orders.get(derive_order_id("alice", "t1")) is not None


def test_an_order_whose_command_could_not_be_confirmed_sent_is_pending_until_the_engine_decides() -> None:
    from datetime import timedelta

    from nexus_orders.service import ENTRY_DEADLINE

    # GIVEN alice's order, stored and reserved, whose command the stream does not take
    world = fix_world()
    world.venue.fail_next_send = True
    first = world.send("alice", nos("u1", price="100.50"))
    # THEN she hears PendingNew, not a reject: the record may have reached the engine
    assert [tags(s, 150, 39) for s in first] == [("A", "A")]
    order_id = derive_order_id("alice", "u1")
    assert world.venue.orders.get(order_id).status == "pending_new"  # type: ignore[union-attr]
    # WHEN the entry sweep runs after the deadline (the engine never got the command)
    world.venue.clock.now += timedelta(seconds=ENTRY_DEADLINE + 1)
    world.venue.sweep()
    asyncio.run(world.route())
    # THEN the order is reported rejected, and its reservation is given back
    [report] = world.session("alice").take()
    assert tags(report, 150, 39) == ("8", "8") and report.get(37) == order_id
    assert world.venue.accounts["alice"].reserved_cash == 0 and world.venue.accounts["alice"].reservations == set()


def test_an_entry_cancelled_before_its_place_leaves_the_clordid_free_for_a_poss_resend() -> None:
    # GIVEN alice's order entry is cancelled while the orders service is placing it (a shutdown)
    world = fix_world()
    alice = world.session("alice")
    real_run = world.app.run

    async def stalled(fn: object, *args: object) -> object:
        if fn == world.app.orders.place:
            await asyncio.Event().wait()  # never returns: the task is cancelled here
        return await real_run(fn, *args)  # type: ignore[arg-type]

    async def cut_short() -> None:
        world.app.run = stalled
        await world.app.on_message(alice, nos("s1"))
        for _ in range(20):
            await asyncio.sleep(0)
        for task in list(world.app._in_flight[alice.session_id]):
            task.cancel()
        await world.app.drain(alice.session_id)
        world.app.run = real_run

    asyncio.run(cut_short())
    assert alice.take() == []
    # WHEN the client sends the order again with PossResend=Y
    sent = world.send("alice", nos("s1", t97="Y"))
    # THEN it is entered, once
    assert [tags(s, 150, 39) for s in sent] == [("A", "A"), ("0", "0")]
    assert len([e for e in world.venue.events if e.type == "accepted"]) == 1


@pytest.mark.parametrize("poss_resend", [{"t97": "Y"}, {}])
def test_a_claim_left_by_an_entry_that_never_placed_does_not_lose_the_order(poss_resend: dict[str, str]) -> None:
    # GIVEN the gateway stopped between claiming alice's ClOrdID (and writing its record) and placing it
    world = fix_world()
    order_id = derive_order_id("alice", "g1")
    assert world.store.claim("alice", "g1", order_id)
    world.store.save(FixOrder(order_id=order_id, session_id=world.session("alice").session_id, account_id="alice",
                              cl_ord_id="g1", symbol="AAPL", side="buy", ord_type="limit", quantity=D(10),
                              price=D(100), leaves_qty=D(10)))  # fmt: skip
    # WHEN the client sends the order again (PossResend or plain)
    sent = world.send("alice", nos("g1", **poss_resend))
    # THEN it is entered once; a further copy is then a duplicate
    assert [tags(s, 150, 39) for s in sent] == [("A", "A"), ("0", "0")]
    assert [tags(s, 150, 103) for s in world.send("alice", nos("g1"))] == [("8", "6")]
    assert len([e for e in world.venue.events if e.type == "accepted"]) == 1


def test_a_clordid_of_an_http_order_is_refused_without_taking_that_order() -> None:
    # GIVEN alice placed an order over HTTP with client_order_id h1
    world = fix_world()
    request = NewOrderRequest(symbol="AAPL", side="buy", type="limit", quantity=D(5), price=D(99), client_order_id="h1")
    http_order, _ = world.venue.service.place("alice", request)
    # WHEN the FIX session sends a NewOrderSingle with ClOrdID h1 and other terms
    sent = world.send("alice", nos("h1", qty="10", price="100"))
    # THEN it is rejected as a reused id, and the gateway keeps no record of the HTTP order
    assert [tags(s, 150, 39, 37) for s in sent] == [("8", "8", "NONE")]
    assert "client_order_id_reused" in (sent[0].get(58) or "")
    assert world.store.get(http_order.order_id) is None
    # AND the HTTP order's fill is not reported to the FIX session, which cannot cancel it
    world.send("bob", nos("x1", side="2", qty="5", price="99"))
    assert world.session("alice").take() == []
    cancel = world.send("alice", msg("F", (41, "h1"), (11, "h2"), (55, "AAPL"), (54, "1")))
    assert [(s.msg_type, s.get(102)) for s in cancel] == [("9", "1")]


def test_drain_all_waits_for_the_orders_of_every_session_being_entered() -> None:
    # GIVEN orders of alice and bob handed to entry tasks
    world = fix_world()

    async def shutdown() -> None:
        await world.app.on_message(world.session("alice"), nos("a1", price="99"))
        await world.app.on_message(world.session("bob"), nos("b1", side="2", price="101"))
        # WHEN the gateway drains before stopping
        await world.app.drain_all()

    asyncio.run(shutdown())
    # THEN both were placed and acknowledged
    assert [s.get(150) for s in world.session("alice").take()] == ["A"]
    assert [s.get(150) for s in world.session("bob").take()] == ["A"]
    assert {o.client_order_id for o in world.venue.orders.list_by_account("alice", None, 10)} == {"a1"}


@pytest.mark.parametrize(
    ("kind", "cl_ord_id", "orig"),
    [
        pytest.param("F", "x" * 3000, "v1", id="cancel-3kb-clordid"),
        pytest.param("G", "x" * 65, "v1", id="replace-65-char-clordid"),
        pytest.param("F", "v2", "v1" + "x" * 100, id="cancel-long-origclordid"),
    ],
)
def test_a_cancel_or_replace_with_a_clordid_over_64_characters_gets_order_cancel_reject_99(
    kind: str, cl_ord_id: str, orig: str
) -> None:
    # GIVEN alice has an open order v1
    world = fix_world()
    world.send("alice", nos("v1", qty="10", price="100"))
    # WHEN she cancels or replaces it under a ClOrdID (or naming an OrigClOrdID) longer than 64 characters
    fields = [(41, orig), (11, cl_ord_id), (55, "AAPL"), (54, "1")]
    if kind == "G":
        fields += [(38, "8"), (40, "2"), (44, "100")]
    sent = world.send("alice", msg(kind, *fields))
    # THEN OrderCancelReject, CxlRejReason 99, answering the request kind; the order stays open
    response = "1" if kind == "F" else "2"
    assert [(s.msg_type, *tags(s, 102, 434)) for s in sent] == [("9", "99", response)]
    assert world.venue.orders.get(derive_order_id("alice", "v1")).status == "new"  # type: ignore[union-attr]
    assert world.store.lookup("alice", cl_ord_id) is None
