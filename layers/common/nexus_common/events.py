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
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_serializer

from nexus_common.money import fmt

Side = Literal["buy", "sell"]
# What the matching engine takes (the HTTP API, FIX and the market maker offer the same).
EngineOrderType = Literal["limit", "market", "stop", "stop_limit"]
EngineTimeInForce = Literal["gtc", "ioc", "fok", "day", "gtd"]
# Self-trade prevention: what happens when an order would trade with one of its own account.
StpMode = Literal["cancel_newest", "cancel_oldest", "cancel_both", "decrement"]
# The fills one ``routed_fills`` command may carry (a record stays far below Kinesis's 1 MB).
MAX_ROUTED_FILLS = 500


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
    order_type: EngineOrderType
    price: Decimal | None = None
    quantity: Decimal
    time_in_force: EngineTimeInForce = "gtc"
    client_order_id: str | None = None
    ts: AwareDatetime
    # Engine instructions (all optional; see the engine's module doc and the README).
    stop_price: Decimal | None = None  # stop and stop_limit: trigger on the last trade price
    display_quantity: Decimal | None = None  # iceberg: the visible slice
    post_only: bool = False  # rejected if it would take liquidity
    stp: StpMode | None = None  # self-trade prevention
    expire_at: AwareDatetime | None = None  # gtd: the instant the order expires


class CancelOrderCommand(_Wire):
    type: Literal["cancel"] = "cancel"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    ts: AwareDatetime


class ReplaceOrderCommand(_Wire):
    """Cancel/replace a live order: new limit price, stop price and/or total quantity (filled
    included). A lower quantity at the same prices keeps time priority; anything else loses it."""

    type: Literal["replace"] = "replace"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    quantity: Decimal | None = None
    ts: AwareDatetime


class MassCancelCommand(_Wire):
    """Cancel every live order of an account, in one symbol or (symbol absent) in all."""

    type: Literal["mass_cancel"] = "mass_cancel"
    command_id: str
    account_id: str
    symbol: str | None = None
    ts: AwareDatetime


class OcoOrderCommand(_Wire):
    """One-cancels-other: a take-profit limit (``price``) and a stop-loss (``stop_price``, with
    ``stop_limit_price`` a stop-limit, else a stop) on one side for one quantity. The legs are the
    orders ``{order_id}.tp`` and ``{order_id}.sl``; ``order_id`` names the group."""

    type: Literal["oco"] = "oco"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    stop_limit_price: Decimal | None = None
    time_in_force: Literal["gtc", "day", "gtd"] = "gtc"
    expire_at: AwareDatetime | None = None
    stp: StpMode | None = None
    ts: AwareDatetime


# The reason of the ``rejected`` event a ``fence`` gives an order the engine never received.
ENTRY_INCOMPLETE = "entry_incomplete"


class FenceCommand(_Wire):
    """Close an entry that never completed: an order (or OCO group, ``order_id`` its group id)
    stored ``pending_new`` whose entry stopped before it was surely sent (the orders API's entry
    sweep). An id the engine has received (in its window of seen ids, or live) changes nothing.
    Else the engine remembers the id, so that a ``new`` or ``oco`` of it arriving later is a
    duplicate it drops, and emits ``rejected`` with reason ``entry_incomplete``: the orders
    consumer ends the order ``rejected`` (only while it is ``pending_new``) and the risk consumer
    gives back its reservation (only while the account item holds its id).

    With ``replace_command_id``: the same for a replace of ``order_id`` whose sending the orders
    API could not confirm. A replace the engine has received changes nothing; else it is refused
    with ``replace_rejected`` (``entry_incomplete``, ``correlation_id`` = the replace's command
    id), which the consumers apply as any refusal of that replace (its reservation given back),
    and dropped if it arrives later."""

    type: Literal["fence"] = "fence"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    ts: AwareDatetime
    replace_command_id: str | None = None


class ClockCommand(_Wire):
    """Time passes: expires DAY/GTD orders due at ``ts`` (of one symbol, or all when absent)."""

    type: Literal["clock"] = "clock"
    command_id: str
    symbol: str | None = None
    ts: AwareDatetime


class HaltCommand(_Wire):
    """Stop trading in a symbol: new orders and replaces are refused, resting orders stay,
    cancels go on. On the journal, so every replay halts at the same point."""

    type: Literal["halt"] = "halt"
    command_id: str
    symbol: str
    reason: str = ""
    ts: AwareDatetime


