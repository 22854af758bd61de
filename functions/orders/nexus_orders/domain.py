"""Orders: the request, the order record, and how execution events change it.

Pure domain: no boto3, no Lambda events. Decimals are exact; the one derived value, the average
fill price, is ``filled_notional / filled_quantity`` rounded to 4 dp with ``ROUND_HALF_EVEN``
(banker's rounding, ``money.quantize_price``).
"""

from __future__ import annotations

import hashlib
import json
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
    EngineOrderType,
    EngineTimeInForce,
    ExpiredEvent,
    MassCancelCommand,
    NewOrderCommand,
    OcoOrderCommand,
    RejectedEvent,
    ReplacedEvent,
    ReplaceOrderCommand,
    ReplaceRejectedEvent,
    Side,
    StpMode,
    TradeEvent,
    TriggeredEvent,
    iso,
    utc_now,
)
from nexus_common.fields import WireDecimal
from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.money import fmt, quantize_price
from nexus_common.risk import OCO_PREFIX, is_group_id, oco_leg_ids
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Status = Literal["pending_new", "new", "partially_filled", "filled", "cancelled", "expired", "rejected"]
OrderType: TypeAlias = EngineOrderType  # limit | market | stop | stop_limit
TimeInForce: TypeAlias = EngineTimeInForce  # gtc | ioc | fok | day | gtd
Leg = Literal["take_profit", "stop_loss"]

STATUSES: Final[tuple[str, ...]] = (
    "pending_new",
    "new",
    "partially_filled",
    "filled",
    "cancelled",
    "expired",
    "rejected",
)
OPEN_STATUSES: Final = frozenset({"pending_new", "new", "partially_filled"})
DONE_STATUSES: Final = frozenset({"filled", "cancelled", "expired", "rejected"})
STATUS_FILTERS: Final[dict[str, frozenset[str]]] = {
    "open": OPEN_STATUSES,
    "closed": DONE_STATUSES,
    **{status: frozenset({status}) for status in STATUSES},
}

# The terms a client_order_id stands for: a repeat with other terms is refused (409), not
# answered with the first order. Compared through ``Order.terms_digest`` (``terms_digest``).
ENTRY_TERMS: Final = ("symbol", "side", "type", "quantity", "price", "stop_price", "time_in_force",
                      "expire_at", "post_only", "display_quantity", "stp", "leg")  # fmt: skip
REPLACEABLE_TERMS: Final = frozenset({"quantity", "price", "stop_price"})

# Namespace of order ids derived from (account, client_order_id): fixed forever.
ORDER_ID_NAMESPACE: Final = uuid.UUID("6f1d3c1e-5b7a-4f0e-9a51-3c0f2d7e8b42")

ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
PositiveDecimal = Annotated[WireDecimal, Field(gt=0)]


# -- requests --------------------------------------------------------------------------------


class NewOrderRequest(BaseModel):
    """Body of ``POST /v1/orders``. Decimals as strings (JSON numbers accepted); ``expire_at``
    an ISO-8601 instant with a zone (``Z`` or an offset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=16)
    side: Side
    type: OrderType
    quantity: PositiveDecimal
    price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    time_in_force: TimeInForce | None = None
    expire_at: AwareDatetime | None = None
    post_only: bool = False
    display_quantity: PositiveDecimal | None = None
    stp: StpMode | None = None
    client_order_id: ClientOrderId | None = None


class ReplaceOrderRequest(BaseModel):
    """Body of ``PATCH /v1/orders/{order_id}``: the new limit price, stop price and/or total
    quantity (filled included); at least one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    quantity: PositiveDecimal | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ReplaceOrderRequest:
        if self.price is None and self.stop_price is None and self.quantity is None:
            raise ValueError("give price, stop_price or quantity")
        return self


class MassCancelRequest(BaseModel):
    """Body of ``POST /v1/orders/mass-cancel``: every open order of the acting account, in
    ``symbol`` or (absent) in every symbol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str | None = Field(default=None, min_length=1, max_length=16)


class TakeProfitLeg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    price: PositiveDecimal


class StopLossLeg(BaseModel):
    """A stop (``stop_price`` only) or a stop-limit (with ``price``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_price: PositiveDecimal
    price: PositiveDecimal | None = None


class OcoRequest(BaseModel):
    """Body of ``POST /v1/orders/oco``: a take-profit limit and a stop-loss on one symbol, side
    and quantity; when one leg fills (even partly) the other is cut by as much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=16)
    side: Side
    quantity: PositiveDecimal
    take_profit: TakeProfitLeg
    stop_loss: StopLossLeg
    time_in_force: Literal["gtc", "day", "gtd"] = "gtc"
    expire_at: AwareDatetime | None = None
    stp: StpMode | None = None
    client_order_id: ClientOrderId | None = None


class ListOrdersQuery(BaseModel):
    """Query of ``GET /v1/orders``: ``status`` (a status, ``open`` or ``closed``), ``limit``, and
    ``cursor`` (the ``next_cursor`` of the previous page; opaque)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, min_length=1, max_length=1000)

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
    # Engine instructions (absent: not used).
    stop_price: Decimal | None = None
    expire_at: str | None = None
    post_only: bool = False
    display_quantity: Decimal | None = None
    stp: StpMode | None = None
    triggered: bool = False
    # OCO: the group and which leg this order is.
    group_id: str | None = None
    leg: Leg | None = None
    # Replace: how many were sent, whether one awaits the engine, and the buy's price cover
    # (``nexus_common.risk.replace_terms``).
    replace_count: int = 0
    replace_pending: bool = False
    replace_reject_reason: str | None = None
    price_topup: Decimal = Decimal(0)
    cover_rate: Decimal | None = None
    # sha256 of the ENTRY_TERMS as entered (``terms_digest``), never changed by a replace: what a
    # repeated client_order_id is compared with. Absent on orders stored before it existed.
    terms_digest: str | None = None

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
        if self.stop_price is not None:
            body["stop_price"] = fmt(self.stop_price)
            body["triggered"] = self.triggered
        if self.expire_at is not None:
            body["expire_at"] = self.expire_at
        if self.post_only:
            body["post_only"] = True
        if self.display_quantity is not None:
            body["display_quantity"] = fmt(self.display_quantity)
        if self.stp is not None:
            body["stp"] = self.stp
        if self.group_id is not None:
            body["group_id"] = self.group_id
            body["leg"] = self.leg
        if self.replace_pending:
            body["replace_pending"] = True
        if self.replace_reject_reason is not None:
            body["replace_reject_reason"] = self.replace_reject_reason
        return body


