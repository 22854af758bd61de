"""Best execution on the whole local platform (``nexus up --demo`` with its market maker): the
market maker quotes the demo symbols on the internal book and the three simulated venues, the
NBBO over HTTP shows every venue, a marketable SMART buy placed with ``POST /v1/orders`` and
``routing`` fills across venues at the NBBO or better (the routing-requests queue, the routing
function, the engine's ``routed_fills``), the order, the position, the cash and the ledger show
it, its owner reads its decisions over HTTP (another trader cannot), the market maker books the
other side in its P&L, and the quarter's 606 report lists those venues, as JSON and as XML valid
against the SEC's schema. ``nexus venues list`` shows the venues table."""

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


def _cancelled_over_http(api: Api, order_id: str, before: dict[str, Any]) -> dict[str, Any]:
    """``DELETE`` the order; it ends cancelled by its user and the account's reservation is back
    where it was ``before`` (a portfolio); the portfolio after."""
    assert api.delete(f"/v1/orders/{order_id}").status == 202
    done = eventually(lambda: api.get(f"/v1/orders/{order_id}"),
                      lambda a: a.body.get("order", {}).get("status") == "cancelled", 60)
    assert done.body["order"]["cancel_reason"] == "user", done.body
    after: dict[str, Any] = eventually(lambda: api.get("/v1/portfolio").body["portfolio"],
                                       lambda p: D(p["reserved"]) == D(before["reserved"]), 60)
    assert D(after["reserved"]) == D(before["reserved"])
    return after


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

    # WHEN alice places a marketable SMART buy of 200 (limit 5 cents through the offer) over HTTP
    before = alice.get("/v1/portfolio").body["portfolio"]
    placed = alice.post("/v1/orders", {"symbol": "MSFT", "side": "buy", "type": "limit", "quantity": "200",
                                       "price": str(D(nbbo["ask"]) + D("0.05")), "client_order_id": "route-sys-1",
                                       "routing": {"strategy": "SMART"}})
    assert placed.status == 202, placed.body
    order_id = placed.body["order"]["order_id"]

    # THEN it fills 200 across venues (the internal book's part run by the engine in the same
    # step as the external fills), at the NBBO of its first decision or better
    done = eventually(lambda: alice.get(f"/v1/orders/{order_id}"),
                      lambda a: a.body.get("order", {}).get("status") in ("filled", "cancelled"), 60)
    order = done.body["order"]
    assert order["status"] == "filled" and D(order["filled_quantity"]) == 200, order
    decided = alice.get(f"/v1/routing/decisions/{order_id}")
    assert decided.status == 200, decided.body
    children = decided.body["children"]
    routed_to = {c["venue"] for c in children}
    external = {c["venue"] for c in children if D(c["filled"]) > 0}
    assert len(routed_to) >= 2 and routed_to <= {*EXTERNAL, "NexusTrade"} and external
    assert sum(D(c["quantity"]) for c in children) >= 200
    best_offer = D(decided.body["decisions"][0]["nbbo"]["ask"])
    assert D(order["average_price"]) <= best_offer
    assert all(D(c["limit_price"]) <= D(nbbo["ask"]) + D("0.05") for c in children)
    assert decided.body["decisions"][0]["strategy"] == "SMART"
    assert bob.get(f"/v1/routing/decisions/{order_id}").status == 404

    # AND the position, the cash (the venues' fees included) and the ledger book the fills, and
    # the order's reservation is given back in full
    notional = D(order["average_price"]) * 200
    after = eventually(lambda: alice.get("/v1/portfolio").body["portfolio"],
                       lambda p: D(p["reserved"]) == D(before["reserved"])
                       and any(x["symbol"] == "MSFT" and D(x["quantity"]) == 200 for x in p["positions"]), 60)
    spent = D(before["cash"]) - D(after["cash"])
    assert abs(spent - notional) <= notional * D("0.001") + 1, (spent, notional)
    memos = " ".join(str(e.get("memo", "")) for e in alice.get("/v1/ledger").body.get("entries", []))
    assert all(v in memos for v in external), memos
    venues = routed_to

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


