"""Best execution on the whole local platform (``nexus up --demo`` with its market maker): the
market maker quotes the demo symbols on the internal book and the three simulated venues, the
NBBO over HTTP shows every venue, a marketable SMART buy routed by the routing service fills
across venues at the NBBO or better, its owner reads its decisions over HTTP (another trader
cannot), the market maker books the other side in its P&L, and the quarter's 606 report lists
those venues, as JSON and as XML valid against the SEC's schema. ``nexus venues list`` shows the
venues table.

The order is routed with the routing service's own code in this process (``RoutingService.route``
on the platform's tables, streams and Redis): ``POST /v1/orders`` with ``routing`` is not wired
to it yet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system

D = Decimal
EXTERNAL = ("Alpha", "Beta", "Gamma")


@pytest.fixture(scope="module")
def local_platform() -> Iterator[Any]:
    """A platform of its own: the market maker's quotes would meet other modules' orders."""
    from nexus.local.runtime import Options, free_port, running

    options = Options(api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="routing", demo=True,
                      market_maker=True, write_state=False)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "REDIS_URL")}
    with running(options) as platform:
        os.environ["AWS_ENDPOINT_URL"] = platform.aws_endpoint
        os.environ["REDIS_URL"] = platform.redis_url
        try:
            yield platform
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            from nexus_common import aws
            from nexus_common.redis_store import reset_redis_client

            aws.clear_clients()
            reset_redis_client()


def _routing_service(platform: Any) -> Any:
    from nexus_common import aws
    from nexus_common.events import utc_now
    from nexus_common.instrument_store import DynamoInstruments
    from nexus_common.redis_store import redis_client, reset_redis_client
    from nexus_routing.repo import (
        DynamoDecisions,
        DynamoInternalBook,
        DynamoVenues,
        DynamoVenueStats,
        KinesisPublisher,
        RedisVenueBooks,
    )
    from nexus_routing.service import RoutingService

    aws.clear_clients()
    reset_redis_client()
    instruments = DynamoInstruments(platform.table("InstrumentsTable"))
    prefix = platform.platform.functions["RoutingApiFunction"].environment["VENUE_STATE_PREFIX"]
    return RoutingService(
        venues=DynamoVenues(platform.table("VenuesTable")),
        internal_book=DynamoInternalBook(platform.table("BookLevelsTable")),
        simulated=RedisVenueBooks(redis_client(), prefix, lambda: {i.symbol: i for i in instruments.list_all()},
                                  utc_now),
        decisions=DynamoDecisions(platform.table("RoutingDecisionsTable")),
        stats=DynamoVenueStats(platform.table("VenueStatsTable")), instruments=instruments, clock=utc_now,
        broker_dealer="NexusTrade Securities LLC",
        decisions_stream=KinesisPublisher(platform.table("RoutingDecisionsStream")),
        reports_stream=KinesisPublisher(platform.table("VenueReportsStream")),
    )


def _compliance_officer(platform: Any) -> Api:
    from nexus.local.demo import create_account

    created = create_account(platform.table, "Best Execution Officer", D("0.00"))
    api = Api(platform.api_url, created["api_key"])
    user_id = str(api.get("/v1/users/me").body["user"]["user_id"])
    out = subprocess.run([sys.executable, "-m", "nexus.cli", "users", "grant", "--user", user_id, "--role",
                          "compliance"], capture_output=True, text=True, env=_cli_env(platform), timeout=120,
                         check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return api


def _cli_env(platform: Any) -> dict[str, str]:
    return {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
            "AWS_ENDPOINT_URL": platform.aws_endpoint}


def _quoted_everywhere(nbbo: Any) -> bool:
    quotes = {q["venue"]: q for q in (nbbo or {}).get("nbbo", {}).get("quotes", [])}
    return all(v in quotes and quotes[v]["bid"] and quotes[v]["ask"] for v in (*EXTERNAL, "NexusTrade"))


def test_a_smart_order_fills_across_the_market_makers_venues_and_is_reported(local_platform: Any) -> None:
    alice = Api(local_platform.api_url, local_platform.demo_accounts[0]["api_key"])
    bob = Api(local_platform.api_url, local_platform.demo_accounts[1]["api_key"])
    # GIVEN the market maker quoting MSFT on the internal book and the three simulated venues
    answer = eventually(lambda: alice.get("/v1/routing/nbbo/MSFT"), lambda a: _quoted_everywhere(a.body), 90)
    assert answer.status == 200 and _quoted_everywhere(answer.body), answer.body
    nbbo = answer.body["nbbo"]
    assert D(nbbo["bid"]) < D(nbbo["ask"]) and len(nbbo["ask_venues"]) >= 2
    listed = subprocess.run([sys.executable, "-m", "nexus.cli", "venues", "list"], capture_output=True, text=True,
                            env=_cli_env(local_platform), timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert {line.split('"name": "')[1].split('"')[0] for line in listed.stdout.splitlines()} == {
        "NexusTrade", *EXTERNAL}

    # WHEN alice's marketable SMART buy of 200 (limit 5 cents through the offer) is routed
    from nexus_routing.model import Side, Strategy
    from nexus_routing.router import RouteRequest

    account = local_platform.demo_accounts[0]["account_id"]
    request = RouteRequest(order_id="route-sys-1", symbol="MSFT", side=Side.BUY, quantity=D(200),
                           strategy=Strategy.SMART, limit_price=D(nbbo["ask"]) + D("0.05"))
    body = _routing_service(local_platform).route(account, request)

    # THEN it fills 200 across venues, at the NBBO of its decision or better
    parent = body["parent"]
    assert parent["status"] == "filled" and D(parent["filled"]) == 200, parent
    venues = {c["venue"] for c in parent["children"] if D(c["filled"]) > 0}
    assert len(venues) >= 2 and venues <= set(EXTERNAL)
    decided = alice.get("/v1/routing/decisions/route-sys-1")
    assert decided.status == 200, decided.body
    best_offer = D(decided.body["decisions"][0]["nbbo"]["ask"])
    assert all(D(f["price"]) <= best_offer for f in body["fills"])
    assert decided.body["decisions"][0]["strategy"] == "SMART"
    assert sum(D(c["filled"]) for c in decided.body["children"]) == 200
    assert bob.get("/v1/routing/decisions/route-sys-1").status == 404

    # AND the market maker books the other side (short 200 in MSFT) in its P&L
    import boto3

    table = boto3.resource("dynamodb", endpoint_url=local_platform.aws_endpoint, region_name="us-east-1").Table(
        local_platform.table("MarketMakerTable"))
    state = eventually(lambda: table.get_item(Key={"item": "state"}).get("Item") or {},
                       lambda s: s.get("pnl", {}).get("MSFT", {}).get("position") == "-200", 30)
    assert state["pnl"]["MSFT"]["position"] == "-200", state.get("pnl")

    # AND the quarter's 606 report lists those venues, as JSON and as XML valid against the schema
    from nexus_routing.reports import MARKET_ZONE, validate_606

    received = datetime.fromisoformat(decided.body["received_at"]).astimezone(MARKET_ZONE)
    quarter = f"{received.year}Q{(received.month - 1) // 3 + 1}"
    officer = _compliance_officer(local_platform)
    report = officer.get(f"/v1/reports/606?quarter={quarter}")
    assert report.status == 200, report.body
    month = next(m for m in report.body["report"]["months"] if m["mon"] == received.month)
    assert {row["name"] for row in month["sp500"]["rVenues"]} == venues
    xml = officer.get(f"/v1/reports/606?quarter={quarter}", headers={"Accept": "application/xml"})
    assert xml.status == 200 and xml.headers.get("Content-Type", "").startswith("application/xml")
    assert validate_606(xml.body.encode() if isinstance(xml.body, str) else xml.body) == []
    assert alice.get(f"/v1/reports/606?quarter={quarter}").status == 403
