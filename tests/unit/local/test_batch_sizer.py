"""A stream mapping sends smaller batches after an invocation timed out, then grows back to
``BatchSize`` (which is a maximum: Lambda may send fewer records)."""

from __future__ import annotations

from nexus.local.lambdas import InvokeResult
from nexus.local.pollers import _BatchSizer, _timed_out


def test_a_timeout_halves_the_next_batches_and_successes_grow_them_back_to_batch_size() -> None:
    sizer = _BatchSizer(100)
    assert sizer.limit == 100
    # WHEN a batch of 100 times out, then its half (50) times out too
    sizer.timed_out(100)
    assert sizer.limit == 50
    sizer.timed_out(50)
    assert sizer.limit == 25
    # THEN each success grows the limit by a quarter, never past BatchSize
    limits = []
    for _ in range(12):
        sizer.succeeded()
        limits.append(sizer.limit)
    assert limits == [31, 38, 47, 58, 72, 90, 100, 100, 100, 100, 100, 100]
    # AND a timeout of a small part never drops below one record
    sizer.timed_out(1)
    assert sizer.limit == 1


def test_only_a_timeout_counts_as_one() -> None:
    assert _timed_out(InvokeResult(error={"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out"}))
    assert not _timed_out(InvokeResult(error={"errorType": "RuntimeError", "errorMessage": "poison record"}))
    assert not _timed_out(InvokeResult(payload={"batchItemFailures": []}))
