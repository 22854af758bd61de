"""Order use cases over the ports of ``ports.py`` (no boto3 here; the adapters live in ``repo.py``):
order entry with pre-trade risk (``OrderService``, ``PreTradeRisk``), and the consumer side that
applies execution events to orders (``apply_events``). The rules are the domain modules':
``entry``, ``risk``, ``commands``, ``folding``."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final, Literal

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import Conflict, NexusError, NotFound, Unavailable, ValidationFailed
from nexus_common.events import ExecutionEventT, FenceCommand, RouteCancelRequest, iso, utc_now
from nexus_common.instrument_store import InstrumentLookup
from nexus_common.instruments import Instrument
from nexus_common.kept import KeptFor
from nexus_common.logging import get_logger
from nexus_common.risk import (
    OCO_PREFIX,
    ReplaceTerms,
    RiskLimits,
    RiskRefused,
    oco_leg_ids,
    replace_command_id,
    reservation_id,
)

from nexus_orders.commands import (
    AnyOrderCommand,
    cancel_order_command,
    mass_cancel_command,
    new_order_command,
    oco_command,
    replace_fence,
    replace_order_command,
    route_request,
)
from nexus_orders.entry import new_order, oco_legs, on_grid, tradable
from nexus_orders.folding import OrderChange, merge, merged, notification_message, order_changes
from nexus_orders.models import ListOrdersQuery, MassCancelRequest, NewOrderRequest, OcoRequest, ReplaceOrderRequest
from nexus_orders.order import OPEN_STATUSES, Order, same_terms
from nexus_orders.ports import (
    CommandPublisher,
    FencePublisher,
    MarketReference,
    Notifier,
    OrderDeleter,
    OrderRepository,
    PendingEntries,
    PendingEntry,
    ReplaceRelease,
    RiskBook,
    RoutePublisher,
)
from nexus_orders.risk import Reservation, needs_best_ask, oco_reservation, order_reservation, replace_reservation

# Namespace of the ids of risk refusal audit events, derived from (account, client order id).
AUDIT_NAMESPACE: Final = uuid.UUID("0d6c9a52-8f5e-4b7a-b1d4-2e7f93a1c6b8")
logger = get_logger()


# An entry starts its reservation write and its command's send within this of its start; see
# ``OrderService._in_time`` and ``EntrySweep``.
ENTRY_TIME_LIMIT: Final = 60  # seconds


class ReservationUnknown(Unavailable):
    """The reservation write failed without a refusal (timeout, connection error...): it may have
    applied. It was released by id (a no-op when it had not applied); 503, nothing sent.
    ``released`` is False when that release failed too (the reservation may still be held)."""

    default_code = "risk_unavailable"
    released = True


class EntryUnconfirmed(Unavailable):
    """503 (with the cause's code) for an entry that stopped after its order was stored and may
    have reserved: the order is kept, and the engine decides. A retry with the same
    ``client_order_id`` sends it (once its reservation is in place); else the entry sweep's fence
    ends it ``rejected`` (``entry_incomplete``) unless the engine received its command. An entry
    channel reports such an order as pending, not as refused."""


class ReplaceUnconfirmed(Unavailable):
    """503 ``replace_unconfirmed`` for a replace whose command could not be confirmed sent: the
    order stays ``replace_pending`` with the replace's reservation, and the engine decides (the
    replace's fence follows it: ``OrderService._fence_replace``). An entry channel reports such a
    replace as pending, not as refused."""

    def __init__(self) -> None:
        super().__init__(
            "replace_unconfirmed",
            "the replace could not be confirmed sent to the matching engine; the order stays replace_pending "
            "until the engine applies it or refuses it (replace_reject_reason entry_incomplete): read the order, "
            "do not send the replace again",
        )


class KeptLastTrade:
    """A ``MarketReference`` that keeps each symbol's last trade for ``ttl_seconds``.

    Every order's price collar reads the last trade; a warm function reads it at most once per
    symbol per ``ttl_seconds`` instead. The table it reads already follows the engine by the market
    data consumer's lag, so the collar's reference is that lag plus at most ``ttl_seconds`` old
    (exchange reference prices move on a timer too). A market buy's reservation and the engine's
    protection price are derived from the same reference, so a kept price never lets an order
    spend more than it reserved. "No trade yet" is not kept: the first trade collars the next
    order. The best ask (market buys only) is read every time."""

    def __init__(
        self, source: MarketReference, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self._kept: KeptFor[Decimal] = KeptFor(ttl_seconds, clock)

    def last_trade(self, symbol: str) -> Decimal | None:
        return self._kept.get(symbol, lambda: self.source.last_trade(symbol))

    def best_ask(self, symbol: str) -> Decimal | None:
        return self.source.best_ask(symbol)


class PreTradeRisk:
    """The pre-trade rules (``risk``: ``nexus_common.risk.check_order``) on the reference prices
    read, then one reservation write."""

    def __init__(self, book: RiskBook, market: MarketReference, limits: RiskLimits) -> None:
        self.book = book
        self.market = market
        self.limits = limits

    def assess(self, order: Order) -> Reservation:
        """The rules (``RiskRefused`` when one refuses) and the reservation the order needs, under
        its id; nothing is written (``reserve_written`` writes it)."""
        last = self._reference(self.market.last_trade, order.symbol)
        ask = self._reference(self.market.best_ask, order.symbol) if needs_best_ask(order) else None
        return order_reservation(order, self.limits, last, ask)

    def assess_oco(self, legs: list[Order]) -> tuple[Reservation, Decimal | None]:
        """One reservation for the group (``risk.oco_reservation``: the larger leg's exposure),
        not written, and the stop-loss leg's reserve price (a stop buy's protection price)."""
        last = self._reference(self.market.last_trade, legs[0].symbol)
        return oco_reservation(legs, self.limits, last)

    def holds(self, account_id: str, rid: str) -> bool:
        """Does the account item hold the reservation id ``rid`` (a consistent read)?"""
        return self.book.holds(account_id, rid)

    def reserve_replace(
        self, order: Order, quantity: Decimal, price: Decimal | None, stop_price: Decimal | None, number: int
    ) -> tuple[ReplaceTerms, Reservation | None, Decimal | None, bool]:
        """The rules on the new terms, then one conditional write for what the replace needs on
        top of what the order holds (nothing for a decrease: released on ``replaced``). Returns
        the terms, the reservation (None if none; its id ``<order>~r<number>.<digest>``), a stop
        buy's new protection price, and whether this call wrote the reservation (False: found in
        place, written by an earlier attempt or by another request of the same replace). A write
        whose outcome is unknown is not released by id here: the id may be another request's."""
        last = self._reference(self.market.last_trade, order.symbol)
        terms, reservation, cap = replace_reservation(order, quantity, price, stop_price, number, self.limits, last)
        written = reservation is not None and self.reserve_written(reservation, release_unknown=False)
        return terms, reservation, cap, written

    @staticmethod
    def _reference(read: Callable[[str], Decimal | None], symbol: str) -> Decimal | None:
        """A reference price; a failed read (before anything is reserved) answers 503."""
        try:
            return read(symbol)
        except Exception as exc:  # whatever the read raised: a 503 the client retries, nothing reserved or sent
            logger.warning("reference price not read", extra={"symbol": symbol, "error": repr(exc)})
            raise Unavailable("reference_unavailable", "the reference price could not be read; nothing was "
                              "reserved or sent: retry the request") from exc

    def reserve_written(self, reservation: Reservation, release_unknown: bool = True) -> bool:
        """One reservation write: True when this call wrote it, False when it was in place (an
        earlier attempt's, or another request's of the same id). A refusal is raised as is; any
        other failure leaves the outcome unknown (the write may have applied, even twice with the
        SDK's retry: the id makes that once) and raises ``ReservationUnknown`` (503, nothing
        sent). With ``release_unknown`` the reservation is released by id first (a no-op when it
        did not apply); without, it is left to whoever settles the order that names it (an
        entry's: a retry or the entry sweep; a replace's: the replace that begins on it, or
        reconciliation's report)."""
        try:
            return self.book.reserve(reservation, self.limits)
        except RiskRefused:
            raise
        except Exception as exc:  # it may have landed: released by id, or left to the order's settling
            logger.warning("reservation outcome unknown",
                           extra={"reservation_id": reservation.reservation_id, "error": repr(exc),
                                  "released_by_id": release_unknown})  # fmt: skip
            unknown = ReservationUnknown(
                message="the order's reservation could not be confirmed; nothing was sent: retry the request"
            )
            unknown.released = release_unknown and self.release(reservation)
            raise unknown from exc

    def release(self, reservation: Reservation) -> bool:
        """Give a reservation back by id; False when the release failed. A failure is logged, not
        raised (the caller answers an error already): the reservation then stays held, under an
        order item that names it (the entry sweep closes a new order's; reconciliation reports
        a replace's)."""
        try:
            self.book.release(reservation)
        except Exception:  # compensation path: logged, the reservation stays held
            logger.exception("reservation not released", extra={"reservation_id": reservation.reservation_id,
                                                                "account_id": reservation.account_id})  # fmt: skip
            return False
        return True


