"""A WebSocket authorized at $connect stops being served when its credential ends: a revoked API
key, a logout, a disabled user. The connection record keeps the credential's ids; subscribe and
the fan-out of private channels re-check them (cached at most CREDENTIAL_CACHE_SECONDS, the
bound); the auth service's audit events close the connection through the Management API at once.
Real authorizer, auth API, streaming functions; moto for AWS and the Management API."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import Edge, register_and_login, use_authorizer_clock
from lambda_events import FakeLambdaContext, kinesis_event, load_event
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from nexus_auth import api, authorizer
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import DEMO_INSTRUMENTS
from nexus_streaming import on_audit_events
from nexus_streaming import on_execution_events as fanout
from nexus_streaming import on_websocket_routes as routes
from ws_frames import posted

WS_ARN = "arn:aws:execute-api:us-east-1:123456789012:wsapi1/ws/$connect"


def management() -> Any:
    return apigatewaymanagementapi_backends["123456789012"]["us-east-1"]


def is_open(connection_id: str) -> bool:
    """moto forgets a deleted connection with what it received, and a post to a connection it
    does not know opens it again: so after a close, "not open" also means "nothing posted"."""
    return connection_id in management().connections


def channel_seq(channel: str) -> int:
    """The channel's last message number: it moves only when a message is posted to someone."""
    return routes.store().current_seq(channel)


class Socket:
    """One WebSocket through the real $connect authorizer and the real routes."""

    def __init__(self, credential: str, connection_id: str) -> None:
        self.connection_id = connection_id
        event = {
            "type": "REQUEST",
            "methodArn": WS_ARN,
            "headers": {"Authorization": f"Bearer {credential}"},
            "requestContext": {"eventType": "CONNECT", "routeKey": "$connect", "connectionId": connection_id},
        }
        use_authorizer_clock()
        self.context = dict(authorizer.handler(event, FakeLambdaContext())["context"])
        management().connections[connection_id]  # moto: the connection is open (a defaultdict)
        assert self.send("$connect") == 200

    def send(self, route: str, body: Any = None) -> int:
        event = {
            "requestContext": {
                "routeKey": route,
                "eventType": {"$connect": "CONNECT"}.get(route, "MESSAGE"),
                "connectionId": self.connection_id,
                "authorizer": self.context,
            },
            "body": json.dumps(body) if body is not None else None,
        }
        return int(routes.handler(event, FakeLambdaContext())["statusCode"])

    def subscribe(self, channel: str) -> int:
        return self.send("subscribe", {"action": "subscribe", "channel": channel})

    @property
    def account_id(self) -> str:
        return str(self.context["account_id"])


def accepted_step(account_id: str, seq: int) -> dict[str, Any]:
    """One engine step: an order of ``account_id`` accepted (a private ``orders`` message)."""
    event = copy.deepcopy(load_event("execution_events_fill.json")["events"][0])
    event.update(event_id=f"AAPL-{seq}", seq=seq, account_id=account_id, order_id=f"ORD{seq}")
    return {"events": [event]}


def fan_out(*steps: dict[str, Any]) -> None:
    assert fanout.handler(kinesis_event(*steps), FakeLambdaContext()) == {"batchItemFailures": []}


def close_from_audit(edge: Edge) -> None:
    """Feed the auth service's audit events to the streaming revocations consumer."""
    answer = on_audit_events.handler(kinesis_event(*edge.audit_events()), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}


def orders_of(connection_id: str) -> list[dict[str, Any]]:
    return [f for f in posted(connection_id) if f.get("type") == "orders"]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ws(edge: Edge, aws: Any) -> Edge:
    for function_id in ("StreamingRoutesFunction", "StreamingFanOutFunction", "StreamingRevocationsFunction"):
        aws.use_function_env(function_id)
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(DEMO_INSTRUMENTS)
    return edge


def new_key(edge: Edge, token: str) -> dict[str, Any]:
    created = edge.call(api.app, "POST", "/v1/keys", credential=token,
                        body={"name": "bot", "scopes": ["read", "trade"]})
    assert created.status == 201
    return dict(created.body)


def test_a_revoked_key_gets_no_private_message_after_the_bound_even_if_nothing_closes_it(ws: Edge) -> None:
    # GIVEN a WebSocket opened with an API key, subscribed to its orders, already served once
    session = register_and_login(ws, "wsrevoke@example.com")
    key = new_key(ws, session["access_token"])
    socket = Socket(key["api_key"], "conn-key")
    assert socket.subscribe("orders") == 200
    clock = Clock()
    fanout.guard().check.clock = clock
    fan_out(accepted_step(socket.account_id, 1))
    assert [m["order_id"] for m in orders_of("conn-key")] == ["ORD1"]
    # WHEN the key is revoked and the credential cache's bound passes (no audit consumer ran)
    revoked = ws.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=session["access_token"],
                      path_params={"key_id": key["key"]["key_id"]})
    assert revoked.status == 200
    clock.now += fanout.settings().credential_cache_seconds
    fan_out(accepted_step(socket.account_id, 2))
    # THEN no private message reaches it (none is even numbered) AND the fan-out closed it
    assert channel_seq(f"orders:{socket.account_id}") == 1
    assert not is_open("conn-key")
    assert routes.store().get("conn-key") is None


