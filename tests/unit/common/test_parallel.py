"""``nexus_common.parallel.run_all``: independent writes in flight together, errors after all."""

from __future__ import annotations

import threading
import time

import pytest
from nexus_common.parallel import run_all


def test_results_come_back_in_job_order_and_jobs_overlap() -> None:
    # GIVEN eight jobs that each wait until four of them are running at once
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(4, timeout=30)

    def job(n: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if n < 4:
            gate.wait()  # would time out if the jobs ran one after the other
        with lock:
            running[0] -= 1
        return n * n

    # WHEN they are run together
    results = run_all([lambda n=n: job(n) for n in range(8)])
    # THEN every result is there, in job order, and at least four ran at the same time
    assert results == [n * n for n in range(8)]
    assert peak[0] >= 4


def test_the_first_error_is_raised_only_after_every_job_has_finished() -> None:
    # GIVEN a job that fails at once and a slow one that succeeds
    finished: list[str] = []

    def fails() -> int:
        raise ValueError("write refused")

    def slow() -> int:
        time.sleep(0.2)
        finished.append("slow")
        return 1

    # WHEN they run together
    with pytest.raises(ValueError, match="write refused"):
        run_all([fails, slow])
    # THEN the slow write had finished when the error came out: nothing is left in flight
    assert finished == ["slow"]


def test_one_job_or_none_runs_in_the_calling_thread() -> None:
    assert run_all([]) == []
    assert run_all([threading.get_ident]) == [threading.get_ident()]
