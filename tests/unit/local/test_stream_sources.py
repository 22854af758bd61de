"""The local event source mappings read stream records into Lambda's event shape, from the answer
as the embedded AWS sent it: a Kinesis record's data base64, a DynamoDB stream record's images
typed, binaries base64, times in epoch seconds; JSON all through (a worker gets it as JSON)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from nexus.local.pollers import _DynamoDBSource, _KinesisSource
from nexus.local.provision import AwsClients

REGION = "us-east-1"
DATA = bytes(range(256))  # not text: every byte value


def _read_all(source: Any) -> list[Any]:
    (shard,) = source.shards()
    iterator = source.iterator(shard, None, "TRIM_HORIZON")
    records, _ = source.read(iterator, 100)
    return records


def test_a_kinesis_record_becomes_the_event_lambda_sends(embedded_endpoint: str, aws_credentials: None) -> None:
    clients = AwsClients(endpoint_url=embedded_endpoint, region=REGION)
    kinesis = clients.client("kinesis")
    kinesis.create_stream(StreamName="sources-k", ShardCount=1)
    arn = kinesis.describe_stream(StreamName="sources-k")["StreamDescription"]["StreamARN"]
    put = kinesis.put_record(StreamName="sources-k", Data=DATA, PartitionKey="AAPL")
    # WHEN the mapping's source reads the shard
    (record,) = _read_all(_KinesisSource(clients, arn, REGION))
    # THEN the event is Lambda's, with the data as sent (base64) and the arrival in epoch seconds
    event = json.loads(json.dumps(record.event))
    kinesis_part = event["kinesis"]
    assert base64.b64decode(kinesis_part["data"]) == DATA
    assert kinesis_part["sequenceNumber"] == record.sequence == put["SequenceNumber"]
    assert kinesis_part["partitionKey"] == "AAPL"
    assert isinstance(kinesis_part["approximateArrivalTimestamp"], float)
    assert kinesis_part["approximateArrivalTimestamp"] == record.arrival
    assert (event["eventSource"], event["eventName"], event["eventSourceARN"]) == (
        "aws:kinesis", "aws:kinesis:record", arn)  # fmt: skip
    assert event["eventID"] == f"{{shard}}:{put['SequenceNumber']}"


def test_a_dynamodb_stream_record_becomes_the_event_lambda_sends(
    embedded_endpoint: str, aws_credentials: None
) -> None:
    clients = AwsClients(endpoint_url=embedded_endpoint, region=REGION)
    dynamodb = clients.client("dynamodb")
    table = dynamodb.create_table(
        TableName="sources-d", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]  # fmt: skip
    item = {
        "pk": {"S": "A#1"}, "price": {"N": "150.25"}, "blob": {"B": DATA}, "tags": {"SS": ["a", "b"]},
        "lots": {"NS": ["1", "2.5"]}, "blobs": {"BS": [b"\x00\xff"]}, "flag": {"BOOL": True}, "none": {"NULL": True},
        "nested": {"M": {"list": {"L": [{"N": "1"}, {"S": "x"}, {"B": b"\x01"}]}}},
    }  # fmt: skip
    dynamodb.put_item(TableName="sources-d", Item=item)
    dynamodb.update_item(TableName="sources-d", Key={"pk": {"S": "A#1"}}, UpdateExpression="SET price = :p",
                         ExpressionAttributeValues={":p": {"N": "151"}})  # fmt: skip
    # WHEN the mapping's source reads the table's stream
    inserted, modified = _read_all(_DynamoDBSource(clients, table["LatestStreamArn"], REGION))
    # THEN each event is Lambda's: images typed, binaries base64, the creation time in epoch seconds
    first, second = (json.loads(json.dumps(r.event)) for r in (inserted, modified))
    as_sent = {**item, "blob": {"B": base64.b64encode(DATA).decode()}, "blobs": {"BS": ["AP8="]},
               "nested": {"M": {"list": {"L": [{"N": "1"}, {"S": "x"}, {"B": "AQ=="}]}}}}  # fmt: skip
    assert first["eventName"] == "INSERT" and second["eventName"] == "MODIFY"
    assert first["dynamodb"]["NewImage"] == as_sent
    assert second["dynamodb"]["OldImage"] == as_sent
    assert second["dynamodb"]["NewImage"] == {**as_sent, "price": {"N": "151"}}
    assert first["dynamodb"]["Keys"] == {"pk": {"S": "A#1"}}
    for record, event in ((inserted, first), (modified, second)):
        assert event["dynamodb"]["SequenceNumber"] == record.sequence
        assert isinstance(event["dynamodb"]["ApproximateCreationDateTime"], float)
        assert event["dynamodb"]["ApproximateCreationDateTime"] == record.arrival
        assert (event["eventSource"], event["eventSourceARN"]) == ("aws:dynamodb", table["LatestStreamArn"])
    assert int(inserted.sequence) < int(modified.sequence)


def test_a_failed_read_raises_as_the_sdk_does(embedded_endpoint: str, aws_credentials: None) -> None:
    from botocore.exceptions import ClientError

    clients = AwsClients(endpoint_url=embedded_endpoint, region=REGION)
    source = _KinesisSource(clients, "arn:aws:kinesis:us-east-1:123456789012:stream/none", REGION)
    with pytest.raises(ClientError):
        source.read("not-an-iterator", 10)
