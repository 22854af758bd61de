"""The entry sweep on the template's tables under moto: the sparse ``pending-entries`` index of the
orders table, the sweep's progress item, its fences on ``order-commands``, and its handler.
Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import FakeLambdaContext
from nexus_common.events import FenceCommand, iso, utc_now
from nexus_common.settings import reset_lazy
from nexus_orders import on_entry_sweep
from nexus_orders.folding import OrderChange
from nexus_orders.order import Order
from nexus_orders.repo import ENTRY_SHARD, SWEEP_KEY, DynamoOrderRepository, KinesisCommandPublisher
from nexus_orders.service import ENTRY_DEADLINE, EntrySweep
from orders_fakes import World

D = Decimal
T0 = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def world(aws: Any) -> World:
    return World(aws)


def stored(world: World, order_id: str, at: datetime, **fields: Any) -> Order:
    """An order stored ``pending_new`` at ``at``, as an entry stores it."""
    order = Order.model_validate({
        "order_id": order_id, "account_id": "acc_1", "symbol": "AAPL", "side": "buy", "type": "limit",
        "quantity": D(10), "price": D("100.00"), "time_in_force": "gtc", "status": "pending_new",
        "remaining_quantity": D(10), "created_at": iso(at), "updated_at": iso(at), **fields,
    })  # fmt: skip
    assert repo(world).put_new(order)
    return order


def repo(world: World) -> DynamoOrderRepository:
    return DynamoOrderRepository(world.env["ORDERS_TABLE"])


def pending(world: World, since: str | None, before: str) -> list[str]:
    """The ids the index holds between the bounds, every partition read."""
    table = repo(world)
    return [e.order_id for shard in range(table.entry_shards) for e in table.pending_entries(shard, since, before, 100)]


def sweep_at(world: World, now: datetime) -> list[FenceCommand]:
    publisher = KinesisCommandPublisher(world.env["ORDER_COMMANDS_STREAM"])
    return EntrySweep(repo(world), publisher, lambda: now).run()


def fences(world: World) -> list[Any]:
    return [c for c in world.commands() if c.type == "fence"]


def test_a_pending_entry_is_in_the_index_until_the_first_engine_event_reaches_it(world: World) -> None:
    # GIVEN two orders stored pending_new and a routed one
    first = stored(world, "o-1", T0)
    stored(world, "o-2", T0 + timedelta(seconds=30))
    stored(world, "o-routed", T0, routing={"strategy": "best_price"})
    item = world.ddb.Table(world.env["ORDERS_TABLE"]).get_item(Key={"order_id": "o-1"})["Item"]
    assert item[ENTRY_SHARD].startswith("e")
    # THEN the index holds the engine's two, between the bounds asked for (both included)
    assert sorted(pending(world, None, iso(T0 + timedelta(minutes=1)))) == ["o-1", "o-2"]
    assert pending(world, iso(T0), iso(T0)) == ["o-1"]
    # WHEN the orders consumer applies the engine's accepted event
    applied = repo(world).apply(OrderChange(order_id=first.order_id, account_id="acc_1", seq=1, event_id="AAPL-1",
                                            values={"status": "new"}))  # fmt: skip
    # THEN the order leaves the index
    assert applied.applied and applied.order is not None and applied.order.status == "new"
    assert pending(world, None, iso(T0 + timedelta(minutes=1))) == ["o-2"]


def test_a_guarded_change_applies_only_in_its_status(world: World) -> None:
    # GIVEN an order the engine accepted
    stored(world, "o-1", T0)
    repo(world).apply(OrderChange("o-1", "acc_1", 1, "AAPL-1", {"status": "new"}))
    # WHEN a rejection guarded on pending_new comes (a fence the engine no longer knew)
    late = repo(world).apply(OrderChange("o-1", "acc_1", 2, "AAPL-2", {"status": "rejected"},
                                         only_status="pending_new"))  # fmt: skip
    # THEN it is not applied: the order stays new
    assert not late.applied and late.order is not None and late.order.status == "new"


def test_a_fences_refusal_of_a_replace_applies_only_while_that_replace_waits(world: World) -> None:
    # GIVEN an order the engine accepted, with replace 1 begun
    stored(world, "o-1", T0)
    repo(world).apply(OrderChange("o-1", "acc_1", 1, "AAPL-1", {"status": "new"}))
    repo(world).begin_replace(repo(world).get("o-1"), 1, None, None, T0)  # type: ignore[arg-type]

    def refusal(seq: int, number: int) -> Any:
        return repo(world).apply(OrderChange("o-1", "acc_1", seq, f"AAPL-{seq}", {"replace_reject_reason": "x"},
                                             remove=("replace_pending",), only_replace=number))  # fmt: skip

    # WHEN a fence's refusal of replace 2 comes, then of replace 1, then of replace 1 again
    # THEN only the refusal of the replace that waits applies
    assert not refusal(2, 2).applied
    first = refusal(3, 1)
    assert first.applied and first.order is not None and not first.order.replace_pending
    assert not refusal(4, 1).applied


def test_the_sweep_fences_each_stale_entry_once_on_its_symbol(world: World) -> None:
    # GIVEN an entry stored at T0, an OCO group's two legs, and one stored a minute later
    stored(world, "o-1", T0)
    for leg in ("tp", "sl"):
        stored(world, f"oco-g1.{leg}", T0, group_id="oco-g1", leg="take_profit" if leg == "tp" else "stop_loss")
    stored(world, "o-late", T0 + timedelta(minutes=1))
    # WHEN the sweep runs at the deadline of the first ones, then a minute later, then again
    first = sweep_at(world, T0 + timedelta(seconds=ENTRY_DEADLINE))
    second = sweep_at(world, T0 + timedelta(seconds=ENTRY_DEADLINE + 60))
    third = sweep_at(world, T0 + timedelta(seconds=ENTRY_DEADLINE + 120))
    # THEN each entry is fenced once (an OCO group as one), on its symbol's shard
    assert sorted(f.order_id for f in first) == ["o-1", "oco-g1"]
    assert [f.order_id for f in second] == ["o-late"] and third == []
    sent = fences(world)
    assert sorted(f.order_id for f in sent) == ["o-1", "o-late", "oco-g1"]
    assert {r["key"] for r in world.records("ORDER_COMMANDS_STREAM")} == {"AAPL"}
    assert {f.command_id for f in sent} == {"fence-o-1", "fence-oco-g1", "fence-o-late"}


def test_the_sweeps_progress_is_not_an_order(world: World) -> None:
    # GIVEN a sweep run (its progress item in the orders table)
    sweep_at(world, T0)
    table = world.ddb.Table(world.env["ORDERS_TABLE"])
    assert table.get_item(Key={"order_id": SWEEP_KEY})["Item"]["through"] == iso(T0 - timedelta(seconds=ENTRY_DEADLINE))
    # THEN no listing of orders shows it, and the repository does not take it for one
    status, answer = world.request("GET", "/v1/orders")
    assert status == 200 and answer["orders"] == []
    assert repo(world).get(SWEEP_KEY) is None


def test_the_handler_runs_the_sweep_with_the_templates_settings(world: World, aws: Any) -> None:
    # GIVEN the function's environment from the template, and an entry stored long enough ago
    aws.use_function_env("EntrySweepFunction")
    reset_lazy()
    stored(world, "o-old", utc_now() - timedelta(seconds=ENTRY_DEADLINE + 30))
    stored(world, "o-new", utc_now())
    # WHEN the schedule invokes it
    answer = on_entry_sweep.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, FakeLambdaContext())
    # THEN the stale entry is fenced, the fresh one left
    assert answer == {"fenced": 1}
    assert [f.order_id for f in fences(world)] == ["o-old"]


def test_a_replace_waits_in_its_index_until_the_engines_answer_and_is_fenced_when_late(world: World) -> None:
    from nexus_orders.folding import PENDING_REPLACE
    from nexus_orders.repo import PENDING_REPLACES_INDEX

    # GIVEN two orders the engine accepted, and a replace begun on each, a minute apart
    for order_id in ("o-1", "o-2"):
        stored(world, order_id, T0)
        repo(world).apply(OrderChange(order_id, "acc_1", 1, "AAPL-1", {"status": "new"}))
    first = repo(world).begin_replace(repo(world).get("o-1"), 1, None, None, T0)  # type: ignore[arg-type]
    repo(world).begin_replace(repo(world).get("o-2"), 1, None, None, T0 + timedelta(minutes=1))  # type: ignore[arg-type]
    assert first is not None and first.replace_pending
    table = repo(world)
    waiting = [r for shard in range(table.entry_shards) for r in table.pending_replaces(shard, iso(T0), 100)]
    assert [(r.order_id, r.number, r.begun_at) for r in waiting] == [("o-1", 1, iso(T0))]
    # WHEN the sweep runs past the first one's deadline
    fenced = sweep_at(world, T0 + timedelta(seconds=ENTRY_DEADLINE))
    # THEN it fenced that replace on its symbol's shard, naming the replace's command id
    assert [(f.order_id, f.replace_command_id, f.command_id) for f in fenced] == [
        ("o-1", "o-1:replace:1", "fence-o-1:replace:1")]
    assert [(f.order_id, f.replace_command_id) for f in fences(world)] == [("o-1", "o-1:replace:1")]
    # AND the engine's answer, applied, takes the order out of the index (the query reads the index)
    table.apply(OrderChange("o-1", "acc_1", 2, "AAPL-2", {"replace_reject_reason": "entry_incomplete"},
                            remove=("replace_pending", *PENDING_REPLACE)))  # fmt: skip
    later = iso(T0 + timedelta(hours=1))
    assert [r.order_id for shard in range(8) for r in table.pending_replaces(shard, later, 100)] == ["o-2"]
    items = world.ddb.Table(world.env["ORDERS_TABLE"]).scan(IndexName=PENDING_REPLACES_INDEX)["Items"]
    assert [i["order_id"] for i in items] == ["o-2"]