class ResumeCommand(_Wire):
    """Lift a symbol's halt."""

    type: Literal["resume"] = "resume"
    command_id: str
    symbol: str
    reason: str = ""
    ts: AwareDatetime



class RouteOrderRequest(_Wire):
    """What the orders API hands the routing service (the ``routing-requests`` queue) for a
    routed parent order it stored and reserved for. ``price`` caps what the route may pay or
    accept: the limit price, or a market buy's protection price (what its reservation was made
    at); None only for a market sell. ``order_type`` is the order as entered (the 606 report's
    classification)."""

    type: Literal["route"] = "route"
    order_id: str = Field(min_length=1, max_length=64)
    account_id: str
    symbol: str
    side: Side
    order_type: Literal["limit", "market"]
    quantity: Decimal
    price: Decimal | None = None
    strategy: str
    max_venues: int | None = None
    urgency: Literal["low", "normal", "high"] = "normal"
    time_in_force: Literal["ioc", "gtc", "day"] = "ioc"
    ts: AwareDatetime


class RouteCancelRequest(_Wire):
    """What the orders API hands the routing service (the ``routing-requests`` queue) to cancel
    a routed order whose remainder rests on an external venue: routing cancels it there and
    sends the engine the order's end (``route_ended``, reason ``cancelled``)."""

    type: Literal["cancel_route"] = "cancel_route"
    order_id: str = Field(min_length=1, max_length=64)
    account_id: str
    ts: AwareDatetime


class RoutedFill(_Wire):
    """One execution of a routed order's child on a simulated external venue. ``fee`` is the
    venue's charge in USD (negative: a rebate paid to the account); ``filled_quantity``,
    ``filled_notional`` and ``remaining_quantity`` are the parent's totals after this fill."""

    child_id: str
    venue: str
    mic: str | None = None
    price: Decimal
    quantity: Decimal
    liquidity: Literal["maker", "taker"]
    fee: Decimal
    report_id: str
    filled_quantity: Decimal
    filled_notional: Decimal
    remaining_quantity: Decimal


class RoutedFillsCommand(_Wire):
    """What a routed parent order did on the simulated external venues, for the engine to put
    in the symbol's sequence: one ``venue_fill`` event per fill, then the order's end. Without
    ``internal_price``: one ``route_ended``. With it (the route sent a child to the internal
    venue): what the external fills left runs on the internal book as an IOC limit at that price
    under the parent's own id, its trades carrying the parent's totals, and its last fill or its
    IOC cancel ends the order (``route_ended`` only if it cannot run, with the reason). With
    ``rest_price`` (``gtc`` / ``day``) what is left rests on the internal book at that price.
    ``command_id`` is ``route-<order id>``: a routing retry is a duplicate the engine drops."""

    type: Literal["routed_fills"] = "routed_fills"
    command_id: str
    order_id: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    fills: list[RoutedFill] = Field(max_length=MAX_ROUTED_FILLS)
    end_reason: str
    internal_price: Decimal | None = None
    # gtc / day: what is left after the fills (and the internal part) rests on the internal book
    # at ``rest_price`` under the order's id, as any resting order (cancel, expiry, fills)
    rest_price: Decimal | None = None
    time_in_force: Literal["ioc", "gtc", "day"] = "ioc"
    # The order keeps working on an external venue after these fills: the engine puts the
    # ``venue_fill`` events in the sequence and nothing else (no end, no internal part). With
    # ``rest_venue`` (the route's first command) the remainder has just come to rest on that
    # venue at ``rest_price``: a ``route_working`` event follows the fills. Later commands of
    # the same order (its fills on that venue, its end) are ``route-<order id>-<n>``.
    working: bool = False
    rest_venue: str | None = Field(default=None, max_length=64)
    rest_mic: str | None = Field(default=None, max_length=16)
    ts: AwareDatetime


