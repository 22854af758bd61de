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
import subprocess
import sys
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
from nexus.local.procs import spawn
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
    # the orders of SYMBOL: the table also holds items that are not orders (the entry sweep's progress)
    orders = _client(platform, "dynamodb").scan(TableName=platform.table("OrdersTable"))["Items"]
    filled = {o["order_id"]["S"]: Decimal(o["filled_quantity"]["N"]) for o in orders
              if o.get("symbol", {}).get("S") == SYMBOL and Decimal(o["filled_quantity"]["N"]) > 0}  # fmt: skip
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
        # self-trade prevention: an account crossing itself is a wash trade, which surveillance
        # answers (rightly) by halting the account
        body = {"symbol": SYMBOL, "side": side, "type": "limit", "quantity": str(rng.randint(1, 20)),
                "price": str(price), "time_in_force": rng.choice(("gtc", "gtc", "ioc")),
                "stp": "cancel_newest"}  # fmt: skip
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


# -- Redis lost and back; halts across a failover ---------------------------------------------


def _health(platform: LocalPlatform) -> tuple[int, dict[str, Any]]:
    answer = Api(platform.api_url).get("/health")
    return answer.status, answer.body


def _kill_redis(platform: LocalPlatform) -> list[str]:
    """SIGKILL the embedded redis-server; returns its command line to start it again."""
    server = platform._redis  # the embedded server the runtime started (no REDIS_URL given)
    assert server is not None, "these tests need the embedded redis-server"
    args = [str(a) for a in server.args]
    server.kill()
    server.wait(timeout=10)
    return args


