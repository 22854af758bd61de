"""Best-execution reports: SEC Rule 606(a)(1) (where held orders were routed) and Rule 605-style
execution quality statistics. Pure: records in, documents out; the clock is passed in.

Rule 606(a)(1), one calendar quarter, per month (months in the exchange's zone,
America/New_York), for the S&P 500 stocks and the other NMS stocks sections:

* ``ndoPct``: non-directed orders as a percentage of all orders of the section;
* ``ndoMarketPct`` ... ``ndoOtherPct``: the order types as percentages of the non-directed orders
  (market, marketable limit, non-marketable limit, other);
* the ten venues that received the most non-directed orders (ties by name): ``orderPct`` is the
  venue's share of the section's non-directed orders; ``marketPct`` etc. the venue's share of
  the section's non-directed orders of that type; net payment per order type in USD and in cents
  per hundred shares (cph = USD * 10,000 / shares routed). Net payment is payment for order flow
  and rebates received minus fees paid: positive, the broker received; negative, it paid.

An order routed to several venues counts once for each. Percentages are rounded half-even to 2
places, USD to 2, cph to 4; a percentage of nothing (no order in the denominator) is the
schema's "not meaningful" empty value. The XML follows the SEC's published schema
``schemas/oh-20191231.xsd`` (shipped beside this module, see ``schemas/SOURCE.md``) and is
validated against it by ``validate_606``; the JSON carries the same figures as strings.

Rule 605-style statistics, per order size bucket (``stats.SIZE_BUCKETS``), for orders received in
``[start, end)`` (optionally one symbol), against the NBBO at each order's arrival: orders,
shares, shares executed and the fill rate; shares executed with price improvement, at the quote
and outside it, the average improvement per improved share; share-weighted average effective
spread (``2 * |price - midpoint|``) and quoted spread (``ask - bid``); the average time to
execution in milliseconds (share-weighted, from arrival to each fill). Per-share figures are
rounded half-even to 4 places, percentages to 2, milliseconds to 3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from lxml import etree
from nexus_common.errors import ValidationFailed
from nexus_common.money import fmt

from nexus_routing.model import ZERO, OrderType, Side
from nexus_routing.nbbo import Nbbo
from nexus_routing.parent import ParentOrder
from nexus_routing.stats import SIZE_BUCKETS, size_bucket

SCHEMA_PATH: Final = Path(__file__).parent / "schemas" / "oh-20191231.xsd"
SCHEMA_VERSION: Final = "1.2"
MARKET_ZONE: Final = ZoneInfo("America/New_York")
PCT: Final = Decimal("0.01")
USD: Final = Decimal("0.01")
CPH: Final = Decimal("0.0001")
PER_SHARE: Final = Decimal("0.0001")
MS: Final = Decimal("0.001")
HUNDRED: Final = Decimal(100)
MAX_VENUES_606: Final = 10
MAX_RECORDS: Final = 5_000_000
_QUARTER: Final = re.compile(r"(20[0-9]{2})Q([1-4])", re.ASCII)
DEFAULT_ASPECTS: Final = (
    "NexusTrade receives no payment for order flow and has no profit-sharing relationship with this venue; "
    "it pays the venue's published access fees and receives its published rebates."
)


class OrderClass(StrEnum):
    MARKET = "market"
    MARKETABLE_LIMIT = "marketable_limit"
    NON_MARKETABLE_LIMIT = "non_marketable_limit"
    OTHER = "other"


CLASSES: Final = (OrderClass.MARKET, OrderClass.MARKETABLE_LIMIT, OrderClass.NON_MARKETABLE_LIMIT, OrderClass.OTHER)


def classify_order(order_type: str, side: Side, limit_price: Decimal | None, nbbo: Nbbo | None) -> OrderClass:
    """The 606 order type of an order at its arrival: a limit order is marketable when its price
    reaches the NBBO's far side (a buy at or above the offer)."""
    if order_type == OrderType.MARKET:
        return OrderClass.MARKET
    if order_type != OrderType.LIMIT or limit_price is None:
        return OrderClass.OTHER
    far = None if nbbo is None else nbbo.far(side)
    if far is not None and (limit_price >= far if side is Side.BUY else limit_price <= far):
        return OrderClass.MARKETABLE_LIMIT
    return OrderClass.NON_MARKETABLE_LIMIT


@dataclass(frozen=True, slots=True)
class VenueRoute:
    """Where (part of) an order went: shares routed there and the net payment for them (USD,
    exact; positive received, negative paid)."""

    venue: str
    mic: str | None
    shares: Decimal
    net_payment: Decimal


