"""The WebSocket routes, the fan-out, price alerts and the notification path, under moto (tables
from the template; moto's Management API records what is posted to each connection)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import lambda_events
import pytest
from lambda_events import FakeLambdaContext, kinesis_event, load_event, sqs_event
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import DEMO_INSTRUMENTS
from nexus_notifications import on_execution_events as alerts_on_execution_events
from nexus_notifications import on_notifications
from nexus_notifications.alerts import CreateAlert, new_alert
from nexus_notifications.repo import AlertsTable
from nexus_streaming import on_execution_events as fanout
from nexus_streaming import on_websocket_routes as routes
from ws_frames import posted


def ws_event(route: str, connection_id: str, body: Any = None, account_id: str = "acc_taker") -> dict[str, Any]:
    return lambda_events.ws_event(route, connection_id, account_id, body)


@pytest.fixture
def streaming(aws: Any) -> Any:
    aws.use_function_env("StreamingRoutesFunction")
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(DEMO_INSTRUMENTS)
    return aws


def connect_and_subscribe(connection_id: str, account_id: str, *channels: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = FakeLambdaContext()
    assert routes.handler(ws_event("$connect", connection_id, account_id=account_id), ctx) == {"statusCode": 200}
    for channel in channels:
        body = {"action": "subscribe", **channel}
        assert routes.handler(ws_event("subscribe", connection_id, body, account_id), ctx) == {"statusCode": 200}
    return posted(connection_id)


def test_subscribers_receive_each_engine_step_once_numbered_per_channel(streaming: Any) -> None:
    # GIVEN a market subscriber and the taker's own fills subscriber
    acks = connect_and_subscribe("conn-market", "acc_other", {"channel": "trades", "symbol": "AAPL"})
    assert acks == [{"type": "subscribed", "channel": "trades:AAPL", "seq": 0}]
    connect_and_subscribe("conn-taker", "acc_taker", {"channel": "fills"}, {"channel": "orders"})
    streaming.use_function_env("StreamingFanOutFunction")
    step = load_event("execution_events_fill.json")
    # WHEN the engine step is delivered, then delivered again (a retry), then a later step
    later = copy.deepcopy(step)
    for event in later["events"]:
        event["seq"] += 5
        event["event_id"] = f"AAPL-{event['seq']}"
    for payloads in ([step], [step], [later]):
        assert fanout.handler(kinesis_event(*payloads), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN each subscriber saw each step once, numbered 1, 2 on its channel
    trades = [m for m in posted("conn-market") if m["type"] == "trades"]
    assert [(m["channel"], m["seq"], m["event_id"]) for m in trades] == [
        ("trades:AAPL", 1, "AAPL-4"), ("trades:AAPL", 2, "AAPL-9")
    ]  # fmt: skip
    fills = [m for m in posted("conn-taker") if m["type"] == "fills"]
    assert [(m["channel"], m["seq"], m["remaining_quantity"]) for m in fills] == [
        ("fills:acc_taker", 1, "0"), ("fills:acc_taker", 2, "0")
    ]  # fmt: skip
    orders = [m for m in posted("conn-taker") if m["type"] == "orders"]
    assert [m["seq"] for m in orders] == [1, 2, 3, 4]
    # AND nobody else's orders reached the taker
    assert {m["channel"] for m in posted("conn-taker") if "channel" in m and m["type"] != "subscribed"} == {
        "fills:acc_taker", "orders:acc_taker"
    }  # fmt: skip


def test_unsubscribe_and_disconnect_stop_the_messages(streaming: Any) -> None:
    connect_and_subscribe("conn-1", "acc_other", {"channel": "trades", "symbol": "AAPL"})
    ctx = FakeLambdaContext()
    body = {"action": "unsubscribe", "channel": "trades", "symbol": "AAPL"}
    routes.handler(ws_event("unsubscribe", "conn-1", body, "acc_other"), ctx)
    connect_and_subscribe("conn-2", "acc_other", {"channel": "book", "symbol": "AAPL"})
    routes.handler(ws_event("$disconnect", "conn-2"), ctx)
    streaming.use_function_env("StreamingFanOutFunction")
    fanout.handler(kinesis_event(load_event("execution_events_fill.json")), ctx)
    assert [m["type"] for m in posted("conn-1")] == ["subscribed", "unsubscribed"]
    assert [m["type"] for m in posted("conn-2")] == ["subscribed"]
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(streaming.table_name("ConnectionsTable"))
    assert not [i for i in table.scan()["Items"] if "conn-2" in (i["pk"], i["sk"])]


def _subs(streaming: Any) -> dict[str, int]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(streaming.table_name("ConnectionsTable"))
    return {str(i["pk"])[4:]: int(i["subs"]) for i in table.scan()["Items"] if str(i["pk"]).startswith("SEQ#")}


def test_each_channel_counts_its_subscriptions_exactly(streaming: Any) -> None:
    ctx = FakeLambdaContext()
    trades, book = {"channel": "trades", "symbol": "AAPL"}, {"channel": "book", "symbol": "AAPL"}
    # GIVEN two connections on trades:AAPL, one of them also on book:AAPL, and a subscribe again
    connect_and_subscribe("conn-a", "acc_other", trades, book)
    connect_and_subscribe("conn-b", "acc_other", trades)
    routes.handler(ws_event("subscribe", "conn-b", {"action": "subscribe", **trades}, "acc_other"), ctx)
    assert _subs(streaming) == {"trades:AAPL": 2, "book:AAPL": 1}
    # WHEN one unsubscribes (twice: the second finds nothing) and the other disconnects
    for _ in range(2):
        routes.handler(ws_event("unsubscribe", "conn-b", {"action": "unsubscribe", **trades}, "acc_other"), ctx)
    assert _subs(streaming) == {"trades:AAPL": 1, "book:AAPL": 1}
    routes.handler(ws_event("$disconnect", "conn-a"), ctx)
    routes.handler(ws_event("$disconnect", "conn-a"), ctx)
    # THEN every count is back to 0
    assert _subs(streaming) == {"trades:AAPL": 0, "book:AAPL": 0}


def test_the_fan_out_queries_only_the_channels_someone_subscribed_to(streaming: Any) -> None:
    from nexus_common import aws as nexus_aws

    # GIVEN one subscriber, on trades:AAPL, and one that came and went on book:AAPL
    connect_and_subscribe("conn-t", "acc_other", {"channel": "trades", "symbol": "AAPL"})
    connect_and_subscribe("conn-gone", "acc_other", {"channel": "book", "symbol": "AAPL"})
    routes.handler(ws_event("$disconnect", "conn-gone"), FakeLambdaContext())
    streaming.use_function_env("StreamingFanOutFunction")
    asked: list[str] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.Query", lambda params, **_: asked.append(
        str(params["ExpressionAttributeValues"][":pk"])))
    counts: list[int] = []
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: counts.append(
        sum(len(r["Keys"]) for r in params["RequestItems"].values())))
    # WHEN an engine step with a trade is fanned out (trades, book, ticker, orders and fills channels)
    step = load_event("execution_events_fill.json")
    assert fanout.handler(kinesis_event(step), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the channels' counts were read in one request, and only trades:AAPL was queried
    assert len(counts) == 1 and counts[0] >= 5
    assert asked == ["SUB#trades:AAPL"]
    assert [m["type"] for m in posted("conn-t")] == ["subscribed", "trades"]


def test_a_connection_without_an_authorizer_context_is_refused(streaming: Any) -> None:
    event = ws_event("$connect", "conn-x")
    del event["requestContext"]["authorizer"]
    assert routes.handler(event, FakeLambdaContext()) == {"statusCode": 401}


def test_an_alert_fires_once_under_redelivery_and_is_stored_once(aws: Any) -> None:
    # GIVEN an armed alert above 101 on AAPL, set before the trade
    aws.use_function_env("AlertsFunction")
    alerts = AlertsTable(aws.table_name("AlertsTable"))
    request = CreateAlert(symbol="AAPL", type="above", price=Decimal("101"))
    alert = new_alert("acc_taker", request, None, datetime(2026, 1, 5, tzinfo=UTC))
    alerts.add(alert)
    # WHEN the trade at 101.50 is delivered twice
    step = kinesis_event(load_event("execution_events_fill.json"))
    for _ in range(2):
        assert alerts_on_execution_events.handler(step, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the alert fired once, by that trade
    fired = alerts.get("acc_taker", alert.alert_id)
    assert fired is not None
    assert (fired.status, fired.fired_by, fired.fired_price) == ("fired", "AAPL-4", Decimal("101.5"))
    assert alerts.armed("AAPL") == []
    # AND the notifications that reached the queue are stored once in the inbox
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = aws.queue_url("NotificationsQueue")
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]]
    assert {json.loads(b)["notification_id"] for b in bodies} == {f"alert:{alert.alert_id}"}
    aws.use_function_env("NotificationsFunction")
    on_notifications.handler(sqs_event(*bodies), FakeLambdaContext())
    on_notifications.handler(sqs_event(*bodies), FakeLambdaContext())
    inbox = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("NotificationsTable"))
    (item,) = inbox.scan()["Items"]
    assert (item["kind"], item["alert"]["alert_id"]) == ("alert_triggered", alert.alert_id)


def test_a_notification_is_pushed_once_to_the_subscribed_account(streaming: Any) -> None:
    connect_and_subscribe("conn-n", "acc_taker", {"channel": "notifications"})
    streaming.use_function_env("NotificationsFunction")
    message = load_event("sqs_notification.json")
    for _ in range(3):
        assert on_notifications.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    pushed = [m for m in posted("conn-n") if m["type"] == "notifications"]
    assert len(pushed) == 1
    assert (pushed[0]["seq"], pushed[0]["notification"]["notification_id"]) == (1, "AAPL-4:ORDER_ID")


def test_a_notification_nobody_listens_to_is_stored_once_as_delivered(streaming: Any) -> None:
    # GIVEN an account with no WebSocket subscriber
    streaming.use_function_env("NotificationsFunction")
    message = load_event("sqs_notification.json")
    # WHEN its notification is delivered twice
    for _ in range(2):
        assert on_notifications.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the inbox holds it once, marked pushed (nothing was left to push on a redelivery)
    inbox = boto3.resource("dynamodb", region_name="us-east-1").Table(streaming.table_name("NotificationsTable"))
    (item,) = inbox.scan()["Items"]
    assert item["notification_id"] == "AAPL-4:ORDER_ID"
    assert item["pushed_at"]
    # AND a subscriber that arrives later is not sent it again by a third delivery
    connect_and_subscribe("conn-late", "acc_taker", {"channel": "notifications"})
    assert on_notifications.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    assert [m for m in posted("conn-late") if m["type"] == "notifications"] == []


def test_a_bad_notification_is_reported_alone_and_the_batch_is_delivered(streaming: Any) -> None:
    # GIVEN a batch of a good notification, one that is not JSON and one that is not a notification
    streaming.use_function_env("NotificationsFunction")
    good = load_event("sqs_notification.json")
    # WHEN it is consumed
    answer = on_notifications.handler(sqs_event(good, "not json", {"kind": "?"}), FakeLambdaContext())
    # THEN only the two bad messages are reported (they come back, then go to the DLQ)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "msg-2"}, {"itemIdentifier": "msg-3"}]}
    # AND the good one is in the inbox
    inbox = boto3.resource("dynamodb", region_name="us-east-1").Table(streaming.table_name("NotificationsTable"))
    assert [item["notification_id"] for item in inbox.scan()["Items"]] == ["AAPL-4:ORDER_ID"]


def _stream_record(new: dict[str, Any], old: dict[str, Any] | None, sequence: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": 1767800000,
        "Keys": {"account_id": {"S": new["account_id"]}, "item_id": {"S": new["item_id"]}},
        "NewImage": {k: serialize(v) for k, v in new.items()},
        "SequenceNumber": sequence,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        change["OldImage"] = {k: serialize(v) for k, v in old.items()}
    return {
        "eventID": sequence,
        "eventName": "MODIFY" if old else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/nexus-test-settlements/stream/x",
    }


def test_a_settlement_batch_that_ends_becomes_one_notification(aws: Any) -> None:
    from nexus_notifications import on_settlements_stream

    aws.use_function_env("SettlementNotificationsFunction")
    batch = {"account_id": "acc_1", "item_id": "BAT#2026-01-07#AAPL#001", "kind": "batch", "symbol": "AAPL",
             "settle_date": "2026-01-07", "cash": Decimal("-4060.00"), "quantity": Decimal("40")}  # fmt: skip
    # GIVEN the stream of the settlements table: a batch started, then settled (twice: a redelivery)
    records = [
        _stream_record({**batch, "status": "started"}, None, "1"),
        _stream_record({**batch, "status": "settled"}, {**batch, "status": "started"}, "2"),
        _stream_record({**batch, "status": "settled"}, {**batch, "status": "started"}, "2"),
    ]
    assert on_settlements_stream.handler({"Records": records}, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the queue has the outcome (sent twice, one id), and the inbox stores it once
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=aws.queue_url("NotificationsQueue"), MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert {(b["notification_id"], b["kind"]) for b in bodies} == {
        ("settlement:2026-01-07#AAPL#001:settled", "settlement_settled")
    }
    aws.use_function_env("NotificationsFunction")
    on_notifications.handler(sqs_event(*bodies), FakeLambdaContext())
    inbox = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("NotificationsTable"))
    (item,) = inbox.scan()["Items"]
    assert (item["account_id"], item["settlement"]["status"]) == ("acc_1", "settled")


def test_a_channel_counted_before_the_count_existed_is_still_queried(streaming: Any) -> None:
    from nexus_common.push import ConnectionStore, ManagementApi, Publisher

    # GIVEN a subscription written before channels counted theirs: a SEQ# item without subs
    name = streaming.table_name("ConnectionsTable")
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(name)
    table.put_item(Item={"pk": "SEQ#trades:MSFT", "sk": "SEQ", "seq": 7})
    table.put_item(Item={"pk": "SUB#trades:MSFT", "sk": "conn-old", "connection_id": "conn-old", "expires_at": 1})
    store = ConnectionStore(name)
    assert store.subscriber_counts(["trades:MSFT", "trades:IBM"]) == {"trades:MSFT": None, "trades:IBM": 0}
    # WHEN a publisher prepares for both THEN only the one never subscribed to is taken as empty
    publisher = Publisher(store, ManagementApi("http://localhost"))
    publisher.prepare(["trades:MSFT", "trades:IBM"])
    assert publisher.subscribers("trades:IBM") == [] and publisher.subscribers("trades:MSFT") == ["conn-old"]
