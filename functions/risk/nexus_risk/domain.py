"""The account side of execution events: cash, buying power, holdings and reservation releases.

Pure domain (no boto3). One ``AccountChange`` per event per account: deltas that the data access
adds to the account item with one conditional write, guarded by the account's watermark for the
event's symbol (``seq#S``), so a redelivered or older event changes nothing.

The risk consumer owns ``cash`` on the account item: a fill moves it by the fill's cash amount
and fee (``nexus_common.fees``), trade date, as the ledger's fill entry does; ``available_cash``
moves by the same amount plus what the order's reservation gives back (``nexus_common.risk``).
Sale proceeds are available at once (buying power on trade date); the cash itself settles T+2
in the ledger (pending cash -> cash), which does not change ``cash`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus_common.fees import FeeSchedule, Liquidity, cash_amount, fee
from nexus_common.risk import ZERO, fill_release, reserve_amount


@dataclass(frozen=True)
class OrderFacts:
    """What the orders table says of an order's reservation (immutable after the first put)."""

    order_id: str
    side: str
    quantity: Decimal
    reserved: bool
    reserve_rate: Decimal | None


@dataclass
class AccountChange:
    account_id: str
    symbol: str
    seq: int
    event_id: str
    cash: Decimal = ZERO
    available: Decimal = ZERO
    pos: Decimal = ZERO
    sellable: Decimal = ZERO
    buying: Decimal = ZERO
    notes: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not any((self.cash, self.available, self.pos, self.sellable, self.buying))


FactsLookup = Callable[[str], OrderFacts | None]


def _fill(
    change: AccountChange,
    side: str,
    liquidity: Liquidity,
    quantity: Decimal,
    price: Decimal,
    remaining_after: Decimal,
    facts: OrderFacts | None,
    fees: FeeSchedule,
) -> None:
    amount = cash_amount(quantity, price)
    charged = fee(fees, liquidity, amount)
    reserved = facts is not None and facts.reserved
    if side == "buy":
        change.cash -= amount + charged
        change.available -= amount + charged
        change.pos += quantity
        change.sellable += quantity
        if reserved and facts is not None and facts.reserve_rate is not None:
            change.available += fill_release(quantity, remaining_after, facts.reserve_rate)
        else:
            change.buying += quantity
    else:
        change.cash += amount - charged
        change.available += amount - charged
        change.pos -= quantity
        change.buying -= quantity
        if not reserved:
            change.sellable -= quantity
    change.notes.append(f"{liquidity} {side} {quantity}@{price} fee {charged}")


def _release(change: AccountChange, facts: OrderFacts | None, remaining: Decimal) -> None:
    if facts is None or not facts.reserved or remaining <= 0:
        return
    if facts.side == "buy":
        if facts.reserve_rate is not None:
            change.available += reserve_amount(remaining, facts.reserve_rate)
        change.buying -= remaining
    else:
        change.sellable += remaining


def account_changes(event: Any, facts: FactsLookup, fees: FeeSchedule) -> list[AccountChange]:
    """The changes one execution event makes, one per account (maker and taker of a self-trade
    are merged into one change, so the account item gets one write for the event)."""
    by_account: dict[str, AccountChange] = {}

    def change_for(account_id: str) -> AccountChange:
        found = by_account.get(account_id)
        if found is None:
            found = AccountChange(account_id, event.symbol, event.seq, event.event_id)
            by_account[account_id] = found
        return found

    kind = getattr(event, "type", None)
    if kind == "trade":
        taker_side = event.aggressor_side
        maker_side = "sell" if taker_side == "buy" else "buy"
        _fill(
            change_for(event.maker_account_id), maker_side, "maker", event.quantity, event.price,
            event.maker_remaining_quantity, facts(event.maker_order_id), fees,
        )
        _fill(
            change_for(event.taker_account_id), taker_side, "taker", event.quantity, event.price,
            event.taker_remaining_quantity, facts(event.taker_order_id), fees,
        )
    elif kind in ("cancelled", "expired"):
        _release(change_for(event.account_id), facts(event.order_id), event.remaining_quantity)
    elif kind == "rejected":
        found = facts(event.order_id)
        _release(change_for(event.account_id), found, found.quantity if found else ZERO)
    return [change for change in by_account.values() if not change.is_empty()]


def changes_of(events: Iterable[Any], facts: FactsLookup, fees: FeeSchedule) -> list[AccountChange]:
    return [change for event in events for change in account_changes(event, facts, fees)]