def derive_order_id(account_id: str, client_order_id: str | None) -> str:
    """uuid5(account, client_order_id) when the client names the order, else a random uuid4."""
    if client_order_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{account_id}/{client_order_id}"))


def terms_digest(order: Order) -> str:
    """sha256 of the order's ``ENTRY_TERMS``, decimals by value ("10" and "10.00" agree)."""
    terms = {name: getattr(order, name) for name in ENTRY_TERMS}
    canonical = {name: fmt(value) if isinstance(value, Decimal) else value for name, value in terms.items()}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def with_terms_digest(order: Order) -> Order:
    return order.model_copy(update={"terms_digest": terms_digest(order)})


def same_terms(existing: Order, entered: Order) -> bool:
    """Whether ``entered`` (a new request under a client_order_id in use) has the terms the
    existing order was entered with. An order stored before ``terms_digest`` existed is compared
    on its fields, the ones a replace changes only while it was never replaced."""
    if existing.terms_digest is not None:
        return existing.terms_digest == terms_digest(entered)
    names = [n for n in ENTRY_TERMS if existing.replace_count == 0 or n not in REPLACEABLE_TERMS]
    return all(getattr(existing, name) == getattr(entered, name) for name in names)


def derive_group_id(account_id: str, client_order_id: str | None) -> str:
    """An OCO group id: ``oco-`` + uuid5(account, "oco/" + client_order_id), else a random one."""
    if client_order_id is None:
        return OCO_PREFIX + str(uuid.uuid4())
    return OCO_PREFIX + str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{account_id}/oco/{client_order_id}"))


def average_price(filled_notional: Decimal, filled_quantity: Decimal) -> Decimal | None:
    """Average fill price: notional / quantity, 4 dp, ROUND_HALF_EVEN; None before any fill."""
    if filled_quantity <= 0:
        return None
    return quantize_price(filled_notional / filled_quantity)


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
    )
    return with_terms_digest(order)


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


def _expire_at(order: Order) -> datetime | None:
    return None if order.expire_at is None else datetime.fromisoformat(order.expire_at)


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


# -- events -> order changes -----------------------------------------------------------------


ExecutionEventT: TypeAlias = (
    AcceptedEvent
    | RejectedEvent
    | TradeEvent
    | CancelledEvent
    | CancelRejectedEvent
    | BookEvent
    | ExpiredEvent
    | ReplacedEvent
    | ReplaceRejectedEvent
    | TriggeredEvent
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
        # a refused OCO group is named by its group id: both legs are refused
        targets = oco_leg_ids(event.order_id) if is_group_id(event.order_id) else (event.order_id,)
        return [_change(event, target, event.account_id, values, "order_rejected") for target in targets]
    if isinstance(event, CancelledEvent):
        values = {"status": "cancelled", "cancel_reason": event.reason}
        values["remaining_quantity"] = Decimal(0)
        return [_change(event, event.order_id, event.account_id, values, "order_cancelled")]
    if isinstance(event, ExpiredEvent):
        values = {"status": "expired", "cancel_reason": event.reason, "remaining_quantity": Decimal(0)}
        return [_change(event, event.order_id, event.account_id, values, "order_expired")]
    if isinstance(event, ReplacedEvent):
        values = {"quantity": event.quantity, "remaining_quantity": event.remaining_quantity}
        if event.price is not None:
            values["price"] = event.price
        if event.stop_price is not None:
            values["stop_price"] = event.stop_price
        remove = ("replace_pending", "replace_reject_reason") if event.reason == "user" else ()
        notify = "order_replaced" if event.reason == "user" else None
        return [_change(event, event.order_id, event.account_id, values, notify, remove=remove)]
    if isinstance(event, ReplaceRejectedEvent):
        return [
            _change(event, event.order_id, event.account_id, {"replace_reject_reason": event.reason},
                    "order_replace_rejected", remove=("replace_pending",))
        ]  # fmt: skip
    if isinstance(event, TriggeredEvent):
        return [_change(event, event.order_id, event.account_id, {"triggered": True}, "order_triggered")]
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
