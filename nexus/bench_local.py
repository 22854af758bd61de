"""``nexus bench local``: how fast the whole local platform takes orders and fills them.

Starts ``nexus up --demo`` as its own process (on free ports, with its own state folder), so that
the load generator does not share an interpreter with the platform, and measures over HTTP:

1. round trip: one crossing pair on an idle platform (a resting sell, then a buy that takes it):
   time from the buy's request until both orders read back ``filled``, read every 10 ms; the
   median of 5 pairs;
2. throughput: ``pairs`` crossing pairs from ``clients`` concurrent clients:
   * accepted/s: orders answered ``202`` per second of sending;
   * filled/s: orders whose status reached ``filled`` per second, from the first request until
     the last one was seen filled (read back from the orders table every 0.5 s: a lower bound);
3. cost per order over the throughput run, once every consumer has caught up: the embedded AWS's
   own counters (``NEXUS_AWS_PROFILE``: requests per operation and resource, DynamoDB items
   written) and the local Lambda's (``NEXUS_LAMBDA_STATS``: invocations per function), each the
   difference between a reading before the run and one after it, divided by the orders sent.
   Polling (``GetRecords``, ``GetShardIterator``, ``ReceiveMessage`` and stream descriptions) is
   counted apart: it depends on time, not on orders. So are the market maker's own requests (and
   items written), told apart by its SDK app id: it re-quotes every second whatever the flow; its
   rate per second is printed (the orders it places still cost the platform as any order does);
4. latency at a steady load: after the throughput run (the consumers caught up), crossing pairs
   sent at a fixed rate for ``PACED_SECONDS`` at each of ``PACED_RATES`` orders per second, open
   loop: each order has its instant on a schedule, whether or not earlier ones were answered, and
   its latency is counted from that instant (an order that waited for a free sender, because the
   platform fell behind, counts its wait). The throughput run's clients send their next order
   when the last is answered, so its POST p50 is the clients over the rate (Little's law), not the
   time a POST takes; this is what a user sees at that load;
5. CPU per order over the same span: the CPU seconds (user + system) each process of the platform
   used between the two readings, by role (the embedded AWS, the Lambda workers, ``nexus up``
   itself: the API gateway and the event source pollers, each container, Redis), divided by the
   orders sent. Unlike orders per second it hardly depends on what else the machine is doing,
   so it is the figure to compare between runs on a shared machine. The pollers and the market
   maker's timer count too, over the seconds measured; a process that ended during the run is
   not counted. The load generator (this process) is printed apart.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil

from nexus.cli_surveillance import read_live_lag, reset_live_lag
from nexus.local.demo_routing import DEMO_REFERENCE_PRICES
from nexus.local.lambdas import FIRST_APP_ID
from nexus.local.procs import spawn, stop_process
from nexus.local.runtime import LOCAL_CREDENTIALS, free_port, read_state, wait_until

SYMBOLS = tuple(DEMO_REFERENCE_PRICES)
# The demo market maker quotes a few ticks either side of each symbol's reference price: the pairs
# cross at the reference itself, inside its quotes, so a sell rests until its buy takes it.
PRICES = DEMO_REFERENCE_PRICES


POLLING = frozenset({"GetRecords", "GetShardIterator", "ReceiveMessage", "ListShards", "DescribeStream",
                     "DescribeStreamSummary"})
# The market maker's SDK app id (``nexus up`` names each container's clients): it quotes on a
# timer, whatever the order flow, so its requests are a rate per second, counted apart.
MARKET_MAKER_APP = f"{FIRST_APP_ID}.marketmaker"
ROUND_TRIPS = 5  # crossing pairs on the idle platform; their median is printed
PACED_RATES = (20.0, 40.0, 60.0)  # orders per second of the open-loop latency runs (see the module docstring)
PACED_SECONDS = 15.0  # the length of each
PACED_SENDERS = 64  # at most this many POSTs in flight; an order due when all are busy waits (and counts it)
ROUND_TRIP_POLL_S = 0.01  # between two reads of the pair (each read is two GETs through the API)


@dataclass(frozen=True)
class Counters:
    """One reading of the platform's counters (see the module docstring). ``requests`` holds
    every request but the market maker's, which are in ``market_maker``."""

    requests: dict[tuple[str, str], int]
    items_written: dict[str, int]
    invocations: dict[str, int]
    market_maker: dict[tuple[str, str], int] = field(default_factory=dict)
    at: float = 0.0  # when read (monotonic seconds); after ``minus``, the seconds between the readings
    write_units: dict[str, int] = field(default_factory=dict)  # per table (``aws_server.write_units``)

    def minus(self, before: Counters) -> Counters:
        def diff(now: dict[Any, int], then: dict[Any, int]) -> dict[Any, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v - then.get(k, 0)}

        return Counters(diff(self.requests, before.requests), diff(self.items_written, before.items_written),
                        diff(self.invocations, before.invocations),
                        diff(self.market_maker, before.market_maker), self.at - before.at,
                        diff(self.write_units, before.write_units))  # fmt: skip

    @property
    def work(self) -> int:
        """Requests that orders cause (everything but polling and the market maker's quoting)."""
        return sum(n for (op, _), n in self.requests.items() if op not in POLLING)

    @property
    def polling(self) -> int:
        return sum(n for (op, _), n in self.requests.items() if op in POLLING)


