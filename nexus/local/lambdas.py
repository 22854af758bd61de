"""Local Lambda: a pool of worker processes per function, with Lambda's invoke semantics.

Each worker is one execution environment (``nexus.local.worker``) with the environment the
template gives its function, so functions cannot see each other's configuration. A worker handles
one event at a time; the pool grows up to the function's concurrency when all are busy. A call
that outlives the function's ``Timeout`` kills its worker and fails as ``Task timed out``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from nexus.local import signing
from nexus.local.model import Function
from nexus.local.procs import spawn

log = logging.getLogger("nexus.local.lambda")

# The SDK app id (botocore puts ``app/<id>`` in its User-Agent) of the clients a user waits on: the
# embedded AWS serves their requests ahead of the others' (``nexus.local.aws_server --first``).
FIRST_APP_ID = "nexus-first"
FIRST_ENV = {"AWS_SDK_UA_APP_ID": FIRST_APP_ID}  # botocore reads its app id from this variable

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class InvokeResult:
    payload: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class FunctionError(Exception):
    pass


class _Worker:
    def __init__(self, fn: Function, base_env: dict[str, str], function_arn: str) -> None:
        spec = {
            "function_name": fn.name,
            "function_arn": function_arn,
            "handler": fn.handler,
            "code_uri": str(fn.code_uri),
            "layers": [str(p) for p in fn.layers],
            "timeout": fn.timeout,
            "memory": fn.memory,
        }
        env = {
            **base_env,
            **fn.environment,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": str(fn.code_uri),
            "NEXUS_WORKER_SPEC": json.dumps(spec),
        }
        self.fn = fn
        self.process = spawn(
            [sys.executable, "-m", "nexus.local.worker"],
            env,
            die_with_parent=False,  # started from short-lived threads; ends at EOF on stdin
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        first = self._read_line(STARTUP_TIMEOUT_S)
        if first is None or "ready" not in first:
            self.kill()
            detail = (first or {}).get("init_error", {"errorMessage": "no answer"})
            raise FunctionError(f"{fn.logical_id}: init failed: {detail.get('errorMessage')}")

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if reader.is_alive() or not result or not result[0]:
            return None
        parsed: dict[str, Any] = json.loads(result[0])
        return parsed

    def invoke(self, event: Any) -> InvokeResult:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(event, default=str) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return InvokeResult(error={"errorType": "Runtime.ExitError", "errorMessage": "worker exited"})
        answer = self._read_line(self.fn.timeout + 1.0)
        if answer is None:
            self.kill()
            message = f"Task timed out after {self.fn.timeout:.2f} seconds"
            if self.process.poll() not in (None, -9):
                message = "Runtime exited"
            return InvokeResult(error={"errorType": "Sandbox.Timedout", "errorMessage": message})
        if "error" in answer:
            return InvokeResult(error=answer["error"])
        return InvokeResult(payload=answer.get("ok"))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """End the environment now: end of requests for an idle worker, and SIGTERM, which a
        worker in the middle of an invocation obeys at once (``nexus.local.worker``)."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


class FunctionPool:
    """The execution environments of one function."""

    def __init__(self, fn: Function, base_env: dict[str, str], function_arn: str, max_workers: int) -> None:
        self.fn = fn
        self._base_env = base_env
        self._arn = function_arn
        self._max = max(1, max_workers)
        self._idle: list[_Worker] = []
        self._all: list[_Worker | _Placeholder] = []
        self._cond = threading.Condition()
        self._closed = False
        self.invocations = 0
        self.busy_seconds = 0.0

    def warm(self) -> None:
        worker = _Worker(self.fn, self._base_env, self._arn)
        with self._cond:
            self._all.append(worker)
            self._idle.append(worker)
            self._cond.notify()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("runtime is shutting down")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self._max:
                    self._all.append(placeholder := _Placeholder())
                    break
                self._cond.wait()
        try:
            worker = _Worker(self.fn, self._base_env, self._arn)
        except Exception:  # the slot given back, re-raised
            with self._cond:
                self._all.remove(placeholder)
                self._cond.notify()
            raise
        with self._cond:
            self._all[self._all.index(placeholder)] = worker
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._all.remove(worker)
                worker.kill()
            self._cond.notify()

    def invoke(self, event: Any) -> InvokeResult:
        started = time.monotonic()
        worker = self._acquire()
        try:
            result = worker.invoke(event)
        finally:
            self._release(worker)
        elapsed = time.monotonic() - started
        with self._cond:
            self.invocations += 1
            self.busy_seconds += elapsed
        log.debug("%s %.1f ms", self.fn.logical_id, elapsed * 1000)
        return result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for w in self._all if isinstance(w, _Worker)]
            self._cond.notify_all()
        for worker in workers:
            worker.stop()


class _Placeholder:
    """Reserves a slot in the pool while a new worker starts."""


class LocalLambda:
    """All functions of the platform, invokable by logical id."""

    def __init__(
        self,
        functions: dict[str, Function],
        base_env: dict[str, str],
        region: str,
        account: str,
        concurrency: dict[str, int] | None = None,
        first: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.pools = {
            fid: FunctionPool(
                fn,
                {**base_env, **FIRST_ENV} if fid in first else base_env,
                f"arn:aws:lambda:{region}:{account}:function:{fn.name}",
                (concurrency or {}).get(fid, fn.reserved_concurrency or 1),
            )
            for fid, fn in functions.items()
        }
        self._stats_path = os.environ.get("NEXUS_LAMBDA_STATS")
        self._stopped = threading.Event()
        if self._stats_path:
            threading.Thread(target=self._write_stats_every_second, name="lambda-stats", daemon=True).start()

    def stats(self) -> dict[str, dict[str, float]]:
        """Invocations and busy seconds (acquiring a worker included) per function, so far."""
        return {
            fid: {"invocations": pool.invocations, "seconds": round(pool.busy_seconds, 6)}
            for fid, pool in self.pools.items()
        }

    def write_stats(self) -> None:
        """The counters to ``NEXUS_LAMBDA_STATS`` (what ``nexus bench local`` reads), atomically."""
        assert self._stats_path is not None
        temporary = self._stats_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(self.stats(), out)
        os.replace(temporary, self._stats_path)

    def _write_stats_every_second(self) -> None:
        while not self._stopped.wait(1.0):
            self.write_stats()

    def warm_all(self) -> None:
        """Start one environment per function, in parallel (a cold start before traffic)."""
        errors: list[BaseException] = []

        def warm(pool: FunctionPool) -> None:
            try:
                pool.warm()
            except BaseException as exc:  # noqa: BLE001 - a warming thread's boundary: collected, re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=warm, args=(p,)) for p in self.pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def invoke(self, function_id: str, event: Any) -> InvokeResult:
        return self.pools[function_id].invoke(event)

    def close(self) -> None:
        self._stopped.set()
        threads = [threading.Thread(target=p.close) for p in self.pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)


def worker_base_env(endpoint_url: str, region: str, embedded: bool = False) -> dict[str, str]:
    """What every local execution environment sees besides its function's variables; with
    ``embedded``, that the endpoint is the embedded AWS (``nexus.local.signing``)."""
    keep = ("PATH", "HOME", "LANG", "VIRTUAL_ENV", "SYSTEMROOT", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "NexusTrade",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if embedded:
        env[signing.ENDPOINT_ENV] = endpoint_url
    return env
