"""An order's whole life read back from the audit trail, against the whole local platform: a
compliance officer (a user granted the role with ``nexus users grant``) reads, over HTTP, the
order's receipt with its risk decision, its acceptance, its fill (the trade linked to both
orders), its cancel request and cancellation, then the trade's journal entries and settlement."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system

D = Decimal
SYMBOL = "AMZN"


def _account(platform: Any, name: str, cash: str) -> tuple[dict[str, str], Api]:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, D(cash))
    return created, Api(platform.api_url, created["api_key"])


def _compliance_officer(platform: Any) -> tuple[str, Api]:
    """A user with the compliance role: an account's user, granted the role by the operator CLI."""
    from nexus_auth.keys import hash_api_key

    created, api = _account(platform, "Compliance Officer", "0.00")
    keys = boto3.resource("dynamodb", endpoint_url=platform.aws_endpoint, region_name="us-east-1").Table(
        platform.table("ApiKeysTable"))  # fmt: skip
    user_id = str(keys.get_item(Key={"key_hash": hash_api_key(created["api_key"])})["Item"]["user_id"])
    env = {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": platform.aws_endpoint}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "users", "grant", "--user", user_id, "--role", "compliance"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return user_id, api


def _life(api: Api, aggregate_type: str, aggregate_id: str) -> list[dict[str, Any]]:
    """Every record of an aggregate, page by page (5 a page, to exercise the paging)."""
    records: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id, "limit": "5"}
        if token:
            query["next_token"] = token
        answer = api.get("/v1/audit?" + urllib.parse.urlencode(query))
        assert answer.status == 200, answer.body
        records += answer.body["records"]
        token = answer.body["next_token"]
        if token is None:
            return records


def _kinds(records: list[dict[str, Any]]) -> list[str]:
    return [r["kind"] for r in records]


def _price(api: Api) -> Decimal:
    """A price that crosses nothing already resting: the last trade (or 120.00), inside the spread."""
    trades = api.get(f"/v1/markets/{SYMBOL}/trades?limit=1").body["trades"]
    price = D(trades[0]["price"]) if trades else D("120.00")
    book = api.get(f"/v1/markets/{SYMBOL}/book?depth=1").body
    if book["asks"] and D(book["asks"][0]["price"]) <= price:
        price = D(book["asks"][0]["price"]) - D("0.01")
    if book["bids"]:
        assert D(book["bids"][0]["price"]) < price, book
    return price


