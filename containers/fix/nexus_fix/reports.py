"""Execution events -> ExecutionReports (8) and OrderCancelRejects (9) for the session that owns
each order.

``apply_event`` is pure: an engine event and the gateway's record of one FIX order give the
record after the event and the messages to send. ``ReportRouter`` is the consumer: for a batch of
execution-events it reads the FIX orders the events name (one batched read), applies each event
once (the record's ``seq`` guard), hands the reports to the owning session (which sequences and
stores them: a session that is not logged on gets them on reconnection through the resend
rules), then notes them sent (``sent_seq``). A redelivered event applied already is sent again
only if its reports never reached the session (``sent_seq`` below its seq), so redelivery
neither loses nor repeats a report. Events of orders not entered over FIX are skipped.

ExecIDs are derived from the event id (``<symbol>-<seq>``; a trade's ``-M``/``-T`` for the maker
and the taker side), so the same event always gives the same ExecID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.events import (
    ENGINE_EVENT_ADAPTER,
    ENTRY_INCOMPLETE,
    AcceptedEvent,
    AnyEngineEvent,
    CancelledEvent,
    CancelRejectedEvent,
    ExpiredEvent,
    RejectedEvent,
    ReplacedEvent,
    ReplaceRejectedEvent,
    TradeEvent,
    TriggeredEvent,
)
from nexus_common.jsonutil import loads
from nexus_common.money import quantize_price

from nexus_fix import mapping as m
from nexus_fix.fixorders import ZERO, FixOrder, FixOrderStore, Pending

log = logging.getLogger("nexus_fix.reports")

Fields = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Outgoing:
    """An application message to send: its MsgType and body fields, in order."""

    msg_type: str
    fields: Fields

    def get(self, tag: int) -> str | None:
        return next((value for t, value in self.fields if t == tag), None)


# -- building reports ------------------------------------------------------------------------


def ord_status(order: FixOrder) -> str:
    """OrdStatus (39): a pending cancel or replace of an open order shows as pending (FIX's
    precedence), otherwise the order's own status."""
    if order.pending is not None and order.status in (m.NEW, m.PARTIALLY_FILLED, m.PENDING_NEW):
        return m.PENDING_CANCEL if order.pending.kind == "cancel" else m.PENDING_REPLACE
    return order.status


def average_px(order: FixOrder) -> Decimal:
    """AvgPx: the filled notional over CumQty, 4 dp, ROUND_HALF_EVEN (as the orders API); 0
    before any fill."""
    if order.cum_qty <= 0:
        return ZERO
    return quantize_price(order.cum_notional / order.cum_qty)


def execution_report(
    order: FixOrder,
    exec_id: str,
    exec_type: str,
    ts: datetime,
    *,
    cl_ord_id: str | None = None,
    orig_cl_ord_id: str | None = None,
    status: str | None = None,
    last_px: Decimal | None = None,
    last_qty: Decimal | None = None,
    ord_rej_reason: str | None = None,
    text: str | None = None,
    extra: Fields = (),
) -> Outgoing:
    fields: list[tuple[int, str]] = [(m.ORDER_ID, order.order_id)]
    if cl_ord_id or order.cl_ord_id:
        fields.append((m.CL_ORD_ID, cl_ord_id or order.cl_ord_id))
    if orig_cl_ord_id:
        fields.append((m.ORIG_CL_ORD_ID, orig_cl_ord_id))
    fields += [
        (m.EXEC_ID, exec_id),
        (m.EXEC_TYPE, exec_type),
        (m.ORD_STATUS, status or ord_status(order)),
    ]
    if ord_rej_reason is not None:
        fields.append((m.ORD_REJ_REASON, ord_rej_reason))
    if order.account_id:
        fields.append((m.ACCOUNT, order.account_id))
    fields += [
        (m.SYMBOL, order.symbol or "[N/A]"),
        (m.SIDE, m.FIX_SIDES[order.side]),
        (m.ORDER_QTY, m.fix_decimal(order.quantity)),
        (m.ORD_TYPE, m.FIX_ORD_TYPES[order.ord_type]),
    ]
    if order.price is not None:
        fields.append((m.PRICE, m.fix_decimal(order.price)))
    if order.stop_price is not None:
        fields.append((m.STOP_PX, m.fix_decimal(order.stop_price)))
    fields.append((m.TIME_IN_FORCE, m.FIX_TIMES_IN_FORCE[order.time_in_force]))
    fields += [
        (m.LAST_QTY, m.fix_decimal(last_qty or ZERO)),
        (m.LAST_PX, m.fix_decimal(last_px or ZERO)),
        (m.LEAVES_QTY, m.fix_decimal(order.leaves_qty)),
        (m.CUM_QTY, m.fix_decimal(order.cum_qty)),
        (m.AVG_PX, m.fix_decimal(average_px(order))),
        (m.TRANSACT_TIME, m.utc_timestamp(ts)),
        *extra,
    ]
    if text:
        fields.append((m.TEXT, text[:200]))
    return Outgoing("8", tuple(fields))


