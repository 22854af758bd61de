"""Order entries stopped half way, and the entry sweep that closes them, in memory: the real order
service, pre-trade risk, matching engine and both consumers' code (``orders_fakes.venue``).

An entry stores the order ``pending_new``, writes its reservation, then sends its command. An
invocation can stop anywhere (a Lambda timeout, a crash): ``Stopped`` below is raised past every
``except Exception`` of the service, as a process that dies runs no compensation. Each test
reads GIVEN / WHEN / THEN."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.errors import Unavailable
from nexus_common.events import ENTRY_INCOMPLETE
from nexus_common.risk import held_reservation_ids
from nexus_matching.config import EngineConfig
from nexus_matching.engine import MatchingEngine
from nexus_orders import service as service_module
from nexus_orders.order import OPEN_STATUSES
from nexus_orders.repo import ENTRY_SHARD
from nexus_orders.service import ENTRY_DEADLINE, ENTRY_TIME_LIMIT
from orders_fakes import INSTRUMENT, SYMBOL, Venue, oco, order, venue

D = Decimal
RICH = "1000000.00"


class Stopped(BaseException):
    """The invocation ends here: nothing after it runs (no ``except Exception`` catches it)."""


@pytest.fixture
def v() -> Venue:
    world = venue(alice=RICH, bob=RICH)
    # a trade at 100.00 gives the collar its reference
    world.service.place("bob", order(side="sell", type="limit", quantity="1", price="100.00"))
    world.service.place("alice", order(side="buy", type="limit", quantity="1", price="100.00"))
    return world


def stop_at(v: Venue, where: str) -> None:
    """Make the next entry stop ``before`` or ``after`` its reservation write, or ``after_send``
    (the command reached the engine, the invocation ended before answering)."""
    book, reserve = v.book, v.book.reserve

    def reserve_then(reservation: Any, limits: Any) -> None:
        book.reserve = reserve  # type: ignore[method-assign]  # the next entry is a normal one
        if where == "before":
            raise Stopped
        reserve(reservation, limits)
        if where == "after":
            raise Stopped

    book.reserve = reserve_then  # type: ignore[method-assign]


def stuck_entry(v: Venue, where: str, **fields: Any) -> Any:
    """alice's buy 10 @ 99.00 whose entry stops ``where`` (see ``stop_at``): the order it left."""
    stop_at(v, where)
    with pytest.raises(Stopped):
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00", **fields))
    [stuck] = v.open_orders("alice")
    assert stuck.status == "pending_new"
    return stuck


def closed_and_given_back(v: Venue, order_id: str) -> None:
    """The order ended rejected (entry_incomplete) and alice holds nothing: reconciled."""
    after = v.orders.get(order_id)
    assert after is not None and (after.status, after.reject_reason) == ("rejected", ENTRY_INCOMPLETE)
    assert held(v, "alice") == (0, 0, set())
    assert v.accounts["alice"].available == v.accounts["alice"].cash
    reconciled(v)


def held(v: Venue, name: str) -> tuple[Decimal, Decimal, set[str]]:
    account = v.accounts[name]
    return account.reserved_cash, account.reserved_buy, set(account.reservations)


def sweep_later(v: Venue, seconds: int = ENTRY_DEADLINE + 1) -> list[Any]:
    v.clock.now += timedelta(seconds=seconds)
    return v.sweep()


def reconciled(v: Venue) -> None:
    """What ``nexus reconcile`` checks of reservations: the ids held are those of open orders."""
    items = list(v.orders.items.values())
    expected = held_reservation_ids(items, OPEN_STATUSES)
    for name, account in v.accounts.items():
        assert account.reservations == expected.get(name, set()), name


# -- where an entry stops ------------------------------------------------------------------------


def test_an_entry_stopped_before_its_reservation_is_rejected_and_holds_nothing(v: Venue) -> None:
    # GIVEN an entry that stops after storing the order, before its reservation write
    stuck = stuck_entry(v, "before")
    assert held(v, "alice") == (0, 0, set())
    # WHEN the sweep runs after the entry deadline
    fences = sweep_later(v)
    # THEN the engine, which never received the order, rejects it, and nothing was given back
    assert [f.order_id for f in fences] == [stuck.order_id]
    closed_and_given_back(v, stuck.order_id)


