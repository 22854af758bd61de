"""L3 book: the resting orders of each price level in time priority, folded from the engine's
events. Pure domain, no boto3.

The engine publishes order events (``accepted``, ``triggered``, ``trade``, ``replaced``,
``cancelled``, ``expired``) and aggregated ``book`` deltas, not the queue itself; the queue is
rebuilt here with the engine's rules (``nexus_matching`` module docs):

* an order gets its place (``priority``) from the event that put it in the queue: ``accepted``
  (a limit order), ``triggered`` (a stop-limit), ``replaced`` with ``kept_priority`` false (it is
  taken out and runs again), and, for an iceberg, the ``trade`` that used up its shown slice (the
  next slice goes to the back of the queue). Seqs grow through a step, so sorting a level by
  ``priority`` is the engine's FIFO order;
* an incoming order first takes liquidity (state ``taking``: everything it has is "shown");
  what is left rests (a limit or triggered stop-limit, not IOC/FOK), an iceberg showing
  ``min(display_quantity, open)``. It rests before any event names it other than as a taker,
  and at the latest at the end of the step (one Kinesis record);
* a ``replaced`` that keeps priority takes the cut off the hidden reserve first.

Each order's state carries its watermark (``last_seq``, ``epoch``): an event at or below it is
skipped, so a redelivered record changes nothing. The wire form is anonymous: no account id,
and the order id replaced by a stable opaque id (a hash of the symbol and the seq of the event
that accepted the order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

from nexus_common.events import (
    AcceptedEvent,
    AnyEngineEvent,
    CancelledEvent,
    ExpiredEvent,
    ReplacedEvent,
    TradeEvent,
    TriggeredEvent,
)
from nexus_common.money import fmt

from nexus_marketdata.domain import LEVEL_DIGITS, SIDE_PREFIX, level_key

PRIORITY_DIGITS: Final = 20
RESTING_TIFS: Final = frozenset({"gtc", "day", "gtd"})
TOMBSTONE_SECONDS: Final = 86_400  # an order that left the book keeps its watermark one day


def book_key(side: str, price: Decimal, priority: int) -> str:
    """GSI sort key: best level first on both sides, then time priority.

    Asks: the ascending price key. Bids: the price key's complement, so that ascending order is
    the highest bid first."""
    digits = level_key(side, price)[2:]
    if side == "buy":
        digits = f"{10**LEVEL_DIGITS - 1 - int(digits):0{LEVEL_DIGITS}d}"
    return f"{SIDE_PREFIX[side]}{digits}#{priority:0{PRIORITY_DIGITS}d}"


def opaque_id(symbol: str, accepted_seq: int) -> str:
    return hashlib.blake2b(f"{symbol}:{accepted_seq}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class L3Order:
    symbol: str
    order_id: str
    side: str
    kind: str  # limit | market | stop | stop_limit (a triggered stop becomes market)
    tif: str
    price: Decimal | None
    peak: Decimal | None  # iceberg display quantity
    open: Decimal  # shown + hidden
    shown: Decimal
    state: str  # parked | taking | resting | done
    priority: int
    accepted_seq: int
    last_seq: int
    epoch: int
    ts: str = ""

    @property
    def resting(self) -> bool:
        return self.state == "resting" and self.open > 0 and self.price is not None

    def to_item(self, expires_at: int | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "symbol": self.symbol,
            "order_id": self.order_id,
            "side": self.side,
            "kind": self.kind,
            "tif": self.tif,
            "open": self.open,
            "shown": self.shown,
            "state": self.state,
            "priority": self.priority,
            "accepted_seq": self.accepted_seq,
            "last_seq": self.last_seq,
            "epoch": self.epoch,
            "ts": self.ts,
        }
        if self.price is not None:
            item["price"] = self.price
        if self.peak is not None:
            item["peak"] = self.peak
        if self.resting and self.price is not None:
            item["book_key"] = book_key(self.side, self.price, self.priority)
        elif self.state == "done" and expires_at is not None:
            item["expires_at"] = expires_at
        return item


def order_from_item(item: Mapping[str, Any]) -> L3Order:
    def dec(name: str) -> Decimal | None:
        value = item.get(name)
        return None if value is None else Decimal(str(value))

    return L3Order(
        symbol=str(item["symbol"]),
        order_id=str(item["order_id"]),
        side=str(item["side"]),
        kind=str(item["kind"]),
        tif=str(item["tif"]),
        price=dec("price"),
        peak=dec("peak"),
        open=Decimal(str(item["open"])),
        shown=Decimal(str(item["shown"])),
        state=str(item["state"]),
        priority=int(item["priority"]),
        accepted_seq=int(item["accepted_seq"]),
        last_seq=int(item["last_seq"]),
        epoch=int(item["epoch"]),
        ts=str(item.get("ts", "")),
    )


def _rest(order: L3Order) -> L3Order:
    """The end of an order's taking phase: it rests (what is left, the iceberg's first slice)."""
    if order.state != "taking":
        return order
    restable = order.kind in ("limit", "stop_limit") and order.tif in RESTING_TIFS and order.price is not None
    if not restable or order.open <= 0:
        return replace(order, state="done", shown=Decimal(0))
    shown = min(order.peak, order.open) if order.peak is not None else order.open
    return replace(order, state="resting", shown=shown)


def _touch(order: L3Order, event: AnyEngineEvent) -> L3Order:
    return replace(order, last_seq=event.seq, epoch=event.epoch, ts=event.ts.isoformat())


def _applies(order: L3Order | None, event: AnyEngineEvent) -> bool:
    return order is None or (event.seq > order.last_seq and event.epoch >= order.epoch)


class L3Fold:
    """Applies records' events to the orders they name (loaded beforehand).

    ``end_record()`` after each record's events (optional) lets the fold leave out an order that
    began and ended within one record: a market, IOC or FOK order, or a limit order filled on
    arrival, never rests, so it needs no item. A record is delivered whole, so every reading of
    that record finds the order ended as well (none ever sees it in the book), and any later event
    naming it finds no item and changes nothing, as it would find the item of an ended order."""

    def __init__(self, known: Mapping[str, L3Order]) -> None:
        self.orders: dict[str, L3Order] = dict(known)
        self.changed: set[str] = set()
        self.born: set[str] = set()  # orders accepted in the current record, unknown before it

    def _set(self, order: L3Order) -> None:
        self.orders[order.order_id] = order
        self.changed.add(order.order_id)

    def _settled(self, order_id: str, event: AnyEngineEvent) -> L3Order | None:
        """The order, rested if its taking phase is over, when ``event`` applies to it."""
        order = self.orders.get(order_id)
        if order is None or not _applies(order, event):
            return None
        return _rest(order)

    def apply(self, event: AnyEngineEvent) -> None:
        if isinstance(event, AcceptedEvent):
            if event.order_id in self.orders:
                return  # the engine ignores a repeated order id; so does the fold
            parked = event.order_type in ("stop", "stop_limit")
            self.born.add(event.order_id)
            self._set(
                L3Order(
                    symbol=event.symbol,
                    order_id=event.order_id,
                    side=event.side,
                    kind=event.order_type,
                    tif=event.time_in_force,
                    price=event.price,
                    peak=event.display_quantity,
                    open=event.quantity,
                    shown=event.quantity,
                    state="parked" if parked else "taking",
                    priority=event.seq,
                    accepted_seq=event.seq,
                    last_seq=event.seq,
                    epoch=event.epoch,
                    ts=event.ts.isoformat(),
                )
            )
        elif isinstance(event, TriggeredEvent):
            order = self._settled(event.order_id, event)
            if order is not None:
                kind = "market" if order.kind == "stop" else "stop_limit"
                taking = replace(order, kind=kind, state="taking", shown=order.open, priority=event.seq)
                self._set(_touch(taking, event))
        elif isinstance(event, TradeEvent):
            self._maker(event)
            self._taker(event)
        elif isinstance(event, ReplacedEvent):
            self._replaced(event)
        elif isinstance(event, (CancelledEvent, ExpiredEvent)):
            order = self.orders.get(event.order_id)
            if order is not None and _applies(order, event):
                self._set(_touch(replace(order, state="done", open=Decimal(0), shown=Decimal(0)), event))

    def _maker(self, event: TradeEvent) -> None:
        order = self._settled(event.maker_order_id, event)
        if order is None:
            return
        open_after = event.maker_remaining_quantity
        shown = order.shown - event.quantity
        priority = order.priority
        if open_after <= 0:
            order = replace(order, state="done", open=Decimal(0), shown=Decimal(0))
        else:
            if shown <= 0:  # an iceberg's slice is used up: the next one goes to the back
                shown = min(order.peak, open_after) if order.peak is not None else open_after
                priority = event.seq
            order = replace(order, open=open_after, shown=shown, priority=priority)
        self._set(_touch(order, event))

    def _taker(self, event: TradeEvent) -> None:
        order = self.orders.get(event.taker_order_id)
        if order is None or not _applies(order, event):
            return
        remaining = event.taker_remaining_quantity
        state = "taking" if remaining > 0 else "done"
        self._set(_touch(replace(order, open=remaining, shown=remaining, state=state), event))

    def _replaced(self, event: ReplacedEvent) -> None:
        order = self._settled(event.order_id, event)
        if order is None:
            return
        price = event.price if event.price is not None else order.price
        new_open = event.remaining_quantity
        if order.state == "parked":
            order = replace(order, price=price, open=new_open, shown=new_open)
        elif not event.kept_priority:
            order = replace(order, price=price, open=new_open, shown=new_open, state="taking", priority=event.seq)
        else:
            hidden = order.open - order.shown
            cut = order.open - new_open
            hidden_after = max(Decimal(0), hidden - cut)
            order = replace(order, price=price, open=new_open, shown=new_open - hidden_after)
            if new_open <= 0:
                order = replace(order, state="done", shown=Decimal(0))
        self._set(_touch(order, event))

    def end_record(self) -> None:
        """The end of one record: the orders accepted in it that are already over (ended, or
        taking with nothing that could rest) are not written. One named by a later record of the
        same batch (a step too large for one record goes on in the next) is written after all."""
        for order_id in self.born:
            if _rest(self.orders[order_id]).state == "done":
                self.changed.discard(order_id)
        self.born.clear()

    def finish(self) -> dict[str, L3Order]:
        """End of the step: every order still taking rests (or is done). The changed orders."""
        for order_id in self.changed:
            self.orders[order_id] = _rest(self.orders[order_id])
        return {order_id: self.orders[order_id] for order_id in self.changed}


def touched_order_ids(events: Iterable[AnyEngineEvent]) -> list[str]:
    """Every order id a record's events name (the fold needs their stored state, if any: an
    ``accepted`` redelivered must find its order)."""
    needed: dict[str, None] = {}
    for event in events:
        if isinstance(event, TradeEvent):
            needed[event.maker_order_id] = None
            needed[event.taker_order_id] = None
        elif isinstance(event, (AcceptedEvent, TriggeredEvent, ReplacedEvent, CancelledEvent, ExpiredEvent)):
            needed[event.order_id] = None
    return list(needed)


@dataclass(frozen=True)
class L3Level:
    price: Decimal
    orders: tuple[tuple[str, Decimal], ...]  # (opaque id, shown quantity), time priority

    def to_wire(self) -> dict[str, Any]:
        return {
            "price": fmt(self.price),
            "quantity": fmt(sum((q for _, q in self.orders), Decimal(0))),
            "orders": [{"id": oid, "quantity": fmt(q)} for oid, q in self.orders],
        }


def l3_levels(items: Iterable[Mapping[str, Any]], depth: int) -> list[L3Level]:
    """Items of one side in GSI order (best level first, then priority) -> at most ``depth``
    levels of orders with a shown quantity."""
    levels: list[L3Level] = []
    price: Decimal | None = None
    orders: list[tuple[str, Decimal]] = []
    for item in items:
        shown = Decimal(str(item["shown"]))
        if shown <= 0:
            continue
        item_price = Decimal(str(item["price"]))
        if price is not None and item_price != price:
            levels.append(L3Level(price, tuple(orders)))
            if len(levels) >= depth:
                return levels
            orders = []
        price = item_price
        orders.append((opaque_id(str(item["symbol"]), int(item["accepted_seq"])), shown))
    if price is not None and orders and len(levels) < depth:
        levels.append(L3Level(price, tuple(orders)))
    return levels