# -- the API side ----------------------------------------------------------------------------


class OrderService:
    def __init__(
        self,
        orders: OrderRepository,
        instruments: InstrumentLookup,
        commands: CommandPublisher,
        clock: Callable[[], datetime] = utc_now,
        risk: PreTradeRisk | None = None,
        audit: AuditSink | None = None,
        routes: RoutePublisher | None = None,
    ) -> None:
        self.orders = orders
        self.instruments = instruments
        self.commands = commands
        self.clock = clock
        self.risk = risk
        self.audit = audit
        self.routes = routes  # None: this entry channel takes no routed orders

    # -- new orders ---------------------------------------------------------------------------

    def place(self, account_id: str, request: NewOrderRequest) -> tuple[Order, bool]:
        """Validate, store in ``pending_new``, send the ``new`` command.

        Returns ``(order, created)``; ``created`` is False for a repeated ``client_order_id``
        with the same terms, which returns the first order (and resends its command while it is
        ``pending_new``); with other terms it is refused (409 ``client_order_id_reused``).
        """
        now = self.clock()
        if request.routing is not None and self.routes is None:
            raise ValidationFailed("routing_unavailable", "this entry channel does not route orders", "routing")
        order = new_order(account_id, request, self.instruments.get(request.symbol), now)
        if self.risk is not None:
            return self._place_with_risk(order, now)
        if not self.orders.put_new(order):
            return self._repeated(order, now), False
        try:
            self._send_entered(order, now)
        except Unavailable as exc:  # kept: a retry sends it again, else the entry sweep's fence ends it
            if order.routing is not None:
                raise
            raise EntryUnconfirmed(exc.code, exc.message) from exc
        return order, True

    def _send_entered(self, order: Order, now: datetime) -> None:
        """A new order's way out: the engine's ``new`` command, or for a routed order the routing
        service's request (routing then sends the engine the fills it got)."""
        if order.routing is None:
            self._send(new_order_command(order, now))
            return
        self._to_router([route_request(order, now).model_dump(mode="json")],
                        "the request with the same client_order_id")

    def _send_route_cancels(self, orders: list[Order], now: datetime) -> None:
        """Routing's cancel of each routed order resting on an external venue (at least once:
        routing cancels a child once, and ends an order once)."""
        self._to_router([RouteCancelRequest(order_id=o.order_id, account_id=o.account_id, ts=now)
                         .model_dump(mode="json") for o in orders], "the cancel")

    def _to_router(self, messages: list[dict[str, Any]], retry: str) -> None:
        """Messages on the routing-requests queue; a 503 the client retries (``retry``: what)."""
        if self.routes is None:
            raise Unavailable("route_not_sent", "this entry channel cannot reach the router; retry")
        try:
            self.routes.send(messages)
        except Exception as exc:  # whatever the queue raised: a 503 the client retries
            raise Unavailable("route_not_sent", f"the order service could not reach the router; retry {retry}") from exc

    def _repeated(self, order: Order, now: datetime) -> Order:
        """The first order of a repeated client_order_id: the same terms return it (nothing new
        reserved; its command resent while ``pending_new``), other terms are refused (409)."""
        existing = self.orders.get(order.order_id)
        if existing is None or existing.account_id != order.account_id:
            raise Conflict("duplicate_order", "order id already in use", "client_order_id")
        if not same_terms(existing, order):
            raise _reused(order.client_order_id, f"order {existing.order_id}")
        if existing.status == "pending_new" and self._may_resend([existing]):
            self._send_entered(existing, now)
        return existing

    def _may_resend(self, orders: list[Order]) -> bool:
        """May a stored ``pending_new`` order (or group) be sent (again)? Only once its reservation
        is written: an order stored by an entry that stopped before its reservation is left to the
        entry sweep, whose fence ends it (a resend would enter an order nothing was reserved for).
        Orders entered without risk are sent as they are."""
        first = orders[0]
        if self.risk is None or not first.reserved:
            return True
        return self.risk.holds(first.account_id, reservation_id(first.order_id))

    def _place_with_risk(self, order: Order, now: datetime) -> tuple[Order, bool]:
        """The rules first (422 refuses, nothing written). A repeated ``client_order_id`` returns
        the first order whatever the rules say now (nothing reserved again): it is looked up
        when the rules refuse, or found by the order's conditional write (step 1), so a new
        order costs no read for it. Then, in this order, so that an invocation stopped at any
        point leaves nothing the entry sweep (``EntrySweep``) cannot close:

        1. the order is stored ``pending_new`` with the terms of its reservation;
        2. one reservation write under the order id: a refusal (422) deletes the order again; an
           unknown outcome (503) keeps it, with whatever the write did, for the engine to settle
           (``EntryUnconfirmed``: a retry sends it once the reservation is found held, else the
           sweep's fence ends it and the risk consumer gives back what is held);
        3. the ``new`` command; when it cannot be sent, the order and its reservation are kept
           (``EntryUnconfirmed``): the record may have reached the stream, and the engine decides.

        A stored order therefore exists before its reservation and outlives it: no reservation is
        held without an order item that names its terms. Each step starts within
        ``ENTRY_TIME_LIMIT`` of the entry's start (``_in_time``)."""
        assert self.risk is not None
        key = order.client_order_id or order.order_id
        try:
            reservation = self.risk.assess(order)
        except NexusError:  # a refusal (422) or an unreadable reference price (503)
            if order.client_order_id is not None and self.orders.get(order.order_id) is not None:
                return self._repeated(order, now), False  # not refused, not audited: a repeat
            with self._audited(order.account_id, key, order):
                raise
        order = order.model_copy(update={"reserved": True, "reserve_rate": reservation.rate,
                                         "protection_price": self._cap(order, reservation)})  # fmt: skip
        self._in_time(now)
        try:
            stored = self.orders.put_new(order)
        except Exception as exc:  # maybe stored, nothing reserved yet: forget it
            self._abandon([order], None)
            raise _not_stored(exc, order.order_id) from exc
        if not stored:
            # the same client_order_id raced us: the order stored first holds the one reservation
            # of that id (a second write of the same id holds nothing more)
            return self._repeated(order, now), False
        try:
            self._in_time(now)
            with self._audited(order.account_id, key, order):
                # an unknown outcome is not released here: a retry of the same client_order_id may
                # find it held and send the order meanwhile. The engine settles it (the sweep's
                # fence), as for a failed send. A routed order, which no fence reaches, releases it.
                self.risk.reserve_written(reservation, release_unknown=order.routing is not None)
        except Exception as exc:  # refused, late, or an unknown outcome: never sent
            if not isinstance(exc, ReservationUnknown) or exc.released:
                self._abandon([order], None)
                raise
            # the reservation may be held: the order, which names it, is left for the entry sweep
            raise EntryUnconfirmed(exc.code, exc.message) from exc
        try:
            self._in_time(now)
            self._send_entered(order, now)
        except Unavailable as exc:
            if order.routing is not None:
                # never handed to the router: forget the order and give the reservation back, so
                # that a retry with the same client_order_id starts afresh (and reserves again)
                self._abandon([order], reservation)
                raise
            # an engine order stays stored and reserved: the command may have reached the stream
            # all the same. A retry with the same client_order_id sends it again; else the entry
            # sweep's fence ends it rejected (``entry_incomplete``) if the engine never got it.
            raise EntryUnconfirmed(exc.code, exc.message) from exc
        return order, True

    def _abandon(self, orders: list[Order], reservation: Reservation | None) -> None:
        """An order (or group) whose command was never sent: delete it while it is still
        ``pending_new``, then give its reservation back by id, unless the table still holds it
        (then it keeps its reservation: a retry with the same client_order_id resends it)."""
        gone = True
        if isinstance(self.orders, OrderDeleter):
            try:
                for order in orders:
                    gone = self.orders.delete_pending(order) and gone
            except Exception:  # compensation path: logged, the reservation stays until the order is known gone
                logger.exception("pending order not deleted", extra={"order_id": orders[0].order_id})
                gone = False
        if gone:
            self._give_back(reservation)

    def _cap(self, order: Order, reservation: Reservation) -> Decimal | None:
        """A market or stop buy's protection price floored to the tick: it never fills above
        what was reserved (ROUND_FLOOR keeps the cap at or below the reservation's price)."""
        if order.type not in ("market", "stop") or order.side != "buy" or reservation.price is None:
            return None
        return self._floor_tick(order.symbol, reservation.price)

    def _floor_tick(self, symbol: str, price: Decimal) -> Decimal | None:
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return None
        tick = instrument.tick_size
        return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick

    # -- OCO groups ---------------------------------------------------------------------------

    def place_oco(self, account_id: str, request: OcoRequest) -> tuple[list[Order], bool]:
        """Validate; store both legs ``pending_new`` in one transaction with the terms of the
        group's one reservation (the larger leg's exposure); write that reservation under the
        group id; send one ``oco`` command: the order of ``_place_with_risk``, for the same
        reasons. A repeated ``client_order_id`` returns the first group (with other terms: 409
        ``client_order_id_reused``, nothing reserved or sent)."""
        now = self.clock()
        legs = oco_legs(account_id, request, self.instruments.get(request.symbol), now)
        if request.client_order_id is not None and self.orders.get(legs[0].order_id) is not None:
            return self._repeated_group(legs, now), False
        reservation: Reservation | None = None
        key = f"oco/{request.client_order_id or legs[0].group_id}"
        if self.risk is not None:  # one reservation under the group id
            with self._audited(account_id, key, legs[0]):
                reservation, stop_price = self.risk.assess_oco(legs)
            cap = None
            if legs[1].type == "stop" and legs[1].side == "buy" and stop_price is not None:
                cap = self._floor_tick(legs[1].symbol, stop_price)
            common = {"reserved": True, "reserve_rate": reservation.rate}
            legs = [legs[0].model_copy(update=common), legs[1].model_copy(update={**common, "protection_price": cap})]
        self._in_time(now)
        try:
            stored = self.orders.put_group(legs)
        except Exception as exc:  # maybe stored, nothing reserved yet: the group abandoned
            self._abandon(legs, None)
            raise _not_stored(exc, legs[0].order_id) from exc
        if not stored:  # raced by the same client_order_id: the group stored first holds the reservation
            return self._repeated_group(legs, now), False
        if self.risk is not None and reservation is not None:
            try:
                self._in_time(now)
                with self._audited(account_id, key, legs[0]):
                    self.risk.reserve_written(reservation, release_unknown=False)  # see _place_with_risk
            except Exception as exc:  # refused, late, or an unknown outcome: never sent
                if not isinstance(exc, ReservationUnknown) or exc.released:
                    self._abandon(legs, None)
                    raise
                raise EntryUnconfirmed(exc.code, exc.message) from exc  # left for the entry sweep
        try:
            self._in_time(now)
            self._send(oco_command(legs, now))
        except Unavailable as exc:  # the group stays stored and reserved (see ``_place_with_risk``)
            raise EntryUnconfirmed(exc.code, exc.message) from exc
        return legs, True

    def _in_time(self, started: datetime) -> None:
        """An entry stores its order, writes its reservation and sends its command only within
        ``ENTRY_TIME_LIMIT`` of its start (503 ``entry_timeout`` after it). With the longest an AWS
        call can take (four attempts and their backoff: under two minutes) that keeps every write
        of an entry before the entry sweep reads past it (``ENTRY_DEADLINE``): no order lands
        behind the sweep's progress, and no reservation after the fence's release. A Lambda
        entry, stopped at its 10 s timeout, never gets this far."""
        if self.clock() - started > timedelta(seconds=ENTRY_TIME_LIMIT):
            raise Unavailable("entry_timeout", "the order entry took too long and was stopped; read the order, "
                              "or retry with the same client_order_id")  # fmt: skip

    def _repeated_group(self, legs: list[Order], now: datetime) -> list[Order]:
        found = [self.orders.get(leg.order_id) for leg in legs]
        existing = [leg for leg in found if leg is not None and leg.account_id == legs[0].account_id]
        if len(existing) != 2:
            raise Conflict("duplicate_order", "order id already in use", "client_order_id")
        if not all(same_terms(old, new) for old, new in zip(existing, legs, strict=True)):
            raise _reused(legs[0].client_order_id, f"OCO group {existing[0].group_id}")
        if all(leg.status == "pending_new" for leg in existing) and self._may_resend(existing):
            self._send(oco_command(existing, now))
        return existing

    def get_group(self, account_id: str, group_id: str) -> list[Order]:
        legs = []
        if group_id.startswith(OCO_PREFIX) and _plausible_id(group_id):
            legs = [self.orders.get(leg_id) for leg_id in oco_leg_ids(group_id)]
        found = [leg for leg in legs if leg is not None and leg.account_id == account_id]
        if len(found) != 2:
            raise NotFound("group_not_found", "no such OCO group", "group_id")
        return found

    def cancel_group(self, account_id: str, group_id: str) -> list[Order]:
        """Cancel both legs of a group (one ``cancel`` of the group id); 409 if neither is open."""
        legs = self.get_group(account_id, group_id)
        if not any(leg.is_open for leg in legs):
            raise Conflict("group_not_open", "neither leg of the group is open", "group_id")
        now = self.clock()
        flagged = [self.orders.mark_cancel_requested(leg, now) or leg if leg.is_open else leg for leg in legs]
        self._send(cancel_order_command(legs[0], now, order_id=group_id))
        return flagged

    # -- reads and cancels --------------------------------------------------------------------

    def get(self, account_id: str, order_id: str) -> Order:
        order = self.orders.get(order_id) if _plausible_id(order_id) else None
        if order is None or order.account_id != account_id:
            raise NotFound("order_not_found", "no such order", "order_id")
        return order

    def get_many(self, account_id: str, order_ids: list[str]) -> dict[str, Order]:
        """The account's orders among ``order_ids``, by id (``NotFound`` if one is not the account's)."""
        found = self.orders.get_many([i for i in order_ids if _plausible_id(i)])
        for order_id in order_ids:
            order = found.get(order_id)
            if order is None or order.account_id != account_id:
                raise NotFound("order_not_found", "no such order", "order_id")
        return found

    def list(self, account_id: str, query: ListOrdersQuery) -> tuple[list[Order], str | None]:
        """One page of the account's orders, newest first, and the cursor of the next page."""
        return self.orders.page_by_account(account_id, query.statuses(), query.limit, query.cursor)

    def cancel(self, account_id: str, order_id: str) -> Order:
        """Cancel an order; cancelling an OCO leg cancels its group (both legs)."""
        order = self.get(account_id, order_id)
        if not order.is_open:
            raise _not_open(order)
        if order.routing is not None and (order.time_in_force == "ioc" or order.status == "pending_new"):
            raise Conflict("routed_order", "a routed order can be cancelled once its remainder rests on a "
                           "venue (gtc, day); an immediate-or-cancel one ends by itself", "order_id")
        now = self.clock()
        flagged = self.orders.mark_cancel_requested(order, now)
        if flagged is None:
            current = self.get(account_id, order_id)
            raise _not_open(current)
        if flagged.rests_on is not None:  # resting on an external venue: routing cancels it there
            self._send_route_cancels([flagged], now)
            return flagged
        if order.group_id is not None:
            sibling_id = next(leg for leg in oco_leg_ids(order.group_id) if leg != order.order_id)
            sibling = self.orders.get(sibling_id)
            if sibling is not None and sibling.is_open:
                self.orders.mark_cancel_requested(sibling, now)
        self._send(cancel_order_command(flagged, now))
        return flagged

    def mass_cancel(self, account_id: str, request: MassCancelRequest) -> dict[str, Any]:
        """Cancel every open order of the account in ``symbol`` (or in every symbol where it has
        open orders): one ``mass_cancel`` command per symbol, on that symbol's partition, and a
        cancel to routing for each routed order resting on an external venue (from the channels
        that route: HTTP)."""
        if request.symbol is not None and self.instruments.get(request.symbol) is None:
            raise ValidationFailed("unknown_symbol", f"unknown symbol {request.symbol!r}", "symbol")
        open_orders = self.orders.list_by_account(account_id, OPEN_STATUSES, 500)
        if request.symbol is not None:
            symbols = [request.symbol]
        else:
            symbols = sorted({order.symbol for order in open_orders})
        now = self.clock()
        commands = [mass_cancel_command(account_id, symbol, now) for symbol in symbols]
        for command in commands:
            self._send(command)
        away = [o for o in open_orders if o.rests_on is not None and o.symbol in symbols]
        if away and self.routes is not None:  # a channel that takes no routed orders leaves them to HTTP
            self._send_route_cancels(away, now)
        return {
            "account_id": account_id,
            "symbols": symbols,
            "command_ids": [command.command_id for command in commands],
        }

    # -- replace ------------------------------------------------------------------------------

    def replace(self, account_id: str, order_id: str, request: ReplaceOrderRequest) -> Order:
        """Replace an open order's price, stop price and/or total quantity.

        The reservation follows at once: what the new terms need on top of what the order holds
        is reserved with one conditional write (422 when the account cannot afford it; nothing
        changes and nothing is sent); a decrease is released when the engine has replaced the
        order. One replace at a time per order (409 ``replace_pending``)."""
        order = self.get(account_id, order_id)
        if not order.is_open:
            raise _not_open(order)
        if order.group_id is not None:
            raise Conflict("oco_leg", "an OCO leg cannot be replaced; cancel the group", "order_id")
        if order.routing is not None:
            raise Conflict("routed_order", "a routed order cannot be replaced: cancel it and enter a new one",
                           "order_id")
        if order.type == "market":
            raise Conflict("not_replaceable", "a market order cannot be replaced", "order_id")
        if order.replace_pending:
            raise Conflict("replace_pending", "a replace of this order is waiting for the engine", "order_id")
        if request.price is not None and order.type not in ("limit", "stop_limit"):
            raise ValidationFailed("invalid_field", f"a {order.type} order has no limit price", "price")
        if request.stop_price is not None:
            if order.type not in ("stop", "stop_limit"):
                raise ValidationFailed("invalid_field", f"a {order.type} order has no stop_price", "stop_price")
            if order.triggered:
                raise Conflict("already_triggered", "the stop has triggered; its stop_price is final", "stop_price")
        instrument: Instrument = tradable(order.symbol, self.instruments.get(order.symbol))
        on_grid(instrument, {"quantity": request.quantity}, {"price": request.price, "stop_price": request.stop_price})
        quantity = request.quantity if request.quantity is not None else order.quantity
        if quantity <= order.filled_quantity:
            raise ValidationFailed("invalid_field", "quantity must exceed the filled quantity", "quantity")
        price = request.price if request.price is not None else order.price
        stop_price = request.stop_price if request.stop_price is not None else order.stop_price
        number = order.replace_count + 1
        terms: ReplaceTerms | None = None
        reservation: Reservation | None = None
        written = False  # by this request (else found in place: given back by whoever wrote it)
        cap: Decimal | None = None
        if self.risk is not None and order.reserved:
            with self._audited(account_id, replace_command_id(order.order_id, number), order):
                terms, reservation, reserve_price, written = self.risk.reserve_replace(
                    order, quantity, price, stop_price, number
                )
            if reserve_price is not None and request.stop_price is not None:
                cap = self._floor_tick(order.symbol, reserve_price)
        now = self.clock()
        ours = reservation if written else None  # what a replace that does not begin gives back
        try:
            rid = reservation.reservation_id if reservation is not None else None
            updated = self.orders.begin_replace(order, number, terms, cap, now, rid, check_held=not written)
        except Exception as exc:  # compensation: the replace's reservation given back, then re-raised as not stored
            self._give_back_replace(order, number, ours)
            raise _not_stored(exc, order.order_id) from exc
        if updated is None:
            self._give_back_replace(order, number, ours)
            raise Conflict("replace_pending", "the order changed meanwhile; read it and retry", "order_id")
        command = replace_order_command(
            order, replace_command_id(order.order_id, number),
            cap if cap is not None else request.price, request.stop_price, request.quantity, now,
        )  # fmt: skip
        try:
            self._send(command)
        except Unavailable as unsent:
            # The command may have reached the stream all the same (an answer lost on the way
            # back): only the engine can tell. Its fence, behind it on the symbol's shard, makes
            # it decide; the consumers apply what it answers, reservation included.
            self._fence_replace(updated, command.command_id, now)
            raise ReplaceUnconfirmed() from unsent
        return updated

    def _fence_replace(self, order: Order, replace_id: str, now: datetime) -> None:
        """Put the fence of a replace whose command was not confirmed sent: the engine refuses a
        replace it has not received (``replace_rejected``, ``entry_incomplete``) and then drops
        it if it comes; one it has received stands. A fence that cannot be sent either leaves the
        replace pending (logged): not given back here, since the replace may have landed."""
        try:
            self.commands.publish(replace_fence(order.order_id, order.account_id, order.symbol, replace_id, now))
        except Exception:  # the replace stays pending with its reservation (never under-reserved)
            logger.exception("replace fence not sent; the replace stays pending",
                             extra={"order_id": order.order_id, "replace_command_id": replace_id})  # fmt: skip

    def _give_back(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.risk is not None:
            self.risk.release(reservation)

    def _give_back_replace(self, order: Order, number: int, reservation: Reservation | None) -> None:
        """A replace not begun here: give back the reservation this request wrote, by id, in one
        transaction with the condition that replace ``number`` of the order has not begun. A
        request of the same number that needed the same has the same id
        (``replace_reservation_id`` is a digest of what it reserves) and found it in place: it
        never gives it back, and begins only while the account holds it. So it either began
        first (then this keeps the id, which it holds) or finds the id gone and does not begin
        (409). If replace ``number`` began holding another id (a request that reserved other
        amounts), this one is given back all the same. A reservation found in place is not given
        back (None here): if no replace begins on it, it stays held, an over-reservation that
        reconciliation reports."""
        if reservation is None:
            return
        try:
            if self.orders.release_replace_reservation(order.order_id, number, reservation) is not ReplaceRelease.BEGUN:
                return
            begun = self.orders.replace_reservation(order.order_id, number)
        except Exception:  # outcome unknown: logged, the reservation stays (never double-counted)
            logger.exception("replace outcome unknown; its reservation stays", extra={"order_id": order.order_id})
            return
        if begun != reservation.reservation_id:
            self._give_back(reservation)

    # -- plumbing -----------------------------------------------------------------------------

    def _audited(self, account_id: str, key: str, order: Order) -> _AuditRefusal:
        return _AuditRefusal(self.audit, account_id, key, order)

    def _send(self, command: AnyOrderCommand) -> None:
        try:
            self.commands.publish(command)
        except Exception as exc:  # whatever the stream raised: a 503 the client retries
            entry = command.type in ("new", "oco")
            raise Unavailable(
                "command_not_sent",
                "the order service could not reach the matching engine; retry the request"
                + (" with the same client_order_id (the order is stored: a retry sends it again, and unless"
                   " the engine received it, it ends rejected with reason entry_incomplete)" if entry else ""),
            ) from exc


class _AuditRefusal:
    """Context manager: a ``RiskRefused`` raised inside is published as a ``risk_refused`` audit
    event (id derived from account + client order id, so a retried request adds nothing), then
    re-raised. An audit stream that cannot be reached never turns the 422 into a 5xx."""

    def __init__(self, sink: AuditSink | None, account_id: str, key: str, order: Order) -> None:
        self.sink = sink
        self.account_id = account_id
        self.key = key
        self.order = order

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        if self.sink is None or not isinstance(exc, RiskRefused):
            return False
        event = risk_refused_event(self.account_id, self.key, exc, self.order)
        try:
            self.sink.publish(event)
        except Exception:  # the refusal stands; its audit record is best effort (logged)
            logger.exception("risk refusal not audited", extra={"audit_event_id": event.event_id})
        return False


def risk_refused_event(account_id: str, key: str, refusal: RiskRefused, order: Order) -> AuditEvent:
    """The audit event of a pre-trade refusal; ``event_id`` = uuid5(account / key)."""
    event_id = uuid.uuid5(AUDIT_NAMESPACE, f"risk_refused/{account_id}/{key}").hex
    details = {
        "reason": refusal.code,
        "message": refusal.message,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "quantity": str(order.quantity),
        "request": key,
    }
    if refusal.field:
        details["field"] = refusal.field
    return AuditEvent(
        event_id=event_id,
        kind="risk_refused",
        aggregate_type="account",
        aggregate_id=account_id,
        actor=account_id,
        source="orders",
        correlation_id=key[:200],
        links=(f"order:{order.group_id or order.order_id}",),
        details=details,
    )


def _not_stored(exc: Exception, order_id: str) -> Unavailable:
    """The 503 of a write to the orders table that failed; the failure itself is logged."""
    logger.warning("order not stored", extra={"order_id": order_id, "error": repr(exc)})
    return Unavailable("order_not_stored", "the order could not be stored; nothing was sent: retry the request")


def _reused(client_order_id: str | None, existing: str) -> Conflict:
    return Conflict("client_order_id_reused", f"client_order_id {client_order_id!r} already names {existing}, "
                    "entered with other terms; nothing was reserved or sent", "client_order_id")  # fmt: skip


def _not_open(order: Order) -> Conflict:
    return Conflict("order_not_open", f"the order is {order.status}", "order_id")


def _plausible_id(order_id: str) -> bool:
    return 0 < len(order_id) <= 64


# -- the consumer side -----------------------------------------------------------------------


class BatchNotifier:
    """Collects the notifications of a batch; ``flush`` sends them through ``target``, in order."""

    def __init__(self, target: Notifier) -> None:
        self.target = target
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        self.messages.extend(messages)

    def flush(self) -> None:
        if self.messages:
            messages, self.messages = self.messages, []
            self.target.send(messages)


def apply_events(
    events: Iterable[ExecutionEventT],
    orders: OrderRepository,
    notifier: Notifier,
    parallel: Callable[[list[Callable[[], Any]]], list[Any]] | None = None,
) -> int:
    """Apply events in order; returns how many order changes were written.

    Per order, one conditional update per run of its changes (``folding.merged``: an order
    accepted and filled in the same batch is one write); the notifications go out for the
    orders whose status an event moved to filled/partially_filled/cancelled/rejected, in event
    order. A redelivered event whose update is refused because it is *the last one applied* to
    the order sends its notifications again (the first attempt may have failed after the update;
    the notifications consumer drops duplicates by ``notification_id``).

    With ``parallel`` (run callables concurrently, return their results in order, raise the first
    error once all have run), the orders are updated concurrently: each order's changes still run
    one after the other in event order (an order stops at its first error), orders do not depend
    on each other (one item each, its own seq). The notifications of every change that was
    applied are sent, in event order, before an error is raised."""
    ordered: dict[str, list[tuple[int, OrderChange, datetime]]] = {}
    position = 0
    for event in events:
        for change in order_changes(event):
            ordered.setdefault(change.order_id, []).append((position, change, event.ts))
            position += 1
    outcomes: list[tuple[int, int, dict[str, Any] | None]] = []  # (position, changes applied, notice)

    def apply_order(changes: list[tuple[int, OrderChange, datetime]]) -> None:
        done = 0
        for run in merged([change for _, change, _ in changes]):
            done += len(run)
            at, _, ts = changes[done - 1]  # the run's last change: its place and its event's time
            change = merge(run)
            result = orders.apply(change)
            order = result.order
            message = None
            if order is not None and change.notify is not None and (result.applied or order.last_seq == change.seq):
                message = notification_message(change, order, ts)
            outcomes.append((at, len(run) if result.applied else 0, message))  # list.append is atomic

    jobs = [functools.partial(apply_order, changes) for changes in ordered.values()]
    try:
        if parallel is None or len(jobs) <= 1:
            for job in jobs:
                job()
        else:
            parallel(jobs)
    finally:
        outcomes.sort(key=lambda outcome: outcome[0])
        messages = [message for _, _, message in outcomes if message is not None]
        if messages:
            notifier.send(messages)
    return sum(applied for _, applied, _ in outcomes)


# -- the entry sweep ----------------------------------------------------------------------------

# An entry older than this that the engine has not been seen to take is closed (fenced): well past
# the longest an order entry may run (``ENTRY_TIME_LIMIT``, then one AWS call), so no live entry
# can still write its reservation or send its command after the fence.
ENTRY_DEADLINE: Final = 300  # seconds
# Entries read per index partition and run: at most 1,000 fences a run (at least 2: a run cut
# short completes the entries before its cut, the first of them at least).
FENCES_PER_SHARD: Final = 125


def _after(instant: str) -> datetime:
    """The first instant after ``instant`` that ``iso`` can write (a microsecond later)."""
    return datetime.fromisoformat(instant) + timedelta(microseconds=1)


class EntrySweep:
    """Closes the entries that stopped half way (``OrderService._place_with_risk``): an order (or
    OCO group) stored ``pending_new`` more than ``ENTRY_DEADLINE`` ago that no engine event has
    reached gets a ``fence`` command on its symbol's shard, after the ``new`` its entry may have
    sent. The engine is the judge: an id it has received is left as its events make it; an id it
    has not is refused for good and rejected (``entry_incomplete``), which the orders consumer
    applies to a ``pending_new`` order only and the risk consumer releases only while the account
    item holds the reservation. Each entry is fenced once: the sweep keeps how far it got (its
    item in the orders table) and reads on from there.

    Replaces too: a replace whose send stopped half way (or whose own fence could not be sent,
    ``OrderService._fence_replace``) stays ``replace_pending`` in the ``pending-replaces`` index;
    one begun more than ``ENTRY_DEADLINE`` ago gets its fence (``replace_command_id``), and the
    engine's answer takes it out of the index.

    Requests per run: one GetItem and one PutItem (the progress), one Query per index shard (8)
    of each index and one PutRecords per 500 fences (at most 2,000 a run); nothing per order
    that the engine took in time."""

    def __init__(
        self, entries: PendingEntries, fences: FencePublisher, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.entries = entries
        self.fences = fences
        self.clock = clock

    def run(self) -> list[FenceCommand]:
        now = self.clock()
        through = iso(now - timedelta(seconds=ENTRY_DEADLINE))
        swept = self.entries.swept_through()  # the last run's bound, done: read on just after it
        since = None if swept is None else iso(_after(swept))
        # A bounded run, oldest first: at most FENCES_PER_SHARD of each partition. When one is
        # cut short, the run is complete only below its last entry's instant: it stops there, and
        # the next run reads on from it (after an outage of the consumers, a backlog of entries
        # drains at most this much a minute, its fences in two PutRecords calls).
        found: list[PendingEntry] = []
        cut: str | None = None
        for shard in range(self.entries.entry_shards):
            entries = self.entries.pending_entries(shard, since, through, FENCES_PER_SHARD)
            if len(entries) >= FENCES_PER_SHARD:
                cut = entries[-1].created_at if cut is None else min(cut, entries[-1].created_at)
            found.extend(entries)
        if cut is not None:
            found = [entry for entry in found if entry.created_at < cut]
            through = iso(datetime.fromisoformat(cut) - timedelta(microseconds=1))
        commands: dict[str, FenceCommand] = {}
        for entry in found:
            fenced = entry.group_id or entry.order_id  # an OCO group is entered and fenced as one
            if fenced not in commands:
                commands[fenced] = FenceCommand(command_id=f"fence-{fenced}", order_id=fenced,
                                                account_id=entry.account_id, symbol=entry.symbol, ts=now)  # fmt: skip
        replaces = self._replace_fences(now)
        if commands or replaces:
            replaced = [f.replace_command_id for f in replaces]
            logger.warning("entries closed by fence",
                           extra={"fenced": sorted(commands)[:50], "count": len(commands), "replaces": replaced[:50]})
            self.fences.publish_all([*commands.values(), *replaces])
        self.entries.mark_swept(through)
        return [*commands.values(), *replaces]

    def _replace_fences(self, now: datetime) -> list[FenceCommand]:
        """A fence for each replace begun more than ``ENTRY_DEADLINE`` ago that the engine's answer
        has not reached (its send stopped half way, or its fence could not be sent then), at most
        ``FENCES_PER_SHARD`` of each partition, oldest first. Sent again each run while the
        replace waits: the engine answers a replace's fence once (it remembers the id)."""
        before = iso(now - timedelta(seconds=ENTRY_DEADLINE))
        fences: list[FenceCommand] = []
        for shard in range(self.entries.entry_shards):
            for waiting in self.entries.pending_replaces(shard, before, FENCES_PER_SHARD):
                replace_id = replace_command_id(waiting.order_id, waiting.number)
                fences.append(replace_fence(waiting.order_id, waiting.account_id, waiting.symbol, replace_id, now))
        return fences
