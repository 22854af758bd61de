"""``nexus bench fix``'s report of a run's CPU: the platform's CPU per order acknowledged, by process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from nexus.bench_fix import FixBenchResult, RunFigures, cpu_lines, report


def _run(acknowledged: int, cpu: dict[str, float], ends: tuple[tuple[str, int], ...] = ()) -> RunFigures:
    return RunFigures(sessions=1, rate=200, seconds=15, sent=3000, send_seconds=15.0, acknowledged=acknowledged,
                      new=acknowledged, rejected=0, lost=3000 - acknowledged, ack_seconds=90.0,
                      latencies_ms=(10.0, 20.0), cpu=cpu, session_ends=ends)  # fmt: skip


def test_cpu_per_order_acknowledged_by_process_largest_first() -> None:
    run = _run(2000, {"FIX gateway": 30.0, "embedded AWS (moto server)": 50.0, "Redis": 0.5})

    (line,) = cpu_lines(run)

    assert "40.2 ms (80 CPU seconds)" in line  # 80.5 s over 2,000 orders
    assert line.index("embedded AWS (moto server) 25.0") < line.index("FIX gateway 15.0")
    assert "Redis" not in line  # under 1 ms per order: left out
    assert line in report(FixBenchResult((run,)))


def test_no_cpu_line_without_an_order_acknowledged_or_a_reading() -> None:
    assert cpu_lines(_run(0, {"FIX gateway": 3.0})) == []
    assert cpu_lines(_run(100, {})) == []


def test_why_reports_stopped_is_reported_when_the_gateway_ended_the_session() -> None:
    ends = (("Reject: SendingTime accuracy problem", 1), ("Logout: SendingTime accuracy problem", 1))
    lines = report(FixBenchResult((_run(4555, {}, ends),)))
    assert ("    from the gateway's session layer: 1 x Reject: SendingTime accuracy problem; "
            "1 x Logout: SendingTime accuracy problem") in lines  # fmt: skip
    assert not any("session layer" in line for line in report(FixBenchResult((_run(3000, {}),))))


def test_a_session_acts_for_enough_accounts_to_keep_each_under_the_open_order_limit() -> None:
    from nexus_common.risk import MAX_OPEN_ORDERS_CEILING

    from nexus.bench_fix import ACCOUNT_ORDERS, accounts_each

    assert ACCOUNT_ORDERS + 20 <= MAX_OPEN_ORDERS_CEILING  # with the warm-up's orders
    assert accounts_each(500, 30, 1) == 6  # 15,000 orders: 2,500 each
    assert accounts_each(500, 30, 4) == 2  # 3,750 a session
    assert accounts_each(45, 60, 1) == 2  # 2,700
    assert accounts_each(30, 30, 1) == 1
    assert accounts_each(1, 1, 4) == 1


def test_a_bench_platform_leaves_no_state_folder_behind(tmp_path: Path) -> None:
    from nexus.bench_fix import BenchPlatform
    from nexus.bench_local import LocalPlatform

    for kind in (LocalPlatform, BenchPlatform):
        # GIVEN a bench platform's state folder, with the demo keys nexus up wrote
        platform: Any = object.__new__(kind)
        platform.state = tmp_path / kind.__name__
        platform.state.mkdir()
        (platform.state / "demo-accounts.json").write_text("[]")
        platform.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        # WHEN it stops THEN its process is gone and so is the folder
        platform.stop()
        assert platform.process.poll() is not None
        assert not platform.state.exists()
