# cython: language_level=3, annotation_typing=False
"""Event rendering: the matching core's records of a step as the engine's event dicts.

The core writes compact tuples to ``Market.out`` (the record kinds below) and marks the price
levels it changed in ``Market.touched``; ``render`` turns them into flat JSON-ready dicts shaped
exactly like the event models of ``nexus_common.events`` (decimals as canonical strings), each
with the envelope (``event_id``, ``version``, ``ts``, ``correlation_id``, ``symbol``, ``seq``,
``epoch``) and the symbol's next sequence numbers, then one ``book`` event per touched level.
The refusal and trading-status events, which no record precedes, are built here too. Formats:
README "Engine command and event formats"; rules: docs/matching-engine.md.

Every ``process`` call that does anything goes through here, so it is compiled with the book and
the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from nexus_matching.book import KIND_NAMES, LIMIT, STOP, STOP_LIMIT, STP_NAMES, Order
from nexus_matching.market import Market, micros_iso

if TYPE_CHECKING:
    from nexus_matching.market import Invalid

Event = dict[str, Any]

# Record kinds of the matching core: the first field of each tuple in ``Market.out``.
TRADE: Final = 0  # (TRADE, maker, taker, price, lots, maker filled, maker notional, maker open,
#                    taker filled, taker notional, taker remaining): counters after the trade
CANCEL: Final = 1  # (CANCEL, order, open quantity, reason)
ACCEPT: Final = 2  # (ACCEPT, order, quantity, price, stop price, order kind): as accepted
EXPIRE: Final = 3  # (EXPIRE, order, open quantity, time in force)
REPLACE: Final = 4  # (REPLACE, order, price, stop price, quantity, open quantity, kept priority, reason, kind)
TRIGGER: Final = 5  # (TRIGGER, order, last trade price, order kind, stop price)


def render(m: Market, epoch: int, ts: str, command_id: str) -> list[Event]:
    """The step's records and touched levels as events, sequenced; clears both."""
    events: list[Event] = []
    out = m.out
    symbol = m.symbol
    qty_str = m.qty_str
    price_str = m.price_str
    seq = m.seq
    for record in out:
        seq += 1
        kind = record[0]
        if kind == TRADE:
            (_, maker, taker, price, lots, maker_filled, maker_notional, maker_remaining,
             taker_filled, taker_notional, taker_remaining) = record
            events.append(
                {
                    "event_id": f"{symbol}-{seq}",
                    "type": "trade",
                    "version": 1,
                    "ts": ts,
                    "correlation_id": command_id,
                    "symbol": symbol,
                    "seq": seq,
                    "epoch": epoch,
                    "price": price_str(price),
                    "quantity": qty_str(lots),
                    "aggressor_side": "buy" if taker.is_buy else "sell",
                    "maker_order_id": maker.order_id,
                    "maker_account_id": maker.account_id,
                    "taker_order_id": taker.order_id,
                    "taker_account_id": taker.account_id,
                    "maker_filled_quantity": qty_str(maker_filled),
                    "maker_filled_notional": m.notional_str(maker_notional),
                    "maker_remaining_quantity": qty_str(maker_remaining),
                    "taker_filled_quantity": qty_str(taker_filled),
                    "taker_filled_notional": m.notional_str(taker_notional),
                    "taker_remaining_quantity": qty_str(taker_remaining),
                }
            )
            continue
        order: Order = record[1]
        event: Event = {
            "event_id": f"{symbol}-{seq}",
            "type": "",
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": symbol,
            "seq": seq,
            "epoch": epoch,
            "order_id": order.order_id,
            "account_id": order.account_id,
        }
        if kind == ACCEPT:
            _, _, quantity, price, stop, order_kind = record
            has_limit = order_kind == LIMIT or order_kind == STOP_LIMIT
            event.update(
                type="accepted",
                side="buy" if order.is_buy else "sell",
                order_type=KIND_NAMES[order_kind],
                price=price_str(price) if has_limit else None,
                quantity=qty_str(quantity),
                time_in_force=order.tif,
                stop_price=price_str(stop) if order_kind >= STOP else None,
                display_quantity=qty_str(order.peak) if order.peak else None,
                post_only=order.post_only,
                stp=STP_NAMES[order.stp],
                expire_at=micros_iso(order.expire_at) if order.expire_at else None,
                group_id=None if order.group is None else order.group.group_id,
            )
        elif kind == CANCEL:
            event.update(type="cancelled", remaining_quantity=qty_str(record[2]), reason=record[3])
        elif kind == EXPIRE:
            event.update(type="expired", remaining_quantity=qty_str(record[2]), reason=record[3])
        elif kind == REPLACE:
            _, _, price, stop, quantity, open_qty, kept, reason, order_kind = record
            event.update(
                type="replaced",
                price=price_str(price) if order_kind in (LIMIT, STOP_LIMIT) else None,
                stop_price=price_str(stop) if order_kind >= STOP else None,
                quantity=qty_str(quantity),
                remaining_quantity=qty_str(open_qty),
                kept_priority=kept,
                reason=reason,
            )
        else:
            assert kind == TRIGGER
            event.update(
                type="triggered",
                order_type=KIND_NAMES[record[3]],
                stop_price=price_str(record[4]),
                trigger_price=price_str(record[2]),
            )
        events.append(event)
    touched = m.touched
    if touched:
        for key in sorted(touched, reverse=True) if len(touched) > 1 else touched:
            level = touched[key]
            seq += 1
            events.append(
                {
                    "event_id": f"{symbol}-{seq}",
                    "type": "book",
                    "version": 1,
                    "ts": ts,
                    "correlation_id": command_id,
                    "symbol": symbol,
                    "seq": seq,
                    "epoch": epoch,
                    "side": "buy" if key > 0 else "sell",  # bid keys are +price
                    "price": price_str(level.price),
                    "quantity": qty_str(level.qty),
                    "orders": level.count,
                }
            )
        touched.clear()
    out.clear()
    m.seq = seq
    return events


