"""An entry closed by the fence: the engine's ``rejected`` with reason ``entry_incomplete`` for an
order (or OCO group) it never received. The orders API stored it ``pending_new`` and may have
stopped before or after its reservation write, so the risk consumer gives the reservation back
only while the account item holds its id, with one conditional write of its own: exactly what
was reserved when the id is held, nothing when it is not, and nothing more on a redelivery. An
ordinary rejection still releases through the batch's coalesced write.

In memory: the orders are entered through the real ``OrderService`` and pre-trade risk of
``orders_fakes`` (their commands kept, never reaching the engine), the engine's rejections built
by the test and applied by the real ``nexus_risk.service.apply_batch`` to an in-memory account
item. Under moto: the orders API reserves, the risk consumer's handler gives back. Tests read
GIVEN / WHEN / THEN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from nexus_common.events import ENGINE_EVENT_ADAPTER, ENTRY_INCOMPLETE
from nexus_common.risk import (
    RESERVATIONS,
    attr,
    oco_leg_ids,
    release_held_update,
    reserve_amount,
    reserve_rate,
)
from nexus_orders.commands import AnyOrderCommand
from nexus_risk import service
from nexus_risk.coalesce import AccountWrite, Watermarks
from nexus_risk.domain import HeldRelease, OrderFacts, changes_of, held_releases, prefetch_ids
from orders_fakes import FEE_BUFFER, FEES, LIMITS, Account, Venue, World, oco, order

D = Decimal
TS = "2026-03-05T15:30:00.000000Z"
CASH = D("100000.00")


class Stopped(BaseException):
    """The entry's invocation ends here (no ``except Exception`` of the service catches it)."""


class MemoryAccountItems:
    """``service.AccountItems`` over the in-memory accounts (one symbol), with the conditions of
    ``DynamoAccounts``: the batch's write needs the watermarks it was folded from; a release while
    held needs the id in the set."""

    def __init__(self, accounts: dict[str, Account]) -> None:
        self.accounts = accounts
        self.released: list[HeldRelease] = []  # the releases that found their id

    def watermarks(self, keys: Iterable[tuple[str, str]]) -> Watermarks:
        return {(a, s): self.accounts[a].seq or None for a, s in keys if a in self.accounts}

    def write(self, write: AccountWrite) -> None:
        account = self.accounts[write.account_id]
        [(symbol, delta)] = write.symbols.items()
        assert (account.seq or None) == write.previous[symbol]
        account.cash += write.cash
        account.available += write.available
        account.pos += delta.pos
        account.sellable += delta.sellable
        account.buying += delta.buying
        account.seq = write.seq[symbol]
        account.reservations -= set(write.ended_ids)

    def release_held(self, release: HeldRelease) -> bool:
        account = self.accounts.get(release.account_id)
        if account is None or not account.release_held(release):
            return False
        self.released.append(release)
        return True


@dataclass
class Facts:
    """``service.OrderFactsSource`` over the venue's orders table."""

    venue: Venue
    prefetched: list[str] = field(default_factory=list)

    def prefetch(self, order_ids: Iterable[str]) -> None:
        self.prefetched = list(order_ids)

    def __call__(self, order_id: str) -> OrderFacts | None:
        return self.venue.orders.facts(order_id)


