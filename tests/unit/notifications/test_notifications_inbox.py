"""Notifications consumer (SQS -> inbox), under moto. (The health check: test_health_api.py.)"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, load_event, sqs_event
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