def read_counters(state: Path) -> Counters:
    aws = json.loads((state / "aws-profile.txt.json").read_text())
    lambdas = json.loads((state / "lambda-stats.json").read_text())
    requests = {(r["operation"], r["resource"]): int(r["count"]) for r in aws["requests"]}
    market_maker = {(r["operation"], r["resource"]): int(r["count"])
                    for r in aws.get("apps", []) if r["app"] == MARKET_MAKER_APP}  # fmt: skip
    for key, n in market_maker.items():
        requests[key] -= n

    def per_table(total: str, by_app: str) -> dict[str, int]:
        """A per-table counter, less the market maker's share of it."""
        counts = {k: int(v) for k, v in aws.get(total, {}).items()}
        for row in aws.get(by_app, []):
            if row["app"] == MARKET_MAKER_APP:
                counts[row["table"]] -= int(row["count"])
        return counts

    written = per_table("items_written", "apps_items_written")
    units = per_table("write_units", "apps_write_units")
    return Counters(
        {k: n for k, n in requests.items() if n},
        {k: n for k, n in written.items() if n},
        {k: int(v["invocations"]) for k, v in lambdas.items()},
        market_maker,
        time.monotonic(),
        {k: n for k, n in units.items() if n},
    )


def settled_counters(state: Path, timeout: float = 120.0, quiet: float = 3.0) -> Counters:
    """The counters once the consumers have caught up: no request but polling and the market
    maker's for ``quiet`` seconds (counters are written every second), or what they are after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    last = read_counters(state)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read_counters(state)
        if now.work != last.work or now.invocations != last.invocations:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return last


# What each process of the platform is, from its command line (the first pattern found).
CPU_ROLES = (
    ("nexus.local.aws_server", "embedded AWS (moto server)"),
    ("nexus.local.worker", "Lambda workers"),
    ("nexus.cli up", "nexus up: API gateway, event source pollers"),
    ("nexus_matching", "matching engine"),
    ("nexus_fix", "FIX gateway"),
    ("nexus_marketmaker", "market maker"),
    ("redis-server", "Redis"),
)


def cpu_role(command: str) -> str:
    for pattern, role in CPU_ROLES:
        if pattern in command:
            return role
    return "other: " + command[:40]


@dataclass(frozen=True)
class PacedResult:
    """One open-loop run: ``orders`` sent on a schedule at ``rate`` per second; latencies (ms) from
    each order's scheduled instant to its answer."""

    rate: float
    orders: int
    accepted: int
    seconds: float  # from the first scheduled instant to the last answer
    p50_ms: float
    p99_ms: float
    late: int = 0  # orders sent over 10 ms after their due instant (no sender free, or the schedule's thread late)

    @property
    def served_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0.5, 0.99) of already sorted values (nearest rank, from below)."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def paced(send: Callable[[int], bool], rate: float, count: int, senders: int = PACED_SENDERS) -> PacedResult:
    """Call ``send(i)`` (True when the order was accepted) for i in 0..count-1, the i-th due at
    ``i / rate`` s after the start, from up to ``senders`` threads; each latency runs from the
    order's due instant to ``send``'s return (see the module docstring)."""
    latencies: list[float] = []
    accepted = late = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def one(i: int) -> None:
        nonlocal accepted, late
        due = start + i / rate
        began = time.perf_counter()
        ok = send(i)
        with lock:
            latencies.append(time.perf_counter() - due)
            accepted += ok
            late += began - due > 0.01

    with ThreadPoolExecutor(senders) as pool:
        futures = []
        for i in range(count):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(pool.submit(one, i))
        for future in futures:
            future.result()
    latencies.sort()
    return PacedResult(rate, count, accepted, time.perf_counter() - start, percentile(latencies, 0.5) * 1000,
                       percentile(latencies, 0.99) * 1000, late)  # fmt: skip


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds (user + system) so far of each process, by pid: (role, seconds)."""

    processes: dict[int, tuple[str, float]]

    def minus(self, before: CpuReading) -> dict[str, float]:
        """CPU seconds per role between ``before`` and this reading (a process started since
        counts from zero; one that ended since is not in this reading)."""
        used: dict[str, float] = {}
        for pid, (role, seconds) in self.processes.items():
            then = before.processes.get(pid)
            start = then[1] if then is not None and then[0] == role else 0.0
            used[role] = used.get(role, 0.0) + max(seconds - start, 0.0)
        return used


def read_cpu(root: int) -> CpuReading:
    """The CPU seconds of process ``root`` and every process under it."""
    processes: dict[int, tuple[str, float]] = {}
    try:
        top = psutil.Process(root)
        tree = [top, *top.children(recursive=True)]
    except psutil.Error:  # the platform is gone
        return CpuReading(processes)
    for process in tree:
        try:
            with process.oneshot():
                times = process.cpu_times()
                command = " ".join(process.cmdline()) or process.name()
        except psutil.Error:  # ended meanwhile
            continue
        processes[process.pid] = (cpu_role(command), times.user + times.system)
    return CpuReading(processes)


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@dataclass
class LocalBenchResult:
    round_trip_ms: float
    orders: int
    accepted: int
    filled: int
    send_seconds: float
    fill_seconds: float
    p50_ms: float
    p99_ms: float
    clients: int = 0
    cost: Counters | None = None
    surveillance: dict[str, Any] | None = None  # the live consumer's lag figures after the run
    lag_samples: list[int] = field(default_factory=list)  # its last batch's lag (ms), every 5 s of the run
    cpu: dict[str, float] = field(default_factory=dict)  # the platform's CPU seconds per role over the run
    load_cpu: float = 0.0  # the load generator's own CPU seconds over the run
    paced: list[PacedResult] = field(default_factory=list)  # the open-loop latency runs, by rate

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.send_seconds

    @property
    def filled_per_s(self) -> float:
        return self.filled / self.fill_seconds


def _call(url: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return answer.status, json.loads(answer.read())


class LocalPlatform:
    """``nexus up --demo`` in a child process (free ports, its own state folder)."""

    def __init__(self, stage: str = "bench") -> None:
        self.stage = stage
        self.state = Path(tempfile.mkdtemp(prefix=f"nexus-{stage}-"))
        self.api_port, self.aws_port, self.ws_port = free_port(), free_port(), free_port()
        env = {**os.environ, "NEXUS_STATE_DIR": str(self.state),
               "NEXUS_AWS_PROFILE": str(self.state / "aws-profile.txt"),
               "NEXUS_LAMBDA_STATS": str(self.state / "lambda-stats.json")}  # fmt: skip
        for key in ("AWS_ENDPOINT_URL", "REDIS_URL"):
            env.pop(key, None)
        command = [sys.executable, "-m", "nexus.cli", "up", "--demo", "--stage", stage,
                   "--port", str(self.api_port), "--aws-port", str(self.aws_port),
                   "--ws-port", str(self.ws_port)]  # fmt: skip
        self.process = spawn(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.aws = f"http://127.0.0.1:{self.aws_port}"
        wait_until(lambda: (self.state / "runtime.json").exists(), 120, "nexus up")
        accounts = json.loads((self.state / "demo-accounts.json").read_text())
        self.keys = [a["api_key"] for a in accounts]
        self.redis_url = str(read_state(self.state)["redis_url"])

    def surveillance_lag(self) -> dict[str, Any]:
        return read_live_lag(self.redis_url, self.stage)

    def reset_surveillance_lag(self) -> None:
        reset_live_lag(self.redis_url, self.stage)

    def orders_table(self) -> str:
        return f"nexus-{self.stage}-orders"

    def stop(self) -> None:
        """Stop the platform and remove its state folder (its demo keys, counters and profile)."""
        stop_process(self.process, 15)
        shutil.rmtree(self.state, ignore_errors=True)


def _order_status(platform: LocalPlatform, key: str, order_id: str) -> str:
    return str(_call(platform.url, key, "GET", f"/v1/orders/{order_id}")[1]["order"]["status"])


def _round_trip(platform: LocalPlatform) -> float:
    seller, buyer = platform.keys
    sell = {"symbol": "AAPL", "side": "sell", "type": "limit", "quantity": "1", "price": PRICES["AAPL"]}
    _, placed = _call(platform.url, seller, "POST", "/v1/orders", sell)
    sell_id = placed["order"]["order_id"]
    wait_until(lambda: _order_status(platform, seller, sell_id) == "new", 30, "resting sell")
    started = time.perf_counter()
    _, placed = _call(platform.url, buyer, "POST", "/v1/orders", {**sell, "side": "buy"})
    buy_id = placed["order"]["order_id"]
    pair = ((buyer, buy_id), (seller, sell_id))
    wait_until(lambda: all(_order_status(platform, key, order) == "filled" for key, order in pair), 30, "fill",
               interval=ROUND_TRIP_POLL_S)  # fmt: skip
    return (time.perf_counter() - started) * 1000


def _count_filled(platform: LocalPlatform, ids: set[str]) -> int:
    credentials = {k.lower(): v for k, v in LOCAL_CREDENTIALS.items()}  # the emulation's dummy keys
    client = boto3.client("dynamodb", endpoint_url=platform.aws, region_name="us-east-1", **credentials)
    from nexus_common.dynamo import paginate

    items = paginate(client.scan, TableName=platform.orders_table(), ProjectionExpression="order_id, #s",
                     ExpressionAttributeNames={"#s": "status"})  # fmt: skip
    return sum(1 for i in items if i["order_id"]["S"] in ids and i["status"]["S"] == "filled")


def run(pairs: int = 1000, clients: int = 8, timeout: float = 900.0, paced_rates: tuple[float, ...] = PACED_RATES,
        paced_seconds: float = PACED_SECONDS) -> LocalBenchResult:
    platform = LocalPlatform()
    try:
        seller, buyer = platform.keys
        with ThreadPoolExecutor(clients) as pool:  # start the API's execution environments first
            list(pool.map(lambda _: _call(platform.url, seller, "GET", "/v1/orders"), range(clients * 4)))
        round_trip = statistics.median(_round_trip(platform) for _ in range(ROUND_TRIPS))
        orders = []
        for i in range(pairs):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            order = {"symbol": symbol, "type": "limit", "quantity": "1", "price": PRICES[symbol]}
            orders += [(seller, {**order, "side": "sell"}), (buyer, {**order, "side": "buy"})]
        ids: set[str] = set()
        latencies: list[float] = []
        lock = threading.Lock()

        def send(item: tuple[str, dict[str, Any]]) -> None:
            begun = time.perf_counter()
            status, body = _call(platform.url, item[0], "POST", "/v1/orders", item[1])
            with lock:
                latencies.append(time.perf_counter() - begun)
                if status == 202:
                    ids.add(body["order"]["order_id"])

        before = settled_counters(platform.state)
        cpu_before, load_before = read_cpu(platform.process.pid), own_cpu_seconds()
        platform.reset_surveillance_lag()
        lag_samples: list[int] = []
        sampling = threading.Event()

        def sample_lag() -> None:  # the surveillance consumer's lag as the run goes: does it grow?
            while not sampling.wait(5.0):
                last = platform.surveillance_lag().get("last_lag_ms")
                if last is not None:
                    lag_samples.append(int(last))

        sampler = threading.Thread(target=sample_lag, daemon=True)
        sampler.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, orders))
        sent = time.perf_counter()
        filled = 0
        while time.perf_counter() - started < timeout:
            filled = _count_filled(platform, ids)
            if filled >= len(ids):
                break
            time.sleep(0.5)  # a scan of the orders table costs the emulated AWS: not too often
        done = time.perf_counter()
        sampling.set()
        sampler.join()
        cost = settled_counters(platform.state).minus(before)
        cpu = read_cpu(platform.process.pid).minus(cpu_before)
        load_cpu = own_cpu_seconds() - load_before
        surveillance = platform.surveillance_lag()
        paced_runs = []
        for rate in paced_rates:
            # the throughput run's buyer sells and its seller buys: their positions go back
            steady = [(buyer if key == seller else seller, order) for key, order in orders][: int(rate * paced_seconds)]

            def post(i: int, steady: list[tuple[str, dict[str, Any]]] = steady) -> bool:
                return _call(platform.url, steady[i][0], "POST", "/v1/orders", steady[i][1])[0] == 202

            paced_runs.append(paced(post, rate, len(steady)))
            settled_counters(platform.state)  # the next rate starts on a platform that has caught up
    finally:
        platform.stop()
    latencies.sort()
    return LocalBenchResult(
        round_trip_ms=round_trip,
        orders=len(orders),
        accepted=len(ids),
        filled=filled,
        send_seconds=sent - started,
        fill_seconds=done - started,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        clients=clients,
        cost=cost,
        surveillance=surveillance,
        lag_samples=lag_samples,
        cpu=cpu,
        load_cpu=load_cpu,
        paced=paced_runs,
    )


def report(result: LocalBenchResult, top: int = 25) -> list[str]:
    """The figures, as ``nexus bench local`` prints them."""
    lines = [
        "local platform (nexus up --demo in its own process, every function of the template), over HTTP:",
        f"  round trip  {result.round_trip_ms:7.1f} ms   one crossing pair on an idle platform: "
        f"buy request -> both orders read back filled (p50 of {ROUND_TRIPS}, "
        f"read every {ROUND_TRIP_POLL_S * 1000:.0f} ms)",
        f"  accepted    {result.accepted_per_s:7.1f} orders/s   {result.accepted} orders from {result.clients} "
        f"clients in {result.send_seconds:.2f} s (POST p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms)",
        f"  filled      {result.filled_per_s:7.1f} orders/s   {result.filled} orders filled "
        f"{result.fill_seconds:.2f} s after the first request",
    ]
    cost, orders = result.cost, result.orders
    if cost is None or not orders:
        return lines
    writes = sum(cost.items_written.values())
    invocations = sum(cost.invocations.values())
    lines += [
        f"cost per order ({orders} orders, from the embedded AWS's and the local Lambda's own counters):",
        f"  AWS requests        {cost.work / orders:7.2f} per order, polling excluded "
        f"({cost.work} requests; polling {cost.polling / orders:.2f} per order more)",
        f"  DynamoDB writes     {writes / orders:7.2f} items per order",
        f"  Lambda invocations  {invocations / orders:7.2f} per order",
        "  requests per order by operation and resource (polling excluded):",
    ]
    work = sorted(((n, op, res) for (op, res), n in cost.requests.items() if op not in POLLING), reverse=True)
    for n, op, res in work[:top]:
        lines.append(f"    {n / orders:7.3f}  {op} {res}")
    if len(work) > top:
        rest = sum(n for n, _, _ in work[top:])
        lines.append(f"    {rest / orders:7.3f}  ({len(work) - top} more)")
    polls = sorted(((n, op, res) for (op, res), n in cost.requests.items() if op in POLLING), reverse=True)
    if polls:
        lines.append("  polling per order, the most: "
                     + ", ".join(f"{op} {res or '-'} {n / orders:.2f}" for n, op, res in polls[:5]))  # fmt: skip
    if cost.market_maker and cost.at > 0:
        quoting = sorted(((n, op, res) for (op, res), n in cost.market_maker.items()), reverse=True)
        total = sum(n for n, _, _ in quoting)
        lines.append(f"  market maker (quotes on a timer, counted apart): {total / cost.at:.1f} requests/s "
                     f"over the {cost.at:.0f} s measured; the most: "
                     + ", ".join(f"{op} {res} {n / cost.at:.1f}/s" for n, op, res in quoting[:4]))  # fmt: skip
    lines.append("  DynamoDB items written per order by table, and their write units (1 KB each; an update's or a "
                 "delete's counted at its floor of 1):")  # fmt: skip
    for table, n in sorted(cost.items_written.items(), key=lambda kv: -kv[1]):
        units = cost.write_units.get(table, 0)
        lines.append(f"    {n / orders:7.3f}  {table} ({units / orders:.3f} write units)")
    lines.append("  Lambda invocations per order by function:")
    for function, n in sorted(cost.invocations.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {n / orders:7.3f}  {function}")
    return lines + cpu_lines(result) + surveillance_lines(result) + paced_lines(result) + target_lines(result)


def paced_lines(result: LocalBenchResult) -> list[str]:
    """The open-loop latency runs (see the module docstring)."""
    if not result.paced:
        return []
    lines = ["latency at a steady load (open loop: orders sent on a schedule, each one's latency counted from its "
             "due instant):"]  # fmt: skip
    for run in result.paced:
        lines.append(f"  {run.rate:5.0f} orders/s offered: {run.accepted} of {run.orders} accepted, served "
                     f"{run.served_per_s:.1f}/s; POST p50 {run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms; "
                     f"{run.late} sent over 10 ms late")  # fmt: skip
    return lines


# The local platform's targets on a 2-core machine, every service running (``make day``'s is
# measured by ``nexus bench day``: ``day_target_line``).
TARGET_ORDERS_PER_S = 60.0
TARGET_POST_MS = (50.0, 250.0)  # p50, p99
TARGET_ROUND_TRIP_MS = 150.0
TARGET_REQUESTS_PER_ORDER = 15.0
TARGET_DAY_S = 600.0  # ``make day``: 10,000 pairs, from the platform's start to its stop, reconciled
TARGET_DAY_PAIRS = 10_000


def day_target_line(seconds: float, pairs: int) -> str:
    """``nexus bench day``'s whole time (platform started, day traded, consumers settled,
    reconciled, platform stopped), against ``make day``'s target when the day is that size."""
    line = f"the day, start to stop: {seconds:.0f} s"
    if pairs != TARGET_DAY_PAIRS:
        return line + f" ({pairs} pairs; make day's target is for {TARGET_DAY_PAIRS})"
    verdict = "met" if seconds <= TARGET_DAY_S else "not met"
    return line + f"   target <= {TARGET_DAY_S:.0f} s ({TARGET_DAY_PAIRS} pairs, reconciled, no break): {verdict}"