AnyCommand = (
    NewOrderCommand
    | CancelOrderCommand
    | ReplaceOrderCommand
    | MassCancelCommand
    | OcoOrderCommand
    | ClockCommand
    | HaltCommand
    | ResumeCommand
    | RoutedFillsCommand
    | FenceCommand
)
Command = Annotated[AnyCommand, Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(Command)


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
    order_type: EngineOrderType
    price: Decimal | None = None
    quantity: Decimal
    time_in_force: EngineTimeInForce
    stop_price: Decimal | None = None
    display_quantity: Decimal | None = None
    post_only: bool = False
    stp: StpMode | None = None
    expire_at: AwareDatetime | None = None  # DAY: the session close; GTD: as asked
    group_id: str | None = None  # the OCO group of a leg


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
    # user | ioc | fok | market_no_liquidity | market_protection | self_trade | oco | mass_cancel
    reason: str


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


class ExpiredEvent(EventEnvelope):
    """A DAY or GTD order reached its expiry; its open quantity is gone."""

    type: Literal["expired"] = "expired"
    order_id: str
    account_id: str
    remaining_quantity: Decimal
    reason: str  # day | gtd


class ReplacedEvent(EventEnvelope):
    """An order's new terms: after a replace command (reason ``user``), an OCO sibling's fill
    (``oco``) or a self-trade decrement (``self_trade``). ``quantity`` is the new total (filled
    included), ``remaining_quantity`` the open quantity now."""

    type: Literal["replaced"] = "replaced"
    order_id: str
    account_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    quantity: Decimal
    remaining_quantity: Decimal
    kept_priority: bool
    reason: str


class ReplaceRejectedEvent(EventEnvelope):
    type: Literal["replace_rejected"] = "replace_rejected"
    order_id: str
    account_id: str
    reason: str
    message: str = ""


class TriggeredEvent(EventEnvelope):
    """A stop or stop-limit order's stop price was reached by the last trade price: it now
    executes as a market (stop) or limit (stop_limit) order."""

    type: Literal["triggered"] = "triggered"
    order_id: str
    account_id: str
    order_type: EngineOrderType
    stop_price: Decimal
    trigger_price: Decimal


class TradingStatusEvent(EventEnvelope):
    """A ``halt`` or ``resume`` command changed the symbol's trading status."""

    type: Literal["trading_status"] = "trading_status"
    status: Literal["halted", "active"]
    reason: str = ""


class VenueFillEvent(EventEnvelope, RoutedFill):
    """A fill of a routed order (``order_id``: the parent) on a simulated external venue, put in
    the symbol's sequence by the engine from a ``routed_fills`` command. ``fee``: the venue's
    charge in USD, negative for a rebate. ``filled_quantity``, ``filled_notional`` and
    ``remaining_quantity``: the parent's totals after the fill, to SET (idempotent)."""

    type: Literal["venue_fill"] = "venue_fill"
    order_id: str
    account_id: str
    side: Side


class RouteEndedEvent(EventEnvelope):
    """A routed order is done: ``remaining_quantity`` (its quantity less what filled) will not
    fill, and its reservation ends. ``filled_*``: the parent's totals."""

    type: Literal["route_ended"] = "route_ended"
    order_id: str
    account_id: str
    side: Side
    quantity: Decimal
    filled_quantity: Decimal
    filled_notional: Decimal
    remaining_quantity: Decimal
    reason: str


class RouteWorkingEvent(EventEnvelope):
    """A routed order's remainder rests on an external venue (``venue``, ``mic``) at ``price``
    and works there (its fills come as ``venue_fill``, its end as ``route_ended``). ``filled_*``
    and ``remaining_quantity``: the parent's totals so far."""

    type: Literal["route_working"] = "route_working"
    order_id: str
    account_id: str
    side: Side
    quantity: Decimal
    venue: str
    mic: str | None = None
    price: Decimal
    time_in_force: Literal["gtc", "day"]
    filled_quantity: Decimal
    filled_notional: Decimal
    remaining_quantity: Decimal


# The events that change orders, positions and reservations: what the consumers of
# ``execution-events`` receive (``nexus_common.batch.decode_execution_events``) ...
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
    | VenueFillEvent
    | RouteWorkingEvent
    | RouteEndedEvent
)
# ... and every type the engine emits (a consumer skips the types it has nothing to do with).
AnyEngineEvent: TypeAlias = ExecutionEventT | TradingStatusEvent
EngineEvent = Annotated[AnyEngineEvent, Field(discriminator="type")]
ENGINE_EVENT_ADAPTER: TypeAdapter[AnyEngineEvent] = TypeAdapter(EngineEvent)


def event_id(symbol: str, seq: int) -> str:
    return f"{symbol}-{seq}"
