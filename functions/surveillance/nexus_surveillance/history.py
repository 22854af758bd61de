"""The platform's stored history as detector events. Pure: no boto3.

The audit trail keeps every engine event of an order (``order_accepted``, ``order_cancelled``,
``order_expired``, ``order_rejected``, ``order_replaced``) and every trade (``trade`` on
``trade#<event id>``), each with its details as strings and the symbol's engine sequence number
(``engine_seq``). ``engine_records`` turns those records back into the flat engine events
``nexus replay`` writes, which the library's own decoder (``from_execution_event``) reads: the
scan sees the same events, in the same form, as the live path did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from nexus_surveillance.events import DecodeError, SurvEvent, from_execution_event

_ORDER_KINDS: Final = {
    "order_accepted": "accepted",
    "order_cancelled": "cancelled",
    "order_expired": "expired",
    "order_rejected": "rejected",
    "order_replaced": "replaced",
}
_FIELDS: Final = {
    "accepted": ("account_id", "side", "order_type", "price", "quantity"),
    "cancelled": ("account_id", "remaining_quantity", "reason"),
    "expired": ("account_id", "remaining_quantity", "reason"),
    "rejected": ("account_id", "reason"),
    "replaced": ("account_id", "price", "quantity", "remaining_quantity", "reason"),
    "trade": ("price", "quantity", "aggressor_side", "maker_order_id", "taker_order_id", "maker_account_id",
              "taker_account_id"),
}  # fmt: skip


def engine_record(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """One audit item as a flat engine event, or None (not an engine fact of an order or trade)."""
    if item.get("source") != "execution-events":
        return None
    kind = str(item.get("kind", ""))
    aggregate_type = item.get("aggregate_type")
    if kind == "trade" and aggregate_type == "trade":
        engine_type = "trade"
    elif aggregate_type == "order" and kind in _ORDER_KINDS:
        engine_type = _ORDER_KINDS[kind]
    else:
        return None
    details = item.get("details") or {}
    seq = str(details.get("engine_seq", ""))
    if not seq.isdigit():
        return None
    record: dict[str, Any] = {
        "type": engine_type,
        "event_id": str(item.get("event_id", "")),
        "symbol": str(details.get("symbol", "")),
        "seq": int(seq),
        "ts": str(item.get("ts", "")),
    }
    if engine_type != "trade":
        record["order_id"] = str(item.get("aggregate_id", ""))
    for name in _FIELDS[engine_type]:
        if name in details:
            record[name] = str(details[name])
    return record


def history_events(
    items: Iterable[Mapping[str, Any]],
    owners: Mapping[str, str] | None = None,
    symbols: frozenset[str] | None = None,
) -> tuple[list[SurvEvent], int]:
    """The detector events of audit items (each engine event once, whatever copies the trail
    holds), and how many records could not be read."""
    seen: set[tuple[str, str, str]] = set()
    events: list[SurvEvent] = []
    unreadable = 0
    for item in items:
        record = engine_record(item)
        if record is None:
            continue
        if symbols is not None and record["symbol"] not in symbols:
            continue
        key = (record["event_id"], record["type"], str(record.get("order_id", "")))
        if key in seen:
            continue
        seen.add(key)
        try:
            events.extend(from_execution_event(record, owners))
        except DecodeError:
            unreadable += 1
    return events, unreadable


def account_ids(items: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every account an item's details name (to resolve their owners in one batch)."""
    found: set[str] = set()
    for item in items:
        details = item.get("details") or {}
        for name in ("account_id", "maker_account_id", "taker_account_id"):
            value = details.get(name)
            if isinstance(value, str) and value:
                found.add(value)
    return found
