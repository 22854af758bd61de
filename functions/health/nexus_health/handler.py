"""``GET /health`` (public): can the venue match orders now?

200 ``{"status": "ok", ...}`` when the instruments table and Redis answer, a matching engine
leads under a live lease, and it keeps up with ``order-commands``; else 503 ``{"status":
"degraded", ...}``. Both carry ``checks``, the state of each dependency (see
``nexus_health.checks``), and ``time``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common.events import iso, utc_now
from nexus_common.jsonutil import dumps
from nexus_common.logging import get_logger
from nexus_common.redis_store import redis_client
from nexus_common.settings import NexusSettings, lazy_settings

from nexus_health.checks import assess
from nexus_health.probes import observe


class HealthSettings(NexusSettings):
    instruments_table: str
    order_commands_stream: str  # names the engine's lease and status keys in Redis


logger = get_logger()
settings = lazy_settings(HealthSettings)
clock: Callable[[], datetime] = utc_now  # injected: tests set the instant


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": dumps(body),
        "isBase64Encoded": False,
    }


def _redis() -> Any:
    try:
        return redis_client()
    except Exception:  # the URL's secret cannot be read: Redis counts as down
        logger.exception("health: no Redis client")
        return None


class _Unreachable:
    def pipeline(self, transaction: bool = False) -> Any:
        raise ConnectionError("no Redis client")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = settings()
    client = _redis() or _Unreachable()
    status, body = assess(observe(config.instruments_table, client, config.order_commands_stream), clock())
    if status != 200:
        logger.warning("health: degraded", extra={"checks": body["checks"]})
    return _response(status, {**body, "time": iso(clock())})