def test_within_the_bound_a_cached_answer_may_serve_but_not_after(ws: Edge) -> None:
    # GIVEN a key socket served once (its credential's answer cached)
    session = register_and_login(ws, "wsbound@example.com")
    key = new_key(ws, session["access_token"])
    socket = Socket(key["api_key"], "conn-bound")
    socket.subscribe("orders")
    clock = Clock()
    fanout.guard().check.clock = clock
    fan_out(accepted_step(socket.account_id, 1))
    # WHEN the key is revoked and less than the bound has passed
    ws.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=session["access_token"],
            path_params={"key_id": key["key"]["key_id"]})
    clock.now += fanout.settings().credential_cache_seconds - 1
    fan_out(accepted_step(socket.account_id, 2))
    # THEN the cached answer may still serve it (this is the documented bound) ...
    assert [m["order_id"] for m in orders_of("conn-bound")] == ["ORD1", "ORD2"]
    # ... AND once the bound has passed, nothing more
    clock.now += 1
    fan_out(accepted_step(socket.account_id, 3))
    assert channel_seq(f"orders:{socket.account_id}") == 2 and not is_open("conn-bound")


def test_a_revoked_key_cannot_subscribe_to_fills_and_is_closed(ws: Edge) -> None:
    # GIVEN a WebSocket opened with an API key
    session = register_and_login(ws, "wsfills@example.com")
    key = new_key(ws, session["access_token"])
    socket = Socket(key["api_key"], "conn-fills")
    # WHEN the key is revoked, then the socket subscribes to its fills
    ws.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=session["access_token"],
            path_params={"key_id": key["key"]["key_id"]})
    status = socket.subscribe("fills")
    # THEN the subscription is refused with unauthorized, and the connection is closed
    assert status == 401
    assert not is_open("conn-fills")
    fan_out(accepted_step(socket.account_id, 1))
    assert not is_open("conn-fills")
    assert channel_seq(f"fills:{socket.account_id}") == 0


def test_revocation_closes_only_that_keys_connections_at_once(ws: Edge) -> None:
    # GIVEN two WebSockets of one user: one per key
    session = register_and_login(ws, "wsclose@example.com")
    doomed, kept = new_key(ws, session["access_token"]), new_key(ws, session["access_token"])
    Socket(doomed["api_key"], "conn-doomed").subscribe("orders")
    kept_socket = Socket(kept["api_key"], "conn-kept")
    kept_socket.subscribe("orders")
    # WHEN one key is revoked and the auth service's audit events reach the streaming side
    ws.call(api.app, "DELETE", "/v1/keys/{key_id}", credential=session["access_token"],
            path_params={"key_id": doomed["key"]["key_id"]})
    close_from_audit(ws)
    # THEN that key's connection is closed at once, the other key's is not
    assert not is_open("conn-doomed") and is_open("conn-kept")
    fan_out(accepted_step(kept_socket.account_id, 7))
    assert [m["order_id"] for m in orders_of("conn-kept")] == ["ORD7"]
    assert not is_open("conn-doomed")  # nothing was posted to it
    # AND a redelivery of the same audit events changes nothing
    close_from_audit(ws)
    assert is_open("conn-kept")


def test_logout_closes_the_sessions_websocket(ws: Edge) -> None:
    # GIVEN a WebSocket opened with a login token, subscribed to its orders
    session = register_and_login(ws, "wslogout@example.com")
    socket = Socket(session["access_token"], "conn-session")
    assert socket.subscribe("orders") == 200
    # WHEN the user logs out and the audit events reach the streaming side
    assert ws.call(api.app, "POST", "/v1/auth/logout", credential=session["access_token"]).status == 200
    close_from_audit(ws)
    # THEN the connection is closed and gets no private message
    assert not is_open("conn-session")
    fan_out(accepted_step(socket.account_id, 3))
    assert not is_open("conn-session") and channel_seq(f"orders:{socket.account_id}") == 0


def test_a_disabled_user_loses_every_websocket(ws: Edge) -> None:
    from nexus_auth.passwords import Passwords
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_auth.service import IdentityService
    from nexus_common.audit import KinesisAuditSink

    # GIVEN a user with a key socket and a session socket
    session = register_and_login(ws, "wsdisable@example.com")
    key = new_key(ws, session["access_token"])
    Socket(key["api_key"], "conn-d1").subscribe("orders")
    socket = Socket(session["access_token"], "conn-d2")
    socket.subscribe("fills")
    # WHEN an operator disables the user (what `nexus users disable` does)
    names = TableNames(ws.aws.table_name("UsersTable"), ws.aws.table_name("ApiKeysTable"),
                       ws.aws.table_name("TokensTable"), ws.aws.table_name("AccountsTable"))
    service = IdentityService(DynamoIdentityStore(names), Passwords(), None,
                              KinesisAuditSink(ws.aws.stream_name("AuditEventsStream")))
    service.disable_user(session["user_id"], "operator")
    close_from_audit(ws)
    # THEN both connections are closed, and a new one is refused at $connect (once the
    # authorizer's kept user item is past its bound)
    assert not is_open("conn-d1") and not is_open("conn-d2")
    ws.pass_authorizer_bound()
    with pytest.raises(Exception, match="Unauthorized"):
        Socket(key["api_key"], "conn-d3")
