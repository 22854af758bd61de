"""The invariants of ``nexus reconcile`` (nexus/reconcile.py), each over a small scanned world:
a buyer funded by a deposit buys 10 AAPL at 100.00 from a seller (1.00 fee each) and rests a
reserved buy of 5 more; every invariant holds, then one table at a time is broken."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from nexus_portfolio.ledger import Entry, Leg, balances
from nexus_portfolio.positions import Position

from nexus import reconcile as rc

TS = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BUYER, SELLER = "acc-b", "acc-s"


def deposit() -> Entry:
    return Entry("funding:req-1", BUYER, TS, "funding",
                 (Leg(BUYER, "cash", "USD", D("5000.00")), Leg("house", "bank", "USD", D("-5000.00"))))  # fmt: skip


def buy_fill() -> Entry:
    return Entry("fill-b", BUYER, TS, "fill", (
        Leg(BUYER, "pending_securities", "AAPL", D("10")), Leg("house", "clearing", "AAPL", D("-10")),
        Leg(BUYER, "pending_cash", "USD", D("-1001.00")), Leg("house", "clearing", "USD", D("1000.00")),
        Leg("house", "fees", "USD", D("1.00")),
    ))  # fmt: skip


def sell_fill() -> Entry:
    return Entry("fill-s", SELLER, TS, "fill", (
        Leg(SELLER, "pending_securities", "AAPL", D("-10")), Leg("house", "clearing", "AAPL", D("10")),
        Leg(SELLER, "pending_cash", "USD", D("999.00")), Leg("house", "clearing", "USD", D("-1000.00")),
        Leg("house", "fees", "USD", D("1.00")),
    ))  # fmt: skip


def accounts() -> dict[str, dict[str, Any]]:
    return {
        BUYER: {"account_id": BUYER, "cash": D("3999.00"), "opening_cash": D("0"), "pos#AAPL": D("10"),
                "available_cash": D("3499.00"), "buying#AAPL": D("15"), "sellable#AAPL": D("10"),
                "reservations": {"o-1"}},
        SELLER: {"account_id": SELLER, "cash": D("999.00"), "opening_cash": D("0"), "pos#AAPL": D("-10")},
    }  # fmt: skip


def positions() -> list[Position]:
    return [Position(BUYER, "AAPL", quantity=D("10"), bought=D("10")),
            Position(SELLER, "AAPL", quantity=D("-10"), sold=D("10"))]  # fmt: skip


def orders() -> list[dict[str, Any]]:
    return [{"order_id": "o-1", "account_id": BUYER, "symbol": "AAPL", "side": "buy", "status": "new",
             "reserved": True, "remaining_quantity": D("5"), "reserve_rate": D("100.00")}]  # fmt: skip


def trades() -> list[dict[str, Any]]:
    return [{"symbol": "AAPL", "seq": 0}, {"symbol": "AAPL", "seq": 1, "quantity": D("10")}]  # a marker, a trade


def requests() -> list[dict[str, Any]]:
    return [{"request_id": "req-1", "account_id": BUYER, "kind": "deposit", "amount": D("5000.00"),
             "status": "approved"},
            {"request_id": "req-2", "account_id": BUYER, "kind": "withdrawal", "amount": D("10.00"),
             "status": "pending"}]  # fmt: skip


def world() -> rc.Scanned:
    return rc.Scanned(accounts(), [deposit(), buy_fill(), sell_fill()], positions(), orders(), trades(), requests())


def totals(scanned: rc.Scanned) -> dict[tuple[str, str, str], D]:
    return balances(scanned.entries)


# -- the whole -----------------------------------------------------------------------------------


def test_a_consistent_world_reconciles_with_its_figures() -> None:
    # GIVEN the tables of a consistent day WHEN reconciled
    result = rc.reconcile(world())
    # THEN no break, and the figures the operator reads
    assert result.breaks == []
    assert result.figures == {
        "accounts": 2, "trades": 1, "journal_entries": 3, "positions": 2, "open_reserved_orders": 1,
        "reserved_without_id": 0, "cash_moved": "4998.00", "fees_earned": "2.00",
        "deposits": "5000.00", "withdrawals": "0", "funding_pending": 1,
    }  # fmt: skip


def test_breaks_come_in_the_invariants_order_funding_after_cash() -> None:
    # GIVEN a world broken in every table: an unbalanced entry, a cash figure, a pos# attribute,
    # the available cash, the tape
    scanned = world()
    broken = accounts()
    broken[SELLER]["cash"] = D("998.00")
    broken[SELLER]["pos#AAPL"] = D("-9")
    broken[BUYER]["available_cash"] = D("3999.00")
    odd = Entry("odd", SELLER, TS, "memo", (Leg(SELLER, "memo", "XYZ", D("1")),))
    scanned = replace(scanned, accounts=broken, entries=[*scanned.entries, odd],
                      trades=[*scanned.trades, {"symbol": "AAPL", "seq": 2, "quantity": D("1")}],
                      funding_requests=[])  # fmt: skip
    # WHEN reconciled
    breaks = rc.reconcile(scanned).breaks
    # THEN one line per break, grouped in the invariants' order
    assert [line.split(" ", 1)[0] for line in breaks] == [
        "entry",  # 1. journal
        "cash", "cash",  # 2. cash of the seller, and conservation
        "ledger",  # 6. funding: the deposit's entry has no approved request
        "account",  # 3. pos#AAPL
        "available",  # 4. reservations
        "AAPL:", "2",  # 5. the tape: shares, and fill entries
    ]


# -- 1. the journal ------------------------------------------------------------------------------


def test_every_entry_balances_and_clearing_nets_to_zero() -> None:
    scanned = world()
    assert rc.journal_balances(scanned.entries, totals(scanned)) == []


def test_an_unbalanced_entry_and_a_one_sided_trade_are_breaks() -> None:
    # GIVEN the buyer's fill posted without the seller's, and an entry off by a cent
    off = Entry("off", BUYER, TS, "fill", (Leg(BUYER, "cash", "USD", D("0.01")),))
    entries = [deposit(), buy_fill(), off]
    # WHEN checked
    breaks = rc.journal_balances(entries, balances(entries))
    # THEN the entry, then clearing per asset (sorted)
    assert breaks == [
        f"entry off of {BUYER} does not balance: {{'USD': Decimal('0.01')}}",
        "clearing AAPL is -10, not 0 (a trade with one side posted)",
        "clearing USD is 1000.00, not 0 (a trade with one side posted)",
    ]


def test_ledger_holdings_sum_settled_and_pending_and_leave_the_house_out() -> None:
    entries = [*world().entries, Entry("settle", BUYER, TS, "settlement", (
        Leg(BUYER, "pending_cash", "USD", D("1001.00")), Leg(BUYER, "cash", "USD", D("-1001.00")),
        Leg(BUYER, "pending_securities", "AAPL", D("-10")), Leg(BUYER, "securities", "AAPL", D("10")),
    ))]  # fmt: skip
    cash, shares = rc.ledger_holdings(balances(entries))
    assert dict(cash) == {BUYER: D("3999.00"), SELLER: D("999.00")}
    assert dict(shares) == {(BUYER, "AAPL"): D("10"), (SELLER, "AAPL"): D("-10")}


# -- 2. cash -------------------------------------------------------------------------------------


def test_cash_moved_plus_fees_is_the_net_deposits() -> None:
    scanned = world()
    check = rc.cash_matches_ledger(scanned.accounts, totals(scanned))
    assert (check.breaks, check.moved, check.fee_income) == ([], D("4998.00"), D("2.00"))


def test_an_account_whose_cash_is_not_its_ledger_cash_is_a_break_and_cash_is_not_conserved() -> None:
    # GIVEN the seller's item credited a cent too much
    broken = accounts()
    broken[SELLER]["cash"] = D("999.01")
    # WHEN checked
    check = rc.cash_matches_ledger(broken, totals(world()))
    # THEN its line, and the conservation line
    assert check.breaks == [
        f"cash of {SELLER}: 999.01 - opening 0 != ledger 999.00",
        "cash not conserved: accounts moved 4998.01, fees earned 2.00, net deposits 5000.00",
    ]


def test_an_account_without_opening_cash_opened_with_its_cash() -> None:
    # GIVEN an item with no opening_cash and no ledger: it moved nothing
    items = {**accounts(), "acc-z": {"account_id": "acc-z", "cash": D("700.00")}}
    assert rc.cash_matches_ledger(items, totals(world())).breaks == []


# -- 3. positions --------------------------------------------------------------------------------


def test_positions_match_the_ledger_and_the_account_items() -> None:
    scanned = world()
    assert rc.positions_match_ledger(scanned.accounts, scanned.positions, totals(scanned)) == []


def test_a_position_off_the_ledger_a_ledger_without_position_and_a_stale_pos_attribute_are_breaks() -> None:
    # GIVEN the buyer's position lost a share, the seller's is missing, and an item says 11
    held = [Position(BUYER, "AAPL", quantity=D("9"), bought=D("10"))]
    items = accounts()
    items[BUYER]["pos#AAPL"] = D("11")
    # WHEN checked
    breaks = rc.positions_match_ledger(items, held, totals(world()))
    # THEN each is one line
    assert breaks == [
        f"position ('{BUYER}', 'AAPL'): 9 != ledger 10",
        f"ledger holds -10 AAPL for {SELLER} but there is no position",
        f"account item pos#AAPL of {BUYER} is 11, position 9",
        f"account item pos#AAPL of {SELLER} is -10, position 0",
    ]


# -- 4. reservations -----------------------------------------------------------------------------


def test_the_account_items_reserve_what_the_open_orders_hold() -> None:
    scanned = world()
    check = rc.reservations_match_orders(scanned.accounts, scanned.positions, scanned.orders)
    assert (check.breaks, check.without_id) == ([], 0)


def test_a_filled_order_still_reserved_on_the_item_is_a_leak_and_wrong_figures_are_breaks() -> None:
    # GIVEN the resting buy filled (no longer open), but the item kept its reservation
    done = [{**orders()[0], "status": "filled"}]
    # WHEN checked
    check = rc.reservations_match_orders(accounts(), positions(), done)
    # THEN the available cash, the buying power and the leaked id are breaks
    assert sorted(check.breaks) == sorted([
        f"available cash of {BUYER} is 3499.00, expected 3999.00",
        f"buying#AAPL of {BUYER} is 15, expected 10",
        f"leaked reservation o-1 of {BUYER}: held on the account item, no open order holds it",
    ])  # fmt: skip


def test_an_open_order_missing_from_the_set_is_counted_not_a_break() -> None:
    # GIVEN an item whose reservation set predates the order (no set at all)
    items = accounts()
    del items[BUYER]["reservations"]
    # WHEN checked
    check = rc.reservations_match_orders(items, positions(), orders())
    # THEN no break, and the order counted as reserved without an id
    assert (check.breaks, check.without_id) == ([], 1)


def test_a_sell_order_lowers_what_can_be_sold() -> None:
    # GIVEN an open reserved sell of 4 of the buyer's 10 shares, and the item saying 10 sellable
    sell = {"order_id": "o-2", "account_id": BUYER, "symbol": "AAPL", "side": "sell", "status": "partially_filled",
            "reserved": True, "remaining_quantity": D("4")}  # fmt: skip
    items = accounts()
    items[BUYER]["reservations"] = {"o-1", "o-2"}
    # WHEN checked THEN sellable must be 6
    check = rc.reservations_match_orders(items, positions(), [*orders(), sell])
    assert check.breaks == [f"sellable#AAPL of {BUYER} is 10, expected 6"]


# -- 5. the tape ---------------------------------------------------------------------------------


def test_the_tape_matches_the_shares_bought_and_sold_and_the_fill_entries() -> None:
    scanned = world()
    assert rc.tape_matches_positions(scanned.tape, scanned.positions, scanned.entries) == []


def test_the_tape_leaves_out_the_sequence_markers() -> None:
    assert [t["seq"] for t in world().tape] == [1]


def test_a_trade_on_the_tape_that_no_position_took_is_a_break() -> None:
    # GIVEN a second trade on the tape that no position or fill entry shows
    scanned = world()
    tape = [*scanned.tape, {"symbol": "AAPL", "seq": 2, "quantity": D("3")}]
    # WHEN checked
    breaks = rc.tape_matches_positions(tape, scanned.positions, scanned.entries)
    # THEN the shares per symbol and the count of fill entries
    assert breaks == ["AAPL: tape 13 shares, bought 10, sold 10",
                      "2 fill entries for 2 trades on the tape (expected 4)"]  # fmt: skip


# -- 6. funding ----------------------------------------------------------------------------------


def test_every_approved_request_has_its_entry_and_every_funding_entry_a_request() -> None:
    check = rc.funding_matches_ledger(requests(), world().entries)
    assert check.breaks == []
    assert check.figures == {"deposits": "5000.00", "withdrawals": "0", "funding_pending": 1}


def test_a_request_without_entry_a_wrong_amount_and_an_entry_without_request_are_breaks() -> None:
    # GIVEN the deposit approved for 5000.50, a withdrawal approved but never posted, and a
    # funding entry nobody approved
    stray = Entry("funding:req-9", SELLER, TS, "funding",
                  (Leg(SELLER, "cash", "USD", D("1.00")), Leg("house", "bank", "USD", D("-1.00"))))  # fmt: skip
    wanted = [{**requests()[0], "amount": D("5000.50")},
              {"request_id": "req-3", "account_id": SELLER, "kind": "withdrawal", "amount": D("5.00"),
               "status": "approved"}]  # fmt: skip
    # WHEN checked
    check = rc.funding_matches_ledger(wanted, [*world().entries, stray])
    # THEN one line each, and the approved totals
    assert check.breaks == [
        f"deposit req-1: ledger moves 5000.00 for {BUYER}, expected 5000.50 for {BUYER}",
        f"withdrawal req-3 of {SELLER} is approved but not in the ledger",
        f"ledger entry funding:req-9 of {SELLER} has no approved funding request",
    ]
    assert check.figures == {"deposits": "5000.50", "withdrawals": "5.00", "funding_pending": 0}


def test_a_reconciliation_tried_again_says_which_breaks_it_found(monkeypatch: Any, capsys: Any) -> None:
    from nexus import cli_money

    # GIVEN tables whose first two reconciliations find breaks (consumers still applying), the third none
    found = iter([["cash of acc-1: 5 - opening 0 != ledger 4", "b2", "b3", "b4"], ["cash of acc-1: 5"], []])
    monkeypatch.setattr(cli_money, "reconcile_tables", lambda table: rc.Reconciliation(breaks=next(found)))
    monkeypatch.setattr(cli_money.time, "sleep", lambda seconds: None)
    # WHEN it is reconciled until clean
    result = cli_money.reconcile_until_clean(object(), wait=60.0)
    # THEN it ends clean, and each pass that found breaks said how many and named the first three
    assert result.breaks == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("reconciliation: 4 breaks after ")
    assert "(cash of acc-1: 5 - opening 0 != ledger 4; b2; b3), trying again" in lines[0]
    assert "b4" not in lines[0]
    assert lines[1].startswith("reconciliation: 1 breaks after ") and "(cash of acc-1: 5)" in lines[1]
