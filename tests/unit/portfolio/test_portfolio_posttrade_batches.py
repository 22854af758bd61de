"""The risk and portfolio consumers apply a batch with one write per account and per position,
and the result is exactly that of applying its events one at a time (the rule of one event per
write, kept in ``DynamoAccounts.apply`` and ``posttrade.apply_events``), also when events are
delivered twice and out of order. A poison record is reported without holding back the rest."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_events import FakeLambdaContext, kinesis_event, kinesis_record
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_common.fees import FeeSchedule
from nexus_portfolio import on_execution_events as portfolio_consumer
from nexus_portfolio.posttrade import plan_batch, position_keys
from nexus_portfolio.repo import DynamoJournal, DynamoPositions, DynamoSettlements
from nexus_portfolio.service import apply_events
from nexus_risk import on_execution_events as risk_consumer
from nexus_risk.coalesce import AccountWrite, coalesce
from nexus_risk.domain import AccountChange, OrderFacts, account_changes
from nexus_risk.repo import DynamoAccounts

D = Decimal
FEES = FeeSchedule.from_bps(D(1), D(3))
TS = "2026-03-05T15:00:00.000000Z"
SYMBOLS = ("AAPL", "MSFT")
ACCOUNTS = 3
RATE = D("100.03")  # reserve rate of the reserved buy orders


# -- a random day, as events, and how it is delivered ---------------------------------------


@dataclass(frozen=True)
class Step:
    kind: str  # trade | cancelled
    symbol: int
    a: int  # maker (trade) or owner (cancel)
    b: int  # taker
    quantity: int
    cents: int
    aggressor: str
    left: int


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(["trade", "trade", "trade", "cancelled"]),
        symbol=st.integers(0, len(SYMBOLS) - 1),
        a=st.integers(0, ACCOUNTS - 1),
        b=st.integers(0, ACCOUNTS - 1),
        quantity=st.integers(1, 30),
        cents=st.integers(9000, 11000),
        aggressor=st.sampled_from(["buy", "sell"]),
        left=st.integers(0, 20),
    ),
    min_size=1,
    max_size=25,
)


def events_of(day: list[Step], prefix: str) -> list[dict[str, Any]]:
    """The engine's events for ``day``: per symbol, ``seq`` 1, 2, 3...; accounts and orders named
    with ``prefix`` (so two runs of the same day touch different items)."""
    seq = dict.fromkeys(SYMBOLS, 0)
    events = []
    for n, step in enumerate(day):
        symbol = SYMBOLS[step.symbol]
        seq[symbol] += 1
        base = {"event_id": f"{symbol}-{seq[symbol]}", "type": step.kind, "version": 1, "ts": TS,
                "correlation_id": "c", "symbol": symbol, "seq": seq[symbol], "epoch": 0}
        if step.kind == "trade":
            maker_side = "sell" if step.aggressor == "buy" else "buy"
            events.append({
                **base, "price": str(D(step.cents) / 100), "quantity": str(step.quantity),
                "aggressor_side": step.aggressor,
                "maker_order_id": order_id(prefix, n, "m", maker_side), "maker_account_id": f"{prefix}{step.a}",
                "taker_order_id": order_id(prefix, n, "t", step.aggressor), "taker_account_id": f"{prefix}{step.b}",
                "maker_filled_quantity": str(step.quantity), "maker_filled_notional": "0",
                "maker_remaining_quantity": str(step.left), "taker_filled_quantity": str(step.quantity),
                "taker_filled_notional": "0", "taker_remaining_quantity": "0",
            })
        else:
            events.append({**base, "order_id": order_id(prefix, n, "c", "buy" if step.left % 2 else "sell"),
                           "account_id": f"{prefix}{step.a}", "remaining_quantity": str(step.left),
                           "reason": "user"})
    return events


def order_id(prefix: str, n: int, role: str, side: str) -> str:
    return f"{prefix}o{n}{role}-{side}"


def facts_of(oid: str) -> OrderFacts | None:
    """Every third order (whatever the prefix) is unknown; the others are reserved, buys at ``RATE``."""
    if sum(map(ord, oid.rsplit("o", 1)[1])) % 3 == 0:
        return None
    side = oid.rsplit("-", 1)[1]
    return OrderFacts(oid, side, D(50), True, RATE if side == "buy" else None)


deliveries = st.lists(st.tuples(st.sampled_from(["again", "swap"]), st.integers(0, 200)), max_size=8)


def delivered(events: list[dict[str, Any]], faults: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """``events`` as a stream delivers them: some twice (again, later), some pairs swapped."""
    out = list(events)
    for fault, at in faults:
        i = at % len(out)
        if fault == "again":
            out.insert(min(len(out), i + 1 + at % 3), out[i])
        elif i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def parsed(events: list[dict[str, Any]]) -> list[Any]:
    return [ENGINE_EVENT_ADAPTER.validate_python(e) for e in events]


# -- the pure folds ------------------------------------------------------------------------------


def one_by_one(items: dict[str, dict[str, Any]], change: AccountChange) -> None:
    """``DynamoAccounts.apply`` on an in-memory item."""
    item = items.get(change.account_id)
    seen = None if item is None else item.get(f"seq#{change.symbol}")
    if item is None or (seen is not None and seen >= change.seq):
        return
    old_cash = item["cash"]
    item["cash"] = old_cash + change.cash
    item["available_cash"] = item.get("available_cash", old_cash) + change.available
    item.setdefault("opening_cash", old_cash)
    for name, delta in (("pos", change.pos), ("sellable", change.sellable), ("buying", change.buying)):
        item[f"{name}#{change.symbol}"] = item.get(f"{name}#{change.symbol}", D(0)) + delta
    item[f"seq#{change.symbol}"] = change.seq
    if change.ended_ids:  # the reservation ids DELETEd from the account's set
        item.setdefault("ended", set()).update(change.ended_ids)


def batched(items: dict[str, dict[str, Any]], write: AccountWrite) -> None:
    """``DynamoAccounts.write`` on an in-memory item (its condition checked)."""
    item = items[write.account_id]
    assert all(item.get(f"seq#{s}") == previous for s, previous in write.previous.items())
    old_cash = item["cash"]
    item["cash"] = old_cash + write.cash
    item["available_cash"] = item.get("available_cash", old_cash) + write.available
    item.setdefault("opening_cash", old_cash)
    for symbol, delta in write.symbols.items():
        for name, value in (("pos", delta.pos), ("sellable", delta.sellable), ("buying", delta.buying)):
            item[f"{name}#{symbol}"] = item.get(f"{name}#{symbol}", D(0)) + value
        item[f"seq#{symbol}"] = write.seq[symbol]
    if write.ended_ids:
        item.setdefault("ended", set()).update(write.ended_ids)


def fresh_accounts() -> dict[str, dict[str, Any]]:
    items = {f"a{i}": {"cash": D("100000.00")} for i in range(ACCOUNTS - 1)}  # the last one does not exist
    items["a0"]["seq#AAPL"] = 2  # and one has seen AAPL up to seq 2 already
    return items


@settings(max_examples=300, deadline=None)
@given(day=steps, faults=deliveries, cut=st.integers(1, 40))
def test_a_coalesced_batch_leaves_each_account_as_one_write_per_event_would(
    day: list[Step], faults: list[tuple[str, int]], cut: int
) -> None:
    events = parsed(delivered(events_of(day, "a"), faults))
    reference, folded = fresh_accounts(), fresh_accounts()
    for event in events:
        for change in account_changes(event, facts_of, FEES):
            one_by_one(reference, change)
    for start in range(0, len(events), cut):  # batches of ``cut`` events
        changes = [c for e in events[start : start + cut] for c in account_changes(e, facts_of, FEES)]
        watermarks = {
            (c.account_id, c.symbol): folded[c.account_id].get(f"seq#{c.symbol}")
            for c in changes
            if c.account_id in folded
        }
        for write in coalesce(changes, watermarks).values():
            batched(folded, write)
    assert folded == reference


class MemoryPositions:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Any] = {}

    def get(self, account_id: str, symbol: str) -> Any:
        return self.items.get((account_id, symbol))

    def save(self, position: Any, previous_seq: int | None) -> bool:
        current = self.items.get((position.account_id, position.symbol))
        if (None if current is None else current.last_seq) != previous_seq:
            return False
        self.items[(position.account_id, position.symbol)] = position
        return True


class MemoryWriter:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def post(self, entry: Any) -> bool:
        return self.items.setdefault(entry.entry_id, entry) is entry

    def add(self, obligation: Any) -> bool:
        return self.items.setdefault(obligation.item_id, obligation) is obligation


@settings(max_examples=300, deadline=None)
@given(day=steps, faults=deliveries, cut=st.integers(1, 40))
def test_a_planned_batch_writes_what_one_event_at_a_time_writes(
    day: list[Step], faults: list[tuple[str, int]], cut: int
) -> None:
    events = parsed(delivered(events_of(day, "a"), faults))
    positions, journal, obligations = MemoryPositions(), MemoryWriter(), MemoryWriter()
    apply_events(events, positions, journal, obligations, FEES)
    batch_positions, batch_journal, batch_obligations = MemoryPositions(), MemoryWriter(), MemoryWriter()
    for start in range(0, len(events), cut):
        chunk = events[start : start + cut]
        before = {key: batch_positions.items.get(key) for key in position_keys(chunk)}
        plan = plan_batch(chunk, before, FEES)
        for entry in plan.entries:
            batch_journal.post(entry)
        for obligation in plan.obligations:
            batch_obligations.add(obligation)
        for position, previous in plan.positions:
            assert batch_positions.save(position, previous)
    assert batch_positions.items == positions.items
    assert batch_journal.items == journal.items
    assert batch_obligations.items == obligations.items


# -- the consumers on DynamoDB -----------------------------------------------------------------


class Tables:
    def __init__(self, aws: Any) -> None:
        self.env = {**aws.use_function_env("RiskConsumerFunction"), **aws.use_function_env("PortfolioConsumerFunction")}
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.accounts = ddb.Table(self.env["ACCOUNTS_TABLE"])
        self.orders = ddb.Table(self.env["ORDERS_TABLE"])
        self.positions = DynamoPositions(self.env["POSITIONS_TABLE"])
        self.journal = DynamoJournal(self.env["LEDGER_TABLE"])
        self.settlements = DynamoSettlements(self.env["SETTLEMENTS_TABLE"])
        self.records = itertools.count(1)

    def open(self, prefix: str, day: list[Step]) -> None:
        named = [order_id(prefix, n, role, side) for n in range(len(day)) for role in "mtc" for side in ("buy", "sell")]
        reserved = {oid for oid in named if facts_of(oid) is not None}
        for i in range(ACCOUNTS - 1):  # each account holds every reserved order's id: what ends is removed
            self.accounts.put_item(Item={"account_id": f"{prefix}{i}", "cash": D("100000.00"), "status": "active",
                                         "reservations": reserved | {"kept"}})  # fmt: skip
        for n in range(len(day)):
            for role, side in (("m", "buy"), ("m", "sell"), ("t", "buy"), ("t", "sell"), ("c", "buy"), ("c", "sell")):
                oid = order_id(prefix, n, role, side)
                facts = facts_of(oid)
                if facts is not None:
                    item = {"order_id": oid, "side": side, "quantity": facts.quantity, "reserved": True}
                    if facts.reserve_rate is not None:
                        item["reserve_rate"] = facts.reserve_rate
                    self.orders.put_item(Item=item)

    def deliver(self, events: list[dict[str, Any]], cut: int) -> None:
        for start in range(0, len(events), cut):
            event = {"Records": [kinesis_record({"events": [e]}, f"{next(self.records):024d}")
                                 for e in events[start : start + cut]]}
            for handler in (risk_consumer.handler, portfolio_consumer.handler):
                assert handler(event, FakeLambdaContext()) == {"batchItemFailures": []}

    def one_by_one(self, events: list[dict[str, Any]]) -> None:
        accounts = DynamoAccounts(self.env["ACCOUNTS_TABLE"])
        for event in parsed(events):
            for change in account_changes(event, risk_consumer.order_facts(), FEES):
                accounts.apply(change)
            apply_events([event], self.positions, self.journal, self.settlements, FEES)

    def state(self, prefix: str) -> dict[str, Any]:
        """What the day left on the prefix's accounts, positions, entries and obligations (with
        the prefix taken off the account ids, so two runs compare)."""
        def plain(text: str) -> str:
            return text.replace(prefix, "")

        accounts = {
            plain(str(item["account_id"])): {k: {x.removeprefix(prefix) for x in v} if k == "reservations" else v
                                             for k, v in item.items() if k != "account_id"}
            for item in self.accounts.scan()["Items"] if str(item["account_id"]).startswith(prefix)
        }  # fmt: skip
        positions = {
            (plain(p.account_id), p.symbol): (p.quantity, p.cost, p.realized_pnl, p.fees, p.bought, p.sold, p.last_seq)
            for p in self.positions.all() if p.account_id.startswith(prefix)
        }
        entries = {
            (plain(e.account_id), e.entry_id): [(plain(leg.book), leg.account, leg.asset, leg.amount) for leg in e.legs]
            for e in self.journal.all() if e.account_id.startswith(prefix)
        }
        obligations = {
            (plain(o.account_id), o.item_id): (o.cash, o.quantity, o.status)
            for o in self.settlements.all_obligations() if o.account_id.startswith(prefix)
        }
        return {"accounts": accounts, "positions": positions, "entries": entries, "obligations": obligations}


_RUNS = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=steps, faults=deliveries, cut=st.integers(2, 60))
def test_the_consumers_in_batches_leave_what_one_event_at_a_time_leaves(
    aws: Any, day: list[Step], faults: list[tuple[str, int]], cut: int
) -> None:
    # GIVEN the same day twice, on different accounts, delivered with redeliveries and swaps
    tables = Tables(aws)
    run = next(_RUNS)
    one, batch = f"r{run}x", f"b{run}x"
    tables.open(one, day)
    tables.open(batch, day)
    # WHEN one copy is applied one event at a time, the other through the consumers in batches
    tables.one_by_one(delivered(events_of(day, one), faults))
    tables.deliver(delivered(events_of(day, batch), faults), cut)
    # THEN accounts, positions, journal entries and obligations are the same
    assert tables.state(batch) == tables.state(one)
    # AND a redelivery of the whole day changes nothing
    before = tables.state(batch)
    tables.deliver(events_of(day, batch), cut)
    assert tables.state(batch) == before


def test_a_poison_record_is_reported_and_the_rest_of_the_batch_is_applied(aws: Any) -> None:
    # GIVEN a batch: a trade, a record that is not JSON, an invalid trade, then another trade
    tables = Tables(aws)
    day = [Step("trade", 0, 0, 1, 5, 10000, "buy", 0), Step("trade", 0, 1, 0, 2, 10100, "sell", 0)]
    tables.open("p", day)
    first, second = events_of(day, "p")
    invalid = {**second, "seq": 99, "quantity": "not a number"}
    event = kinesis_event({"events": [first]}, b"\x00not json", {"events": [invalid]}, {"events": [second]})
    # WHEN each consumer gets it
    answers = [h(event, FakeLambdaContext()) for h in (risk_consumer.handler, portfolio_consumer.handler)]
    # THEN each reports exactly the two poison records (Lambda retries them, then the DLQ) ...
    poison = [event["Records"][1]["kinesis"]["sequenceNumber"], event["Records"][2]["kinesis"]["sequenceNumber"]]
    assert answers == [{"batchItemFailures": [{"itemIdentifier": s} for s in poison]}] * 2
    # ... and both trades were applied: p0 sold 5 (maker) then 2 (taker), p1 bought them
    state = tables.state("p")
    assert state["accounts"]["0"]["pos#AAPL"] == -7 and state["accounts"]["1"]["pos#AAPL"] == 7
    assert state["positions"][("0", "AAPL")][0] == -7 and state["positions"][("0", "AAPL")][-1] == 2
    assert len(state["entries"]) == 4 and len(state["obligations"]) == 4
    # AND the retry of the reported records (what Lambda sends next) changes nothing more
    retry = {"Records": event["Records"][1:]}
    for handler in (risk_consumer.handler, portfolio_consumer.handler):
        assert handler(retry, FakeLambdaContext()) == {"batchItemFailures": [{"itemIdentifier": s} for s in poison]}
    assert tables.state("p") == state


@pytest.mark.parametrize("consumer", [risk_consumer, portfolio_consumer])
def test_an_error_while_writing_fails_the_invocation_and_the_retry_completes_the_batch(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a batch of three trades whose second write fails once (after the first went through)
    tables = Tables(aws)
    day = [Step("trade", 0, 0, 1, 5, 10000, "buy", 0), Step("trade", 1, 1, 0, 2, 10100, "sell", 0),
           Step("trade", 0, 1, 0, 1, 10000, "buy", 0)]
    tables.open("e", day)
    event = kinesis_event(*({"events": [e]} for e in events_of(day, "e")))
    store = consumer.accounts() if consumer is risk_consumer else consumer.positions()
    name = "write" if consumer is risk_consumer else "save"
    real, calls = getattr(store, name), []

    def flaky(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise ConnectionError("the network went away")
        return real(*args)

    monkeypatch.setattr(store, name, flaky)
    # WHEN it is delivered: the invocation fails; Lambda delivers the batch again
    with pytest.raises(ConnectionError):
        consumer.handler(event, FakeLambdaContext())
    assert consumer.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the result is that of a single delivery
    monkeypatch.setattr(store, name, real)
    tables.open("f", day)
    consumer.handler(kinesis_event(*({"events": [e]} for e in events_of(day, "f"))), FakeLambdaContext())
    part = "accounts" if consumer is risk_consumer else "positions"
    assert tables.state("e")[part] == tables.state("f")[part]


# -- the portfolio view: settled and unsettled -------------------------------------------------


def test_the_portfolio_splits_cash_and_holdings_into_settled_and_unsettled_until_t_plus_2(aws: Any) -> None:
    from datetime import UTC, date, datetime

    from nexus_portfolio.ledger import balances
    from nexus_portfolio.service import Settlement
    from portfolio_fakes import Money

    # GIVEN a buyer with 10,000.00 who bought 4 AAPL @ 150.00 from a seller (Thursday 2026-03-05)
    money = Money(aws)
    money.account("acc_buy", "10000.00")
    money.account("acc_sel", "0.00")
    money.consume(money.trade(("acc_sel", "s"), ("acc_buy", "b"), "150.00", "4", "buy", "0", "0"))

    def view(account: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        status, body = money.get("/v1/portfolio", account)
        assert status == 200
        portfolio = body["portfolio"]
        (position,) = portfolio["positions"]
        return ((portfolio["cash"], portfolio["settled_cash"], portfolio["unsettled_cash"]),
                (position["quantity"], position["settled_quantity"], position["unsettled_quantity"]))

    # THEN on trade date the 600.00 and the 4 shares are unsettled; the fees are paid (settled cash)
    assert view("acc_buy") == (("9399.82", "9999.82", "-600"), ("4", "0", "4"))
    assert view("acc_sel") == (("599.94", "-0.06", "600"), ("-4", "0", "-4"))
    # AND the split is the ledger's: settled cash = opening + cash, unsettled = pending_cash
    ledger = balances(DynamoJournal(money.env["LEDGER_TABLE"]).all())
    assert D("10000.00") + ledger[("acc_buy", "cash", "USD")] == D("9999.82")
    assert ledger[("acc_buy", "pending_cash", "USD")] == D("-600.00")
    # WHEN the T+2 settlement run has run (Monday 2026-03-09)
    clock = lambda: datetime(2026, 3, 9, 22, 30, tzinfo=UTC)  # noqa: E731
    settlements = DynamoSettlements(money.env["SETTLEMENTS_TABLE"])
    Settlement(settlements, DynamoJournal(money.env["LEDGER_TABLE"]), clock).run(date(2026, 3, 9))
    # THEN everything is settled
    assert view("acc_buy") == (("9399.82", "9399.82", "0"), ("4", "4", "0"))
    assert view("acc_sel") == (("599.94", "599.94", "0"), ("-4", "-4", "0"))
