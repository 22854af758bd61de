"""Orders: the request, the order record, and how execution events change it.

Pure domain: no boto3, no Lambda events. Decimals are exact; the one derived value, the average
fill price, is ``filled_notional / filled_quantity`` rounded to 4 dp with ``ROUND_HALF_EVEN``
(banker's rounding, ``money.quantize_price``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, TypeAlias

from nexus_common.errors import Conflict, ValidationFailed
from nexus_common.events import (
    AcceptedEvent,
    BookEvent,
    CancelledEvent,
    CancelOrderCommand,
    CancelRejectedEvent,
    NewOrderCommand,
    OrderType,
    RejectedEvent,
    Side,
    TimeInForce,
    TradeEvent,
    iso,
)
from nexus_common.fields import WireDecimal
from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.money import fmt, quantize_price
from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pending_new", "new", "partially_filled", "filled", "cancelled", "rejected"]

STATUSES: Final[tuple[str, ...]] = (
    "pending_new",
    "new",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
)
OPEN_STATUSES: Final = frozenset({"pending_new", "new", "partially_filled"})
DONE_STATUSES: Final = frozenset({"filled", "cancelled", "rejected"})
STATUS_FILTERS: Final[dict[str, frozenset[str]]] = {
    "open": OPEN_STATUSES,
    "closed": DONE_STATUSES,
    **{status: frozenset({status}) for status in STATUSES},
}

# Namespace of order ids derived from (account, client_order_id): fixed forever.
ORDER_ID_NAMESPACE: Final = uuid.UUID("6f1d3c1e-5b7a-4f0e-9a51-3c0f2d7e8b42")

ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
PositiveDecimal = Annotated[WireDecimal, Field(gt=0)]


# -- requests --------------------------------------------------------------------------------


class NewOrderRequest(BaseModel):
    """Body of ``POST /v1/orders``. Decimals as strings (JSON numbers accepted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=16)
    side: Side
    type: OrderType
    quantity: PositiveDecimal
    price: PositiveDecimal | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: ClientOrderId | None = None


