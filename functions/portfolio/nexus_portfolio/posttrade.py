"""Trades -> fills -> positions, journal entries and settlement obligations.

Pure domain behind ports. For each ``trade`` event, one ``Fill`` per side (maker, taker) with its
cash amount and fee (``nexus_common.fees``: rounded once, to the cent, ROUND_HALF_EVEN). The fills
of one event are grouped by (account, symbol): a self-trade is two fills on one position.

Per group, in this order: the fill journal entries (conditional puts, ids from the event), the
settlement obligations (conditional puts), then the position (one conditional write guarded by
its ``last_seq``). The position's ``last_seq`` gates the whole group: when the position has seen
this ``seq`` or a later one, nothing is written, so a redelivered or an older event changes
nothing anywhere; when a run died between the puts and the position write, the retry finds the
puts done and writes the position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.calendar import settlement_date, trade_date
from nexus_common.fees import FeeSchedule, Liquidity, cash_amount, fee

from nexus_portfolio.ledger import Entry, fill_entry
from nexus_portfolio.positions import Position, apply_fill
from nexus_portfolio.settlement import Obligation, obligation_for_fill


@dataclass(frozen=True)
class Fill:
    account_id: str
    symbol: str
    side: str
    liquidity: Liquidity
    quantity: Decimal
    price: Decimal
    cash: Decimal
    fee: Decimal
    event_id: str
    seq: int
    ts: datetime

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "buy" else -self.quantity

    def entry(self) -> Entry:
        return fill_entry(
            event_id=self.event_id, liquidity=self.liquidity, account_id=self.account_id,
            symbol=self.symbol, side=self.side, quantity=self.quantity, price=self.price,
            cash=self.cash, fee=self.fee, ts=self.ts,
        )

    def obligation(self) -> Obligation:
        return obligation_for_fill(
            account_id=self.account_id, symbol=self.symbol, side=self.side, liquidity=self.liquidity,
            event_id=self.event_id, quantity=self.quantity, cash=self.cash,
            trade_day=trade_date(self.ts), settle_day=settlement_date(self.ts),
        )


def fills_of(event: Any, fees: FeeSchedule) -> list[Fill]:
    if getattr(event, "type", None) != "trade":
        return []
    amount = cash_amount(event.quantity, event.price)
    taker_side = event.aggressor_side
    maker_side = "sell" if taker_side == "buy" else "buy"
    sides: tuple[tuple[str, str, Liquidity], ...] = (
        (event.maker_account_id, maker_side, "maker"),
        (event.taker_account_id, taker_side, "taker"),
    )
    return [
        Fill(
            account_id=account_id, symbol=event.symbol, side=side, liquidity=liquidity,
            quantity=event.quantity, price=event.price, cash=amount, fee=fee(fees, liquidity, amount),
            event_id=event.event_id, seq=event.seq, ts=event.ts,
        )
        for account_id, side, liquidity in sides
    ]


class PositionStore(Protocol):
    def get(self, account_id: str, symbol: str) -> Position | None: ...

    def save(self, position: Position, previous_seq: int | None) -> bool:
        """Write unless the item's ``last_seq`` is no longer ``previous_seq``; False if refused."""


class EntryWriter(Protocol):
    def post(self, entry: Entry) -> bool: ...


class ObligationWriter(Protocol):
    def add(self, obligation: Obligation) -> bool: ...


class StaleWrite(RuntimeError):
    """The position changed between read and write (another writer): the record is retried."""


def apply_events(
    events: Iterable[Any],
    positions: PositionStore,
    journal: EntryWriter,
    obligations: ObligationWriter,
    fees: FeeSchedule,
) -> int:
    """Apply trade events in order; returns how many positions were written."""
    written = 0
    for event in events:
        groups: dict[tuple[str, str], list[Fill]] = {}
        for fill in fills_of(event, fees):
            groups.setdefault((fill.account_id, fill.symbol), []).append(fill)
        for (account_id, symbol), fills in groups.items():
            current = positions.get(account_id, symbol) or Position(account_id, symbol)
            if current.last_seq is not None and current.last_seq >= event.seq:
                continue  # seen: a redelivery, or older than what the position holds
            position = current
            for fill in fills:
                journal.post(fill.entry())
                obligations.add(fill.obligation())
                position = apply_fill(position, fill.signed_quantity, fill.price, fill.fee, fill.seq)
            if not positions.save(position, current.last_seq):
                raise StaleWrite(f"position {account_id}/{symbol} changed while applying {event.event_id}")
            written += 1
    return written
