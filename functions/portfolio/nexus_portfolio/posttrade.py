"""Trades -> fills -> positions, journal entries and settlement obligations.

Pure domain; the use cases ``apply_events``/``apply_batch`` that write it are in ``service.py``.
For each ``trade`` event, one ``Fill`` per side (maker, taker) with its
cash amount and fee (``nexus_common.fees``: rounded once, to the cent, ROUND_HALF_EVEN). The fills
of one event are grouped by (account, symbol): a self-trade is two fills on one position.
For each ``venue_fill`` event (a routed order's fill on an external venue), one ``Fill``: the
account's side only (the other side is the venue's, not an account of ours), with the same cash
amount rule, the event's ``fee`` as it is (signed: negative is a rebate; never the platform's
schedule) and the venue and its MIC, which the fill's journal entry names. It is booked, and
guarded, exactly as a trade's fill: the same entry, obligation and position rules below.
``route_ended`` books nothing.

Per group, in this order: the fill journal entries (conditional puts, ids from the event), the
settlement obligations (conditional puts), then the position (one conditional write guarded by
its ``last_seq``). The position's ``last_seq`` gates the whole group: when the position has seen
this ``seq`` or a later one, nothing is written, so a redelivered or an older event changes
nothing anywhere; when a run died between the puts and the position write, the retry finds the
puts done and writes the position.

``plan_batch`` / ``apply_batch`` do the same for a whole batch of events with one write per
position: the rule above is replayed in memory, in event order, from the positions as they were
before the batch, so the result is exactly that of ``apply_events`` (redelivered and older
events dropped by the same ``last_seq`` rule). The journal entries and obligations of the batch
are written first (entries are immutable and their ids come from the events, so writing one
again changes nothing; an obligation is only written when it does not exist yet, so a settling
or settled one is never put back to pending), then each position, guarded by the ``last_seq``
it had before the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

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
    venue: str | None = None  # a routed order's fill: the external venue and its MIC
    mic: str | None = None

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "buy" else -self.quantity

    def entry(self) -> Entry:
        return fill_entry(
            event_id=self.event_id, liquidity=self.liquidity, account_id=self.account_id,
            symbol=self.symbol, side=self.side, quantity=self.quantity, price=self.price,
            cash=self.cash, fee=self.fee, ts=self.ts, venue=self.venue, mic=self.mic,
        )

    def obligation(self) -> Obligation:
        return obligation_for_fill(
            account_id=self.account_id, symbol=self.symbol, side=self.side, liquidity=self.liquidity,
            event_id=self.event_id, quantity=self.quantity, cash=self.cash,
            trade_day=trade_date(self.ts), settle_day=settlement_date(self.ts),
        )


def fills_of(event: Any, fees: FeeSchedule) -> list[Fill]:
    kind = getattr(event, "type", None)
    if kind == "venue_fill":
        return [
            Fill(
                account_id=event.account_id, symbol=event.symbol, side=event.side, liquidity=event.liquidity,
                quantity=event.quantity, price=event.price, cash=cash_amount(event.quantity, event.price),
                fee=event.fee, event_id=event.event_id, seq=event.seq, ts=event.ts,
                venue=event.venue, mic=event.mic,
            )
        ]
    if kind != "trade":
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


@dataclass
class BatchPlan:
    """What one batch writes: entries and obligations, then each position (with the ``last_seq``
    it must still have)."""

    entries: list[Entry]
    obligations: list[Obligation]
    positions: list[tuple[Position, int | None]]


def position_keys(events: Iterable[Any]) -> set[tuple[str, str]]:
    """The (account, symbol) positions that the trades and venue fills of ``events`` touch."""
    keys: set[tuple[str, str]] = set()
    for event in events:
        kind = getattr(event, "type", None)
        if kind == "trade":
            keys.add((event.maker_account_id, event.symbol))
            keys.add((event.taker_account_id, event.symbol))
        elif kind == "venue_fill":
            keys.add((event.account_id, event.symbol))
    return keys


def plan_batch(
    events: Iterable[Any], before: Mapping[tuple[str, str], Position | None], fees: FeeSchedule
) -> BatchPlan:
    """The writes of a batch (see the module docstring); ``before`` holds the position of each
    key of ``position_keys(events)`` before the batch (None: no position yet)."""
    current: dict[tuple[str, str], Position] = {}
    previous: dict[tuple[str, str], int | None] = {}
    entries: list[Entry] = []
    obligations: list[Obligation] = []
    for event in events:
        groups: dict[tuple[str, str], list[Fill]] = {}
        for fill in fills_of(event, fees):
            groups.setdefault((fill.account_id, fill.symbol), []).append(fill)
        for key, fills in groups.items():
            position = current.get(key) or before.get(key) or Position(*key)
            if position.last_seq is not None and position.last_seq >= event.seq:
                continue
            if key not in previous:
                previous[key] = position.last_seq
            for fill in fills:
                entries.append(fill.entry())
                obligations.append(fill.obligation())
                position = apply_fill(position, fill.signed_quantity, fill.price, fill.fee, fill.seq)
            current[key] = position
    return BatchPlan(entries, obligations, [(position, previous[key]) for key, position in current.items()])
