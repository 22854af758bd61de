"""Audit entries and how each source becomes them. Pure: no boto3, no Lambda events.

An ``AuditEntry`` is one fact about one aggregate (``order#<id>``, ``trade#<event id>``,
``account#<id>``, ``oco#<group id>``, ``settlement_batch#<account>:<batch>``, or whatever a
service names in an ``AuditEvent``). ``event_id`` identifies the fact within its aggregate and is
derived from the source, so a redelivered or replayed source event maps to the same ids:

============================  ===================================================================
source                        entries (``event_id``)
============================  ===================================================================
``audit-events`` (Kinesis)    one per ``AuditEvent``, as published (its own ``event_id``), and a
                              copy on each order it links to (a risk refusal names its order)
``order-commands`` (Kinesis)  ``new`` -> ``order_received`` (with the pre-trade risk outcome the
                              command carries), ``cancel``/``replace`` -> ``cancel_requested`` /
                              ``replace_requested``, ``oco`` -> ``oco_received`` on the group and
                              on each leg (legs linked to each other), ``mass_cancel`` -> on the
                              account, ``routed_fills`` -> ``routed_fills_received`` on the
                              routed parent order (its fill count, end reason; working on a
                              venue: ``working``, ``rest_venue``, ``rest_price``), ``fence``
                              (the entry sweep closing an entry that stopped half way) ->
                              ``entry_fence_requested`` on the order, or on the OCO group for a
                              group id (``command_id``); a replace's fence (the orders API, a
                              replace not confirmed sent) -> ``replace_fence_requested`` on the
                              order (``replace_command_id``)
``execution-events``          every engine event of an order (``accepted``, ``rejected``,
(Kinesis)                     ``cancelled``, ``expired``, ``replaced``, ``triggered``,
                              ``cancel_rejected``, ``replace_rejected``) on the order; a
                              ``trade`` on ``trade#<event id>`` linked to both orders and on each
                              order (``order_filled``) linked to the trade and the other order;
                              a routed parent's ``venue_fill`` (venue, price, quantity, the
                              venue's fee), ``route_working`` (the external venue and price its
                              remainder rests at) and ``route_ended`` on the parent order
                              (``order_venue_fill``, ``order_route_working``,
                              ``order_route_ended``), linked to its account
                              (a fill also to ``trade:<event id>``, where its ledger entry and
                              settlement are kept; no ``trade`` record: not a trade of this venue);
                              an OCO leg's events also on its group (``<symbol>-<seq>``).
                              ``book`` deltas are market data, not audit facts.
ledger (DynamoDB stream)      each journal entry on its account and, for a fill, on its trade
                              (``ledger:<entry id>``; a change to an entry, which never happens,
                              is recorded too, under the stream record's id)
settlements (DynamoDB stream) an obligation's creation and each status change on its trade and
                              account; a settlement batch's start and outcome on the batch
                              (``settlements:<stream event id>``)
============================  ===================================================================

Links are ``"<type>:<id>"`` strings (``order:<id>``, ``trade:<event id>``, ...): following them
from an order's records reaches its trades, and from a trade its ledger entries and settlement.
Details are strings (decimals in their canonical form), never secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.audit import AuditEvent
from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent, VenueFillEvent, iso
from nexus_common.events import event_id as engine_event_id
from nexus_common.money import fmt
from nexus_common.risk import is_group_id

SOURCE_AUDIT_EVENTS: Final = "audit-events"
SOURCE_COMMANDS: Final = "order-commands"
SOURCE_EXECUTIONS: Final = "execution-events"
SOURCE_LEDGER: Final = "ledger"
SOURCE_SETTLEMENTS: Final = "settlements"

# Aggregate types are lower-case words; "claim" is the store's own (its idempotency items).
AGGREGATE_TYPE: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED_TYPES: Final = frozenset({"claim"})

_ENVELOPE: Final = frozenset({"event_id", "type", "version", "ts", "correlation_id", "symbol", "seq"})


# Where an entry stands in an ordered source that names its events by their place: the source's
# key and the position (the engine's symbol and seq, a table stream and its sequence number).
Mark = tuple[str, int]
# The command that creates an order or an OCO group (``new``, ``oco``) is received once per
# aggregate: its entry's mark. The same command published twice carries the same mark.
RECEIVED: Final[Mark] = ("c:received", 0)


class UnreadableSource(ValueError):
    """A source record that can never become audit entries (bad JSON, a missing field)."""


@dataclass(frozen=True)
class AuditEntry:
    aggregate_type: str
    aggregate_id: str
    event_id: str
    kind: str
    ts: datetime
    source: str
    actor: str = "system"
    correlation_id: str | None = None
    links: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)
    # set only where the same event always carries the same mark (``nexus_audit.sequencing``: such
    # an entry is appended with one write when its aggregate's marks rule it out)
    mark: Mark | None = None

    def __post_init__(self) -> None:
        if not AGGREGATE_TYPE.match(self.aggregate_type) or self.aggregate_type in RESERVED_TYPES:
            raise UnreadableSource(f"bad aggregate type {self.aggregate_type!r}")
        if not self.aggregate_id or not self.event_id:
            raise UnreadableSource("an audit entry needs an aggregate id and an event id")
        if self.ts.tzinfo is None:
            raise UnreadableSource("naive timestamp")

    @property
    def aggregate(self) -> str:
        return aggregate_key(self.aggregate_type, self.aggregate_id)


def normalize_type(published: str) -> str:
    """A published aggregate type as the store keys it: lower-case letters, digits and ``_``,
    starting with a letter, never a reserved type (``API-Key`` -> ``api_key``)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", published.strip().lower())
    if not cleaned[:1].isalpha():
        cleaned = "t_" + cleaned
    cleaned = cleaned[:32]
    return cleaned + "_" if cleaned in RESERVED_TYPES else cleaned


