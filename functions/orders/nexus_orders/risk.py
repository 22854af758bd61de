"""Pre-trade risk of order entry: what an order, an OCO group or a replace reserves, and why a
reservation was refused. Pure domain: no boto3.

The rules and the reservation arithmetic are the shared kernel's (``nexus_common.risk``: the risk
consumer releases with the same functions); this module applies them to the orders service's
orders. ``service.PreTradeRisk`` reads the reference prices and writes the reservations (through
the ``RiskBook`` and ``MarketReference`` ports); everything it decides is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nexus_common.risk import (
    RESERVATIONS,
    ZERO,
    OrderRisk,
    ReplaceTerms,
    RiskLimits,
    RiskRefused,
    attr,
    check_order,
    oco_reserve_price,
    replace_reservation_id,
    replace_reserved_up_front,
    replace_terms,
    reservation_id,
    reserve_amount,
    reserve_rate,
)

from nexus_orders.order import Order


@dataclass(frozen=True)
class Reservation:
    """What one order reserved: ``amount`` USD (buys) or ``quantity`` shares (sells), held on the
    account item under ``reservation_id`` (``nexus_common.risk.reservation_id``)."""

    account_id: str
    symbol: str
    side: str
    quantity: Decimal
    amount: Decimal = Decimal(0)
    rate: Decimal | None = None
    price: Decimal | None = None  # the price a buy was reserved at (a market or stop buy's protection price)
    reservation_id: str = ""


def needs_best_ask(order: Order) -> bool:
    """A market buy is reserved at its protection price, which needs the best ask too."""
    return order.type == "market" and order.side == "buy"


def order_reservation(order: Order, limits: RiskLimits, last: Decimal | None, ask: Decimal | None) -> Reservation:
    """The rules (``check_order``: raises ``RiskRefused``), then what the order reserves, under the
    order's id: a buy its quantity at the rate of its price (fees covered), a sell its quantity."""
    facts = OrderRisk(order.symbol, order.side, order.type, order.quantity, order.price, order.stop_price)
    price = check_order(facts, limits, last, ask)
    rid = reservation_id(order.order_id)
    if price is None:
        return Reservation(order.account_id, order.symbol, order.side, order.quantity, reservation_id=rid)
    rate = reserve_rate(price, limits.fee_buffer)
    amount = reserve_amount(order.quantity, rate)
    return Reservation(order.account_id, order.symbol, "buy", order.quantity, amount, rate, price, rid)


def oco_reservation(legs: list[Order], limits: RiskLimits, last: Decimal | None) -> tuple[Reservation, Decimal | None]:
    """One reservation for the group: the LARGER of the legs' exposures, not their sum (a buy: the
    quantity at the highest price a leg can spend; a sell: the quantity once), under the group's
    id. Returns it and the stop-loss leg's reserve price (a stop buy's protection price)."""
    take, stop = legs
    rid = reservation_id(take.order_id)  # the group's id
    take_price = check_order(
        OrderRisk(take.symbol, take.side, "limit", take.quantity, take.price), limits, last, None
    )
    stop_price = check_order(
        OrderRisk(stop.symbol, stop.side, stop.type, stop.quantity, stop.price, stop.stop_price),
        limits, last, None,
    )  # fmt: skip
    if take.side == "buy":
        assert take_price is not None and stop_price is not None
        price = oco_reserve_price([take_price, stop_price])
        rate = reserve_rate(price, limits.fee_buffer)
        amount = reserve_amount(take.quantity, rate)
        return Reservation(take.account_id, take.symbol, "buy", take.quantity, amount, rate, price, rid), stop_price
    return Reservation(take.account_id, take.symbol, "sell", take.quantity, reservation_id=rid), stop_price


def replace_reservation(
    order: Order, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None, number: int,
    limits: RiskLimits, last: Decimal | None,
) -> tuple[ReplaceTerms, Reservation | None, Decimal | None]:  # fmt: skip
    """The rules on the new terms, then what replace ``number`` needs on top of what the order
    holds (nothing for a decrease: released on ``replaced``). Returns the terms, the reservation
    to make (None if none; its id ``<order>~r<number>.<digest of what it reserves>``) and a stop
    buy's new protection price."""
    facts = OrderRisk(order.symbol, order.side, order.type, quantity, price, stop_price)
    new_price = check_order(facts, limits, last, None)
    new_rate = None if new_price is None else reserve_rate(new_price, limits.fee_buffer)
    terms = replace_terms(
        order.side, order.remaining_quantity, quantity - order.quantity,
        order.reserve_rate, order.cover_rate, new_rate, order.price_topup,
    )  # fmt: skip
    reservation = None
    if replace_reserved_up_front(terms.quantity_change, terms.settle_cash, terms.topup):  # reserve_quantity or _cash
        rid = replace_reservation_id(order.order_id, number, order.side, terms.reserve_quantity, terms.reserve_cash)
        reservation = Reservation(
            order.account_id, order.symbol, order.side, terms.reserve_quantity, terms.reserve_cash, reservation_id=rid
        )
    cap = new_price if order.type == "stop" and order.side == "buy" else None
    return terms, reservation, cap


def refusal(reservation: Reservation, item: dict[str, Any] | None, limits: RiskLimits) -> RiskRefused:
    """Why the reservation's condition failed, from the account item as it was."""
    if item is None:
        return RiskRefused("account_not_found", "the account has no risk record", None)
    if item.get("status") != "active":
        return RiskRefused("account_inactive", f"the account is {item.get('status')}", None)
    if item.get("trading_enabled") is False:
        return RiskRefused("trading_disabled", "trading is switched off for this account", None)
    if len(item.get(RESERVATIONS) or ()) >= limits.max_open_orders:
        return RiskRefused(
            "max_open_orders_exceeded",
            f"the account has {limits.max_open_orders} open orders, the most it may have; cancel some first",
            None,
        )
    symbol = reservation.symbol
    if reservation.side == "buy":
        available = Decimal(str(item.get("available_cash", item.get("cash", 0))))
        if available < reservation.amount:
            return RiskRefused(
                "insufficient_buying_power",
                f"the order needs {reservation.amount} USD; {available} USD is available",
                "quantity",
            )
        return RiskRefused(
            "position_limit_exceeded",
            f"position and open buys of {symbol} would exceed the limit of {limits.position_limit}",
            "quantity",
        )
    sellable = Decimal(str(item.get(attr("sellable", symbol), 0)))
    return RiskRefused(
        "insufficient_position",
        f"{max(sellable, ZERO)} {symbol} can be sold (short limit {min(limits.short_limit, limits.position_limit)})",
        "quantity",
    )