@dataclass
class UnsentVenue(Venue):
    """The in-memory venue whose commands never reach the engine (the entry stopped before its
    send): the orders API stores and reserves; the engine's answer to the fence is built here."""

    kept: list[AnyOrderCommand] = field(default_factory=list)
    seq: int = 0
    items: MemoryAccountItems = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.items = MemoryAccountItems(self.accounts)

    def publish(self, command: Any) -> None:
        self.kept.append(command)

    def stop_before_reservation(self) -> None:
        """The next entry stops after storing its order, before its reservation write."""
        book, reserve = self.book, self.book.reserve

        def stopped(reservation: Any, limits: Any) -> None:
            book.reserve = reserve  # type: ignore[method-assign]  # the next entry is a normal one
            raise Stopped

        book.reserve = stopped  # type: ignore[method-assign]

    def rejected(self, order_id: str, reason: str = ENTRY_INCOMPLETE, account_id: str = "alice") -> Any:
        self.seq += 1
        return ENGINE_EVENT_ADAPTER.validate_python({
            "event_id": f"AAPL-{self.seq}", "type": "rejected", "version": 1, "ts": TS, "symbol": "AAPL",
            "seq": self.seq, "epoch": 0, "correlation_id": f"fence-{order_id}", "order_id": order_id,
            "account_id": account_id, "reason": reason, "message": "",
        })  # fmt: skip

    def apply(self, *steps: list[Any]) -> int:
        """One batch of engine steps reaches the risk consumer (its service, over memory)."""
        return service.apply_batch(list(steps), Facts(self), self.items, FEES)


def unsent_venue(shares: str = "0") -> UnsentVenue:
    held = D(shares)
    v = UnsentVenue({"alice": Account(CASH, CASH, pos=held, sellable=held, buying=held)})
    v.market.last = D("100.00")  # the reference of the price collar
    return v


def snapshot(account: Account) -> tuple[Any, ...]:
    return (account.cash, account.available, account.pos, account.sellable, account.buying, account.seq,
            frozenset(account.reservations))  # fmt: skip


RATE = reserve_rate(D("99.00"), LIMITS.fee_buffer)


def test_a_fenced_buy_whose_reservation_is_held_gets_exactly_it_back_once() -> None:
    # GIVEN alice's buy 10 @ 99.00, stored and reserved, whose command never reached the engine
    v = unsent_venue()
    alice = v.accounts["alice"]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    reserved = reserve_amount(D(10), RATE)
    assert (alice.reserved_cash, alice.reserved_buy, alice.reservations) == (reserved, 10, {placed.order_id})
    # WHEN the engine answers the sweep's fence: rejected, entry_incomplete
    fence = v.rejected(placed.order_id)
    written = v.apply([fence])
    # THEN exactly the reserved cash and buying quantity are given back, the id removed
    assert written == 1
    assert (alice.cash, alice.available, alice.pos, alice.buying) == (CASH, CASH, 0, 0)
    assert alice.reservations == set()
    assert [(r.reservation_id, r.side, r.quantity, r.amount) for r in v.items.released] == [
        (placed.order_id, "buy", D(10), reserved)
    ]
    # and it went through no coalesced write: no delta, no watermark move
    assert changes_of([fence], v.orders.facts, FEES) == [] and alice.seq == 0
    # WHEN the same rejection is delivered again, alone and within a batch
    after = snapshot(alice)
    assert v.apply([fence]) == 0
    assert v.apply([fence], [fence]) == 0
    # THEN it was given back once
    assert snapshot(alice) == after and len(v.items.released) == 1


def test_a_fenced_buy_whose_reservation_was_never_written_changes_nothing() -> None:
    # GIVEN alice with a reserved buy in place, and an entry that stopped before its reservation write
    v = unsent_venue()
    alice = v.accounts["alice"]
    other, _ = v.service.place("alice", order(side="buy", type="limit", quantity="5", price="99.00"))
    v.stop_before_reservation()
    with pytest.raises(Stopped):
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00", client_order_id="c1"))
    [stuck] = [o for o in v.orders.list_by_account("alice", None, 10) if o.client_order_id == "c1"]
    assert stuck.status == "pending_new" and v.orders.facts(stuck.order_id) is not None
    before = snapshot(alice)
    assert before[6] == {other.order_id}
    # WHEN the engine answers the fence of the stuck order (twice: a redelivery)
    v.apply([v.rejected(stuck.order_id)])
    v.apply([v.rejected(stuck.order_id)])
    # THEN nothing changes: available cash, buying#AAPL and the set are those of the other order
    assert snapshot(alice) == before
    assert alice.reserved_cash == reserve_amount(D(5), RATE) and alice.reserved_buy == 5
    assert v.items.released == []