def cancel_reject(
    order_id: str, cl_ord_id: str, orig_cl_ord_id: str, status: str, response_to: str, reason_code: str, text: str
) -> Outgoing:
    """OrderCancelReject (9): ``order_id`` "NONE" when the order is unknown (as FIX says)."""
    return Outgoing(
        "9",
        (
            (m.ORDER_ID, order_id or "NONE"),
            (m.CL_ORD_ID, cl_ord_id),
            (m.ORIG_CL_ORD_ID, orig_cl_ord_id),
            (m.ORD_STATUS, status),
            (m.CXL_REJ_RESPONSE_TO, response_to),
            (m.CXL_REJ_REASON, m.cxl_rej_reason(reason_code)),
            (m.TEXT, f"{reason_code}: {text}"[:200] if text else reason_code),
        ),
    )


def pending_new(order: FixOrder, ts: datetime) -> Outgoing:
    return execution_report(order, f"{order.order_id}-A", m.PENDING_NEW, ts, status=m.PENDING_NEW)


def pending_change(order: FixOrder, ts: datetime) -> Outgoing:
    """The ER of a cancel or replace the engine has not answered yet (ExecType 6 or E)."""
    assert order.pending is not None
    exec_type = m.PENDING_CANCEL if order.pending.kind == "cancel" else m.PENDING_REPLACE
    return execution_report(
        order,
        f"{order.order_id}-{exec_type}-{order.pending.cl_ord_id}",
        exec_type,
        ts,
        cl_ord_id=order.pending.cl_ord_id,
        orig_cl_ord_id=order.pending.orig_cl_ord_id,
        status=exec_type,
    )


# -- applying engine events ------------------------------------------------------------------


def order_ids(event: AnyEngineEvent) -> list[str]:
    """The orders an event names (a trade: both)."""
    if isinstance(event, TradeEvent):
        return [event.maker_order_id, event.taker_order_id]
    order_id = getattr(event, "order_id", None)
    return [order_id] if isinstance(order_id, str) else []


def _open_status(order: FixOrder) -> str:
    return m.PARTIALLY_FILLED if order.cum_qty > 0 else m.NEW


