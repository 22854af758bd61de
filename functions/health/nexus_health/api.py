"""``GET /health`` (public, an API Gateway proxy route): can the venue match orders now?

200 ``{"status": "ok", ...}`` when the instruments table and Redis answer, a matching engine
leads under a live lease, and it keeps up with ``order-commands``; else 503 ``{"status":
"degraded", ...}``. Both carry ``checks``, the state of each dependency (see
``nexus_health.checks``), and ``time``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common.events import utc_now
from nexus_common.jsonutil import dumps
from nexus_common.logging import get_logger
from nexus_common.settings import lazy_settings

from nexus_health import service
from nexus_health.repo import observe, redis_or_unreachable
from nexus_health.settings import HealthSettings

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


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = settings()
    status, body = service.health(
        lambda: observe(config.instruments_table, redis_or_unreachable(), config.order_commands_stream), clock
    )
    if status != 200:
        logger.warning("health: degraded", extra={"checks": body["checks"]})
    return _response(status, body)
