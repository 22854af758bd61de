"""Chaos: the matching engine killed or paused in mid-stream, against the real engine processes,
real Redis and the Kinesis streams on the moto server.

After each disaster the platform must end in the same books and the same trades as an
uninterrupted run of the same journal (the ``order-commands`` stream, replayed here through a
fresh in-process engine): nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
import redis
from helpers import eventually
from http_client import Api
from nexus_common.instrument_store import DynamoInstruments
from nexus_matching.engine import MatchingEngine

from nexus.local.demo import create_account
from nexus.local.runtime import LocalPlatform, Options, free_port, running

pytestmark = pytest.mark.system
SYMBOL = "AMZN"


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    options = Options(api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="chaos", demo=True,
                      write_state=False, engines=2)  # fmt: skip
    with running(options) as started:
        yield started


def _client(platform: LocalPlatform, service: str) -> Any:
    return boto3.client(service, endpoint_url=platform.aws_endpoint, region_name="us-east-1")


def _lease(platform: LocalPlatform) -> str | None:
    stream = platform.table("OrderCommandsStream")
    value = redis.Redis.from_url(platform.redis_url).get(f"nexus:engine:{stream}:leader")
    return value.decode() if value else None


def _leader_pid(platform: LocalPlatform) -> int:
    lease = eventually(lambda: _lease(platform), lambda v: v is not None)
    assert lease is not None
    return int(lease.split(":", 1)[1].split("@", 1)[0])


def _journal(platform: LocalPlatform) -> list[dict[str, Any]]:
    """Every command on order-commands, in shard order."""
    kinesis, stream = _client(platform, "kinesis"), platform.table("OrderCommandsStream")
    commands: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            commands += [json.loads(r["Data"], parse_float=Decimal) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return commands


def _expected(platform: LocalPlatform) -> tuple[set[tuple[Any, ...]], dict[str, Decimal], dict[str, Any]]:
    """Trades, filled quantity per order and the book of an uninterrupted run of the journal."""
    instruments = {i.symbol: i for i in DynamoInstruments(platform.table("InstrumentsTable")).list_all()}
    engine = MatchingEngine(instruments)
    trades: set[tuple[Any, ...]] = set()
    filled: dict[str, Decimal] = {}
    for command in _journal(platform):
        for event in engine.process(command):
            if event["symbol"] != SYMBOL or event["type"] != "trade":
                continue
            trades.add((event["seq"], Decimal(event["price"]), Decimal(event["quantity"]), event["aggressor_side"]))
            filled[event["maker_order_id"]] = Decimal(event["maker_filled_quantity"])
            filled[event["taker_order_id"]] = Decimal(event["taker_filled_quantity"])
    depth = engine.book_depth(SYMBOL, 100)
    tick = instruments[SYMBOL].tick_size
    book = {
        "bids": [(tick * p, Decimal(q)) for p, q, _ in depth["bids"]],
        "asks": [(tick * p, Decimal(q)) for p, q, _ in depth["asks"]],
    }
    return trades, filled, book


def _actual(platform: LocalPlatform, api: Api) -> tuple[set[tuple[Any, ...]], dict[str, Decimal], dict[str, Any]]:
    items = _client(platform, "dynamodb").query(
        TableName=platform.table("TradesTable"),
        KeyConditionExpression="symbol = :s",
        ExpressionAttributeValues={":s": {"S": SYMBOL}},
    )["Items"]
    trades = {(int(i["seq"]["N"]), Decimal(i["price"]["N"]), Decimal(i["quantity"]["N"]), i["aggressor_side"]["S"])
              for i in items}  # fmt: skip
    orders = _client(platform, "dynamodb").scan(TableName=platform.table("OrdersTable"))["Items"]
    filled = {o["order_id"]["S"]: Decimal(o["filled_quantity"]["N"]) for o in orders
              if o["symbol"]["S"] == SYMBOL and Decimal(o["filled_quantity"]["N"]) > 0}  # fmt: skip
    body = api.get(f"/v1/markets/{SYMBOL}/book?depth=100").body
    book = {side: [(Decimal(x["price"]), Decimal(x["quantity"])) for x in body[side]] for side in ("bids", "asks")}
    return trades, filled, book


def _assert_matches_uninterrupted_run(platform: LocalPlatform, api: Api) -> None:
    expected = _expected(platform)
    actual = eventually(lambda: _actual(platform, api), lambda a: a == expected, timeout=60)
    trades, filled, book = actual
    assert len(trades) == len({t[0] for t in trades})  # one trade per seq: nothing doubled
    assert trades == expected[0]  # nothing lost
    assert filled == expected[1]
    assert book == expected[2]


def _trade_flow(platform: LocalPlatform, count: int, seed: int, disaster: Any) -> Api:
    """Send ``count`` random orders on SYMBOL from two accounts; call ``disaster`` half-way."""
    keys = [create_account(platform.table, f"Chaos {n}", Decimal("10000000"))["api_key"] for n in (1, 2)]
    apis = [Api(platform.api_url, key) for key in keys]
    rng = random.Random(seed)
    for n in range(count):
        if n == count // 2:
            disaster()
        side = rng.choice(("buy", "sell"))
        price = Decimal(100) + Decimal(rng.randint(-5, 5)) / 10
        body = {"symbol": SYMBOL, "side": side, "type": "limit", "quantity": str(rng.randint(1, 20)),
                "price": str(price), "time_in_force": rng.choice(("gtc", "gtc", "ioc"))}  # fmt: skip
        answer = apis[n % 2].post("/v1/orders", body)
        assert answer.status == 202, answer.body
        if rng.random() < 0.15:
            apis[n % 2].delete(f"/v1/orders/{answer.body['order']['order_id']}")
    return apis[0]


def test_leader_killed_in_mid_stream_standby_takes_over_nothing_lost_nothing_doubled(
    platform: LocalPlatform,
) -> None:
    # GIVEN a leader and a standby engine
    leader = _leader_pid(platform)
    before = _lease(platform)

    # WHEN the leader is killed with SIGKILL half-way through a flow of orders
    def kill() -> None:
        os.kill(leader, signal.SIGKILL)

    api = _trade_flow(platform, 60, seed=1, disaster=kill)
    # THEN the standby takes the lease with a higher epoch ...
    after = eventually(lambda: _lease(platform), lambda v: v is not None and v != before)
    assert after is not None and before is not None
    assert int(after.split(":")[0]) > int(before.split(":")[0])
    # ... and the books and trades equal an uninterrupted run of the same journal
    _assert_matches_uninterrupted_run(platform, api)


def test_restarted_engine_recovers_from_snapshot_and_journal(platform: LocalPlatform) -> None:
    # GIVEN only one live engine, which is killed, and a new engine process started after it
    matching = next(c for c in platform.platform.containers if c.name == "matching")  # type: ignore[union-attr]

    def kill_and_restart() -> None:
        os.kill(_leader_pid(platform), signal.SIGKILL)
        platform.start_container(matching)

    # WHEN orders keep coming through the kill and the restart
    api = _trade_flow(platform, 40, seed=2, disaster=kill_and_restart)
    # THEN the restarted engine (restore + replay) ends in the same state as an uninterrupted run
    _assert_matches_uninterrupted_run(platform, api)


def test_paused_leader_that_wakes_up_cannot_double_publish(platform: LocalPlatform) -> None:
    # GIVEN a leader and a standby
    matching = next(c for c in platform.platform.containers if c.name == "matching")  # type: ignore[union-attr]
    live = [p for p in platform.container_processes("matching") if p.poll() is None]
    if len(live) < 2:
        platform.start_container(matching)
    paused = _leader_pid(platform)
    before = _lease(platform)
    woke = threading.Event()

    # WHEN the leader is paused (SIGSTOP) past its lease, the standby takes over, orders flow,
    # and the old leader is resumed while they still flow
    def pause() -> None:
        os.kill(paused, signal.SIGSTOP)
        eventually(lambda: _lease(platform), lambda v: v != before, timeout=30)

        def resume_later() -> None:
            time.sleep(1.0)
            os.kill(paused, signal.SIGCONT)
            woke.set()

        threading.Thread(target=resume_later, daemon=True).start()

    api = _trade_flow(platform, 50, seed=3, disaster=pause)
    assert woke.wait(30)
    # THEN the successor keeps the lease, the old leader is alive as a standby ...
    lease = _lease(platform)
    assert lease is not None and lease != before and int(lease.split(":", 1)[1].split("@")[0]) != paused
    assert any(p.pid == paused and p.poll() is None for p in platform.container_processes("matching"))
    # ... and nothing it may have published changed the outcome
    _assert_matches_uninterrupted_run(platform, api)
