"""Order entry rules: a request checked against its instrument becomes an order (or an OCO
group's two legs) in status ``pending_new``. Pure domain: no boto3.

Raises ``ValidationFailed`` (400) naming the field at fault, or ``Conflict`` (409) when the
instrument is halted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from nexus_common.errors import Conflict, ValidationFailed
from nexus_common.events import iso, utc_now
from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.risk import oco_leg_ids

from nexus_orders.models import NewOrderRequest, OcoRequest
from nexus_orders.order import (
    Order,
    OrderType,
    TimeInForce,
    derive_group_id,
    derive_order_id,
    with_terms_digest,
)


def tradable(symbol: str, instrument: Instrument | None) -> Instrument:
    if instrument is None:
        raise ValidationFailed("unknown_symbol", f"unknown symbol {symbol!r}", "symbol")
    if instrument.status != "active":
        raise Conflict("instrument_halted", f"{instrument.symbol} is not trading", "symbol")
    return instrument


def on_grid(instrument: Instrument, quantities: dict[str, Decimal | None], prices: dict[str, Decimal | None]) -> None:
    """Quantities on the lot and prices on the tick; the error names the field at fault."""
    for name, quantity in quantities.items():
        if quantity is None:
            continue
        try:
            instrument.quantity_to_lots(quantity)
        except InstrumentError as exc:
            raise ValidationFailed(exc.code, exc.message, name) from None
    for name, price in prices.items():
        if price is None:
            continue
        try:
            instrument.price_to_ticks(price)
        except InstrumentError as exc:
            raise ValidationFailed(exc.code, exc.message, name) from None


def _check_expiry(tif: str, expire_at: datetime | None, now: datetime) -> None:
    if tif == "gtd":
        if expire_at is None:
            raise ValidationFailed("missing_field", "a gtd order needs expire_at", "expire_at")
        if expire_at <= now:
            raise ValidationFailed("invalid_field", "expire_at must be in the future", "expire_at")
    elif expire_at is not None:
        raise ValidationFailed("invalid_field", "expire_at is only for time_in_force gtd", "expire_at")


def validate_new_order(
    request: NewOrderRequest, instrument: Instrument | None, now: datetime | None = None
) -> tuple[Decimal | None, TimeInForce]:
    """Check the request against its instrument; returns (price, time_in_force) to use.

    Raises ``ValidationFailed`` (400) with the field at fault, or ``Conflict`` (409) when the
    instrument is halted.
    """
    instrument = tradable(request.symbol, instrument)
    kind = request.type
    has_limit = kind in ("limit", "stop_limit")
    has_stop = kind in ("stop", "stop_limit")
    if has_limit and request.price is None:
        raise ValidationFailed("missing_field", f"a {kind} order needs a price", "price")
    if not has_limit and request.price is not None:
        raise ValidationFailed("invalid_field", f"a {kind} order takes no price", "price")
    if has_stop and request.stop_price is None:
        raise ValidationFailed("missing_field", f"a {kind} order needs a stop_price", "stop_price")
    if not has_stop and request.stop_price is not None:
        raise ValidationFailed("invalid_field", f"a {kind} order takes no stop_price", "stop_price")
    if kind == "market":
        tif = request.time_in_force or "ioc"
        if tif not in ("ioc", "fok"):
            raise ValidationFailed("invalid_field", "a market order is ioc or fok", "time_in_force")
    else:
        tif = request.time_in_force or "gtc"
    if request.post_only and (kind != "limit" or tif in ("ioc", "fok")):
        raise ValidationFailed(
            "invalid_field", "post_only is for gtc, day or gtd limit orders", "post_only"
        )
    if request.display_quantity is not None:
        if not has_limit:
            raise ValidationFailed(
                "invalid_field", "display_quantity is for limit and stop_limit orders", "display_quantity"
            )
        if request.display_quantity > request.quantity:
            raise ValidationFailed(
                "invalid_field", "display_quantity must not exceed quantity", "display_quantity"
            )
    _check_expiry(tif, request.expire_at, now or utc_now())
    on_grid(
        instrument,
        {"quantity": request.quantity, "display_quantity": request.display_quantity},
        {"price": request.price, "stop_price": request.stop_price},
    )
    return request.price, tif


def new_order(
    account_id: str, request: NewOrderRequest, instrument: Instrument | None, now: datetime
) -> Order:
    """A validated order in status ``pending_new``."""
    price, tif = validate_new_order(request, instrument, now)
    if request.routing is not None:
        tif = validate_routed(request)
    stamp = iso(now)
    order = Order(
        order_id=derive_order_id(account_id, request.client_order_id),
        client_order_id=request.client_order_id,
        account_id=account_id,
        symbol=request.symbol,
        side=request.side,
        type=request.type,
        quantity=request.quantity,
        price=price,
        time_in_force=tif,
        status="pending_new",
        remaining_quantity=request.quantity,
        created_at=stamp,
        updated_at=stamp,
        stop_price=request.stop_price,
        expire_at=iso(request.expire_at) if request.expire_at is not None else None,
        post_only=request.post_only,
        display_quantity=request.display_quantity,
        stp=request.stp,
        routing=None if request.routing is None else request.routing.model_dump(),
    )
    return with_terms_digest(order)


def validate_routed(request: NewOrderRequest) -> TimeInForce:
    """A routed order is a limit or market order with no engine-only instruction. A market order
    and an ``ioc`` (or unspecified) limit order are immediate-or-cancel: what the venues do not
    fill at once ends, its reservation given back. A ``gtc`` or ``day`` limit order rests what is
    left on the venue its strategy picks (the internal book, or a simulated venue where routing
    keeps it working). Returns its time in force."""
    if request.type not in ("limit", "market"):
        raise ValidationFailed("routing_unsupported", "a routed order is a limit or market order", "type")
    allowed = ("ioc", "gtc", "day") if request.type == "limit" else ("ioc",)
    tif = request.time_in_force or "ioc"
    if tif not in allowed:
        raise ValidationFailed("routing_unsupported", f"a routed {request.type} order's time_in_force is "
                               + ", ".join(allowed) + " (absent: ioc)", "time_in_force")
    for name in ("post_only", "display_quantity", "stp", "expire_at"):
        if getattr(request, name) not in (None, False):
            raise ValidationFailed("routing_unsupported", f"{name} is an instruction of the internal venue; a "
                                   "routed order does not take it", name)
    return tif


def validate_oco(request: OcoRequest, instrument: Instrument | None, now: datetime) -> None:
    """The group's legs on the grid, the stop on the right side of the take-profit, the expiry."""
    instrument = tradable(request.symbol, instrument)
    stop = request.stop_loss.stop_price
    take = request.take_profit.price
    if (stop >= take) if request.side == "sell" else (stop <= take):
        where = "below" if request.side == "sell" else "above"
        raise ValidationFailed(
            "invalid_oco", f"the stop-loss stop_price must be {where} the take-profit price", "stop_loss.stop_price"
        )
    _check_expiry(request.time_in_force, request.expire_at, now)
    on_grid(
        instrument,
        {"quantity": request.quantity},
        {
            "take_profit.price": take,
            "stop_loss.stop_price": stop,
            "stop_loss.price": request.stop_loss.price,
        },
    )


