"""Execution events folded into order changes: what one event does to the orders it names, as
absolute values to SET (idempotent by construction), and the notification of a change. Pure
domain: no boto3, no Lambda events."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.events import (
    ENTRY_INCOMPLETE,
    AcceptedEvent,
    CancelledEvent,
    CancelRejectedEvent,
    ExecutionEventT,
    ExpiredEvent,
    RejectedEvent,
    ReplacedEvent,
    ReplaceRejectedEvent,
    RouteEndedEvent,
    RouteWorkingEvent,
    TradeEvent,
    TriggeredEvent,
    VenueFillEvent,
    iso,
)
from nexus_common.money import fmt
from nexus_common.risk import is_group_id, oco_leg_ids, replace_number

from nexus_orders.order import Order, average_price

# The keys of the ``pending-replaces`` index an order carries while a replace waits for the
# engine (set by ``repo.begin_replace``), removed with ``replace_pending`` by the engine's answer.
PENDING_REPLACE: Final = ("replace_shard", "replace_at")


@dataclass(frozen=True)
class OrderChange:
    """Absolute values to SET on one order for one event (idempotent by construction)."""

    order_id: str
    account_id: str
    seq: int
    event_id: str
    values: dict[str, Any]
    epoch: int = 0  # the engine leader's fencing token: an older leader's event changes nothing
    remove: tuple[str, ...] = ()
    notify: str | None = None  # notification kind, when the account should hear of it
    extra: dict[str, Any] = field(default_factory=dict)
    only_status: str | None = None  # applied only while the order is in this status (a fence's rejection)
    only_replace: int | None = None  # applied only while this replace is pending (a fence's refusal of it)
    # The event shows the engine received the order: its entry leaves the entry sweep's index.
    # Not so for a refused cancel or replace (the engine answers those for an id it does not know).
    received: bool = True


def _fill_values(
    filled: Decimal, notional: Decimal, remaining: Decimal, ts: str
) -> tuple[dict[str, Any], str]:
    status = "filled" if remaining == 0 else "partially_filled"
    values = {
        "status": status,
        "filled_quantity": filled,
        "filled_notional": notional,
        "average_price": average_price(notional, filled),
        "remaining_quantity": remaining,
        "updated_at": ts,
    }
    return values, f"order_{status}"


def order_changes(event: ExecutionEventT) -> list[OrderChange]:
    """What one execution event does to the orders it names (``book`` events: nothing)."""
    ts = iso(event.ts)
    if isinstance(event, AcceptedEvent):
        return [_change(event, event.order_id, event.account_id, {"status": "new"})]
    if isinstance(event, RejectedEvent):
        values: dict[str, Any] = {"status": "rejected", "reject_reason": event.reason}
        values["remaining_quantity"] = Decimal(0)
        # a refused OCO group is named by its group id: both legs are refused
        targets = oco_leg_ids(event.order_id) if is_group_id(event.order_id) else (event.order_id,)
        # A fence's rejection (the engine never received the order) ends only an order still
        # ``pending_new``: one the engine took and ended before is left as its events made it.
        only = "pending_new" if event.reason == ENTRY_INCOMPLETE else None
        return [replace(_change(event, target, event.account_id, values, "order_rejected"), only_status=only)
                for target in targets]  # fmt: skip
    if isinstance(event, CancelledEvent):
        values = {"status": "cancelled", "cancel_reason": event.reason}
        values["remaining_quantity"] = Decimal(0)
        return [_change(event, event.order_id, event.account_id, values, "order_cancelled")]
    if isinstance(event, ExpiredEvent):
        values = {"status": "expired", "cancel_reason": event.reason, "remaining_quantity": Decimal(0)}
        return [_change(event, event.order_id, event.account_id, values, "order_expired")]
    if isinstance(event, ReplacedEvent):
        values = {"quantity": event.quantity, "remaining_quantity": event.remaining_quantity}
        if event.price is not None:
            values["price"] = event.price
        if event.stop_price is not None:
            values["stop_price"] = event.stop_price
        remove = ("replace_pending", "replace_reject_reason", *PENDING_REPLACE) if event.reason == "user" else ()
        notify = "order_replaced" if event.reason == "user" else None
        return [_change(event, event.order_id, event.account_id, values, notify, remove=remove)]
    if isinstance(event, ReplaceRejectedEvent):
        # A fence's refusal closes the replace only while it waits: one the engine had applied
        # (and then forgotten, its window of seen ids past it) keeps its replaced terms and no reason.
        fenced = replace_number(event.order_id, event.correlation_id) if event.reason == ENTRY_INCOMPLETE else None
        return [
            replace(_change(event, event.order_id, event.account_id, {"replace_reject_reason": event.reason},
                            "order_replace_rejected", remove=("replace_pending", *PENDING_REPLACE)), received=False,
                    only_replace=fenced)
        ]  # fmt: skip
    if isinstance(event, TriggeredEvent):
        return [_change(event, event.order_id, event.account_id, {"triggered": True}, "order_triggered")]
    if isinstance(event, CancelRejectedEvent):
        refused = _change(event, event.order_id, event.account_id, {},
                          remove=("cancel_requested", "cancel_requested_at"))  # fmt: skip
        return [replace(refused, received=False)]
    if isinstance(event, TradeEvent):
        trade = {"price": fmt(event.price), "quantity": fmt(event.quantity)}
        maker_values, maker_kind = _fill_values(
            event.maker_filled_quantity,
            event.maker_filled_notional,
            event.maker_remaining_quantity,
            ts,
        )
        taker_values, taker_kind = _fill_values(
            event.taker_filled_quantity,
            event.taker_filled_notional,
            event.taker_remaining_quantity,
            ts,
        )
        return [
            _change(
                event,
                event.maker_order_id,
                event.maker_account_id,
                maker_values,
                maker_kind,
                extra={"trade": {**trade, "liquidity": "maker"}},
            ),
            _change(
                event,
                event.taker_order_id,
                event.taker_account_id,
                taker_values,
                taker_kind,
                extra={"trade": {**trade, "liquidity": "taker"}},
            ),
        ]
    if isinstance(event, VenueFillEvent):
        # A routed parent's fill on an external venue: the parent's totals after it, SET like a
        # trade's. The fee is the venue's own (negative: a rebate), passed on as it is.
        values, kind = _fill_values(event.filled_quantity, event.filled_notional, event.remaining_quantity, ts)
        fill = {
            "price": fmt(event.price),
            "quantity": fmt(event.quantity),
            "liquidity": event.liquidity,
            "venue": event.venue,
            "fee": fmt(event.fee),
        }
        return [_change(event, event.order_id, event.account_id, values, kind, extra={"trade": fill})]
    if isinstance(event, RouteWorkingEvent):
        return [_route_working(event, ts)]
    if isinstance(event, RouteEndedEvent):
        return [_route_ended(event, ts)]
    return []


def _route_working(event: RouteWorkingEvent, ts: str) -> OrderChange:
    """The routed parent's remainder rests on an external venue: it is open there, ``rests_on``
    names the venue (where the orders API sends its cancel). Nothing filled yet: ``new``, as an
    accepted order (and, as one, no notice); else the totals of the fills before it again (its
    status stays the venue fill's ``partially_filled``, whose notice the account already had)."""
    values, _ = _fill_values(event.filled_quantity, event.filled_notional, event.remaining_quantity, ts)
    if event.filled_quantity == 0:
        values["status"] = "new"
    values["rests_on"] = event.venue
    return _change(event, event.order_id, event.account_id, values)


def _route_ended(event: RouteEndedEvent, ts: str) -> OrderChange:
    """The routed parent is done. All filled: the last fill's absolute values again (a parent
    already filled stays as it is; the fill already told the account, so no second notice).
    Otherwise its remainder is cancelled like an IOC's, with the route's reason, or (reason
    ``expired``: a day order that rested on an external venue) expired like an expired order.
    Either way a cancel request is settled: ``cancel_requested`` goes, as with any end."""
    values, _ = _fill_values(event.filled_quantity, event.filled_notional, event.remaining_quantity, ts)
    done = ("cancel_requested", "cancel_requested_at")
    if event.remaining_quantity == 0:
        return _change(event, event.order_id, event.account_id, values, remove=done)
    status = "expired" if event.reason == "expired" else "cancelled"
    values.update(status=status, cancel_reason=event.reason, remaining_quantity=Decimal(0))
    return _change(event, event.order_id, event.account_id, values, f"order_{status}", remove=done)


def _change(
    event: ExecutionEventT,
    order_id: str,
    account_id: str,
    values: dict[str, Any],
    notify: str | None = None,
    *,
    remove: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> OrderChange:
    return OrderChange(
        order_id=order_id,
        account_id=account_id,
        seq=event.seq,
        event_id=event.event_id,
        epoch=event.epoch,
        values={**values, "updated_at": iso(event.ts)},
        remove=remove,
        notify=notify,
        extra=extra or {},
    )


def merged(changes: list[OrderChange]) -> list[list[OrderChange]]:
    """One order's changes (in event order) cut into runs that one write can apply: a run goes on
    while its changes come from the same engine leader (epoch) with growing seqs and none but its
    last has a notice. Its write (``merge``) leaves the order as the run's changes one after the
    other would, and the notice, if any, is the last change's, on that same order: an accepted
    order filled in the same batch is one write, and each partial fill keeps its own."""
    runs: list[list[OrderChange]] = []
    for change in changes:
        last = runs[-1][-1] if runs else None
        if (last is not None and last.notify is None and last.epoch == change.epoch and last.seq < change.seq
                and change.only_status is None and change.only_replace is None):  # a guarded change: on its own
            runs[-1].append(change)
        else:
            runs.append([change])
    return runs


def merge(run: list[OrderChange]) -> OrderChange:
    """The change that applies ``run`` (see ``merged``) at once: each later change's SETs and
    REMOVEs over the earlier ones', under the last change's seq, epoch, event, notice and extras.
    The last seq's condition is the one each change's own write would have checked last: the
    item's seq is below it exactly when some change of the run is not applied yet, and SETs are
    absolute values, so applying the earlier ones again is harmless."""
    if len(run) == 1:
        return run[0]
    values: dict[str, Any] = {}
    removed: set[str] = set()
    for change in run:
        for name in change.remove:
            values.pop(name, None)
            removed.add(name)
        for name, value in change.values.items():
            if value is None:
                values.pop(name, None)
                removed.add(name)
            else:
                values[name] = value
                removed.discard(name)
    return replace(run[-1], values=values, remove=tuple(sorted(removed)),
                   received=any(change.received for change in run))  # fmt: skip


def notification_message(change: OrderChange, order: Order, ts: datetime) -> dict[str, Any]:
    """Body of the message put on the notifications queue for (order, event)."""
    assert change.notify is not None
    return {
        "notification_id": f"{change.event_id}:{change.order_id}",
        "account_id": order.account_id,
        "kind": change.notify,
        "event_id": change.event_id,
        "order": order.to_wire(),
        **change.extra,
        "ts": iso(ts),
    }
