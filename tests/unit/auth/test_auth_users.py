"""Users: registration without enumeration, login without telling why, lockout, profile, accounts,
the acting account, roles, admin halts and kill switches (audited)."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from conftest import STRONG_PASSWORD, Edge, register_and_login
from nexus_auth import admin_api, api
from nexus_auth.passwords import Passwords
from nexus_common.ratelimit import RateLimited


def login(edge: Edge, email: str, password: str) -> Any:
    return edge.call(api.app, "POST", "/v1/auth/login", public=True, body={"email": email, "password": password})


@pytest.mark.parametrize(
    "password",
    ["short", "aaaaaaaaaaaaaaaa", "password1234", "x" * 129, "ada-lovelace-1815", "tab\tin the middle"],
)
def test_the_password_policy_refuses_weak_passwords(edge: Edge, password: str) -> None:
    answer = edge.call(api.app, "POST", "/v1/auth/register", public=True,
                       body={"email": "ada-lovelace@example.com", "password": password})
    assert answer.status == 400 and answer.body["error"]["field"] == "password"


def test_registering_a_taken_email_answers_exactly_like_a_new_one(edge: Edge) -> None:
    body = {"email": "dup@example.com", "password": STRONG_PASSWORD}
    first = edge.call(api.app, "POST", "/v1/auth/register", public=True, body=body)
    second = edge.call(api.app, "POST", "/v1/auth/register", public=True,
                       body={"email": "DUP@example.com", "password": "another fine passphrase"})
    assert (first.status, first.body) == (second.status, second.body) == (202, first.body)
    # AND the original password still logs in; the second did not take over the address
    assert login(edge, "dup@example.com", STRONG_PASSWORD).status == 200
    assert login(edge, "dup@example.com", "another fine passphrase").status == 401
    assert "register_duplicate" in edge.audit_kinds()


def test_wrong_password_and_unknown_user_answer_the_same_after_the_same_work(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_and_login(edge, "known@example.com")
    verified: list[bool] = []
    real_verify = Passwords.verify

    def counting(self: Passwords, stored: str | None, password: str) -> bool:
        verified.append(stored is None)
        return real_verify(self, stored, password)

    monkeypatch.setattr(Passwords, "verify", counting)
    wrong = login(edge, "known@example.com", "not the password at all")
    unknown = login(edge, "nobody@example.com", "not the password at all")
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)
    assert wrong.status == 401 and wrong.body["error"]["code"] == "invalid_credentials"
    # both ran one argon2 verification: against the user's hash, and against the dummy hash
    assert verified == [False, True]


def test_repeated_failures_lock_the_address_until_the_cool_down(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_and_login(edge, "brute@example.com")
    service = api.service()
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    # WHEN five wrong passwords are tried
    for _ in range(5):
        with pytest.raises(Exception, match="invalid email or password"):
            service.login("brute@example.com", "guess guess guess", now)
    # THEN even the right password is refused while locked, with a Retry-After
    with pytest.raises(RateLimited) as locked:
        service.login("brute@example.com", STRONG_PASSWORD, now + timedelta(minutes=1))
    assert locked.value.code == "login_locked" and locked.value.retry_after == 14 * 60
    # AND over HTTP too, on the API's clock two minutes in: 429 with the lock's remaining Retry-After
    monkeypatch.setattr(api, "utc_now", lambda: now + timedelta(minutes=2))
    answer = login(edge, "brute@example.com", STRONG_PASSWORD)
    assert answer.status == 429 and int(answer.headers["Retry-After"]) == 13 * 60
    assert answer.body["error"]["code"] == "login_locked"
    # AND after the cool-down the right password works again
    assert service.login("brute@example.com", STRONG_PASSWORD, now + timedelta(days=1)).user_id
    # AND an unknown address locks the same way (no enumeration through the lock)
    for _ in range(5):
        with pytest.raises(Exception, match="invalid email or password"):
            service.login("ghost@example.com", "guess guess guess", now)
    with pytest.raises(RateLimited):
        service.login("ghost@example.com", "guess guess guess", now)
    # AND failures far apart do not add up to a lock: a streak is forgotten after the cool-down
    for day in range(2, 8):
        with pytest.raises(Exception, match="invalid email or password"):
            service.login("brute@example.com", "guess guess guess", now + timedelta(days=day))
    assert service.login("brute@example.com", STRONG_PASSWORD, now + timedelta(days=9)).user_id
    kinds = edge.audit_kinds()
    assert kinds.count("login_failed") >= 10 and "login_locked" in kinds and "login" in kinds


def test_profile_update_and_a_second_account(edge: Edge) -> None:
    session = register_and_login(edge, "multi@example.com")
    token = session["access_token"]
    opened = edge.call(api.app, "POST", "/v1/users/me/accounts", credential=token, body={"name": "Savings"})
    assert opened.status == 201
    second = opened.body["account"]["account_id"]
    profile = edge.call(api.app, "GET", "/v1/users/me", credential=token).body["user"]
    assert profile["accounts"][1] == second and profile["default_account_id"] == profile["accounts"][0]
    # WHEN the default account and name change THEN the profile says so
    changed = edge.call(api.app, "PATCH", "/v1/users/me", credential=token,
                        body={"name": "Multi Account", "default_account_id": second})
    assert changed.status == 200 and changed.body["user"]["default_account_id"] == second
    assert changed.body["user"]["name"] == "Multi Account"
    # AND someone else's account cannot be made the default
    other = register_and_login(edge, "other@example.com")
    other_account = edge.call(api.app, "GET", "/v1/users/me", credential=other["access_token"]).body["user"]
    refused = edge.call(api.app, "PATCH", "/v1/users/me", credential=token,
                        body={"default_account_id": other_account["accounts"][0]})
    assert refused.status == 400 and refused.body["error"]["field"] == "default_account_id"


def test_the_acting_account_follows_x_account_id_only_for_owned_accounts(edge: Edge) -> None:
    session = register_and_login(edge, "acting@example.com")
    token = session["access_token"]
    second = edge.call(api.app, "POST", "/v1/users/me/accounts", credential=token,
                       body={"name": "Second"}).body["account"]["account_id"]
    profile = edge.call(api.app, "GET", "/v1/users/me", credential=token).body["user"]
    default_ctx = edge.authorize(edge.event("GET", "/v1/orders", headers={"Authorization": f"Bearer {token}"}))
    assert isinstance(default_ctx, dict) and default_ctx["account_id"] == profile["default_account_id"]
    chosen = edge.authorize(edge.event("GET", "/v1/orders",
                                       headers={"Authorization": f"Bearer {token}", "X-Account-Id": second}))
    assert isinstance(chosen, dict) and chosen["account_id"] == second
    assert set(chosen["accounts"].split(",")) == set(profile["accounts"])
    other = register_and_login(edge, "notmine@example.com")
    foreign = edge.call(api.app, "GET", "/v1/users/me", credential=other["access_token"]).body["user"]["accounts"][0]
    denied = edge.authorize(edge.event("GET", "/v1/orders",
                                       headers={"Authorization": f"Bearer {token}", "X-Account-Id": foreign}))
    assert not isinstance(denied, dict) and denied.status == 403


def make_admin(edge: Edge, email: str) -> dict[str, Any]:
    session = register_and_login(edge, email)
    api.service().change_role(session["user_id"], "admin", True, "operator")
    return session


def test_admin_routes_are_refused_to_traders_and_compliance_reads_only(edge: Edge) -> None:
    trader = register_and_login(edge, "trader@example.com")
    body = {"reason": "test"}
    for method, resource, params, payload in (
        ("POST", "/v1/admin/instruments/{symbol}/halt", {"symbol": "AAPL"}, body),
        ("PUT", "/v1/admin/accounts/{account_id}/trading", {"account_id": "acc_x"},
         {"trading_enabled": False, "reason": "x"}),
        ("GET", "/v1/admin/users/{user_id}", {"user_id": trader["user_id"]}, None),
        ("POST", "/v1/admin/users/{user_id}/roles", {"user_id": trader["user_id"]}, {"role": "admin"}),
    ):
        answer = edge.call(admin_api.app, method, resource, credential=trader["access_token"], path_params=params,
                           body=payload)
        assert answer.status == 403 and answer.body["error"]["code"] == "forbidden", (resource, answer.body)
    officer = register_and_login(edge, "compliance@example.com")
    api.service().change_role(officer["user_id"], "compliance", True, "operator")
    read = edge.call(admin_api.app, "GET", "/v1/admin/users/{user_id}", credential=officer["access_token"],
                     path_params={"user_id": trader["user_id"]})
    assert read.status == 200 and read.body["user"]["user_id"] == trader["user_id"]
    halt = edge.call(admin_api.app, "POST", "/v1/admin/instruments/{symbol}/halt", credential=officer["access_token"],
                     path_params={"symbol": "AAPL"}, body=body)
    assert halt.status == 403
    assert "role_granted" in edge.audit_kinds()


def test_an_admin_halts_a_symbol_and_switches_an_account_off_each_audited(edge: Edge, aws: Any) -> None:
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    ddb.Table(aws.table_name("InstrumentsTable")).put_item(
        Item={"symbol": "AAPL", "status": "active", "tick_size": "0.01", "lot_size": "1"}
    )
    admin = make_admin(edge, "root@example.com")
    victim = register_and_login(edge, "switched@example.com")
    account = edge.call(api.app, "GET", "/v1/users/me", credential=victim["access_token"]).body["user"]["accounts"][0]
    token = admin["access_token"]
    halted = edge.call(admin_api.app, "POST", "/v1/admin/instruments/{symbol}/halt", credential=token,
                       path_params={"symbol": "AAPL"}, body={"reason": "news pending"})
    assert halted.status == 200 and halted.body == {"instrument": {"symbol": "AAPL", "status": "halted"}}
    assert ddb.Table(aws.table_name("InstrumentsTable")).get_item(Key={"symbol": "AAPL"})["Item"]["status"] == "halted"
    off = edge.call(admin_api.app, "PUT", "/v1/admin/accounts/{account_id}/trading", credential=token,
                    path_params={"account_id": account}, body={"trading_enabled": False, "reason": "margin call"})
    assert off.status == 200 and off.body["account"] == {"account_id": account, "trading_enabled": False}
    item = ddb.Table(aws.table_name("AccountsTable")).get_item(Key={"account_id": account})["Item"]
    assert item["trading_enabled"] is False
    # unknown symbols and accounts answer 404 and change nothing
    for resource, params, payload in (
        ("/v1/admin/instruments/{symbol}/halt", {"symbol": "NOPE"}, {"reason": "x"}),
        ("/v1/admin/accounts/{account_id}/trading", {"account_id": "acc_missing"},
         {"trading_enabled": False, "reason": "x"}),
    ):
        method = "POST" if "symbol" in params else "PUT"
        assert edge.call(admin_api.app, method, resource, credential=token, path_params=params,
                         body=payload).status == 404
    resumed = edge.call(admin_api.app, "POST", "/v1/admin/instruments/{symbol}/resume", credential=token,
                        path_params={"symbol": "AAPL"}, body={"reason": "news out"})
    assert resumed.body["instrument"]["status"] == "active"
    events = {e["kind"]: e for e in edge.audit_events()}
    assert events["symbol_halted"]["aggregate_id"] == "AAPL" and events["symbol_halted"]["actor"] == admin["user_id"]
    assert events["kill_switch_on"]["aggregate_id"] == account
    assert events["kill_switch_on"]["details"]["reason"] == "margin call"
    assert "symbol_resumed" in events


def test_no_password_token_or_key_reaches_a_log_line(edge: Edge) -> None:
    from nexus_auth import authorizer

    stream = io.StringIO()
    loggers = [api.logger, admin_api.logger, authorizer.logger]
    for logger in loggers:
        logger.logger_handler.setStream(stream)
    secret_password = "a very secret passphrase 42"
    try:
        session = register_and_login(edge, "quiet@example.com", secret_password)
        login(edge, "quiet@example.com", "wrong " + secret_password)
        created = edge.call(api.app, "POST", "/v1/keys", credential=session["access_token"],
                            body={"name": "bot", "scopes": ["read"]})
        refreshed = edge.call(api.app, "POST", "/v1/auth/refresh", public=True,
                              body={"refresh_token": session["refresh_token"]})
        edge.call(api.app, "GET", "/v1/keys", credential=created.body["api_key"])
        edge.call(api.app, "GET", "/v1/users/me", credential="eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
        edge.call(api.app, "POST", "/v1/auth/logout", credential=refreshed.body["access_token"])
    finally:
        for logger in loggers:
            logger.logger_handler.setStream(sys.stdout)
    output = stream.getvalue()
    assert "allowed" in output and "denied" in output
    secrets = [secret_password, session["access_token"], session["refresh_token"], created.body["api_key"],
               refreshed.body["access_token"], refreshed.body["refresh_token"]]
    for secret in secrets:
        assert secret not in output
        assert secret[len(secret) // 2:] not in output
