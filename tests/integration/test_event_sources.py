"""The local runtime runs a template's event source mappings with Lambda's semantics.

Real worker processes run the fixture template's handlers against a real moto server."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from nexus.local.lambdas import LocalLambda, worker_base_env
from nexus.local.model import Platform, build_platform
from nexus.local.pollers import MemoryCheckpoints, ScheduleMapping, SharedShards, SqsMapping, StreamMapping
from nexus.local.provision import AwsClients, load

FIXTURE = Path(__file__).parent / "esm_fixture" / "template.yaml"
_STAGES = itertools.count(1)


class Harness:
    def __init__(self, endpoint: str, stage: str) -> None:
        self.clients = AwsClients(endpoint_url=endpoint)
        stack, self.provisioner = load(self.clients, create=True, parameters={"Stage": stage}, template=FIXTURE)
        self.platform: Platform = build_platform(stack)
        self.stage = stage
        self.lambdas = LocalLambda(
            self.platform.functions, worker_base_env(endpoint, "us-east-1"), "us-east-1", self.provisioner.account_id
        )
        self.stop = threading.Event()
        self.checkpoints = MemoryCheckpoints()

    def start_mappings(self) -> None:
        shared = SharedShards()  # as nexus up reads them: one read of a shard for all its mappings
        for source in self.platform.event_sources("Kinesis", "DynamoDB"):
            StreamMapping(
                self.lambdas,
                source,
                self.clients,
                "us-east-1",
                self.provisioner.account_id,
                self.checkpoints,
                self.stop,
                shared,
            ).start()
        for source in self.platform.event_sources("SQS"):
            SqsMapping(self.lambdas, source, self.clients, "us-east-1", self.stop).start()

    def seen(self, source: str) -> list[tuple[int, int]]:
        table = self.clients.client("dynamodb")
        items = table.query(
            TableName=f"{self.stage}-seen",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "source"},
            ExpressionAttributeValues={":s": {"S": source}},
        )["Items"]
        return [(int(i["record"]["N"]), int(i["attempt"]["N"])) for i in items]

    def queue_messages(self, name: str) -> list[dict[str, Any]]:
        sqs = self.clients.client("sqs")
        url = sqs.get_queue_url(QueueName=f"{self.stage}-{name}")["QueueUrl"]
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]

    def close(self) -> None:
        self.stop.set()
        self.lambdas.close()


@pytest.fixture
def harness(moto_endpoint: str) -> Iterator[Harness]:
    h = Harness(moto_endpoint, f"esm{next(_STAGES)}")
    yield h
    h.close()


def _put(h: Harness, payloads: list[dict[str, Any]]) -> None:
    kinesis = h.clients.client("kinesis")
    for payload in payloads:
        kinesis.put_record(StreamName=f"{h.stage}-stream", Data=json.dumps(payload).encode(), PartitionKey="k")


def test_kinesis_partial_failure_retries_from_the_failed_record_in_order(harness: Harness) -> None:
    # GIVEN records 1..8 where record 3 fails on its first delivery
    _put(harness, [{"n": n, "fail": "once" if n == 3 else "never"} for n in range(1, 9)])
    # WHEN the mapping runs
    harness.start_mappings()
    seen = eventually(lambda: harness.seen("kinesis"), lambda s: {n for n, _ in s} >= set(range(1, 9)))
    # THEN every record is processed, record 3 twice (the retry), and nothing after 3 before it
    # succeeded: the processing order (by time) is 1, 2, 3(fail), 3, 4, ... 8
    order = [n for n, _ in seen]
    assert order == [1, 2, 3, 3, 4, 5, 6, 7, 8]
    assert harness.queue_messages("stream-failures") == []


def test_kinesis_poison_record_goes_to_the_on_failure_destination_and_the_shard_moves_on(harness: Harness) -> None:
    # GIVEN a record that crashes the function every time, between good records
    _put(harness, [{"n": n, "fail": "crash" if n == 3 else "never"} for n in range(1, 6)])
    # WHEN the mapping runs
    harness.start_mappings()
    failures = eventually(lambda: harness.queue_messages("stream-failures"), lambda m: len(m) > 0)
    seen = eventually(lambda: harness.seen("kinesis"), lambda s: {4, 5} <= {n for n, _ in s})
    # THEN the poison record alone (bisected out of its batch) is described on the DLQ ...
    assert len(failures) == 1
    info = failures[0]["KinesisBatchInfo"]
    assert info["batchSize"] == 1
    assert failures[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # ... it was tried 1 + MaximumRetryAttempts times at most, and records 4 and 5 still arrived
    assert {n for n, _ in seen} == {1, 2, 3, 4, 5}


def test_dynamodb_stream_delivers_changes_in_order(harness: Harness) -> None:
    # GIVEN items written to a table with a stream
    dynamodb = harness.clients.client("dynamodb")
    for n in range(1, 6):
        dynamodb.put_item(TableName=f"{harness.stage}-watched", Item={"id": {"S": str(n)}})
    # WHEN the mapping runs
    harness.start_mappings()
    seen = eventually(lambda: harness.seen("dynamodb"), lambda s: len(s) >= 5)
    # THEN the function saw each change once, in write order
    assert [n for n, _ in seen] == [1, 2, 3, 4, 5]


def test_sqs_reported_failure_is_redriven_to_the_dlq_after_max_receive_count(harness: Harness) -> None:
    # GIVEN a good message and a poison message on a queue with maxReceiveCount 2
    sqs = harness.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{harness.stage}-work")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1, "fail": "never"}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 2, "fail": "always"}))
    # WHEN the mapping runs
    harness.start_mappings()
    dead = eventually(lambda: harness.queue_messages("work-dlq"), lambda m: len(m) > 0)
    seen = harness.seen("sqs")
    # THEN the good message was processed once and deleted; the poison one was received twice
    # and then moved to the DLQ by the queue's redrive policy
    assert [m["n"] for m in dead] == [2]
    assert sorted(a for n, a in seen if n == 1) == [1]
    assert sorted(a for n, a in seen if n == 2) == [1, 2]


def test_schedule_invokes_its_function_at_each_due_time(harness: Harness) -> None:
    # GIVEN a rate(1 minute) schedule and a clock that moves a minute at every reading
    start = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    readings = itertools.count()

    def clock() -> datetime:
        return start + timedelta(minutes=next(readings))

    (source,) = harness.platform.event_sources("Schedule")
    ScheduleMapping(harness.lambdas, source, "us-east-1", harness.provisioner.account_id, harness.stop, clock).start()
    # WHEN time passes THEN the function receives one scheduled event per due minute, in order
    seen = eventually(lambda: harness.seen("schedule"), lambda s: len(s) >= 3)
    minutes = [n for n, _ in seen]
    assert minutes[:3] == sorted(minutes[:3]) and len(set(minutes)) == len(minutes)


def test_a_function_sees_only_the_environment_its_template_gives_it(harness: Harness) -> None:
    # GIVEN the fixture template, whose functions get SEEN_TABLE from Globals only
    # WHEN a function is invoked
    result = harness.lambdas.invoke("UndeclaredEnvFunction", {})
    # THEN its environment holds that variable and no other *_TABLE of the caller's process
    assert result.ok, result.error
    assert result.payload == {"env": ["SEEN_TABLE"]}