def order_event(
    type_: str, symbol: str, seq: int, epoch: int, ts: str, command_id: str, order_id: str, account_id: str
) -> Event:
    """The envelope and order fields of a refusal event."""
    return {
        "event_id": f"{symbol}-{seq}",
        "type": type_,
        "version": 1,
        "ts": ts,
        "correlation_id": command_id,
        "symbol": symbol,
        "seq": seq,
        "epoch": epoch,
        "order_id": order_id,
        "account_id": account_id,
    }


def rejected(
    type_: str, symbol: str, seq: int, epoch: int, ts: str, command_id: str, order_id: str, account_id: str,
    invalid: Invalid,
) -> Event:
    """A ``rejected`` or ``replace_rejected`` event: the reason and message of ``invalid``."""
    event = order_event(type_, symbol, seq, epoch, ts, command_id, order_id, account_id)
    event["reason"] = invalid.reason
    event["message"] = invalid.message
    return event


def cancel_rejected(
    symbol: str, seq: int, epoch: int, ts: str, command_id: str, order_id: str, account_id: str, reason: str
) -> Event:
    event = order_event("cancel_rejected", symbol, seq, epoch, ts, command_id, order_id, account_id)
    event["reason"] = reason
    return event


def trading_status(symbol: str, seq: int, epoch: int, ts: str, command_id: str, halted: bool, reason: str) -> Event:
    return {
        "event_id": f"{symbol}-{seq}",
        "type": "trading_status",
        "version": 1,
        "ts": ts,
        "correlation_id": command_id,
        "symbol": symbol,
        "seq": seq,
        "epoch": epoch,
        "status": "halted" if halted else "active",
        "reason": reason,
    }


def route_totals(fills: list[Event], quantity: str, kept: tuple[str, str, str] | None = None) -> tuple[str, str, str]:
    """A routed parent's totals (filled quantity, notional, remaining) as its last fill carried
    them; without a fill ``kept`` (those of an order working on a venue), else zero, all remaining."""
    if fills:
        last = fills[-1]
        return last["filled_quantity"], last["filled_notional"], last["remaining_quantity"]
    return kept if kept is not None else ("0", "0", quantity)


def routed_events(
    symbol: str, first_seq: int, epoch: int, ts: str, command_id: str, c: Any, fills: list[Event], end: bool = True,
    totals: tuple[str, str, str] | None = None,
) -> list[Event]:
    """A ``routed_fills`` command's events: one ``venue_fill`` per fill, then (``end``)
    ``route_ended`` with the parent's totals (those of its last fill; without a fill ``totals``,
    the filled quantity, notional and remaining of an order that worked on a venue, else zero,
    all remaining)."""
    order_id, account_id, side, quantity = c["order_id"], c["account_id"], c["side"], c["quantity"]
    events: list[Event] = []
    seq = first_seq
    for fill in fills:
        event = order_event("venue_fill", symbol, seq, epoch, ts, command_id, order_id, account_id)
        event["side"] = side
        event.update(fill)
        events.append(event)
        seq += 1
    if not end:
        return events
    ended = order_event("route_ended", symbol, seq, epoch, ts, command_id, order_id, account_id)
    ended["side"] = side
    ended["quantity"] = quantity
    ended["filled_quantity"], ended["filled_notional"], ended["remaining_quantity"] = route_totals(
        fills, quantity, totals)
    ended["reason"] = c["end_reason"]
    events.append(ended)
    return events


def route_working(
    symbol: str, seq: int, epoch: int, ts: str, command_id: str, c: Any, fills: list[Event]
) -> Event:
    """A ``route_working`` event: the routed order's remainder rests on the external venue
    ``rest_venue`` at ``rest_price``, with the parent's totals (those of its last fill; nothing
    filled: zero, all remaining)."""
    event = order_event("route_working", symbol, seq, epoch, ts, command_id, c["order_id"], c["account_id"])
    quantity = c["quantity"]
    event["side"] = c["side"]
    event["quantity"] = quantity
    event["venue"] = c["rest_venue"]
    event["mic"] = c.get("rest_mic")
    event["price"] = c["rest_price"]
    event["time_in_force"] = c["time_in_force"]
    event["filled_quantity"], event["filled_notional"], event["remaining_quantity"] = route_totals(fills, quantity)
    return event


__all__ = [
    "ACCEPT", "CANCEL", "EXPIRE", "REPLACE", "TRADE", "TRIGGER", "Event", "cancel_rejected", "order_event",
    "rejected", "render", "route_totals", "route_working", "routed_events", "trading_status",
]
