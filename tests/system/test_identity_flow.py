"""Identity end to end over HTTP against the whole local platform: register, log in, create an API
key, trade with either credential, refresh, log out; IDOR, scopes, admin kill switch, public docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import boto3
import pytest
from helpers import eventually
from http_client import Api, resting_buy_price

pytestmark = pytest.mark.system

PASSWORD = "a long and unusual passphrase"


def _fund(platform: Any, account_id: str, cash: str) -> None:
    """The operator's deposit (there is no deposit API): set the new account's opening cash."""
    boto3.resource("dynamodb", endpoint_url=platform.aws_endpoint, region_name="us-east-1").Table(
        platform.table("AccountsTable")
    ).update_item(Key={"account_id": account_id}, UpdateExpression="SET cash = :c",
                  ExpressionAttributeValues={":c": Decimal(cash)})


def _order(price: str, symbol: str = "AMZN", side: str = "buy") -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "type": "limit", "quantity": "1", "price": price,
            "time_in_force": "day"}


def _resting(api: Api, cents: int = 0, symbol: str = "AMZN") -> str:
    return resting_buy_price(api, symbol, cents)


def _register_and_login(api: Api, email: str) -> dict[str, Any]:
    registered = api.post("/v1/auth/register", {"email": email, "password": PASSWORD, "name": "Flow"})
    assert registered.status == 202, registered.body
    login = api.post("/v1/auth/login", {"email": email, "password": PASSWORD})
    assert login.status == 200, login.body
    return dict(login.body)


def test_register_login_key_trade_refresh_logout(local_platform: Any) -> None:
    public = Api(local_platform.api_url)
    email = f"flow-{uuid.uuid4().hex[:8]}@example.com"
    # GIVEN a new user who registered and logged in
    session = _register_and_login(public, email)
    user = Api(local_platform.api_url, session["access_token"])
    me = user.get("/v1/users/me")
    assert me.status == 200 and me.body["user"]["email"] == email
    account_id = me.body["user"]["default_account_id"]
    _fund(local_platform, account_id, "10000.00")
    # WHEN they create a trading API key THEN it is shown once
    created = user.post("/v1/keys", {"name": "bot", "scopes": ["read", "trade"]})
    assert created.status == 201, created.body
    bot = Api(local_platform.api_url, created.body["api_key"])
    # AND both credentials trade for the same account
    with_key = bot.post("/v1/orders", _order(_resting(bot)))
    with_token = user.post("/v1/orders", _order(_resting(user, 1)))
    assert with_key.status == 202 and with_token.status == 202, (with_key.body, with_token.body)
    assert with_key.body["order"]["account_id"] == with_token.body["order"]["account_id"] == account_id
    order_id = with_key.body["order"]["order_id"]
    assert user.get(f"/v1/orders/{order_id}").status == 200
    # AND another trader cannot see or cancel that order (IDOR: 404, not 403)
    alice = Api(local_platform.api_url, local_platform.demo_accounts[0]["api_key"])
    assert alice.get(f"/v1/orders/{order_id}").status == 404
    assert alice.delete(f"/v1/orders/{order_id}").status == 404
    assert user.get(f"/v1/orders/{order_id}").body["order"]["status"] != "cancelled"
    # AND a read-only key reads but cannot trade
    reader = Api(local_platform.api_url, user.post("/v1/keys", {"name": "ro", "scopes": ["read"]}).body["api_key"])
    assert reader.get("/v1/orders").status == 200
    refused = reader.post("/v1/orders", _order(_resting(reader)))
    assert refused.status == 403 and refused.body["error"]["code"] == "forbidden"
    # WHEN the session is refreshed THEN the new access token works and the old refresh token is spent
    refreshed = public.post("/v1/auth/refresh", {"refresh_token": session["refresh_token"]})
    assert refreshed.status == 200, refreshed.body
    renewed = Api(local_platform.api_url, refreshed.body["access_token"])
    assert renewed.get("/v1/orders").status == 200
    # WHEN they log out THEN the access token stops working at once where the authorizer reads
    # afresh, and on the orders routes within AuthorizerCacheSeconds; the refresh token at once;
    # the key goes on
    assert renewed.post("/v1/auth/logout").status == 200
    assert renewed.get("/v1/users/me").status == 401
    assert eventually(lambda: renewed.get("/v1/orders").status, lambda status: status == 401) == 401
    assert public.post("/v1/auth/refresh", {"refresh_token": refreshed.body["refresh_token"]}).status == 401
    assert bot.get("/v1/orders").status == 200
    # AND the revoked key is refused: at once on the profile, within the bound on the orders routes
    key_id = created.body["key"]["key_id"]
    again = _register_and_login(public, email)
    assert Api(local_platform.api_url, again["access_token"]).delete(f"/v1/keys/{key_id}").status == 200
    assert bot.get("/v1/users/me").status == 401
    assert eventually(lambda: bot.get("/v1/orders").status, lambda status: status == 401) == 401


def test_an_operator_grants_admin_and_the_admin_switches_an_account_off(local_platform: Any) -> None:
    public = Api(local_platform.api_url)
    trader_email, admin_email = (f"{who}-{uuid.uuid4().hex[:8]}@example.com" for who in ("trader", "admin"))
    trader = Api(local_platform.api_url, _register_and_login(public, trader_email)["access_token"])
    account_id = trader.get("/v1/users/me").body["user"]["default_account_id"]
    _fund(local_platform, account_id, "1000.00")
    admin_session = _register_and_login(public, admin_email)
    admin = Api(local_platform.api_url, admin_session["access_token"])
    # a trader is refused the admin routes
    body = {"trading_enabled": False, "reason": "kill switch drill"}
    assert trader.call("PUT", f"/v1/admin/accounts/{account_id}/trading", body).status == 403
    assert admin.call("PUT", f"/v1/admin/accounts/{account_id}/trading", body).status == 403
    # WHEN an operator runs `nexus users grant --role admin`
    env = {**os.environ, "NEXUS_STAGE": local_platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": local_platform.aws_endpoint}
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "users", "grant", "--user", admin_email, "--role", "admin"],
        capture_output=True, text=True, env=env, check=True,
    )
    assert json.loads(out.stdout)["roles"] == ["trader", "admin"]
    # THEN the admin's next request may switch the trader's account off, and its orders are refused
    switched = admin.call("PUT", f"/v1/admin/accounts/{account_id}/trading", body)
    assert switched.status == 200, switched.body
    refused = trader.post("/v1/orders", _order(_resting(trader)))
    assert 400 <= refused.status < 500 and refused.status != 429, refused.body
    back = admin.call("PUT", f"/v1/admin/accounts/{account_id}/trading",
                      {"trading_enabled": True, "reason": "drill over"})
    assert back.status == 200
    assert trader.post("/v1/orders", _order(_resting(trader))).status == 202


def test_openapi_and_docs_are_public_and_describe_the_auth_routes(local_platform: Any) -> None:
    public = Api(local_platform.api_url)
    document = public.get("/openapi.json")
    assert document.status == 200 and document.body["openapi"].startswith("3.")
    assert {"/v1/auth/login", "/v1/keys", "/v1/orders"} <= set(document.body["paths"])
    assert document.body["paths"]["/v1/auth/login"]["post"]["security"] == []
    docs = public.get("/docs")
    assert docs.status == 200 and "/v1/auth/login" in docs.body
    assert public.get("/v1/users/me").status == 401


def test_another_traders_resources_answer_404_on_every_id_route(local_platform: Any) -> None:
    # GIVEN a victim with an open order and a price alert
    public = Api(local_platform.api_url)
    victim_session = _register_and_login(public, f"victim-{uuid.uuid4().hex[:8]}@example.com")
    victim = Api(local_platform.api_url, victim_session["access_token"])
    account_id = victim.get("/v1/users/me").body["user"]["default_account_id"]
    _fund(local_platform, account_id, "1000.00")
    price, other_price = _resting(victim, 3), _resting(victim, 4)
    order = victim.post("/v1/orders", _order(price))
    assert order.status == 202, order.body
    order_id = order.body["order"]["order_id"]
    alert = victim.post("/v1/alerts", {"symbol": "AMZN", "type": "above", "price": "999.00"})
    assert alert.status == 201, alert.body
    alert_id = alert.body["alert"]["alert_id"]
    key = victim.post("/v1/keys", {"name": "bot", "scopes": ["read"]}).body["key"]["key_id"]
    # WHEN another trader (a demo account's key, and a logged-in user) tries every {id} route on them
    bob = Api(local_platform.api_url, local_platform.demo_accounts[1]["api_key"])
    mallory = Api(local_platform.api_url, _register_and_login(public, f"m-{uuid.uuid4().hex[:8]}@example.com")
                  ["access_token"])
    for attacker in (bob, mallory):
        assert attacker.get(f"/v1/orders/{order_id}").status == 404
        assert attacker.delete(f"/v1/orders/{order_id}").status == 404
        assert attacker.call("PATCH", f"/v1/orders/{order_id}", {"price": other_price}).status == 404
        assert attacker.get(f"/v1/orders/oco/{order_id}").status == 404
        assert attacker.delete(f"/v1/orders/oco/{order_id}").status == 404
        assert attacker.delete(f"/v1/alerts/{alert_id}").status == 404
        assert attacker.delete(f"/v1/keys/{key}").status in (403, 404)  # keys: a session's own only
        # AND naming the victim's account as the acting account is refused outright
        assert attacker.get("/v1/orders", headers={"X-Account-Id": account_id}).status == 403
    # THEN the victim's order, alert and key are untouched
    mine = victim.get(f"/v1/orders/{order_id}").body["order"]
    assert mine["status"] in ("pending_new", "new") and mine["price"] == price
    assert [a["alert_id"] for a in victim.get("/v1/alerts").body["alerts"]] == [alert_id]
    assert [k["status"] for k in victim.get("/v1/keys").body["keys"]] == ["active"]


def test_x_account_id_picks_the_acting_account_on_every_request(local_platform: Any) -> None:
    # GIVEN a user with two funded accounts (the authorizer's answers are not cached per token)
    public = Api(local_platform.api_url)
    user = Api(local_platform.api_url, _register_and_login(public, f"two-{uuid.uuid4().hex[:8]}@example.com")
               ["access_token"])
    first = user.get("/v1/users/me").body["user"]["default_account_id"]
    second = user.post("/v1/users/me/accounts", {"name": "Second"}).body["account"]["account_id"]
    for account in (first, second):
        _fund(local_platform, account, "500.00")
    # WHEN an order is placed for the second account, then the orders are listed with and without the header
    placed = user.post("/v1/orders", _order(_resting(user, 5)), headers={"X-Account-Id": second})
    assert placed.status == 202 and placed.body["order"]["account_id"] == second
    default_list = user.get("/v1/orders").body["orders"]
    second_list = user.get("/v1/orders", headers={"X-Account-Id": second}).body["orders"]
    # THEN each request acted for the account it named
    assert placed.body["order"]["order_id"] not in [o["order_id"] for o in default_list]
    assert [o["order_id"] for o in second_list] == [placed.body["order"]["order_id"]]
    assert user.get(f"/v1/orders/{placed.body['order']['order_id']}").status == 404  # default account: not its order


def test_rotating_the_signing_key_logs_nobody_out(local_platform: Any) -> None:
    # GIVEN a logged-in user
    public = Api(local_platform.api_url)
    email = f"rot-{uuid.uuid4().hex[:8]}@example.com"
    before = Api(local_platform.api_url, _register_and_login(public, email)["access_token"])
    assert before.get("/v1/users/me").status == 200
    # WHEN an operator rotates the signing key
    env = {**os.environ, "NEXUS_STAGE": local_platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": local_platform.aws_endpoint}
    out = subprocess.run([sys.executable, "-m", "nexus.cli", "auth", "rotate-signing-key"],
                         capture_output=True, text=True, env=env, check=True)
    assert len(json.loads(out.stdout)["kid"]) == 16
    # THEN the token signed before still works, and so does a new login
    assert before.get("/v1/users/me").status == 200
    after = Api(local_platform.api_url, public.post("/v1/auth/login", {"email": email, "password": PASSWORD})
                .body["access_token"])
    assert after.get("/v1/users/me").status == 200
