"""Order use cases, behind small ports (no boto3 here; adapters live in ``repo.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol, runtime_checkable

from nexus_common.errors import Conflict, NotFound, Unavailable
from nexus_common.events import CancelOrderCommand, NewOrderCommand, utc_now
from nexus_common.instrument_store import InstrumentLookup
from nexus_common.risk import OrderRisk, RiskLimits, check_order, reserve_amount, reserve_rate

from nexus_orders.domain import (
    ExecutionEventT,
    ListOrdersQuery,
    NewOrderRequest,
    Order,
    OrderChange,
    cancel_order_command,
    new_order,
    new_order_command,
    notification_message,
    order_changes,
)

# -- ports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyResult:
    """``applied``: the change was written; ``order``: the item after (or, if not applied, as
    it is now); None when the table has no such order (e.g. an order entered elsewhere)."""

    applied: bool
    order: Order | None


class OrderRepository(Protocol):
    def put_new(self, order: Order) -> bool:
        """Write a new order unless its id exists; False when it already existed."""

    def get(self, order_id: str) -> Order | None: ...

    def list_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int
    ) -> list[Order]: ...

    def mark_cancel_requested(self, order: Order, now: datetime) -> Order | None:
        """Flag an open order as cancel-requested; None when it is no longer open."""

    def apply(self, change: OrderChange) -> ApplyResult:
        """One conditional update: only if the order exists and ``last_seq < change.seq``."""


@runtime_checkable
class OrderDeleter(Protocol):
    def delete_pending(self, order: Order) -> None:
        """Delete an order that is still ``pending_new`` (its command was never sent)."""


@dataclass(frozen=True)
class Reservation:
    """What one order reserved: ``amount`` USD (buys) or ``quantity`` shares (sells)."""

    account_id: str
    symbol: str
    side: str
    quantity: Decimal
    amount: Decimal = Decimal(0)
    rate: Decimal | None = None
    price: Decimal | None = None  # the price a buy was reserved at (a market buy's protection price)


class RiskBook(Protocol):
    def reserve(self, reservation: Reservation, limits: RiskLimits) -> None:
        """One conditional write on the account item; raises ``RiskRefused`` with the reason."""

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back (the order was never sent)."""


class MarketReference(Protocol):
    def last_trade(self, symbol: str) -> Decimal | None: ...

    def best_ask(self, symbol: str) -> Decimal | None: ...


class PreTradeRisk:
    """The pre-trade rules (``nexus_common.risk.check_order``) then one reservation write."""

    def __init__(self, book: RiskBook, market: MarketReference, limits: RiskLimits) -> None:
        self.book = book
        self.market = market
        self.limits = limits

    def reserve(self, order: Order) -> Reservation:
        last = self.market.last_trade(order.symbol)
        ask = self.market.best_ask(order.symbol) if order.type == "market" and order.side == "buy" else None
        facts = OrderRisk(order.symbol, order.side, order.type, order.quantity, order.price)
        price = check_order(facts, self.limits, last, ask)
        if price is None:
            reservation = Reservation(order.account_id, order.symbol, order.side, order.quantity)
        else:
            rate = reserve_rate(price, self.limits.fee_buffer)
            amount = reserve_amount(order.quantity, rate)
            reservation = Reservation(order.account_id, order.symbol, "buy", order.quantity, amount, rate, price)
        self.book.reserve(reservation, self.limits)
        return reservation

    def release(self, reservation: Reservation) -> None:
        self.book.release(reservation)


class CommandPublisher(Protocol):
    def publish(self, command: NewOrderCommand | CancelOrderCommand) -> None: ...


class Notifier(Protocol):
    def send(self, messages: list[dict[str, Any]]) -> None: ...


# -- the API side ----------------------------------------------------------------------------