def _start_redis(platform: LocalPlatform, args: list[str]) -> None:
    """The same server on the same port, empty (it runs without persistence)."""
    platform._redis = spawn(args, dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = platform.redis_url
    assert eventually(lambda: _pings(url), bool, timeout=15)


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _flow(apis: list[Api], count: int, seed: int, during: Any = None) -> list[str]:
    """``count`` random orders on SYMBOL; ``during`` is called half-way. Returns the ids of the
    orders accepted (202); an order refused while a dependency is down (503) or the symbol is
    halted (409) is not in the journal, and the client knows it."""
    rng = random.Random(seed)
    accepted: list[str] = []
    for n in range(count):
        if n == count // 2 and during is not None:
            during()
        side = rng.choice(("buy", "sell"))
        price = Decimal(100) + Decimal(rng.randint(-5, 5)) / 10
        body = {"symbol": SYMBOL, "side": side, "type": "limit", "quantity": str(rng.randint(1, 20)),
                "price": str(price), "time_in_force": rng.choice(("gtc", "gtc", "ioc")),
                "stp": "cancel_newest"}  # fmt: skip  # no wash trade (see _trade_flow)
        answer = apis[n % 2].post("/v1/orders", body)
        assert answer.status in (202, 409, 503), answer.body
        if answer.status == 202:
            accepted.append(answer.body["order"]["order_id"])
    return accepted


def _statuses(platform: LocalPlatform, order_ids: list[str]) -> dict[str, str]:
    ddb = _client(platform, "dynamodb")
    found: dict[str, str] = {}
    if not order_ids:
        return found
    for start in range(0, len(order_ids), 100):
        keys = [{"order_id": {"S": order_id}} for order_id in order_ids[start:start + 100]]
        answer = ddb.batch_get_item(RequestItems={platform.table("OrdersTable"): {"Keys": keys}})
        for item in answer["Responses"][platform.table("OrdersTable")]:
            found[item["order_id"]["S"]] = item["status"]["S"]
    return found


def test_redis_killed_and_restarted_health_degrades_and_every_accepted_order_is_matched_once(
    platform: LocalPlatform,
) -> None:
    # GIVEN a leader and a standby engine, a healthy venue, and two traders
    matching = next(c for c in platform.platform.containers if c.name == "matching")  # type: ignore[union-attr]
    while len([p for p in platform.container_processes("matching") if p.poll() is None]) < 2:
        platform.start_container(matching)
    engines = {p.pid for p in platform.container_processes("matching") if p.poll() is None}
    assert eventually(lambda: _health(platform), lambda h: h[0] == 200, timeout=60)[1]["status"] == "ok"
    keys = [create_account(platform.table, f"Redis {n}", Decimal("10000000"))["api_key"] for n in (1, 2)]
    apis = [Api(platform.api_url, key) for key in keys]
    before = _lease(platform)
    accepted = _flow(apis, 30, seed=4)
    # WHEN Redis is killed in mid-stream, and orders keep coming
    args = _kill_redis(platform)
    accepted += _flow(apis, 20, seed=5)
    # THEN /health answers 503 degraded, saying Redis is down and no engine is seen leading
    status, body = eventually(lambda: _health(platform), lambda h: h[0] == 503, timeout=30)
    assert status == 503 and body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "down" and body["checks"]["engine"]["status"] != "ok"
    # WHEN Redis comes back (empty: no lease, no snapshot) and orders go on
    _start_redis(platform, args)
    accepted += _flow(apis, 30, seed=6)
    # THEN an engine leads again with a larger epoch, and /health is ok again
    after = eventually(lambda: _lease(platform), lambda v: v is not None and v != before, timeout=60)
    assert after is not None and before is not None and int(after.split(":")[0]) > int(before.split(":")[0])
    status, body = eventually(lambda: _health(platform), lambda h: h[0] == 200, timeout=120)
    assert status == 200 and body["status"] == "ok", body
    # AND every order accepted, before, during and after the outage, has left pending_new ...
    assert accepted
    statuses = eventually(lambda: _statuses(platform, accepted),
                          lambda s: len(s) == len(accepted) and "pending_new" not in s.values(),
                          timeout=120)  # fmt: skip
    assert "pending_new" not in statuses.values() and len(statuses) == len(accepted)
    # ... matched once: trades, fills and the book equal an uninterrupted run of the journal
    _assert_matches_uninterrupted_run(platform, apis[0])
    # AND no engine process died of it
    assert all(p.poll() is None for p in platform.container_processes("matching") if p.pid in engines)


def test_a_halt_reaches_the_running_engine_and_survives_a_failover(platform: LocalPlatform) -> None:
    # GIVEN a leader and a standby, two traders and an admin
    matching = next(c for c in platform.platform.containers if c.name == "matching")  # type: ignore[union-attr]
    while len([p for p in platform.container_processes("matching") if p.poll() is None]) < 2:
        platform.start_container(matching)
    keys = [create_account(platform.table, f"Halt {n}", Decimal("10000000"))["api_key"] for n in (1, 2)]
    apis = [Api(platform.api_url, key) for key in keys]
    admin = _admin(platform)
    _flow(apis, 20, seed=8)
    # WHEN the admin halts the symbol, the leader is killed while it is halted, orders are sent
    # meanwhile, and the admin resumes it
    assert admin.post(f"/v1/admin/instruments/{SYMBOL}/halt", {"reason": "news pending"}).status == 200
    halted_flow = _flow(apis, 10, seed=9, during=lambda: os.kill(_leader_pid(platform), signal.SIGKILL))
    assert admin.post(f"/v1/admin/instruments/{SYMBOL}/resume", {"reason": "news out"}).status == 200
    _flow(apis, 20, seed=10)
    # THEN the engine refused every order the journal carried while halted (none traded) ...
    journal = _journal(platform)
    kinds = [c["type"] for c in journal if c.get("symbol") == SYMBOL]
    assert "halt" in kinds and "resume" in kinds
    halt_at, resume_at = kinds.index("halt"), len(kinds) - 1 - kinds[::-1].index("resume")
    statuses = eventually(lambda: _statuses(platform, halted_flow), lambda s: "pending_new" not in s.values())
    assert all(status == "rejected" for status in statuses.values()), statuses
    assert halt_at < resume_at
    # ... and said so on execution-events: halted, then active again (the new leader's replay
    # re-emits the same events, same ids)
    published = eventually(lambda: _trading_status(platform), lambda t: "active" in t.values(), timeout=60)
    assert list(dict(sorted(published.items())).values())[-2:] == ["halted", "active"]
    # ... and after the failover, the books and trades equal an uninterrupted run of the journal
    _assert_matches_uninterrupted_run(platform, apis[0])


def _trading_status(platform: LocalPlatform) -> dict[int, str]:
    """The trading_status events of SYMBOL on execution-events: status by seq (copies merged)."""
    kinesis, stream = _client(platform, "kinesis"), platform.table("ExecutionEventsStream")
    found: dict[int, str] = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for record in page["Records"]:
                for event in json.loads(record["Data"])["events"]:
                    if event["symbol"] == SYMBOL and event["type"] == "trading_status":
                        found[event["seq"]] = event["status"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return found


def _admin(platform: LocalPlatform) -> Api:
    """A user granted the admin role by the operator (``nexus users grant``)."""
    public = Api(platform.api_url)
    email, password = f"chaos-admin-{random.randrange(10**9)}@example.com", "a long and unusual passphrase"
    assert public.post("/v1/auth/register", {"email": email, "password": password, "name": "Chaos"}).status == 202
    env = {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": platform.aws_endpoint}  # fmt: skip
    subprocess.run([sys.executable, "-m", "nexus.cli", "users", "grant", "--user", email, "--role", "admin"],
                   capture_output=True, text=True, env=env, check=True)  # fmt: skip
    login = public.post("/v1/auth/login", {"email": email, "password": password})
    assert login.status == 200, login.body
    return Api(platform.api_url, login.body["access_token"])
