"""What the WebSocket API streams, and to whom. No boto3 here.

Channels: ``trades:<SYMBOL>``, ``book:<SYMBOL>``, ``ticker:<SYMBOL>`` (public, per symbol), and
``orders:<account>``, ``fills:<account>``, ``notifications:<account>``, ``analytics:<account>``
(private: the connection's own accounts only; the analytics summary is pushed by
``nexus_analytics.on_positions_stream``). ``fan_out`` turns the events of one
``execution-events`` record (one engine step of one symbol) into the messages of each channel,
in event order; the publisher numbers them per channel. A routed order's fills on external venues
(``venue_fill``) and its end (``route_ended``) reach its account's ``fills`` and ``orders``
channels only: they are not trades of this venue (no ``trades``, ``ticker`` or ``book`` message);
its rest on an external venue (``route_working``) is an ``orders`` update (``new``, or
``partially_filled`` after fills) naming the venue and price.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from nexus_common.batch import ExecutionEventT
from nexus_common.errors import Forbidden, ValidationFailed
from nexus_common.events import (
    AcceptedEvent,
    BookEvent,
    CancelledEvent,
    CancelRejectedEvent,
    RejectedEvent,
    RouteEndedEvent,
    RouteWorkingEvent,
    TradeEvent,
    VenueFillEvent,
    iso,
)
from nexus_common.money import fmt
from nexus_common.push import Connection
from pydantic import BaseModel, ConfigDict, Field

PUBLIC_CHANNELS: Final = ("trades", "book", "ticker")
PRIVATE_CHANNELS: Final = ("orders", "fills", "notifications", "analytics")
_SYMBOL: Final = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")


class SubscriptionRequest(BaseModel):
    """Body of a ``subscribe`` / ``unsubscribe`` message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["subscribe", "unsubscribe"]
    channel: Literal["trades", "book", "ticker", "orders", "fills", "notifications", "analytics"]
    symbol: str | None = Field(default=None, min_length=1, max_length=12)
    account_id: str | None = Field(default=None, min_length=1, max_length=128)


def channel_id(request: SubscriptionRequest, connection: Connection) -> str:
    """The channel a request names, after checking the caller may read it."""
    if request.channel in PUBLIC_CHANNELS:
        if request.account_id is not None:
            raise ValidationFailed("unknown_field", "a market channel takes no account_id", "account_id")
        if request.symbol is None:
            raise ValidationFailed("missing_field", "missing required field: symbol", "symbol")
        if not _SYMBOL.match(request.symbol):
            raise ValidationFailed("invalid_field", "symbol must be upper-case letters and digits", "symbol")
        return f"{request.channel}:{request.symbol}"
    if request.symbol is not None:
        raise ValidationFailed("unknown_field", "an account channel takes no symbol", "symbol")
    account_id = request.account_id or connection.account_id
    if not connection.may_read(account_id):
        raise Forbidden("forbidden", "not one of your accounts", "account_id")
    return f"{request.channel}:{account_id}"


def control(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


@dataclass
class FanOut:
    """The messages of one engine step, per channel, and the step's watermark."""

    symbol: str
    last_seq: int
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, channel: str, message: dict[str, Any]) -> None:
        self.channels.setdefault(channel, []).append(message)


def _order_update(event: ExecutionEventT, status: str, **extra: Any) -> dict[str, Any]:
    assert not isinstance(event, TradeEvent | BookEvent)
    return {
        "type": "orders",
        "event": event.type,
        "event_id": event.event_id,
        "symbol": event.symbol,
        "order_id": event.order_id,
        "status": status,
        "ts": iso(event.ts),
        **extra,
    }


def _fill(event: TradeEvent, liquidity: str) -> tuple[str, dict[str, Any]]:
    maker = liquidity == "maker"
    side = ("sell" if event.aggressor_side == "buy" else "buy") if maker else event.aggressor_side
    filled = event.maker_filled_quantity if maker else event.taker_filled_quantity
    remaining = event.maker_remaining_quantity if maker else event.taker_remaining_quantity
    account = event.maker_account_id if maker else event.taker_account_id
    return account, {
        "type": "fills",
        "event_id": event.event_id,
        "symbol": event.symbol,
        "order_id": event.maker_order_id if maker else event.taker_order_id,
        "side": side,
        "liquidity": liquidity,
        "price": fmt(event.price),
        "quantity": fmt(event.quantity),
        "filled_quantity": fmt(filled),
        "remaining_quantity": fmt(remaining),
        "status": "filled" if remaining == 0 else "partially_filled",
        "ts": iso(event.ts),
    }