def test_a_fenced_sell_gives_back_its_shares_while_held() -> None:
    # GIVEN alice holding 100 AAPL whose unsent sell of 30 holds 30 of them
    v = unsent_venue(shares="100")
    alice = v.accounts["alice"]
    placed, _ = v.service.place("alice", order(side="sell", type="limit", quantity="30", price="101.00"))
    assert (alice.sellable, alice.reservations) == (70, {placed.order_id})
    # WHEN its fence rejection arrives, twice
    fence = v.rejected(placed.order_id)
    v.apply([fence], [fence])
    # THEN the 30 shares are sellable again, once; cash and buying power untouched
    assert snapshot(alice) == (CASH, CASH, 100, 100, 100, 0, frozenset())
    assert [(r.side, r.quantity, r.amount) for r in v.items.released] == [("sell", D(30), D(0))]


def test_a_fenced_oco_group_gives_back_the_groups_one_reservation_by_the_group_id() -> None:
    # GIVEN alice's OCO buy 10 (take profit 95, stop loss stop 103 limit 104): one reservation
    # under the group id, at the dearer leg; the oco command never reached the engine
    v = unsent_venue()
    alice = v.accounts["alice"]
    legs, _ = v.service.place_oco("alice", oco(side="buy", quantity="10", take_profit={"price": "95.00"},
                                               stop_loss={"stop_price": "103.00", "price": "104.00"}))  # fmt: skip
    group = legs[0].group_id
    assert group is not None and oco_leg_ids(group) == (legs[0].order_id, legs[1].order_id)
    reserved = reserve_amount(D(10), reserve_rate(D("104.00"), LIMITS.fee_buffer))
    assert (alice.reserved_cash, alice.reserved_buy, alice.reservations) == (reserved, 10, {group})
    # WHEN the engine rejects the group's fence (the rejection names the group id), twice
    fence = v.rejected(group)
    v.apply([fence])
    v.apply([fence])
    # THEN the group's reservation is given back once, read from its first leg's facts
    assert (alice.available, alice.buying, alice.reservations) == (CASH, 0, set())
    assert [(r.reservation_id, r.amount, r.quantity) for r in v.items.released] == [(group, reserved, D(10))]
    assert legs[0].order_id in prefetch_ids([fence])


def test_a_fence_of_an_order_the_orders_table_does_not_know_releases_nothing() -> None:
    # GIVEN alice with a reserved buy in place
    v = unsent_venue()
    v.service.place("alice", order(side="buy", type="limit", quantity="5", price="99.00"))
    before = snapshot(v.accounts["alice"])
    # WHEN a fence rejection names an order the orders table never stored
    fence = v.rejected("unknown-order")
    # THEN there is nothing to give back, and nothing changes
    assert held_releases([fence], v.orders.facts) == []
    assert v.apply([fence]) == 0
    assert snapshot(v.accounts["alice"]) == before


def test_an_ordinary_rejection_still_releases_through_the_coalesced_write() -> None:
    # GIVEN alice's reserved buy 10 @ 99.00
    v = unsent_venue()
    alice = v.accounts["alice"]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    # WHEN the engine rejects it for another reason (a halted symbol)
    rejected = v.rejected(placed.order_id, reason="halted")
    # THEN no release while held: the coalesced write gives it back and ends its id, under the watermark
    assert held_releases([rejected], v.orders.facts) == []
    [change] = changes_of([rejected], v.orders.facts, FEES)
    assert (change.available, change.buying, change.ended_ids) == (reserve_amount(D(10), RATE), -10,
                                                                   [placed.order_id])  # fmt: skip
    assert v.apply([rejected]) == 1
    assert (alice.available, alice.buying, alice.reservations, alice.seq) == (CASH, 0, set(), rejected.seq)
    assert v.items.released == []


