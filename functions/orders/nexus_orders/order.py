"""The order aggregate: an order as the orders table holds it, its statuses, its ids and the
terms a client_order_id stands for.

Pure domain: no boto3, no Lambda events. Decimals are exact; the one derived value, the average
fill price, is ``filled_notional / filled_quantity`` rounded to 4 dp with ``ROUND_HALF_EVEN``
(banker's rounding, ``money.quantize_price``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias

from nexus_common.events import EngineOrderType, EngineTimeInForce, Side, StpMode
from nexus_common.money import fmt, quantize_price
from nexus_common.risk import OCO_PREFIX
from pydantic import BaseModel, ConfigDict

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
                      "expire_at", "post_only", "display_quantity", "stp", "leg", "routing")  # fmt: skip
REPLACEABLE_TERMS: Final = frozenset({"quantity", "price", "stop_price"})

# Namespace of order ids derived from (account, client_order_id): fixed forever.
ORDER_ID_NAMESPACE: Final = uuid.UUID("6f1d3c1e-5b7a-4f0e-9a51-3c0f2d7e8b42")


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
    # A routed (parent) order: its routing instruction (``strategy``, ``max_venues``, ``urgency``);
    # the routing service executes it on the venues and the engine sequences its fills.
    routing: dict[str, Any] | None = None
    # A routed order whose remainder rests on an external venue (``route_working``): the venue's
    # name. The orders API sends a cancel of such an order to routing, which cancels it there.
    rests_on: str | None = None
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
        if self.routing is not None:
            venues = self.routing.get("max_venues")
            body["routing"] = {"strategy": self.routing["strategy"], "urgency": self.routing.get("urgency", "normal"),
                               "max_venues": None if venues is None else int(venues)}
        if self.rests_on is not None:
            body["rests_on"] = self.rests_on
        return body


def derive_order_id(account_id: str, client_order_id: str | None) -> str:
    """uuid5(account, client_order_id) when the client names the order, else a random uuid4."""
    if client_order_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(ORDER_ID_NAMESPACE, f"{account_id}/{client_order_id}"))


def terms_digest(order: Order) -> str:
    """sha256 of the order's ``ENTRY_TERMS``, decimals by value ("10" and "10.00" agree)."""
    # ``routing`` counts only when given, so the digests of orders stored before it existed hold
    terms = {name: getattr(order, name) for name in ENTRY_TERMS if name != "routing" or order.routing is not None}
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
