"""The invariants ``nexus reconcile`` checks, as pure functions over what it scanned: the account
items, the journal, the positions, the order items, the trade tape and the funding requests.
No I/O here (``nexus.cli_money`` scans the tables and prints); each function returns its breaks,
one line each, in the order the operator reads them.

1. ``journal_balances``: every journal entry balances per asset, and the venue's clearing
   account nets to zero;
2. ``cash_matches_ledger``: each account's ``cash`` = ``opening_cash`` + its ledger cash
   (``cash`` + ``pending_cash``), and cash is conserved: the accounts' cash changes plus the fee
   income sum to the net deposits (the house ``bank`` account, the contra of every funding
   movement);
3. ``positions_match_ledger``: each position's quantity = its ledger securities (settled +
   pending) = the account item's ``pos#S``;
4. ``reservations_match_orders``: ``available_cash`` = ``cash`` - what the open reserved buys
   still reserve, ``buying#S`` / ``sellable#S`` = position +/- the open reserved orders'
   remaining quantities, and every id in the account item's ``reservations`` set is held by an
   open reserved order, OCO group or waiting replace;
5. ``tape_matches_positions``: per symbol, the shares on the tape = the shares bought = the
   shares sold in the positions, and two fill entries per trade on the tape;
6. ``funding_matches_ledger``: every approved deposit and withdrawal has its journal entry
   ``funding:<request_id>`` of its amount, and every funding entry an approved request.

``reconcile`` runs them all and gathers the figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from nexus_common.risk import RESERVATIONS, attr, expected_reservations, held_reservation_ids
from nexus_portfolio.ledger import Entry, balances
from nexus_portfolio.positions import Position

OPEN_STATUSES: Final = ("pending_new", "new", "partially_filled")
FUNDING_CONTRA: Final = "bank"  # the house's ledger account of cash outside the venue (nexus_portfolio.funding)
ZERO: Final = Decimal(0)

Totals = Mapping[tuple[str, str, str], Decimal]  # (book, ledger account, asset) -> balance
Item = Mapping[str, Any]


@dataclass
class Reconciliation:
    breaks: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def brk(self, text: str) -> None:
        self.breaks.append(text)


@dataclass(frozen=True)
class Scanned:
    """What a reconciliation reads, as the tables hold it (entries and positions parsed)."""

    accounts: Mapping[str, Item]  # account id -> the account item
    entries: Sequence[Entry]
    positions: Sequence[Position]
    orders: Sequence[Item]
    trades: Sequence[Item]  # the trades table's items, sequence markers included
    funding_requests: Sequence[Item] = ()

    @property
    def tape(self) -> list[Item]:
        """The trades on the tape (``seq`` > 0)."""
        return [t for t in self.trades if int(t["seq"]) > 0]


# -- 1. the journal ----------------------------------------------------------------------------


def journal_balances(entries: Iterable[Entry], totals: Totals) -> list[str]:
    """Every entry balances per asset; the house clearing account nets to zero per asset."""
    breaks = []
    for entry in entries:
        if entry.imbalance():
            breaks.append(f"entry {entry.entry_id} of {entry.account_id} does not balance: {entry.imbalance()}")
    for (book, account, asset), amount in sorted(totals.items()):
        if book == "house" and account == "clearing" and amount != 0:
            breaks.append(f"clearing {asset} is {amount}, not 0 (a trade with one side posted)")
    return breaks


def ledger_holdings(totals: Totals) -> tuple[dict[str, Decimal], dict[tuple[str, str], Decimal]]:
    """Per account, its ledger cash (settled + pending); per (account, symbol), its ledger shares."""
    cash: dict[str, Decimal] = defaultdict(Decimal)
    shares: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (book, account, asset), amount in totals.items():
        if book == "house":
            continue
        if account in ("cash", "pending_cash"):
            cash[book] += amount
        elif account in ("securities", "pending_securities"):
            shares[(book, asset)] += amount
    return cash, shares


# -- 2. cash -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CashCheck:
    breaks: list[str]
    moved: Decimal  # the accounts' cash changes since their opening cash
    fee_income: Decimal


def cash_matches_ledger(accounts: Mapping[str, Item], totals: Totals) -> CashCheck:
    """Each account's cash change is its ledger cash; cash moved + fees earned = net deposits."""
    ledger_cash, _ = ledger_holdings(totals)
    breaks = []
    moved = ZERO
    for account_id, item in accounts.items():
        cash = Decimal(str(item.get("cash", 0)))
        opening = Decimal(str(item.get("opening_cash", cash)))
        moved += cash - opening
        ledger = ledger_cash.get(account_id, ZERO)
        if cash - opening != ledger:
            breaks.append(f"cash of {account_id}: {cash} - opening {opening} != ledger {ledger}")
    fee_income = totals.get(("house", "fees", "USD"), ZERO)
    bank = totals.get(("house", FUNDING_CONTRA, "USD"), ZERO)  # minus the net deposits
    if moved + fee_income + bank != 0:
        breaks.append(f"cash not conserved: accounts moved {moved}, fees earned {fee_income}, "
                      f"net deposits {-bank}")  # fmt: skip
    return CashCheck(breaks, moved, fee_income)


