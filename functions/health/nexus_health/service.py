"""The application layer of health: observe the dependencies once, judge them
(``nexus_health.checks.assess``), and stamp the answer with the time it was judged at."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common.events import iso

from nexus_health.checks import Observations, assess


def health(observe: Callable[[], Observations], clock: Callable[[], datetime]) -> tuple[int, dict[str, Any]]:
    """(200 or 503, the body: ``status``, ``checks`` and ``time``)."""
    status, body = assess(observe(), clock())
    return status, {**body, "time": iso(clock())}
