"""``GET /health`` (public): 200 when the instruments table answers, else 503."""

from __future__ import annotations

from typing import Any

from nexus_common import aws
from nexus_common.errors import error_body
from nexus_common.events import iso, utc_now
from nexus_common.jsonutil import dumps
from nexus_common.logging import get_logger
from nexus_common.settings import NexusSettings, lazy_settings


class HealthSettings(NexusSettings):
    instruments_table: str


logger = get_logger()
settings = lazy_settings(HealthSettings)


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": dumps(body),
        "isBase64Encoded": False,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        # A point read of a key that never exists: cheap, and proves table and credentials.
        aws.dynamodb_table(settings().instruments_table).get_item(
            Key={"symbol": "__health__"}, ProjectionExpression="symbol"
        )
    except Exception:
        logger.exception("health check failed")
        return _response(503, error_body("unavailable", "a dependency is not available"))
    return _response(200, {"status": "ok", "time": iso(utc_now())})
