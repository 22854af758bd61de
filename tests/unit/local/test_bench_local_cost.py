"""``nexus bench local``'s cost per order: differences of the platform's own counters, polling apart."""

from __future__ import annotations

import json
from pathlib import Path

from nexus.bench_local import Counters, LocalBenchResult, read_counters, report


def _write(state: Path, requests: dict[tuple[str, str], int], written: dict[str, int], calls: dict[str, int]) -> None:
    (state / "aws-profile.txt.json").write_text(json.dumps({
        "requests": [{"operation": op, "resource": res, "count": n, "seconds": 0.0}
                     for (op, res), n in requests.items()],
        "items_written": written,
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
           {"orders": 18, "ledger": 6}, {"OrdersApi": 8, "Positions": 8})  # fmt: skip
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
    assert not any("GetRecords" in line for line in lines)


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
