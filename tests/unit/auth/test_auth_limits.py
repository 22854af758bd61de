"""Limits per user, whatever the credential: rate limits shared by a user's keys and sessions
(and per account for order entry), and caps on keys, accounts and alerts (409 limit_reached)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Edge, register_and_login
from nexus_auth import api


def order_refusals(edge: Edge, credentials: list[str], requests: int) -> int:
    """How many of ``requests`` order entries (round robin over ``credentials``) the authorizer
    finds over the rate limits (its context ``retry_after`` > 0: the API answers 429)."""
    refused = 0
    for i in range(requests):
        credential = credentials[i % len(credentials)]
        event = edge.event("POST", "/v1/orders", headers={"Authorization": f"Bearer {credential}"})
        context = edge.authorize(event)
        assert isinstance(context, dict), context
        refused += int(context["retry_after"]) > 0
    return refused


def new_keys(edge: Edge, token: str, count: int) -> list[str]:
    keys = []
    for i in range(count):
        created = edge.call(api.app, "POST", "/v1/keys", credential=token,
                            body={"name": f"bot {i}", "scopes": ["read", "trade"]})
        assert created.status == 201, created.body
        keys.append(created.body["api_key"])
    return keys


def test_more_keys_buy_no_more_order_entry(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order-entry limit of a burst of 5 (and hardly any refill)
    monkeypatch.setenv("RATE_LIMIT_ORDERS", "0.001/5")
    one = register_and_login(edge, "onekey@example.com")
    many = register_and_login(edge, "fivekeys@example.com")
    single = new_keys(edge, one["access_token"], 1)
    five = new_keys(edge, many["access_token"], 5)
    # WHEN each user sends 15 orders, one user with one key, the other spread over five keys
    # and the login token
    alone = order_refusals(edge, single, 15)
    spread = order_refusals(edge, [*five, many["access_token"]], 15)
    # THEN both get the same ten refusals: the limit is the user's, not the key's
    assert alone == 10
    assert spread == 10


def test_order_entry_is_limited_per_account_too(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order-entry burst of 3, and two users
    monkeypatch.setenv("RATE_LIMIT_ORDERS", "0.001/3")
    ada = register_and_login(edge, "acct-a@example.com")
    bob = register_and_login(edge, "acct-b@example.com")
    # WHEN ada spends her burst
    assert order_refusals(edge, [ada["access_token"]], 3) == 0
    # THEN her next order is refused, while bob's (another user, another account) are not
    assert order_refusals(edge, [ada["access_token"]], 1) == 1
    assert order_refusals(edge, [bob["access_token"]], 3) == 0


def test_a_user_holds_at_most_the_cap_of_active_keys(edge: Edge) -> None:
    # GIVEN a user at the default cap of 20 active keys
    session = register_and_login(edge, "keycap@example.com")
    token = session["access_token"]
    new_keys(edge, token, 20)
    # WHEN a 21st is asked for
    refused = edge.call(api.app, "POST", "/v1/keys", credential=token, body={"name": "one more", "scopes": ["read"]})
    # THEN 409 limit_reached, and no key was written
    assert refused.status == 409 and refused.body["error"]["code"] == "limit_reached"
    listed = edge.call(api.app, "GET", "/v1/keys", credential=token).body["keys"]
    assert len(listed) == 20
    # AND revoking one frees its place (once: revoking it again frees nothing)
    key_id = listed[0]["key_id"]
    for _ in range(2):
        revoked = edge.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=token, path_params={"key_id": key_id})
        assert revoked.status == 200
    assert edge.call(api.app, "POST", "/v1/keys", credential=token,
                     body={"name": "replacement", "scopes": ["read"]}).status == 201
    assert edge.call(api.app, "POST", "/v1/keys", credential=token,
                     body={"name": "too many", "scopes": ["read"]}).status == 409


def test_a_user_owns_at_most_the_cap_of_accounts_even_through_an_api_key(edge: Edge) -> None:
    # GIVEN a user with a trade key (registration opened the first account)
    session = register_and_login(edge, "acccap@example.com")
    key = new_keys(edge, session["access_token"], 1)[0]
    # WHEN the key opens accounts until the default cap of 10
    answers = [
        edge.call(api.app, "POST", "/v1/users/me/accounts", credential=key, body={"name": f"acct {i}"}).status
        for i in range(10)
    ]
    # THEN nine more are opened and the tenth answers 409 limit_reached
    assert answers == [201] * 9 + [409]
    refused = edge.call(api.app, "POST", "/v1/users/me/accounts", credential=key, body={"name": "again"})
    assert refused.body["error"]["code"] == "limit_reached"
    me = edge.call(api.app, "GET", "/v1/users/me", credential=session["access_token"]).body["user"]
    assert len(me["accounts"]) == 10


def test_alerts_are_capped_per_user(edge: Edge, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_common.instrument_store import DynamoInstruments
    from nexus_common.instruments import DEMO_INSTRUMENTS
    from nexus_notifications import api as notifications_api

    # GIVEN the alerts API with a cap of 3 alerts per user
    aws.use_function_env("NotificationsApiFunction")
    monkeypatch.setenv("MAX_ALERTS_PER_USER", "3")
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(DEMO_INSTRUMENTS)
    session = register_and_login(edge, "alertcap@example.com")
    token = session["access_token"]
    body = {"symbol": "AAPL", "type": "above", "price": "500"}
    # WHEN four alerts are set
    answers = [edge.call(notifications_api.app, "POST", "/v1/alerts", credential=token, body=body) for _ in range(4)]
    # THEN three are armed and the fourth answers 409 limit_reached
    assert [a.status for a in answers] == [201, 201, 201, 409]
    assert answers[3].body["error"]["code"] == "limit_reached"
    listed = edge.call(notifications_api.app, "GET", "/v1/alerts", credential=token).body["alerts"]
    assert len(listed) == 3


def test_a_user_from_before_the_count_is_capped_on_the_keys_they_hold(
    edge: Edge, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    # GIVEN a cap of 4 keys, and a user holding 3 active keys whose item has no key count yet
    monkeypatch.setenv("MAX_API_KEYS_PER_USER", "4")
    session = register_and_login(edge, "oldkeys@example.com")
    token = session["access_token"]
    new_keys(edge, token, 3)
    users = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("UsersTable"))
    users.update_item(Key={"pk": f"user#{session['user_id']}"}, UpdateExpression="REMOVE active_keys")
    # WHEN two more keys are asked for
    answers = [edge.call(api.app, "POST", "/v1/keys", credential=token, body={"name": f"k{i}", "scopes": ["read"]})
               for i in range(2)]
    # THEN the count starts from the 3 keys held: one more fits, the next answers 409
    assert [a.status for a in answers] == [201, 409]
    assert answers[1].body["error"]["code"] == "limit_reached"
