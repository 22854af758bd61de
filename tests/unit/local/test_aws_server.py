"""The embedded AWS (``nexus.local.aws_server``) answers Kinesis and DynamoDB as moto does, only faster.

A real server process (what ``nexus up`` starts) is compared with moto's own, unpatched, in-process
Kinesis and DynamoDB fed the same requests."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from helpers import embedded_aws, eventually
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import DynamoType

from nexus.local.aws_server import FairLock
from nexus.local.runtime import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
PAYLOADS = [b'{"n": 1}', b"\x00\xffbinary\n", b"x" * 3000, "é ü".encode(), b"{}"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with embedded_aws(CREDENTIALS) as endpoint:
        yield endpoint


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _fill_and_read(kinesis: Any, stream: str) -> list[list[dict[str, Any]]]:
    """Put PAYLOADS (one by one, then in one PutRecords), read them back 3 at a time."""
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    for i, data in enumerate(PAYLOADS):
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey=f"k{i}")
    kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": "many"} for d in PAYLOADS])
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    pages = []
    for _ in range(5):
        answer = kinesis.get_records(ShardIterator=iterator, Limit=3)
        pages.append(
            [
                {key: record[key] for key in ("SequenceNumber", "Data", "PartitionKey")}
                | {"has_time": record["ApproximateArrivalTimestamp"].tzinfo is not None}
                for record in answer["Records"]
            ]
        )
        iterator = answer["NextShardIterator"]
        assert answer["MillisBehindLatest"] >= 0
    return pages


def test_get_records_answers_what_moto_answers(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the same records put into the embedded server and into moto's own Kinesis
    fast = _fill_and_read(boto3.client("kinesis", endpoint_url=server, region_name="us-east-1", **_keys()), "same")
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        reference = _fill_and_read(boto3.client("kinesis", region_name="us-east-1"), "same")
    # THEN every page read 3 at a time is the same: data, keys, sequence numbers, then nothing
    assert fast == reference
    assert [len(page) for page in fast] == [3, 3, 3, 1, 0]
    assert [r["Data"] for page in fast for r in page] == PAYLOADS * 2


def _dynamodb_session(dynamodb: Any) -> list[Any]:
    """Every DynamoDB item operation, with and without answers, conditions that fail, and pages;
    what each call answered (errors by code and the item they return), minus request metadata."""
    dynamodb.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
        GlobalSecondaryIndexes=[
            {"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}}
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )  # fmt: skip
    answers: list[Any] = []

    def call(operation: str, **kwargs: Any) -> None:
        try:
            answer = getattr(dynamodb, operation)(**kwargs)
        except dynamodb.exceptions.ClientError as exc:
            error = exc.response["Error"]
            answers.append((operation, error["Code"], error.get("Message"), exc.response.get("Item")))
            return
        answer.pop("ResponseMetadata", None)
        answers.append((operation, answer))

    def item(i: int) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": f"{i:03d}"}, "g": {"S": f"g{i % 2}"}, "n": {"N": str(i)},
                "l": {"L": [{"S": "x"}, {"N": "1.50"}]}, "m": {"M": {"b": {"BOOL": True}, "z": {"NULL": True}}},
                "ss": {"SS": ["a", "b"]}, "bin": {"B": b"\x00\xff"},
                "more": {"L": [{"M": {"links": {"L": [{"S": f"l{i}"}, {"B": b"\x01"}]},  # lists of maps of lists
                                      "d": {"M": {"m": {"M": {"ns": {"NS": ["1", "2.5"]}}}}}}}]}}  # fmt: skip

    for i in range(12):
        call("put_item", TableName="items", Item=item(i))
    for pk, sk in (("a", "2"), ("q", "10"), ("q", "9"), ("z", "1"), ("q", "1")):  # other partitions, out of order
        call("put_item", TableName="items", Item={**item(30), "pk": {"S": pk}, "sk": {"S": sk}})
    call("put_item", TableName="items", Item=item(0), ReturnValues="ALL_OLD")
    big = {**item(40), **{f"c{i}": {"S": "y" * 1000} for i in range(400)}}
    room = 405_000 - sum(len(k) + DynamoType(v).size() for k, v in big.items()) - len("tail")  # moto's measure
    for tail in (room - 500, room, room + 1, room + 3000):  # under, at, one over and over the size limit
        call("put_item", TableName="items", Item={**big, "tail": {"S": "z" * tail}})
    call("put_item", TableName="items", Item=item(1), ConditionExpression="attribute_not_exists(pk)",
         ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
    call("get_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "003"}}, ConsistentRead=True)
    call("get_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "missing"}})
    call("get_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "004"}}, ProjectionExpression="n, m.b")
    for returns in ("NONE", "ALL_NEW", "UPDATED_NEW", "ALL_OLD", "UPDATED_OLD"):
        values = {":one": {"N": "1"}, ":t": {"S": returns}}
        call("update_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "005"}}, ReturnValues=returns,
             UpdateExpression="ADD n :one SET t = :t", ExpressionAttributeValues=values)  # fmt: skip
    call("update_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "005"}}, UpdateExpression="SET n = :n",
         ConditionExpression="n < :n", ExpressionAttributeValues={":n": {"N": "0"}})  # fmt: skip
    for n, extra in (("99", {}), ("0", {}), ("99", {":x": {"S": "x"}}), ("98", {})):  # one condition text with
        call("update_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "005"}},  # values that pass, fail,
             UpdateExpression="SET t = :n", ConditionExpression="n < :n",  # one left unused, and pass
             ExpressionAttributeValues={":n": {"N": n}, **extra}, ReturnValues="ALL_NEW")  # fmt: skip
    for _ in range(2):  # a bad update expression is refused every time
        call(
            "update_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "005"}}, UpdateExpression="SET n = = 1"
        )
    _set_and_expression_updates(call, "items")
    _unstreamed_updates(dynamodb, call)
    call("delete_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "006"}}, ReturnValues="ALL_OLD")
    call("delete_item", TableName="items", Key={"pk": {"S": "p"}, "sk": {"S": "006"}})
    call("query", TableName="items", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}},
         Limit=4, ScanIndexForward=False)  # fmt: skip
    call("query", TableName="items", IndexName="by-g", KeyConditionExpression="g = :g",
         ExpressionAttributeValues={":g": {"S": "g1"}}, Select="COUNT")  # fmt: skip
    call("query", TableName="items", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    call("query", TableName="items", KeyConditionExpression="pk = :p AND sk > :s",
         ExpressionAttributeValues={":p": {"S": "q"}, ":s": {"S": "1"}})  # fmt: skip
    call("query", TableName="items", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "q"}},
         Limit=2, ExclusiveStartKey={"pk": {"S": "q"}, "sk": {"S": "1"}})  # fmt: skip
    call("query", TableName="items", IndexName="by-g", KeyConditionExpression="g = :g",
         ExpressionAttributeValues={":g": {"S": "g0"}}, ScanIndexForward=False)  # fmt: skip
    for limit, forward in ((1, False), (3, True), (11, True), (12, False), (40, False)):  # from either end
        call("query", TableName="items", KeyConditionExpression="pk = :p", Limit=limit, ScanIndexForward=forward,
             ExpressionAttributeValues={":p": {"S": "p"}})  # fmt: skip
    call("query", TableName="items", KeyConditionExpression="pk = :p", Limit=3, ScanIndexForward=False,
         FilterExpression="n > :n", ExpressionAttributeValues={":p": {"S": "p"}, ":n": {"N": "9"}})  # fmt: skip
    call("query", TableName="items", KeyConditionExpression="pk = :p", Limit=1, Select="COUNT",
         ExpressionAttributeValues={":p": {"S": "q"}})  # fmt: skip
    call("scan", TableName="items")
    call("scan", TableName="items", Limit=5, ExclusiveStartKey={"pk": {"S": "p"}, "sk": {"S": "002"}})
    call("scan", TableName="items", FilterExpression="n > :n", ExpressionAttributeValues={":n": {"N": "8"}})

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": sk}}

    call("batch_get_item", RequestItems={"items": {"Keys": [key("001"), key("zzz")]}})
    writes = [{"PutRequest": {"Item": item(20)}}, {"DeleteRequest": {"Key": key("007")}}]
    call("batch_write_item", RequestItems={"items": writes})
    call("transact_write_items", TransactItems=[{"Put": {"TableName": "items", "Item": item(21)}}])
    call("transact_get_items", TransactItems=[{"Get": {"TableName": "items", "Key": key("021")}}])
    return answers


def _unstreamed_updates(dynamodb: Any, call: Any) -> None:
    """A table without a stream (its updates keep no old image): every ``ReturnValues`` of an
    update that adds to and removes from a set, a refused one, then the set updates."""
    dynamodb.create_table(TableName="plain", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")  # fmt: skip
    key = {"pk": {"S": "p"}}
    call("put_item", TableName="plain", Item={**key, "ids": {"SS": ["a", "b"]}, "cash": {"N": "10"}})
    for n, returns in enumerate(("NONE", "ALL_NEW", "UPDATED_NEW", "ALL_OLD", "UPDATED_OLD")):
        call("update_item", TableName="plain", Key=key, ReturnValues=returns,
             UpdateExpression="SET cash = cash - :amt, t = :t ADD ids :add DELETE ids :gone",
             ConditionExpression="cash >= :amt", ReturnValuesOnConditionCheckFailure="ALL_OLD",
             ExpressionAttributeValues={":amt": {"N": "1.25"}, ":t": {"S": returns}, ":add": {"SS": [f"n{n}"]},
                                        ":gone": {"SS": ["a" if n == 0 else f"n{n - 1}"]}})  # fmt: skip
    call("update_item", TableName="plain", Key=key, ReturnValues="ALL_OLD", UpdateExpression="SET cash = :n",
         ConditionExpression="cash > :n", ReturnValuesOnConditionCheckFailure="ALL_OLD",
         ExpressionAttributeValues={":n": {"N": "100"}})  # fmt: skip
    call("update_item", TableName="missing", Key=key, UpdateExpression="SET cash = :n",
         ExpressionAttributeValues={":n": {"N": "1"}})  # fmt: skip
    _set_and_expression_updates(call, "plain", {"pk": {"S": "q"}})
    call("get_item", TableName="plain", Key=key, ConsistentRead=True)
    # near the item size limit: an update that fits, one that would pass the limit, a small one
    big = {"pk": {"S": "big"}}
    call("put_item", TableName="plain", Item={**big, "a": {"S": "a" * 150_000}})
    for name in ("b", "c"):
        call("update_item", TableName="plain", Key=big, UpdateExpression=f"SET {name} = :v",
             ExpressionAttributeValues={":v": {"S": name * 150_000}})  # fmt: skip
    call("update_item", TableName="plain", Key=big, UpdateExpression="SET d = :v, e = :v",
         ExpressionAttributeValues={":v": {"N": "1"}})  # fmt: skip
    call("get_item", TableName="plain", Key=big, ConsistentRead=True, ProjectionExpression="pk, b, d, e")
    # nested sets of one map into the next double the item at every step (moto's values are the
    # item's own objects): past the limit, though every attribute starts small
    nested = {"pk": {"S": "nested"}}
    call("put_item", TableName="plain", Item={**nested, **{f"m{i}": {"M": {"v": {"S": "x" * 10}}} for i in range(16)}})
    doubling = ", ".join(f"m{i}.a = m{i - 1}, m{i}.b = m{i - 1}" for i in range(1, 16))
    call("update_item", TableName="plain", Key=nested, UpdateExpression=f"SET {doubling}, z = :z",
         ExpressionAttributeValues={":z": {"S": "z"}})  # fmt: skip


def _set_and_expression_updates(call: Any, table: str, key: dict[str, Any] | None = None) -> None:
    """Updates that go through every step of moto's update validation: sets added to, removed from
    and tested (``contains``, ``size``), functions, nested paths, and one expression text given
    names that make it valid, then invalid (a key attribute, overlapping paths), each twice."""
    key = key or {"pk": {"S": "p"}, "sk": {"S": "008"}}
    members = [f"order-{i:04d}-{'x' * 24}" for i in range(300)]
    call("update_item", TableName=table, Key=key, ReturnValues="ALL_NEW",
         UpdateExpression="ADD #res :many, nums :nums SET cash = if_not_exists(cash, :zero) + :amt",
         ExpressionAttributeNames={"#res": "reservations"},
         ExpressionAttributeValues={":many": {"SS": members}, ":nums": {"NS": ["1.50", "2", "-3"]},
                                    ":zero": {"N": "0"}, ":amt": {"N": "10.25"}})  # fmt: skip
    for rid in (members[7], members[7], "absent"):  # the second and third find nothing to remove
        call("update_item", TableName=table, Key=key, ReturnValues="UPDATED_NEW",
             UpdateExpression="SET cash = cash - :amt DELETE #res :rids",
             ConditionExpression="contains(#res, :rid) AND contains(nums, :n) AND size(#res) > :k",
             ExpressionAttributeNames={"#res": "reservations"},
             ExpressionAttributeValues={":rid": {"S": rid}, ":rids": {"SS": [rid]}, ":amt": {"N": "1.5"},
                                        ":n": {"N": "2.0"}, ":k": {"N": "10"}},
             ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
    call("update_item", TableName=table, Key=key, ReturnValues="ALL_NEW",
         UpdateExpression="SET l = list_append(l, :more), m.deep = :d, m.b = :f REMOVE n",
         ExpressionAttributeValues={":more": {"L": [{"S": "y"}]}, ":d": {"M": {"k": {"NS": ["1"]}}},
                                    ":f": {"BOOL": False}})  # fmt: skip
    for _ in range(2):
        for names in ({"#a": "t1", "#b": "t2"}, {"#a": "sk", "#b": "t2"}, {"#a": "t3", "#b": "t3"},
                      {"#a": "t4", "#b": "t5"}):  # fmt: skip
            call("update_item", TableName=table, Key=key, ReturnValues="UPDATED_NEW",
                 UpdateExpression="SET #a = :v, #b = :v", ExpressionAttributeNames=names,
                 ExpressionAttributeValues={":v": {"S": "x"}})  # fmt: skip
        call("update_item", TableName=table, Key=key, UpdateExpression="SET a = :v SET b = :v",
             ExpressionAttributeValues={":v": {"S": "x"}})  # fmt: skip
        call("update_item", TableName=table, Key=key, UpdateExpression="SET m.b = :v, m = :v",
             ExpressionAttributeValues={":v": {"S": "x"}})  # fmt: skip
    call("get_item", TableName=table, Key=key, ConsistentRead=True)


def test_dynamodb_item_operations_answer_what_moto_answers(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the same DynamoDB requests sent to the embedded server and to moto's own DynamoDB
    fast = _dynamodb_session(boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1", **_keys()))
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        reference = _dynamodb_session(boto3.client("dynamodb", region_name="us-east-1"))
    # THEN every answer is the same (items, counts, pages, returned values, refusals)
    assert len(fast) == len(reference) == 112
    refused = [a for a in fast if a[0] == "update_item" and len(a) == 4 and "size" in str(a[2])]
    assert len(refused) == 2 and {r[1] for r in refused} == {"ValidationException"}  # the updates past the limit
    for got, expected in zip(fast, reference, strict=True):
        assert got == expected
    assert any(a[0] == "put_item" and a[1] == "ConditionalCheckFailedException" and a[3] for a in fast)
    assert [a[1] for a in fast if a[0] == "put_item" and len(a) == 4].count("ValidationException") == 2


def test_concurrent_puts_lose_no_record_and_never_share_a_sequence_number(server: str) -> None:
    # GIVEN 8 threads putting 40 records each on one shard at the same time
    kinesis = boto3.client("kinesis", endpoint_url=server, region_name="us-east-1", **_keys())
    kinesis.create_stream(StreamName="busy", ShardCount=1)
    numbers: list[str] = []

    def put(worker: int) -> None:
        client = boto3.client("kinesis", endpoint_url=server, region_name="us-east-1", **_keys())
        for i in range(40):
            answer = client.put_record(StreamName="busy", Data=f"{worker}-{i}".encode(), PartitionKey="p")
            numbers.append(answer["SequenceNumber"])

    threads = [threading.Thread(target=put, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # WHEN the shard is read from the start, in pages
    shard = kinesis.list_shards(StreamName="busy")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="busy", ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    read: list[dict[str, Any]] = []
    while True:
        answer = kinesis.get_records(ShardIterator=iterator, Limit=70)
        if not answer["Records"]:
            break
        read.extend(answer["Records"])
        iterator = answer["NextShardIterator"]
    # THEN all 320 records are there, once each, in the order of their distinct sequence numbers
    assert len(set(numbers)) == 320
    assert [r["SequenceNumber"] for r in read] == sorted(numbers, key=int)
    assert sorted(r["Data"] for r in read) == sorted(f"{w}-{i}".encode() for w in range(8) for i in range(40))


def test_the_fair_lock_is_taken_in_arrival_order_and_by_one_at_a_time() -> None:
    # GIVEN a held lock and 20 threads that queue for it one after another
    lock = FairLock()
    order: list[int] = []
    inside = threading.Semaphore(1)
    lock.__enter__()
    threads = []
    for n in range(20):

        def take(n: int = n) -> None:
            with lock:
                assert inside.acquire(blocking=False), "two holders at once"
                order.append(n)
                inside.release()

        thread = threading.Thread(target=take)
        thread.start()
        eventually(lambda: len(lock._waiters), lambda waiting, n=n: waiting == n + 1)
        threads.append(thread)
    # WHEN the holder leaves
    lock.__exit__(None, None, None)
    for thread in threads:
        thread.join()
    # THEN they got it one at a time, in the order they came
    assert order == list(range(20))


def _served(labels: list[tuple[str, bool]], released_at: float, first_turns: int = 3) -> list[str]:
    """The order in which a held ``FairLock`` (bound 0.25 s, on a clock the test moves) serves
    waiters queued at t=0 one after another (each label ``first`` or not), when its holder leaves
    at ``released_at``."""
    now = [0.0]
    lock = FairLock(max_wait=0.25, clock=lambda: now[0], first_turns=first_turns)
    order: list[str] = []
    lock.acquire(first=False)
    threads = []
    for n, (label, first) in enumerate(labels):

        def take(label: str = label, first: bool = first) -> None:
            with lock.hold(first):
                order.append(label)

        thread = threading.Thread(target=take)
        thread.start()
        eventually(lambda: len(lock._waiters) + len(lock._first), lambda waiting, n=n: waiting == n + 1)
        threads.append(thread)
    now[0] = released_at
    lock.release()
    for thread in threads:
        thread.join()
    return order


def test_waiters_that_go_first_are_served_before_the_others_each_class_in_arrival_order() -> None:
    # GIVEN background and first waiters queued in a mixed order, WHEN the holder leaves at once
    order = _served([("b1", False), ("f1", True), ("b2", False), ("f2", True), ("f3", True)], released_at=0.0)
    # THEN the first ones went first, each class in the order it came
    assert order == ["f1", "f2", "f3", "b1", "b2"]


def test_the_clients_that_go_first_are_told_by_their_sdk_app_id() -> None:
    from nexus.local.aws_server import _OneAtATime, sdk_app_id

    ua = "Boto3/1.44.5 md/Botocore#1.44.8 ua/2.1 lang/python#3.11.7 cfg/retry-mode#standard app/{} Botocore/1.44.8"
    server = _OneAtATime(app=None, first="nexus-first")
    assert sdk_app_id(ua.format("nexus-first.marketmaker")) == "nexus-first.marketmaker"
    assert sdk_app_id("Boto3/1.44.5 Botocore/1.44.8") == ""
    # the id itself and a container's "<id>.<name>" go first; another id that starts alike does not
    assert server.goes_first(sdk_app_id(ua.format("nexus-first")))
    assert server.goes_first(sdk_app_id(ua.format("nexus-first.marketmaker")))
    assert not server.goes_first(sdk_app_id(ua.format("nexus-firstly")))
    assert not server.goes_first("") and not _OneAtATime(app=None).goes_first("nexus-first")


def test_background_waiters_that_waited_their_bound_are_served_after_a_few_first_ones() -> None:
    # GIVEN background waiters queued before first ones, WHEN the holder leaves after the bound
    queued = [("b1", False), ("b2", False), ("b3", False)] + [(f"f{n}", True) for n in range(1, 7)]
    order = _served(queued, released_at=0.25)
    # THEN the oldest background one went at once, then one after every three first ones while both
    # waited (neither waits without bound), each class in its order
    assert order == ["b1", "f1", "f2", "f3", "b2", "f4", "f5", "f6", "b3"]
    # AND with one first turn in between, the classes take turns
    assert _served(queued[:5], released_at=0.25, first_turns=1) == ["b1", "f1", "b2", "f2", "b3"]


def test_the_request_profile_counts_requests_per_operation_and_resource(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a server started with NEXUS_AWS_PROFILE, and clients with no SDK app id but the one named below
    monkeypatch.delenv("AWS_SDK_UA_APP_ID", raising=False)
    port, profile = free_port(), tmp_path / "profile.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "nexus.local.aws_server", "--port", str(port)],
        env={**os.environ, **CREDENTIALS, "NEXUS_AWS_PROFILE": str(profile)},
    )
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", **_keys())
        eventually(lambda: _answers(dynamodb), bool, timeout=30)
        dynamodb.create_table(
            TableName="counted",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # WHEN it serves 5 puts, 3 gets, a batch of 4 writes and an update, then stops
        for i in range(5):
            dynamodb.put_item(TableName="counted", Item={"pk": {"S": str(i)}})
        for i in range(3):
            dynamodb.get_item(TableName="counted", Key={"pk": {"S": str(i)}})
        dynamodb.batch_write_item(RequestItems={"counted": [
            {"PutRequest": {"Item": {"pk": {"S": f"b{i}"}}}} for i in range(3)] + [
            {"DeleteRequest": {"Key": {"pk": {"S": "0"}}}}]})  # fmt: skip
        dynamodb.update_item(TableName="counted", Key={"pk": {"S": "1"}}, UpdateExpression="SET n = :n",
                             ExpressionAttributeValues={":n": {"N": "1"}})  # fmt: skip
        # ... and a put of an item of about 2.5 KB
        dynamodb.put_item(TableName="counted", Item={"pk": {"S": "big"}, "text": {"S": "x" * 2500},
                                                     "more": {"M": {"n": {"L": [{"N": "12345"}]}}}})  # fmt: skip
        # ... and 2 puts from a client with its own SDK app id
        named = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                             config=Config(user_agent_appid="nexus-first.marketmaker"), **_keys())  # fmt: skip
        for i in range(2):
            named.put_item(TableName="counted", Item={"pk": {"S": f"n{i}"}})
        # ... and 2 reads of a Kinesis shard, counted against their stream
        kinesis = boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", **_keys())
        kinesis.create_stream(StreamName="tape", ShardCount=1)
        iterator = kinesis.get_shard_iterator(StreamName="tape", ShardId="shardId-000000000000",
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        iterator = kinesis.get_records(ShardIterator=iterator)["NextShardIterator"]
        kinesis.get_records(ShardIterator=iterator)
    finally:
        process.terminate()
        process.wait(timeout=10)
    # THEN the profile it wrote counts them per operation and table
    rows = {tuple(line.split()[3:]): int(line.split()[2]) for line in profile.read_text().splitlines()[1:]}
    assert rows[("PutItem", "counted")] == 8
    assert rows[("GetItem", "counted")] == 3
    assert rows[("BatchWriteItem", "counted")] == 1  # the table it writes to
    # AND its JSON twin counts the items written: 8 puts, 4 in the batch, 1 update
    document = json.loads((tmp_path / "profile.txt.json").read_text())
    assert document["items_written"] == {"counted": 13}
    # AND their write units: one per KB of a put item (the large one 3), an update or delete 1
    assert document["write_units"] == {"counted": 15}
    assert document["apps_write_units"] == [{"app": "nexus-first.marketmaker", "table": "counted", "count": 2}]
    counted = {(r["operation"], r["resource"]): r["count"] for r in document["requests"]}
    assert counted[("PutItem", "counted")] == 8 and counted[("UpdateItem", "counted")] == 1
    assert counted[("GetRecords", "tape")] == 2
    # AND the named client's requests and writes are counted under its app id (and only those)
    assert document["apps"] == [{"app": "nexus-first.marketmaker", "operation": "PutItem", "resource": "counted",
                                 "count": 2}]  # fmt: skip
    assert document["apps_items_written"] == [{"app": "nexus-first.marketmaker", "table": "counted", "count": 2}]


def _answers(dynamodb: Any) -> bool:
    try:
        dynamodb.list_tables()
    except (BotoCoreError, ClientError):  # not answering yet
        return False
    return True


def _sqs_session(sqs: Any) -> list[list[str]]:
    """Sends (one delayed far ahead), receives that hide what they took, a visibility change that
    shows one again: the bodies each receive got, sorted."""
    url = sqs.create_queue(QueueName="notes")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=900)
    got = []
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=300).get("Messages", [])
    got.append(sorted(m["Body"] for m in first))
    got.append(sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                             VisibilityTimeout=300).get("Messages", [])))  # fmt: skip
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0)
    got.append(sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])))
    counts = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=counts)["Attributes"]
    got.append([f"{name}={attributes[name]}" for name in counts])
    return got


def test_sqs_receives_what_moto_receives(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the same sends, receives and visibility change on the embedded server and on moto's own SQS
    fast = _sqs_session(boto3.client("sqs", endpoint_url=server, region_name="us-east-1", **_keys()))
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        reference = _sqs_session(boto3.client("sqs", region_name="us-east-1"))
    # THEN each receive got the same messages: hidden ones and the delayed one never, the shown one again
    assert fast == reference
    assert [len(g) for g in fast[:3]] == [3, 2, 1]
    assert fast[3] == ["ApproximateNumberOfMessages=0", "ApproximateNumberOfMessagesNotVisible=5",
                       "ApproximateNumberOfMessagesDelayed=1"]  # fmt: skip
    assert "later" not in {body for g in fast for body in g}


def _refusals(kinesis: Any, sqs: Any) -> list[tuple[str, str, int]]:
    """Requests each service refuses: the error code, message and HTTP status of each answer."""
    queue = sqs.create_queue(QueueName="refusing")["QueueUrl"]
    calls = [
        lambda: kinesis.describe_stream(StreamName="missing"),
        lambda: kinesis.put_record(StreamName="missing", Data=b"x", PartitionKey="p"),
        lambda: sqs.get_queue_url(QueueName="missing"),
        lambda: sqs.send_message(QueueUrl=queue, MessageBody="x", DelaySeconds=901),
    ]
    refused = []
    for call in calls:
        with pytest.raises(ClientError) as caught:
            call()
        error = caught.value.response
        refused.append((error["Error"]["Code"], error["Error"].get("Message", ""),
                        error["ResponseMetadata"]["HTTPStatusCode"]))  # fmt: skip
    return refused


def test_refusals_answer_what_moto_answers(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN requests that Kinesis and SQS refuse, sent to the embedded server (which hands these
    # services' requests to moto's handlers without Flask) and to moto's own
    def clients(**endpoint: str) -> tuple[Any, Any]:
        return tuple(boto3.client(name, region_name="us-east-1", **endpoint, **_keys())  # type: ignore[return-value]
                     for name in ("kinesis", "sqs"))  # fmt: skip

    fast = _refusals(*clients(endpoint_url=server))
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        reference = _refusals(*clients())
    # THEN each is refused with the same code, message and status
    assert fast == reference
    assert [code for code, _, _ in fast][:3] == ["ResourceNotFoundException", "ResourceNotFoundException",
                                                 "AWS.SimpleQueueService.NonExistentQueue"]  # fmt: skip


def test_a_request_not_signed_for_its_targets_service_is_routed_as_motos_server_routes_it(server: str) -> None:
    import http.client

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    # GIVEN requests naming a Kinesis or DynamoDB action, unsigned or signed for another service
    scope = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=0"
    cases = [("Kinesis_20131202.ListStreams", None), ("DynamoDB_20120810.ListTables", scope.format("sqs")),
             ("Kinesis_20131202.ListStreams", scope.format("kinesis"))]  # fmt: skip
    reference = Client(DomainDispatcherApplication(create_backend_app))
    host, port = server.removeprefix("http://").split(":")
    for target, authorization in cases:
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        if authorization:
            headers["Authorization"] = authorization
        # WHEN each is sent to the embedded server and to moto's own server application
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/", body=b"{}", headers=headers)
        ours = connection.getresponse()
        ours.read()
        connection.close()
        try:
            status = reference.post("/", data=b"{}", headers={**headers, "Host": f"{host}:{port}"}).status_code
        except Exception:  # noqa: BLE001 - an application error, which a server answers with a 500
            status = 500
        # THEN both answer with the same status (the service chosen by how it was signed)
        assert ours.status == status, (target, authorization)


def test_connections_are_kept_alive_and_a_body_the_emulator_leaves_unread_is_skipped(server: str) -> None:
    import http.client

    # GIVEN one HTTP/1.1 connection to the emulator
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    target = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams",
              "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, "
                               "SignedHeaders=host, Signature=0"}  # fmt: skip
    answers = []
    # WHEN it sends a request, then one with a body the emulator does not read (a GET of a
    # health path with a body), then another request
    for method, path, body in (("POST", "/", b"{}"), ("GET", "/moto-api/", b"x" * 5000), ("POST", "/", b"{}")):
        connection.request(method, path, body=body, headers=target if method == "POST" else {})
        answer = connection.getresponse()
        answers.append((answer.status, answer.getheader("Connection"), answer.read()))
    # THEN every answer came on the same connection, none of them closing it
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert [closing for _, closing, _ in answers] == [None, None, None]
    assert json.loads(answers[2][2]) == json.loads(answers[0][2])
    assert connection.sock is not None
    connection.close()


def _raw_answer(stream: Any) -> tuple[str, dict[str, str], bytes | None]:
    """One HTTP answer read from a socket file: status line, headers, body (None: not read)."""
    status = stream.readline().decode("latin-1").rstrip("\r\n")
    headers: dict[str, str] = {}
    while (line := stream.readline().decode("latin-1").rstrip("\r\n")) != "":
        key, _, value = line.partition(": ")
        headers[key] = value
    return status, headers, None


def test_an_answer_is_written_in_one_piece_as_http_server_writes_it(server: str) -> None:
    import socket
    from email.utils import parsedate_to_datetime

    # GIVEN one connection to the emulator
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock, sock.makefile("rb") as stream:
        # WHEN it asks for a page, then for the same page's head, then for it again and to close
        for method, connection in (("GET", ""), ("HEAD", ""), ("GET", "Connection: close\r\n")):
            sock.sendall(f"{method} /moto-api/ HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n".encode())
            status, headers, _ = _raw_answer(stream)
            length = int(headers["Content-Length"])
            body = stream.read(length) if method == "GET" else b""
            # THEN each answer has the status line, the server's name, the date (RFC 7231, in GMT),
            # the application's headers and the length of its body; a HEAD's, no body (the next
            # answer's status line follows its headers)
            assert status == "HTTP/1.1 200 OK"
            assert headers["Server"].startswith("Werkzeug/")
            assert parsedate_to_datetime(headers["Date"]).utcoffset() is not None
            assert headers["Date"].endswith(" GMT")
            assert headers["Content-Type"].startswith("text/html")
            assert method == "HEAD" or (length > 0 and len(body) == length)
            assert headers.get("Connection") == ("close" if connection else None)
        # and the connection closes after the answer that said so
        assert stream.read() == b""


def test_the_date_header_is_formatted_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from email.utils import formatdate

    from nexus.local import aws_server

    now = [1_800_000_000.2]
    monkeypatch.setattr(aws_server.time, "time", lambda: now[0])
    first = aws_server._http_date()
    now[0] = 1_800_000_000.9
    assert aws_server._http_date() is first == formatdate(1_800_000_000, usegmt=True)
    now[0] = 1_800_000_001.0
    assert aws_server._http_date() == formatdate(1_800_000_001, usegmt=True) == "Fri, 15 Jan 2027 08:00:01 GMT"


def _serve() -> tuple[subprocess.Popen[bytes], str]:
    """A fresh emulator process of its own, once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "nexus.local.aws_server", "--port", str(port)],
                               env={**os.environ, **CREDENTIALS})  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    eventually(lambda: _answers(dynamodb), bool, timeout=30)
    return process, endpoint


