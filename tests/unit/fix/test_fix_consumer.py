"""The gateway's execution-events reader: its shard checkpoint is written at most once per
``checkpoint_seconds`` (and on stop), and a restarted reader resumes after it. Against Kinesis and
the FIX orders table under moto. GIVEN / WHEN / THEN."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import boto3
from lambda_events import load_event
from nexus_fix.consumer import ExecutionEventsConsumer
from nexus_fix.fixorders import DynamoFixOrders
from nexus_fix.reports import OrderLocks, Outgoing, ReportRouter


class CountingStore(DynamoFixOrders):
    """The FIX orders table, with each checkpoint write counted."""

    def __init__(self, table_name: str) -> None:
        super().__init__(table_name)
        self.writes: list[str] = []

    def set_checkpoint(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self.writes.append(sequence_number)
        super().set_checkpoint(stream, shard_id, sequence_number)


class SeenRouter(ReportRouter):
    """The real router (no FIX order among the events: nothing to report), with the events it handled."""

    def __init__(self, store: DynamoFixOrders) -> None:
        async def no_session(session_id: str, messages: list[Outgoing]) -> bool:
            return False

        super().__init__(store, no_session, OrderLocks())
        self.seen: list[str] = []

    async def handle(self, events: list[Any]) -> int:
        handled = await super().handle(events)
        # recorded once handled: the reader takes the position with no await after this returns
        self.seen += [event.event_id for event in events]
        return handled


def _put(kinesis: Any, stream: str, n: int) -> str:
    events = load_event("execution_events_fill.json")["events"]
    for event in events:
        event["event_id"] = f"{event['event_id']}-{n}"
    answer = kinesis.put_record(StreamName=stream, Data=json.dumps({"events": events}), PartitionKey="AAPL")
    return str(answer["SequenceNumber"])


async def _until(done: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert done()


def test_the_checkpoint_is_written_once_per_bound_and_on_stop_and_a_restart_resumes_after_it(aws: Any) -> None:
    stream, table = aws.stream_name("ExecutionEventsStream"), aws.table_name("FixOrdersTable")
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    store = CountingStore(table)
    now = [100.0]

    async def scenario() -> None:
        router = SeenRouter(store)
        consumer = ExecutionEventsConsumer(kinesis, stream, store, router, poll_seconds=0.02, checkpoint_seconds=5.0,
                                           clock=lambda: now[0])  # fmt: skip
        await consumer.start()
        # WHEN three steps of the engine arrive one after the other within the bound
        first = _put(kinesis, stream, 1)
        await _until(lambda: store.writes == [first])
        per_step = len(router.seen)  # the events of a step the gateway reports on (not book deltas)
        second, third = _put(kinesis, stream, 2), _put(kinesis, stream, 3)
        await _until(lambda: len(router.seen) == 3 * per_step)
        # THEN only the first batch was checkpointed (the rest are within the bound) ...
        assert store.writes == [first]
        # ... and once the bound has passed, the idle reader writes where it is
        now[0] += 5.0
        await _until(lambda: store.writes == [first, third])
        # WHEN one more arrives and the gateway stops THEN its position is written on the way out
        fourth = _put(kinesis, stream, 4)
        await _until(lambda: len(router.seen) == 4 * per_step)
        await consumer.stop()
        assert store.writes == [first, third, fourth] and second not in store.writes
        assert store.checkpoint(stream, "shardId-000000000000") == fourth
        # AND a restarted reader resumes after it: only what came later is read
        fifth = _put(kinesis, stream, 5)
        again = SeenRouter(store)
        restarted = ExecutionEventsConsumer(kinesis, stream, store, again, poll_seconds=0.02, checkpoint_seconds=5.0,
                                            clock=lambda: now[0])  # fmt: skip
        await restarted.start()
        await _until(lambda: len(again.seen) == per_step)
        await restarted.stop()
        assert all(event_id.endswith("-5") for event_id in again.seen) and store.writes[-1] == fifth

    asyncio.run(scenario())