def test_a_fence_in_the_batch_that_ends_the_order_gives_nothing_back_twice() -> None:
    # GIVEN alice's reserved buy, which the engine ended and then forgot (a long consumer lag),
    # so that the sweep's fence of it is rejected too: both in one batch, the end first
    v = unsent_venue()
    alice = v.accounts["alice"]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    ended, fence = v.rejected(placed.order_id, reason="halted"), v.rejected(placed.order_id)
    # WHEN the risk consumer applies the batch
    v.apply([ended], [fence])
    # THEN the end gave the reservation back and removed its id before the fence's release was
    # tried: given back once
    assert (alice.available, alice.buying, alice.reservations) == (CASH, 0, set())
    assert v.items.released == []


def test_release_held_update_is_the_conditional_give_back_by_id() -> None:
    # GIVEN a buy and a sell reservation's terms
    # WHEN the shared UpdateItem arguments are built
    buy = release_held_update("o-1", "buy", "AAPL", D(10), D("990.30"))
    sell = release_held_update("o-2", "sell", "AAPL", D(30), D(0))
    # THEN both give back only while the item holds the id, and DELETE it
    for update, rid in ((buy, "o-1"), (sell, "o-2")):
        assert update["ConditionExpression"] == "attribute_exists(account_id) AND contains(#res, :rid)"
        assert update["UpdateExpression"].endswith(" DELETE #res :rids")
        assert update["ExpressionAttributeNames"]["#res"] == RESERVATIONS
        assert (update["ExpressionAttributeValues"][":rid"], update["ExpressionAttributeValues"][":rids"]) == (
            rid, {rid})  # fmt: skip
    assert buy["UpdateExpression"] == "SET available_cash = available_cash + :amt, #exp = #exp - :q DELETE #res :rids"
    assert buy["ExpressionAttributeNames"]["#exp"] == attr("buying", "AAPL")
    assert (buy["ExpressionAttributeValues"][":amt"], buy["ExpressionAttributeValues"][":q"]) == (D("990.30"), 10)
    assert sell["UpdateExpression"] == "SET #sell = #sell + :q DELETE #res :rids"
    assert sell["ExpressionAttributeNames"]["#sell"] == attr("sellable", "AAPL")
    assert ":amt" not in sell["ExpressionAttributeValues"]


# -- under moto: the orders API reserves, the risk consumer's handler gives back ------------------