# -- 3. positions ------------------------------------------------------------------------------


def holdings(positions: Iterable[Position]) -> dict[tuple[str, str], Decimal]:
    """Per (account, symbol), the position's quantity."""
    return {(p.account_id, p.symbol): p.quantity for p in positions}


def positions_match_ledger(accounts: Mapping[str, Item], positions: Sequence[Position], totals: Totals) -> list[str]:
    """Each position's quantity is its ledger shares, the ledger holds no shares without a
    position, and each account item's ``pos#S`` is the position's quantity."""
    _, ledger_shares = ledger_holdings(totals)
    breaks = []
    for position in positions:
        key = (position.account_id, position.symbol)
        if position.quantity != ledger_shares.get(key, ZERO):
            breaks.append(f"position {key}: {position.quantity} != ledger {ledger_shares.get(key, ZERO)}")
    held = holdings(positions)
    for key, quantity in ledger_shares.items():
        if key not in held and quantity != 0:
            breaks.append(f"ledger holds {quantity} {key[1]} for {key[0]} but there is no position")
    for account_id, item in accounts.items():
        for name, value in item.items():
            if name.startswith("pos#"):
                key = (account_id, name[4:])
                if Decimal(str(value)) != held.get(key, ZERO):
                    breaks.append(f"account item {name} of {account_id} is {value}, position {held.get(key, ZERO)}")
    return breaks


# -- 4. reservations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationCheck:
    breaks: list[str]
    without_id: int  # open reserved orders whose id the account's set lacks (reserved before it existed)


def reservations_match_orders(
    accounts: Mapping[str, Item], positions: Sequence[Position], orders: Sequence[Item]
) -> ReservationCheck:
    """What the account items reserve is what the open orders hold (an OCO group once, price
    top-ups included), and no reservation id is held that no open order holds (a leak)."""
    held = holdings(positions)
    expected = expected_reservations(orders, OPEN_STATUSES)
    reserved_cash, open_qty = expected.cash, expected.quantity
    breaks = []
    for account_id, item in accounts.items():
        if "available_cash" in item:
            cash = Decimal(str(item["cash"]))
            available = cash - reserved_cash.get(account_id, ZERO)
            if Decimal(str(item["available_cash"])) != available:
                breaks.append(f"available cash of {account_id} is {item['available_cash']}, expected {available}")
        for symbol in {name.split("#", 1)[1] for name in item if "#" in name}:
            position = held.get((account_id, symbol), ZERO)
            for kind, side, sign in (("buying", "buy", 1), ("sellable", "sell", -1)):
                if attr(kind, symbol) in item:
                    want = position + sign * open_qty.get((account_id, symbol, side), ZERO)
                    if Decimal(str(item[attr(kind, symbol)])) != want:
                        breaks.append(f"{kind}#{symbol} of {account_id} is {item[attr(kind, symbol)]}, expected {want}")
    held_ids = held_reservation_ids(orders, OPEN_STATUSES)
    without_id = 0
    for account_id, item in accounts.items():
        in_set = {str(rid) for rid in item.get(RESERVATIONS) or ()}
        expected_ids = held_ids.get(account_id, set())
        for rid in sorted(in_set - expected_ids):
            breaks.append(f"leaked reservation {rid} of {account_id}: held on the account item, no open order holds it")
        without_id += len(expected_ids - in_set)
    return ReservationCheck(breaks, without_id)


# -- 5. the tape -------------------------------------------------------------------------------