def test_an_entry_stopped_after_its_reservation_gets_it_back(v: Venue) -> None:
    # GIVEN an entry that stops after its reservation write, before its command is sent
    stuck = stuck_entry(v, "after")
    assert held(v, "alice")[2] == {stuck.order_id}
    reconciled(v)  # a pending_new order holds it: no break meanwhile
    # WHEN the sweep runs after the deadline
    sweep_later(v)
    # THEN the order is rejected and exactly its reservation is given back
    closed_and_given_back(v, stuck.order_id)


def test_a_refused_cancel_of_a_stopped_entry_leaves_it_for_the_sweep(v: Venue) -> None:
    # GIVEN an entry stopped after its reservation, which the client then tries to cancel: the
    # engine, which never received the order, refuses the cancel
    stuck = stuck_entry(v, "after")
    v.service.cancel("alice", stuck.order_id)
    assert [e.type for e in v.events][-1] == "cancel_rejected"
    # THEN the refusal does not take the entry out of the sweep's index: the sweep closes it
    assert ENTRY_SHARD in v.orders.items[stuck.order_id]
    sweep_later(v)
    closed_and_given_back(v, stuck.order_id)


def test_a_late_new_after_the_fence_is_dropped_by_the_engine(v: Venue) -> None:
    # GIVEN an entry whose command is fenced before it arrives (a stalled sender)
    stop_at(v, "after")
    with pytest.raises(Stopped):
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00", client_order_id="c2"))
    [stuck] = v.open_orders("alice")
    sweep_later(v)
    # WHEN the order's new command arrives after all (a retry with the same client_order_id)
    again, created = v.service.place(
        "alice", order(side="buy", type="limit", quantity="10", price="99.00", client_order_id="c2"))
    # THEN the first order is answered as it ended, and nothing more is entered or reserved
    assert (again.order_id, again.status, created) == (stuck.order_id, "rejected", False)
    raw = v.engine.process({"type": "new", "command_id": "late", "order_id": stuck.order_id, "account_id": "alice",
                            "symbol": SYMBOL, "side": "buy", "order_type": "limit", "price": "99.00",
                            "quantity": "10", "ts": "2026-03-05T15:30:00.000000Z"})  # fmt: skip
    assert raw == []
    assert held(v, "alice") == (0, 0, set())


def test_an_entry_whose_command_reached_the_engine_is_left_as_it_trades(v: Venue) -> None:
    # GIVEN an order sent to the engine, whose events the consumers have not applied yet (lag)
    lagging: list[Any] = []
    deliver = v.deliver
    v.deliver = lagging.extend  # type: ignore[method-assign]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="4", price="99.00"))
    # WHEN the sweep fences it, the events still on their way
    fences = sweep_later(v)
    assert placed.order_id in [f.order_id for f in fences]
    v.deliver = deliver  # type: ignore[method-assign]
    deliver(lagging)
    # THEN the engine knew the order: the fence changed nothing, the order trades on
    after = v.orders.get(placed.order_id)
    assert after is not None and (after.status, after.remaining_quantity) == ("partially_filled", D(6))
    assert held(v, "alice")[2] == {placed.order_id}
    assert ENTRY_SHARD not in v.orders.items[placed.order_id]
    reconciled(v)