def target_lines(result: LocalBenchResult) -> list[str]:
    """This run's figures against the targets, one line each, and what a closed loop implies for
    the POST latency: each client sends its next order when its last is answered, so the median
    POST takes about clients / orders per second (Little's law), whatever the platform does."""

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    def post(p50: float, p99: float) -> str:
        """A POST line's figures, its target and whether both are within it."""
        return (f"{p50:6.0f} / {p99:.0f} ms   target <= {TARGET_POST_MS[0]:.0f} / {TARGET_POST_MS[1]:.0f}: "
                f"{met(p50 <= TARGET_POST_MS[0] and p99 <= TARGET_POST_MS[1])}")  # fmt: skip

    slowest = min(result.accepted_per_s, result.filled_per_s)
    lines = [
        "against the targets (2 cores, every service running; make day's is printed by nexus bench day):",
        f"  orders accepted / filled  {result.accepted_per_s:6.1f} / {result.filled_per_s:.1f} per s"
        f"   target >= {TARGET_ORDERS_PER_S:.0f}: {met(slowest >= TARGET_ORDERS_PER_S)}",
        f"  POST p50 / p99            {post(result.p50_ms, result.p99_ms)}",
        *(f"  POST p50 / p99 at {run.rate:3.0f}/s  {post(run.p50_ms, run.p99_ms)}" for run in result.paced),
        f"  round trip p50            {result.round_trip_ms:6.1f} ms"
        f"   target <= {TARGET_ROUND_TRIP_MS:.0f}: {met(result.round_trip_ms <= TARGET_ROUND_TRIP_MS)}",
    ]
    if result.cost is not None and result.orders:
        per_order = result.cost.work / result.orders
        lines.append(f"  AWS requests per order    {per_order:6.2f}   target <= {TARGET_REQUESTS_PER_ORDER:.0f}: "
                     f"{met(per_order <= TARGET_REQUESTS_PER_ORDER)}")  # fmt: skip
    if result.clients and result.accepted_per_s > 0:
        lines.append(f"  (a closed loop of {result.clients} clients: POST p50 is about {result.clients} / "
                     f"{result.accepted_per_s:.1f} orders/s = {result.clients / result.accepted_per_s * 1000:.0f} ms "
                     f"at any speed; <= {TARGET_POST_MS[0]:.0f} ms needs "
                     f"{result.clients / TARGET_POST_MS[0] * 1000:.0f} orders/s. The open-loop runs ("
                     f"{', '.join(f'{run.rate:.0f}' for run in result.paced) or 'none'} orders/s) give what a POST "
                     f"takes at that load)")  # fmt: skip
    return lines