def test_the_risk_consumer_gives_a_fenced_entry_back_on_the_account_item_only_while_held(aws: Any) -> None:
    import boto3
    from lambda_events import FakeLambdaContext, kinesis_event
    from nexus_common.settings import reset_lazy
    from nexus_risk import on_execution_events as risk_consumer
    from nexus_risk.repo import DynamoAccounts

    # GIVEN acc_1 (1,000,000 USD, 100 AAPL) with a buy 10 @ 100.00 and a sell 30 @ 101.00 the
    # orders API stored and reserved (their commands never reached the engine)
    world = World(aws)
    placed = {}
    for side, quantity, price in (("buy", "10", "100.00"), ("sell", "30", "101.00")):
        status, answer = world.request("POST", "/v1/orders", {"symbol": "AAPL", "side": side, "type": "limit",
                                                              "quantity": quantity, "price": price})  # fmt: skip
        assert status == 202, answer
        placed[side] = answer["order"]["order_id"]
    # and an order stored whose entry stopped before its reservation write (its item, never reserved)
    orders = boto3.resource("dynamodb", region_name="us-east-1").Table(world.env["ORDERS_TABLE"])
    item = orders.get_item(Key={"order_id": placed["buy"]})["Item"]
    orders.put_item(Item={**item, "order_id": "ghost-1", "client_order_id": "ghost"})
    reserved = reserve_amount(D(10), reserve_rate(D("100.00"), FEE_BUFFER))
    before = world.item()
    assert before["available_cash"] == D("1000000.00") - reserved
    assert (before["buying#AAPL"], before["sellable#AAPL"]) == (110, 70)
    assert set(before[RESERVATIONS]) == {placed["buy"], placed["sell"]}
    world.aws.use_function_env("RiskConsumerFunction")
    reset_lazy()

    def rejected(seq: int, order_id: str) -> dict[str, Any]:
        return {"event_id": f"AAPL-{seq}", "type": "rejected", "version": 1, "ts": TS, "symbol": "AAPL",
                "seq": seq, "epoch": 0, "correlation_id": f"fence-{order_id}", "order_id": order_id,
                "account_id": "acc_1", "reason": ENTRY_INCOMPLETE, "message": ""}  # fmt: skip

    step = {"events": [rejected(5, "ghost-1"), rejected(6, placed["buy"]), rejected(7, placed["sell"])]}

    def deliver(*records: dict[str, Any]) -> None:
        answer = risk_consumer.handler(kinesis_event(*records), FakeLambdaContext())
        assert answer == {"batchItemFailures": []}, answer

    # WHEN the engine's answers to the three fences reach the risk consumer
    deliver(step)
    # THEN the two reservations held are given back exactly, the one never written gives nothing
    item = world.item()
    assert item["available_cash"] == item["cash"] == D("1000000.00")
    assert (item["pos#AAPL"], item["buying#AAPL"], item["sellable#AAPL"]) == (100, 100, 100)
    assert RESERVATIONS not in item
    assert "seq#AAPL" not in item  # no coalesced write: the watermark did not move
    # WHEN the record is redelivered, then each event in its own record
    deliver(step)
    deliver(*({"events": [e]} for e in step["events"]))
    # THEN the account item is unchanged
    assert world.item() == item
    # and a release while held of an account that does not exist is refused, not an error
    ghost = HeldRelease("acc_none", "AAPL", "o-9", "buy", D(1), D("100.03"), "AAPL-9")
    assert DynamoAccounts(world.env["ACCOUNTS_TABLE"]).release_held(ghost) is False


def test_the_risk_consumer_reads_a_batchs_order_facts_and_account_watermarks_in_one_request(aws: Any) -> None:
    from lambda_events import FakeLambdaContext, kinesis_event
    from nexus_common import aws as common_aws
    from nexus_common.settings import reset_lazy
    from nexus_risk import on_execution_events as risk_consumer

    # GIVEN a buy 10 @ 100.00 the orders API stored and reserved for acc_1
    world = World(aws)
    status, answer = world.request("POST", "/v1/orders", {"symbol": "AAPL", "side": "buy", "type": "limit",
                                                          "quantity": "10", "price": "100.00"})  # fmt: skip
    assert status == 202, answer
    order_id = answer["order"]["order_id"]
    world.aws.use_function_env("RiskConsumerFunction")
    reset_lazy()
    cancelled = {"event_id": "AAPL-1", "type": "cancelled", "version": 1, "ts": TS, "symbol": "AAPL", "seq": 1,
                 "epoch": 0, "correlation_id": "c-1", "order_id": order_id, "account_id": "acc_1",
                 "reason": "user", "remaining_quantity": "10"}  # fmt: skip
    common_aws.reset_request_counts()
    # WHEN the engine's cancel of it reaches the risk consumer
    answer = risk_consumer.handler(kinesis_event({"events": [cancelled]}), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}, answer
    # THEN one BatchGetItem read the order's facts and the account's watermark, one write applied it
    counts: dict[str, int] = {}
    for (_, operation, _), n in common_aws.request_counts().items():
        counts[operation] = counts.get(operation, 0) + n
    assert counts == {"BatchGetItem": 1, "UpdateItem": 1}
    item = world.item()
    assert item["available_cash"] == item["cash"] == D("1000000.00")
    assert (item["buying#AAPL"], item["seq#AAPL"]) == (100, 1)
    assert RESERVATIONS not in item


