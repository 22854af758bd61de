"""A routed order's fills on external venues (``venue_fill`` events) reach the portfolio as an
engine trade's fill of the same account does: the position, the fill's journal entry (with the
venue's own fee, signed: a rebate is credited) and its T+2 settlement obligation; one side only,
the venue named on the entry. The same ``last_seq`` guard drops a redelivery; ``route_ended``
books nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import FakeLambdaContext, kinesis_event, load_event
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_portfolio import on_execution_events as portfolio_consumer
from nexus_portfolio.ledger import Leg, balances
from nexus_portfolio.positions import Position
from nexus_portfolio.repo import DynamoJournal, DynamoPositions, DynamoSettlements
from nexus_portfolio.service import Settlement, apply_events
from portfolio_fakes import FEES, Money

D = Decimal
THU = "2026-03-05T15:00:00.000000Z"  # settles Monday 2026-03-09
FRI = "2026-03-06T15:00:00.000000Z"  # settles Tuesday 2026-03-10 (the weekend is not counted)


def event(kind: str, seq: int, ts: str = THU, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"AAPL-{seq}", "type": kind, "version": 1, "ts": ts, "correlation_id": "c",
            "symbol": "AAPL", "seq": seq, "epoch": 0, **fields}


def venue_fill(seq: int, account: str, order: str, side: str, qty: str, price: str, fee: str, liquidity: str,
               venue: str, mic: str | None, filled: str, remaining: str, ts: str = THU) -> dict[str, Any]:
    return event("venue_fill", seq, ts, order_id=order, account_id=account, side=side, child_id=f"{order}-c{seq}",
                 venue=venue, mic=mic, price=price, quantity=qty, liquidity=liquidity, fee=fee,
                 report_id=f"rep-{seq}", filled_quantity=filled, filled_notional="0", remaining_quantity=remaining)


def route_ended(seq: int, account: str, order: str, side: str, qty: str, filled: str, reason: str,
                ts: str = THU) -> dict[str, Any]:
    return event("route_ended", seq, ts, order_id=order, account_id=account, side=side, quantity=qty,
                 filled_quantity=filled, filled_notional="0", remaining_quantity=str(D(qty) - D(filled)),
                 reason=reason)


def trade(seq: int, maker: str, taker: str, aggressor: str, qty: str, price: str) -> dict[str, Any]:
    return event("trade", seq, price=price, quantity=qty, aggressor_side=aggressor,
                 maker_order_id=f"m{seq}", maker_account_id=maker, taker_order_id=f"t{seq}", taker_account_id=taker,
                 maker_filled_quantity=qty, maker_filled_notional="0", maker_remaining_quantity="0",
                 taker_filled_quantity=qty, taker_filled_notional="0", taker_remaining_quantity="0")


class Book:
    """The portfolio consumer (as the template wires it) and what it leaves in its tables."""

    def __init__(self, aws: Any) -> None:
        self.money = Money(aws)
        env = self.money.env
        self.positions = DynamoPositions(env["POSITIONS_TABLE"])
        self.journal = DynamoJournal(env["LEDGER_TABLE"])
        self.settlements = DynamoSettlements(env["SETTLEMENTS_TABLE"])

    def deliver(self, *records: list[dict[str, Any]]) -> None:
        """One Kinesis batch; each record is one engine step's events, in order."""
        answer = portfolio_consumer.handler(kinesis_event(*({"events": r} for r in records)), FakeLambdaContext())
        assert answer == {"batchItemFailures": []}

    def position(self, account: str) -> Position | None:
        return self.positions.get(account, "AAPL")

    def entries(self, account: str) -> dict[str, Any]:
        return {e.entry_id: e for e in self.journal.all() if e.account_id == account}

    def obligations(self, account: str) -> dict[str, Any]:
        return {o.item_id: o for o in self.settlements.all_obligations() if o.account_id == account}

    def state(self, account: str) -> tuple[Any, ...]:
        return self.position(account), self.entries(account), self.obligations(account)