def aggregate_key(aggregate_type: str, aggregate_id: str) -> str:
    return f"{aggregate_type}#{aggregate_id}"


def day_of(ts: datetime) -> str:
    """The time index bucket: the UTC date of the event."""
    return ts.astimezone(UTC).date().isoformat()


def _s(value: Any) -> str:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _details(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: _s(value) for key, value in values.items() if value is not None and value != ""}


def _parse_ts(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        ts = value
    else:
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise UnreadableSource(f"{what}: bad timestamp {value!r}") from None
    if ts.tzinfo is None:
        raise UnreadableSource(f"{what}: naive timestamp")
    return ts.astimezone(UTC)


# -- audit-events ----------------------------------------------------------------------------


def from_audit_event(event: AuditEvent) -> list[AuditEntry]:
    """The event on its aggregate and, so that an order's life shows it (a risk refusal names
    the order it refused), on each order it links to, linked back."""
    entry = AuditEntry(
        aggregate_type=normalize_type(event.aggregate_type),
        aggregate_id=event.aggregate_id,
        event_id=event.event_id,
        kind=event.kind,
        ts=event.ts.astimezone(UTC),
        source=event.source,
        actor=event.actor,
        correlation_id=event.correlation_id,
        links=tuple(event.links),
        details=dict(event.details),
    )
    entries = [entry]
    back = f"{entry.aggregate_type}:{event.aggregate_id}"
    for link in dict.fromkeys(event.links):
        kind, _, order_id = link.partition(":")
        if kind == "order" and order_id and (entry.aggregate_type, event.aggregate_id) != ("order", order_id):
            others = tuple(x for x in event.links if x != link)
            entries.append(replace(entry, aggregate_type="order", aggregate_id=order_id, links=(back, *others)))
    return entries


# -- order-commands --------------------------------------------------------------------------

_ORDER_TERMS: Final = (
    "side", "order_type", "price", "stop_price", "stop_limit_price", "quantity", "time_in_force",
    "expire_at", "display_quantity", "post_only", "stp", "client_order_id",
)  # fmt: skip


def _risk_details(command: Mapping[str, Any]) -> dict[str, str]:
    """The pre-trade risk outcome of an order command.

    A command that carries one (``risk``: an object of scalars) gives it. Otherwise the outcome
    is "accepted": the orders API puts a ``new`` or ``oco`` command on the stream only after
    pre-trade risk accepted and reserved it (a refusal is never sent; it reaches the trail as a
    ``risk_refused`` audit event instead)."""
    risk = command.get("risk")
    if not isinstance(risk, Mapping):
        return {"risk_decision": "accepted", "risk_basis": "sent_after_pre_trade_risk"}
    return {f"risk_{key}": _s(value) for key, value in risk.items() if not isinstance(value, Mapping | list)}


def from_command(command: Mapping[str, Any]) -> list[AuditEntry]:
    """The entries of one ``order-commands`` record (a command object)."""
    kind = command.get("type")
    command_id = command.get("command_id")
    if not isinstance(kind, str) or not isinstance(command_id, str) or not command_id:
        raise UnreadableSource("a command needs a type and a command_id")
    if kind == "clock":
        return []  # time passing is not a fact about an order; what it expires is (execution-events)
    ts = _parse_ts(command.get("ts"), f"command {command_id}")
    account_id = str(command.get("account_id") or "")
    actor = f"account:{account_id}" if account_id else "system"
    symbol = command.get("symbol")
    base = {"command_id": command_id, "account_id": account_id, "symbol": symbol}

    def entry(
        aggregate_type: str, aggregate_id: Any, what: str, links: tuple[str, ...], details: dict[str, Any]
    ) -> AuditEntry:
        if not isinstance(aggregate_id, str) or not aggregate_id:
            raise UnreadableSource(f"command {command_id}: no {aggregate_type} id")
        return AuditEntry(
            aggregate_type, aggregate_id, f"cmd:{command_id}", what, ts, SOURCE_COMMANDS, actor, command_id,
            links, _details(details),
        )  # fmt: skip

    account_link = (f"account:{account_id}",) if account_id else ()
    terms = {name: command.get(name) for name in _ORDER_TERMS}
    if kind == "new":
        details = {**base, **terms, **_risk_details(command)}
        return [replace(entry("order", command.get("order_id"), "order_received", account_link, details),
                        mark=RECEIVED)]  # fmt: skip
    if kind == "cancel":
        return [entry("order", command.get("order_id"), "cancel_requested", account_link, base)]
    if kind == "replace":
        changes = {name: command.get(name) for name in ("price", "stop_price", "quantity")}
        return [entry("order", command.get("order_id"), "replace_requested", account_link, {**base, **changes})]
    if kind == "mass_cancel":
        return [entry("account", account_id, "mass_cancel_requested", (), base)]
    if kind in ("halt", "resume"):  # from the admin API, which audits who asked (an audit event)
        return [entry("symbol", symbol, f"{kind}_requested", (), {**base, "reason": command.get("reason")})]
    if kind == "routed_fills":  # what a routed parent did on external venues, reported by routing
        fills = command.get("fills")
        details = {
            **base, "side": command.get("side"), "quantity": command.get("quantity"),
            "fills": len(fills) if isinstance(fills, list) else None, "end_reason": command.get("end_reason"),
            # working on an external venue: where its remainder rests (the route's first command)
            "working": True if command.get("working") is True else None, "rest_venue": command.get("rest_venue"),
            "rest_price": command.get("rest_price") if command.get("rest_venue") is not None else None,
        }  # fmt: skip
        return [entry("order", command.get("order_id"), "routed_fills_received", account_link, details)]
    if kind == "oco":
        group = command.get("order_id")
        if not isinstance(group, str) or not group:
            raise UnreadableSource(f"command {command_id}: an oco needs an order_id")
        legs = (f"{group}.tp", f"{group}.sl")
        details = {**base, **terms, **_risk_details(command), "group_id": group}
        entries = [entry("oco", group, "oco_received", (*account_link, *(f"order:{leg}" for leg in legs)), details)]
        for leg, other in (legs, legs[::-1]):
            links = (*account_link, f"oco:{group}", f"order:{other}")
            entries.append(entry("order", leg, "order_received", links, {**details, "leg": leg.rsplit(".", 1)[1]}))
        return [replace(e, mark=RECEIVED) for e in entries]
    if kind == "fence":  # the entry sweep: close an entry the engine may never have received
        target = command.get("order_id")
        if command.get("replace_command_id") is not None:  # a replace the engine may never have received
            details = {**base, "replace_command_id": command.get("replace_command_id")}
            return [entry("order", target, "replace_fence_requested", account_link, details)]
        if isinstance(target, str) and is_group_id(target):
            links = (*account_link, f"order:{target}.tp", f"order:{target}.sl")
            return [entry("oco", target, "entry_fence_requested", links, base)]
        return [entry("order", target, "entry_fence_requested", account_link, base)]
    # A type this code does not know yet (a newer orders API): kept on its order, else its account,
    # rather than stalling the stream.
    if isinstance(command.get("order_id"), str) and command.get("order_id"):
        return [entry("order", command["order_id"], f"{kind[:40]}_requested", account_link, {**base, **terms})]
    if account_id:
        return [entry("account", account_id, f"{kind[:40]}_requested", (), base)]
    raise UnreadableSource(f"command {command_id}: unknown type {kind!r} without an order or account")


# -- execution-events ------------------------------------------------------------------------


def _oco_group(order_id: str, group_id: str | None = None) -> str | None:
    """An OCO leg's group: given by ``accepted``; else from the leg id, which the engine names
    ``<group>.tp`` / ``<group>.sl`` (order ids of the API are uuids, without dots)."""
    if group_id:
        return group_id
    for suffix in (".tp", ".sl"):
        if order_id.endswith(suffix) and len(order_id) > len(suffix):
            return order_id[: -len(suffix)]
    return None


def _engine_details(event: AnyEngineEvent) -> dict[str, Any]:
    data = event.model_dump(mode="python")
    return {key: value for key, value in data.items() if key not in _ENVELOPE}


def from_engine_event(event: AnyEngineEvent) -> list[AuditEntry]:
    """The entries of one engine event (``book`` deltas give none)."""
    if isinstance(event, BookEvent):
        return []
    common = {"symbol": event.symbol, "engine_seq": event.seq, "epoch": event.epoch}
    if isinstance(event, TradeEvent):
        return _trade_entries(event, common)
    order_id, account_id = event.order_id, event.account_id  # every other engine event names one order
    group = _oco_group(order_id, getattr(event, "group_id", None))
    links: list[str] = [f"account:{account_id}"]
    if isinstance(event, VenueFillEvent):  # its ledger entry and obligation are kept under its event id
        links.append(f"trade:{event.event_id}")
    if group is not None:
        tp, sl = f"{group}.tp", f"{group}.sl"
        links += [f"oco:{group}", f"order:{sl if order_id == tp else tp}"]
    kind = event.type if event.type.endswith("_rejected") and event.type != "rejected" else f"order_{event.type}"
    details = {**common, **_engine_details(event)}
    entries = [
        AuditEntry("order", order_id, event.event_id, kind, event.ts, SOURCE_EXECUTIONS, "engine",
                   event.correlation_id, tuple(links), _details(details))
    ]  # fmt: skip
    if group is not None:
        entries.append(
            AuditEntry("oco", group, event.event_id, f"leg_{event.type}", event.ts, SOURCE_EXECUTIONS, "engine",
                       event.correlation_id, (f"order:{order_id}",), _details(details))
        )  # fmt: skip
    return entries


def _trade_entries(event: TradeEvent, common: dict[str, Any]) -> list[AuditEntry]:
    trade = {
        **common, "price": event.price, "quantity": event.quantity, "aggressor_side": event.aggressor_side,
        "maker_order_id": event.maker_order_id, "taker_order_id": event.taker_order_id,
        "maker_account_id": event.maker_account_id, "taker_account_id": event.taker_account_id,
    }  # fmt: skip
    trade_links = (
        f"order:{event.maker_order_id}", f"order:{event.taker_order_id}",
        f"account:{event.maker_account_id}", f"account:{event.taker_account_id}",
    )  # fmt: skip
    entries = [
        AuditEntry("trade", event.event_id, event.event_id, "trade", event.ts, SOURCE_EXECUTIONS, "engine",
                   event.correlation_id, trade_links, _details(trade))
    ]  # fmt: skip
    for liquidity, order_id, other, account_id in (
        ("maker", event.maker_order_id, event.taker_order_id, event.maker_account_id),
        ("taker", event.taker_order_id, event.maker_order_id, event.taker_account_id),
    ):
        details = {
            **trade, "liquidity": liquidity,
            "filled_quantity": getattr(event, f"{liquidity}_filled_quantity"),
            "filled_notional": getattr(event, f"{liquidity}_filled_notional"),
            "remaining_quantity": getattr(event, f"{liquidity}_remaining_quantity"),
        }  # fmt: skip
        links = (f"trade:{event.event_id}", f"order:{other}", f"account:{account_id}")
        entries.append(
            AuditEntry("order", order_id, event.event_id, "order_filled", event.ts, SOURCE_EXECUTIONS, "engine",
                       event.correlation_id, links, _details(details))
        )  # fmt: skip
    return entries


def engine_mark(event: AnyEngineEvent) -> Mark | None:
    """The engine names an event by its symbol and seq (``<symbol>-<seq>``): that is its mark."""
    return (f"e:{event.symbol}", event.seq) if event.event_id == engine_event_id(event.symbol, event.seq) else None


def from_engine_events(events: Iterable[AnyEngineEvent]) -> list[AuditEntry]:
    return [replace(entry, mark=engine_mark(event)) for event in events for entry in from_engine_event(event)]


# -- ledger and settlements (DynamoDB stream images, deserialized) ---------------------------

_FILL_ENTRY: Final = re.compile(r"^fill:(?P<event>.+):(?P<liquidity>maker|taker)$")
_SETTLE_ENTRY: Final = re.compile(r"^settle:(?P<batch>[^:]+)")
_ORDER_KEYS: Final = ("order_id", "maker_order_id", "taker_order_id")


def _legs_text(legs: Any) -> str:
    if not isinstance(legs, list):
        return ""
    parts = []
    for leg in legs:
        if isinstance(leg, Mapping):
            parts.append(f"{leg.get('book')}/{leg.get('account')}/{leg.get('asset')} {_s(leg.get('amount'))}")
    return "; ".join(parts)


def _order_links(item: Mapping[str, Any]) -> list[str]:
    return [f"order:{item[key]}" for key in _ORDER_KEYS if isinstance(item.get(key), str) and item[key]]


def from_ledger_change(
    change: str, stream_event_id: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None,
    approximate_ts: datetime,
) -> list[AuditEntry]:  # fmt: skip
    """A journal entry (``INSERT``) on its account and, for a fill, on its trade. Entries are never
    changed or removed; if one ever is, that is recorded as well (``ledger_entry_modified`` /
    ``ledger_entry_removed``)."""
    image = new if new is not None else old
    if image is None:
        raise UnreadableSource(f"ledger change {stream_event_id} has no image")
    account_id, entry_id = image.get("account_id"), image.get("entry_id")
    if not isinstance(account_id, str) or not isinstance(entry_id, str):
        raise UnreadableSource(f"ledger change {stream_event_id}: no account_id or entry_id")
    ts = _parse_ts(image["ts"], f"ledger entry {entry_id}") if image.get("ts") else approximate_ts
    details = _details({"entry_id": entry_id, "entry_kind": image.get("kind"), "memo": image.get("memo"),
                        "legs": _legs_text(image.get("legs"))})  # fmt: skip
    links = [f"account:{account_id}", *_order_links(image)]
    match = _FILL_ENTRY.match(entry_id)
    if match:
        links.append(f"trade:{match['event']}")
        details["liquidity"] = match["liquidity"]
    settled = _SETTLE_ENTRY.match(entry_id)
    if settled:
        links.append(f"settlement_batch:{account_id}:{settled['batch']}")
    if change == "INSERT":
        kind, event_id = "ledger_entry", f"ledger:{entry_id}"
    else:
        kind = "ledger_entry_modified" if change == "MODIFY" else "ledger_entry_removed"
        event_id = f"ledger:{stream_event_id}"
    entries = [AuditEntry("account", account_id, event_id, kind, ts, SOURCE_LEDGER, "portfolio", entry_id,
                          tuple(links), details)]  # fmt: skip
    if match:
        entries.append(AuditEntry("trade", match["event"], event_id, kind, ts, SOURCE_LEDGER, "portfolio", entry_id,
                                  tuple(link for link in links if not link.startswith("trade:")), details))  # fmt: skip
    return entries


def from_settlement_change(
    change: str, stream_event_id: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None,
    approximate_ts: datetime,
) -> list[AuditEntry]:  # fmt: skip
    """An obligation created or moving status (``pending`` -> ``settling`` -> ``settled``, or back
    when a failed run is compensated) on its trade and account; a settlement batch started,
    settled or failed on the batch. A write that changes neither status nor anything is none."""
    image = new if new is not None else old
    if image is None:
        raise UnreadableSource(f"settlement change {stream_event_id} has no image")
    account_id, item_id = image.get("account_id"), image.get("item_id")
    if not isinstance(account_id, str) or not isinstance(item_id, str):
        raise UnreadableSource(f"settlement change {stream_event_id}: no account_id or item_id")
    status = str(image.get("status", ""))
    old_status = str(old.get("status", "")) if old is not None else ""
    if change == "MODIFY" and status == old_status and new == old:
        return []
    event_id = f"settlements:{stream_event_id}"
    ts = approximate_ts
    what = "created" if change == "INSERT" else ("removed" if change == "REMOVE" else status or "changed")
    kind_of_item = image.get("kind")
    if kind_of_item == "obligation" or item_id.startswith("OBL#"):
        trade_event = image.get("event_id")
        batch = image.get("batch_id")
        details = _details({
            "item_id": item_id, "status": status, "previous_status": old_status, "symbol": image.get("symbol"),
            "liquidity": image.get("liquidity"), "cash": image.get("cash"), "quantity": image.get("quantity"),
            "trade_date": image.get("trade_date"), "settle_date": image.get("settle_date"), "batch_id": batch,
        })  # fmt: skip
        links = [f"account:{account_id}", *_order_links(image)]
        if batch:
            links.append(f"settlement_batch:{account_id}:{batch}")
        kind = f"obligation_{what}"
        entries = [AuditEntry("account", account_id, event_id, kind, ts, SOURCE_SETTLEMENTS, "settlement", item_id,
                              (*links, *([f"trade:{trade_event}"] if trade_event else [])), details)]  # fmt: skip
        if isinstance(trade_event, str) and trade_event:
            entries.append(AuditEntry("trade", trade_event, event_id, kind, ts, SOURCE_SETTLEMENTS, "settlement",
                                      item_id, tuple(links), details))  # fmt: skip
        return entries
    batch_id = item_id.removeprefix("BAT#")
    details = _details({
        "item_id": item_id, "status": status, "previous_status": old_status, "symbol": image.get("symbol"),
        "settle_date": image.get("settle_date"), "cash": image.get("cash"), "quantity": image.get("quantity"),
        "obligations": len(image.get("obligations") or []), "failed_step": image.get("failed_step"),
        "error": image.get("error"),
    })  # fmt: skip
    if image.get("created_at") and change == "INSERT":
        ts = _parse_ts(image["created_at"], f"settlement batch {item_id}")
    return [AuditEntry("settlement_batch", f"{account_id}:{batch_id}", event_id, f"settlement_{what}", ts,
                       SOURCE_SETTLEMENTS, "settlement", item_id, (f"account:{account_id}",), details)]  # fmt: skip


def record_to_wire(item: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API answers it."""
    return {
        "aggregate_type": str(item["aggregate_type"]),
        "aggregate_id": str(item["aggregate_id"]),
        "seq": int(item["seq"]),
        "event_id": str(item["event_id"]),
        "kind": str(item["kind"]),
        "ts": str(item["ts"]),
        "recorded_at": str(item["recorded_at"]),
        "source": str(item["source"]),
        "actor": str(item.get("actor", "")),
        "correlation_id": item.get("correlation_id"),
        "links": [str(link) for link in item.get("links", [])],
        "details": {str(k): str(v) for k, v in (item.get("details") or {}).items()},
    }