def oco_legs(account_id: str, request: OcoRequest, instrument: Instrument | None, now: datetime) -> list[Order]:
    """The two legs of a validated group, in status ``pending_new``: take-profit, stop-loss."""
    validate_oco(request, instrument, now)
    group_id = derive_group_id(account_id, request.client_order_id)
    tp_id, sl_id = oco_leg_ids(group_id)
    stamp = iso(now)
    common: dict[str, Any] = {
        "client_order_id": request.client_order_id,
        "account_id": account_id,
        "symbol": request.symbol,
        "side": request.side,
        "quantity": request.quantity,
        "remaining_quantity": request.quantity,
        "time_in_force": request.time_in_force,
        "expire_at": iso(request.expire_at) if request.expire_at is not None else None,
        "stp": request.stp,
        "status": "pending_new",
        "created_at": stamp,
        "updated_at": stamp,
        "group_id": group_id,
    }
    stop_type: OrderType = "stop" if request.stop_loss.price is None else "stop_limit"
    return [
        with_terms_digest(Order(order_id=tp_id, type="limit", price=request.take_profit.price,
                                leg="take_profit", **common)),
        with_terms_digest(Order(order_id=sl_id, type=stop_type, price=request.stop_loss.price,
                                stop_price=request.stop_loss.stop_price, leg="stop_loss", **common)),
    ]  # fmt: skip