# A routed buy of 10 AAPL, filled on two venues in one engine step (a taker fee on ALPHA, a maker
# rebate on BETA), then a routed sell of 5 on the next business day (a sub-cent fee, as the venue
# charged it).
BUY = [
    venue_fill(1, "acc_r", "r1", "buy", "6", "150.00", "0.27", "taker", "ALPHA", "XALP", "6", "4"),
    venue_fill(2, "acc_r", "r1", "buy", "4", "150.10", "-0.08", "maker", "BETA", "XBET", "10", "0"),
    route_ended(3, "acc_r", "r1", "buy", "10", "10", "filled"),
]
SELL = [
    venue_fill(4, "acc_r", "r2", "sell", "5", "151.00", "0.2325", "taker", "ALPHA", "XALP", "5", "3", ts=FRI),
    route_ended(5, "acc_r", "r2", "sell", "8", "5", "no_liquidity", ts=FRI),
]


def test_two_routed_buy_fills_then_a_routed_sell_book_the_position_exactly(aws: Any) -> None:
    # GIVEN the portfolio consumer
    book = Book(aws)
    # WHEN a routed buy fills on two venues, then a routed sell fills in part
    book.deliver(BUY)
    book.deliver(SELL)
    # THEN the position is the account's fills at their prices (average cost, realized P&L gross
    # of fees), its fees the venues' own (0.27 - 0.08 rebate + 0.2325), and route_ended moved nothing
    cost_of_ten = D(6) * D("150.00") + D(4) * D("150.10")  # 1500.40
    removed = cost_of_ten / 2  # half the position closes: 750.20
    assert book.position("acc_r") == Position(
        "acc_r", "AAPL", quantity=D(5), cost=cost_of_ten - removed, realized_pnl=D(5) * D("151.00") - removed,
        fees=D("0.27") - D("0.08") + D("0.2325"), bought=D(10), sold=D(5), last_seq=4,
    )
    assert book.position("acc_r").realized_pnl == D("4.80")  # type: ignore[union-attr]


def test_each_routed_fill_posts_one_balanced_entry_with_the_venues_fee_or_rebate_and_names_the_venue(
    aws: Any,
) -> None:
    # GIVEN the portfolio consumer
    book = Book(aws)
    # WHEN the routed buy and the routed sell are delivered
    book.deliver(BUY)
    book.deliver(SELL)
    # THEN one fill entry per venue fill (none for route_ended), the account's side only, each balanced
    entries = book.entries("acc_r")
    assert sorted(entries) == ["fill:AAPL-1:taker", "fill:AAPL-2:maker", "fill:AAPL-4:taker"]
    assert all(entry.imbalance() == {} and entry.kind == "fill" for entry in entries.values())
    # AND a fee is paid from cash to the house fees account; a rebate goes the other way
    assert entries["fill:AAPL-1:taker"].legs == (
        Leg("acc_r", "pending_securities", "AAPL", D(6)), Leg("house", "clearing", "AAPL", D(-6)),
        Leg("acc_r", "pending_cash", "USD", D("-900.00")), Leg("house", "clearing", "USD", D("900.00")),
        Leg("acc_r", "cash", "USD", D("-0.27")), Leg("house", "fees", "USD", D("0.27")),
    )
    assert entries["fill:AAPL-2:maker"].legs == (
        Leg("acc_r", "pending_securities", "AAPL", D(4)), Leg("house", "clearing", "AAPL", D(-4)),
        Leg("acc_r", "pending_cash", "USD", D("-600.40")), Leg("house", "clearing", "USD", D("600.40")),
        Leg("acc_r", "cash", "USD", D("0.08")), Leg("house", "fees", "USD", D("-0.08")),
    )
    assert entries["fill:AAPL-4:taker"].legs == (
        Leg("acc_r", "pending_securities", "AAPL", D(-5)), Leg("house", "clearing", "AAPL", D(5)),
        Leg("acc_r", "pending_cash", "USD", D("755.00")), Leg("house", "clearing", "USD", D("-755.00")),
        Leg("acc_r", "cash", "USD", D("-0.2325")), Leg("house", "fees", "USD", D("0.2325")),
    )
    # AND each entry says where it executed (name and MIC)
    assert [entries[k].memo for k in sorted(entries)] == [
        "buy 6 AAPL @ 150 (taker) on ALPHA [XALP]",
        "buy 4 AAPL @ 150.1 (maker) on BETA [XBET]",
        "sell 5 AAPL @ 151 (taker) on ALPHA [XALP]",
    ]
    # AND the account's balances are the sums: fees net of the rebate from cash, the rest pending
    totals = balances(entries.values())
    assert totals[("acc_r", "cash", "USD")] == D("-0.4225")
    assert totals[("acc_r", "pending_cash", "USD")] == D("-745.40")
    assert totals[("acc_r", "pending_securities", "AAPL")] == D(5)
    assert totals[("house", "fees", "USD")] == D("0.4225")


