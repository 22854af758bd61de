"""The risk consumer books a routed order's external executions like the engine's fills: each
``venue_fill`` moves the account's cash by the fill and the venue's own fee (negative: a rebate),
its holdings, and releases the parent's reservation in proportion; ``route_ended`` gives back
what will never fill. The releases add up to exactly what the parent reserved, and a redelivery
changes nothing.

In memory: the parent is placed through the real ``OrderService`` and pre-trade risk of
``orders_fakes`` (stored and reserved under its own id, like any order) and routed instead of
sent to the engine; the engine's events for it are applied by the real risk domain
(``changes_of``) to the account under its watermark. Under moto: the orders API reserves, the
risk consumer's handler applies the events to the account item. Tests read GIVEN / WHEN / THEN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_common.risk import RESERVATIONS, reserve_amount, reserve_rate
from nexus_orders.commands import AnyOrderCommand
from nexus_risk.domain import changes_of, prefetch_ids
from orders_fakes import FEE_BUFFER, FEES, LIMITS, Account, Venue, World, order

D = Decimal
TS = "2026-03-05T15:00:00.000000Z"
CASH = D("100000.00")


@dataclass
class RoutedVenue(Venue):
    """The in-memory venue whose orders go to the router, not to the engine: the orders API
    stores and reserves each one and its command is kept; the engine's events for the parent
    are built by the test, as the engine emits them from the router's ``routed_fills``."""

    routed: list[AnyOrderCommand] = field(default_factory=list)
    seq: int = 0

    def publish(self, command: AnyOrderCommand) -> None:
        self.routed.append(command)

    def place(self, account_id: str, **fields: Any) -> str:
        placed, created = self.service.place(account_id, order(type="limit", **fields))
        assert created and self.orders.facts(placed.order_id) is not None
        return placed.order_id

    def event(self, kind: str, order_id: str, account_id: str, side: str, **fields: str) -> Any:
        self.seq += 1
        return ENGINE_EVENT_ADAPTER.validate_python({
            "event_id": f"AAPL-{self.seq}", "type": kind, "version": 1, "ts": TS, "symbol": "AAPL",
            "seq": self.seq, "epoch": 0, "correlation_id": f"route-{order_id}", "order_id": order_id,
            "account_id": account_id, "side": side, **fields,
        })  # fmt: skip

    def fill(self, parent: str, account_id: str, side: str, *, qty: str, price: str, fee: str, liquidity: str,
             filled: str, notional: str, left: str) -> Any:  # fmt: skip
        return self.event("venue_fill", parent, account_id, side, child_id=f"{parent}-c{self.seq + 1}",
                          venue="SIM-ARCA", mic="XSIA", price=price, quantity=qty, liquidity=liquidity, fee=fee,
                          report_id=f"r{self.seq + 1}", filled_quantity=filled, filled_notional=notional,
                          remaining_quantity=left)  # fmt: skip

    def ended(self, parent: str, account_id: str, side: str, *, qty: str, filled: str, notional: str, left: str,
              reason: str) -> Any:  # fmt: skip
        return self.event("route_ended", parent, account_id, side, quantity=qty, filled_quantity=filled,
                          filled_notional=notional, remaining_quantity=left, reason=reason)  # fmt: skip

    def apply(self, *events: Any) -> None:
        """One engine step reaches the risk consumer (its domain, under the account's watermark)."""
        for change in changes_of(list(events), self.orders.facts, FEES):
            self.accounts[change.account_id].apply(change)


def routed_venue(**holdings: str) -> RoutedVenue:
    accounts = {"alice": Account(CASH, CASH)}
    if holdings:
        shares = D(holdings["shares"])
        accounts["alice"] = Account(CASH, CASH, pos=shares, sellable=shares, buying=shares)
    v = RoutedVenue(accounts)
    v.market.last = D("50.00")  # the reference of the price collar
    return v


def snapshot(account: Account) -> tuple[Any, ...]:
    return (account.cash, account.available, account.pos, account.sellable, account.buying, account.seq,
            frozenset(account.reservations))  # fmt: skip


RATE = reserve_rate(D("50.00"), LIMITS.fee_buffer)  # 50.015 per share: the parent's limit price, fees covered


