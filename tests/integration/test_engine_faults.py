"""The matching engine process through Redis and Kinesis faults: two real engine processes'
loops (leader and standby, each with its heartbeat thread) over a real ``redis-server`` that is
killed and restarted empty in mid-stream, and the template's Kinesis streams under moto.

After each fault the tape (every event published on ``execution-events``) and the books must
equal an uninterrupted replay of the journal (``order-commands``) through a fresh engine: every
copy of an event the same, nothing missing; and both processes are still alive."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from helpers import eventually
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine
from nexus_matching.runner import EngineProcess, EngineSettings

from nexus.local.redis_server import RedisServer

SYMBOL = "AAPL"
INSTRUMENT = Instrument(symbol=SYMBOL, tick_size=Decimal("0.01"), lot_size=Decimal("1"))
LEASE_MS = 2000


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.process is not None:
        server.kill()


class Engines:
    """Two engine processes' loops in threads (as two containers), over the same Redis."""

    def __init__(self, aws: Any, redis_url: str) -> None:
        self.aws = aws
        settings = EngineSettings(
            order_commands_stream=aws.stream_name("OrderCommandsStream"),
            execution_events_stream=aws.stream_name("ExecutionEventsStream"),
            instruments_table=aws.table_name("InstrumentsTable"),
            redis_url=redis_url,
            engine_snapshot_every=20,
            engine_snapshot_seconds=0.2,
            engine_lease_ms=LEASE_MS,
            engine_retry_max_seconds=0.2,
        )
        self.processes = [EngineProcess(settings) for _ in range(2)]
        for name, process in zip("ab", self.processes, strict=True):
            process.lease.node = f"engine-{name}@test"
        self.threads: list[threading.Thread] = []
        self.kinesis = aws.client("kinesis")
        self.sent = 0

    def start(self) -> None:
        for process in self.processes:
            process.start()
            thread = threading.Thread(target=process.run, name=f"run-{process.lease.node}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        for thread in self.threads:
            thread.join(timeout=30)

    def leader(self) -> EngineProcess | None:
        leaders = [p for p in self.processes if p.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    def send(self, command: dict[str, Any]) -> None:
        self.kinesis.put_record(StreamName=self.aws.stream_name("OrderCommandsStream"),
                                Data=json.dumps(command).encode(), PartitionKey=command["symbol"])  # fmt: skip
        self.sent += 1


def _records(aws: Any, logical_id: str) -> list[bytes]:
    kinesis, stream = aws.client("kinesis"), aws.stream_name(logical_id)
    data: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            data += [r["Data"] for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return data


def _tape(aws: Any) -> dict[str, list[dict[str, Any]]]:
    """Every published copy of every event, without its epoch, by event id."""
    copies: dict[str, list[dict[str, Any]]] = {}
    for data in _records(aws, "ExecutionEventsStream"):
        for event in json.loads(data)["events"]:
            event.pop("epoch")
            copies.setdefault(event["event_id"], []).append(event)
    return copies


def _uninterrupted(aws: Any) -> tuple[dict[str, dict[str, Any]], MatchingEngine]:
    engine = MatchingEngine({SYMBOL: INSTRUMENT})
    events: dict[str, dict[str, Any]] = {}
    for data in _records(aws, "OrderCommandsStream"):
        for event in engine.process(json.loads(data, parse_float=Decimal)):
            event.pop("epoch")
            events[event["event_id"]] = event
    return events, engine


def _orders(seed: int, count: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for n in range(count):
        yield {"type": "new", "command_id": f"c{seed}-{n}", "order_id": f"o{seed}-{n}", "account_id": f"acct-{n % 3}",
               "symbol": SYMBOL, "side": rng.choice(("buy", "sell")), "order_type": "limit",
               "price": str(Decimal(10000 + rng.randint(-5, 5)) / 100), "quantity": str(rng.randint(1, 20)),
               "time_in_force": rng.choice(("gtc", "gtc", "ioc")),
               "ts": f"2026-03-02T15:{n // 60:02d}:{n % 60:02d}Z"}  # fmt: skip


def _leading_depth(engines: Engines) -> Any:
    process = engines.leader()
    engine = process.engine if process is not None else None
    return engine.book_depth(SYMBOL, 100) if engine is not None else None


def _assert_tape_equals_uninterrupted_replay(engines: Engines) -> None:
    expected, replayed = _uninterrupted(engines.aws)
    leader = eventually(engines.leader, lambda p: p is not None, timeout=30)
    assert leader is not None, "no leader"
    tape = eventually(lambda: _tape(engines.aws), lambda t: set(t) == set(expected), timeout=60)
    assert set(tape) == set(expected)  # nothing missing, nothing invented
    for event_id, copies in tape.items():
        assert all(copy == expected[event_id] for copy in copies), event_id  # every copy the same
    assert eventually(lambda: leader.commands_applied, lambda n: n > 0) > 0
    # the book of whichever process leads now (on a loaded machine the lease may have changed
    # hands during the fault, and a new leader catches up from the journal) is the replay's
    depth = replayed.book_depth(SYMBOL, 100)
    assert eventually(lambda: _leading_depth(engines), lambda found: found == depth, timeout=30) == depth
    assert all(thread.is_alive() for thread in engines.threads)  # neither process died
    assert sum(t.name == "lease-heartbeat" for t in threading.enumerate()) == 2  # nor a heartbeat


@pytest.fixture
def engines(aws: Any, redis_server: RedisServer) -> Iterator[Engines]:
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many([INSTRUMENT])
    started = Engines(aws, redis_server.url)
    started.start()
    yield started
    started.stop()


def test_redis_killed_and_restarted_empty_mid_stream_the_tape_equals_an_uninterrupted_replay(
    engines: Engines, redis_server: RedisServer
) -> None:
    # GIVEN a leader and a standby, and a first half of the orders matched
    flow = _orders(seed=7, count=120)
    for command in (next(flow) for _ in range(60)):
        engines.send(command)
    leader = eventually(engines.leader, lambda p: p is not None)
    assert leader is not None
    epoch_before = leader.lease.epoch
    eventually(lambda: leader.commands_applied, lambda n: n >= 60)
    # WHEN Redis is killed while orders keep coming into the journal
    redis_server.kill()
    for command in (next(flow) for _ in range(30)):
        engines.send(command)
    # THEN the leader, unable to renew, steps down (before its lease could expire): nobody leads
    assert eventually(lambda: [p.is_leader for p in engines.processes], lambda v: not any(v)) == [False, False]
    # WHEN Redis comes back, empty (no lease, no snapshot, no epoch counter), and orders go on
    redis_server.start()
    for command in flow:
        engines.send(command)
    # THEN one engine leads again, with a larger epoch than before (consumers' fencing holds) ...
    after = eventually(engines.leader, lambda p: p is not None and p.commands_applied > 0, timeout=30)
    assert after is not None and after.lease.epoch > epoch_before
    # ... and the tape and the book equal an uninterrupted replay of the same journal
    _assert_tape_equals_uninterrupted_replay(engines)


def test_kinesis_unreachable_mid_stream_the_leader_retries_and_loses_nothing(engines: Engines) -> None:
    # GIVEN a leader matching a flow of orders
    flow = _orders(seed=11, count=80)
    for command in (next(flow) for _ in range(30)):
        engines.send(command)
    leader = eventually(engines.leader, lambda p: p is not None)
    assert leader is not None
    eventually(lambda: leader.commands_applied, lambda n: n >= 30)
    # WHEN every Kinesis call of the engine processes fails (connection refused) for a while
    down = threading.Event()
    failures: list[str] = []

    def unreachable(model: Any, **kwargs: Any) -> None:
        if down.is_set():
            failures.append(model.name)
            raise EndpointConnectionError(endpoint_url="kinesis")

    for process in engines.processes:
        for kinesis in (process.kinesis, process.publisher.kinesis):
            kinesis.meta.events.register("before-call.kinesis", unreachable)
    down.set()
    for command in (next(flow) for _ in range(25)):
        engines.send(command)  # the test's own client still reaches the journal
    eventually(lambda: failures, lambda f: {"GetRecords"} <= set(f) and len(f) >= 5)
    # AND comes back, with more orders
    down.clear()
    for command in flow:
        engines.send(command)
    # THEN the loop survived with bounded retries, and the tape equals an uninterrupted replay
    _assert_tape_equals_uninterrupted_replay(engines)


def test_publishing_fails_after_the_commands_were_applied_their_events_are_published_later(
    engines: Engines,
) -> None:
    # GIVEN a leader, and PutRecords failing (reads still work)
    flow = _orders(seed=13, count=60)
    for command in (next(flow) for _ in range(20)):
        engines.send(command)
    leader = eventually(engines.leader, lambda p: p is not None)
    assert leader is not None
    eventually(lambda: leader.commands_applied, lambda n: n >= 20)
    down = threading.Event()

    def throttled(**kwargs: Any) -> None:
        if down.is_set():
            raise EndpointConnectionError(endpoint_url="kinesis")

    for process in engines.processes:
        process.publisher.kinesis.meta.events.register("before-call.kinesis.PutRecords", throttled)
    down.set()
    # WHEN orders are applied while their events cannot be published
    for command in (next(flow) for _ in range(20)):
        engines.send(command)
    held = eventually(lambda: leader.unpublished, bool)
    assert held, "the applied events are held for the next attempt"
    # AND once they are held past the grace of a publish under way, the leader's status record
    # (what GET /health reads) says so
    def status() -> dict[str, Any]:
        raw = leader.redis.get(leader.status_key)
        return json.loads(raw) if raw else {}

    assert eventually(status, lambda s: s.get("unpublished") is True, 15).get("unpublished") is True
    # THEN no snapshot covers them meanwhile, and once PutRecords works they are published
    down.clear()
    for command in flow:
        engines.send(command)
    _assert_tape_equals_uninterrupted_replay(engines)
    assert eventually(status, lambda s: s.get("unpublished") is False, 15).get("unpublished") is False