def test_routed_fills_owe_settlement_on_t_plus_2_and_the_run_settles_them(aws: Any) -> None:
    # GIVEN the routed buy (Thursday) and the routed sell (Friday) delivered
    book = Book(aws)
    book.deliver(BUY)
    book.deliver(SELL)
    # THEN each fill owes one obligation on its trade date + 2 business days
    obligations = book.obligations("acc_r")
    owed = {k: (o.trade_date, o.settle_date, o.cash, o.quantity, o.status) for k, o in obligations.items()}
    assert owed == {
        "OBL#2026-03-09#AAPL#AAPL-1#taker": (date(2026, 3, 5), date(2026, 3, 9), D("-900.00"), D(6), "pending"),
        "OBL#2026-03-09#AAPL#AAPL-2#maker": (date(2026, 3, 5), date(2026, 3, 9), D("-600.40"), D(4), "pending"),
        "OBL#2026-03-10#AAPL#AAPL-4#taker": (date(2026, 3, 6), date(2026, 3, 10), D("755.00"), D(-5), "pending"),
    }
    # WHEN the settlement run of Monday 2026-03-09 runs (its clock injected)
    clock = lambda: datetime(2026, 3, 9, 22, 30, tzinfo=UTC)  # noqa: E731
    report = Settlement(book.settlements, book.journal, clock).run(date(2026, 3, 9))
    # THEN the buy's two fills settle, netted in one batch; the Friday sale is still pending
    assert (len(report.settled), len(report.failed)) == (1, 0)
    (batch,) = report.settled
    assert (batch.cash, batch.quantity) == (D("-1500.40"), D(10))
    status = {k: o.status for k, o in book.obligations("acc_r").items()}
    assert status == {"OBL#2026-03-09#AAPL#AAPL-1#taker": "settled", "OBL#2026-03-09#AAPL#AAPL-2#maker": "settled",
                      "OBL#2026-03-10#AAPL#AAPL-4#taker": "pending"}
    totals = balances(book.entries("acc_r").values())
    assert totals[("acc_r", "securities", "AAPL")] == D(10) and totals[("acc_r", "cash", "USD")] == D("-1500.8225")


def test_a_redelivered_venue_fill_books_nothing_twice(aws: Any) -> None:
    # GIVEN the routed buy and sell booked
    book = Book(aws)
    book.deliver(BUY)
    book.deliver(SELL)
    booked = book.state("acc_r")
    # WHEN the stream delivers them again: the whole steps, an older fill alone after the sale,
    # and the same fills one event at a time through apply_events
    book.deliver(BUY, SELL)
    book.deliver(BUY[1:2])
    apply_events([ENGINE_EVENT_ADAPTER.validate_python(e) for e in BUY + SELL], book.positions, book.journal,
                 book.settlements, FEES)
    # THEN nothing changed: the position's last_seq refused every one of them
    assert book.state("acc_r") == booked


def test_a_route_that_ended_with_nothing_filled_books_nothing(aws: Any) -> None:
    # GIVEN the portfolio consumer
    book = Book(aws)
    # WHEN a routed order ends with nothing filled
    book.deliver([route_ended(1, "acc_n", "r9", "buy", "10", "0", "no_liquidity")])
    # THEN there is no position, no entry, no obligation
    assert book.state("acc_n") == (None, {}, {})


def _mixed_day(account: str) -> list[dict[str, Any]]:
    """Engine trades and a routed order's fills of one account, interleaved in the symbol's sequence."""
    return [
        trade(1, f"{account}x", account, "buy", "3", "100.00"),  # the account takes 3 on our book
        venue_fill(2, account, "r1", "buy", "2", "100.50", "0.0060", "taker", "ALPHA", "XALP", "2", "0"),
        route_ended(3, account, "r1", "buy", "2", "2", "filled"),
        trade(4, account, f"{account}x", "buy", "4", "101.00"),  # the account's resting sell: maker for 4
        venue_fill(5, account, "r2", "buy", "1", "99.00", "-0.0020", "maker", "BETA", None, "1", "0"),
        route_ended(6, account, "r2", "buy", "1", "1", "filled"),
    ]