class OrderService:
    def __init__(
        self,
        orders: OrderRepository,
        instruments: InstrumentLookup,
        commands: CommandPublisher,
        clock: Callable[[], datetime] = utc_now,
        risk: PreTradeRisk | None = None,
    ) -> None:
        self.orders = orders
        self.instruments = instruments
        self.commands = commands
        self.clock = clock
        self.risk = risk

    def place(self, account_id: str, request: NewOrderRequest) -> tuple[Order, bool]:
        """Validate, store in ``pending_new``, send the ``new`` command.

        Returns ``(order, created)``; ``created`` is False for a repeated ``client_order_id``,
        which returns the first order (and resends its command while it is ``pending_new``).
        """
        now = self.clock()
        order = new_order(account_id, request, self.instruments.get(request.symbol), now)
        if self.risk is not None:
            return self._place_with_risk(order, now)
        if not self.orders.put_new(order):
            return self._repeated(order, now), False
        self._send(new_order_command(order, now))
        return order, True

    def _repeated(self, order: Order, now: datetime) -> Order:
        existing = self.orders.get(order.order_id)
        if existing is None or existing.account_id != order.account_id:
            raise Conflict("duplicate_order", "order id already in use", "client_order_id")
        if existing.status == "pending_new":
            self._send(new_order_command(existing, now))
        return existing

    def _place_with_risk(self, order: Order, now: datetime) -> tuple[Order, bool]:
        """Risk first: a repeat returns the first order (nothing reserved again); else the rules
        and one reservation write (422 refuses, nothing stored or sent); then the order is
        stored and sent. Whatever fails after the reservation gives it back."""
        assert self.risk is not None
        if order.client_order_id is not None and self.orders.get(order.order_id) is not None:
            return self._repeated(order, now), False
        reservation = self.risk.reserve(order)
        order = order.model_copy(update={"reserved": True, "reserve_rate": reservation.rate,
                                         "protection_price": self._cap(order, reservation)})  # fmt: skip
        try:
            stored = self.orders.put_new(order)
        except Exception:
            self.risk.release(reservation)
            raise
        if not stored:  # the same client_order_id raced us: the first request holds the reservation
            self.risk.release(reservation)
            return self._repeated(order, now), False
        try:
            self._send(new_order_command(order, now))
        except Unavailable:
            # never sent: give the reservation back and forget the order, so that a retry with the
            # same client_order_id starts afresh (and reserves again)
            self.risk.release(reservation)
            if isinstance(self.orders, OrderDeleter):
                self.orders.delete_pending(order)
            raise
        return order, True

    def _cap(self, order: Order, reservation: Reservation) -> Decimal | None:
        """A market buy's protection price floored to the tick: it never fills above what was
        reserved (ROUND_FLOOR keeps the cap at or below the reservation's price)."""
        if order.type != "market" or order.side != "buy" or reservation.price is None:
            return None
        instrument = self.instruments.get(order.symbol)
        if instrument is None:
            return None
        tick = instrument.tick_size
        return (reservation.price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick

    def get(self, account_id: str, order_id: str) -> Order:
        order = self.orders.get(order_id) if _plausible_id(order_id) else None
        if order is None or order.account_id != account_id:
            raise NotFound("order_not_found", "no such order", "order_id")
        return order

    def list(self, account_id: str, query: ListOrdersQuery) -> list[Order]:
        return self.orders.list_by_account(account_id, query.statuses(), query.limit)

    def cancel(self, account_id: str, order_id: str) -> Order:
        order = self.get(account_id, order_id)
        if not order.is_open:
            raise _not_open(order)
        now = self.clock()
        flagged = self.orders.mark_cancel_requested(order, now)
        if flagged is None:
            current = self.get(account_id, order_id)
            raise _not_open(current)
        self._send(cancel_order_command(flagged, now))
        return flagged

    def _send(self, command: NewOrderCommand | CancelOrderCommand) -> None:
        try:
            self.commands.publish(command)
        except Exception as exc:
            raise Unavailable(
                "command_not_sent",
                "the order service could not reach the matching engine; retry the request"
                + (" with the same client_order_id" if command.type == "new" else ""),
            ) from exc


def _not_open(order: Order) -> Conflict:
    return Conflict("order_not_open", f"the order is {order.status}", "order_id")


def _plausible_id(order_id: str) -> bool:
    return 0 < len(order_id) <= 64


# -- the consumer side -----------------------------------------------------------------------


def apply_events(
    events: Iterable[ExecutionEventT], orders: OrderRepository, notifier: Notifier
) -> int:
    """Apply events in order; returns how many order changes were written.

    Per event: one conditional update per order it names, then one batch of notifications for
    the orders whose status the event moved to filled/partially_filled/cancelled/rejected. A
    redelivered event whose update is refused because it is *the last one applied* to the order
    sends its notifications again (the first attempt may have failed after the update; the
    notifications consumer drops duplicates by ``notification_id``).
    """
    written = 0
    for event in events:
        messages: list[dict[str, Any]] = []
        for change in order_changes(event):
            result = orders.apply(change)
            written += int(result.applied)
            order = result.order
            if order is None or change.notify is None:
                continue
            if result.applied or order.last_seq == change.seq:
                messages.append(notification_message(change, order, event.ts))
        if messages:
            notifier.send(messages)
    return written