def test_a_routed_buy_filled_twice_then_ended_books_the_fills_and_releases_exactly_its_reservation() -> None:
    # GIVEN alice (100,000 USD) whose routed buy 100 AAPL @ 50.00 the orders API stored and reserved
    v = routed_venue()
    alice = v.accounts["alice"]
    parent = v.place("alice", side="buy", quantity="100", price="50.00", time_in_force="ioc")
    assert [c.order_id for c in v.routed] == [parent]  # routed: the engine never saw the order
    reserved = reserve_amount(D(100), RATE)
    assert reserved == D("5001.50")
    assert (alice.cash, alice.available, alice.buying, alice.reservations) == (CASH, D("94998.50"), 100, {parent})
    released: list[Decimal] = []

    def step(*events: Any) -> None:
        """Apply a step and record what it released: what available cash moved beyond cash."""
        held = alice.reserved_cash
        v.apply(*events)
        released.append(held - alice.reserved_cash)

    # WHEN 30 fill on a venue at 49.99, taking liquidity for a fee of 0.27 (the schedule's 3 bp
    # would be 0.45: the venue's fee is what is booked)
    step(v.fill(parent, "alice", "buy", qty="30", price="49.99", fee="0.27", liquidity="taker", filled="30",
                notional="1499.70", left="70"))  # fmt: skip
    # THEN cash pays 1,499.70 + 0.27; 70 stay reserved at the parent's rate; 30 are held
    assert alice.cash == D("98500.03")
    assert alice.reserved_cash == reserve_amount(D(70), RATE) == D("3501.05")
    assert (alice.pos, alice.sellable, alice.buying, alice.reserved_buy) == (30, 30, 100, 70)
    assert alice.reservations == {parent}
    # WHEN 45 fill at 50.00 adding liquidity, for a rebate of 0.10 (a negative fee)
    step(v.fill(parent, "alice", "buy", qty="45", price="50.00", fee="-0.10", liquidity="maker", filled="75",
                notional="3749.70", left="25"))  # fmt: skip
    # THEN the rebate is credited: cash pays 2,250.00 less 0.10
    assert alice.cash == D("98500.03") - D("2250.00") + D("0.10") == D("96250.13")
    assert alice.reserved_cash == reserve_amount(D(25), RATE) == D("1250.38")
    assert (alice.pos, alice.sellable, alice.buying, alice.reserved_buy) == (75, 75, 100, 25)
    # WHEN the route ends with 25 that will never fill
    step(v.ended(parent, "alice", "buy", qty="100", filled="75", notional="3749.70", left="25",
                 reason="no_liquidity"))  # fmt: skip
    # THEN everything reserved is given back: the three releases sum to exactly the reservation
    assert released == [D("1500.45"), D("2250.67"), D("1250.38")]
    assert sum(released) == reserved
    assert alice.available == alice.cash == D("96250.13")
    assert (alice.pos, alice.sellable, alice.buying) == (75, 75, 75)
    assert alice.reserved_cash == alice.reserved_buy == alice.reserved_sell == 0
    assert alice.reservations == set()


def test_a_routed_sell_filled_to_zero_books_the_proceeds_and_ends_its_reservation_with_the_last_fill() -> None:
    # GIVEN alice holding 100 AAPL, whose routed sell of 60 @ 50.00 holds 60 of them
    v = routed_venue(shares="100")
    alice = v.accounts["alice"]
    parent = v.place("alice", side="sell", quantity="60", price="50.00", time_in_force="ioc")
    assert (alice.sellable, alice.reserved_sell, alice.reservations) == (40, 60, {parent})
    # WHEN 20 fill at 50.02 (fee 0.06), then 40 at 50.01 (rebate 0.08), in one engine step
    v.apply(
        v.fill(parent, "alice", "sell", qty="20", price="50.02", fee="0.06", liquidity="taker", filled="20",
               notional="1000.40", left="40"),
        v.fill(parent, "alice", "sell", qty="40", price="50.01", fee="-0.08", liquidity="maker", filled="60",
               notional="3000.80", left="0"),
    )  # fmt: skip
    # THEN the proceeds less the fee plus the rebate are cash, available at once (trade date)
    assert alice.cash == CASH + D("1000.40") - D("0.06") + D("2000.40") + D("0.08") == D("103000.82")
    assert alice.available == alice.cash
    # and 60 shares left the position; nothing is held for the sell, and its id ended with the last fill
    assert (alice.pos, alice.sellable, alice.buying) == (40, 40, 40)
    assert alice.reserved_sell == 0 and alice.reservations == set()
    # WHEN the route ends with nothing left
    after_fills = snapshot(alice)
    v.apply(v.ended(parent, "alice", "sell", qty="60", filled="60", notional="3000.80", left="0", reason="filled"))
    # THEN nothing moves but the watermark
    assert snapshot(alice)[:5] == after_fills[:5] and snapshot(alice)[6] == after_fills[6]
    assert alice.seq == v.seq


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_a_route_that_ends_with_nothing_filled_releases_all_of_the_reservation(side: str) -> None:
    # GIVEN alice (holding 100 AAPL) with a routed order of 10 @ 50.00, reserved
    v = routed_venue(shares="100")
    alice = v.accounts["alice"]
    before = snapshot(alice)
    parent = v.place("alice", side=side, quantity="10", price="50.00", time_in_force="ioc")
    assert alice.reservations == {parent}
    assert (alice.reserved_cash, alice.reserved_buy, alice.reserved_sell) == (
        (reserve_amount(D(10), RATE), 10, 0) if side == "buy" else (0, 0, 10)
    )
    # WHEN its route ends alone: no venue had liquidity
    v.apply(v.ended(parent, "alice", side, qty="10", filled="0", notional="0", left="10", reason="no_liquidity"))
    # THEN all of it is given back, and nothing else moved
    assert snapshot(alice)[:5] == before[:5]
    assert alice.reserved_cash == alice.reserved_buy == alice.reserved_sell == 0
    assert alice.reservations == set()


