"""Funding end to end over HTTP against the whole local platform: a newcomer who registered asks for
a deposit with their own login, an admin approves it, the newcomer trades; a withdrawal beyond
settled, unreserved cash is refused; the operator CLI moves cash once per request id; the
account reconciles with its ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from http_client import Api, resting_buy_price

pytestmark = pytest.mark.system

PASSWORD = "a long and unusual passphrase"


def _login(public: Api, email: str) -> Api:
    registered = public.post("/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Funding"})
    assert registered.status == 202, registered.body
    login = public.post("/v1/auth/login", {"email": email, "password": PASSWORD})
    assert login.status == 200, login.body
    return Api(public.base_url, login.body["access_token"])


def _nexus(platform: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": platform.aws_endpoint}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], capture_output=True, text=True, env=env,
                          check=check)  # fmt: skip


def test_a_newcomer_funds_their_account_with_their_own_login_and_trades(local_platform: Any) -> None:
    public = Api(local_platform.api_url)
    tag = uuid.uuid4().hex[:8]
    # GIVEN a newcomer who registered and logged in: an account with no cash
    user = _login(public, f"newcomer-{tag}@example.com")
    account_id = user.get("/v1/users/me").body["user"]["default_account_id"]
    price = resting_buy_price(user, "MSFT")
    order = {"symbol": "MSFT", "side": "buy", "type": "limit", "quantity": "1", "price": price, "time_in_force": "day"}
    refused = user.post("/v1/orders", order)
    assert (refused.status, refused.body["error"]["code"]) == (422, "insufficient_buying_power"), refused.body
    # WHEN they ask for a deposit, and an admin (granted by the operator) approves it
    asked = user.post("/v1/funding/deposits", {"amount": "2500.00", "client_request_id": f"dep-{tag}"})
    assert asked.status == 201 and asked.body["request"]["status"] == "pending", asked.body
    admin = _login(public, f"admin-{tag}@example.com")
    _nexus(local_platform, "users", "grant", "--user", f"admin-{tag}@example.com", "--role", "admin")
    assert user.post(f"/v1/admin/funding/requests/{asked.body['request']['request_id']}/approve").status == 403
    approved = admin.post(f"/v1/admin/funding/requests/{asked.body['request']['request_id']}/approve")
    assert approved.status == 200 and approved.body["request"]["status"] == "approved", approved.body
    # THEN the cash is theirs, in their ledger, and they can trade
    portfolio = user.get("/v1/portfolio").body["portfolio"]
    assert portfolio["cash"] == "2500", portfolio
    entries = user.get("/v1/ledger").body["entries"]
    assert [e["kind"] for e in entries] == ["deposit"]
    placed = user.post("/v1/orders", order)
    assert placed.status == 202, placed.body
    # AND a withdrawal beyond settled, unreserved cash is refused when asked
    too_much = user.post("/v1/funding/withdrawals", {"amount": "2500.00", "client_request_id": f"wd-{tag}"})
    assert (too_much.status, too_much.body["error"]["code"]) == (422, "insufficient_funds"), too_much.body
    # AND the operator's withdrawal, run twice with one request id, moves the cash once
    args = ("accounts", "withdraw", "--account", account_id, "--amount", "100.00", "--request-id", f"out-{tag}")
    first, second = (json.loads(_nexus(local_platform, *args).stdout) for _ in range(2))
    assert first == second and first["status"] == "approved"
    assert user.get("/v1/portfolio").body["portfolio"]["cash"] == "2400"
    # AND reconciliation finds no break of this account or of funding
    result = _nexus(local_platform, "reconcile", "--wait", "30", check=False)
    breaks = [line for line in result.stdout.splitlines() if "BREAK" in line]
    assert not [b for b in breaks if account_id in b or "funding" in b or "deposit" in b or "withdrawal" in b
                or "conserved" in b], breaks  # fmt: skip
