"""Redis for Lambda functions: one cached client, its URL read from Secrets Manager.

A function that needs Redis (rate limits, the market-data snapshot cache, WebSocket fan-out)
gets ``REDIS_URL_SECRET_ARN`` from the template (the root parameter ``RedisUrlSecretArn``,
``secretsmanager:GetSecretValue`` on exactly that ARN in its role). The URL is never in the
template, the environment or a log line. ``REDIS_URL`` set in the environment wins (tests, tools).
The client is created lazily on first use and reused by a warm function.
"""

from __future__ import annotations

import os
import threading
from typing import Final

import redis

from nexus_common import aws

REDIS_URL_SECRET_ENV: Final = "REDIS_URL_SECRET_ARN"  # noqa: S105 - the name of a variable, not a secret

_lock = threading.Lock()
_client: redis.Redis | None = None


def redis_url() -> str:
    given = os.environ.get("REDIS_URL")
    if given:
        return given
    arn = os.environ.get(REDIS_URL_SECRET_ENV)
    if not arn:
        raise RuntimeError(f"neither REDIS_URL nor {REDIS_URL_SECRET_ENV} is set")
    value = aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    if not isinstance(value, str) or not value:
        raise RuntimeError("the Redis URL secret is empty")
    return value


def redis_client() -> redis.Redis:
    """The function's Redis client (bytes in and out; short timeouts so a dead Redis fails fast)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    redis_url(), socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
                )
    return _client


def reset_redis_client() -> None:
    """Forget the cached client (tests switch servers between cases)."""
    global _client
    with _lock:
        _client = None
