"""The routing service on its real tables (moto, built from the template) and a real Redis: the
venues table, simulated venues saved and reloaded between calls, a SMART order routed across
three quoted venues (decisions stored before the children, reports published), the statistics
consumer (once per report), the decisions route (owner or compliance), the 606 report (JSON and
XML valid against the SEC schema), 605-style statistics, and bad input answered 4xx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import rest_event
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from routing_world import Clock

D = Decimal
NOW = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
SPECS = [  # name, mic, taker fee, maker rebate, bid, ask
    ("Alpha", "XALP", "0.003", "0.002", "299.99", "300.00"),
    ("Beta", "XBET", "0.001", "0.001", "299.98", "300.00"),
    ("Gamma", "XGAM", "-0.001", "-0.0005", "299.99", "300.01"),
]


def read_stream(aws: Any, logical_id: str) -> list[dict[str, Any]]:
    client: Any = aws.client("kinesis")
    name = aws.stream_name(logical_id)
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        out.extend(json.loads(r["Data"]) for r in client.get_records(ShardIterator=it, Limit=1000)["Records"])
    return out


@pytest.fixture
def world(aws: Any, redis_db: Any) -> Any:  # noqa: F811 - fixture
    """GIVEN the demo instrument MSFT, an internal venue and three simulated venues, each quoted
    by a market maker (100 shares a level, three levels a side)."""
    from nexus_common.instrument_store import DynamoInstruments
    from nexus_common.instruments import Instrument
    from nexus_routing.model import ChildOrder, Side
    from nexus_routing.repo import (
        DynamoDecisions,
        DynamoInternalBook,
        DynamoVenues,
        DynamoVenueStats,
        KinesisPublisher,
        RedisVenueBooks,
    )
    from nexus_routing.service import RoutingService
    from nexus_routing.venues import Venue

    aws.use_function_env("RoutingApiFunction")
    instruments = DynamoInstruments(aws.table_name("InstrumentsTable"))
    instruments.put_many([Instrument(symbol="MSFT", tick_size=D("0.01"), lot_size=D("1"))])
    venues = DynamoVenues(aws.table_name("VenuesTable"))
    venues.add(Venue(name="NexusTrade", mic="NXTR", kind="internal"))
    configs = []
    for i, (name, mic, taker, rebate, _, _) in enumerate(SPECS):
        config = Venue(name=name, mic=mic, kind="simulated", fees={"taker_fee": taker, "maker_rebate": rebate},
                       latency={"base_us": 300 + 100 * i, "seed": 7})
        venues.add(config)
        configs.append(config)
    clock = Clock(NOW)
    prefix = aws.env_for("RoutingApiFunction")["VENUE_STATE_PREFIX"]
    books = RedisVenueBooks(redis_db, prefix, lambda: {i.symbol: i for i in instruments.list_all()}, clock)
    with books.open(configs, account="mm") as live:
        for name, _, _, _, bid, ask in SPECS:
            for k in range(3):
                for side, price in ((Side.SELL, D(ask) + D("0.01") * k), (Side.BUY, D(bid) - D("0.01") * k)):
                    live[name].submit(ChildOrder(f"{name}-mm-{side.value}-{k}", "MSFT", side, D(100), price, "gtc"))
    service = RoutingService(
        venues=venues, internal_book=DynamoInternalBook(aws.table_name("BookLevelsTable")), simulated=books,
        decisions=DynamoDecisions(aws.table_name("RoutingDecisionsTable")),
        stats=DynamoVenueStats(aws.table_name("VenueStatsTable")), instruments=instruments, clock=clock,
        broker_dealer="NexusTrade Securities LLC",
        decisions_stream=KinesisPublisher(aws.stream_name("RoutingDecisionsStream")),
        reports_stream=KinesisPublisher(aws.stream_name("VenueReportsStream")),
    )
    return service


def smart_buy(order_id: str, quantity: int, limit: str = "300.02") -> Any:
    from nexus_routing.model import Side, Strategy
    from nexus_routing.router import RouteRequest

    return RouteRequest(order_id=order_id, symbol="MSFT", side=Side.BUY, quantity=D(quantity),
                        strategy=Strategy.SMART, limit_price=D(limit))


def api_request(app: Any, resource: str, *, params: dict[str, str] | None = None,
                query: dict[str, str] | None = None, roles: str = "trader", accounts: str = "acc_1",
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    event = rest_event("GET", resource, path_params=params, query=query, headers=headers,
                       account_id=accounts.split(",")[0])
    event["requestContext"]["authorizer"].update(user_id="usr_1", accounts=accounts, scopes="read,trade", roles=roles)
    response = app(event, None)
    body = response["body"]
    if response.get("headers", {}).get("Content-Type") == "application/xml":
        return response["statusCode"], body
    return response["statusCode"], json.loads(body) if body else None


def test_the_nbbo_comes_from_the_venues_books_as_saved(world: Any) -> None:
    # WHEN the NBBO is read (the internal venue's book is empty)
    nbbo = world.nbbo("MSFT")
    # THEN the best bid is 299.99 (Alpha, Gamma), the best offer 300.00 (Alpha, Beta)
    assert (nbbo.bid, nbbo.bid_venues, nbbo.bid_size) == (D("299.99"), ("Alpha", "Gamma"), D(200))
    assert (nbbo.ask, nbbo.ask_venues, nbbo.ask_size) == (D("300.00"), ("Alpha", "Beta"), D(200))
    assert {q.venue for q in nbbo.quotes} == {"Alpha", "Beta", "Gamma", "NexusTrade"}


def test_a_smart_buy_fills_across_venues_at_the_nbbo_or_better_and_is_stored(aws: Any, world: Any) -> None:
    # WHEN a marketable SMART buy of 450 within 300.02 is routed for acc_1
    body = world.route("acc_1", smart_buy("p-1", 450))
    parent = body["parent"]
    # THEN it fills 450 on more than one venue, each fill at or below the offer at arrival (300.00)
    # plus the sweep of the displayed levels, never above the limit, no trade-through
    assert parent["status"] == "filled" and D(parent["filled"]) == 450
    venues = {c["venue"] for c in parent["children"] if D(c["filled"]) > 0}
    assert len(venues) >= 2
    prices = [D(f["price"]) for f in body["fills"]]
    assert sum(D(f["quantity"]) for f in body["fills"]) == 450
    assert min(prices) == D("300.00") and max(prices) <= D("300.02")
    # the 400 shares at 300.00 and 300.01 go before anything at 300.02
    assert sum(D(f["quantity"]) for f in body["fills"] if D(f["price"]) <= D("300.01")) >= 400
    # AND the decision was stored and published, the reports published for the statistics
    stored, decisions = world.decision_store.get("p-1")
    assert stored["account_id"] == "acc_1" and len(decisions) >= 1
    assert D(decisions[0]["nbbo"]["ask"]) == D("300.00")
    published = read_stream(aws, "RoutingDecisionsStream")
    assert [d["decision_id"] for d in published] == [d["decision_id"] for d in decisions]
    reports = read_stream(aws, "VenueReportsStream")
    assert {r["venue"] for r in reports if r["fills"]} == venues
    # AND the books were saved: the taken offers are gone from the NBBO
    assert world.nbbo("MSFT").ask > D("300.00")


def test_the_statistics_consumer_applies_each_report_once_and_ranks_the_venues(aws: Any, world: Any) -> None:
    from nexus_routing.model import Side
    from nexus_routing.repo import DynamoVenueStats
    from nexus_routing.service import apply_venue_report

    # GIVEN a routed order's reports on the venue-reports stream: 100 shares each on Alpha and
    # Beta (the two offers at 300.00), children of the 100-499 size bucket
    world.route("acc_1", smart_buy("p-2", 200))
    records = read_stream(aws, "VenueReportsStream")
    store = DynamoVenueStats(aws.table_name("VenueStatsTable"))
    # WHEN the consumer applies them twice (a redelivery)
    first = [apply_venue_report(store, r, 1_800_000_000) for r in records]
    second = [apply_venue_report(store, r, 1_800_000_000) for r in records]
    # THEN the second time changes nothing, and the rankings carry the fill rates
    assert all(first) and not any(second)
    ranked = world.rankings("MSFT", Side.BUY, D(200))
    by_venue = {row["venue"]: row for row in ranked["venues"]}
    filled = {r["venue"] for r in records if r["fills"]}
    assert filled == {"Alpha", "Beta"}
    assert all(D(by_venue[v]["fill_rate"]) == 1 for v in filled), by_venue
    assert ranked["size_bucket"] == "100-499" and ranked["venues"][0]["rank"] == 1


def test_the_decisions_route_serves_the_owner_and_compliance_only(aws: Any, world: Any) -> None:
    from nexus_routing.api import app

    world.route("acc_1", smart_buy("p-3", 120))
    # WHEN the owner, compliance, and another trader ask for the decisions
    owner = api_request(app, "/v1/routing/decisions/{order_id}", params={"order_id": "p-3"})
    oversight = api_request(app, "/v1/routing/decisions/{order_id}", params={"order_id": "p-3"},
                            roles="compliance", accounts="acc_9")
    other = api_request(app, "/v1/routing/decisions/{order_id}", params={"order_id": "p-3"}, accounts="acc_9")
    # THEN the owner and compliance see the decisions and children, the other trader a 404
    assert owner[0] == 200 and oversight[0] == 200
    assert owner[1]["order"]["order_id"] == "p-3" and owner[1]["decisions"][0]["strategy"] == "SMART"
    assert sum(D(c["filled"]) for c in owner[1]["children"]) == 120
    assert other == (404, {"error": {"code": "order_not_found", "message": "no routed order 'p-3'",
                                     "field": "order_id"}})


def test_the_606_report_lists_the_venues_and_validates_against_the_sec_schema(
    aws: Any, world: Any, monkeypatch: Any
) -> None:
    from nexus_routing.api import app
    from nexus_routing.reports import validate_606

    world.route("acc_1", smart_buy("p-4", 450))
    monkeypatch.setattr("nexus_routing.api.utc_now", lambda: NOW)  # the report's timestamp
    # WHEN compliance asks for 2026Q4 as JSON and as XML (both ways of asking)
    status, body = api_request(app, "/v1/reports/606", query={"quarter": "2026Q4"}, roles="compliance")
    xml_status, xml = api_request(app, "/v1/reports/606", query={"quarter": "2026Q4", "format": "xml"},
                                  roles="compliance")
    accept_status, accepted = api_request(app, "/v1/reports/606", query={"quarter": "2026Q4"}, roles="compliance",
                                          headers={"Accept": "application/xml"})
    # THEN November lists the venues the order went to, and the XML validates
    assert status == 200 and xml_status == 200 and accept_status == 200
    november = body["report"]["months"][1]
    assert november["mon"] == 11
    names = {row["name"] for row in november["sp500"]["rVenues"]}
    assert len(names) >= 2 and names <= {"Alpha", "Beta", "Gamma"}
    assert validate_606(xml.encode()) == [] and xml == accepted
    assert "<rVenue>" in xml and any(f"<mic>{mic}</mic>" in xml for mic in ("XALP", "XBET", "XGAM"))
    # AND a trader may not read it
    assert api_request(app, "/v1/reports/606", query={"quarter": "2026Q4"})[0] == 403


def test_execution_quality_counts_the_routed_orders(aws: Any, world: Any) -> None:
    from nexus_routing.api import app

    world.route("acc_1", smart_buy("p-5", 150))
    start = (NOW - timedelta(days=1)).isoformat()
    end = (NOW + timedelta(days=1)).isoformat()
    status, body = api_request(app, "/v1/reports/execution-quality",
                               query={"from": start, "to": end, "symbol": "MSFT"})
    assert status == 200
    bucket = next(b for b in body["execution_quality"]["buckets"] if b["bucket"] == "100-499")
    assert bucket["orders"] == 1 and bucket["executed_shares"] == "150" and D(bucket["fill_rate_pct"]) == 100


@pytest.mark.parametrize(
    ("resource", "params", "query", "code", "field"),
    [
        ("/v1/routing/nbbo/{symbol}", {"symbol": "msft"}, None, "invalid_symbol", "symbol"),
        ("/v1/routing/nbbo/{symbol}", {"symbol": "ZZZZ"}, None, "unknown_symbol", "symbol"),
        ("/v1/routing/venues", None, {"symbol": "MSFT", "side": "buy", "quantity": "1e400"}, None, "quantity"),
        ("/v1/routing/venues", None, {"symbol": "MSFT", "side": "hold", "quantity": "10"}, None, "side"),
        ("/v1/routing/venues", None, {"symbol": "MSFT", "side": "buy", "quantity": "-1"}, None, "quantity"),
        ("/v1/routing/decisions/{order_id}", {"order_id": "x" * 65}, None, "invalid_field", "order_id"),
        ("/v1/reports/execution-quality", None, {"from": "2026-11-01", "to": "2026-11-02"}, "invalid_time", "from"),
        ("/v1/reports/execution-quality", None, {"from": "2026-01-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
         "invalid_range", "from"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(world: Any, resource: str, params: Any, query: Any, code: Any,
                                            field: str) -> None:
    from nexus_routing.api import app

    status, body = api_request(app, resource, params=params, query=query, roles="compliance")
    assert 400 <= status < 500 and body["error"]["field"] == field
    if code is not None:
        assert body["error"]["code"] == code


def test_a_bad_quarter_is_400(world: Any) -> None:
    from nexus_routing.api import app

    status, body = api_request(app, "/v1/reports/606", query={"quarter": "2026Q5"}, roles="admin")
    assert status == 400 and body["error"]["field"] == "quarter"


def test_a_parent_that_cannot_be_stored_leaves_the_venues_books_as_they_were(world: Any, monkeypatch: Any) -> None:
    # GIVEN the parent's write fails (the table refuses it)
    def refuse(parent: Any) -> None:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(world.decision_store, "put_parent", refuse)
    before = world.nbbo("MSFT")
    # WHEN a marketable order is routed THEN the error surfaces and nothing was executed
    with pytest.raises(RuntimeError):
        world.route("acc_1", smart_buy("p-6", 150))
    assert world.nbbo("MSFT") == before


def test_execution_quality_reads_the_month_of_an_end_early_in_the_new_york_day(world: Any) -> None:
    # GIVEN an order routed at 04:30 New York on December 1 (09:30Z)
    world.clock.now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    world.route("acc_1", smart_buy("p-dec", 150))
    # WHEN the statistics run from November 15 15:00Z (10:00 New York) to December 1 10:00Z
    stats = world.execution_quality(datetime(2026, 11, 15, 15, tzinfo=UTC), datetime(2026, 12, 1, 10, tzinfo=UTC),
                                    "MSFT")
    # THEN December's stored decisions are read too: the order is counted
    bucket = next(b for b in stats["buckets"] if b["bucket"] == "100-499")
    assert bucket["orders"] == 1 and bucket["executed_shares"] == "150"


def test_a_holder_whose_venue_lock_ran_out_saves_nothing_over_the_newer_state(world: Any) -> None:
    from nexus_common.errors import Unavailable
    from nexus_routing.model import ChildOrder, Side

    books = world.simulated
    alpha = next(v for v in world.venues.list() if v.name == "Alpha")
    with pytest.raises(Unavailable) as caught:
        with books.open([alpha], account="late") as late:
            # GIVEN a holder that places an order on Alpha, and whose lease runs out meanwhile
            late["Alpha"].submit(ChildOrder("late-1", "MSFT", Side.BUY, D(10), D("299.50"), "gtc"))
            books.redis.delete(f"{books.prefix}:Alpha:lock")
            # AND another holder takes the lock and saves its own order
            with books.open([alpha], account="next") as newer:
                newer["Alpha"].submit(ChildOrder("next-1", "MSFT", Side.BUY, D(20), D("299.40"), "gtc"))
        # WHEN the first holder's block ends
    # THEN it is refused as retryable (lock lost) and the newer state stands, without its order
    assert caught.value.status == 503 and caught.value.code == "venue_lock_lost"
    with books.open([alpha]) as now:
        orders = now["Alpha"].live_orders()
    assert "next-1" in orders and "late-1" not in orders


def test_a_holder_whose_lock_changes_hands_during_the_save_saves_nothing(world: Any, monkeypatch: Any) -> None:
    from nexus_common.errors import Unavailable
    from nexus_routing.model import ChildOrder, Side

    books = world.simulated
    alpha = next(v for v in world.venues.list() if v.name == "Alpha")
    before = books.redis.get(f"{books.prefix}:Alpha")
    dump = __import__("nexus_routing.venue_state", fromlist=["dump"]).dump

    def dump_then_steal(venue: Any) -> Any:  # the lease runs out and another holder takes it mid-save
        books.redis.set(f"{books.prefix}:Alpha:lock", "someone-else")
        return dump(venue)

    monkeypatch.setattr("nexus_routing.venue_state.dump", dump_then_steal)
    # GIVEN a holder that places an order on Alpha
    with pytest.raises(Unavailable) as caught, books.open([alpha]) as live:
        live["Alpha"].submit(ChildOrder("late-2", "MSFT", Side.BUY, D(10), D("299.50"), "gtc"))
        # WHEN its lock changes hands between the token check and the write
    # THEN nothing was written
    assert caught.value.code == "venue_lock_lost"
    assert books.redis.get(f"{books.prefix}:Alpha") == before
