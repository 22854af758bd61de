"""Commands into the engine and the events out of it.

Wire format (JSON, decimals as strings):

* A record on ``order-commands`` (partition key = symbol) is one command, a ``Command`` below.
* A record on ``execution-events`` (partition key = symbol) is ``{"events": [...]}``: every event
  the engine emitted for that symbol in one step, in sequence order. Packing a symbol's events in
  one record keeps them in order even when a ``PutRecords`` call partly fails and is retried.

Every event is flat: the envelope fields (``event_id``, ``type``, ``version``, ``ts``,
``correlation_id``, ``symbol``, ``seq``, ``epoch``) plus the fields of its type. ``seq`` is the
symbol's engine sequence number (1, 2, 3, ... with no gaps); ``event_id`` is ``f"{symbol}-{seq}"``,
so a replay of the same journal emits the same ids and consumers drop the duplicates. ``ts`` comes
from the command that caused the event, never from the engine's wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_serializer

from nexus_common.money import fmt

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["gtc", "ioc", "fok", "day"]


def utc_now() -> datetime:
    """The one way to read the clock: tz-aware UTC."""
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a ``Z`` suffix."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_serializer("*", when_used="json")
    def _decimals_as_strings(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            return fmt(value)
        if isinstance(value, datetime):
            return iso(value)
        return value


# -- commands --------------------------------------------------------------------------------


class NewOrderCommand(_Wire):
    type: Literal["new"] = "new"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal | None = None
    quantity: Decimal
    time_in_force: TimeInForce = "gtc"
    client_order_id: str | None = None
    ts: AwareDatetime


class CancelOrderCommand(_Wire):
    type: Literal["cancel"] = "cancel"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    ts: AwareDatetime


Command = Annotated[NewOrderCommand | CancelOrderCommand, Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[NewOrderCommand | CancelOrderCommand] = TypeAdapter(Command)


# -- events ----------------------------------------------------------------------------------


class EventEnvelope(_Wire):
    event_id: str
    type: str
    version: int = 1
    ts: AwareDatetime
    correlation_id: str
    symbol: str
    seq: int = Field(ge=1)
    epoch: int = Field(default=0, ge=0)


class AcceptedEvent(EventEnvelope):
    type: Literal["accepted"] = "accepted"
    order_id: str
    account_id: str
    side: Side
    order_type: OrderType
    price: Decimal | None = None
    quantity: Decimal
    time_in_force: TimeInForce


class RejectedEvent(EventEnvelope):
    type: Literal["rejected"] = "rejected"
    order_id: str
    account_id: str
    reason: str
    message: str = ""


class TradeEvent(EventEnvelope):
    type: Literal["trade"] = "trade"
    price: Decimal
    quantity: Decimal
    aggressor_side: Side
    maker_order_id: str
    maker_account_id: str
    taker_order_id: str
    taker_account_id: str
    # Cumulative state of both orders after this trade: consumers SET these absolute values,
    # which makes applying the event idempotent.
    maker_filled_quantity: Decimal
    maker_filled_notional: Decimal
    maker_remaining_quantity: Decimal
    taker_filled_quantity: Decimal
    taker_filled_notional: Decimal
    taker_remaining_quantity: Decimal


class CancelledEvent(EventEnvelope):
    type: Literal["cancelled"] = "cancelled"
    order_id: str
    account_id: str
    remaining_quantity: Decimal
    reason: str  # user | ioc | market_no_liquidity | ...


class CancelRejectedEvent(EventEnvelope):
    """A cancel that could not be done: the order is unknown, already done, or not the sender's."""

    type: Literal["cancel_rejected"] = "cancel_rejected"
    order_id: str
    account_id: str
    reason: str  # unknown_order | not_owner


class BookEvent(EventEnvelope):
    """Book-level delta: the new aggregate at one price level (0 removes the level)."""

    type: Literal["book"] = "book"
    side: Side
    price: Decimal
    quantity: Decimal
    orders: int = Field(ge=0)


ExecutionEvent = Annotated[
    AcceptedEvent | RejectedEvent | TradeEvent | CancelledEvent | CancelRejectedEvent | BookEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[
    AcceptedEvent | RejectedEvent | TradeEvent | CancelledEvent | CancelRejectedEvent | BookEvent
] = TypeAdapter(ExecutionEvent)


def event_id(symbol: str, seq: int) -> str:
    return f"{symbol}-{seq}"