@dataclass(frozen=True, slots=True)
class RoutedOrder:
    """One held order for the 606 report."""

    order_id: str
    received_at: datetime
    symbol: str
    sp500: bool
    order_class: OrderClass
    directed: bool
    routes: tuple[VenueRoute, ...]


def routed_order(parent: ParentOrder, received_at: datetime, sp500: bool, mics: Mapping[str, str]) -> RoutedOrder:
    """The 606 record of a routed parent: its order type at arrival (from its first decision's
    NBBO), and per venue the shares sent there and the net of fees and rebates of its fills."""
    request = parent.request
    nbbo = parent.decisions[0].nbbo if parent.decisions else None
    per_venue: dict[str, list[Decimal]] = {}
    for child in parent.children.values():
        acc = per_venue.setdefault(child.venue, [ZERO, ZERO])
        acc[0] += child.quantity
        acc[1] -= child.fees
    routes = tuple(VenueRoute(v, mics.get(v), acc[0], acc[1]) for v, acc in sorted(per_venue.items()))
    return RoutedOrder(
        parent.order_id, received_at, request.symbol, sp500,
        classify_order(request.order_type, request.side, request.limit_price, nbbo), False, routes,
    )


def parse_quarter(quarter: str) -> tuple[int, int]:
    """``"2026Q4"`` -> ``(2026, 4)``; ``ValidationFailed`` naming ``quarter`` otherwise."""
    match = _QUARTER.fullmatch(quarter) if type(quarter) is str else None
    if match is None:
        raise ValidationFailed("invalid_quarter", "quarter is YYYYQn, e.g. 2026Q4 (years 2000-2099)", "quarter")
    return int(match.group(1)), int(match.group(2))


def _pct(part: int, whole: int) -> str:
    if not whole:
        return ""
    return str((Decimal(part) * HUNDRED / whole).quantize(PCT, ROUND_HALF_EVEN))


def _usd(value: Decimal) -> str:
    return str(value.quantize(USD, ROUND_HALF_EVEN) + 0)


def _cph(value: Decimal, shares: Decimal) -> str:
    if not shares:
        return ""
    return str((value * 10_000 / shares).quantize(CPH, ROUND_HALF_EVEN) + 0)


def _section(orders: list[RoutedOrder], aspects: Mapping[str, str]) -> dict[str, Any]:
    total = len(orders)
    nondirected = [o for o in orders if not o.directed]
    nd = len(nondirected)
    class_totals = {c: sum(1 for o in nondirected if o.order_class is c) for c in CLASSES}
    venues: dict[str, dict[str, Any]] = {}
    for order in nondirected:
        for route in order.routes:
            v = venues.setdefault(route.venue, {
                "mic": route.mic, "orders": 0,
                "by_class": {c: [0, ZERO, ZERO] for c in CLASSES},  # orders, net USD, shares
            })
            v["orders"] += 1
            acc = v["by_class"][order.order_class]
            acc[0] += 1
            acc[1] += route.net_payment
            acc[2] += route.shares
    ranked = sorted(venues, key=lambda n: (-venues[n]["orders"], n))[:MAX_VENUES_606]
    rows = []
    for name in ranked:
        v = venues[name]
        by = v["by_class"]
        row: dict[str, Any] = {"name": name, "mic": v["mic"], "orderPct": _pct(v["orders"], nd)}
        # JSON only (the schema has no element for them): the venue's non-directed orders and shares
        row["orders"] = v["orders"]
        row["shares"] = fmt(sum((by[c][2] for c in CLASSES), ZERO))
        pct_keys = ("marketPct", "marketableLimitPct", "nonMarketableLimitPct", "otherPct")
        for c, key in zip(CLASSES, pct_keys, strict=True):
            row[key] = _pct(by[c][0], class_totals[c])
        for c, key in zip(CLASSES, ("MarketOrders", "MarketableLimitOrders", "NonMarketableLimitOrders", "OtherOrders"),
                          strict=True):
            row[f"netPmtPaidRecv{key}Usd"] = _usd(by[c][1])
            row[f"netPmtPaidRecv{key}Cph"] = _cph(by[c][1], by[c][2])
        row["materialAspects"] = aspects.get(name, DEFAULT_ASPECTS)
        rows.append(row)
    return {
        "ndoPct": _pct(nd, total),
        "ndoMarketPct": _pct(class_totals[OrderClass.MARKET], nd),
        "ndoMarketableLimitPct": _pct(class_totals[OrderClass.MARKETABLE_LIMIT], nd),
        "ndoNonmarketableLimitPct": _pct(class_totals[OrderClass.NON_MARKETABLE_LIMIT], nd),
        "ndoOtherPct": _pct(class_totals[OrderClass.OTHER], nd),
        "orders": total,
        "rVenues": rows,
    }


