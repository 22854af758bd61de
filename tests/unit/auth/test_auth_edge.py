"""API keys through the edge (scopes, IDOR, session-only management), hostile input, rate limits,
and the WebSocket $connect authorizer event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Edge, register_and_login
from lambda_events import FakeLambdaContext
from nexus_auth import admin_api, api, authorizer

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    '{"$gt": ""}',
    "{'$ne': null}",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "admin\r\nX-Injected: 1",
    "<script>alert(1)</script>",
    "${jndi:ldap://example.com/a}",
    "\u0000nul",
    "usr_" + "0" * 32,
    "x" * 5000,
]


def test_an_api_key_is_shown_once_listed_without_secret_and_revoked(edge: Edge) -> None:
    session = register_and_login(edge, "keys@example.com")
    token = session["access_token"]
    created = edge.call(api.app, "POST", "/v1/keys", credential=token,
                        body={"name": "bot", "scopes": ["read", "trade"]})
    assert created.status == 201 and created.body["api_key"].startswith("nxk_")
    assert created.headers.get("Cache-Control") == "no-store"
    key, key_id = created.body["api_key"], created.body["key"]["key_id"]
    listed = edge.call(api.app, "GET", "/v1/keys", credential=token)
    assert [k["key_id"] for k in listed.body["keys"]] == [key_id]
    assert key not in json.dumps(listed.body)
    # the key is accepted wherever a token is
    assert edge.call(api.app, "GET", "/v1/users/me", credential=key).body["user"]["user_id"] == session["user_id"]
    revoked = edge.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=token, path_params={"key_id": key_id})
    assert revoked.status == 200 and revoked.body["key"]["status"] == "revoked"
    edge.pass_authorizer_bound()
    assert edge.call(api.app, "GET", "/v1/users/me", credential=key).status == 401
    kinds = edge.audit_kinds()
    assert "api_key_created" in kinds and "api_key_revoked" in kinds


def test_a_read_key_cannot_use_any_method_that_changes_state(edge: Edge) -> None:
    session = register_and_login(edge, "reader@example.com")
    key = edge.call(api.app, "POST", "/v1/keys", credential=session["access_token"],
                    body={"name": "ro", "scopes": ["read"]}).body["api_key"]
    allowed = edge.authorize(edge.event("GET", "/v1/orders", headers={"Authorization": f"Bearer {key}"}))
    assert isinstance(allowed, dict) and allowed["scopes"] == "read"
    for method, resource in (("POST", "/v1/orders"), ("DELETE", "/v1/orders/ord_1"), ("POST", "/v1/keys"),
                             ("PUT", "/v1/admin/accounts/acc_1/trading")):
        denied = edge.authorize(edge.event(method, resource, headers={"Authorization": f"Bearer {key}"}))
        assert not isinstance(denied, dict) and denied.status == 403, (method, resource)


def test_keys_are_managed_with_a_login_session_only(edge: Edge) -> None:
    session = register_and_login(edge, "mint@example.com")
    key = edge.call(api.app, "POST", "/v1/keys", credential=session["access_token"],
                    body={"name": "bot", "scopes": ["read", "trade"]}).body
    minted = edge.call(api.app, "POST", "/v1/keys", credential=key["api_key"],
                       body={"name": "more", "scopes": ["trade"]})
    assert minted.status == 403 and minted.body["error"]["code"] == "session_required"
    killed = edge.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=key["api_key"],
                       path_params={"key_id": key["key"]["key_id"]})
    assert killed.status == 403


def test_idor_another_users_key_answers_404_and_stays_active(edge: Edge) -> None:
    owner = register_and_login(edge, "owner@example.com")
    thief = register_and_login(edge, "thief@example.com")
    key = edge.call(api.app, "POST", "/v1/keys", credential=owner["access_token"],
                    body={"name": "bot", "scopes": ["read"]}).body
    answer = edge.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=thief["access_token"],
                       path_params={"key_id": key["key"]["key_id"]})
    assert answer.status == 404 and answer.body["error"]["code"] == "key_not_found"
    assert edge.call(api.app, "GET", "/v1/users/me", credential=key["api_key"]).status == 200
    assert edge.call(api.app, "GET", "/v1/keys", credential=thief["access_token"]).body["keys"] == []


def test_a_key_bound_to_an_account_acts_only_for_it(edge: Edge) -> None:
    session = register_and_login(edge, "bound@example.com")
    token = session["access_token"]
    first = edge.call(api.app, "GET", "/v1/users/me", credential=token).body["user"]["accounts"][0]
    second = edge.call(api.app, "POST", "/v1/users/me/accounts", credential=token,
                       body={"name": "B"}).body["account"]["account_id"]
    key = edge.call(api.app, "POST", "/v1/keys", credential=token,
                    body={"name": "b", "scopes": ["trade"], "account_id": second}).body["api_key"]
    context = edge.authorize(edge.event("GET", "/v1/orders", headers={"Authorization": f"Bearer {key}"}))
    assert isinstance(context, dict) and (context["account_id"], context["accounts"]) == (second, second)
    denied = edge.authorize(edge.event("GET", "/v1/orders",
                                       headers={"Authorization": f"Bearer {key}", "X-Account-Id": first}))
    assert not isinstance(denied, dict) and denied.status == 403


def test_injection_strings_in_every_field_get_4xx_and_change_nothing(edge: Edge) -> None:
    session = register_and_login(edge, "inject@example.com")
    token = session["access_token"]
    before = edge.call(api.app, "GET", "/v1/users/me", credential=token).body
    for value in INJECTIONS:
        check_injection(edge, token, before, value)


def check_injection(edge: Edge, token: str, before: dict[str, Any], value: str) -> None:
    calls: list[tuple[Any, str, str, dict[str, Any]]] = [
        (api.app, "POST", "/v1/auth/register", {"public": True, "body": {"email": value, "password": value}}),
        (api.app, "POST", "/v1/auth/login", {"public": True, "body": {"email": value, "password": value}}),
        (api.app, "POST", "/v1/auth/refresh", {"public": True, "body": {"refresh_token": value}}),
        (api.app, "PATCH", "/v1/users/me", {"credential": token, "body": {"default_account_id": value}}),
        (api.app, "POST", "/v1/keys", {"credential": token, "body": {"name": "k", "scopes": [value]}}),
        (api.app, "POST", "/v1/keys", {"credential": token, "body": {"name": "k", "scopes": ["read"],
                                                                      "account_id": value}}),
        (api.app, "DELETE", "/v1/keys/{key_id}", {"credential": token, "path_params": {"key_id": value}}),
        (admin_api.app, "GET", "/v1/admin/users/{user_id}", {"credential": token, "path_params": {"user_id": value}}),
    ]
    for app, method, resource, kwargs in calls:
        answer = edge.call(app, method, resource, **kwargs)
        assert 400 <= answer.status < 500, (resource, value, answer.status, answer.body)
        assert set(answer.body) == {"error"} and {"code", "message"} <= set(answer.body["error"])
    # header injection into the credential and the acting account
    for headers in ({"Authorization": f"Bearer {value}"}, {"Authorization": f"Bearer {token}", "X-Account-Id": value}):
        refused = edge.authorize(edge.event("GET", "/v1/users/me", headers=headers))
        assert not isinstance(refused, dict) and refused.status in (401, 403)
    # names are data, not code: a name with injection text is stored as given (printable), or refused
    named = edge.call(api.app, "PATCH", "/v1/users/me", credential=token, body={"name": value})
    assert named.status in (200, 400)
    after = edge.call(api.app, "GET", "/v1/users/me", credential=token).body
    assert after["user"]["accounts"] == before["user"]["accounts"]
    assert after["user"]["roles"] == before["user"]["roles"] == ["trader"]


def test_oversized_deeply_nested_and_unknown_field_bodies_are_refused(edge: Edge) -> None:
    session = register_and_login(edge, "bodies@example.com")
    token = session["access_token"]
    big = edge.call(api.app, "POST", "/v1/keys", credential=token,
                    raw_body=json.dumps({"name": "x" * 70_000, "scopes": ["read"]}))
    assert big.status == 413 and big.body["error"]["code"] == "payload_too_large"
    deep = '{"name": ' + "[" * 100 + "]" * 100 + "}"
    nested = edge.call(api.app, "POST", "/v1/keys", credential=token, raw_body=deep)
    assert nested.status == 400 and nested.body["error"]["code"] == "malformed_json"
    unknown = edge.call(api.app, "POST", "/v1/keys", credential=token,
                        body={"name": "k", "scopes": ["read"], "admin": True})
    assert unknown.status == 400 and unknown.body["error"] == {
        "code": "unknown_field", "message": "unknown field: admin", "field": "admin"}
    escalate = edge.call(api.app, "PATCH", "/v1/users/me", credential=token, body={"roles": ["admin"]})
    assert escalate.status == 400 and escalate.body["error"]["code"] == "unknown_field"
    for raw in ("", "[]", "null", "{", '{"email": "a@b.co", "email": "c@d.co", "password": "x"}'):
        answer = edge.call(api.app, "POST", "/v1/auth/login", public=True, raw_body=raw)
        assert answer.status == 400 and answer.body["error"]["code"] == "malformed_json", raw
    assert edge.call(api.app, "GET", "/v1/keys", credential=token).body["keys"] == []


def test_rate_limits_answer_429_with_retry_after(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    session = register_and_login(edge, "fast@example.com")
    token = session["access_token"]
    from nexus_common.settings import reset_lazy

    monkeypatch.setenv("RATE_LIMIT_CREDENTIAL", "0.01/3")
    monkeypatch.setenv("RATE_LIMIT_ORDERS", "0.01/1")
    reset_lazy()
    statuses = [edge.call(api.app, "GET", "/v1/users/me", credential=token) for _ in range(4)]
    assert [a.status for a in statuses] == [200, 200, 200, 429]
    assert int(statuses[-1].headers["Retry-After"]) >= 1
    assert statuses[-1].body == {"error": {"code": "rate_limited", "message": "too many requests"}}
    # order entry has its own, stricter bucket (per credential, on top of the general one)
    other = register_and_login(edge, "orders@example.com")["access_token"]
    first = edge.authorize(edge.event("POST", "/v1/orders", headers={"Authorization": f"Bearer {other}"}))
    second = edge.authorize(edge.event("POST", "/v1/orders", headers={"Authorization": f"Bearer {other}"}))
    assert isinstance(first, dict) and first["retry_after"] == "0"
    assert isinstance(second, dict) and int(second["retry_after"]) >= 1
    # per source IP too, whoever the caller is
    monkeypatch.setenv("RATE_LIMIT_CREDENTIAL", "100/100")
    monkeypatch.setenv("RATE_LIMIT_IP", "0.01/2")
    reset_lazy()
    third = register_and_login(edge, "third@example.com")["access_token"]
    answers = [edge.call(api.app, "GET", "/v1/users/me", credential=third, source_ip="203.0.113.9") for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    elsewhere = edge.call(api.app, "GET", "/v1/users/me", credential=third, source_ip="203.0.113.10")
    assert elsewhere.status == 200


def test_the_public_auth_routes_are_limited_per_source_ip(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_common.settings import reset_lazy

    monkeypatch.setenv("RATE_LIMIT_AUTH_IP", "0.01/2")
    reset_lazy()
    body = {"email": "spray@example.com", "password": "whatever whatever"}
    answers = [edge.call(api.app, "POST", "/v1/auth/login", public=True, body=body) for _ in range(3)]
    assert [a.status for a in answers] == [401, 401, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


def websocket_event(headers: dict[str, str] | None = None, token: str | None = None) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:ws0123/live/$connect",
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": {"token": token} if token is not None else None,
        "stageVariables": None,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": "abc123=",
            "apiId": "ws0123",
            "stage": "live",
            "identity": {"sourceIp": "198.51.100.7"},
        },
    }


def test_the_websocket_connect_event_is_authorized_by_header_or_token_parameter(edge: Edge) -> None:
    session = register_and_login(edge, "ws@example.com")
    key = edge.call(api.app, "POST", "/v1/keys", credential=session["access_token"],
                    body={"name": "ws", "scopes": ["read"]}).body["api_key"]
    for event in (websocket_event(token=session["access_token"]),
                  websocket_event(headers={"Authorization": f"Bearer {key}"}),
                  websocket_event(token=key)):
        policy = authorizer.handler(event, FakeLambdaContext())
        statement = policy["policyDocument"]["Statement"][0]
        assert statement["Effect"] == "Allow" and statement["Resource"] == [event["methodArn"]]
        context = policy["context"]
        assert context["user_id"] == session["user_id"] and context["account_id"]
        assert {"user_id", "account_id", "accounts", "roles", "scopes", "key_id"} <= set(context)
    for bad in (websocket_event(), websocket_event(token="nope"), websocket_event(token="nxk_" + "a" * 43)):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorizer.handler(bad, FakeLambdaContext())


def test_when_redis_is_down_requests_are_served_unlimited_and_it_is_logged(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from nexus_common.redis_store import reset_redis_client
    from nexus_common.settings import reset_lazy

    session = register_and_login(edge, "noredis@example.com")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_redis_client()
    reset_lazy()
    stream = io.StringIO()
    authorizer.logger.logger_handler.setStream(stream)
    try:
        answer = edge.call(api.app, "GET", "/v1/users/me", credential=session["access_token"])
    finally:
        authorizer.logger.logger_handler.setStream(sys.stdout)
        reset_redis_client()
    assert answer.status == 200
    assert "rate limiter unavailable" in stream.getvalue()


class CountingReads:
    """The authorizer's real store, with each read counted (the tables are still read)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.reads: list[str] = []

    def get_key(self, key_hash: str) -> dict[str, Any] | None:
        self.reads.append("key")
        return self.source.get_key(key_hash)  # type: ignore[no-any-return]

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        self.reads.append("user")
        return self.source.get_user(user_id)  # type: ignore[no-any-return]

    def get_family(self, family_id: str) -> dict[str, Any] | None:
        self.reads.append("family")
        return self.source.get_family(family_id)  # type: ignore[no-any-return]

    def get_key_and_user(self, key_hash: str, user_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        self.reads.append("key+user")
        return self.source.get_key_and_user(key_hash, user_id)  # type: ignore[no-any-return]


def counted_reads() -> CountingReads:
    kept = authorizer.store()
    counting = CountingReads(kept.source)
    kept.source = counting
    return counting


def authorized(edge: Edge, credential: str, account: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {credential}", **({"X-Account-Id": account} if account else {})}
    return edge.authorize(edge.event("GET", "/v1/orders", headers=headers))


def test_the_authorizer_keeps_good_items_for_its_bound_then_reads_them_again(edge: Edge) -> None:
    # GIVEN a login session that made an API key (its session and user items are kept)
    session = register_and_login(edge, "kept@example.com")
    token = session["access_token"]
    key = edge.call(api.app, "POST", "/v1/keys", credential=token,
                    body={"name": "hot", "scopes": ["read", "trade"]}).body["api_key"]
    reads = counted_reads()
    assert isinstance(authorized(edge, key), dict) and isinstance(authorized(edge, token), dict)
    assert reads.reads == ["key"]  # the key, once; the user item is the one the session read
    edge.pass_authorizer_bound()
    assert isinstance(authorized(edge, token), dict)
    assert isinstance(authorized(edge, key), dict)
    # past the bound: read again; the key with its user, in one request
    assert reads.reads == ["key", "family", "user", "key+user"]
    # WHEN they are used again within the bound THEN nothing is read, and the rate limits still count
    reads.reads.clear()
    for _ in range(3):
        context = authorized(edge, key)
        assert isinstance(context, dict) and context["retry_after"] == "0"
    assert reads.reads == []
    # WHEN the key is revoked THEN it is still served until the bound, and refused after it
    key_id = edge.call(api.app, "GET", "/v1/keys", credential=token).body["keys"][0]["key_id"]
    revoked = edge.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=token, path_params={"key_id": key_id})
    assert revoked.status == 200
    assert isinstance(authorized(edge, key), dict)
    edge.pass_authorizer_bound()
    refused = authorized(edge, key)
    assert not isinstance(refused, dict) and refused.status == 401
    # AND a refused key is not kept: every attempt reads it again (once, not twice)
    reads.reads.clear()
    for _ in range(2):
        assert not isinstance(authorized(edge, key), dict)
    assert reads.reads == ["key", "key"]


def test_a_hot_key_is_read_with_its_user_past_the_bound_and_a_disabled_user_still_counts(edge: Edge) -> None:
    from nexus_auth.passwords import Passwords
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_auth.service import IdentityService
    from nexus_common.audit import KinesisAuditSink

    # GIVEN an API key the authorizer has served (its key and user items kept)
    session = register_and_login(edge, "paired@example.com")
    key = edge.call(api.app, "POST", "/v1/keys", credential=session["access_token"],
                    body={"name": "hot", "scopes": ["read", "trade"]}).body["api_key"]
    assert isinstance(authorized(edge, key), dict)
    reads = counted_reads()
    # WHEN it is used past the bound, then within it
    for _ in range(2):
        edge.pass_authorizer_bound()
        assert isinstance(authorized(edge, key), dict)
        assert isinstance(authorized(edge, key), dict)
    # THEN each bound costs one request for both items, and nothing within it
    assert reads.reads == ["key+user", "key+user"]
    # WHEN the user is disabled THEN the key is refused once the bound has passed
    names = TableNames(edge.aws.table_name("UsersTable"), edge.aws.table_name("ApiKeysTable"),
                       edge.aws.table_name("TokensTable"), edge.aws.table_name("AccountsTable"))
    service = IdentityService(DynamoIdentityStore(names), Passwords(), None,
                              KinesisAuditSink(edge.aws.stream_name("AuditEventsStream")))
    service.disable_user(session["user_id"], "operator")
    assert isinstance(authorized(edge, key), dict)  # within the bound: served on the kept items
    edge.pass_authorizer_bound()
    refused = authorized(edge, key)
    assert not isinstance(refused, dict) and refused.status == 401


def test_a_kept_user_item_never_refuses_a_new_account(edge: Edge) -> None:
    # GIVEN a session whose user item the authorizer keeps
    token = register_and_login(edge, "newacct@example.com")["access_token"]
    assert isinstance(authorized(edge, token), dict)
    # WHEN the user opens another account and acts for it at once
    second = edge.call(api.app, "POST", "/v1/users/me/accounts", credential=token,
                       body={"name": "B"}).body["account"]["account_id"]
    reads = counted_reads()
    context = authorized(edge, token, account=second)
    # THEN it is allowed: the refusal the kept item would give is decided again on fresh reads
    assert isinstance(context, dict) and context["account_id"] == second
    assert reads.reads == ["family", "user"]
    # AND an account the user does not own is denied (403), on fresh reads too
    denied = authorized(edge, token, account="acc_" + "0" * 32)
    assert not isinstance(denied, dict) and denied.status == 403


def test_with_a_bound_of_zero_the_authorizer_reads_every_time(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_common.settings import reset_lazy

    monkeypatch.setenv("AUTHORIZER_CACHE_SECONDS", "0")
    reset_lazy()
    session = register_and_login(edge, "nokeep@example.com")
    token = session["access_token"]
    assert isinstance(authorized(edge, token), dict)
    reads = counted_reads()
    assert isinstance(authorized(edge, token), dict) and isinstance(authorized(edge, token), dict)
    assert reads.reads == ["family", "user", "family", "user"]
    assert edge.call(api.app, "POST", "/v1/auth/logout", credential=token).status == 200
    assert not isinstance(authorized(edge, token), dict)  # at once: nothing is kept


def test_the_kept_items_are_bounded_in_number() -> None:
    from nexus_auth.service import MAX_RECENT_CREDENTIALS, RecentCredentials

    class Source:
        def __init__(self) -> None:
            self.reads = 0

        def get_key(self, key_hash: str) -> dict[str, Any] | None:
            self.reads += 1
            return {"key_hash": key_hash, "status": "active"}

        def get_user(self, user_id: str) -> dict[str, Any] | None:
            return None

        def get_family(self, family_id: str) -> dict[str, Any] | None:
            return None

    now = [0.0]
    source = Source()
    kept = RecentCredentials(source, 2.0, clock=lambda: now[0])
    for n in range(MAX_RECENT_CREDENTIALS + 10):
        now[0] += 0.0001
        assert kept.get_key(f"h{n}") == {"key_hash": f"h{n}", "status": "active"}
    assert len(kept._items) <= MAX_RECENT_CREDENTIALS
    source.reads = 0
    kept.get_key(f"h{MAX_RECENT_CREDENTIALS + 9}")  # the newest are kept
    kept.get_key("h0")  # the oldest were dropped
    assert source.reads == 1
    # a kept item is a copy: changing what a caller got changes nothing kept
    kept.get_key("h1")["status"] = "revoked"
    assert kept.get_key("h1") == {"key_hash": "h1", "status": "active"}


def test_only_the_hot_routes_are_served_on_kept_items(edge: Edge) -> None:
    from nexus_auth.passwords import Passwords
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_auth.service import IdentityService
    from nexus_common.audit import KinesisAuditSink

    # GIVEN a trader whose session and user items the authorizer keeps (from an orders request)
    session = register_and_login(edge, "promoted@example.com")
    token = session["access_token"]
    assert isinstance(authorized(edge, token), dict)
    # WHEN an operator grants them admin (what `nexus users grant` does)
    names = TableNames(edge.aws.table_name("UsersTable"), edge.aws.table_name("ApiKeysTable"),
                       edge.aws.table_name("TokensTable"), edge.aws.table_name("AccountsTable"))
    service = IdentityService(DynamoIdentityStore(names), Passwords(), None,
                              KinesisAuditSink(edge.aws.stream_name("AuditEventsStream")))
    service.change_role(session["user_id"], "admin", True, "operator")
    # THEN a route that checks roles reads afresh: the admin role counts at once
    admin = edge.authorize(edge.event("PUT", "/v1/admin/accounts/{account_id}/trading",
                                      headers={"Authorization": f"Bearer {token}"}))
    assert isinstance(admin, dict) and "admin" in admin["roles"].split(",")
    # AND that fresh read is kept for the hot routes too
    reads = counted_reads()
    orders = authorized(edge, token)
    assert isinstance(orders, dict) and "admin" in orders["roles"].split(",") and reads.reads == []
    # AND a WebSocket $connect reads afresh every time
    event = {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:ws1/prod/$connect",
             "headers": {"Authorization": f"Bearer {token}"},
             "requestContext": {"eventType": "CONNECT", "routeKey": "$connect", "connectionId": "c-kept"}}
    assert authorizer.handler(event, FakeLambdaContext())["principalId"] == session["user_id"]
    assert reads.reads == ["family", "user"]