def tape_matches_positions(tape: Sequence[Item], positions: Iterable[Position], entries: Iterable[Entry]) -> list[str]:
    """Per symbol, the shares on the tape = the shares bought = the shares sold; two fill
    entries per trade on the tape."""
    tape_shares: dict[str, Decimal] = defaultdict(Decimal)
    for trade in tape:
        tape_shares[str(trade["symbol"])] += Decimal(str(trade["quantity"]))
    bought: dict[str, Decimal] = defaultdict(Decimal)
    sold: dict[str, Decimal] = defaultdict(Decimal)
    for position in positions:
        bought[position.symbol] += position.bought
        sold[position.symbol] += position.sold
    breaks = []
    for symbol in sorted(set(tape_shares) | set(bought) | set(sold)):
        if not tape_shares.get(symbol, ZERO) == bought.get(symbol, ZERO) == sold.get(symbol, ZERO):
            breaks.append(f"{symbol}: tape {tape_shares.get(symbol, ZERO)} shares, bought {bought.get(symbol, ZERO)}, "
                          f"sold {sold.get(symbol, ZERO)}")  # fmt: skip
    fills = sum(1 for e in entries if e.kind == "fill")
    if fills != 2 * len(tape):
        breaks.append(f"{fills} fill entries for {len(tape)} trades on the tape (expected {2 * len(tape)})")
    return breaks


# -- 6. funding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FundingCheck:
    breaks: list[str]
    figures: dict[str, Any]  # deposits, withdrawals (approved, USD), funding_pending (requests)


def funding_matches_ledger(requests: Iterable[Item], entries: Iterable[Entry]) -> FundingCheck:
    """Every approved deposit or withdrawal has its journal entry ``funding:<id>`` of its amount
    on its account, and every funding entry an approved request (a platform started before the
    funding table existed has none)."""
    requests = list(requests)
    posted = {e.entry_id: e for e in entries if e.entry_id.startswith("funding:")}
    totals = {"deposit": ZERO, "withdrawal": ZERO}
    approved: set[str] = set()
    breaks = []
    for request in requests:
        if request.get("status") != "approved":
            continue
        entry_id = f"funding:{request['request_id']}"
        approved.add(entry_id)
        amount = Decimal(str(request["amount"]))
        kind = str(request["kind"])
        totals[kind] = totals.get(kind, ZERO) + amount
        entry = posted.get(entry_id)
        want = amount if kind == "deposit" else -amount
        if entry is None:
            breaks.append(f"{kind} {request['request_id']} of {request['account_id']} is approved "
                          "but not in the ledger")  # fmt: skip
            continue
        got = sum((leg.amount for leg in entry.legs
                   if leg.book == request["account_id"] and leg.account == "cash"), ZERO)  # fmt: skip
        if entry.account_id != request["account_id"] or got != want:
            breaks.append(f"{kind} {request['request_id']}: ledger moves {got} for {entry.account_id}, "
                          f"expected {want} for {request['account_id']}")  # fmt: skip
    for entry_id in sorted(set(posted) - approved):
        breaks.append(f"ledger entry {entry_id} of {posted[entry_id].account_id} has no approved funding request")
    figures = {
        "deposits": str(totals["deposit"]),
        "withdrawals": str(totals["withdrawal"]),
        "funding_pending": sum(1 for r in requests if r.get("status") == "pending"),
    }
    return FundingCheck(breaks, figures)


# -- all of them -------------------------------------------------------------------------------


def reconcile(scanned: Scanned) -> Reconciliation:
    """Every invariant over one scan of the tables; the breaks in the order above (funding's
    after cash's), and the figures the operator reads."""
    tape = scanned.tape
    totals = balances(scanned.entries)
    cash = cash_matches_ledger(scanned.accounts, totals)
    funding = funding_matches_ledger(scanned.funding_requests, scanned.entries)
    reservations = reservations_match_orders(scanned.accounts, scanned.positions, scanned.orders)
    breaks = [
        *journal_balances(scanned.entries, totals),
        *cash.breaks,
        *funding.breaks,
        *positions_match_ledger(scanned.accounts, scanned.positions, totals),
        *reservations.breaks,
        *tape_matches_positions(tape, scanned.positions, scanned.entries),
    ]
    orders = scanned.orders
    figures = {
        "accounts": len(scanned.accounts),
        "trades": len(tape),
        "journal_entries": len(scanned.entries),
        "positions": len(scanned.positions),
        "open_reserved_orders": sum(1 for o in orders if o.get("status") in OPEN_STATUSES and o.get("reserved")),
        "reserved_without_id": reservations.without_id,
        "cash_moved": str(cash.moved),
        "fees_earned": str(cash.fee_income),
        **funding.figures,
    }
    return Reconciliation(breaks, figures)
