"""Notifications consumer (SQS -> inbox), under moto. (The health check: test_health_api.py.)"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, load_event, sqs_event, ws_event
from nexus_notifications import on_notifications


@pytest.fixture
def inbox(aws: Any) -> Any:
    env = aws.use_function_env("NotificationsFunction")
    return boto3.resource("dynamodb", region_name="us-east-1").Table(env["NOTIFICATIONS_TABLE"])


def test_a_notification_is_stored_once(inbox: Any) -> None:
    # GIVEN a notification message
    message = load_event("sqs_notification.json")
    # WHEN it is delivered, then delivered again
    assert on_notifications.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    stored = inbox.scan()["Items"]
    assert on_notifications.handler(sqs_event(message), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN one item, unchanged by the redelivery
    assert inbox.scan()["Items"] == stored
    (item,) = stored
    assert (item["account_id"], item["notification_id"]) == ("acc_taker", "AAPL-4:ORDER_ID")
    assert item["kind"] == "order_filled"
    assert item["order"]["status"] == "filled"
    assert item["ts"] == "2026-01-05T14:30:01.000000Z"


def test_bad_messages_fail_alone(inbox: Any) -> None:
    good = load_event("sqs_notification.json")
    other = {**good, "notification_id": "AAPL-5:X"}
    response = on_notifications.handler(
        sqs_event(good, "{not json", {"kind": "x"}, other), FakeLambdaContext()
    )
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "msg-2"}, {"itemIdentifier": "msg-3"}]
    }
    assert len(inbox.scan()["Items"]) == 2


def test_a_batch_reads_its_accounts_subscriber_counts_at_once_and_queries_only_a_listened_channel(
    aws: Any, inbox: Any
) -> None:
    from nexus_common import aws as nexus_aws
    from nexus_streaming import on_websocket_routes as routes
    from ws_frames import posted

    # GIVEN acc_taker listening to its notifications, and acc_other nobody listens to
    aws.use_function_env("StreamingRoutesFunction")
    ctx = FakeLambdaContext()
    assert routes.handler(ws_event("$connect", "conn-n", "acc_taker"), ctx) == {"statusCode": 200}
    subscribe = {"action": "subscribe", "channel": "notifications"}
    assert routes.handler(ws_event("subscribe", "conn-n", "acc_taker", subscribe), ctx) == {"statusCode": 200}
    aws.use_function_env("NotificationsFunction")
    queried: list[str] = []
    counted: list[int] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.Query", lambda params, **_: queried.append(
        str(params["ExpressionAttributeValues"][":pk"])))
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: counted.append(
        sum(len(r["Keys"]) for r in params["RequestItems"].values())))
    # WHEN a batch of four notifications, two for each account, is delivered
    taker = load_event("sqs_notification.json")
    messages = [taker, {**taker, "notification_id": "AAPL-5:ORDER_ID"}]
    messages += [{**m, "account_id": "acc_other"} for m in messages]
    assert on_notifications.handler(sqs_event(*messages), ctx) == {"batchItemFailures": []}
    # THEN both channels' counts were read in one request, and only the listened one was queried, once
    assert counted == [2]
    assert queried == ["SUB#notifications:acc_taker"]
    # AND every notification is stored, and acc_taker's two were pushed (delivered side by side: in any order)
    assert len(inbox.scan()["Items"]) == 4
    pushed = [m for m in posted("conn-n") if m["type"] == "notifications"]
    assert sorted(m["notification"]["notification_id"] for m in pushed) == ["AAPL-4:ORDER_ID", "AAPL-5:ORDER_ID"]