def test_a_fence_after_the_engine_forgot_the_order_changes_nothing_it_ended(v: Venue) -> None:
    # GIVEN an engine whose window of seen ids holds one id, and an order it filled, whose
    # events reach the consumers only after the sweep ran (a long lag)
    v.engine = MatchingEngine({SYMBOL: INSTRUMENT}, config=EngineConfig(dedup_window=1))
    lagging: list[Any] = []
    deliver = v.deliver
    v.deliver = lagging.extend  # type: ignore[method-assign]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="10", price="99.00"))
    for price in ("100.50", "101.00", "101.50"):  # later ids push the order out of the window
        v.service.place("bob", order(side="sell", type="limit", quantity="1", price=price))
    # WHEN the sweep fences it (the engine no longer knows it: a rejection comes out)
    sweep_later(v)
    v.deliver = deliver  # type: ignore[method-assign]
    deliver(lagging)
    # THEN the order stays filled, and no reservation is given back twice
    after = v.orders.get(placed.order_id)
    assert after is not None and after.status == "filled"
    rejected = {e.order_id: e.reason for e in v.events if e.type == "rejected"}
    assert rejected[placed.order_id] == ENTRY_INCOMPLETE and set(rejected.values()) == {ENTRY_INCOMPLETE}
    assert {v.orders.get(oid).status for oid in rejected} == {"filled"}  # type: ignore[union-attr]
    assert v.accounts["alice"].reserved_cash == 0 and v.accounts["alice"].reserved_buy == 0
    assert v.accounts["alice"].reservations == set()
    reconciled(v)


# -- the sweep itself -----------------------------------------------------------------------------


def test_the_sweep_waits_for_the_deadline_and_fences_each_entry_once(v: Venue) -> None:
    # GIVEN an entry stopped before its reservation
    stop_at(v, "before")
    with pytest.raises(Stopped):
        v.service.place("alice", order(side="sell", type="limit", quantity="5", price="101.00"))
    # WHEN the sweep runs before the deadline, then after it, then again
    early = sweep_later(v, ENTRY_DEADLINE - 5)
    late = sweep_later(v, 10)
    again = sweep_later(v, 60)
    # THEN only the run after the deadline fences it, once
    assert (len(early), len(late), len(again)) == (0, 1, 0)


