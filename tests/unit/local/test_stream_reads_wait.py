"""A stream read that finds no records may wait at the embedded AWS for some (``X-Nexus-Wait-Ms``),
and is answered as soon as one is added: Kinesis streams and DynamoDB table streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.dynamodb.models.table import StreamShard
from moto.kinesis.models import Stream
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from nexus.local import aws_server, signing
from nexus.local.runtime import free_port

KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


class Server:
    """The embedded AWS's request handling, served from a thread of this process, with a signal
    for each read that starts waiting for records."""

    def __init__(self, endpoint: str, waiting: threading.Event) -> None:
        self.endpoint = endpoint
        self.waiting = waiting

    def client(self, service: str, wait_ms: int | None = None) -> Any:
        client = boto3.client(service, endpoint_url=self.endpoint, **KEYS)
        if wait_ms is not None:
            def header(params: dict[str, Any], **_: Any) -> None:
                params["headers"][signing.READ_WAIT_HEADER] = str(wait_ms)

            service_id = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register(f"before-call.{service_id}.GetRecords", header)
        return client


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    changes = aws_server.StreamChanges()
    waiting = threading.Event()
    counting_wait = changes.wait

    def wait(stream: str, seen: int, timeout: float) -> bool:
        waiting.set()
        return counting_wait(stream, seen, timeout)

    monkeypatch.setattr(changes, "wait", wait)
    monkeypatch.setattr(aws_server, "STREAM_CHANGES", changes)  # what moto's counted adds tell
    monkeypatch.setattr(Stream, "put_record", aws_server._counted_put_record)
    monkeypatch.setattr(StreamShard, "add", aws_server._counted_stream_add)
    app = aws_server._OneAtATime(aws_server._DirectJson(DomainDispatcherApplication(create_backend_app)),
                                 changes=changes)  # fmt: skip
    port = free_port()
    http = make_server("127.0.0.1", port, app, threaded=True, request_handler=aws_server._KeepAliveHandler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{port}", waiting)
    http.shutdown()
    thread.join(10)


def _in_thread(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(answer=call()))
    thread.start()
    return thread, result


def test_a_kinesis_read_that_finds_nothing_waits_and_is_answered_with_the_record_put_meanwhile(server: Server) -> None:
    # GIVEN an empty stream, and a read of its shard that may wait a second for records
    kinesis = server.client("kinesis")
    kinesis.create_stream(StreamName="waited", ShardCount=1)
    iterator = kinesis.get_shard_iterator(StreamName="waited", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
    reader = server.client("kinesis", wait_ms=1000)
    thread, result = _in_thread(lambda: reader.get_records(ShardIterator=iterator))
    # WHEN a record is put while the read waits
    assert server.waiting.wait(10)
    kinesis.put_record(StreamName="waited", Data=b"fill", PartitionKey="k")
    thread.join(10)
    # THEN the read is answered with it
    assert [r["Data"] for r in result["answer"]["Records"]] == [b"fill"]
    # AND a read of another stream's records is not woken by it: it waits its time, then has none
    kinesis.create_stream(StreamName="other", ShardCount=1)
    other = kinesis.get_shard_iterator(StreamName="other", ShardId="shardId-000000000000",
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
    answer = server.client("kinesis", wait_ms=50).get_records(ShardIterator=other)
    assert answer["Records"] == [] and answer["NextShardIterator"]


def test_a_read_without_the_header_or_with_records_to_read_does_not_wait(server: Server) -> None:
    # GIVEN a stream with a record
    kinesis = server.client("kinesis")
    kinesis.create_stream(StreamName="plain", ShardCount=1)
    iterator = kinesis.get_shard_iterator(StreamName="plain", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
    kinesis.put_record(StreamName="plain", Data=b"one", PartitionKey="k")
    # WHEN it is read with the header (a record is there), then past it without the header
    first = server.client("kinesis", wait_ms=1000).get_records(ShardIterator=iterator)
    second = kinesis.get_records(ShardIterator=first["NextShardIterator"])
    # THEN neither waited: the first had a record, the second (nothing to read) answered at once
    assert [r["Data"] for r in first["Records"]] == [b"one"]
    assert second["Records"] == []
    assert not server.waiting.is_set()
    # AND a bad header value is no wait at all
    bad = server.client("kinesis")
    bad.meta.events.register("before-call.kinesis.GetRecords",
                             lambda params, **_: params["headers"].update({signing.READ_WAIT_HEADER: "soon"}))
    assert bad.get_records(ShardIterator=second["NextShardIterator"])["Records"] == []
    assert not server.waiting.is_set()


def test_a_table_stream_read_waits_for_the_tables_next_change(server: Server) -> None:
    # GIVEN a table with a stream, read from its latest record with a read that may wait
    dynamodb = server.client("dynamodb")
    arn = dynamodb.create_table(
        TableName="waited-table", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]  # fmt: skip
    streams = server.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    reader = server.client("dynamodbstreams", wait_ms=1000)
    thread, result = _in_thread(lambda: reader.get_records(ShardIterator=iterator))
    # WHEN an item is put while the read waits
    assert server.waiting.wait(10)
    dynamodb.put_item(TableName="waited-table", Item={"pk": {"S": "a"}})
    thread.join(10)
    # THEN the read is answered with the change
    records = result["answer"]["Records"]
    assert [(r["eventName"], r["dynamodb"]["NewImage"]) for r in records] == [("INSERT", {"pk": {"S": "a"}})]


def test_a_record_added_to_one_stream_wakes_the_reads_of_that_stream_only() -> None:
    changes = aws_server.StreamChanges()
    notified: list[str] = []

    class Told(threading.Condition):
        def __init__(self, stream: str) -> None:
            super().__init__(changes.lock)
            self.stream = stream

        def notify_all(self) -> None:
            notified.append(self.stream)
            super().notify_all()

    # GIVEN reads waiting on two streams
    changes.conditions.update({"a": Told("a"), "b": Told("b")})
    answers: dict[str, bool] = {}
    readers = [threading.Thread(target=lambda s=s: answers.update({s: changes.wait(s, 0, 10)})) for s in ("a", "b")]
    for reader in readers:
        reader.start()
    # WHEN records are added to stream "b" alone, each request ending with its wake-up
    for _ in range(5):
        changes.add("b")
        changes.wake()
    readers[1].join(10)
    # THEN only the reads of "b" were woken, and they were answered; "a"'s still waits
    assert set(notified) == {"b"} and answers == {"b": True}
    assert readers[0].is_alive()
    # AND a record on "a" wakes its read
    changes.add("a")
    changes.wake()
    readers[0].join(10)
    assert answers == {"a": True, "b": True} and "a" in notified