def _venue_fill(event: VenueFillEvent) -> dict[str, Any]:
    """A ``fills`` message of a routed order's fill on an external venue (with the venue and its
    fee, negative for a rebate)."""
    return {
        "type": "fills",
        "event_id": event.event_id,
        "symbol": event.symbol,
        "order_id": event.order_id,
        "side": event.side,
        "liquidity": event.liquidity,
        "price": fmt(event.price),
        "quantity": fmt(event.quantity),
        "filled_quantity": fmt(event.filled_quantity),
        "remaining_quantity": fmt(event.remaining_quantity),
        "status": "filled" if event.remaining_quantity == 0 else "partially_filled",
        "venue": event.venue,
        "fee": fmt(event.fee),
        "ts": iso(event.ts),
    }


def fan_out(events: Sequence[ExecutionEventT]) -> FanOut | None:
    """The messages of one record's events (one symbol, one engine step), or None if empty."""
    if not events:
        return None
    result = FanOut(symbol=events[0].symbol, last_seq=max(e.seq for e in events))
    symbol = result.symbol
    book: list[dict[str, Any]] = []
    last_trade: TradeEvent | None = None
    trades, volume = 0, Decimal(0)
    for event in events:
        if isinstance(event, TradeEvent):
            result.add(
                f"trades:{symbol}",
                {
                    "type": "trades",
                    "symbol": symbol,
                    "event_id": event.event_id,
                    "price": fmt(event.price),
                    "quantity": fmt(event.quantity),
                    "aggressor_side": event.aggressor_side,
                    "ts": iso(event.ts),
                },
            )
            for liquidity in ("maker", "taker"):
                account, fill = _fill(event, liquidity)
                result.add(f"fills:{account}", fill)
                order = {k: fill[k] for k in ("event_id", "symbol", "order_id", "status", "ts")}
                result.add(
                    f"orders:{account}",
                    {
                        "type": "orders",
                        "event": "trade",
                        **order,
                        "filled_quantity": fill["filled_quantity"],
                        "remaining_quantity": fill["remaining_quantity"],
                    },
                )
            last_trade = event
            trades, volume = trades + 1, volume + event.quantity
        elif isinstance(event, BookEvent):
            book.append(
                {
                    "side": event.side,
                    "price": fmt(event.price),
                    "quantity": fmt(event.quantity),
                    "orders": event.orders,
                }
            )
        elif isinstance(event, AcceptedEvent):
            extra = {"side": event.side, "quantity": fmt(event.quantity)}
            if event.price is not None:
                extra["price"] = fmt(event.price)
            result.add(f"orders:{event.account_id}", _order_update(event, "new", **extra))
        elif isinstance(event, RejectedEvent):
            result.add(f"orders:{event.account_id}", _order_update(event, "rejected", reason=event.reason))
        elif isinstance(event, CancelledEvent):
            result.add(
                f"orders:{event.account_id}",
                _order_update(
                    event, "cancelled", reason=event.reason, remaining_quantity=fmt(event.remaining_quantity)
                ),
            )
        elif isinstance(event, CancelRejectedEvent):
            result.add(f"orders:{event.account_id}", _order_update(event, "cancel_rejected", reason=event.reason))
        elif isinstance(event, VenueFillEvent):  # a routed order's external fill: its account's, not the tape's
            fill = _venue_fill(event)
            result.add(f"fills:{event.account_id}", fill)
            totals = {k: fill[k] for k in ("filled_quantity", "remaining_quantity")}
            result.add(f"orders:{event.account_id}", _order_update(event, fill["status"], **totals))
        elif isinstance(event, RouteWorkingEvent):  # its remainder rests on an external venue
            status = "new" if event.filled_quantity == 0 else "partially_filled"
            rest = {
                "side": event.side, "quantity": fmt(event.quantity), "price": fmt(event.price),
                "time_in_force": event.time_in_force, "venue": event.venue,
                "filled_quantity": fmt(event.filled_quantity), "remaining_quantity": fmt(event.remaining_quantity),
            }  # fmt: skip
            result.add(f"orders:{event.account_id}", _order_update(event, status, **rest))
        elif isinstance(event, RouteEndedEvent):
            status = "filled" if event.remaining_quantity == 0 else "cancelled"
            if event.remaining_quantity and event.reason == "expired":  # a day order rested on a venue
                status = "expired"
            totals = {
                "filled_quantity": fmt(event.filled_quantity),
                "remaining_quantity": fmt(event.remaining_quantity),
            }
            result.add(f"orders:{event.account_id}", _order_update(event, status, reason=event.reason, **totals))
    if book:
        result.add(f"book:{symbol}", {"type": "book", "symbol": symbol, "engine_seq": result.last_seq, "levels": book})
    if last_trade is not None:
        result.add(
            f"ticker:{symbol}",
            {
                "type": "ticker",
                "symbol": symbol,
                "last": fmt(last_trade.price),
                "last_quantity": fmt(last_trade.quantity),
                "trades": trades,
                "volume": fmt(volume),
                "ts": iso(last_trade.ts),
            },
        )
    return result
