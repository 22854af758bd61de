"""Order use cases, behind small ports (no boto3 here; adapters live in ``repo.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nexus_common.errors import Conflict, NotFound, Unavailable
from nexus_common.events import CancelOrderCommand, NewOrderCommand, utc_now
from nexus_common.instrument_store import InstrumentLookup

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
    ) -> None:
        self.orders = orders
        self.instruments = instruments
        self.commands = commands
        self.clock = clock

    def place(self, account_id: str, request: NewOrderRequest) -> tuple[Order, bool]:
        """Validate, store in ``pending_new``, send the ``new`` command.

        Returns ``(order, created)``; ``created`` is False for a repeated ``client_order_id``,
        which returns the first order (and resends its command while it is ``pending_new``).
        """
        now = self.clock()
        order = new_order(account_id, request, self.instruments.get(request.symbol), now)
        if not self.orders.put_new(order):
            existing = self.orders.get(order.order_id)
            if existing is None or existing.account_id != account_id:
                raise Conflict("duplicate_order", "order id already in use", "client_order_id")
            if existing.status == "pending_new":
                self._send(new_order_command(existing, now))
            return existing, False
        self._send(new_order_command(order, now))
        return order, True

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
