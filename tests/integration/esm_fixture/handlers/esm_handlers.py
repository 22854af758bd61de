"""Handlers for the event-source-mapping tests: record every record seen, in order, in a table;
fail on demand. A record's payload says what to do: {"n": 1, "fail": "never|always|once|crash"}."""

import base64
import json
import os
import time

import boto3

_table = boto3.resource("dynamodb").Table(os.environ["SEEN_TABLE"])


def _seen(source, n, attempt):
    _table.put_item(Item={"source": source, "n": int(time.time_ns()), "record": n, "attempt": attempt})


def _count(source, n):
    items = _table.query(
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "source"},
        ExpressionAttributeValues={":s": source},
    )["Items"]
    return sum(1 for i in items if int(i["record"]) == n)


def kinesis_handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        attempt = _count("kinesis", body["n"]) + 1
        _seen("kinesis", body["n"], attempt)
        if body["fail"] == "crash":
            raise RuntimeError("poison record")
        if body["fail"] == "always" or (body["fail"] == "once" and attempt == 1):
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
            break  # stop at the first failure: the rest is retried after it
    return {"batchItemFailures": failures}


def dynamodb_handler(event, context):
    for record in event["Records"]:
        key = record["dynamodb"]["Keys"]["id"]["S"]
        _seen("dynamodb", int(key), 1)
    return {}


def sqs_handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        _seen("sqs", body["n"], int(record["attributes"]["ApproximateReceiveCount"]))
        if body["fail"] == "always":
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def schedule_handler(event, context):
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    minute = int(event["time"][14:16])
    _seen("schedule", minute, 1)
    return {}


def env_handler(event, context):
    return {"env": sorted(k for k in os.environ if k.endswith("_TABLE"))}