def test_a_gtc_routed_order_rests_on_the_internal_book_and_cancels_over_http(local_platform: Any) -> None:
    bob = Api(local_platform.api_url, local_platform.demo_accounts[1]["api_key"])
    answer = eventually(lambda: bob.get("/v1/routing/nbbo/MSFT"), lambda a: _quoted_everywhere(a.body), 90)
    bid = D(answer.body["nbbo"]["bid"])
    before = bob.get("/v1/portfolio").body["portfolio"]
    # WHEN bob places a gtc INTERNALIZE_FIRST buy well below the market (nothing can fill it now)
    placed = bob.post("/v1/orders", {"symbol": "MSFT", "side": "buy", "type": "limit", "quantity": "30",
                                     "price": str(bid - D("1.00")), "time_in_force": "gtc",
                                     "routing": {"strategy": "INTERNALIZE_FIRST"}})
    assert placed.status == 202, placed.body
    order_id = placed.body["order"]["order_id"]
    # THEN it rests on the internal book under its own id (accepted by the engine: status new)
    rested = eventually(lambda: bob.get(f"/v1/orders/{order_id}"),
                        lambda a: a.body.get("order", {}).get("status") != "pending_new", 60)
    assert rested.body["order"]["status"] == "new" and "rests_on" not in rested.body["order"], rested.body
    # WHEN bob cancels it, THEN it is cancelled and its reservation is given back in full
    after = _cancelled_over_http(bob, order_id, before)
    assert D(after["cash"]) == D(before["cash"])


def test_a_lowest_cost_remainder_rests_on_alpha_fills_there_and_a_second_one_cancels(local_platform: Any) -> None:
    from nexus.local.demo import create_account

    carol = Api(local_platform.api_url, create_account(local_platform.table, "carol", D("100000.00"))["api_key"])
    answer = eventually(lambda: carol.get("/v1/routing/nbbo/MSFT"), lambda a: _quoted_everywhere(a.body), 90)
    nbbo = answer.body["nbbo"]
    inside = D(nbbo["bid"]) + D("0.01")
    assert inside < D(nbbo["ask"]), nbbo
    before = carol.get("/v1/portfolio").body["portfolio"]
    # WHEN carol places a gtc LOWEST_COST buy of 30 a tick above the best bid (below every offer)
    placed = carol.post("/v1/orders", {"symbol": "MSFT", "side": "buy", "type": "limit", "quantity": "30",
                                       "price": str(inside), "time_in_force": "gtc",
                                       "routing": {"strategy": "LOWEST_COST"}})
    assert placed.status == 202, placed.body
    order_id = placed.body["order"]["order_id"]
    # THEN it rests on Alpha, the venue with the highest maker rebate, and is open there
    rested = eventually(lambda: carol.get(f"/v1/orders/{order_id}"),
                        lambda a: a.body.get("order", {}).get("status") != "pending_new", 60)
    assert (rested.body["order"]["status"], rested.body["order"].get("rests_on")) == ("new", "Alpha"), rested.body
    decided = carol.get(f"/v1/routing/decisions/{order_id}").body
    assert [(c["venue"], c["action"]) for c in decided["children"]] == [("Alpha", "rest")]
    # WHEN the venues are swept (each sweep is one horizon of Alpha's fill model; the order alone
    # is Alpha's best bid), THEN Alpha's outside flow fills it, and the fills reach the order
    def swept_and_read() -> Any:
        run = local_platform.lambdas.invoke("VenueSweepFunction", {})
        assert run.ok, run.error
        return carol.get(f"/v1/orders/{order_id}")

    filled = eventually(swept_and_read, lambda a: a.body.get("order", {}).get("status") == "filled", 90)
    order = filled.body["order"]
    assert order["status"] == "filled" and D(order["filled_quantity"]) == 30, order
    assert D(order["average_price"]) == inside
    # AND the position, the cash (Alpha's rebate paid to carol) and the reservation follow
    after = eventually(lambda: carol.get("/v1/portfolio").body["portfolio"],
                       lambda p: D(p["reserved"]) == D(before["reserved"])
                       and any(x["symbol"] == "MSFT" and D(x["quantity"]) == 30 for x in p["positions"]), 60)
    assert D(before["cash"]) - D(after["cash"]) == inside * 30 - D("0.06")

    # WHEN carol rests a second one far below the market on Alpha and cancels it over HTTP
    far = carol.post("/v1/orders", {"symbol": "MSFT", "side": "buy", "type": "limit", "quantity": "20",
                                    "price": str(D(nbbo["bid"]) - D("1.00")), "time_in_force": "gtc",
                                    "routing": {"strategy": "LOWEST_COST"}})
    assert far.status == 202, far.body
    far_id = far.body["order"]["order_id"]
    eventually(lambda: carol.get(f"/v1/orders/{far_id}"),
               lambda a: a.body.get("order", {}).get("rests_on") == "Alpha", 60)
    # THEN routing takes it off Alpha and the order ends cancelled, its reservation given back
    _cancelled_over_http(carol, far_id, before)
    children = carol.get(f"/v1/routing/decisions/{far_id}").body["children"]
    assert [(c["venue"], c["status"], c["open"]) for c in children] == [("Alpha", "cancelled", "0")]
