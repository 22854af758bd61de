"""Stopping the local runtime is prompt: every Lambda worker is told to end at once, a busy one
included, and obeys; nothing waits for a timeout to run out (README: Ctrl-C stops everything)."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import eventually

from nexus.local.lambdas import InvokeResult, LocalLambda, worker_base_env
from nexus.local.model import EventSource, Function
from nexus.local.pollers import ScheduleMapping
from nexus.local.runtime import LocalPlatform, Options

HANDLERS = '''
import pathlib
import time


def quick(event, context):
    return {"ok": True}


def slow(event, context):
    pathlib.Path(event["started"]).write_text("busy")
    time.sleep(600)
'''


def _function(code: Path, logical_id: str, handler: str) -> Function:
    return Function(logical_id=logical_id, name=f"test-{logical_id}", code_uri=code, handler=handler, layers=(),
                    environment={}, timeout=900, memory=128, events=(), reserved_concurrency=2)  # fmt: skip


def _workers(lambdas: LocalLambda) -> list[subprocess.Popen[Any]]:
    return [w.process for pool in lambdas.pools.values() for w in pool._all if hasattr(w, "process")]


def test_closing_the_lambdas_ends_idle_and_busy_workers_at_once(tmp_path: Path) -> None:
    # GIVEN two functions, one idle worker of the first and one of the second busy in a long invocation
    (tmp_path / "shutdown_handlers.py").write_text(HANDLERS)
    functions = {"Quick": _function(tmp_path, "Quick", "shutdown_handlers.quick"),
                 "Slow": _function(tmp_path, "Slow", "shutdown_handlers.slow")}  # fmt: skip
    lambdas = LocalLambda(functions, worker_base_env("http://127.0.0.1:9", "us-east-1"), "us-east-1", "123456789012")
    assert lambdas.invoke("Quick", {}).ok
    started = tmp_path / "started"
    results: list[InvokeResult] = []
    caller = threading.Thread(target=lambda: results.append(lambdas.invoke("Slow", {"started": str(started)})))
    caller.start()
    eventually(started.exists, lambda seen: seen, timeout=60)
    workers = _workers(lambdas)
    assert len(workers) == 2 and all(w.poll() is None for w in workers)
    # WHEN the runtime closes its Lambda pools (what a Ctrl-C does)
    lambdas.close()
    caller.join(timeout=30)
    # THEN every worker has exited on the runtime's signal (exit 0), the busy one included, none
    # killed after a grace period ran out (-9)
    assert [w.returncode for w in workers] == [0, 0]
    # AND the interrupted invocation ended, as a failed one
    assert not caller.is_alive()
    assert len(results) == 1 and not results[0].ok



def test_stopping_the_runtime_ends_a_poller_busy_in_an_invocation_and_joins_its_thread(tmp_path: Path) -> None:
    # GIVEN the runtime with a scheduled function that is due, and is running a long invocation
    (tmp_path / "shutdown_handlers.py").write_text(HANDLERS)
    started = tmp_path / "started"
    functions = {"Slow": _function(tmp_path, "Slow", "shutdown_handlers.slow")}
    local = LocalPlatform(Options(write_state=False))
    local.lambdas = LocalLambda(functions, worker_base_env("http://127.0.0.1:9", "us-east-1"), "us-east-1",
                                "123456789012")  # fmt: skip
    source = EventSource("Slow", "Every", "Schedule",
                         {"Schedule": "rate(1 minute)", "Input": {"started": str(started)}})  # fmt: skip
    readings = iter([datetime(2026, 1, 5, 9, 0, tzinfo=UTC)] * 2)  # when the mapping is made and starts; then

    def clock() -> datetime:  # an hour later: the schedule is due
        return next(readings, datetime(2026, 1, 5, 10, 0, tzinfo=UTC))

    mapping = ScheduleMapping(local.lambdas, source, "us-east-1", "123456789012", local._stop, clock=clock)
    local._mappings = [mapping]
    mapping.start()
    eventually(started.exists, lambda seen: seen, timeout=60)
    workers = _workers(local.lambdas)
    # WHEN the runtime stops (what a Ctrl-C does)
    local.stop()
    # THEN the busy worker ended on the runtime's signal and every thread the runtime started has exited
    assert [w.returncode for w in workers] == [0]
    assert not mapping.thread.is_alive()