def test_an_orders_whole_life_is_read_back_from_the_audit_trail(local_platform: Any) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    # GIVEN a compliance officer, a seller and a buyer
    officer_id, officer = _compliance_officer(local_platform)
    _, seller = _account(local_platform, "Audit Seller", "100000.00")
    _, buyer = _account(local_platform, "Audit Buyer", "100000.00")
    price = _price(seller)
    # WHEN the seller rests 10, the buyer takes 4, and the seller cancels the rest
    sell = seller.post("/v1/orders", {"symbol": SYMBOL, "side": "sell", "type": "limit", "quantity": "10",
                                      "price": str(price), "client_order_id": "audit-s-1"})  # fmt: skip
    assert sell.status == 202, sell.body
    sell_id = sell.body["order"]["order_id"]
    eventually(lambda: seller.get(f"/v1/orders/{sell_id}").body["order"]["status"], lambda s: s == "new")
    buy = buyer.post("/v1/orders", {"symbol": SYMBOL, "side": "buy", "type": "limit", "quantity": "4",
                                    "price": str(price)})  # fmt: skip
    assert buy.status == 202, buy.body
    buy_id = buy.body["order"]["order_id"]
    eventually(lambda: seller.get(f"/v1/orders/{sell_id}").body["order"]["status"], lambda s: s == "partially_filled")
    assert seller.delete(f"/v1/orders/{sell_id}").status == 202
    eventually(lambda: seller.get(f"/v1/orders/{sell_id}").body["order"]["status"], lambda s: s == "cancelled")

    # THEN the officer reads the sell order's life: received (risk accepted), accepted, filled,
    # cancel requested, cancelled, numbered 1..n with no gap
    expected = {"order_received", "order_accepted", "order_filled", "cancel_requested", "order_cancelled"}
    life = eventually(lambda: _life(officer, "order", sell_id), lambda r: expected <= set(_kinds(r)))
    assert expected <= set(_kinds(life)), _kinds(life)
    assert [r["seq"] for r in life] == list(range(1, len(life) + 1))
    assert len({r["event_id"] for r in life}) == len(life)
    received = next(r for r in life if r["kind"] == "order_received")
    assert received["details"]["risk_decision"] == "accepted"
    assert (received["details"]["client_order_id"], D(received["details"]["price"])) == ("audit-s-1", price)
    assert _kinds(life).index("order_accepted") < _kinds(life).index("order_filled")
    assert _kinds(life).index("order_filled") < _kinds(life).index("order_cancelled")
    cancelled = next(r for r in life if r["kind"] == "order_cancelled")
    assert (cancelled["details"]["remaining_quantity"], cancelled["details"]["reason"]) == ("6", "user")
    # AND the fill names the trade and the buy order; the trade names both orders
    fill = next(r for r in life if r["kind"] == "order_filled")
    assert f"order:{buy_id}" in fill["links"] and fill["details"]["liquidity"] == "maker"
    trade_id = next(link.split(":", 1)[1] for link in fill["links"] if link.startswith("trade:"))
    assert {"order_accepted", "order_filled"} <= set(_kinds(eventually(
        lambda: _life(officer, "order", buy_id), lambda r: "order_filled" in _kinds(r))))  # fmt: skip

    # AND the trade's life holds the trade, both journal entries and both settlement obligations
    def trade_complete(records: list[dict[str, Any]]) -> bool:
        kinds = _kinds(records)
        return kinds.count("ledger_entry") == 2 and kinds.count("obligation_created") == 2

    trade_life = eventually(lambda: _life(officer, "trade", trade_id), trade_complete)
    assert trade_complete(trade_life), _kinds(trade_life)
    trade = next(r for r in trade_life if r["kind"] == "trade")
    assert {f"order:{sell_id}", f"order:{buy_id}"} <= set(trade["links"])
    assert (D(trade["details"]["price"]), trade["details"]["quantity"]) == (price, "4")
    entries = [r for r in trade_life if r["kind"] == "ledger_entry"]
    assert sorted(r["details"]["liquidity"] for r in entries) == ["maker", "taker"]
    obligation = next(r for r in trade_life if r["kind"] == "obligation_created")
    due = date.fromisoformat(obligation["details"]["settle_date"])

    # WHEN the T+2 settlement run comes
    run = local_platform.lambdas.invoke("SettlementFunction", {"as_of": due.isoformat()})
    assert run.ok, run.payload
    # THEN the trade's life ends with both obligations settled, linked to their settlement batches
    settled = eventually(lambda: _life(officer, "trade", trade_id),
                         lambda r: _kinds(r).count("obligation_settled") == 2)  # fmt: skip
    done = [r for r in settled if r["kind"] == "obligation_settled"]
    assert len(done) == 2 and all(any(x.startswith("settlement_batch:") for x in r["links"]) for r in done)
    assert [r["seq"] for r in settled] == list(range(1, len(settled) + 1))

    # AND the role grant itself is on the trail (published by the identity service)
    assert "role_granted" in _kinds(eventually(lambda: _life(officer, "user", officer_id),
                                               lambda r: "role_granted" in _kinds(r)))  # fmt: skip
    # AND a time-range query over the test's window finds the sell order's records
    window = {"from": started.isoformat(), "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
              "limit": "200"}  # fmt: skip
    found: set[str] = set()
    token = None
    while True:
        page = {**window, "next_token": token} if token else window
        answer = officer.get("/v1/audit?" + urllib.parse.urlencode(page))
        assert answer.status == 200, answer.body
        found |= {r["kind"] for r in answer.body["records"] if r["aggregate_id"] == sell_id}
        token = answer.body["next_token"]
        if token is None:
            break
    assert expected <= found
    # AND a trader may not read the trail
    refused = seller.get("/v1/audit?" + urllib.parse.urlencode({"aggregate_type": "order", "aggregate_id": sell_id}))
    assert refused.status == 403 and refused.body["error"]["code"] == "forbidden"