def test_a_routed_buy_resting_on_a_venue_holds_its_reservation_until_its_end_releases_the_rest() -> None:
    # GIVEN alice's routed gtc buy 100 @ 50.00, reserved, 30 filled on one venue
    v = routed_venue()
    alice = v.accounts["alice"]
    parent = v.place("alice", side="buy", quantity="100", price="50.00", time_in_force="gtc")
    v.apply(v.fill(parent, "alice", "buy", qty="30", price="49.99", fee="0.27", liquidity="taker", filled="30",
                   notional="1499.70", left="70"))  # fmt: skip
    held = snapshot(alice)
    # WHEN its 70 left come to rest on another venue (route_working)
    working = v.event("route_working", parent, "alice", "buy", quantity="100", venue="SIM-BATS", mic="XSIB",
                      price="50.00", time_in_force="gtc", filled_quantity="30", filled_notional="1499.70",
                      remaining_quantity="70")  # fmt: skip
    assert changes_of([working], v.orders.facts, FEES) == []
    v.apply(working)
    # THEN nothing moves: the 70 stay reserved, the reservation id stays
    assert snapshot(alice) == held and alice.reservations == {parent}
    assert alice.reserved_cash == reserve_amount(D(70), RATE)
    # WHEN 20 fill there, then the venue expires the order at the close (the end carries the totals)
    v.apply(v.fill(parent, "alice", "buy", qty="20", price="50.00", fee="-0.04", liquidity="maker", filled="50",
                   notional="2499.70", left="50"))  # fmt: skip
    v.apply(v.ended(parent, "alice", "buy", qty="100", filled="50", notional="2499.70", left="50", reason="expired"))
    # THEN the 50 that never filled are released: nothing stays reserved, the id has ended
    assert alice.reserved_cash == alice.reserved_buy == 0 and alice.reservations == set()
    assert alice.cash == CASH - D("2499.70") - D("0.27") + D("0.04") == alice.available


def test_a_redelivered_routed_step_changes_nothing() -> None:
    # GIVEN a routed buy 100 @ 50.00 whose engine step (two venue fills and the end) was applied
    v = routed_venue()
    alice = v.accounts["alice"]
    parent = v.place("alice", side="buy", quantity="100", price="50.00", time_in_force="ioc")
    step = [
        v.fill(parent, "alice", "buy", qty="30", price="49.99", fee="0.27", liquidity="taker", filled="30",
               notional="1499.70", left="70"),
        v.fill(parent, "alice", "buy", qty="45", price="50.00", fee="-0.10", liquidity="maker", filled="75",
               notional="3749.70", left="25"),
        v.ended(parent, "alice", "buy", qty="100", filled="75", notional="3749.70", left="25", reason="ioc"),
    ]  # fmt: skip
    v.apply(*step)
    applied = snapshot(alice)
    assert applied[:5] == (D("96250.13"), D("96250.13"), 75, 75, 75)
    # WHEN the same step is delivered again, then each of its events alone
    v.apply(*step)
    for event in step:
        v.apply(event)
    # THEN nothing changes: no second fill, fee or release
    assert snapshot(alice) == applied


