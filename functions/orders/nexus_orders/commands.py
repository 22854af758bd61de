"""The engine commands of the orders service (``order-commands``, partition key = symbol), built
from orders. Pure domain: no boto3."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

from nexus_common.events import (
    CancelOrderCommand,
    FenceCommand,
    MassCancelCommand,
    NewOrderCommand,
    OcoOrderCommand,
    ReplaceOrderCommand,
    RouteOrderRequest,
)

from nexus_orders.order import Order, OrderType

# What the orders service puts on ``order-commands`` (a fence: a replace's, or the entry sweep's).
AnyOrderCommand: TypeAlias = (
    NewOrderCommand | CancelOrderCommand | ReplaceOrderCommand | MassCancelCommand | OcoOrderCommand | FenceCommand
)


def _expire_at(order: Order) -> datetime | None:
    return None if order.expire_at is None else datetime.fromisoformat(order.expire_at)


def route_request(order: Order, now: datetime) -> RouteOrderRequest:
    """The routing service's request for a routed order: its limit price, or for a market buy
    the protection price its reservation was made at (it never pays more than that)."""
    routing = order.routing or {}
    venues = routing.get("max_venues")
    return RouteOrderRequest(
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        order_type="market" if order.type == "market" else "limit",
        quantity=order.quantity,
        price=order.price if order.type != "market" else order.protection_price,
        strategy=str(routing.get("strategy", "SMART")),
        max_venues=None if venues is None else int(venues),
        urgency=routing.get("urgency", "normal"),
        time_in_force="ioc" if order.time_in_force not in ("gtc", "day") else order.time_in_force,
        ts=now,
    )


def new_order_command(order: Order, now: datetime) -> NewOrderCommand:
    """The engine's ``new`` command. A capped buy (``protection_price``) never spends more than
    its reservation: a market buy goes as an IOC (or FOK) limit at that price, a stop buy as a
    stop-limit at that price (IOC after the trigger unless the order is day, gtd or fok)."""
    capped = order.protection_price is not None
    order_type: OrderType = order.type
    price = order.price
    tif = order.time_in_force
    if capped and order.type == "market":
        order_type, price = "limit", order.protection_price
        tif = "ioc" if tif != "fok" else "fok"
    elif capped and order.type == "stop":
        order_type, price = "stop_limit", order.protection_price
        tif = "ioc" if tif == "gtc" else tif
    return NewOrderCommand(
        command_id=f"{order.order_id}:new",
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        order_type=order_type,
        price=price,
        quantity=order.quantity,
        time_in_force=tif,
        client_order_id=order.client_order_id,
        ts=now,
        stop_price=order.stop_price,
        display_quantity=order.display_quantity,
        post_only=order.post_only,
        stp=order.stp,
        expire_at=_expire_at(order),
    )


def oco_command(legs: list[Order], now: datetime) -> OcoOrderCommand:
    take, stop = legs
    assert take.group_id is not None and take.price is not None and stop.stop_price is not None
    stop_limit = stop.price if stop.type == "stop_limit" else stop.protection_price
    tif = take.time_in_force
    return OcoOrderCommand(
        command_id=f"{take.group_id}:oco",
        order_id=take.group_id,
        account_id=take.account_id,
        symbol=take.symbol,
        side=take.side,
        quantity=take.quantity,
        price=take.price,
        stop_price=stop.stop_price,
        stop_limit_price=stop_limit,
        time_in_force="gtd" if tif == "gtd" else "day" if tif == "day" else "gtc",
        expire_at=_expire_at(take),
        stp=take.stp,
        ts=now,
    )


def cancel_order_command(order: Order, now: datetime, order_id: str | None = None) -> CancelOrderCommand:
    """Cancel an order (or, with ``order_id`` = a group id, both legs of an OCO group)."""
    return CancelOrderCommand(
        command_id=f"{order_id or order.order_id}:cancel:{uuid.uuid4().hex[:12]}",
        order_id=order_id or order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        ts=now,
    )


def replace_order_command(
    order: Order, command_id: str, price: Decimal | None, stop_price: Decimal | None,
    quantity: Decimal | None, now: datetime,
) -> ReplaceOrderCommand:  # fmt: skip
    return ReplaceOrderCommand(
        command_id=command_id,
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        price=price,
        stop_price=stop_price,
        quantity=quantity,
        ts=now,
    )


def mass_cancel_command(account_id: str, symbol: str, now: datetime) -> MassCancelCommand:
    return MassCancelCommand(
        command_id=f"{account_id}:mass_cancel:{symbol}:{uuid.uuid4().hex[:12]}",
        account_id=account_id,
        symbol=symbol,
        ts=now,
    )


def replace_fence(order_id: str, account_id: str, symbol: str, replace_id: str, now: datetime) -> FenceCommand:
    """The fence of replace ``replace_id`` of an order (the orders API after a send it could not
    confirm, the entry sweep for a replace left waiting): the engine refuses a replace it has not
    received and drops it if it comes later; one it has received stands."""
    return FenceCommand(command_id=f"fence-{replace_id}", order_id=order_id, account_id=account_id, symbol=symbol,
                        ts=now, replace_command_id=replace_id)  # fmt: skip
