"""Stopping the local runtime is prompt: every Lambda worker is told to end at once, a busy one
included, and obeys; nothing waits for a timeout to run out (README: Ctrl-C stops everything)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

from helpers import eventually

from nexus.local.lambdas import InvokeResult, LocalLambda, worker_base_env
from nexus.local.model import Function

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

