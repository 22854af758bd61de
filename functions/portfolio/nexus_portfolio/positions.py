"""Positions and P&L from fills: signed quantity, cost basis, realized P&L (average cost).

Pure domain. ``cost`` is the signed cost of the open position (long: what it cost, short: minus
what the sale brought); the average cost is ``cost / quantity``. A fill that adds to the position
(or opens one) adds ``quantity x price`` to the cost. A fill that reduces it takes the closed
fraction of the cost away, rounded to 8 dp with ROUND_HALF_EVEN (``cost_removed``; the whole cost
when the position closes, so nothing is left behind), and realizes
``closed x price - cost_removed`` (long) or ``cost_removed - closed x price`` (short, sign
included). A fill larger than the position closes it and opens the rest the other way. So, for
any sequence of fills, exactly: ``quantity = sum(signed fills)`` and
``realized - cost = -sum(signed quantity x price)``.

Fees are kept apart (``fees``); realized P&L is gross of fees. Unrealized P&L at a price ``p`` is
``quantity x p - cost``. Shown values are rounded for display only: USD 2 dp, average cost 4 dp,
ROUND_HALF_EVEN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from nexus_common.money import fmt, quantize_price, quantize_quantity, quantize_usd

ZERO = Decimal(0)


@dataclass(frozen=True)
class Position:
    account_id: str
    symbol: str
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO  # shares bought, ever
    sold: Decimal = ZERO  # shares sold, ever
    last_seq: int | None = None

    @property
    def average_cost(self) -> Decimal | None:
        if self.quantity == 0:
            return None
        return quantize_price(self.cost / self.quantity, ROUND_HALF_EVEN)

    def unrealized_pnl(self, price: Decimal | None) -> Decimal:
        if price is None or self.quantity == 0:
            return ZERO
        return self.quantity * price - self.cost

    def market_value(self, price: Decimal | None) -> Decimal:
        if price is None:
            return self.cost
        return self.quantity * price

    def to_wire(self, last_price: Decimal | None) -> dict[str, Any]:
        average = self.average_cost
        return {
            "symbol": self.symbol,
            "quantity": fmt(self.quantity),
            "average_cost": None if average is None else fmt(average),
            "cost_basis": fmt(quantize_usd(self.cost)),
            "last_price": None if last_price is None else fmt(last_price),
            "market_value": fmt(quantize_usd(self.market_value(last_price))),
            "realized_pnl": fmt(quantize_usd(self.realized_pnl)),
            "unrealized_pnl": fmt(quantize_usd(self.unrealized_pnl(last_price))),
            "fees": fmt(quantize_usd(self.fees)),
            "bought": fmt(self.bought),
            "sold": fmt(self.sold),
        }


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def apply_fill(position: Position, signed_quantity: Decimal, price: Decimal, fee: Decimal, seq: int) -> Position:
    """The position after one fill (``signed_quantity`` > 0 buys, < 0 sells)."""
    quantity, cost, realized = position.quantity, position.cost, position.realized_pnl
    rest = signed_quantity
    if quantity != 0 and _sign(rest) != _sign(quantity):
        closing = min(abs(rest), abs(quantity))
        if closing == abs(quantity):
            removed = cost
        else:
            removed = quantize_quantity(cost * closing / abs(quantity), ROUND_HALF_EVEN)
        realized += _sign(quantity) * closing * price - removed
        quantity += _sign(rest) * closing
        cost -= removed
        rest -= _sign(rest) * closing
    if rest != 0:
        quantity += rest
        cost += rest * price
    return replace(
        position,
        quantity=quantity,
        cost=cost,
        realized_pnl=realized,
        fees=position.fees + fee,
        bought=position.bought + max(signed_quantity, ZERO),
        sold=position.sold + max(-signed_quantity, ZERO),
        last_seq=seq,
    )
