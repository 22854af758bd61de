"""The WebSocket API against the whole local platform, with a real client (the ``websockets``
library): subscribe, trades in order, own fills, a gap detected and recovered from the REST
snapshot, a slow client dropped without slowing another, refused credentials; price alerts and
notifications arriving once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
import pytest
from helpers import eventually
from http_client import FIRST_PRICES, Api
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.system


@contextmanager
def ws(platform: Any, api_key: str | None, **kwargs: Any) -> Iterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with connect(platform.ws_url, additional_headers=headers, open_timeout=30, **kwargs) as client:
        yield client


def receive(client: ClientConnection, wanted: int, match: Any = lambda m: True, timeout: float = 30) -> list[Any]:
    """The next ``wanted`` messages that ``match`` (others are skipped)."""
    got: list[Any] = []
    while len(got) < wanted:
        message = json.loads(client.recv(timeout=timeout))
        if match(message):
            got.append(message)
    return got


def subscribe(client: ClientConnection, channel: str, symbol: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"action": "subscribe", "channel": channel}
    if symbol:
        body["symbol"] = symbol
    client.send(json.dumps(body))
    (ack,) = receive(client, 1, lambda m: m.get("type") in ("subscribed", "error"))
    return ack  # type: ignore[no-any-return]




def last_price(api: Api, symbol: str) -> Decimal:
    """The last trade price (trading there crosses nothing resting: each cross fills both sides)."""
    answer = api.get(f"/v1/markets/{symbol}/trades?limit=1")
    trades = (answer.body or {}).get("trades") or []
    return Decimal(trades[0]["price"]) if trades else FIRST_PRICES[symbol]


def cross(seller: Api, buyer: Api, symbol: str, price: Decimal, quantity: int) -> None:
    """A resting sell and a buy that takes it: one trade of ``quantity`` at ``price``."""
    sell = {"symbol": symbol, "side": "sell", "type": "limit", "quantity": str(quantity), "price": str(price)}
    assert seller.post("/v1/orders", sell).status == 202
    buy = {**sell, "side": "buy"}
    assert buyer.post("/v1/orders", buy).status == 202


@pytest.fixture(scope="module")
def keys(local_platform: Any) -> tuple[str, str, str, str]:
    alice, bob = local_platform.demo_accounts[:2]
    return alice["api_key"], bob["api_key"], alice["account_id"], bob["account_id"]


def test_a_subscriber_receives_trades_in_order_and_its_own_fills(local_platform: Any, keys: Any) -> None:
    alice_key, bob_key, _, bob_id = keys
    alice, bob = Api(local_platform.api_url, alice_key), Api(local_platform.api_url, bob_key)
    price = last_price(alice, "GOOGL")
    # GIVEN a client on trades:GOOGL and bob's client on his fills
    with ws(local_platform, alice_key) as market, ws(local_platform, bob_key) as own:
        ack = subscribe(market, "trades", "GOOGL")
        assert ack["type"] == "subscribed" and ack["channel"] == "trades:GOOGL"
        assert subscribe(own, "fills")["channel"] == f"fills:{bob_id}"
        # WHEN three trades happen, one after another
        for quantity in (1, 2, 3):
            cross(alice, bob, "GOOGL", price, quantity)
        # THEN the market client sees them in order, numbered without a gap after the ack
        trades = receive(market, 3, lambda m: m.get("type") == "trades")
        assert [t["quantity"] for t in trades] == ["1", "2", "3"]
        assert all(t["symbol"] == "GOOGL" and Decimal(t["price"]) == price for t in trades)
        assert [t["seq"] for t in trades] == [ack["seq"] + 1, ack["seq"] + 2, ack["seq"] + 3]
        # AND bob sees his own three fills, as taker, in order
        fills = receive(own, 3, lambda m: m.get("type") == "fills")
        assert [(f["quantity"], f["side"], f["liquidity"]) for f in fills] == [
            ("1", "buy", "taker"), ("2", "buy", "taker"), ("3", "buy", "taker")
        ]  # fmt: skip
        assert fills[1]["seq"] == fills[0]["seq"] + 1 and fills[2]["seq"] == fills[1]["seq"] + 1


def test_a_client_that_missed_a_message_sees_the_gap_and_recovers_it_from_the_snapshot(
    local_platform: Any, keys: Any
) -> None:
    alice_key, bob_key, _, _ = keys
    alice, bob = Api(local_platform.api_url, alice_key), Api(local_platform.api_url, bob_key)
    price = last_price(alice, "AMZN")
    with ws(local_platform, alice_key) as client, ws(local_platform, bob_key) as other:
        subscribe(client, "trades", "AMZN")
        subscribe(other, "trades", "AMZN")
        cross(alice, bob, "AMZN", price, 5)
        # (trades of earlier tests may still be on their way: ours are told apart by quantity)
        (first,) = receive(client, 1, lambda m: m.get("type") == "trades" and m.get("quantity") == "5")
        # GIVEN the client is away for one trade that the other subscriber receives
        client.send(json.dumps({"action": "unsubscribe", "channel": "trades", "symbol": "AMZN"}))
        last_seen = first["seq"]
        (message,) = receive(client, 1, lambda m: m.get("type") in ("trades", "unsubscribed"))
        while message.get("type") != "unsubscribed":
            last_seen = max(last_seen, message["seq"])
            (message,) = receive(client, 1, lambda m: m.get("type") in ("trades", "unsubscribed"))
        cross(alice, bob, "AMZN", price, 7)
        (missed,) = receive(other, 1, lambda m: m.get("type") == "trades" and m.get("quantity") == "7")
        subscribe(client, "trades", "AMZN")
        # WHEN the next trade reaches it
        cross(alice, bob, "AMZN", price, 9)
        (after,) = receive(client, 1, lambda m: m.get("type") == "trades")
        # THEN its sequence number jumps past the last one it saw: the missed message is a gap
        assert missed["seq"] > last_seen
        assert after["seq"] > last_seen + 1
        ours = after if after["quantity"] == "9" else receive(
            client, 1, lambda m: m.get("type") == "trades" and m.get("quantity") == "9")[0]
        assert ours["seq"] > missed["seq"]
        # AND the REST snapshot of the tape has the missed trade
        tape = eventually(
            lambda: [t["quantity"] for t in alice.get("/v1/markets/AMZN/trades?limit=20").body["trades"]],
            lambda quantities: "7" in quantities,
        )
        assert "7" in tape


def _connection_ids(platform: Any, account_id: str) -> list[str]:
    table = boto3.resource("dynamodb", endpoint_url=platform.aws_endpoint, region_name="us-east-1").Table(
        platform.table("ConnectionsTable")
    )
    items = table.scan(
        FilterExpression="account_id = :a AND sk = :m",
        ExpressionAttributeValues={":a": account_id, ":m": "META"},
        ConsistentRead=True,
    )["Items"]
    return [str(i["connection_id"]) for i in items]


def test_a_slow_client_is_dropped_and_does_not_slow_the_others(local_platform: Any, keys: Any) -> None:
    alice_key, bob_key, alice_id, bob_id = keys
    management = boto3.client(
        "apigatewaymanagementapi", endpoint_url=local_platform.ws_management_url, region_name="us-east-1"
    )
    frame = json.dumps({"type": "test", "pad": "x" * 100_000}).encode()
    # GIVEN a client that stops reading (its library buffers one frame) and one that reads
    with ws(local_platform, alice_key, max_queue=1) as slow, ws(local_platform, bob_key) as fast:
        (slow_id,) = eventually(lambda: _connection_ids(local_platform, alice_id), lambda ids: len(ids) == 1)
        (fast_id,) = eventually(lambda: _connection_ids(local_platform, bob_id), lambda ids: len(ids) == 1)
        received: list[int] = []

        def read_fast() -> None:
            try:
                while True:
                    received.append(len(fast.recv(timeout=30)))
            except (TimeoutError, ConnectionClosed):
                return

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        # WHEN frames keep coming for both
        sent_fast, dropped = 0, False
        for _ in range(3000):
            management.post_to_connection(ConnectionId=fast_id, Data=frame)
            sent_fast += 1
            try:
                management.post_to_connection(ConnectionId=slow_id, Data=frame)
            except management.exceptions.GoneException:
                dropped = True
                break
        # THEN the slow one is dropped (its queue filled) ...
        assert dropped
        with pytest.raises(management.exceptions.GoneException):
            management.get_connection(ConnectionId=slow_id)
        with pytest.raises(ConnectionClosed):
            while True:
                slow.recv(timeout=30)
        # ... and the other received every frame meanwhile
        assert management.get_connection(ConnectionId=fast_id)["Identity"]["SourceIp"] == "127.0.0.1"
        eventually(lambda: len(received), lambda n: n >= sent_fast)
        assert len(received) == sent_fast


@pytest.mark.parametrize("api_key", [None, "nxk_not-a-real-key", "garbage"])
def test_connecting_without_valid_credentials_is_refused(local_platform: Any, api_key: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused, ws(local_platform, api_key):
        pass
    assert refused.value.response.status_code == 401


def test_bad_subscriptions_answer_an_error_and_change_nothing(local_platform: Any, keys: Any) -> None:
    alice_key, *_ = keys
    with ws(local_platform, alice_key) as client:
        for body, code, field in [
            ({"action": "subscribe", "channel": "trades"}, "missing_field", "symbol"),
            ({"action": "subscribe", "channel": "trades", "symbol": "NOPE"}, "unknown_symbol", "symbol"),
            ({"action": "subscribe", "channel": "weather", "symbol": "AAPL"}, "invalid_field", "channel"),
            ({"action": "subscribe", "channel": "fills", "account_id": "someone-else"}, "forbidden", "account_id"),
            ({"action": "subscribe", "channel": "ticker", "symbol": "AAPL", "x": 1}, "unknown_field", "x"),
            ({"action": "dance"}, "unknown_action", "action"),
        ]:
            client.send(json.dumps(body))
            (answer,) = receive(client, 1, lambda m: m.get("type") == "error")
            assert answer["error"]["code"] == code, body
            assert answer["error"]["field"] == field, body
        client.send("not json")
        (answer,) = receive(client, 1, lambda m: m.get("type") == "error")
        assert answer["error"]["code"] == "unknown_action"


def test_an_alert_fires_once_and_its_notification_arrives_once(local_platform: Any, keys: Any) -> None:
    alice_key, bob_key, _, bob_id = keys
    alice, bob = Api(local_platform.api_url, alice_key), Api(local_platform.api_url, bob_key)
    price = last_price(alice, "MSFT")
    # GIVEN bob's alert above the current price, and his client on his notifications
    created = bob.post("/v1/alerts", {"symbol": "MSFT", "type": "above", "price": str(price + Decimal("0.05"))})
    assert created.status == 201, created.body
    alert_id = created.body["alert"]["alert_id"]
    assert created.body["alert"]["status"] == "armed"
    with ws(local_platform, bob_key) as client:
        assert subscribe(client, "notifications")["channel"] == f"notifications:{bob_id}"
        # WHEN two trades cross it
        cross(alice, bob, "MSFT", price + Decimal("0.05"), 1)
        cross(alice, bob, "MSFT", price + Decimal("0.06"), 1)
        # THEN the alert fired once, at the first crossing trade
        pushed = receive(client, 1, lambda m: m.get("type") == "notifications"
                         and m["notification"]["kind"] == "alert_triggered", timeout=120)  # fmt: skip
        assert pushed[0]["notification"]["alert"]["alert_id"] == alert_id
        alerts = bob.get("/v1/alerts?status=fired").body["alerts"]
        (fired,) = [a for a in alerts if a["alert_id"] == alert_id]
        assert Decimal(fired["fired_price"]) == price + Decimal("0.05")

    def alert_notes() -> list[Any]:
        items = bob.get("/v1/notifications?limit=200").body["notifications"]
        return [n for n in items if n.get("alert", {}).get("alert_id") == alert_id]

    # AND the inbox holds its notification once, with bob's fills newest first
    notes = eventually(alert_notes, lambda n: len(n) >= 1)
    assert len(notes) == 1 and notes[0]["kind"] == "alert_triggered"
    inbox = bob.get("/v1/notifications?limit=200").body["notifications"]
    assert [n["ts"] for n in inbox] == sorted((n["ts"] for n in inbox), reverse=True)


def test_the_inbox_pages_newest_first_and_refuses_bad_input(local_platform: Any, keys: Any) -> None:
    alice_key, bob_key, _, _ = keys
    bob = Api(local_platform.api_url, bob_key)
    # GIVEN bob has notifications (from the trades above)
    everything = eventually(lambda: bob.get("/v1/notifications?limit=200").body["notifications"], lambda n: len(n) > 2)
    # WHEN he reads them two at a time
    first = bob.get("/v1/notifications?limit=2").body
    second = bob.get(f"/v1/notifications?limit=2&cursor={first['next_cursor']}").body
    # THEN the pages follow each other, newest first
    paged = [n["notification_id"] for n in first["notifications"] + second["notifications"]]
    assert paged == [n["notification_id"] for n in everything[:4]]
    # AND bad input is a 400 naming the field; nobody reads another's inbox
    for query, field in [("limit=0", "limit"), ("limit=abc", "limit"), ("limit=201", "limit"),
                         ("cursor=%25%25%25", "cursor"), ("colour=red", "colour")]:  # fmt: skip
        answer = bob.get(f"/v1/notifications?{query}")
        assert answer.status == 400, query
        assert answer.body["error"]["field"] == field, query
    alice_sees = Api(local_platform.api_url, alice_key).get(f"/v1/notifications?cursor={first['next_cursor']}")
    assert alice_sees.status == 200
    assert not {n["notification_id"] for n in alice_sees.body["notifications"]} & set(paged)
    assert Api(local_platform.api_url).get("/v1/notifications").status == 401


def test_bad_alerts_are_refused_and_nothing_is_stored(local_platform: Any, keys: Any) -> None:
    alice_key, *_ = keys
    alice = Api(local_platform.api_url, alice_key)
    before = alice.get("/v1/alerts").body["alerts"]
    for body, status, field in [
        ({"symbol": "AAPL", "type": "above"}, 400, "price"),
        ({"symbol": "AAPL", "type": "above", "price": "-1"}, 400, "price"),
        ({"symbol": "AAPL", "type": "above", "price": "1.00001"}, 400, "price"),
        ({"symbol": "AAPL", "type": "sideways", "price": "1"}, 400, "type"),
        ({"symbol": "AAPL", "type": "percent_move"}, 400, "percent"),
        ({"symbol": "AAPL", "type": "percent_move", "percent": "101"}, 400, "percent"),
        ({"symbol": "NOPE", "type": "below", "price": "1"}, 400, "symbol"),
        ({"symbol": "AAPL", "type": "below", "price": "1", "extra": 1}, 400, "extra"),
    ]:
        answer = alice.post("/v1/alerts", body)
        assert answer.status == status, (body, answer.body)
        assert answer.body["error"]["field"] == field, body
    assert alice.post("/v1/alerts", raw=b"{nope").status == 400
    assert alice.delete("/v1/alerts/no-such-alert").status == 404
    assert alice.get("/v1/alerts").body["alerts"] == before


def test_an_alert_is_deleted_by_its_owner_only(local_platform: Any, keys: Any) -> None:
    alice_key, bob_key, _, _ = keys
    alice, bob = Api(local_platform.api_url, alice_key), Api(local_platform.api_url, bob_key)
    # GIVEN alice's percent-move alert on a symbol that has traded (its reference is the last trade)
    created = alice.post("/v1/alerts", {"symbol": "GOOGL", "type": "percent_move", "percent": "5"})
    assert created.status == 201, created.body
    alert = created.body["alert"]
    assert Decimal(alert["upper"]) > Decimal(alert["reference_price"]) > Decimal(alert["lower"])
    # WHEN bob tries to delete it, THEN it is not found for him and stays
    assert bob.delete(f"/v1/alerts/{alert['alert_id']}").status == 404
    assert alert["alert_id"] in [a["alert_id"] for a in alice.get("/v1/alerts?status=armed").body["alerts"]]
    # WHEN alice deletes it, THEN it is gone
    assert alice.delete(f"/v1/alerts/{alert['alert_id']}").status == 200
    assert alert["alert_id"] not in [a["alert_id"] for a in alice.get("/v1/alerts").body["alerts"]]


def test_a_connection_that_is_gone_is_forgotten_by_the_fan_out(local_platform: Any, keys: Any) -> None:
    from nexus_common.events import utc_now
    from nexus_common.push import Connection, ConnectionStore, conn_pk, sub_pk

    alice_key, bob_key, alice_id, _ = keys
    alice, bob = Api(local_platform.api_url, alice_key), Api(local_platform.api_url, bob_key)
    table = boto3.resource("dynamodb", endpoint_url=local_platform.aws_endpoint, region_name="us-east-1").Table(
        local_platform.table("ConnectionsTable")
    )
    # GIVEN a subscription left by a connection whose $disconnect never came
    store = ConnectionStore(table.name, table=table)
    store.add(Connection("ghost-connection", alice_id, (alice_id,)), utc_now())
    store.subscribe("ghost-connection", "trades:AMZN", int(utc_now().timestamp()) + 60)
    # ... and one whose connection item is already gone (its subscription item outlived it)
    table.put_item(Item={"pk": sub_pk("trades:AMZN"), "sk": "orphan-connection", "connection_id": "orphan-connection"})
    with ws(local_platform, alice_key) as live:
        subscribe(live, "trades", "AMZN")
        # WHEN a trade is published on that channel
        cross(alice, bob, "AMZN", last_price(alice, "AMZN"), 2)
        # THEN the live subscriber gets it, and the gone one (410) is removed with its subscription
        assert receive(live, 1, lambda m: m.get("type") == "trades")[0]["quantity"] == "2"

    def ghost_items() -> list[Any]:
        subscription = {"pk": sub_pk("trades:AMZN"), "sk": "ghost-connection"}
        meta = {"pk": conn_pk("ghost-connection"), "sk": "META"}
        orphan = {"pk": sub_pk("trades:AMZN"), "sk": "orphan-connection"}
        return [table.get_item(Key=k, ConsistentRead=True).get("Item") for k in (subscription, meta, orphan)]

    assert eventually(ghost_items, lambda items: items == [None, None, None]) == [None, None, None]


def test_revoking_a_key_closes_its_websocket(local_platform: Any) -> None:
    import uuid

    public = Api(local_platform.api_url)
    email = f"wsrevoke-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    assert public.post("/v1/auth/register", {"email": email, "password": password}).status == 202
    token = public.post("/v1/auth/login", {"email": email, "password": password}).body["access_token"]
    user = Api(local_platform.api_url, token)
    created = user.post("/v1/keys", {"name": "ws", "scopes": ["read"]})
    assert created.status == 201, created.body
    # GIVEN a WebSocket opened with the key, subscribed to its orders
    with ws(local_platform, created.body["api_key"]) as client:
        assert subscribe(client, "orders")["type"] == "subscribed"
        # WHEN the key is revoked over the REST API
        assert user.delete(f"/v1/keys/{created.body['key']['key_id']}").status == 200
        # THEN the platform closes the connection (the audit event reaches the streaming side)
        with pytest.raises(ConnectionClosed):
            while True:
                client.recv(timeout=60)
