"""What the orders routes read: the bodies of ``POST /v1/orders``, ``PATCH /v1/orders/{id}``,
``POST /v1/orders/mass-cancel`` and ``POST /v1/orders/oco``, and the query of ``GET /v1/orders``.
Decimals are wire decimals (strings or JSON numbers, never floats). The FIX gateway and the market
maker enter orders with the same models."""

from __future__ import annotations

from typing import Annotated, Literal

from nexus_common.errors import ValidationFailed
from nexus_common.events import Side, StpMode
from nexus_common.fields import WireDecimal
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from nexus_orders.order import STATUS_FILTERS, OrderType, TimeInForce

ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
PositiveDecimal = Annotated[WireDecimal, Field(gt=0)]


RoutingStrategy = Literal["BEST_PRICE", "FASTEST", "LOWEST_COST", "SMART", "INTERNALIZE_FIRST", "EXTERNAL_ONLY"]


class RoutingInstruction(BaseModel):
    """``routing`` of ``POST /v1/orders``: route the order across the venues (best execution)
    instead of sending it to the internal venue alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: RoutingStrategy
    max_venues: int | None = Field(default=None, ge=1, le=16)
    urgency: Literal["low", "normal", "high"] = "normal"


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
    # Absent: the order goes to the internal venue. Present: a routed (parent) order, limit or
    # market, immediate-or-cancel (see README "Best execution").
    routing: RoutingInstruction | None = None


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