def rule606_report(
    orders: Iterable[RoutedOrder],
    quarter: str,
    broker_dealer: str,
    generated_at: datetime,
    material_aspects: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The 606(a)(1) report of ``quarter`` as JSON-ready data (the XML is ``rule606_xml`` of it)."""
    year, qtr = parse_quarter(quarter)
    if generated_at.tzinfo is None:
        raise ValidationFailed("invalid_clock", "generated_at must be tz-aware", "generated_at")
    name = " ".join(broker_dealer.split()) if type(broker_dealer) is str else ""
    if not 1 <= len(name) <= 80:
        raise ValidationFailed("invalid_broker_dealer", "the broker-dealer name is 1 to 80 characters", "bd")
    aspects = dict(material_aspects or {})
    months = [3 * (qtr - 1) + i for i in (1, 2, 3)]
    buckets: dict[tuple[int, bool], list[RoutedOrder]] = {(m, sp): [] for m in months for sp in (True, False)}
    count = 0
    for order in orders:
        count += 1
        if count > MAX_RECORDS:
            raise ValidationFailed("too_many_orders", f"at most {MAX_RECORDS} orders per report", "orders")
        if order.received_at.tzinfo is None:
            raise ValidationFailed("invalid_time", f"order {order.order_id} has a naive time", "received_at")
        local = order.received_at.astimezone(MARKET_ZONE)
        if local.year == year and local.month in months:
            buckets[(local.month, order.sp500)].append(order)
    stamp = generated_at.astimezone(UTC)
    if stamp.microsecond >= 500_000:
        stamp += timedelta(seconds=1)
    return {
        "version": SCHEMA_VERSION,
        "bd": name,
        "year": year,
        "qtr": qtr,
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "months": [
            {
                "year": year,
                "mon": month,
                "sp500": _section(buckets[(month, True)], aspects),
                "other_stocks": _section(buckets[(month, False)], aspects),
            }
            for month in months
        ],
    }


_VENUE_ORDER: Final = (
    "orderPct", "marketPct", "marketableLimitPct", "nonMarketableLimitPct", "otherPct",
    "netPmtPaidRecvMarketOrdersUsd", "netPmtPaidRecvMarketOrdersCph",
    "netPmtPaidRecvMarketableLimitOrdersUsd", "netPmtPaidRecvMarketableLimitOrdersCph",
    "netPmtPaidRecvNonMarketableLimitOrdersUsd", "netPmtPaidRecvNonMarketableLimitOrdersCph",
    "netPmtPaidRecvOtherOrdersUsd", "netPmtPaidRecvOtherOrdersCph", "materialAspects",
)
_SECTION_ORDER: Final = ("ndoPct", "ndoMarketPct", "ndoMarketableLimitPct", "ndoNonmarketableLimitPct", "ndoOtherPct")


def rule606_xml(report: Mapping[str, Any]) -> bytes:
    """The report of ``rule606_report`` as XML in the SEC's schema (``heldOrderRoutingPublicReport``)."""
    root = etree.Element("heldOrderRoutingPublicReport")

    def add(parent: Any, tag: str, text: object) -> Any:
        element = etree.SubElement(parent, tag)
        element.text = str(text)
        return element

    for tag in ("version", "bd", "year", "qtr", "timestamp"):
        add(root, tag, report[tag])
    for month in report["months"]:
        monthly = etree.SubElement(root, "rMonthly")
        add(monthly, "year", month["year"])
        add(monthly, "mon", month["mon"])
        for key, tag in (("sp500", "rSP500"), ("other_stocks", "rOtherStocks")):
            section = month[key]
            element = etree.SubElement(monthly, tag)
            for field in _SECTION_ORDER:
                add(element, field, section[field])
            venues = etree.SubElement(element, "rVenues")
            for row in section["rVenues"]:
                venue = etree.SubElement(venues, "rVenue")
                add(venue, "name", row["name"])
                if row["mic"]:
                    add(venue, "mic", row["mic"])
                for field in _VENUE_ORDER:
                    add(venue, field, row[field])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def validate_606(xml: bytes) -> list[str]:
    """The schema errors of a 606 XML document (empty: it validates against oh-20191231.xsd)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    document = etree.fromstring(xml, parser).getroottree()
    schema = _schema()
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


# -- Rule 605-style execution quality ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutedFill:
    ts: datetime
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One covered order: its size, arrival and the NBBO then, and its fills."""

    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    received_at: datetime
    nbbo_bid: Decimal
    nbbo_ask: Decimal
    fills: tuple[ExecutedFill, ...]


def execution_record(parent: ParentOrder, received_at: datetime, fills: Iterable[ExecutedFill]) -> ExecutionRecord:
    """The 605 record of a routed parent, with the NBBO of its first decision as the NBBO at
    arrival. ``ValidationFailed`` when that NBBO has no bid or no offer (not a covered order)."""
    if not parent.decisions:
        raise ValidationFailed("not_routed", f"{parent.order_id} has no routing decision", "order_id")
    nbbo = parent.decisions[0].nbbo
    if nbbo.bid is None or nbbo.ask is None:
        raise ValidationFailed("no_nbbo", f"no two-sided NBBO at the arrival of {parent.order_id}", "nbbo")
    request = parent.request
    return ExecutionRecord(parent.order_id, request.symbol, request.side, request.quantity, received_at,
                           nbbo.bid, nbbo.ask, tuple(fills))


def _q(value: Decimal, exp: Decimal) -> str:
    text: str = fmt(value.quantize(exp, ROUND_HALF_EVEN))
    return text


def execution_quality(
    records: Iterable[ExecutionRecord], start: datetime, end: datetime, symbol: str | None = None
) -> dict[str, Any]:
    """Rule 605-style statistics (see the module doc) as JSON-ready data."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("invalid_time", "from and to must carry a time zone", "from")
    if start >= end:
        raise ValidationFailed("invalid_range", "from must be before to", "from")
    acc: dict[str, dict[str, Any]] = {
        name: {
            "orders": 0, "shares": ZERO, "executed": ZERO, "improved": ZERO, "at_quote": ZERO, "outside": ZERO,
            "improvement": ZERO, "effective": ZERO, "quoted": ZERO, "time_us": ZERO,
        }
        for name, _, _ in SIZE_BUCKETS
    }
    count = 0
    for record in records:
        count += 1
        if count > MAX_RECORDS:
            raise ValidationFailed("too_many_orders", f"at most {MAX_RECORDS} orders", "records")
        if record.received_at.tzinfo is None:
            raise ValidationFailed("invalid_time", f"order {record.order_id} has a naive time", "received_at")
        if not start <= record.received_at < end or (symbol is not None and record.symbol != symbol):
            continue
        if record.quantity <= 0 or record.nbbo_bid <= 0:
            raise ValidationFailed("invalid_record", f"order {record.order_id}: bad size or NBBO", "records")
        if record.nbbo_ask < record.nbbo_bid:
            continue  # the venues' quotes crossed at its arrival: no quote to measure it by, not a covered order
        a = acc[size_bucket(record.quantity)]
        a["orders"] += 1
        a["shares"] += record.quantity
        mid = (record.nbbo_bid + record.nbbo_ask) / 2
        quoted = record.nbbo_ask - record.nbbo_bid
        buy = record.side is Side.BUY
        far = record.nbbo_ask if buy else record.nbbo_bid
        executed = ZERO
        for fill in record.fills:
            qty = fill.quantity
            executed += qty
            better = far - fill.price if buy else fill.price - far
            if better > 0:
                a["improved"] += qty
                a["improvement"] += better * qty
            elif better == 0:
                a["at_quote"] += qty
            else:
                a["outside"] += qty
            a["effective"] += 2 * abs(fill.price - mid) * qty
            a["quoted"] += quoted * qty
            micros = (fill.ts - record.received_at) // timedelta(microseconds=1)
            a["time_us"] += Decimal(max(0, micros)) * qty
        if executed > record.quantity:
            raise ValidationFailed("invalid_record", f"order {record.order_id} executed more than its size", "records")
        a["executed"] += executed
    buckets = []
    for name, _, _ in SIZE_BUCKETS:
        a = acc[name]
        ex = a["executed"]
        buckets.append({
            "bucket": name,
            "orders": a["orders"],
            "shares": fmt(a["shares"]),
            "executed_shares": fmt(ex),
            "fill_rate_pct": _q(ex * HUNDRED / a["shares"], PCT) if a["shares"] else None,
            "price_improved_shares": fmt(a["improved"]),
            "at_quote_shares": fmt(a["at_quote"]),
            "outside_quote_shares": fmt(a["outside"]),
            "avg_price_improvement": _q(a["improvement"] / a["improved"], PER_SHARE) if a["improved"] else None,
            "avg_effective_spread": _q(a["effective"] / ex, PER_SHARE) if ex else None,
            "avg_quoted_spread": _q(a["quoted"] / ex, PER_SHARE) if ex else None,
            "effective_over_quoted_pct": _q(a["effective"] * HUNDRED / a["quoted"], PCT) if a["quoted"] else None,
            "avg_time_to_execution_ms": _q(a["time_us"] / ex / 1000, MS) if ex else None,
        })
    return {
        "from": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": symbol,
        "buckets": buckets,
    }
