"""Pre-trade risk: the limits, the reservation arithmetic and the account item's risk state.

Shared by the orders API (which reserves) and the risk consumer (which releases): a release must
give back exactly what was reserved, so both sides use the functions below.

The account item (``AccountsTable``) carries the risk state of its account:

* ``cash``: trade-date cash in USD (the risk consumer moves it on every fill, fees included);
  ``available_cash`` = ``cash`` minus the cash reserved by open buy orders; ``opening_cash`` =
  ``cash`` before the first risk write (set once with ``if_not_exists``), which reconciliation
  adds to the ledger's cash projection. An account created before any risk write has only
  ``cash``: every write reads ``if_not_exists(available_cash, cash)``.
* per symbol ``S`` (top-level attributes, so that no map must exist first):
  ``pos#S`` the position (signed, trade date), ``sellable#S`` = position minus the quantity of
  open sell orders, ``buying#S`` = position plus the quantity of open buy orders, and ``seq#S``
  the last engine sequence of ``S`` applied to the item (the risk consumer's watermark).
* ``status`` (``active`` trades; anything else stops new orders) and ``trading_enabled`` (absent
  or true trades; false is the account's kill switch).

Reservation (one conditional ``UpdateItem`` per order, in the orders API):

* buy: ``available_cash -= reserve_amount(quantity, rate)`` under ``available_cash >= amount``,
  and ``buying#S += quantity`` under ``buying#S <= position_limit - quantity``; ``rate`` =
  limit price (market: the protection price) x (1 + the highest fee rate), so fees are covered.
* sell: ``sellable#S -= quantity`` under ``sellable#S >= quantity - min(short_limit,
  position_limit)``: holdings first, then short sales up to the short limit.

Release (the risk consumer, from execution events): on a fill of ``q`` with ``r`` left, a buy gives
back ``reserve_amount(q + r) - reserve_amount(r)`` (these telescope to exactly the reserved
amount); a cancel or reject gives back ``reserve_amount(r)``; sells give back shares one for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_UP, Decimal
from typing import Final

from nexus_common.errors import NexusError
from nexus_common.money import quantize_price, quantize_usd

RESERVE_ROUNDING: Final = ROUND_UP  # a reservation is rounded up to the cent: never too small
ZERO: Final = Decimal(0)


class RiskRefused(NexusError):
    """An order refused by a pre-trade risk rule: 422 with the rule's reason code."""

    status = 422
    default_code = "risk_refused"


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits (the same for every account; given by the template)."""

    max_order_quantity: Decimal
    max_order_value: Decimal  # USD
    position_limit: Decimal  # |position + open orders of one side| per symbol, in shares
    short_limit: Decimal  # shares an account may sell beyond its holdings, per symbol
    price_collar: Decimal  # fraction: limit prices within reference x (1 +/- collar)
    market_protection: Decimal  # fraction: a market buy reserves at reference x (1 + this)
    fee_buffer: Decimal  # fraction reserved on top of the notional for fees (the highest fee rate)


def attr(kind: str, symbol: str) -> str:
    """Name of a per-symbol attribute of the account item: ``pos#AAPL``, ``seq#AAPL``..."""
    return f"{kind}#{symbol}"


def reserve_rate(price: Decimal, fee_buffer: Decimal) -> Decimal:
    """Cash reserved per share of a buy (exact; rounded only in ``reserve_amount``)."""
    return price * (1 + fee_buffer)


def reserve_amount(quantity: Decimal, rate: Decimal) -> Decimal:
    """USD reserved for ``quantity`` shares at ``rate``: to the cent, ROUND_UP."""
    if quantity <= 0:
        return Decimal("0.00")
    return quantize_usd(quantity * rate, RESERVE_ROUNDING)


def fill_release(filled: Decimal, remaining_after: Decimal, rate: Decimal) -> Decimal:
    """Cash a buy's reservation gives back when ``filled`` shares fill and ``remaining_after``
    stay open."""
    return reserve_amount(filled + remaining_after, rate) - reserve_amount(remaining_after, rate)


def protection_price(reference: Decimal, band: Decimal) -> Decimal:
    """Price a market buy reserves at: reference x (1 + band), 4 dp, ROUND_CEILING."""
    return quantize_price(reference * (1 + band), ROUND_CEILING)


def collar(reference: Decimal, band: Decimal) -> tuple[Decimal, Decimal]:
    """Lowest and highest limit price accepted around ``reference`` (4 dp, inward rounding)."""
    return (
        quantize_price(reference * (1 - band), ROUND_CEILING),
        quantize_price(reference * (1 + band), ROUND_FLOOR),
    )


@dataclass(frozen=True)
class OrderRisk:
    """What the rules need to know of an order."""

    symbol: str
    side: str  # buy | sell
    order_type: str  # limit | market
    quantity: Decimal
    price: Decimal | None


def check_order(
    order: OrderRisk,
    limits: RiskLimits,
    last_trade: Decimal | None,
    best_ask: Decimal | None,
) -> Decimal | None:
    """The stateless rules (fat finger, collar, reference price). Returns the price a buy
    reserves at (its limit price, or a market buy's protection price); None for a sell.

    Raises ``RiskRefused`` with the reason code of the first rule broken."""
    if order.quantity > limits.max_order_quantity:
        raise RiskRefused(
            "max_quantity_exceeded",
            f"quantity above the maximum of {limits.max_order_quantity} per order",
            "quantity",
        )
    if order.quantity > limits.position_limit:
        raise RiskRefused(
            "position_limit_exceeded",
            f"quantity above the position limit of {limits.position_limit}",
            "quantity",
        )
    if order.price is not None and last_trade is not None:
        low, high = collar(last_trade, limits.price_collar)
        if not low <= order.price <= high:
            raise RiskRefused(
                "price_outside_collar",
                f"price outside the collar {low} - {high} around the last trade {last_trade}",
                "price",
            )
    price = order.price
    if price is None:
        reference = best_ask if order.side == "buy" and best_ask is not None else last_trade
        if reference is None:
            if order.side == "buy":
                raise RiskRefused(
                    "no_reference_price",
                    "a market buy needs a reference price (best ask or last trade); send a limit order",
                    "type",
                )
        else:
            price = protection_price(reference, limits.market_protection) if order.side == "buy" else reference
    if price is not None and order.quantity * price > limits.max_order_value:
        raise RiskRefused(
            "max_order_value_exceeded",
            f"order value above the maximum of {limits.max_order_value} USD",
            "quantity",
        )
    return price if order.side == "buy" else None
