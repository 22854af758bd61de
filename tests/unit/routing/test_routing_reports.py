"""The Rule 606(a)(1) report (JSON, and XML validated against the SEC's oh-20191231.xsd shipped in
the package) and the Rule 605-style execution quality statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lxml import etree
from nexus_common.errors import ValidationFailed
from nexus_routing.execution import SmartOrderRouter
from nexus_routing.model import Side, Strategy
from nexus_routing.nbbo import compute_nbbo
from nexus_routing.reports import (
    SCHEMA_PATH,
    ExecutedFill,
    ExecutionRecord,
    OrderClass,
    RoutedOrder,
    VenueRoute,
    classify_order,
    execution_quality,
    execution_record,
    parse_quarter,
    routed_order,
    rule606_report,
    rule606_xml,
    validate_606,
)
from nexus_routing.router import RouteRequest
from routing_world import SYMBOL, Clock, book, three_venues, venue

D = Decimal
GENERATED = datetime(2027, 1, 4, 12, 0, 0, 700_000, tzinfo=UTC)


def at(month: int, day: int = 5) -> datetime:
    return datetime(2026, month, day, 15, 0, tzinfo=UTC)


def order(i: int, month: int, sp500: bool, cls: OrderClass, *routes: VenueRoute, directed: bool = False) -> RoutedOrder:
    return RoutedOrder(f"o{i}", at(month), "MSFT" if sp500 else "ZZZZ", sp500, cls, directed, routes)


ALPHA = "Alpha"
BETA = "Beta"


def alpha(shares: int, net: str) -> VenueRoute:
    return VenueRoute(ALPHA, "XALP", D(shares), D(net))


def beta(shares: int, net: str) -> VenueRoute:
    return VenueRoute(BETA, "XBET", D(shares), D(net))


ORDERS = [
    order(1, 10, True, OrderClass.MARKET, alpha(100, "-0.30")),
    order(2, 10, True, OrderClass.MARKET, alpha(200, "-0.60"), beta(100, "-0.10")),
    order(3, 10, True, OrderClass.NON_MARKETABLE_LIMIT, beta(300, "0.30")),
    order(4, 10, True, OrderClass.MARKETABLE_LIMIT, beta(50, "-0.05"), directed=True),
    order(5, 11, False, OrderClass.OTHER, alpha(10, "0")),
    order(6, 9, True, OrderClass.MARKET, alpha(100, "-0.30")),  # the quarter before
]


# -- 606 -------------------------------------------------------------------------------------


def test_the_606_report_has_the_months_sections_order_types_venues_and_net_payments() -> None:
    # GIVEN orders of October (S&P 500), November (other stocks) and September
    report = rule606_report(ORDERS, "2026Q4", "NexusTrade   Securities LLC", GENERATED)
    # THEN the quarter has its three months, the timestamp rounded half up to the second
    assert (report["year"], report["qtr"], report["bd"]) == (2026, 4, "NexusTrade Securities LLC")
    assert report["timestamp"] == "2027-01-04T12:00:01Z"
    assert [m["mon"] for m in report["months"]] == [10, 11, 12]
    october = report["months"][0]["sp500"]
    # AND 3 of the 4 October S&P 500 orders were non-directed: 2 market, 1 non-marketable limit
    assert (october["ndoPct"], october["ndoMarketPct"], october["ndoMarketableLimitPct"],
            october["ndoNonmarketableLimitPct"], october["ndoOtherPct"]) == ("75.00", "66.67", "0.00", "33.33", "0.00")
    # AND the venues by non-directed orders received: Beta 2 (orders 2, 3), Alpha 2 (1, 2): by name
    venues = {v["name"]: v for v in october["rVenues"]}
    assert [v["name"] for v in october["rVenues"]] == [ALPHA, BETA]
    assert venues[ALPHA]["orderPct"] == "66.67" and venues[ALPHA]["marketPct"] == "100.00"
    assert (venues[ALPHA]["orders"], venues[ALPHA]["shares"], venues[BETA]["shares"]) == (2, "300", "400")
    assert venues[ALPHA]["nonMarketableLimitPct"] == "0.00" and venues[ALPHA]["marketableLimitPct"] == ""
    # net payment for market orders at Alpha: -0.90 USD on 300 shares = -30 cents per 100 shares
    assert venues[ALPHA]["netPmtPaidRecvMarketOrdersUsd"] == "-0.90"
    assert venues[ALPHA]["netPmtPaidRecvMarketOrdersCph"] == "-30.0000"
    assert venues[BETA]["netPmtPaidRecvNonMarketableLimitOrdersUsd"] == "0.30"
    assert venues[BETA]["netPmtPaidRecvNonMarketableLimitOrdersCph"] == "10.0000"
    assert venues[BETA]["netPmtPaidRecvMarketOrdersCph"] == "-10.0000"
    # AND November's one order is in the other stocks section; December is empty
    november = report["months"][1]
    assert november["other_stocks"]["ndoOtherPct"] == "100.00" and november["sp500"]["ndoPct"] == ""
    assert report["months"][2]["sp500"]["rVenues"] == []


def test_the_606_xml_validates_against_the_secs_schema() -> None:
    # GIVEN the report of the quarter
    xml = rule606_xml(rule606_report(ORDERS, "2026Q4", "NexusTrade Securities LLC", GENERATED))
    # THEN it validates against oh-20191231.xsd with lxml
    assert validate_606(xml) == []
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    document = etree.fromstring(xml)
    assert schema.validate(document.getroottree())
    assert document.tag == "heldOrderRoutingPublicReport"
    assert document.findtext("rMonthly/rSP500/rVenues/rVenue/mic") == "XALP"


def test_an_empty_quarter_still_validates() -> None:
    xml = rule606_xml(rule606_report([], "2026Q1", "NexusTrade Securities LLC", GENERATED))
    assert validate_606(xml) == []


def test_the_schema_refuses_what_the_sec_does_not_accept() -> None:
    # GIVEN a valid report WHEN a percentage is written with one decimal place
    xml = rule606_xml(rule606_report(ORDERS, "2026Q4", "NexusTrade Securities LLC", GENERATED))
    broken = xml.replace(b"<ndoPct>75.00</ndoPct>", b"<ndoPct>75.0</ndoPct>", 1)
    assert broken != xml
    # THEN validation names the problem
    errors = validate_606(broken)
    assert errors and "ndoPct" in errors[0]
    assert validate_606(xml.replace(b"<qtr>4</qtr>", b"<qtr>5</qtr>"))


def test_the_schema_shipped_is_the_secs_file() -> None:
    text = SCHEMA_PATH.read_text(encoding="utf-8")
    assert "created by staff of the U.S. Securities and Exchange Commission" in text
    assert 'xs:element name="heldOrderRoutingPublicReport"' in text
    assert (SCHEMA_PATH.parent / "SOURCE.md").read_text(encoding="utf-8").count("github.com/sec-gov/oh") == 1


@pytest.mark.parametrize("quarter", ["2026Q5", "2026q4", "26Q4", "1999Q1", "2100Q1", "", "2026Q4 "])
def test_a_bad_quarter_is_refused(quarter: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_quarter(quarter)
    assert caught.value.field == "quarter"


def test_bad_report_inputs_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        rule606_report([], "2026Q4", "x" * 81, GENERATED)
    assert caught.value.field == "bd"
    with pytest.raises(ValidationFailed) as caught:
        rule606_report([], "2026Q4", "NexusTrade", GENERATED.replace(tzinfo=None))
    assert caught.value.field == "generated_at"
    naive = RoutedOrder("o1", datetime(2026, 10, 5), "MSFT", True, OrderClass.MARKET, False, ())  # noqa: DTZ001
    with pytest.raises(ValidationFailed) as caught:
        rule606_report([naive], "2026Q4", "NexusTrade", GENERATED)
    assert caught.value.field == "received_at"


def test_orders_are_classified_at_arrival_against_the_nbbo() -> None:
    nbbo = compute_nbbo(SYMBOL, {"A": book("A", bids="9.99x100", asks="10.01x100")}, {"A": venue("A", "XAAA")})
    assert classify_order("market", Side.BUY, None, nbbo) is OrderClass.MARKET
    assert classify_order("limit", Side.BUY, D("10.01"), nbbo) is OrderClass.MARKETABLE_LIMIT
    assert classify_order("limit", Side.BUY, D("10.00"), nbbo) is OrderClass.NON_MARKETABLE_LIMIT
    assert classify_order("limit", Side.SELL, D("9.99"), nbbo) is OrderClass.MARKETABLE_LIMIT
    assert classify_order("stop", Side.SELL, None, nbbo) is OrderClass.OTHER


def test_routed_parents_make_a_606_report_listing_their_venues() -> None:
    # GIVEN two SMART parents routed across the three simulated venues
    clock = Clock(at(11))
    sor = SmartOrderRouter(three_venues(clock), clock)
    parents = [
        sor.route(RouteRequest(f"P{i}", SYMBOL, Side.BUY, D(250), Strategy.SMART, limit_price=D("300.05")))
        for i in (1, 2)
    ]
    mics = {name: v.config.mic for name, v in sor.venues.items()}
    records = [routed_order(p, at(11), True, mics) for p in parents]
    # WHEN the quarter's report is made
    report = rule606_report(records, "2026Q4", "NexusTrade Securities LLC", GENERATED)
    # THEN November lists the venues the orders went to, as marketable limit orders, net of fees
    november = report["months"][1]["sp500"]
    assert november["ndoMarketableLimitPct"] == "100.00"
    listed = {v["mic"] for v in november["rVenues"]}
    assert listed == {mics[c.venue] for p in parents for c in p.children.values()}
    assert validate_606(rule606_xml(report)) == []


# -- 605 -------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def record(i: int, side: Side, qty: int, fills: list[tuple[int, str, int]], bid: str = "10.00",
           ask: str = "10.02") -> ExecutionRecord:
    return ExecutionRecord(
        f"e{i}", "MSFT", side, D(qty), T0, D(bid), D(ask),
        tuple(ExecutedFill(T0 + timedelta(milliseconds=ms), D(price), D(q)) for ms, price, q in fills),
    )


def test_execution_quality_by_size_bucket() -> None:
    # GIVEN a 200-share buy filled 100 at 10.01 (improved by 0.01) after 5 ms and 100 at 10.02 (at
    # the quote) after 15 ms, and a 300-share sell filled 100 at 9.99 (outside the 10.00 bid)
    records = [
        record(1, Side.BUY, 200, [(5, "10.01", 100), (15, "10.02", 100)]),
        record(2, Side.SELL, 300, [(20, "9.99", 100)]),
        record(3, Side.BUY, 50, [(1, "10.00", 50)]),
    ]
    stats = execution_quality(records, T0, T0 + timedelta(hours=1))
    buckets = {b["bucket"]: b for b in stats["buckets"]}
    mid = buckets["100-499"]
    # THEN fill rate 300 of 500 shares
    assert (mid["orders"], mid["shares"], mid["executed_shares"], mid["fill_rate_pct"]) == (2, "500", "300", "60")
    # AND improvement, at and outside the quote
    assert (mid["price_improved_shares"], mid["at_quote_shares"], mid["outside_quote_shares"]) == ("100", "100", "100")
    assert mid["avg_price_improvement"] == "0.01"
    # effective spread 2*|p - 10.01|: 0, 0.02, 0.04 -> 0.02 a share; quoted 0.02
    assert mid["avg_effective_spread"] == "0.02" and mid["avg_quoted_spread"] == "0.02"
    assert mid["effective_over_quoted_pct"] == "100"
    # time to execution share-weighted: (5 + 15 + 20) / 3 ms
    assert mid["avg_time_to_execution_ms"] == "13.333"
    small = buckets["<100"]
    assert (small["fill_rate_pct"], small["avg_price_improvement"], small["avg_effective_spread"]) == (
        "100", "0.02", "0.02")
    assert buckets["10000+"]["fill_rate_pct"] is None and buckets["10000+"]["orders"] == 0


def test_execution_quality_filters_by_time_and_symbol_and_refuses_bad_input() -> None:
    records = [record(1, Side.BUY, 200, [(5, "10.01", 100)])]
    assert execution_quality(records, T0 + timedelta(seconds=1), T0 + timedelta(hours=1))["buckets"][1]["orders"] == 0
    assert execution_quality(records, T0, T0 + timedelta(hours=1), symbol="AAPL")["buckets"][1]["orders"] == 0
    with pytest.raises(ValidationFailed) as caught:
        execution_quality(records, T0, T0)
    assert caught.value.field == "from"
    with pytest.raises(ValidationFailed):
        execution_quality(records, T0.replace(tzinfo=None), T0 + timedelta(hours=1))
    with pytest.raises(ValidationFailed):
        execution_quality([record(2, Side.BUY, 10, [(1, "10.01", 20)])], T0, T0 + timedelta(hours=1))
    with pytest.raises(ValidationFailed):
        execution_quality([record(3, Side.BUY, 10, [], bid="0", ask="10.00")], T0, T0 + timedelta(hours=1))
    # a market crossed across venues at arrival: no quote to measure by, the order is not covered
    crossed = execution_quality([record(3, Side.BUY, 10, [], bid="10.05", ask="10.00")], T0, T0 + timedelta(hours=1))
    assert all(b["orders"] == 0 for b in crossed["buckets"])


def test_a_routed_parent_gives_its_605_record() -> None:
    clock = Clock(T0)
    sor = SmartOrderRouter(three_venues(clock), clock)
    parent = sor.route(RouteRequest("P1", SYMBOL, Side.BUY, D(250), Strategy.SMART, limit_price=D("300.05")))
    fills = [ExecutedFill(T0, c.notional / c.filled, c.filled) for c in parent.children.values() if c.filled]
    rec = execution_record(parent, T0, fills)
    assert (rec.nbbo_bid, rec.nbbo_ask, sum(f.quantity for f in rec.fills)) == (D("299.99"), D("300.00"), D(250))
    stats = execution_quality([rec], T0, T0 + timedelta(minutes=1), symbol=SYMBOL)
    assert stats["buckets"][1]["fill_rate_pct"] == "100"
