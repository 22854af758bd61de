"""Market data: trade tape and L2 book levels, shaped for the wire. No boto3 here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from nexus_common.events import BookEvent, TradeEvent, iso
from nexus_common.instruments import Instrument
from nexus_common.money import fmt
from pydantic import BaseModel, ConfigDict, Field

LEVEL_DIGITS: Final = 16
SIDE_PREFIX: Final = {"buy": "B#", "sell": "A#"}


class TradesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=50, ge=1, le=500)


def level_key(side: str, price: Decimal) -> str:
    """Sort key of a book level: ``B#``/``A#`` + price x 10^4 zero-padded to 16 digits.

    Zero-padding makes the string order the price order, so a query on ``B#`` read backwards is
    the bids best first, and on ``A#`` forwards the asks best first.
    """
    scaled = price.scaleb(4)
    if price <= 0 or scaled != scaled.to_integral_value() or scaled >= Decimal(10) ** LEVEL_DIGITS:
        raise ValueError(f"price {price} cannot be a book level key")
    return f"{SIDE_PREFIX[side]}{int(scaled):0{LEVEL_DIGITS}d}"


@dataclass(frozen=True)
class BookLevel:
    price: Decimal
    quantity: Decimal
    orders: int

    def to_wire(self) -> dict[str, Any]:
        return {"price": fmt(self.price), "quantity": fmt(self.quantity), "orders": self.orders}


def trade_item(event: TradeEvent) -> dict[str, Any]:
    """The trade tape row: public facts only (no account or order ids)."""
    return {
        "symbol": event.symbol,
        "seq": event.seq,
        "trade_id": event.event_id,
        "price": event.price,
        "quantity": event.quantity,
        "aggressor_side": event.aggressor_side,
        "epoch": event.epoch,
        "ts": iso(event.ts),
    }


def trade_to_wire(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "trade_id": str(item["trade_id"]),
        "seq": int(item["seq"]),
        "price": fmt(Decimal(str(item["price"]))),
        "quantity": fmt(Decimal(str(item["quantity"]))),
        "aggressor_side": str(item["aggressor_side"]),
        "ts": str(item["ts"]),
    }


def level_values(event: BookEvent) -> dict[str, Any]:
    """Absolute values of one level after a ``book`` delta (quantity 0 stays as a tombstone)."""
    return {
        "side": event.side,
        "price": event.price,
        "quantity": event.quantity,
        "orders": event.orders,
        "seq": event.seq,
        "epoch": event.epoch,
        "ts": iso(event.ts),
    }


def live_levels(items: Iterable[dict[str, Any]], depth: int) -> list[BookLevel]:
    """Levels with a quantity, in the order given, at most ``depth``."""
    levels: list[BookLevel] = []
    for item in items:
        quantity = Decimal(str(item["quantity"]))
        if quantity <= 0:
            continue
        levels.append(BookLevel(Decimal(str(item["price"])), quantity, int(item.get("orders", 0))))
        if len(levels) >= depth:
            break
    return levels


def instrument_to_wire(instrument: Instrument) -> dict[str, Any]:
    return {
        "symbol": instrument.symbol,
        "name": instrument.name,
        "currency": instrument.currency,
        "tick_size": fmt(instrument.tick_size),
        "lot_size": fmt(instrument.lot_size),
        "status": instrument.status,
    }