def test_dynamodb_stream_records_are_answered_as_moto_serializes_them() -> None:
    # GIVEN a fresh emulator and a table whose stream holds an insert, a change and a removal
    # (binary, sets, maps, lists, booleans and nulls in the images)
    process, endpoint = _serve()
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", **_keys())
        dynamodb.create_table(
            TableName="streamed", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )  # fmt: skip
        item = {"pk": {"S": "a"}, "ss": {"SS": ["x", "y"]}, "n": {"N": "1.5"}, "b": {"B": b"\x00\x01"},
                "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}}  # fmt: skip
        dynamodb.put_item(TableName="streamed", Item=item)
        dynamodb.update_item(TableName="streamed", Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :n",
                             ExpressionAttributeValues={":n": {"N": "2"}})  # fmt: skip
        dynamodb.delete_item(TableName="streamed", Key={"pk": {"S": "a"}})
        streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1", **_keys())
        arn = dynamodb.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

        def read() -> dict[str, Any]:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
            request = urllib.request.Request(  # noqa: S310 - loopback; the raw answer, before any SDK parsing
                endpoint + "/", data=json.dumps({"ShardIterator": iterator["ShardIterator"]}).encode(), headers={
                    "X-Amz-Target": "DynamoDBStreams_20120810.GetRecords", "Content-Type": "application/x-amz-json-1.0",
                    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/dynamodb/aws4_request, "
                                     "SignedHeaders=host, Signature=x"})  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                document: dict[str, Any] = json.loads(answer.read())
            document.pop("NextShardIterator")
            return document

        # WHEN the stream is read twice: moto's serializer answers the first, json.dumps the next
        by_serializer, by_json = read(), read()
        # THEN both answers are the same document (timestamps truncated to the millisecond, blobs in base64)
        assert [r["eventName"] for r in by_json["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
        assert by_json == by_serializer
        # ... and the second was written from moto's record (its key order), not by the serializer
        assert next(iter(by_serializer["Records"][0]["dynamodb"])) == "ApproximateCreationDateTime"
        assert next(iter(by_json["Records"][0]["dynamodb"])) == "StreamViewType"
        assert by_json["Records"][0]["dynamodb"]["NewImage"]["b"] == {"B": "AAE="}
        # ... and the change's images are the item before and after it
        change = by_json["Records"][1]["dynamodb"]
        assert (change["OldImage"]["n"], change["NewImage"]["n"]) == ({"N": "1.5"}, {"N": "2"})
        assert change["OldImage"]["ss"] == change["NewImage"]["ss"] == {"SS": ["x", "y"]}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_items_write_units_follow_dynamodbs_size_rules() -> None:
    from nexus.local.aws_server import attribute_size, write_units

    # strings in UTF-8 bytes; numbers one byte per two significant digits, plus one
    assert attribute_size({"S": "héllo"}) == 6
    assert [attribute_size({"N": n}) for n in ("0", "7", "12345", "-120.500", "1000000")] == [2, 2, 4, 3, 2]
    assert attribute_size({"BOOL": True}) == attribute_size({"NULL": True}) == 1
    # a list or map: 3 bytes, one per element, and a map's names
    assert attribute_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (1 + 2) + (1 + 2)
    assert attribute_size({"M": {"key": {"S": "v"}}}) == 3 + 3 + 1 + 1
    assert attribute_size({"SS": ["a", "bc"]}) == 3
    # write units: one per started KB, at least one; an update or delete (no item) its floor of 1
    assert write_units({"pk": {"S": "x" * 1022}}) == 1  # 2 + 1022 = 1024 bytes
    assert write_units({"pk": {"S": "x" * 1023}}) == 2
    assert write_units(None) == write_units({}) == 1


def test_a_dynamodb_request_is_parsed_as_motos_parser_parses_it() -> None:
    # GIVEN DynamoDB requests with every kind of attribute value, members the model does not know,
    # and members sent as null
    from moto.core.parse import BaseJSONParser, JSONParser, RequestParser
    from moto.core.responses import get_service_model

    from nexus.local import aws_server

    value = {"S": "x", "N": "1.5", "B": "AP8=", "BS": ["AAE=", "AQI="], "SS": ["a"], "NS": ["1", "2"],
             "NULL": True, "BOOL": False, "L": [{"B": "AAE="}, {"M": {"k": {"S": "v", "unknown": 1}}}],
             "M": {"nested": {"L": [{"N": "3"}]}, "bin": {"B": "AQID"}}}  # fmt: skip
    requests = {
        "PutItem": {"TableName": "t", "Item": {"pk": {"S": "a"}, "v": value, "gone": None, "two": {"S": "x", "N": "1"}},
                    "ConditionExpression": "attribute_not_exists(pk)", "Unknown": {"x": 1}, "ReturnValues": None},
        "UpdateItem": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET #a = :v",
                       "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": value}},
        "BatchGetItem": {"RequestItems": {"t": {"Keys": [{"pk": {"B": "AAE="}}], "ConsistentRead": True}}},
        "Query": {"TableName": "t", "Limit": 5, "ExclusiveStartKey": {"pk": {"S": "a"}}, "ScanIndexForward": False,
                  "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}},
    }  # fmt: skip
    model = get_service_model("dynamodb")

    def parse(operation: str) -> dict[str, Any]:
        parser = JSONParser(model.operation_model(operation))
        return parser.parse({"method": "POST", "values": {}, "headers": {}, "url_path": "/", "url_params": {},
                             "body": json.dumps(requests[operation]).encode()})  # fmt: skip

    patched = (BaseJSONParser.__dict__["_parse_structure"], BaseJSONParser.__dict__.get("_parse_shape"))
    assert patched[0] is not aws_server._parse_json_structure  # moto's own, until the patch below
    # WHEN each is parsed by moto's parser, then by the patched one
    reference = {operation: parse(operation) for operation in requests}
    try:
        BaseJSONParser._parse_structure = aws_server._parse_json_structure  # type: ignore[method-assign]
        BaseJSONParser._parse_shape = aws_server._parse_json_shape  # type: ignore[method-assign]
        fast = {operation: parse(operation) for operation in requests}
    finally:
        BaseJSONParser._parse_structure = patched[0]  # type: ignore[method-assign]
        del BaseJSONParser._parse_shape
    assert BaseJSONParser._parse_shape is RequestParser._parse_shape
    # THEN the results are the same, in the same order (moto reads an attribute value's first
    # key): blobs decoded, unknown and null members dropped
    assert json.dumps(fast, default=repr) == json.dumps(reference, default=repr)
    assert list(fast["PutItem"]["Item"]["two"]) == ["S", "N"]  # the model's order
    assert fast["PutItem"]["Item"]["v"]["B"] == b"\x00\xff"
    assert fast["PutItem"]["Item"]["v"]["M"]["bin"] == {"B": b"\x01\x02\x03"}
    assert "Unknown" not in fast["PutItem"] and "ReturnValues" not in fast["PutItem"]
    assert fast["PutItem"]["Item"]["gone"] is None


def test_a_message_past_its_retention_is_not_received_as_motos_check_says(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a queue keeping messages 60 s, and messages sent from 0 to 120 s before a frozen clock
    import moto.sqs.models as sqs_models
    from moto.sqs.models import SQSBackend

    from nexus.local import aws_server

    now = 1_800_000_000.0
    monkeypatch.setattr(sqs_models, "unix_time", lambda *args: now)
    monkeypatch.setattr(aws_server, "unix_time", lambda *args: now)
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("kept", MessageRetentionPeriod="60")
    messages = []
    for age_ms in (0, 59_999, 60_000, 60_001, 120_000):
        message = backend.send_message("kept", f"aged {age_ms}")
        message.sent_timestamp = int(now * 1000) - age_ms
        messages.append(message)
    # THEN the embedded AWS's check keeps exactly the messages moto's keeps (younger than 60 s)
    moto_check = SQSBackend.is_message_valid_based_on_retention_period
    kept = [aws_server._within_retention(backend, "kept", m) for m in messages]
    assert kept == [moto_check(backend, "kept", m) for m in messages] == [True, True, False, False, False]


_NUMBERS = st.sampled_from(["0", "1", "-3", "1.50", "12345678901234567890", "1E+5", "-0.001"])
_TEXT = st.text(max_size=6)
_SCALARS = st.one_of(
    st.builds(lambda v: {"S": v}, _TEXT), st.builds(lambda v: {"N": v}, _NUMBERS),
    st.builds(lambda v: {"B": v}, st.binary(max_size=6)), st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.just({"NULL": True}), st.builds(lambda v: {"SS": sorted(v)}, st.sets(_TEXT, min_size=1, max_size=3)),
    st.builds(lambda v: {"NS": sorted(v)}, st.sets(_NUMBERS, min_size=1, max_size=3)),
    st.builds(lambda v: {"BS": sorted(v)}, st.sets(st.binary(max_size=4), min_size=1, max_size=3)),
)  # fmt: skip
def _tree(value: Any) -> Any:
    """A ``DynamoType`` as plain data: its type and value, all the way down."""
    if isinstance(value, DynamoType):
        return ("DynamoType", value.type, _tree(value.value))
    if isinstance(value, dict):
        return {key: _tree(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_tree(v) for v in value]
    return value


def _nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Attribute values of ``leaves`` in lists and maps, nested."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4)),
                                st.builds(lambda v: {"M": v}, st.dictionaries(_TEXT, inner, max_size=4))),
        max_leaves=25,
    )  # fmt: skip


# a binary as moto holds it once read from a request (bytes), or as written in JSON (base64)
_STORED_VALUES = _nested(
    st.one_of(_SCALARS, st.builds(lambda v: {"B": base64.b64encode(v).decode()}, st.binary(max_size=6)))
)


@settings(max_examples=300, deadline=None)
@given(_STORED_VALUES)
def test_attribute_values_are_built_measured_and_written_as_moto_does(value: dict[str, Any]) -> None:
    # GIVEN any attribute value (nested lists and maps of every type), built by moto's
    # DynamoType and by the patched one
    from nexus.local import aws_server

    def build(init: Any) -> DynamoType:
        saved = DynamoType.__init__
        DynamoType.__init__ = init  # type: ignore[method-assign]
        try:
            return DynamoType(value)
        finally:
            DynamoType.__init__ = saved  # type: ignore[method-assign]

    theirs, ours = build(aws_server._moto_dynamo_init), build(aws_server._dynamo_init)
    # THEN they are the same tree, measured the same and written out the same (a copy: changing
    # what is written leaves the value alone)
    assert _tree(ours) == _tree(theirs)
    assert aws_server._dynamo_size(ours) == aws_server._moto_dynamo_size(theirs)
    written = aws_server._dynamo_regular_json(ours)
    assert written == aws_server._moto_regular_json(theirs)
    if value.keys() & {"L", "M"}:
        written[ours.type].clear()
        assert _tree(ours) == _tree(theirs)


_ODD_VALUES = st.one_of(
    st.builds(lambda v: {"B": base64.b64encode(v).decode()}, st.binary(max_size=6)),
    st.builds(lambda v: {"BS": [base64.b64encode(b).decode() for b in v]}, st.lists(st.binary(max_size=3), max_size=3)),
    st.just({"S": "a", "N": "1"}), st.just({"N": "1", "S": "a"}), st.just({"X": "1"}), st.just({"S": None}),
    st.just({}), st.just({"M": [{"S": "a"}]}), st.just({"L": {"k": {"S": "a"}}}), st.just({"SS": "abc"}),
    st.just({"S": 5}), st.just({"BOOL": "yes"}), st.just(None), st.just({"L": [None, {"S": "x"}]}),
)  # fmt: skip
_REQUEST_VALUES = _nested(st.one_of(_ODD_VALUES, _SCALARS.filter(lambda v: not v.keys() & {"B", "BS"})))


@settings(max_examples=300, deadline=None)
@given(_REQUEST_VALUES)
def test_an_attribute_value_in_a_request_is_read_as_motos_parser_reads_it(value: Any) -> None:
    # GIVEN any attribute value in a PutItem request (well formed, or with several members, none,
    # an unknown one, a null one, a list where a map goes, a value of the wrong type)
    from moto.core.parse import BaseJSONParser, JSONParser
    from moto.core.responses import get_service_model

    from nexus.local import aws_server

    operation = get_service_model("dynamodb").operation_model("PutItem")
    body = json.dumps({"TableName": "t", "Item": {"pk": {"S": "a"}, "v": value}}).encode()

    def parse() -> Any:
        request = {"method": "POST", "values": {}, "headers": {}, "url_path": "/", "url_params": {}, "body": body}
        try:
            return JSONParser(operation).parse(request)  # type: ignore[arg-type]
        except Exception as error:  # noqa: BLE001 - the same refusal is what is compared
            return type(error).__name__

    patched = BaseJSONParser.__dict__["_parse_structure"], BaseJSONParser.__dict__.get("_parse_shape")
    # WHEN it is parsed by moto's parser, then by the patched one
    reference = parse()
    try:
        BaseJSONParser._parse_structure = aws_server._parse_json_structure  # type: ignore[method-assign]
        BaseJSONParser._parse_shape = aws_server._parse_json_shape  # type: ignore[method-assign,assignment]
        fast = parse()
    finally:
        BaseJSONParser._parse_structure = patched[0]  # type: ignore[method-assign]
        if patched[1] is None:
            del BaseJSONParser._parse_shape
        else:
            BaseJSONParser._parse_shape = patched[1]  # type: ignore[method-assign]
    # THEN the results are the same, in the same order, with the same types (blobs decoded)
    assert json.dumps(fast, default=repr) == json.dumps(reference, default=repr)


_NAMES = st.sampled_from(["pk", "cash", "res", "m", "absent", "a.b", "l[0]", "m.x", "m.x.y"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["cash", "res", "m", "l", "x"]), _STORED_VALUES, max_size=5),
       st.lists(_NAMES, min_size=1, max_size=6))  # fmt: skip
def test_a_projection_is_answered_as_motos_projects_it(attributes: dict[str, Any], names: list[str]) -> None:
    # GIVEN any item and any projection: top-level names present or not, the key, a name twice,
    # nested paths and list elements
    from moto.dynamodb.models.dynamo_type import Item

    from nexus.local import aws_server

    key = DynamoType({"S": "k1"})
    item = Item(hash_key=key, range_key=None, attrs={"pk": {"S": "k1"}, **attributes})
    paths = [name.split(".") for name in names]

    def outcome(project: Any) -> Any:
        try:
            projected = project(item, paths)
        except Exception as exc:  # noqa: BLE001 - moto's own failures (a path into a number) are compared too
            return type(exc).__name__
        return projected.to_json(), projected.hash_key, _tree(projected.attrs)

    # WHEN it is projected by the embedded AWS and by moto
    ours, theirs = outcome(aws_server._item_project), outcome(aws_server._moto_project)
    # THEN the items are the same (or both fail alike), and the stored one is unchanged
    assert ours == theirs
    assert item.to_json() == Item(hash_key=key, range_key=None, attrs={"pk": {"S": "k1"}, **attributes}).to_json()


def test_an_update_expression_tree_is_cloned_node_by_node_as_deepcopy_copies_it() -> None:
    import copy

    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    from nexus.local import aws_server

    # GIVEN a parsed update expression (what moto's validator copies before changing it)
    tree = UpdateExpressionParser.make("SET a = if_not_exists(a, :z) + :q, m.l[1] = :v ADD #s :ids REMOVE x")

    def walk(node: Any) -> Iterator[Any]:
        yield node
        for child in node.children or []:
            if isinstance(child, Node):
                yield from walk(child)

    def dump(node: Any) -> Any:
        if not isinstance(node, Node):
            return node
        fields = {k: v for k, v in node.__dict__.items() if k not in ("children", "parent")}
        return type(node).__name__, fields, [dump(child) for child in node.children or []]

    # WHEN it is cloned
    clone = aws_server._clone_tree(tree)
    # THEN it is deepcopy's equal: the same classes and values, every node a new one with its own
    # parent, and nothing mutable shared; the texts and numbers are the same objects
    assert dump(clone) == dump(copy.deepcopy(tree)) == dump(tree)
    pairs = list(zip(walk(tree), walk(clone), strict=True))
    assert len(pairs) > 10
    for original, copied in pairs:
        assert copied is not original and type(copied) is type(original)
        for name, value in original.__dict__.items():
            if name in ("children", "parent"):
                continue
            if isinstance(value, (str, int, type(None))):
                assert copied.__dict__[name] is value
            elif isinstance(value, (list, dict)):
                assert copied.__dict__[name] == value and copied.__dict__[name] is not value
    for copied in walk(clone):
        for child in copied.children or []:
            if isinstance(child, Node):
                assert child.parent is copied


def test_a_writes_condition_is_made_into_operations_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    from nexus.local import aws_server

    # GIVEN moto's DynamoDB in process parsing conditions as the embedded AWS does, and an item
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(ConditionExpressionParser, "parse", aws_server._parse_condition)
    made: list[str] = []
    make = ConditionExpressionParser._make_op_condition
    monkeypatch.setattr(ConditionExpressionParser, "_make_op_condition",
                        lambda self, node: made.append(self.condition_expression) or make(self, node))  # fmt: skip
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")  # fmt: skip
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "5"}})
        outcomes = []
        # WHEN the same conditional update is sent three times, with values that meet the condition,
        # then do not, then do
        for floor in ("5", "7", "1"):
            made.clear()
            try:
                values = {":one": {"N": "1"}, ":floor": {"N": floor}}
                dynamodb.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET n = n + :one",
                                     ConditionExpression="n >= :floor", ExpressionAttributeValues=values)  # fmt: skip
                outcomes.append("updated")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
            # THEN each request made its condition's operations once (moto's handler, then its
            # backend, each parse it), with its own values
            assert made == ["n >= :floor"]
    assert outcomes == ["updated", "ConditionalCheckFailedException", "updated"]