@pytest.mark.parametrize("cut", [1, 6])
def test_a_batch_mixing_engine_trades_and_venue_fills_books_what_one_event_at_a_time_books(
    aws: Any, cut: int
) -> None:
    # GIVEN the same day of one account twice (on two accounts)
    book = Book(aws)
    one, batched = f"acc_one{cut}", f"acc_batch{cut}"
    # WHEN one copy is applied one event at a time, the other through the consumer, in batches of ``cut``
    for e in _mixed_day(one):
        apply_events([ENGINE_EVENT_ADAPTER.validate_python(e)], book.positions, book.journal, book.settlements, FEES)
    day = _mixed_day(batched)
    for start in range(0, len(day), cut):
        book.deliver(*([e] for e in day[start : start + cut]))
    # THEN both are the same, with the account's name aside
    def plain(account: str) -> tuple[Any, ...]:
        position, entries, obligations = book.state(account)
        return (
            (position.quantity, position.cost, position.realized_pnl, position.fees, position.last_seq),
            {k: (e.memo, [(leg.book.replace(account, "A"), leg.account, leg.asset, leg.amount) for leg in e.legs])
             for k, e in entries.items()},
            {k: (o.cash, o.quantity, o.settle_date) for k, o in obligations.items()},
        )

    assert plain(batched) == plain(one)
    # AND the figures are exact: 3 @ 100 + 2 @ 100.50 bought, 4 sold @ 101, 1 bought @ 99
    position, entries, obligations = book.state(batched)
    assert position is not None
    assert (position.quantity, position.bought, position.sold, position.last_seq) == (D(2), D(6), D(4), 5)
    assert position.realized_pnl == D(4) * D("101.00") - D("501.00") * 4 / 5  # 404 - 400.80 = 3.20
    # the engine's fees from the schedule (taker 3 bp of 300.00, maker 1 bp of 404.00), the venues' as sent
    assert position.fees == D("0.09") + D("0.0060") + D("0.04") - D("0.0020")
    assert sorted(entries) == ["fill:AAPL-1:taker", "fill:AAPL-2:taker", "fill:AAPL-4:maker", "fill:AAPL-5:maker"]
    assert entries["fill:AAPL-5:maker"].memo == "buy 1 AAPL @ 99 (maker) on BETA"
    assert len(obligations) == 4 and all(o.settle_date == date(2026, 3, 9) for o in obligations.values())
    assert all(entry.imbalance() == {} for entry in entries.values())


def test_the_portfolio_view_shows_routed_fills_as_unsettled_until_t_plus_2(aws: Any) -> None:
    # GIVEN an account whose routed buy filled on two venues
    book = Book(aws)
    book.money.account("acc_v", "10000.00")
    book.deliver([{**e, "account_id": "acc_v"} for e in BUY])
    # WHEN its portfolio and ledger are read
    status, body = book.money.get("/v1/portfolio", "acc_v")
    assert status == 200
    (position,) = body["portfolio"]["positions"]
    # THEN the 10 shares and their 1,500.40 are unsettled; the venues' fee net of the rebate is paid
    assert (position["quantity"], position["settled_quantity"], position["unsettled_quantity"]) == ("10", "0", "10")
    assert (position["cost_basis"], position["fees"]) == ("1500.4", "0.19")
    assert body["portfolio"]["unsettled_cash"] == "-1500.4"
    status, ledger = book.money.get("/v1/ledger", "acc_v")
    assert status == 200
    assert [e["memo"] for e in ledger["entries"]] == [
        "buy 6 AAPL @ 150 (taker) on ALPHA [XALP]", "buy 4 AAPL @ 150.1 (maker) on BETA [XBET]",
    ]


def test_a_route_resting_on_a_venue_books_its_fills_and_nothing_for_route_working(aws: Any) -> None:
    # GIVEN the engine's records of a gtc routed buy of 100: 60 filled on ARCX-SIM and 40 rest on
    # BATS-SIM (route_working), 30 of them fill there, then the order is cancelled there
    book = Book(aws)
    records = [r["events"] for r in load_event("routed_working.json")["records"]]
    # WHEN they are delivered (the whole route twice: a redelivery)
    book.deliver(*records)
    book.deliver(*records)
    # THEN the position holds the two fills only, and one entry each: route_working booked nothing
    position = book.position("acc_1")
    assert position is not None and (position.quantity, position.bought, position.last_seq) == (D(90), D(90), 7)
    assert sorted(book.entries("acc_1")) == ["fill:AAPL-5:taker", "fill:AAPL-7:maker"]
    assert len(book.obligations("acc_1")) == 2
