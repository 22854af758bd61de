"""The double-entry journal: entries of legs that balance per asset.

Pure domain. A leg is a signed balance change of one ledger account in one asset (``USD`` or a
symbol): positive legs are debits, negative legs credits, and every entry balances: for each
asset, its legs sum to zero. Ledger accounts:

* of a trading account: ``cash`` (settled USD), ``pending_cash`` (USD due to or from the trades
  not settled yet), ``securities`` and ``pending_securities`` (shares, per symbol);
* of the venue (book ``house``): ``clearing`` (the contra of every fill, per asset: it nets to
  zero over the two sides of each trade) and ``fees`` (fee income, USD).

Entries, each one item of ``LedgerTable`` written with one conditional put (never half):

* a fill (one per side of a trade, ``fill:<event_id>:<maker|taker>``): the buyer gets
  ``pending_securities +q`` and ``pending_cash -cash``, the seller the opposite, ``clearing``
  takes the other side; the fee moves ``cash -fee`` to ``house fees +fee``;
* a fill of a routed order on an external venue (a ``venue_fill`` event: one side only, the
  account's, same id and legs): ``clearing`` takes the venue's side, so it does not net to zero
  within our books; the fee is the venue's (signed: a rebate, negative, moves the other way,
  ``house fees -> cash``) and the memo names the venue and its MIC;
* a settlement (``settle:<batch_id>``): ``pending_cash -> cash`` and
  ``pending_securities -> securities`` for the netted amounts of one account, symbol and date;
* a reversal (``<entry_id>:reversal``): every leg of an entry negated (compensation).

Balances are projections: the sum of legs per (book, account, asset). An account's trade-date
cash is ``cash + pending_cash`` (what ``AccountsTable.cash`` holds, less ``opening_cash``), its
position ``securities + pending_securities``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from nexus_common.events import iso
from nexus_common.money import fmt

HOUSE = "house"
USD = "USD"


@dataclass(frozen=True)
class Leg:
    book: str  # a trading account id, or "house"
    account: str  # cash | pending_cash | securities | pending_securities | clearing | fees
    asset: str  # USD or a symbol
    amount: Decimal  # > 0 debit, < 0 credit

    def to_item(self) -> dict[str, Any]:
        return {"book": self.book, "account": self.account, "asset": self.asset, "amount": self.amount}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Leg:
        return cls(str(item["book"]), str(item["account"]), str(item["asset"]), Decimal(str(item["amount"])))


@dataclass(frozen=True)
class Entry:
    entry_id: str
    account_id: str  # the trading account the entry belongs to (the table's partition)
    ts: datetime
    kind: str  # fill | settlement | reversal
    legs: tuple[Leg, ...]
    memo: str = ""

    @property
    def entry_key(self) -> str:
        return f"{iso(self.ts)}#{self.entry_id}"

    def imbalance(self) -> dict[str, Decimal]:
        """Per asset, the sum of the legs where it is not zero (empty when balanced)."""
        return {asset: total for asset, total in sums_by_asset(self.legs).items() if total != 0}

    def to_item(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "entry_key": self.entry_key,
            "entry_id": self.entry_id,
            "ts": iso(self.ts),
            "kind": self.kind,
            "memo": self.memo,
            "legs": [leg.to_item() for leg in self.legs],
        }

    def to_wire(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "ts": iso(self.ts),
            "kind": self.kind,
            "memo": self.memo,
            "legs": [
                {"book": leg.book, "account": leg.account, "asset": leg.asset, "amount": fmt(leg.amount)}
                for leg in self.legs
            ],
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Entry:
        return cls(
            entry_id=str(item["entry_id"]),
            account_id=str(item["account_id"]),
            ts=datetime.fromisoformat(str(item["ts"]).replace("Z", "+00:00")),
            kind=str(item["kind"]),
            legs=tuple(Leg.from_item(leg) for leg in item["legs"]),
            memo=str(item.get("memo", "")),
        )


class UnbalancedEntry(ValueError):
    """An entry whose legs do not sum to zero for some asset: never posted."""


def sums_by_asset(legs: Iterable[Leg]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        totals[leg.asset] += leg.amount
    return dict(totals)


def balanced(entry: Entry) -> Entry:
    if entry.imbalance():
        raise UnbalancedEntry(f"entry {entry.entry_id} does not balance: {entry.imbalance()}")
    return entry


def _legs(*legs: Leg) -> tuple[Leg, ...]:
    return tuple(leg for leg in legs if leg.amount != 0)


def fill_entry(
    *,
    event_id: str,
    liquidity: str,
    account_id: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    cash: Decimal,
    fee: Decimal,
    ts: datetime,
    venue: str | None = None,
    mic: str | None = None,
) -> Entry:
    """``venue``/``mic``: where a routed order's fill executed (None: on our own book)."""
    sign = 1 if side == "buy" else -1
    memo = f"{side} {fmt(quantity)} {symbol} @ {fmt(price)} ({liquidity})"
    if venue is not None:
        memo += f" on {venue}" + (f" [{mic}]" if mic else "")
    return balanced(
        Entry(
            entry_id=f"fill:{event_id}:{liquidity}",
            account_id=account_id,
            ts=ts,
            kind="fill",
            memo=memo,
            legs=_legs(
                Leg(account_id, "pending_securities", symbol, sign * quantity),
                Leg(HOUSE, "clearing", symbol, -sign * quantity),
                Leg(account_id, "pending_cash", USD, -sign * cash),
                Leg(HOUSE, "clearing", USD, sign * cash),
                Leg(account_id, "cash", USD, -fee),
                Leg(HOUSE, "fees", USD, fee),
            ),
        )
    )


def settlement_entry(
    *, batch_id: str, account_id: str, symbol: str, cash: Decimal, quantity: Decimal, ts: datetime
) -> Entry:
    """Netted ``cash`` (signed: + the account receives) and ``quantity`` (+ it receives)."""
    return balanced(
        Entry(
            entry_id=f"settle:{batch_id}",
            account_id=account_id,
            ts=ts,
            kind="settlement",
            memo=f"settle {symbol} {batch_id}",
            legs=_legs(
                Leg(account_id, "pending_cash", USD, -cash),
                Leg(account_id, "cash", USD, cash),
                Leg(account_id, "pending_securities", symbol, -quantity),
                Leg(account_id, "securities", symbol, quantity),
            ),
        )
    )


def reversal(entry: Entry, ts: datetime) -> Entry:
    return balanced(
        Entry(
            entry_id=f"{entry.entry_id}:reversal",
            account_id=entry.account_id,
            ts=ts,
            kind="reversal",
            memo=f"reversal of {entry.entry_id}",
            legs=tuple(Leg(leg.book, leg.account, leg.asset, -leg.amount) for leg in entry.legs),
        )
    )


def balances(entries: Iterable[Entry]) -> dict[tuple[str, str, str], Decimal]:
    """The projection: balance per (book, ledger account, asset)."""
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        for leg in entry.legs:
            totals[(leg.book, leg.account, leg.asset)] += leg.amount
    return dict(totals)
