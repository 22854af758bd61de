"""Data access of health: the observations ``checks.assess`` needs, one cheap call per dependency.

* tables: a point read of a key that never exists in the instruments table (proves the table
  and the credentials);
* Redis: the engine's lease key and status record, read in one round trip (proves Redis);
* the engine: what the leader writes beside its lease (``nexus_matching.runner``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from nexus_common import aws
from nexus_common.logging import get_logger
from nexus_common.redis_store import redis_client
from redis.exceptions import RedisError

from nexus_health.checks import EngineObservation, Observations

logger = get_logger()


def engine_prefix(order_commands_stream: str) -> str:
    """The engine's Redis key prefix (``nexus_matching.runner.EngineProcess``)."""
    return f"nexus:engine:{order_commands_stream}"


def redis_or_unreachable() -> Any:
    """The Redis client; when the URL's secret cannot be read, one that fails as Redis down does."""
    try:
        client = redis_client()
    except Exception:  # the URL's secret cannot be read: Redis counts as down
        logger.exception("health: no Redis client")
        client = None
    return client or _Unreachable()


class _Unreachable:
    def pipeline(self, transaction: bool = False) -> Any:
        raise ConnectionError("no Redis client")


def read_tables(instruments_table: str) -> bool:
    try:
        aws.dynamodb_table(instruments_table).get_item(Key={"symbol": "__health__"}, ProjectionExpression="symbol")
    except (ClientError, BotoCoreError):  # a missing table, refused credentials, no endpoint: down
        logger.exception("health: the instruments table does not answer")
        return False
    return True


def read_engine(client: Any, order_commands_stream: str) -> EngineObservation | None:
    """The lease and status of the engine, or None when Redis does not answer."""
    prefix = engine_prefix(order_commands_stream)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(f"{prefix}:leader")
        pipe.pttl(f"{prefix}:leader")
        pipe.get(f"{prefix}:status")
        lease, ttl, status = pipe.execute()
    except (RedisError, OSError):  # refused, timed out, or no client (``_Unreachable``): down
        logger.exception("health: Redis does not answer")
        return None
    epoch = _epoch_of(lease)
    record = _status_of(status)
    return EngineObservation(
        lease_epoch=epoch,
        lease_ttl_ms=max(int(ttl), 0) if epoch is not None else 0,
        status_epoch=record.get("epoch") if isinstance(record.get("epoch"), int) else None,
        status_at=_instant(record.get("at")),
        behind_ms=record["behind_ms"] if isinstance(record.get("behind_ms"), int) else 0,
        unpublished=record.get("unpublished") is True,
    )


def observe(instruments_table: str, redis_client: Any, order_commands_stream: str) -> Observations:
    engine = read_engine(redis_client, order_commands_stream)
    return Observations(tables=read_tables(instruments_table), redis=engine is not None, engine=engine)


def _epoch_of(lease: Any) -> int | None:
    """``"{epoch}:{node}"`` -> epoch."""
    if lease is None:
        return None
    text = lease.decode() if isinstance(lease, bytes) else str(lease)
    head = text.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _status_of(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _instant(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
