"""Helpers shared by tests (importable as ``helpers``: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Poll ``probe`` until ``done(value)``; returns the last value (the test asserts on it).

    For outcomes that arrive asynchronously (streams, queues): the test never asserts on time,
    only waits for the outcome up to a generous bound."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value