def apply_event(order: FixOrder, event: AnyEngineEvent) -> tuple[FixOrder, list[Outgoing]]:
    """The record after ``event`` and the reports it gives; an event type without a report
    (a book delta) changes nothing. ``seq`` becomes the event's."""
    ts = event.ts
    out: list[Outgoing] = []
    after = replace(order, seq=event.seq)
    if isinstance(event, AcceptedEvent):
        after = replace(
            after,
            status=_open_status(order),
            leaves_qty=order.quantity - order.cum_qty,
            price=event.price if order.ord_type != "market" else None,
        )
        out.append(execution_report(after, event.event_id, m.NEW, ts))
    elif isinstance(event, RejectedEvent):
        if event.reason == ENTRY_INCOMPLETE and order.status != m.PENDING_NEW:
            return after, []  # a fence of an order the engine took and had forgotten: its events stand
        after = replace(after, status=m.REJECTED, leaves_qty=ZERO, pending=None)
        out.append(
            execution_report(
                after,
                event.event_id,
                m.REJECTED,
                ts,
                ord_rej_reason=m.ord_rej_reason(event.reason),
                text=f"{event.reason}: {event.message}" if event.message else event.reason,
            )
        )
    elif isinstance(event, TradeEvent):
        maker = event.maker_order_id == order.order_id
        cum = event.maker_filled_quantity if maker else event.taker_filled_quantity
        notional = event.maker_filled_notional if maker else event.taker_filled_notional
        leaves = event.maker_remaining_quantity if maker else event.taker_remaining_quantity
        status = m.FILLED if leaves <= 0 else m.PARTIALLY_FILLED
        after = replace(after, cum_qty=cum, cum_notional=notional, leaves_qty=leaves, status=status)
        if status == m.FILLED:
            after = replace(after, pending=None)
        out.append(
            execution_report(
                after,
                f"{event.event_id}-{'M' if maker else 'T'}",
                m.TRADE,
                ts,
                last_px=event.price,
                last_qty=event.quantity,
            )
        )
    elif isinstance(event, CancelledEvent):
        pending = order.pending
        after = replace(after, status=m.CANCELED, leaves_qty=ZERO, pending=None)
        if pending is not None and pending.kind == "cancel":
            after = replace(after, cl_ord_id=pending.cl_ord_id, orig_cl_ord_id=pending.orig_cl_ord_id)
            out.append(
                execution_report(
                    after, event.event_id, m.CANCELED, ts, orig_cl_ord_id=pending.orig_cl_ord_id, text=event.reason
                )
            )
        else:  # unsolicited (IOC/FOK remainder, mass cancel, self-trade, a cancel entered over HTTP)
            out.append(execution_report(after, event.event_id, m.CANCELED, ts, text=event.reason))
    elif isinstance(event, ExpiredEvent):
        after = replace(after, status=m.EXPIRED, leaves_qty=ZERO, pending=None)
        out.append(execution_report(after, event.event_id, m.EXPIRED, ts, text=event.reason))
    elif isinstance(event, ReplacedEvent):
        pending = order.pending
        after = replace(
            after,
            quantity=event.quantity,
            leaves_qty=event.remaining_quantity,
            price=event.price if event.price is not None else order.price,
            stop_price=event.stop_price if event.stop_price is not None else order.stop_price,
        )
        after = replace(after, status=_open_status(after) if event.remaining_quantity > 0 else order.status)
        if event.reason == "user" and pending is not None and pending.kind == "replace":
            after = replace(after, cl_ord_id=pending.cl_ord_id, orig_cl_ord_id=pending.orig_cl_ord_id, pending=None)
            out.append(execution_report(after, event.event_id, m.REPLACED, ts, orig_cl_ord_id=pending.orig_cl_ord_id))
        else:  # the venue changed the order (OCO sibling fill, self-trade decrement, an HTTP replace)
            out.append(
                execution_report(
                    after,
                    event.event_id,
                    m.RESTATED,
                    ts,
                    text=event.reason,
                    extra=((m.EXEC_RESTATEMENT_REASON, "5" if event.reason != "user" else "99"),),
                )
            )
    elif isinstance(event, CancelRejectedEvent | ReplaceRejectedEvent):
        kind = "cancel" if isinstance(event, CancelRejectedEvent) else "replace"
        pending = order.pending
        if pending is not None and pending.kind == kind:
            after = replace(after, pending=None)
            response = m.CXL_REJ_RESPONSE_CANCEL if kind == "cancel" else m.CXL_REJ_RESPONSE_REPLACE
            message = getattr(event, "message", "") or event.reason
            # The engine calls an order it no longer holds unknown; the gateway knows this one,
            # so it was filled, canceled or expired meanwhile: too late (CxlRejReason 0).
            reason = "order_not_open" if event.reason == "unknown_order" else event.reason
            out.append(
                cancel_reject(
                    order.order_id,
                    pending.cl_ord_id,
                    pending.orig_cl_ord_id,
                    ord_status(after),
                    response,
                    reason,
                    message,
                )
            )
    elif isinstance(event, TriggeredEvent):  # FIX 4.4 has no "triggered" ExecType: a restatement, 378=99
        text = f"stop triggered at {event.trigger_price}"
        out.append(execution_report(after, event.event_id, m.RESTATED, ts, text=text,
                                    extra=((m.EXEC_RESTATEMENT_REASON, m.OTHER),)))  # fmt: skip
    return after, out


# -- the consumer ----------------------------------------------------------------------------


class SessionSender(Protocol):
    async def __call__(self, session_id: str, messages: list[Outgoing]) -> bool:
        """Hand messages to a session (sequenced, stored, sent now or on reconnection); False
        when the gateway has no such session (it was removed)."""


