"""The DynamoDB and SQS toolkit of nexus_common under moto (tables and the notifications queue from
the template): conditional writes, pagination, the SQS batch sender and the request counter."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber
from nexus_common import aws as common_aws
from nexus_common.dynamo import (
    conditional,
    conditional_answer,
    conditional_write,
    conditional_write_or_old,
    error_code,
    pages,
    paginate,
    transaction,
)
from nexus_common.jsonutil import dumps
from nexus_common.sqs import SendFailed, SqsBatchSender


@pytest.fixture
def alerts(aws: Any) -> Any:
    """The alerts table (pk ``account_id``, sk ``alert_id``) through the client factory."""
    return common_aws.dynamodb_table(aws.table_name("AlertsTable"))


def alert(alert_id: str, **extra: Any) -> dict[str, Any]:
    return {"account_id": "acc_1", "alert_id": alert_id, "status": "armed", **extra}


def counted(operation: str, resource: str) -> int:
    return sum(n for (_, op, res), n in common_aws.request_counts().items() if op == operation and res == resource)


# -- conditional writes -----------------------------------------------------------------------


def test_a_refused_condition_is_false_and_changes_nothing(alerts: Any) -> None:
    # GIVEN an alert that is stored
    assert conditional_write(
        alerts.put_item, Item=alert("a1", note="first"), ConditionExpression="attribute_not_exists(alert_id)"
    )
    # WHEN the same key is put again under attribute_not_exists
    written = conditional_write(
        alerts.put_item, Item=alert("a1", note="second"), ConditionExpression="attribute_not_exists(alert_id)"
    )
    # THEN the write is refused, as a result, and the stored item is the first one
    assert written is False
    stored = alerts.get_item(Key={"account_id": "acc_1", "alert_id": "a1"}, ConsistentRead=True)["Item"]
    assert stored["note"] == "first"


def test_a_refused_write_gives_the_item_as_it_was_in_python_values(alerts: Any) -> None:
    # GIVEN an alert with a number and a string stored
    put = {"ConditionExpression": "attribute_not_exists(alert_id)", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    assert conditional_write_or_old(alerts.put_item, Item=alert("a1", upper=Decimal("101.25")), **put) is None
    # WHEN a put of the same key asks for the old item on refusal
    old = conditional_write_or_old(alerts.put_item, Item=alert("a1", upper=Decimal("999")), **put)
    # THEN the item as it was comes back, deserialized (numbers are Decimal, no {"N": ...} form)
    assert old == alert("a1", upper=Decimal("101.25"))
    # AND the full outcome says refused, with that item and the refusal itself
    outcome = conditional(alerts.put_item, Item=alert("a1"), **put)
    assert not outcome.written and outcome.old == old
    assert outcome.error is not None and error_code(outcome.error) == "ConditionalCheckFailedException"


def test_a_refusal_without_an_item_gives_none(alerts: Any) -> None:
    # GIVEN no alert a9 WHEN a delete conditional on its existence asks for the old item
    old = conditional_write_or_old(
        alerts.delete_item,
        Key={"account_id": "acc_1", "alert_id": "a9"},
        ConditionExpression="attribute_exists(alert_id)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    outcome = conditional(
        alerts.delete_item,
        Key={"account_id": "acc_1", "alert_id": "a9"},
        ConditionExpression="attribute_exists(alert_id)",
    )
    # THEN there is no old item, and the outcome says refused
    assert old is None
    assert outcome.written is False and outcome.old is None


def test_conditional_answer_is_the_response_when_written_and_none_when_refused(alerts: Any) -> None:
    # GIVEN an armed alert
    conditional_write(alerts.put_item, Item=alert("a1"))
    fire = {
        "Key": {"account_id": "acc_1", "alert_id": "a1"},
        "UpdateExpression": "SET #s = :fired",
        "ConditionExpression": "#s = :armed",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":fired": "fired", ":armed": "armed"},
        "ReturnValues": "ALL_NEW",
    }
    # WHEN it is fired twice
    first = conditional_answer(alerts.update_item, **fire)
    second = conditional_answer(alerts.update_item, **fire)
    # THEN the first answer holds the new item, the second is refused
    assert first is not None and first["Attributes"]["status"] == "fired"
    assert second is None


def test_another_client_error_is_raised(alerts: Any) -> None:
    # GIVEN a write DynamoDB rejects for another reason than its condition (an item without its sort key)
    # WHEN it is made through the toolkit THEN the ClientError propagates unchanged
    with pytest.raises(ClientError) as caught:
        conditional_write(
            alerts.put_item, Item={"account_id": "acc_1"}, ConditionExpression="attribute_not_exists(alert_id)"
        )
    assert error_code(caught.value) == "ValidationException"
    # AND a missing table is not a refusal either
    missing = common_aws.dynamodb_table("nexus-test-no-such-table")
    with pytest.raises(ClientError) as caught:
        conditional_write_or_old(missing.put_item, Item={"x": "1"}, ConditionExpression="attribute_not_exists(x)")
    assert error_code(caught.value) == "ResourceNotFoundException"


def test_an_error_that_is_not_a_client_error_is_raised(alerts: Any) -> None:
    # GIVEN a write botocore refuses before sending it (a parameter of the wrong type)
    # WHEN it is made through the toolkit THEN that error propagates, not a result
    with pytest.raises(ParamValidationError):
        conditional_write(alerts.put_item, Item="not an item", ConditionExpression="attribute_not_exists(alert_id)")

    def broken(**_: Any) -> None:
        raise ValueError("not from AWS")

    with pytest.raises(ValueError, match="not from AWS"):
        conditional(broken, Item={})
    with pytest.raises(ValueError, match="not from AWS"):
        transaction(broken, TransactItems=[])


def _put_new_alert(table: str, alert_id: str) -> dict[str, Any]:
    """A transaction item putting alert ``alert_id`` of acc_1 unless it exists."""
    item = {"account_id": {"S": "acc_1"}, "alert_id": {"S": alert_id}}
    return {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(alert_id)"}}


def test_a_cancelled_transaction_is_false_and_writes_nothing(aws: Any, alerts: Any) -> None:
    # GIVEN alert a1 stored
    conditional_write(alerts.put_item, Item=alert("a1"))
    client = common_aws.client("dynamodb")

    def put(alert_id: str) -> dict[str, Any]:
        return _put_new_alert(aws.table_name("AlertsTable"), alert_id)

    # WHEN a transaction puts a2 and a1 under attribute_not_exists
    applied = transaction(client.transact_write_items, TransactItems=[put("a2"), put("a1")]).applied
    # THEN it is cancelled as a whole: False, and a2 was not written
    assert applied is False
    assert "Item" not in alerts.get_item(Key={"account_id": "acc_1", "alert_id": "a2"}, ConsistentRead=True)
    # AND one whose conditions hold applies
    assert transaction(client.transact_write_items, TransactItems=[put("a2"), put("a3")]).applied is True


def test_a_cancelled_transaction_says_which_item_failed_its_condition(aws: Any, alerts: Any) -> None:
    # GIVEN alert a1 stored
    conditional_write(alerts.put_item, Item=alert("a1"))
    client = common_aws.client("dynamodb")

    def put(alert_id: str) -> dict[str, Any]:
        return _put_new_alert(aws.table_name("AlertsTable"), alert_id)

    # WHEN a transaction puts a2 then a1 under attribute_not_exists
    outcome = transaction(client.transact_write_items, TransactItems=[put("a2"), put("a1")])
    # THEN it was not applied, the second item is the one refused, and the cancellation can be raised
    assert not outcome.applied and outcome.any_refused
    assert (outcome.refused(0), outcome.refused(1), outcome.refused(5)) == (False, True, False)
    with pytest.raises(ClientError):
        outcome.raise_if_cancelled()
    assert isinstance(outcome.cancellation(), ClientError)
    # AND one whose conditions hold applies, with nothing to raise
    applied = transaction(client.transact_write_items, TransactItems=[put("a2"), put("a3")])
    assert applied.applied and not applied.any_refused
    applied.raise_if_cancelled()
    with pytest.raises(ValueError):
        applied.cancellation()


def test_a_transaction_error_that_is_not_a_cancellation_is_raised(aws: Any) -> None:
    client = common_aws.client("dynamodb")
    # WHEN the transaction names a table that does not exist THEN DynamoDB's error is raised as it is
    missing = {"Put": {"TableName": "nexus-nowhere", "Item": {"k": {"S": "1"}}}}
    with pytest.raises(ClientError) as raised:
        transaction(client.transact_write_items, TransactItems=[missing])
    assert raised.value.response["Error"]["Code"] != "TransactionCanceledException"


# -- pagination -------------------------------------------------------------------------------


def test_paginate_returns_every_item_over_several_pages(alerts: Any) -> None:
    # GIVEN 23 alerts of one account
    with alerts.batch_writer() as batch:
        for i in range(23):
            batch.put_item(Item=alert(f"a{i:02d}"))
    before = counted("Query", alerts.name)
    # WHEN they are queried 5 to a page through paginate
    items = list(
        paginate(
            alerts.query, KeyConditionExpression="account_id = :a", ExpressionAttributeValues={":a": "acc_1"}, Limit=5
        )
    )
    # THEN every item comes back once, in key order, read with 5 queries (the last page is short)
    assert [i["alert_id"] for i in items] == [f"a{i:02d}" for i in range(23)]
    assert counted("Query", alerts.name) - before == 5


def test_pages_read_no_further_page_once_the_caller_stops(alerts: Any) -> None:
    # GIVEN 12 alerts
    with alerts.batch_writer() as batch:
        for i in range(12):
            batch.put_item(Item=alert(f"a{i:02d}"))
    before = counted("Scan", alerts.name)
    # WHEN a scan of 4 to a page is stopped after its second page
    seen: list[str] = []
    for page in pages(alerts.scan, Limit=4):
        seen.extend(str(i["alert_id"]) for i in page["Items"])
        if len(seen) >= 8:
            break
    # THEN two pages were read, no third
    assert len(seen) == 8
    assert counted("Scan", alerts.name) - before == 2
    # AND a COUNT query's pages carry the counts (no items)
    total = sum(
        int(p["Count"])
        for p in pages(
            alerts.query,
            KeyConditionExpression="account_id = :a",
            ExpressionAttributeValues={":a": "acc_1"},
            Select="COUNT",
            Limit=5,
        )
    )
    assert total == 12


# -- SQS --------------------------------------------------------------------------------------


def test_sqs_sender_sends_every_message_in_batches_of_ten(aws: Any) -> None:
    # GIVEN the notifications queue and 23 messages
    url = aws.queue_url("NotificationsQueue")
    queue = url.rsplit("/", 1)[-1]
    before = counted("SendMessageBatch", queue)
    messages = [{"n": i, "amount": Decimal("101.50")} for i in range(23)]
    # WHEN they are sent
    SqsBatchSender(url).send(messages)
    # THEN three SendMessageBatch calls carried them (10, 10, 3) and every one is on the queue, as
    # JSON with its amount a canonical decimal string
    assert counted("SendMessageBatch", queue) - before == 3
    sqs = common_aws.client("sqs")
    received: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not answer.get("Messages"):
            break
        received.extend(json.loads(m["Body"]) for m in answer["Messages"])
    assert sorted(m["n"] for m in received) == list(range(23))
    assert all(m["amount"] == "101.5" for m in received)


def test_sqs_sender_reports_the_messages_sqs_refused_and_stops() -> None:
    # GIVEN an SQS that accepts the first batch and refuses two messages of the second (moto never
    # refuses part of a batch without per-message delays, so botocore's Stubber plays SQS's answer,
    # checked against the SQS API model)
    import boto3

    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/nexus-test-notifications"
    stubber = Stubber(client)
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": [{"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "x"} for i in range(10)],
            "Failed": [],
        },
        {"QueueUrl": url, "Entries": [{"Id": str(i), "MessageBody": dumps({"n": i})} for i in range(10)]},
    )
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": [
                {"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "x"}
                for i in range(10, 20)
                if i not in (11, 12)
            ],
            "Failed": [
                {"Id": "11", "SenderFault": False, "Code": "InternalError"},
                {"Id": "12", "SenderFault": False, "Code": "ServiceUnavailable"},
            ],
        },
        {"QueueUrl": url, "Entries": [{"Id": str(i), "MessageBody": dumps({"n": i})} for i in range(10, 20)]},
    )
    # WHEN 25 messages are sent (three batches)
    with stubber, pytest.raises(SendFailed) as caught:
        SqsBatchSender(url, client=client).send([{"n": i} for i in range(25)])
    # THEN the refused messages are named by their index, with SQS's codes
    assert caught.value.failed == [("11", "InternalError"), ("12", "ServiceUnavailable")]
    assert "2 message(s) not sent" in str(caught.value)
    # AND the third batch was not sent (the caller fails and its trigger redelivers)
    stubber.assert_no_pending_responses()


# -- the request counter ----------------------------------------------------------------------


def test_every_request_of_the_factory_clients_is_counted_by_operation_and_resource(aws: Any, alerts: Any) -> None:
    # GIVEN the counts so far
    before = common_aws.request_counts()
    table = aws.table_name("AlertsTable")
    # WHEN a resource and a client of the factory make requests, 8 threads at once for the reads
    conditional_write(alerts.put_item, Item=alert("a1"))
    conditional_write(alerts.put_item, Item=alert("a1"), ConditionExpression="attribute_not_exists(alert_id)")

    def read() -> None:
        for _ in range(25):
            alerts.get_item(Key={"account_id": "acc_1", "alert_id": "a1"})

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    common_aws.client("dynamodb").batch_get_item(
        RequestItems={table: {"Keys": [{"account_id": {"S": "acc_1"}, "alert_id": {"S": "a1"}}]}}
    )
    after = common_aws.request_counts()

    # THEN each call is counted once under (service, operation, resource), a refused write too
    def delta(key: tuple[str, str, str]) -> int:
        return after.get(key, 0) - before.get(key, 0)

    assert delta(("dynamodb", "PutItem", table)) == 2
    assert delta(("dynamodb", "GetItem", table)) == 200
    assert delta(("dynamodb", "BatchGetItem", table)) == 1
    # AND a reset starts from zero
    common_aws.reset_request_counts()
    assert common_aws.request_counts() == {}


def test_the_resource_of_a_request_is_its_table_queue_or_stream() -> None:
    # GIVEN the parameters of requests of each kind WHEN their resource is named THEN
    assert common_aws.resource_of({"TableName": "t1", "Key": {}}) == "t1"
    assert common_aws.resource_of({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/q-notify"}) == "q-notify"
    assert common_aws.resource_of({"StreamName": "commands", "Data": b""}) == "commands"
    assert common_aws.resource_of({"RequestItems": {"t2": {}, "t1": {}}}) == "t1,t2"
    assert (
        common_aws.resource_of({"TransactItems": [{"Put": {"TableName": "t3"}}, {"Update": {"TableName": "t1"}}]})
        == "t1,t3"
    )
    assert common_aws.resource_of({"SecretId": "s"}) == ""
