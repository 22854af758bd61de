"""Each audit, health, notifications, portfolio (settlement run) and streaming function invoked
as the local runtime invokes it: its own worker process, the ``Handler`` and the environment the
template gives it, a real moto server. A handler module the template names wrongly fails here.

(The risk and portfolio execution-events handlers go through their template mappings in
``test_posttrade_poison.py``; ``GET /health`` through the local API in ``test_orders_bad_input.py``.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key
from lambda_events import kinesis_event, kinesis_record, load_event, sqs_event
from nexus_common.audit_items import expand
from template_functions import TemplateFunctions

FUNCTIONS = (
    "AuditStreamsConsumerFunction",
    "AuditTablesConsumerFunction",
    "NotificationsFunction",
    "AlertsFunction",
    "SettlementNotificationsFunction",
    "SettlementFunction",
    "StreamingRoutesFunction",
    "StreamingFanOutFunction",
    "StreamingRevocationsFunction",
    "HealthFunction",
)
NO_FAILURES = {"batchItemFailures": []}


class Platform(TemplateFunctions):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, "handlers", FUNCTIONS)

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        result = self.lambdas.invoke(function_id, event)
        assert result.ok, result.error
        return result.payload



@pytest.fixture(scope="module")
def platform(moto_endpoint: str) -> Iterator[Platform]:
    world = Platform(moto_endpoint)
    yield world
    world.close()


def _audit_kinds(platform: Platform, aggregate: str) -> list[str]:
    table = platform.table("AuditTable")
    items = table.query(KeyConditionExpression=Key("aggregate").eq(aggregate), ConsistentRead=True)["Items"]
    return [str(entry["kind"]) for item in items for entry in expand(item)]  # a record may hold a run


def test_audit_on_event_streams_appends_an_execution_events_record(platform: Platform) -> None:
    # GIVEN one execution-events record, from the stream the template names
    record = kinesis_record({"events": load_event("audit_execution_events.json")["events"]}, "4959" + "0" * 19 + "1")
    record["eventSourceARN"] = f"arn:aws:kinesis:us-east-1:123456789012:stream/{platform.ref('ExecutionEventsStream')}"
    # WHEN the audit streams function takes it
    answer = platform.invoke("AuditStreamsConsumerFunction", {"Records": [record]})
    # THEN nothing is to retry and the maker order has its engine events in the trail
    assert answer == NO_FAILURES
    assert _audit_kinds(platform, "order#MAKER") == ["order_accepted", "order_filled", "order_expired"]


def test_audit_on_table_streams_appends_a_ledger_change(platform: Platform) -> None:
    # GIVEN the ledger table's stream record of a taker's fill entry
    event = copy.deepcopy(load_event("audit_ledger_stream.json"))
    for record in event["Records"]:
        record["eventSourceARN"] = record["eventSourceARN"].replace("LEDGER_TABLE", platform.ref("LedgerTable"))
    # WHEN the audit tables function takes it
    answer = platform.invoke("AuditTablesConsumerFunction", {"Records": event["Records"]})
    # THEN the account's trail has the entry
    assert answer == NO_FAILURES
    assert _audit_kinds(platform, "account#acc_taker") == ["ledger_entry"]


def test_notifications_on_notifications_stores_a_queued_notification(platform: Platform) -> None:
    # GIVEN a notification message as the orders consumer queues it
    message = load_event("sqs_notification.json")
    # WHEN the notifications function takes it
    answer = platform.invoke("NotificationsFunction", sqs_event(message))
    # THEN it is in the account's inbox (nobody subscribed: stored as delivered)
    assert answer == NO_FAILURES
    item = platform.table("NotificationsTable").get_item(
        Key={"account_id": "acc_taker", "notification_id": message["notification_id"]}, ConsistentRead=True
    )["Item"]
    assert item["kind"] == "order_filled" and "pushed_at" in item


def test_notifications_on_execution_events_takes_a_fill_with_no_armed_alert(platform: Platform) -> None:
    # GIVEN a fill on a symbol with no armed alert
    event = kinesis_event(load_event("execution_events_fill.json"))
    # WHEN the alerts function takes it
    answer = platform.invoke("AlertsFunction", event)
    # THEN nothing fires and nothing is to retry
    assert answer == NO_FAILURES


def test_notifications_on_settlements_stream_queues_the_outcome_of_a_settled_batch(platform: Platform) -> None:
    # GIVEN the settlements table's change of a batch from started to settled
    batch = {"account_id": {"S": "acc_1"}, "item_id": {"S": "BAT#2026-01-07#AAPL#001"}, "kind": {"S": "batch"},
             "symbol": {"S": "AAPL"}, "settle_date": {"S": "2026-01-07"}, "cash": {"N": "-4060.00"},
             "quantity": {"N": "40"}}  # fmt: skip
    record = {
        "eventID": "settlements-1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{platform.ref('SettlementsTable')}/stream/x",
        "dynamodb": {"ApproximateCreationDateTime": 1767787200.0, "SequenceNumber": "1", "SizeBytes": 200,
                     "StreamViewType": "NEW_AND_OLD_IMAGES", "Keys": {"account_id": batch["account_id"],
                                                                      "item_id": batch["item_id"]},
                     "NewImage": {**batch, "status": {"S": "settled"}},
                     "OldImage": {**batch, "status": {"S": "started"}}},
    }  # fmt: skip
    # WHEN the settlement notifications function takes it
    answer = platform.invoke("SettlementNotificationsFunction", {"Records": [record]})
    # THEN its notification is on the notifications queue
    assert answer == NO_FAILURES
    sqs = platform.clients.client("sqs")
    messages = sqs.receive_message(QueueUrl=platform.ref("NotificationsQueue"), MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [b["notification_id"] for b in bodies] == ["settlement:2026-01-07#AAPL#001:settled"]


def test_portfolio_on_settlement_schedule_runs_for_the_given_date(platform: Platform) -> None:
    # GIVEN no obligation due; WHEN the scheduled settlement run is asked for a date
    report = platform.invoke("SettlementFunction", {"as_of": "2026-03-09"})
    # THEN it reports that date and nothing settled, failed or recovered
    assert report == {"as_of": "2026-03-09", "settled": 0, "failed": 0, "recovered": 0, "failures": []}


def test_streaming_on_websocket_routes_answers_disconnect_and_refuses_an_unauthorized_connect(
    platform: Platform,
) -> None:
    # WHEN a connection goes away, and one comes without the authorizer's context
    gone = platform.invoke("StreamingRoutesFunction", {"requestContext": {"routeKey": "$disconnect",
                                                                          "connectionId": "conn-gone"}})  # fmt: skip
    refused = platform.invoke("StreamingRoutesFunction", {"requestContext": {"routeKey": "$connect",
                                                                             "connectionId": "conn-anon"}})  # fmt: skip
    # THEN the first is forgotten (200) and the second refused (401)
    assert gone == {"statusCode": 200} and refused == {"statusCode": 401}


def test_streaming_on_execution_events_takes_a_fill_nobody_listens_to(platform: Platform) -> None:
    answer = platform.invoke("StreamingFanOutFunction", kinesis_event(load_event("execution_events_fill.json")))
    assert answer == NO_FAILURES


def test_streaming_on_audit_events_skips_an_event_that_ends_no_credential(platform: Platform) -> None:
    # GIVEN an audit event of another source
    event = kinesis_event({"source": "orders", "kind": "order_placed", "aggregate_id": "ORD1"})
    # WHEN the revocations function takes it; THEN nothing is closed and nothing is to retry
    assert platform.invoke("StreamingRevocationsFunction", event) == NO_FAILURES


def test_health_api_reports_redis_down_when_its_secret_cannot_be_read(platform: Platform) -> None:
    # GIVEN a Redis URL secret that does not exist; WHEN GET /health is invoked
    response = platform.invoke("HealthFunction", {"httpMethod": "GET", "path": "/health", "headers": {}})
    # THEN 503 degraded: the table answers, Redis (and so the engine) does not
    body = json.loads(response["body"])
    assert response["statusCode"] == 503 and body["status"] == "degraded"
    assert body["checks"]["tables"] == {"status": "ok"} and body["checks"]["redis"] == {"status": "down"}