def test_prefetch_ids_name_the_routed_parent_and_what_its_end_reads() -> None:
    # GIVEN a routed buy filled in part then ended, and a routed sell filled to zero then ended
    v = routed_venue(shares="100")
    buy = v.place("alice", side="buy", quantity="10", price="50.00", time_in_force="ioc")
    sell = v.place("alice", side="sell", quantity="5", price="50.00", time_in_force="ioc")
    events = [
        v.fill(buy, "alice", "buy", qty="4", price="50.00", fee="0.02", liquidity="taker", filled="4",
               notional="200.00", left="6"),
        v.ended(buy, "alice", "buy", qty="10", filled="4", notional="200.00", left="6", reason="ioc"),
        v.fill(sell, "alice", "sell", qty="5", price="50.00", fee="-0.01", liquidity="maker", filled="5",
               notional="250.00", left="0"),
        v.ended(sell, "alice", "sell", qty="5", filled="5", notional="250.00", left="0", reason="filled"),
    ]  # fmt: skip
    # WHEN the risk domain runs over them, recording every facts id it reads
    read: list[str] = []

    def facts(order_id: str) -> Any:
        read.append(order_id)
        return v.orders.facts(order_id)

    changes_of(events, facts, FEES)
    # THEN one batched read of prefetch_ids holds all of it: the parents and the first price
    # top-up of each (none stored: routed orders are not replaced)
    wanted = prefetch_ids(events)
    assert set(read) <= set(wanted)
    assert {buy, sell} <= set(wanted)
    assert set(wanted) == {buy, sell, f"{buy}~p1", f"{sell}~p1"}


# -- under moto: the orders API reserves, the risk consumer's handler books ---------------------


def test_the_risk_consumer_books_a_routed_buy_on_the_account_item_once(aws: Any) -> None:
    from lambda_events import FakeLambdaContext, kinesis_event
    from nexus_common.settings import reset_lazy
    from nexus_risk import on_execution_events as risk_consumer

    # GIVEN acc_1 (1,000,000 USD, 100 AAPL) whose buy 100 @ 100.00 the orders API stored and reserved
    world = World(aws)
    world.aws.use_function_env("RiskConsumerFunction")
    reset_lazy()
    status, answer = world.request("POST", "/v1/orders", {"symbol": "AAPL", "side": "buy", "type": "limit",
                                                          "quantity": "100", "price": "100.00",
                                                          "time_in_force": "ioc"})  # fmt: skip
    assert status == 202, answer
    parent = answer["order"]["order_id"]
    rate = reserve_rate(D("100.00"), FEE_BUFFER)
    item = world.item()
    assert item["available_cash"] == D("1000000.00") - reserve_amount(D(100), rate) == D("989997.00")
    assert set(item[RESERVATIONS]) == {parent}

    def event(seq: int, kind: str, **fields: str) -> dict[str, Any]:
        return {"event_id": f"AAPL-{seq}", "type": kind, "version": 1, "ts": TS, "correlation_id": f"route-{parent}",
                "symbol": "AAPL", "seq": seq, "epoch": 0, "order_id": parent, "account_id": "acc_1", "side": "buy",
                **fields}  # fmt: skip

    def fill(seq: int, **fields: str) -> dict[str, Any]:
        return event(seq, "venue_fill", child_id=f"{parent}-c{seq}", venue="SIM-BATS", mic="XSIB",
                     report_id=f"r{seq}", **fields)  # fmt: skip

    step = {"events": [
        fill(7, price="99.98", quantity="40", liquidity="taker", fee="0.12", filled_quantity="40",
             filled_notional="3999.20", remaining_quantity="60"),
        fill(8, price="99.99", quantity="35", liquidity="maker", fee="-0.07", filled_quantity="75",
             filled_notional="7498.85", remaining_quantity="25"),
        event(9, "route_ended", quantity="100", filled_quantity="75", filled_notional="7498.85",
              remaining_quantity="25", reason="no_liquidity"),
    ]}  # fmt: skip

    def deliver(*records: dict[str, Any]) -> None:
        answer = risk_consumer.handler(kinesis_event(*records), FakeLambdaContext())
        assert answer == {"batchItemFailures": []}, answer

    # WHEN the engine's step for the routed parent reaches the risk consumer
    deliver(step)
    # THEN cash pays 3,999.20 + 0.12 and 3,499.65 - 0.07 (the venues' fees, the rebate credited)
    item = world.item()
    cash = D("1000000.00") - D("3999.32") - D("3499.58")
    assert item["cash"] == cash == D("992501.10")
    # and the whole reservation is given back: available cash is cash again, no id is held
    assert item["available_cash"] == cash
    assert RESERVATIONS not in item
    assert (item["pos#AAPL"], item["sellable#AAPL"], item["buying#AAPL"], item["seq#AAPL"]) == (175, 175, 175, 9)
    # WHEN the record is redelivered, and then each event again in its own record
    deliver(step)
    deliver(*({"events": [e]} for e in step["events"]))
    # THEN the account item is unchanged
    assert world.item() == item