def cpu_lines(result: LocalBenchResult) -> list[str]:
    """CPU milliseconds per order by role (see the module docstring)."""
    if not result.cpu or not result.orders:
        return []
    total = sum(result.cpu.values())
    seconds = result.cost.at if result.cost is not None else 0.0
    cores = f", {total / seconds:.2f} cores on average over {seconds:.0f} s" if seconds > 0 else ""
    lines = [f"CPU per order (the platform's processes, user + system, over the same span): "
             f"{total * 1000 / result.orders:.1f} ms ({total:.1f} CPU seconds{cores}; "
             f"{os.cpu_count()} cores here)"]  # fmt: skip
    for role, used in sorted(result.cpu.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {used * 1000 / result.orders:7.1f}  {role}")
    load = result.load_cpu * 1000 / result.orders
    lines.append(f"  load generator (this process, not counted): {load:.1f} ms per order")
    return lines


def surveillance_lines(result: LocalBenchResult) -> list[str]:
    """The surveillance live path's lag over the run: each execution-events batch's consumer
    clock minus the newest engine time in it (its batching window included)."""
    lag = result.surveillance
    if not lag or not lag.get("batches"):
        return []
    samples = ", ".join(str(s) for s in result.lag_samples) or "none"
    return [
        f"surveillance live path: {lag['batches']} batches, {lag['records']} records; lag per batch "
        f"mean {lag['mean_lag_ms']:.0f} ms, max {lag['max_lag_ms']} ms, last {lag['last_lag_ms']} ms",
        f"  last batch's lag every 5 s of the run (ms): {samples}",
    ]
