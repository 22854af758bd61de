"""The FIX application layer: order entry on the orders service's own code, and its answers.

=====================================  ==============================================================
in                                     what the gateway does
=====================================  ==============================================================
NewOrderSingle (D)                     ``NewOrderRequest`` -> ``OrderService.place`` (validation,
                                       pre-trade risk, reservation, order table, idempotency, engine
                                       command): ER PendingNew, then the engine's reports
OrderCancelRequest (F)                 ``OrderService.cancel``: ER PendingCancel, then Canceled or 9
OrderCancelReplaceRequest (G)          ``OrderService.replace``: ER PendingReplace, then Replaced or 9
OrderStatusRequest (H)                 ER ExecType I from the gateway's record of the order
OrderMassCancelRequest (q)             ``OrderService.mass_cancel`` per account: OrderMassCancelReport
                                       (r), then a Canceled ER per order
any other application message          BusinessMessageReject (j), reason 3
=====================================  ==============================================================

The session acts only for its configured accounts: Account (1), when given, must be one of
them; absent, the session's only account is meant (a session of several accounts must name it).
ClOrdIDs are claimed per account (``fixorders``): a repeated ClOrdID is rejected (OrdRejReason 6,
or CxlRejReason 6 on F/G), except a PossResend (97=Y) repeat of an order already received, which
is ignored; a PossResend order never seen is entered, and so is a resend (PossResend or not) of
an order whose entry was cut short before it was placed. A ClOrdID an HTTP order of the account
uses is refused and the gateway keeps no record of that order. F/G whose ClOrdID or OrigClOrdID
is not 1 to 64 characters get OrderCancelReject CxlRejReason 99. Every order entered over FIX is also
recorded on the audit trail (``fix_order_entered``, source ``fix``, on the order).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import NexusError, NotFound, Unavailable
from nexus_common.events import utc_now
from nexus_orders.models import MassCancelRequest, NewOrderRequest, ReplaceOrderRequest
from nexus_orders.order import derive_order_id
from nexus_orders.service import EntryUnconfirmed, OrderService, ReplaceUnconfirmed
from pydantic import ValidationError

from nexus_fix import mapping as m
from nexus_fix.fixorders import ZERO, FixOrder, FixOrderStore, Pending
from nexus_fix.reports import (
    OrderLocks,
    Outgoing,
    cancel_reject,
    execution_report,
    ord_status,
    pending_change,
    pending_new,
)

log = logging.getLogger("nexus_fix.application")

AUDIT_NAMESPACE: Final = uuid.UUID("3b0e5f4c-9d2a-4e61-8c7b-5a1f0e2d9c34")
SUPPORTED: Final = frozenset({"D", "F", "G", "H", "q"})
IN_FLIGHT: Final = 32  # NewOrderSingles of one session entered at once (each is independent I/O)
MAX_FIELD: Final = 64  # ClOrdIDs, symbols, accounts: longer values are refused before any lookup
OTHER_CHANNEL: Final = frozenset({"client_order_id_reused", "duplicate_order"})  # place's refusals of a used id
CATCH_UP_SECONDS: Final = 5.0  # how long a replace waits for the orders read model to fold the last one
DONE: Final = frozenset({m.FILLED, m.CANCELED, m.REJECTED, m.EXPIRED})  # OrdStatus of an order off the book


class FixMessage(Protocol):
    """What the application reads of an inbound message (the codec's ``Message``)."""

    @property
    def msg_type(self) -> str: ...

    def get(self, tag: int) -> str | None: ...


class Session(Protocol):
    """What the application needs of a session (the session layer's ``SessionHandle``)."""

    session_id: str

    @property
    def config(self) -> Any: ...  # .accounts: the accounts the session may act for

    async def send(self, message: Any) -> None: ...


class EntryRejected(Exception):
    """An order refused before the orders service was called (a FIX value it cannot map)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# -- mapping a NewOrderSingle ----------------------------------------------------------------


def _value(message: FixMessage, tag: int) -> str | None:
    value = message.get(tag)
    return value if value not in (None, "") else None


def new_order_request(message: FixMessage) -> NewOrderRequest:
    """The orders API's request for a NewOrderSingle (the same model ``POST /v1/orders`` parses).

    OrdType 1/2/3/4 -> market/limit/stop/stop_limit; TimeInForce 0/1/3/4/6 -> day/gtc/ioc/fok/gtd
    (absent: the orders API's default, as over HTTP: ioc for a market order, else gtc; 6 takes
    ExpireTime); ExecInst 6 -> post_only; MaxFloor ->
    display_quantity (iceberg); Side 1/2 -> buy/sell. Raises ``EntryRejected``."""
    side = m.SIDES.get(_value(message, m.SIDE) or "")
    if side is None:
        raise EntryRejected("unsupported", f"Side {message.get(m.SIDE)!r} is not supported (1 buy, 2 sell)")
    ord_type = m.ORD_TYPES.get(_value(message, m.ORD_TYPE) or "")
    if ord_type is None:
        raise EntryRejected("unsupported", f"OrdType {message.get(m.ORD_TYPE)!r} is not supported (1, 2, 3, 4)")
    tif_code = _value(message, m.TIME_IN_FORCE)
    tif = m.TIMES_IN_FORCE.get(tif_code) if tif_code is not None else None
    if tif_code is not None and tif is None:
        raise EntryRejected("unsupported", f"TimeInForce {tif_code!r} is not supported (0, 1, 3, 4, 6)")
    exec_inst = (_value(message, m.EXEC_INST) or "").split()
    unknown = [v for v in exec_inst if v != m.EXEC_INST_POST_ONLY]
    if unknown:
        raise EntryRejected("unsupported", f"ExecInst {' '.join(unknown)} is not supported (6: post-only)")
    expire_at = None
    expire_text = _value(message, m.EXPIRE_TIME)
    if expire_text is not None:
        try:
            expire_at = m.parse_utc_timestamp(expire_text)
        except ValueError:
            raise EntryRejected("invalid_field", f"ExpireTime {expire_text[:40]!r} is not a UTCTimestamp") from None
    body: dict[str, Any] = {
        "symbol": _value(message, m.SYMBOL),
        "side": side,
        "type": ord_type,
        "quantity": _value(message, m.ORDER_QTY),
        "price": _value(message, m.PRICE),
        "stop_price": _value(message, m.STOP_PX),
        "time_in_force": tif,
        "expire_at": expire_at,
        "post_only": m.EXEC_INST_POST_ONLY in exec_inst,
        "display_quantity": _value(message, m.MAX_FLOOR),
        "client_order_id": _value(message, m.CL_ORD_ID),
    }
    try:
        return NewOrderRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "order"
        code = (
            "invalid_decimal" if where in ("quantity", "price", "stop_price", "display_quantity") else "invalid_field"
        )
        if where == "quantity":
            code = "invalid_quantity"
        raise EntryRejected(code, f"{where}: {first.get('msg', 'invalid')}"[:200]) from None


# -- the application -------------------------------------------------------------------------


class FixApplication:
    """The ``Application`` of the session layer (``on_logon``, ``on_logout``, ``on_message``)."""

    def __init__(
        self,
        orders: OrderService,
        store: FixOrderStore,
        locks: OrderLocks,
        to_message: Callable[[Outgoing], Any],
        audit: AuditSink | None = None,
        clock: Callable[[], datetime] = utc_now,
        run: Callable[..., Awaitable[Any]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.orders = orders
        self.sleep = sleep
        self.store = store
        self.locks = locks
        self.to_message = to_message
        self.audit = audit
        self.clock = clock
        self.run = run or asyncio.to_thread  # the service's blocking I/O, off the event loop
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def on_logon(self, session: Session) -> None:
        log.info("fix session %s logged on", session.session_id)

    async def on_logout(self, session: Session) -> None:
        log.info("fix session %s logged out", session.session_id)

    async def on_message(self, session: Session, message: FixMessage) -> None:
        """NewOrderSingles are entered concurrently (up to ``IN_FLIGHT`` per session: they are
        independent orders, and their I/O dominates); any other message first waits for every
        order the session sent before it, so a cancel, replace or status never overtakes the
        order it names. A client that lost its connection before an order was acknowledged
        sends it again with PossResend=Y: entered if it never was, ignored if it was."""
        if message.msg_type == "D":
            slots = self._slots.setdefault(session.session_id, asyncio.Semaphore(IN_FLIGHT))
            await slots.acquire()
            task = asyncio.create_task(self._handle(session, message))
            tasks = self._in_flight.setdefault(session.session_id, set())
            tasks.add(task)

            def done(finished: asyncio.Task[None]) -> None:
                tasks.discard(finished)
                slots.release()

            task.add_done_callback(done)
            return
        await self.drain(session.session_id)
        await self._handle(session, message)

    async def drain_all(self) -> None:
        """Wait until every NewOrderSingle received so far, of every session, has been handled
        (shutdown: an entry is never cut between its claim and its place)."""
        tasks = [task for tasks in self._in_flight.values() for task in tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, session_id: str) -> None:
        """Wait until every NewOrderSingle of the session received so far has been handled."""
        tasks = list(self._in_flight.get(session_id, ()))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, session: Session, message: FixMessage) -> None:
        kind = message.msg_type
        handler = {
            "D": self._new_order,
            "F": self._cancel,
            "G": self._replace,
            "H": self._status,
            "q": self._mass_cancel,
        }.get(kind)
        if handler is None:
            await self._send(
                session, business_reject(message, m.BUSINESS_REJECT_UNSUPPORTED, f"MsgType {kind} is not supported")
            )
            return
        try:
            await handler(session, message)
        except Exception:  # one bad message never ends the session: answer it, log it
            log.exception("fix %s message not processed (session %s)", kind, session.session_id)
            await self._send(
                session, business_reject(message, m.BUSINESS_REJECT_OTHER, "the message could not be processed; retry")
            )

    async def _send(self, session: Session, out: Outgoing) -> None:
        await session.send(self.to_message(out))

    def _account(self, session: Session, message: FixMessage) -> str | None:
        """The account the message acts for: Account (1) if it is one of the session's, else the
        session's only account when none is given; None when the session may not act for it."""
        accounts = tuple(getattr(session.config, "accounts", ()) or ())
        given = _value(message, m.ACCOUNT)
        if given is not None:
            return given if given in accounts else None
        return accounts[0] if len(accounts) == 1 else None

    # -- D ------------------------------------------------------------------------------------

    async def _new_order(self, session: Session, message: FixMessage) -> None:
        now = self.clock()
        cl_ord_id = _value(message, m.CL_ORD_ID) or ""
        account = self._account(session, message)
        if account is None:
            await self._send(
                session, entry_reject(message, "", "unknown_account", "the session may not act for this account", now)
            )
            return
        try:
            request = new_order_request(message)
        except EntryRejected as refused:
            await self._send(session, entry_reject(message, account, refused.code, refused.text, now))
            return
        order_id = derive_order_id(account, cl_ord_id)
        async with self.locks(order_id):  # one entry of a ClOrdID at a time: claim, record, place
            if not await self.run(self.store.claim, account, cl_ord_id, order_id) and not await self._unplaced(
                account, cl_ord_id, order_id
            ):
                if _value(message, m.POSS_RESEND) == "Y":
                    log.info("PossResend of order %s ignored (received already)", cl_ord_id)
                    return
                await self._send(
                    session,
                    entry_reject(message, account, "duplicate_order", f"ClOrdID {cl_ord_id} was used already", now),
                )
                return
            entered = await self._enter(session, message, account, cl_ord_id, order_id, request, now)
        if entered is not None:
            await self._audit(session, message, entered, account, cl_ord_id, now)

    async def _unplaced(self, account: str, cl_ord_id: str, order_id: str) -> bool:
        """A claim of this order's ClOrdID whose order was never placed (an entry cut short
        between claim and place): the order may be entered now. ``orders.place`` is idempotent
        on (account, client_order_id), so entering it again cannot make a second order."""
        if await self.run(self.store.lookup, account, cl_ord_id) != order_id:
            return False  # the ClOrdID names another order (a cancel/replace ClOrdID)
        record = await self.run(self.store.get, order_id)
        if record is not None and record.status == m.REJECTED:
            return False  # refused once: a repeat is a duplicate
        try:
            await self.run(self.orders.get, account, order_id)
        except NotFound:
            return True
        return False

    async def _enter(
        self,
        session: Session,
        message: FixMessage,
        account: str,
        cl_ord_id: str,
        order_id: str,
        request: NewOrderRequest,
        now: datetime,
    ) -> str | None:
        """Record and place a claimed order (under its lock); the order id when it was entered."""
        record = FixOrder(
            order_id=order_id,
            session_id=session.session_id,
            account_id=account,
            cl_ord_id=cl_ord_id,
            symbol=request.symbol,
            side=request.side,
            ord_type=request.type,
            quantity=request.quantity,
            price=request.price,
            stop_price=request.stop_price,
            time_in_force=request.time_in_force or "gtc",
            leaves_qty=request.quantity,
            created_at=m.utc_timestamp(now),
        )
        await self.run(self.store.save, record)  # before the command: its events find the record
        try:
            order, created = await self.run(self.orders.place, account, request)
        except EntryUnconfirmed:
            # stored, maybe reserved and sent: the engine decides (its events report New, or the
            # entry sweep's fence Rejected), so the client hears PendingNew, and the claim stays
            await self._send(session, pending_new(record, now))
            return order_id
        except NexusError as refused:
            if refused.code in OTHER_CHANNEL:  # the id names an order entered on another channel
                await self.run(self.store.forget, order_id)
                text = f"ClOrdID {cl_ord_id}: {refused.message}"
                await self._send(session, entry_reject(message, account, refused.code, text, now))
                return None
            if isinstance(refused, Unavailable):  # nothing stored or sent: the ClOrdID may be retried
                await self.run(self.store.unclaim, account, cl_ord_id)
            await self.run(self.store.save, replace(record, status=m.REJECTED, leaves_qty=ZERO))
            await self._send(
                session,
                execution_report(
                    replace(record, status=m.REJECTED, leaves_qty=ZERO),
                    f"{order_id}-8",
                    m.REJECTED,
                    now,
                    ord_rej_reason=m.ord_rej_reason(refused.code),
                    text=f"{refused.code}: {refused.message}",
                ),
            )
            return None
        except BaseException:  # a fault or a cancellation: the outcome is unknown, the ClOrdID free again
            await asyncio.shield(self._release(account, cl_ord_id, order_id))
            raise
        if created and order.time_in_force != record.time_in_force:  # the service's default applied
            record = replace(record, time_in_force=order.time_in_force)
            await self.run(self.store.save, record)
        if not created:  # the id names an order entered on another channel with this client_order_id
            await self.run(self.store.forget, order_id)
            await self._send(
                session,
                entry_reject(message, account, "duplicate_order", f"ClOrdID {cl_ord_id} names an existing order", now),
            )
            return None
        await self._send(session, pending_new(record, now))
        return order.order_id

    async def _release(self, account: str, cl_ord_id: str, order_id: str) -> None:
        """Forget the record and the claim of an entry whose place did not finish (a resend of
        the ClOrdID enters it; were it placed after all, ``place`` returns it, not a second)."""
        try:
            await self.run(self.store.forget, order_id)
            await self.run(self.store.unclaim, account, cl_ord_id)
        except Exception:  # the claim stays: a resend still finds the order unplaced (``_unplaced``)
            log.exception("fix order %s: claim of %s not released", order_id, cl_ord_id)

    async def _audit(
        self, session: Session, message: FixMessage, order_id: str, account: str, cl_ord_id: str, now: datetime
    ) -> None:
        if self.audit is None:
            return
        event = AuditEvent(
            event_id=uuid.uuid5(AUDIT_NAMESPACE, f"fix_order_entered/{order_id}").hex,
            kind="fix_order_entered",
            aggregate_type="order",
            aggregate_id=order_id,
            ts=now,
            actor=f"account:{account}",
            source="fix",
            correlation_id=cl_ord_id,
            links=(f"account:{account}", f"fix_session:{session.session_id}"),
            details={
                "session_id": session.session_id,
                "cl_ord_id": cl_ord_id,
                "msg_seq_num": message.get(m.MSG_SEQ_NUM) or "",
            },
        )
        try:
            await self.run(self.audit.publish, event)
        except Exception:  # the order stands; the trail still has its command and engine events
            log.exception("fix order entry not audited (order %s)", order_id)

    # -- F and G ------------------------------------------------------------------------------

    async def _resolve(self, session: Session, message: FixMessage) -> tuple[str | None, FixOrder | None]:
        """The account and the gateway's record of the order OrigClOrdID (or OrderID) names, if
        the session owns it."""
        account = self._account(session, message)
        if account is None:
            return None, None
        orig = _value(message, m.ORIG_CL_ORD_ID) or _value(message, m.CL_ORD_ID) or ""
        order_id = await self.run(self.store.lookup, account, orig[:MAX_FIELD])
        if order_id is None and (given := _value(message, m.ORDER_ID)) is not None:
            order_id = given[:MAX_FIELD]
        record = await self.run(self.store.get, order_id) if order_id else None
        if record is None or record.account_id != account or record.session_id != session.session_id:
            return account, None
        return account, record

    async def _cancel(self, session: Session, message: FixMessage) -> None:
        await self._change(session, message, "cancel")

    async def _replace(self, session: Session, message: FixMessage) -> None:
        await self._change(session, message, "replace")

    async def _change(self, session: Session, message: FixMessage, kind: str) -> None:
        response = m.CXL_REJ_RESPONSE_CANCEL if kind == "cancel" else m.CXL_REJ_RESPONSE_REPLACE
        cl_ord_id = _value(message, m.CL_ORD_ID) or ""
        orig = _value(message, m.ORIG_CL_ORD_ID) or ""

        async def refuse(order: FixOrder | None, code: str, text: str) -> None:
            status = ord_status(order) if order is not None else m.REJECTED
            await self._send(
                session,
                cancel_reject(order.order_id if order else "NONE", cl_ord_id, orig, status, response, code, text),
            )

        if not 1 <= len(cl_ord_id) <= MAX_FIELD or len(orig) > MAX_FIELD:  # before any lookup or claim
            await refuse(None, "invalid_field", f"ClOrdID and OrigClOrdID have 1 to {MAX_FIELD} characters")
            return
        account, record = await self._resolve(session, message)
        if account is None:
            await refuse(None, "unknown_account", "the session may not act for this account")
            return
        if record is None:
            await refuse(None, "unknown_order", f"no order with ClOrdID {orig} on this session")
            return
        request: ReplaceOrderRequest | None = None
        if kind == "replace":
            try:
                request = replace_request(message, record)
            except EntryRejected as refused:
                await refuse(record, refused.code, refused.text)
                return
        if not await self.run(self.store.claim, account, cl_ord_id, record.order_id):
            await refuse(record, "duplicate_order", f"ClOrdID {cl_ord_id} was used already")
            return
        async with self.locks(record.order_id):
            current = await self.run(self.store.get, record.order_id) or record
            if current.status in DONE:
                # The gateway has reported the order done, and its record is what the client was
                # told: too late, answered here. The orders service's read model may not have
                # folded that event yet; asked, it would pass the request to the engine, whose
                # "unknown order" would then reach the client as the wrong reason.
                await refuse(current, "order_not_open", f"the order is done (OrdStatus {current.status})")
                return
            if current.pending is not None:
                await refuse(
                    current,
                    "cancel_pending" if current.pending.kind == "cancel" else "replace_pending",
                    f"a {current.pending.kind} of this order is pending",
                )
                return
            try:
                if request is None:
                    await self.run(self.orders.cancel, account, current.order_id)
                else:
                    await self._replace_when_caught_up(account, current.order_id, request)
            except ReplaceUnconfirmed:
                # the replace may have reached the engine, and its fence makes the engine decide:
                # pending, then Replaced or OrderCancelReject (entry_incomplete) as it answers
                log.warning("replace not confirmed sent; pending until the engine answers",
                            extra={"order_id": current.order_id, "cl_ord_id": cl_ord_id})  # fmt: skip
            except NexusError as refused:
                await refuse(current, refused.code, refused.message)
                return
            after = replace(current, pending=Pending(kind, cl_ord_id, orig or current.cl_ord_id))
            await self.run(self.store.save, after)
            await self._send(session, pending_change(after, self.clock()))

    async def _replace_when_caught_up(self, account: str, order_id: str, request: ReplaceOrderRequest) -> None:
        """Replace through the orders service. The gateway's record has no replace pending (the
        caller checked): the client was told the last one is done. The orders service's read
        model may not have folded that yet, and then answers ``replace_pending``; the request
        is tried again while it catches up, for at most ``CATCH_UP_SECONDS`` (the order's lock
        is held, so nothing else of this order moves meanwhile), then refused as it answers."""
        waited = 0.0
        delay = 0.02
        while True:
            try:
                await self.run(self.orders.replace, account, order_id, request)
                return
            except NexusError as refused:
                if refused.code != "replace_pending" or waited >= CATCH_UP_SECONDS:
                    raise
            await self.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)

    # -- H ------------------------------------------------------------------------------------

    async def _status(self, session: Session, message: FixMessage) -> None:
        now = self.clock()
        account, record = await self._resolve(session, message)
        req_id = _value(message, m.ORD_STATUS_REQ_ID)
        extra = ((m.ORD_STATUS_REQ_ID, req_id),) if req_id else ()
        exec_id = f"status-{uuid.uuid4().hex}"
        if record is None:
            unknown = FixOrder(
                order_id="NONE",
                session_id=session.session_id,
                account_id=account or "",
                cl_ord_id=_value(message, m.CL_ORD_ID) or "",
                symbol=_value(message, m.SYMBOL) or "",
                side=m.SIDES.get(_value(message, m.SIDE) or "", "buy"),
                ord_type="limit",
                quantity=ZERO,
                status=m.REJECTED,
            )
            await self._send(
                session,
                execution_report(
                    unknown,
                    exec_id,
                    m.ORDER_STATUS,
                    now,
                    ord_rej_reason=m.ord_rej_reason("order_not_found"),
                    text="unknown order",
                    extra=extra,
                ),
            )
            return
        await self._send(session, execution_report(record, exec_id, m.ORDER_STATUS, now, extra=extra))

    # -- q ------------------------------------------------------------------------------------

    async def _mass_cancel(self, session: Session, message: FixMessage) -> None:
        cl_ord_id = _value(message, m.CL_ORD_ID) or ""
        kind = _value(message, m.MASS_CANCEL_REQUEST_TYPE) or ""
        symbol = _value(message, m.SYMBOL)
        fields: list[tuple[int, str]] = [(m.CL_ORD_ID, cl_ord_id)]
        if kind not in (m.MASS_CANCEL_BY_SYMBOL, m.MASS_CANCEL_ALL) or (kind == m.MASS_CANCEL_BY_SYMBOL and not symbol):
            reason = "0" if kind not in (m.MASS_CANCEL_BY_SYMBOL, m.MASS_CANCEL_ALL) else "1"
            await self._send(
                session,
                Outgoing(
                    "r",
                    (
                        (m.CL_ORD_ID, cl_ord_id),
                        (m.ORDER_ID, "NONE"),
                        (m.MASS_CANCEL_REQUEST_TYPE, kind or "0"),
                        (m.MASS_CANCEL_RESPONSE, "0"),
                        (m.MASS_CANCEL_REJECT_REASON, reason),
                        (m.TEXT, "MassCancelRequestType 1 (with Symbol) or 7 is supported"),
                    ),
                ),
            )
            return
        accounts = tuple(getattr(session.config, "accounts", ()) or ())
        command_ids: list[str] = []
        try:
            for account in accounts:
                request = MassCancelRequest(symbol=symbol if kind == m.MASS_CANCEL_BY_SYMBOL else None)
                result = await self.run(self.orders.mass_cancel, account, request)
                command_ids += result["command_ids"]
        except NexusError as refused:
            reason = "1" if refused.code == "unknown_symbol" else "99"
            await self._send(
                session,
                Outgoing(
                    "r",
                    (
                        (m.CL_ORD_ID, cl_ord_id),
                        (m.ORDER_ID, "NONE"),
                        (m.MASS_CANCEL_REQUEST_TYPE, kind),
                        (m.MASS_CANCEL_RESPONSE, "0"),
                        (m.MASS_CANCEL_REJECT_REASON, reason),
                        (m.TEXT, f"{refused.code}: {refused.message}"[:200]),
                    ),
                ),
            )
            return
        fields += [
            (m.ORDER_ID, command_ids[0] if command_ids else f"mass-{uuid.uuid4().hex}"),
            (m.MASS_CANCEL_REQUEST_TYPE, kind),
            (m.MASS_CANCEL_RESPONSE, kind),
        ]
        if symbol and kind == m.MASS_CANCEL_BY_SYMBOL:
            fields.append((m.SYMBOL, symbol))
        await self._send(session, Outgoing("r", tuple(fields)))


