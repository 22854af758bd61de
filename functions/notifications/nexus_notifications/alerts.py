"""Price alerts: what a user asks for, and when a trade fires it. No boto3 here.

An alert is two thresholds on the trade price of one symbol: ``upper`` (fires when a trade is at
or above it) and ``lower`` (at or below). ``above``/``below`` set one of them to the given price;
``percent_move`` sets them from the last trade price at creation (the reference): ``upper`` =
reference x (1 + percent/100) rounded up to 4 dp, ``lower`` = reference x (1 - percent/100)
rounded down, for ``direction`` ``up``, ``down`` or ``both``. An alert fires once: the first
trade after its creation that reaches a threshold moves it from ``armed`` to ``fired`` with one
conditional write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from nexus_common.errors import ValidationFailed
from nexus_common.events import TradeEvent, iso
from nexus_common.fields import WireDecimal
from nexus_common.money import fmt, has_places
from pydantic import BaseModel, ConfigDict, Field, model_validator

AlertType = Literal["above", "below", "percent_move"]
Direction = Literal["up", "down", "both"]
PRICE_EXP = Decimal("0.0001")
HUNDRED = Decimal(100)


class CreateAlert(BaseModel):
    """Body of ``POST /v1/alerts``. ``price`` and ``percent`` are decimals in the JSON number
    grammar (``WireDecimal``): anything else, or beyond its digit/exponent bounds, answers 400
    ``invalid_decimal`` before any arithmetic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=12, pattern=r"^[A-Z][A-Z0-9.]{0,11}$")
    type: AlertType
    price: WireDecimal | None = Field(default=None, gt=0, lt=Decimal("1000000000"))
    percent: WireDecimal | None = Field(default=None, gt=0, le=HUNDRED)
    direction: Direction = "both"
    note: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> CreateAlert:
        if self.type in ("above", "below"):
            if self.price is None:
                raise ValidationFailed("missing_field", "missing required field: price", "price")
            if self.percent is not None:
                raise ValidationFailed("unknown_field", f"{self.type} takes a price, not a percent", "percent")
            if not has_places(self.price, 4):
                raise ValidationFailed("invalid_field", "price has more than 4 decimal places", "price")
        else:
            if self.percent is None:
                raise ValidationFailed("missing_field", "missing required field: percent", "percent")
            if self.price is not None:
                raise ValidationFailed("unknown_field", "percent_move takes a percent, not a price", "price")
            if not has_places(self.percent, 2):
                raise ValidationFailed("invalid_field", "percent has more than 2 decimal places", "percent")
        return self


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["armed", "fired"] | None = None


@dataclass(frozen=True)
class Alert:
    alert_id: str
    account_id: str
    symbol: str
    type: str
    created_at: datetime
    upper: Decimal | None
    lower: Decimal | None
    price: Decimal | None = None
    percent: Decimal | None = None
    direction: str | None = None
    reference_price: Decimal | None = None
    note: str | None = None
    status: str = "armed"  # armed | fired
    fired_at: datetime | None = None
    fired_price: Decimal | None = None
    fired_by: str | None = None  # the trade event's id

    def crossed_by(self, price: Decimal) -> bool:
        return (self.upper is not None and price >= self.upper) or (self.lower is not None and price <= self.lower)

    def fires_on(self, trade: TradeEvent) -> bool:
        """Armed, the trade came after the alert was set, and it reached a threshold."""
        return self.status == "armed" and trade.ts >= self.created_at and self.crossed_by(trade.price)

    def fired(self, trade: TradeEvent) -> Alert:
        return replace(self, status="fired", fired_at=trade.ts, fired_price=trade.price, fired_by=trade.event_id)

    def to_wire(self) -> dict[str, Any]:
        def opt(value: Decimal | None) -> str | None:
            return fmt(value) if value is not None else None

        return {
            "alert_id": self.alert_id,
            "symbol": self.symbol,
            "type": self.type,
            "price": opt(self.price),
            "percent": opt(self.percent),
            "direction": self.direction,
            "reference_price": opt(self.reference_price),
            "upper": opt(self.upper),
            "lower": opt(self.lower),
            "note": self.note,
            "status": self.status,
            "created_at": iso(self.created_at),
            "fired_at": iso(self.fired_at) if self.fired_at else None,
            "fired_price": opt(self.fired_price),
        }


def new_alert(account_id: str, request: CreateAlert, reference: Decimal | None, now: datetime) -> Alert:
    """The alert a request asks for; ``reference`` is the last trade price (percent moves need it)."""
    upper: Decimal | None = None
    lower: Decimal | None = None
    if request.type == "above":
        upper = request.price
    elif request.type == "below":
        lower = request.price
    else:
        if reference is None:
            raise ValidationFailed("no_reference_price", f"{request.symbol} has not traded yet", "symbol", status=422)
        assert request.percent is not None
        move = request.percent / HUNDRED
        if request.direction in ("up", "both"):
            upper = (reference * (1 + move)).quantize(PRICE_EXP, rounding=ROUND_CEILING)
        if request.direction in ("down", "both"):
            lower = (reference * (1 - move)).quantize(PRICE_EXP, rounding=ROUND_FLOOR)
    return Alert(
        alert_id=str(uuid.uuid4()),
        account_id=account_id,
        symbol=request.symbol,
        type=request.type,
        created_at=now,
        upper=upper,
        lower=lower,
        price=request.price,
        percent=request.percent,
        direction=request.direction if request.type == "percent_move" else None,
        reference_price=reference if request.type == "percent_move" else None,
        note=request.note,
    )


def alert_notification(alert: Alert, trade: TradeEvent) -> dict[str, Any]:
    """The notification of a fired alert; its id is the alert's, so it is stored once."""
    return {
        "notification_id": f"alert:{alert.alert_id}",
        "account_id": alert.account_id,
        "kind": "alert_triggered",
        "alert": alert.to_wire(),
        "trade": {"event_id": trade.event_id, "price": fmt(trade.price), "quantity": fmt(trade.quantity)},
        "ts": iso(trade.ts),
    }


def settlement_notification(new: dict[str, Any], old: dict[str, Any] | None, ts: datetime) -> dict[str, Any] | None:
    """The notification of a settlement batch that just ended (``settled`` or ``failed``), from a
    settlements table change; None for any other change."""
    status = new.get("status")
    if new.get("kind") != "batch" or status not in ("settled", "failed"):
        return None
    if old is not None and old.get("status") == status:
        return None
    item_id = str(new["item_id"])
    batch_id = item_id.removeprefix("BAT#")
    return {
        "notification_id": f"settlement:{batch_id}:{status}",
        "account_id": str(new["account_id"]),
        "kind": f"settlement_{status}",
        "settlement": {
            "batch_id": batch_id,
            "symbol": str(new.get("symbol", "")),
            "settle_date": str(new.get("settle_date", "")),
            "cash": fmt(Decimal(str(new.get("cash", "0")))),
            "quantity": fmt(Decimal(str(new.get("quantity", "0")))),
            "status": status,
            **({"failed_step": str(new["failed_step"])} if new.get("failed_step") else {}),
        },
        "ts": iso(ts),
    }
