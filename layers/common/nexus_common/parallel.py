"""Independent writes of one batch, several in flight at once.

A stream consumer that has coalesced its batch into writes on distinct items (each with its own
condition or watermark) gains nothing from sending them one after the other: ``run_all`` sends
them ``WORKERS`` at a time on one thread pool per process (boto3 clients are thread-safe, and the
factory's DynamoDB resource builds each thread's conditions apart: ``nexus_common.aws``), waits
for every one, then raises the first error, so a failed batch is retried whole and nothing is
still being written when the consumer answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="nexus-write")
        return _pool


def run_all(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``jobs`` concurrently; their results in order, or the first error (in job order)
    once every job has finished. One job (or none) runs in the calling thread."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    futures = [_executor().submit(job) for job in jobs]
    wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