class ListOrdersQuery(BaseModel):
    """Query of ``GET /v1/orders``: ``status`` (a status, ``open`` or ``closed``), ``limit``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str | None = None
    limit: int = Field(default=50, ge=1, le=500)

    def statuses(self) -> frozenset[str] | None:
        if self.status is None:
            return None
        found = STATUS_FILTERS.get(self.status)
        if found is None:
            raise ValidationFailed(
                "invalid_field",
                "status must be one of: " + ", ".join(STATUS_FILTERS),
                "status",
            )
        return found


# -- the order -------------------------------------------------------------------------------


class Order(BaseModel):
    """An order as the orders table holds it. Only the consumer changes ``status``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: str
    client_order_id: str | None = None
    account_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: TimeInForce
    status: Status
    filled_quantity: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    average_price: Decimal | None = None
    remaining_quantity: Decimal
    created_at: str
    updated_at: str
    reject_reason: str | None = None
    cancel_reason: str | None = None
    cancel_requested: bool = False
    last_seq: int | None = None
    # Pre-trade risk (``nexus_common.risk``): ``reserved`` when the orders API reserved cash (buy)
    # or shares (sell) for this order; ``reserve_rate``: USD reserved per share of a buy. The risk
    # consumer releases from these, so they never change after the first put.
    reserved: bool = False
    reserve_rate: Decimal | None = None
    # A market buy is sent to the engine as an IOC limit at this price (the price its reservation
    # was made at, floored to the tick), so it can never spend more than risk reserved for it.
    protection_price: Decimal | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_wire(self) -> dict[str, Any]:
        """The order as the API shows it: decimals as canonical strings."""
        body: dict[str, Any] = {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "quantity": fmt(self.quantity),
            "price": None if self.price is None else fmt(self.price),
            "time_in_force": self.time_in_force,
            "status": self.status,
            "filled_quantity": fmt(self.filled_quantity),
            "average_price": None if self.average_price is None else fmt(self.average_price),
            "remaining_quantity": fmt(self.remaining_quantity),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.reject_reason is not None:
            body["reject_reason"] = self.reject_reason
        if self.cancel_reason is not None:
            body["cancel_reason"] = self.cancel_reason
        if self.cancel_requested:
            body["cancel_requested"] = True
        return body


def derive_order_id(account_id: str, client_order_id: str | None) -> str:
    """uuid5(account, client_order_id) when the client names the order, else a random uuid4."""
    if client_order_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{account_id}/{client_order_id}"))


def average_price(filled_notional: Decimal, filled_quantity: Decimal) -> Decimal | None:
    """Average fill price: notional / quantity, 4 dp, ROUND_HALF_EVEN; None before any fill."""
    if filled_quantity <= 0:
        return None
    return quantize_price(filled_notional / filled_quantity)


def validate_new_order(
    request: NewOrderRequest, instrument: Instrument | None
) -> tuple[Decimal | None, TimeInForce]:
    """Check the request against its instrument; returns (price, time_in_force) to use.

    Raises ``ValidationFailed`` (400) with the field at fault, or ``Conflict`` (409) when the
    instrument is halted.
    """
    if instrument is None:
        raise ValidationFailed("unknown_symbol", f"unknown symbol {request.symbol!r}", "symbol")
    if instrument.status != "active":
        raise Conflict("instrument_halted", f"{instrument.symbol} is not trading", "symbol")
    if request.type == "limit" and request.price is None:
        raise ValidationFailed("missing_field", "a limit order needs a price", "price")
    if request.type == "market" and request.price is not None:
        raise ValidationFailed("invalid_field", "a market order takes no price", "price")
    if request.type == "market":
        tif = request.time_in_force or "ioc"
        if tif not in ("ioc", "fok"):
            raise ValidationFailed("invalid_field", "a market order is ioc or fok", "time_in_force")
    else:
        tif = request.time_in_force or "gtc"
    try:
        instrument.quantity_to_lots(request.quantity)
        if request.price is not None:
            instrument.price_to_ticks(request.price)
    except InstrumentError as exc:
        raise ValidationFailed(exc.code, exc.message, exc.field) from None
    return request.price, tif


def new_order(
    account_id: str, request: NewOrderRequest, instrument: Instrument | None, now: datetime
) -> Order:
    """A validated order in status ``pending_new``."""
    price, tif = validate_new_order(request, instrument)
    stamp = iso(now)
    return Order(
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
    )


def new_order_command(order: Order, now: datetime) -> NewOrderCommand:
    capped = order.protection_price is not None
    return NewOrderCommand(
        command_id=f"{order.order_id}:new",
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        side=order.side,
        order_type="limit" if capped else order.type,
        price=order.protection_price if capped else order.price,
        quantity=order.quantity,
        time_in_force="ioc" if capped and order.time_in_force != "fok" else order.time_in_force,
        client_order_id=order.client_order_id,
        ts=now,
    )


def cancel_order_command(order: Order, now: datetime) -> CancelOrderCommand:
    return CancelOrderCommand(
        command_id=f"{order.order_id}:cancel:{uuid.uuid4().hex[:12]}",
        order_id=order.order_id,
        account_id=order.account_id,
        symbol=order.symbol,
        ts=now,
    )


# -- events -> order changes -----------------------------------------------------------------


ExecutionEventT: TypeAlias = (
    AcceptedEvent | RejectedEvent | TradeEvent | CancelledEvent | CancelRejectedEvent | BookEvent
)


@dataclass(frozen=True)
class OrderChange:
    """Absolute values to SET on one order for one event (idempotent by construction)."""

    order_id: str
    account_id: str
    seq: int
    event_id: str
    values: dict[str, Any]
    epoch: int = 0  # the engine leader's fencing token: an older leader's event changes nothing
    remove: tuple[str, ...] = ()
    notify: str | None = None  # notification kind, when the account should hear of it
    extra: dict[str, Any] = field(default_factory=dict)


def _fill_values(
    filled: Decimal, notional: Decimal, remaining: Decimal, ts: str
) -> tuple[dict[str, Any], str]:
    status = "filled" if remaining == 0 else "partially_filled"
    values = {
        "status": status,
        "filled_quantity": filled,
        "filled_notional": notional,
        "average_price": average_price(notional, filled),
        "remaining_quantity": remaining,
        "updated_at": ts,
    }
    return values, f"order_{status}"


def order_changes(event: ExecutionEventT) -> list[OrderChange]:
    """What one execution event does to the orders it names (``book`` events: nothing)."""
    ts = iso(event.ts)
    if isinstance(event, AcceptedEvent):
        return [_change(event, event.order_id, event.account_id, {"status": "new"})]
    if isinstance(event, RejectedEvent):
        values: dict[str, Any] = {"status": "rejected", "reject_reason": event.reason}
        values["remaining_quantity"] = Decimal(0)
        return [_change(event, event.order_id, event.account_id, values, "order_rejected")]
    if isinstance(event, CancelledEvent):
        values = {"status": "cancelled", "cancel_reason": event.reason}
        values["remaining_quantity"] = Decimal(0)
        return [_change(event, event.order_id, event.account_id, values, "order_cancelled")]
    if isinstance(event, CancelRejectedEvent):
        return [
            _change(
                event,
                event.order_id,
                event.account_id,
                {},
                remove=("cancel_requested", "cancel_requested_at"),
            )
        ]
    if isinstance(event, TradeEvent):
        trade = {"price": fmt(event.price), "quantity": fmt(event.quantity)}
        maker_values, maker_kind = _fill_values(
            event.maker_filled_quantity,
            event.maker_filled_notional,
            event.maker_remaining_quantity,
            ts,
        )
        taker_values, taker_kind = _fill_values(
            event.taker_filled_quantity,
            event.taker_filled_notional,
            event.taker_remaining_quantity,
            ts,
        )
        return [
            _change(
                event,
                event.maker_order_id,
                event.maker_account_id,
                maker_values,
                maker_kind,
                extra={"trade": {**trade, "liquidity": "maker"}},
            ),
            _change(
                event,
                event.taker_order_id,
                event.taker_account_id,
                taker_values,
                taker_kind,
                extra={"trade": {**trade, "liquidity": "taker"}},
            ),
        ]
    return []


def _change(
    event: ExecutionEventT,
    order_id: str,
    account_id: str,
    values: dict[str, Any],
    notify: str | None = None,
    *,
    remove: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> OrderChange:
    return OrderChange(
        order_id=order_id,
        account_id=account_id,
        seq=event.seq,
        event_id=event.event_id,
        epoch=event.epoch,
        values={**values, "updated_at": iso(event.ts)},
        remove=remove,
        notify=notify,
        extra=extra or {},
    )


def notification_message(change: OrderChange, order: Order, ts: datetime) -> dict[str, Any]:
    """Body of the message put on the notifications queue for (order, event)."""
    assert change.notify is not None
    return {
        "notification_id": f"{change.event_id}:{change.order_id}",
        "account_id": order.account_id,
        "kind": change.notify,
        "event_id": change.event_id,
        "order": order.to_wire(),
        **change.extra,
        "ts": iso(ts),
    }