class OrderLocks:
    """One asyncio lock per order: the application (pending reports) and the consumer (engine
    reports) change an order's record one at a time, so its reports go out in order."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __call__(self, order_id: str) -> _Held:
        return _Held(self, order_id)

    def _acquire(self, order_id: str) -> asyncio.Lock:
        lock, users = self._locks.get(order_id, (asyncio.Lock(), 0))
        self._locks[order_id] = (lock, users + 1)
        return lock

    def _release(self, order_id: str) -> None:
        lock, users = self._locks[order_id]
        if users <= 1:
            del self._locks[order_id]
        else:
            self._locks[order_id] = (lock, users - 1)


class _Held:
    def __init__(self, locks: OrderLocks, order_id: str) -> None:
        self.locks = locks
        self.order_id = order_id
        self.lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        self.lock = self.locks._acquire(self.order_id)
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        assert self.lock is not None
        self.lock.release()
        self.locks._release(self.order_id)


def parse_records(payloads: Iterable[bytes | str]) -> list[AnyEngineEvent]:
    """Engine events from execution-events record data (``{"events": [...]}``, the engine's
    batch of one step), in order; a type this gateway does not report is skipped, an unreadable
    record or event is logged and skipped (it can never become a report)."""
    events: list[AnyEngineEvent] = []
    for data in payloads:
        try:
            payload = loads(data)
        except ValueError:
            log.warning("execution-events record not JSON; skipped")
            continue
        raw_events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(raw_events, list):
            log.warning('execution-events record is not {"events": [...]}; skipped')
            continue
        for raw in raw_events:
            if not isinstance(raw, dict) or raw.get("type") not in _KNOWN:
                continue
            try:
                events.append(ENGINE_EVENT_ADAPTER.validate_python(raw))
            except ValueError as exc:
                log.warning("execution event unreadable; skipped: %s", exc)
    return events


_KNOWN = frozenset(
    {
        "accepted",
        "rejected",
        "trade",
        "cancelled",
        "cancel_rejected",
        "expired",
        "replaced",
        "replace_rejected",
        "triggered",
    }
)


class ReportRouter:
    """Applies engine events to the FIX orders they name and sends the reports."""

    def __init__(
        self,
        store: FixOrderStore,
        send: SessionSender,
        locks: OrderLocks,
        run: Callable[..., Awaitable[Any]] | None = None,
        parallel: int = 16,
    ) -> None:
        self.store = store
        self.send = send
        self.locks = locks
        self.run = run or asyncio.to_thread  # the store's blocking I/O, off the event loop
        self.parallel = parallel

    async def handle(self, events: list[AnyEngineEvent]) -> int:
        """Apply a batch; returns how many reports were handed to sessions. Each order's events
        are applied one after the other, in stream order; orders do not depend on each other
        (one record each), so up to ``parallel`` orders are handled at once. The first error is
        raised once every order has stopped (the batch is then read again: what was applied is
        skipped)."""
        wanted = {oid for event in events for oid in order_ids(event)}
        if not wanted:
            return 0
        known: dict[str, FixOrder] = await self.run(self.store.get_many, wanted)
        per_order: dict[str, list[AnyEngineEvent]] = {}
        for event in events:
            for order_id in order_ids(event):
                if order_id in known:
                    per_order.setdefault(order_id, []).append(event)
        slots = asyncio.Semaphore(self.parallel)

        async def one_order(order_id: str, its_events: list[AnyEngineEvent]) -> int:
            async with slots:
                return sum([await self._one(order_id, event) for event in its_events])

        results = await asyncio.gather(*(one_order(o, e) for o, e in per_order.items()), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return sum(r for r in results if isinstance(r, int))

    async def _one(self, order_id: str, event: AnyEngineEvent) -> int:
        async with self.locks(order_id):
            current = await self.run(self.store.get, order_id)
            if current is None:
                return 0
            if current.seq >= event.seq:
                if current.seq != event.seq or current.sent_seq >= event.seq:
                    return 0  # applied and reported before
                messages = _resend(current, event)  # applied, but its reports never reached the session
            else:
                after, messages = apply_event(current, event)
                if not await self.run(self.store.apply, after):
                    return 0
            if messages and not await self.send(current.session_id, messages):
                log.warning("reports of order %s not sent: no session %s", order_id, current.session_id)
            await self.run(self.store.mark_sent, order_id, event.seq)
            return len(messages)


def _resend(after: FixOrder, event: AnyEngineEvent) -> list[Outgoing]:
    """The reports of an event that was applied (``after`` is the record it left) but not noted
    sent: rebuilt from the record after it, which holds everything they carry (cumulative
    quantities, ClOrdIDs); a cancel/replace reject's ClOrdIDs are gone with the pending request,
    so it is not rebuilt (the client may ask with OrderStatusRequest)."""
    prior = replace(after, seq=after.seq - 1)
    if isinstance(event, CancelledEvent | ReplacedEvent) and after.orig_cl_ord_id:
        # the ClOrdIDs the report carried are the record's now: restore them as the pending request
        kind = "cancel" if isinstance(event, CancelledEvent) else "replace"
        prior = replace(prior, pending=Pending(kind, after.cl_ord_id, after.orig_cl_ord_id))
    if isinstance(event, CancelRejectedEvent | ReplaceRejectedEvent):
        return []
    _, messages = apply_event(prior, event)
    return messages