def test_a_backlog_of_entries_drains_in_bounded_runs_each_fenced_once(
    v: Venue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN twenty entries stopped before their reservation, and runs that read two entries per
    # index partition
    monkeypatch.setattr(service_module, "FENCES_PER_SHARD", 2)
    for _ in range(20):
        stop_at(v, "before")
        with pytest.raises(Stopped):
            v.service.place("alice", order(side="buy", type="limit", quantity="1", price="99.00"))
    # WHEN the sweep runs, a minute apart, until a run fences nothing
    runs = [sweep_later(v)]
    while runs[-1]:
        runs.append(sweep_later(v, 60))
    # THEN each run fenced at most two entries per partition, and every entry was fenced once
    fenced = [f.order_id for run in runs for f in run]
    assert max(len(run) for run in runs) <= 2 * v.orders.entry_shards and len(runs) > 2
    assert sorted(fenced) == sorted({o.order_id for o in v.orders.list_by_account("alice", None, 100)
                                     if o.reject_reason == ENTRY_INCOMPLETE})  # fmt: skip
    assert len(fenced) == len(set(fenced)) == 20
    assert v.open_orders("alice") == [] and held(v, "alice") == (0, 0, set())


def test_the_sweep_fences_nothing_on_a_healthy_venue(v: Venue) -> None:
    # GIVEN orders entered, some resting, some filled
    v.service.place("alice", order(side="buy", type="limit", quantity="3", price="98.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="3", price="98.00"))
    v.service.place("bob", order(side="sell", type="limit", quantity="3", price="105.00"))
    # WHEN the sweep runs  THEN nothing is pending: no fence
    assert sweep_later(v) == []
    assert all(ENTRY_SHARD not in item for item in v.orders.items.values())


def test_an_oco_group_stopped_after_its_reservation_is_fenced_once(v: Venue) -> None:
    # GIVEN an OCO group stored and reserved, stopped before its command
    stop_at(v, "after")
    with pytest.raises(Stopped):
        v.service.place_oco("alice", oco(side="sell", quantity="5", take_profit={"price": "105.00"},
                                         stop_loss={"stop_price": "95.00"}))  # fmt: skip
    legs = v.open_orders("alice")
    assert len(legs) == 2 and len(held(v, "alice")[2]) == 1
    sellable = v.accounts["alice"].sellable
    # WHEN the sweep runs
    fences = sweep_later(v)
    # THEN one fence for the group; both legs end rejected and the group's reservation is back
    assert [f.order_id for f in fences] == [legs[0].group_id]
    assert {v.orders.get(leg.order_id).status for leg in legs} == {"rejected"}  # type: ignore[union-attr]
    assert held(v, "alice") == (0, 0, set()) and v.accounts["alice"].sellable == sellable + 5
    reconciled(v)


# -- a retry of a stopped entry -------------------------------------------------------------------


def stopped_then_retried(v: Venue, where: str) -> tuple[Any, bool, int]:
    """An entry that stops ``where`` (see ``stop_at``), then the client's retry with the same
    client_order_id: the order answered, whether it was created, the engine events before it."""
    stop_at(v, where)
    request = order(side="buy", type="limit", quantity="10", price="99.00", client_order_id=f"c-{where}")
    with pytest.raises(Stopped):
        v.service.place("alice", request)
    sent = len(v.events)
    again, created = v.service.place("alice", request)
    return again, created, sent


def test_a_retry_of_an_entry_stopped_after_its_reservation_sends_it(v: Venue) -> None:
    # GIVEN an entry stopped after its reservation  WHEN the client retries
    again, created, _ = stopped_then_retried(v, "after")
    # THEN the stored order is sent (its reservation is in place): the engine accepts it
    assert created is False
    assert v.orders.get(again.order_id).status == "new"  # type: ignore[union-attr]
    assert held(v, "alice")[2] == {again.order_id}
    assert sweep_later(v) == []  # the engine took it: nothing left for the sweep
    reconciled(v)


def test_a_retry_of_an_entry_stopped_before_its_reservation_is_not_sent(v: Venue) -> None:
    # GIVEN an entry stopped before its reservation  WHEN the client retries: the order is
    # stored, nothing is reserved for it
    again, created, sent = stopped_then_retried(v, "before")
    # THEN it is answered as stored and not sent (an order nothing was reserved for never trades);
    # the sweep then ends it
    assert (again.status, created, len(v.events)) == ("pending_new", False, sent)
    sweep_later(v)
    assert v.orders.get(again.order_id).status == "rejected"  # type: ignore[union-attr]
    assert held(v, "alice") == (0, 0, set())


# -- failures the entry sees ------------------------------------------------------------------------


def test_a_failed_send_keeps_the_order_for_the_engine_to_judge(v: Venue) -> None:
    # GIVEN a send that fails (the record may or may not have reached the stream)
    v.fail_next_send = True
    with pytest.raises(Unavailable) as failed:
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    assert failed.value.code == "command_not_sent" and "entry_incomplete" in failed.value.message
    [kept] = v.open_orders("alice")
    assert kept.status == "pending_new" and held(v, "alice")[2] == {kept.order_id}
    # WHEN the sweep runs  THEN the engine never got it: rejected, reservation back
    sweep_later(v)
    assert v.orders.get(kept.order_id).status == "rejected"  # type: ignore[union-attr]
    assert held(v, "alice") == (0, 0, set())


def slow_clock(v: Venue, at: int) -> Callable[[], Any]:
    """The venue's clock, jumping past the entry's time limit at its ``at``-th reading."""
    readings = iter(range(1_000))
    tick = v.clock

    def read() -> Any:
        now = tick()
        return now + timedelta(seconds=ENTRY_TIME_LIMIT + 1) if next(readings) >= at else now

    return read


@pytest.mark.parametrize("at", [1, 2, 3])
def test_an_entry_past_its_time_limit_stops_before_writing_more(v: Venue, at: int) -> None:
    # GIVEN an entry that takes longer than its time limit before storing its order (at=1),
    # before its reservation (at=2) or before its send (at=3)
    v.service.clock = slow_clock(v, at)
    with pytest.raises(Unavailable) as late:
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    # THEN it writes nothing more: 503 entry_timeout; before the reservation the order is not
    # kept, after it the order waits for the sweep (the engine never got it)
    assert late.value.code == "entry_timeout"
    kept = v.open_orders("alice")
    assert [o.status for o in kept] == ([] if at < 3 else ["pending_new"])
    v.service.clock = v.clock
    sweep_later(v)
    assert held(v, "alice") == (0, 0, set())
    reconciled(v)


def test_an_unknown_reservation_outcome_is_left_to_the_engine(v: Venue) -> None:
    # GIVEN a reservation write that applies but answers an error (its answer lost)
    book = v.book
    reserve, release = book.reserve, book.release
    released: list[Any] = []

    def reserve_lost(reservation: Any, limits: Any) -> None:
        reserve(reservation, limits)
        raise ConnectionError("read timeout")

    book.reserve, book.release = reserve_lost, released.append  # type: ignore[method-assign,assignment]
    with pytest.raises(Unavailable) as unknown:
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    book.reserve, book.release = reserve, release  # type: ignore[method-assign]
    # THEN 503, nothing given back by the entry (a concurrent retry may have found it held and
    # sent the order), and the order that names the reservation is kept
    assert unknown.value.code == "risk_unavailable" and released == []
    [kept] = v.open_orders("alice")
    assert held(v, "alice")[2] == {kept.order_id}
    reconciled(v)
    # WHEN the sweep runs  THEN the engine never got it: rejected, the reservation given back
    sweep_later(v)
    assert v.orders.get(kept.order_id).status == "rejected"  # type: ignore[union-attr]
    assert held(v, "alice") == (0, 0, set())


# -- replaces that stopped half way --------------------------------------------------------------


def test_a_replace_stopped_before_its_send_is_fenced_after_the_deadline_and_given_back(v: Venue) -> None:
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN alice's resting buy of 10, whose replace to 20 stops once begun, before its send
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    before = held(v, "alice")
    publish = v.publish

    def stopped(command: Any) -> None:
        v.publish = publish  # type: ignore[method-assign]
        raise Stopped

    v.publish = stopped  # type: ignore[method-assign]
    with pytest.raises(Stopped):
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(20)))
    stuck = v.orders.get(placed.order_id)
    assert stuck is not None and stuck.replace_pending and held(v, "alice")[0] > before[0]
    # WHEN the sweep runs before the deadline, then after it, then again
    assert sweep_later(v, ENTRY_DEADLINE - 1) == []
    fenced = sweep_later(v, 2)
    # THEN the replace got one fence, the engine refused it (it never received it), and the
    # consumers closed it: not pending, out of the index, the difference given back
    assert [(f.order_id, f.replace_command_id) for f in fenced] == [(placed.order_id, f"{placed.order_id}:replace:1")]
    after = v.orders.get(placed.order_id)
    assert after is not None and not after.replace_pending and after.quantity == 10
    assert after.replace_reject_reason == ENTRY_INCOMPLETE
    assert "replace_shard" not in v.orders.items[placed.order_id]
    assert held(v, "alice") == before
    assert sweep_later(v, 60) == []
    reconciled(v)


def test_a_replace_whose_fence_could_not_be_sent_is_fenced_by_the_sweep(v: Venue) -> None:
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN a replace whose send and fence both failed (it stays pending, its reservation held)
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    before = held(v, "alice")
    v.fail_next_send = v.fail_after_next = True
    with pytest.raises(Unavailable):
        v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(20)))
    assert v.orders.get(placed.order_id).replace_pending  # type: ignore[union-attr]
    # WHEN the sweep runs after the deadline
    fenced = sweep_later(v)
    # THEN the engine refused the replace, and everything it reserved is back
    assert [f.replace_command_id for f in fenced] == [f"{placed.order_id}:replace:1"]
    assert not v.orders.get(placed.order_id).replace_pending  # type: ignore[union-attr]
    assert held(v, "alice") == before
    reconciled(v)


def test_a_replace_the_engine_answered_leaves_the_sweeps_index(v: Venue) -> None:
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN a replace the engine applied
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(12)))
    assert "replace_shard" not in v.orders.items[placed.order_id]
    # AND one it refused: the order filled while the replace was on its way
    v.service.place("bob", order(side="sell", type="limit", quantity="12", price="99.00"))
    v.orders.items[placed.order_id].update(status="new", remaining_quantity=D(12), filled_quantity=D(0))
    v.service.replace("alice", placed.order_id, ReplaceOrderRequest(quantity=D(15)))
    assert [e.type for e in v.events][-1] == "replace_rejected"
    # THEN neither waits in the index, and the sweep fences nothing
    assert "replace_shard" not in v.orders.items[placed.order_id]
    assert sweep_later(v) == []