def replace_request(message: FixMessage, record: FixOrder) -> ReplaceOrderRequest:
    """The orders API's replace for a G: the new total OrderQty always, Price and StopPx when they
    change. Side, OrdType and Symbol cannot change (CxlRejReason 99)."""
    side = m.SIDES.get(_value(message, m.SIDE) or "")
    ord_type = m.ORD_TYPES.get(_value(message, m.ORD_TYPE) or "")
    symbol = _value(message, m.SYMBOL)
    if side != record.side or ord_type != record.ord_type or (symbol is not None and symbol != record.symbol):
        raise EntryRejected("not_replaceable", "only Price, StopPx and OrderQty can be replaced")
    changes: dict[str, Any] = {"quantity": _value(message, m.ORDER_QTY)}
    for tag, name, now in ((m.PRICE, "price", record.price), (m.STOP_PX, "stop_price", record.stop_price)):
        given = _value(message, tag)
        if given is not None and (now is None or _decimal_or_none(given) != now):
            changes[name] = given
    try:
        return ReplaceOrderRequest.model_validate({k: v for k, v in changes.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "order"
        raise EntryRejected("invalid_field", f"{where}: {first.get('msg', 'invalid')}"[:200]) from None


def _decimal_or_none(text: str) -> Decimal | None:
    try:
        return Decimal(text) if len(text) <= 40 else None
    except ArithmeticError:
        return None


def entry_reject(message: FixMessage, account: str, code: str, text: str, now: datetime) -> Outgoing:
    """ER Rejected for an order never entered (OrderID NONE): the terms echoed from the message."""
    side = m.SIDES.get(_value(message, m.SIDE) or "", "buy")
    ord_type = m.ORD_TYPES.get(_value(message, m.ORD_TYPE) or "", "limit")
    tif = m.TIMES_IN_FORCE.get(_value(message, m.TIME_IN_FORCE) or "0", "day")
    quantity = _decimal_or_none(_value(message, m.ORDER_QTY) or "0") or ZERO
    record = FixOrder(
        order_id="NONE",
        session_id="",
        account_id=account,
        cl_ord_id=_value(message, m.CL_ORD_ID) or "",
        symbol=(_value(message, m.SYMBOL) or "")[:MAX_FIELD],
        side=side,
        ord_type=ord_type,
        time_in_force=tif,
        quantity=quantity if quantity.is_finite() else ZERO,
        status=m.REJECTED,
    )
    return execution_report(
        record,
        f"rej-{uuid.uuid4().hex}",
        m.REJECTED,
        now,
        ord_rej_reason=m.ord_rej_reason(code),
        text=f"{code}: {text}",
    )


def business_reject(message: FixMessage, reason: str, text: str) -> Outgoing:
    return Outgoing(
        "j",
        (
            (m.REF_SEQ_NUM, message.get(m.MSG_SEQ_NUM) or "0"),
            (m.REF_MSG_TYPE, message.msg_type),
            (m.BUSINESS_REJECT_REASON, reason),
            (m.TEXT, text[:200]),
        ),
    )
