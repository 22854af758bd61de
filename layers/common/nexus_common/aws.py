"""One factory for AWS clients and resources.

* ``AWS_ENDPOINT_URL`` (when set and not empty) points every client at an emulated AWS
  (the embedded moto server, LocalStack).
* The region is ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1``.
* Clients are cached per (kind, service, region, endpoint): creating a boto3 client costs
  milliseconds and memory, so a warm Lambda reuses them. Creation is lazy: importing this module
  creates nothing.
* One botocore ``Config``: standard retry mode with a bounded number of attempts, short connect
  and read timeouts (a Lambda must not hang on a dead endpoint), a connection pool large enough
  for concurrent use from threads.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Final

import boto3
from botocore.config import Config

DEFAULT_REGION: Final = "us-east-1"

BOTO_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=50,
    tcp_keepalive=True,
)

_lock = threading.Lock()
_cache: dict[tuple[str, str, str, str | None], Any] = {}


def region() -> str:
    """The AWS region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_url() -> str | None:
    """``AWS_ENDPOINT_URL`` when set and not empty, else None (the real AWS)."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


def _get(kind: str, service: str) -> Any:
    key = (kind, service, region(), endpoint_url())
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(key)
        if found is None:
            session = boto3.session.Session(region_name=key[2])
            factory = session.client if kind == "client" else session.resource
            found = factory(service, endpoint_url=key[3], config=BOTO_CONFIG)
            _cache[key] = found
        return found


def client(service: str) -> Any:
    """A cached low-level client for ``service`` (``"dynamodb"``, ``"kinesis"``, ``"sqs"``...)."""
    return _get("client", service)


def resource(service: str) -> Any:
    """A cached boto3 resource for ``service`` (only ``dynamodb`` is used)."""
    return _get("resource", service)


def dynamodb_table(name: str) -> Any:
    """A DynamoDB ``Table`` resource (Decimal in and out, no float) for a physical table name."""
    return resource("dynamodb").Table(name)


def clear_clients() -> None:
    """Drop every cached client (tests switch endpoints and credentials between cases)."""
    with _lock:
        _cache.clear()
