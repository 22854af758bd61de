"""What the orders service needs from the outside, and the values that cross that boundary.

No boto3 here: ``repo.py`` implements these ports over DynamoDB, Kinesis and the market data
tables; ``nexus_common.sqs.SqsBatchSender`` is the ``Notifier``; the tests use in-memory fakes
with the same contracts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from nexus_common.events import FenceCommand
from nexus_common.risk import ReplaceTerms, RiskLimits

from nexus_orders.commands import AnyOrderCommand
from nexus_orders.folding import OrderChange
from nexus_orders.order import Order
from nexus_orders.risk import Reservation


class ReplaceRelease(enum.Enum):
    """What giving a replace's reservation back did (``release_replace_reservation``)."""

    RELEASED = "released"  # given back: the replace had not begun
    BEGUN = "begun"  # nothing given back: the replace of that number began
    NOT_HELD = "not_held"  # nothing to give back: the account does not hold the id


@dataclass(frozen=True)
class ApplyResult:
    """``applied``: the change was written; ``order``: the item after (or, if not applied, as
    it is now); None when the table has no such order (e.g. an order entered elsewhere)."""

    applied: bool
    order: Order | None


class OrderRepository(Protocol):
    def put_new(self, order: Order) -> bool:
        """Write a new order unless its id exists; False when it already existed."""

    def put_group(self, legs: list[Order]) -> bool:
        """Write an OCO group's legs in one transaction unless they exist; False if they did."""

    def get(self, order_id: str) -> Order | None: ...

    def replace_reservation(self, order_id: str, number: int) -> str | None:
        """The reservation id replace ``number`` of the order holds, as its terms item names it
        (a consistent read); None when no terms item names one."""
        ...

    def get_many(self, order_ids: list[str]) -> dict[str, Order]:
        """The orders of ``order_ids`` that exist, by id (consistent reads)."""
        ...

    def list_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int
    ) -> list[Order]: ...

    def page_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int, cursor: str | None
    ) -> tuple[list[Order], str | None]:
        """The account's orders, newest first, after ``cursor``, and the next page's cursor
        (None at the end); a cursor this API did not give is ``ValidationFailed`` (400)."""

    def mark_cancel_requested(self, order: Order, now: datetime) -> Order | None:
        """Flag an open order as cancel-requested; None when it is no longer open."""

    def begin_replace(
        self, order: Order, number: int, terms: ReplaceTerms | None, protection_price: Decimal | None, now: datetime,
        reservation_id: str | None = None, check_held: bool = False,
    ) -> Order | None:
        """In one transaction: mark the open order's replace ``number`` as pending (only if no
        other is) and store its terms for the risk consumer (with the id of what it reserved up
        front, if anything); with ``check_held``, only while the account holds that id. None when
        the order changed or the id is not held."""

    def release_replace_reservation(self, order_id: str, number: int, reservation: Reservation) -> ReplaceRelease:
        """In one transaction: give ``reservation`` back by id unless replace ``number`` of the
        order has begun (``BEGUN``: nothing given back). ``NOT_HELD`` when the account does not
        hold the id."""

    def apply(self, change: OrderChange) -> ApplyResult:
        """One conditional update: only if the order exists and ``last_seq < change.seq``."""


@runtime_checkable
class OrderDeleter(Protocol):
    def delete_pending(self, order: Order) -> bool:
        """Delete an order that is still ``pending_new`` (its command was never sent). True when
        the table no longer holds the order; False when it holds it in another status."""


@dataclass(frozen=True)
class PendingEntry:
    """An order stored ``pending_new`` for the engine, as the ``pending-entries`` index holds it."""

    order_id: str
    account_id: str
    symbol: str
    created_at: str  # ISO instant of its entry
    group_id: str | None = None  # an OCO leg's group


@dataclass(frozen=True)
class PendingReplace:
    """An order whose replace ``number`` waits for the engine's answer, as the
    ``pending-replaces`` index holds it."""

    order_id: str
    account_id: str
    symbol: str
    number: int
    begun_at: str  # ISO instant the replace began


class PendingEntries(Protocol):
    """The entry sweep's view of the orders table: the entries the engine has not been seen to
    take, in ``entry_shards`` partitions of the index, and how far the sweep got (an ISO instant);
    and the replaces waiting for the engine's answer, in as many partitions of theirs."""

    entry_shards: int

    def pending_entries(self, shard: int, since: str | None, before: str, limit: int) -> list[PendingEntry]:
        """The oldest ``limit`` entries of one partition stored from ``since`` (every one when
        None) up to ``before``, both included, oldest first."""
        ...

    def pending_replaces(self, shard: int, before: str, limit: int) -> list[PendingReplace]:
        """The oldest ``limit`` replaces of one partition begun up to ``before`` (included) and not
        yet answered, oldest first."""
        ...

    def swept_through(self) -> str | None: ...

    def mark_swept(self, through: str) -> None: ...


class FencePublisher(Protocol):
    def publish_all(self, commands: list[FenceCommand]) -> None:
        """Put the commands on ``order-commands``, each on its symbol's shard (at least once)."""


class RiskBook(Protocol):
    def reserve(self, reservation: Reservation, limits: RiskLimits) -> bool:
        """One conditional write on the account item that also adds ``reservation_id`` to the
        item's set: True when this call wrote it; False when the id was already there (in place:
        nothing more reserved). Raises ``RiskRefused`` with the reason (``risk.refusal``)."""

    def release(self, reservation: Reservation) -> bool:
        """Give a reservation back (the order was never sent) and remove its id, only while the
        item holds the id; False when it does not (nothing changes)."""

    def holds(self, account_id: str, reservation_id: str) -> bool:
        """Does the account item hold ``reservation_id`` now (a consistent read)?"""


class MarketReference(Protocol):
    def last_trade(self, symbol: str) -> Decimal | None: ...

    def best_ask(self, symbol: str) -> Decimal | None: ...


class CommandPublisher(Protocol):
    def publish(self, command: AnyOrderCommand) -> None: ...


class RoutePublisher(Protocol):
    """Hands routed orders' requests (``RouteOrderRequest`` as JSON) to the routing service, at
    least once: routing drops a repeat. ``nexus_common.sqs.SqsBatchSender`` is the adapter."""

    def send(self, messages: list[dict[str, Any]]) -> None: ...


class Notifier(Protocol):
    def send(self, messages: list[dict[str, Any]]) -> None: ...
