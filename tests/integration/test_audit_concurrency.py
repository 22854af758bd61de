"""Concurrent appenders on the same aggregates, against the local runtime's AWS emulation (which,
like DynamoDB, applies each conditional write atomically): several consumers (each with its own
connection and its own idea of the heads) append their events to the same two aggregates at the
same time, each batch delivered twice; some events claimed, some marked, and one consumer's events
delivered by two at once. Every aggregate ends 1..n, each event once, each source's events in its
own order."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from nexus_audit.records import SOURCE_AUDIT_EVENTS, AuditEntry
from nexus_audit.repo import DynamoAuditLog
from nexus_audit.sequencing import append
from nexus_common.audit_items import expand

from nexus.local.provision import AwsClients, load
from nexus.local.runtime import free_port, wait_until

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
APPENDERS, EVENTS, BATCH = 4, 24, 4


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nexus.local.aws_server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as env:
            for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():  # fmt: skip
                env.setenv(key, value)
            client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
            wait_until(lambda: client.list_tables() is not None, 30, "the AWS emulation")
            yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _table(url: str, name: str) -> Any:
    return boto3.session.Session().resource("dynamodb", endpoint_url=url, region_name="us-east-1").Table(name)


def test_concurrent_appenders_never_share_or_skip_a_sequence_number(endpoint: str) -> None:
    # GIVEN the audit table of the template, and appenders with their own events for two aggregates
    stack, _ = load(AwsClients(endpoint_url=endpoint, region="us-east-1"), create=True, parameters={"Stage": "conc"})
    name = str(stack.find("AuditTable").stack.ref("AuditTable"))
    # (appender 0's events are claimed, the others' marked; the last appender is a twin of appender 1:
    # the same events, delivered at the same time by two consumers)
    aggregates = ("acc_x", "acc_y")
    work = {
        a: [AuditEntry("account", aggregates[i % 2], f"w{a}-e{i}", "k", NOW, SOURCE_AUDIT_EVENTS,
                       mark=(f"e:w{a}", i) if a else None)
            for i in range(EVENTS)]
        for a in range(APPENDERS - 1)
    }  # fmt: skip
    deliveries = {**work, APPENDERS - 1: work[1]}
    errors: list[BaseException] = []
    start = threading.Barrier(APPENDERS)

    def run(appender: int) -> None:
        try:
            log = DynamoAuditLog(name, table=_table(endpoint, name))
            start.wait()
            for first in range(0, EVENTS, BATCH):
                batch = list(enumerate(deliveries[appender][first : first + BATCH]))
                for _ in range(2):  # each batch delivered twice
                    outcome = append(log, batch, lambda: NOW)
                    assert outcome.first_failed is None, outcome.errors
        except BaseException as exc:  # noqa: BLE001 - a thread's failure, asserted on by the main thread
            errors.append(exc)

    # WHEN they all append at once
    threads = [threading.Thread(target=run, args=(a,)) for a in range(APPENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    # THEN each aggregate holds 1..n, every event exactly once, each source's events in its order
    table = _table(endpoint, name)
    for aggregate in aggregates:
        items = table.query(KeyConditionExpression=Key("aggregate").eq(f"account#{aggregate}"),
                            ConsistentRead=True)["Items"]  # fmt: skip
        assert [int(i["seq"]) for i in items] == list(range(1, len(items) + 1))
        entries = [entry for item in items for entry in expand(item)]  # a record may hold a run of entries
        assert [int(e["seq"]) for e in entries] == list(range(1, len(entries) + 1))
        ids = [str(e["event_id"]) for e in entries]
        expected = {e.event_id for events in work.values() for e in events if e.aggregate_id == aggregate}
        assert len(ids) == len(expected) and set(ids) == expected
        for appender, events in work.items():
            mine = [e.event_id for e in events if e.aggregate_id == aggregate]
            assert [i for i in ids if i.startswith(f"w{appender}-")] == mine
