"""Market surveillance end to end on the whole local platform, over HTTP: a scripted spoofing
episode raises the alert; a CRITICAL wash-trade episode (one owner, two accounts) halts the
account, whose next order gets 422 trading_disabled; compliance sees both through the API, and
reopens trading by closing the alert; a trader gets 403."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from helpers import eventually
from http_client import Api

pytestmark = pytest.mark.system

D = Decimal
PASSWORD = "a long and unusual passphrase"


@pytest.fixture(scope="module")
def local_platform() -> Iterator[Any]:
    """A platform of its own: a CRITICAL alert halts accounts, which no other test should meet."""
    from nexus.local.runtime import Options, free_port, running

    options = Options(
        api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="surv", demo=True, write_state=False
    )
    with running(options) as platform:
        yield platform


def _account(platform: Any, name: str, cash: str) -> tuple[str, Api]:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, D(cash))
    return created["account_id"], Api(platform.api_url, created["api_key"])


def _user_id(platform: Any, api: Api) -> str:
    return str(api.get("/v1/users/me").body["user"]["user_id"])


def _compliance_officer(platform: Any) -> Api:
    """An account's user, granted the compliance role with the operator CLI."""
    _, api = _account(platform, "Surveillance Officer", "0.00")
    env = {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": platform.aws_endpoint}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "users", "grant", "--user", _user_id(platform, api), "--role",
         "compliance"], capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return api


def _two_account_owner(platform: Any) -> tuple[Api, str, str]:
    """A registered user with two funded accounts (the operator's deposit: the opening cash)."""
    public = Api(platform.api_url)
    email = f"wash-{uuid.uuid4().hex[:8]}@example.com"
    assert public.post("/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Wash"}).status == 202
    token = public.post("/v1/auth/login", {"email": email, "password": PASSWORD}).body["access_token"]
    user = Api(platform.api_url, token)
    first = user.get("/v1/users/me").body["user"]["default_account_id"]
    second = user.post("/v1/users/me/accounts", {"name": "Second"}).body["account"]["account_id"]
    table = boto3.resource("dynamodb", endpoint_url=platform.aws_endpoint, region_name="us-east-1").Table(
        platform.table("AccountsTable"))  # fmt: skip
    for account in (first, second):
        table.update_item(Key={"account_id": account}, UpdateExpression="SET cash = :c",
                          ExpressionAttributeValues={":c": D("100000.00")})  # fmt: skip
    return user, first, second


def _inside(api: Api, symbol: str) -> Decimal:
    """A price above every resting bid and below every resting ask: a tick over the best bid, else
    the last trade (inside the price collar), else 10.00."""
    book = api.get(f"/v1/markets/{symbol}/book?depth=1").body
    trades = api.get(f"/v1/markets/{symbol}/trades?limit=1").body["trades"]
    if book["bids"]:
        price = D(book["bids"][0]["price"]) + D("0.01")
    else:
        price = D(trades[0]["price"]) if trades else D("10.00")
    if book["asks"] and price >= D(book["asks"][0]["price"]):
        price = D(book["asks"][0]["price"]) - D("0.01")
    assert not book["bids"] or price > D(book["bids"][0]["price"]), book
    return price


def _order(api: Api, symbol: str, side: str, qty: str, price: Decimal, account: str | None = None) -> Any:
    headers = {"X-Account-Id": account} if account else None
    return api.post("/v1/orders", {"symbol": symbol, "side": side, "type": "limit", "quantity": qty,
                                   "price": str(price)}, headers=headers)  # fmt: skip


def _status(api: Api, order_id: str, account: str | None = None) -> str:
    headers = {"X-Account-Id": account} if account else None
    return str(api.get(f"/v1/orders/{order_id}", headers=headers).body["order"]["status"])


def _alerts(officer: Api, **filters: str) -> list[dict[str, Any]]:
    answer = officer.get("/v1/surveillance/alerts?" + urllib.parse.urlencode(filters))
    assert answer.status == 200, answer.body
    return list(answer.body["alerts"])