@dataclass
class BatchReadsOverMemory:
    """``service.BatchReads`` over the in-memory venue: what it was asked, answered as the account
    items would (``MemoryAccountItems.watermarks`` itself, not a counted stand-in for it)."""

    venue: UnsentVenue
    asked: list[tuple[list[str], set[tuple[str, str]]]] = field(default_factory=list)

    def load(self, order_ids: Iterable[str], keys: Iterable[tuple[str, str]]) -> Watermarks:
        wanted = set(keys)
        self.asked.append((list(order_ids), wanted))
        return MemoryAccountItems.watermarks(self.venue.items, wanted)


def test_with_batch_reads_the_accounts_the_events_name_are_read_with_the_facts_and_a_pair_missed_is_read_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN alice's reserved buy 10 @ 99.00 and its ordinary rejection
    v = unsent_venue()
    alice = v.accounts["alice"]
    placed, _ = v.service.place("alice", order(side="buy", type="limit", quantity="10", price="99.00"))
    rejected = v.rejected(placed.order_id, reason="halted")
    watermarks_read: list[set[tuple[str, str]]] = []
    counted = v.items.watermarks

    def watermarks(keys: Iterable[tuple[str, str]]) -> Watermarks:
        watermarks_read.append(set(keys))
        return counted(keys)

    monkeypatch.setattr(v.items, "watermarks", watermarks)
    reads = BatchReadsOverMemory(v)
    # WHEN the batch is applied with the batch reads
    assert service.apply_batch([[rejected]], Facts(v), v.items, FEES, reads) == 1
    # THEN the read named the order and alice's AAPL pair, and no watermark was read apart
    assert reads.asked == [([placed.order_id], {("alice", "AAPL")})]
    assert watermarks_read == []
    assert (alice.available, alice.buying, alice.seq) == (CASH, D(0), rejected.seq)
    # WHEN a later batch's change is for a pair the events did not name (none named here)
    again, _ = v.service.place("alice", order(side="buy", type="limit", quantity="5", price="99.00"))
    second = v.rejected(again.order_id, reason="halted")
    monkeypatch.setattr(service, "account_keys", lambda events: [])
    assert service.apply_batch([[second]], Facts(v), v.items, FEES, BatchReadsOverMemory(v)) == 1
    # THEN its watermark is read when the changes are known, and guards the write as before
    assert watermarks_read == [{("alice", "AAPL")}]
    assert (alice.available, alice.buying, alice.seq) == (CASH, D(0), second.seq)


def test_account_keys_are_every_account_an_event_names_with_its_symbol() -> None:
    from nexus_risk.domain import account_keys

    v = unsent_venue()
    trade = SimpleNamespace(type="trade", symbol="AAPL", maker_account_id="bob", taker_account_id="alice")
    assert account_keys([trade, v.rejected("o-1"), v.rejected("o-2", account_id="carol")]) == [
        ("bob", "AAPL"), ("alice", "AAPL"), ("carol", "AAPL")]  # fmt: skip


def test_a_replaces_reservation_id_follows_what_it_reserves_and_its_terms_item_names_it() -> None:
    from nexus_common.risk import held_replace_id, replace_reservation_id

    # the same terms, the same id (a retry finds its reservation in place); other terms, another
    same = replace_reservation_id("o1", 2, "buy", D("5"), D("505.00"))
    assert same == replace_reservation_id("o1", 2, "buy", D("5.0"), D("505"))
    assert same.startswith("o1~r2.")
    assert len({same, replace_reservation_id("o1", 2, "buy", D("6"), D("505.00")),
                replace_reservation_id("o1", 2, "sell", D("5"), D("505.00")),
                replace_reservation_id("o1", 3, "buy", D("5"), D("505.00"))}) == 4  # fmt: skip
    # the id held is the one the terms item stores; a terms item from before digests holds its key
    assert held_replace_id("o1", 2, {"reservation_id": same, "quantity": D(5)}) == same
    assert held_replace_id("o1", 2, {"quantity": D(5)}) == "o1~r2" == held_replace_id("o1", 2, None)