def test_spoofing_and_a_critical_wash_trade_reach_compliance_and_halt_the_account(local_platform: Any) -> None:
    officer = _compliance_officer(local_platform)
    spoofer_id, spoofer = _account(local_platform, "Spoofer", "1000000.00")
    _, buyer = _account(local_platform, "Honest Buyer", "1000000.00")

    # GIVEN an honest bid of 10 GOOGL
    price = _inside(buyer, "GOOGL")
    bid = _order(buyer, "GOOGL", "buy", "10", price)
    assert bid.status == 202, bid.body
    assert eventually(lambda: _status(buyer, bid.body["order"]["order_id"]), lambda s: s == "new") == "new"
    # WHEN the spoofer bids 2,000 under it, sells 10 into the honest bid, and cancels the 2,000 at once
    spoof = _order(spoofer, "GOOGL", "buy", "2000", price - D("0.05"))
    sell = _order(spoofer, "GOOGL", "sell", "10", price)
    assert spoof.status == 202 and sell.status == 202, (spoof.body, sell.body)
    assert spoofer.delete(f"/v1/orders/{spoof.body['order']['order_id']}").status == 202
    # THEN compliance sees a spoofing alert on the spoofer's account, its evidence resolved to the orders
    found = eventually(lambda: _alerts(officer, detector="spoofing", account=spoofer_id), bool, timeout=60)
    assert [(a["symbol"], a["status"]) for a in found] == [("GOOGL", "open")], found
    detail = officer.get(f"/v1/surveillance/alerts/{found[0]['alert_id']}").body["alert"]
    assert spoof.body["order"]["order_id"] in [o["order_id"] for o in detail["orders"] if o["found"]]

    # GIVEN a user with two accounts
    owner, first, second = _two_account_owner(local_platform)
    price = _inside(owner, "AAPL")
    # WHEN the first account rests a buy and the second sells into it (one owner on both sides)
    rest = _order(owner, "AAPL", "buy", "5", price, first)
    assert rest.status == 202, rest.body
    eventually(lambda: _status(owner, rest.body["order"]["order_id"], first), lambda s: s == "new")
    assert _order(owner, "AAPL", "sell", "5", price, second).status == 202
    # THEN a CRITICAL wash-trading alert halts the account: its next order is refused
    refused = eventually(lambda: _order(owner, "AAPL", "buy", "1", price - D("0.05"), first),
                         lambda r: r.status == 422, timeout=60)  # fmt: skip
    assert (refused.status, refused.body["error"]["code"]) == (422, "trading_disabled"), refused.body
    (wash,) = _alerts(officer, severity="CRITICAL", account=first)
    assert (wash["detector"], sorted(wash["accounts"])) == ("wash_trading", sorted([first, second]))
    assert sorted(wash["halted_accounts"]) == sorted([first, second])
    # AND the halt is on the audit trail with the alert as the reason
    halts = eventually(
        lambda: [r for r in officer.get("/v1/audit?" + urllib.parse.urlencode(
            {"aggregate_type": "account", "aggregate_id": first})).body["records"] if r["kind"] == "kill_switch_on"],
        bool,
    )  # fmt: skip
    assert [h["details"]["reason"] for h in halts] == [wash["alert_id"]]

    # AND a trader may not read any of it
    for path in ("/v1/surveillance/alerts", f"/v1/surveillance/alerts/{wash['alert_id']}",
                 "/v1/surveillance/thresholds/spoofing"):  # fmt: skip
        answer = buyer.get(path)
        assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")

    # WHEN compliance closes the alert, reopening trading
    closed = officer.post(f"/v1/surveillance/alerts/{wash['alert_id']}/close",
                          {"note": "reviewed with the client", "resume_trading": True})  # fmt: skip
    # THEN the account trades again
    assert closed.status == 200 and closed.body["alert"]["status"] == "closed", closed.body
    assert _order(owner, "AAPL", "buy", "1", price - D("0.05"), first).status == 202
