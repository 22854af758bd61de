"""One factory for AWS clients and resources.

* ``AWS_ENDPOINT_URL`` (when set and not empty) points every client at an emulated AWS
  (the embedded moto server, LocalStack).
* The region is ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1``.
* Clients are cached per (kind, service, region, endpoint): creating a boto3 client costs
  milliseconds and memory, so a warm Lambda reuses them. They come from one boto3 session per
  region (``session``), which keeps the service models it has read. Creation is lazy: importing
  this module creates nothing.
* One botocore ``Config``: standard retry mode with a bounded number of attempts, short connect
  and read timeouts (a Lambda must not hang on a dead endpoint), a connection pool large enough
  for concurrent use from threads.
* On the local platform's embedded AWS (``NEXUS_EMBEDDED_AWS``, which ``nexus up`` sets only for
  it) the SDK does not check each request's parameters against the service model before sending
  it (botocore's ``parameter_validation``): the check walks every attribute of every item written,
  a tenth of a local Lambda worker's CPU. The unit and integration tests (handlers run in the
  test's process) and every other AWS (LocalStack, AWS itself) keep it.
* The DynamoDB resource builds each thread's ``Key``/``Attr`` conditions apart
  (``ConditionsPerThread``): boto3's resource numbers the placeholders of every request with one
  counter, reset at each request, so two threads building at once can number theirs alike, and a
  request then names another's attribute or value (a query of the wrong key, or refused as
  missing one; a condition checked against the wrong value). The consumers send independent
  writes from several threads (``nexus_common.parallel``).
* Every request a client of this factory makes is counted, by (service, operation, resource),
  in one process-wide, thread-safe counter (``request_counts``): a botocore ``before-call`` hook,
  registered once when the client is made, so a benchmark or a metrics exporter sees every call
  of every service without the call sites doing anything. The resource is the table, queue or
  stream the request names (several tables, comma-separated, for a batch or a transaction).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any, Final

import boto3
from boto3.dynamodb.transform import TransformationInjector
from botocore.config import Config

DEFAULT_REGION: Final = "us-east-1"

BOTO_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=50,
    tcp_keepalive=True,
)

EMBEDDED_AWS_ENV: Final = "NEXUS_EMBEDDED_AWS"  # the endpoint of the local platform's embedded AWS, when it is
_EMBEDDED_CONFIG: Final = BOTO_CONFIG.merge(Config(parameter_validation=False))


def client_config() -> Config:
    """``BOTO_CONFIG``, without the SDK's parameter validation on the embedded AWS (see above)."""
    if os.environ.get(EMBEDDED_AWS_ENV):
        return _EMBEDDED_CONFIG
    return BOTO_CONFIG


_lock = threading.Lock()
_cache: dict[tuple[str, str, str, str | None], Any] = {}
_counts_lock = threading.Lock()
_counts: Counter[tuple[str, str, str]] = Counter()
_RESOURCE: Final = "nexus_resource"  # the key of the request context the resource is kept under


def region() -> str:
    """The AWS region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_url() -> str | None:
    """``AWS_ENDPOINT_URL`` when set and not empty, else None (the real AWS)."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


_sessions: dict[str, boto3.session.Session] = {}


def session(region_name: str) -> boto3.session.Session:
    """One boto3 session per region for the process. A session caches the service models and
    endpoint data it has read (tens of milliseconds of JSON per service), so every later client
    of that service is cheap. A session is not thread-safe: make clients under ``client_lock``."""
    with _session_lock:
        found = _sessions.get(region_name)
        if found is None:
            found = _sessions[region_name] = boto3.session.Session(region_name=region_name)
        return found


_session_lock = threading.Lock()
client_lock = threading.RLock()


def _get(kind: str, service: str) -> Any:
    key = (kind, service, region(), endpoint_url())
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock, client_lock:
        found = _cache.get(key)
        if found is None:
            shared = session(key[2])
            factory = shared.client if kind == "client" else shared.resource
            found = factory(service, endpoint_url=key[3], config=client_config())
            count_requests(found if kind == "client" else found.meta.client)
            if kind == "resource" and service == "dynamodb":
                ConditionsPerThread.install(found)
            _cache[key] = found
        return found


class ConditionsPerThread:
    """The handler that turns a DynamoDB resource's ``Key``/``Attr`` conditions into expressions
    and placeholders, with a ``TransformationInjector`` per thread: boto3's one per resource
    shares its placeholder counter among the threads (see the module docstring)."""

    EVENT: Final = "before-parameter-build.dynamodb"
    UNIQUE_ID: Final = "dynamodb-condition-expression"  # boto3's own handler's

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, params: Any, model: Any, **kwargs: Any) -> None:
        injector = getattr(self._local, "injector", None)
        if injector is None:
            injector = self._local.injector = TransformationInjector()
        injector.inject_condition_expressions(params, model, **kwargs)

    @classmethod
    def install(cls, resource: Any) -> None:
        """In place of boto3's handler, and first, as boto3's is: before the values it makes are
        serialized."""
        events = resource.meta.client.meta.events
        events.unregister(cls.EVENT, unique_id=cls.UNIQUE_ID)
        events.register_first(cls.EVENT, cls(), unique_id=cls.UNIQUE_ID)


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


def count_requests(client: Any) -> None:
    """Count every request ``client`` makes in ``request_counts`` (the factory does it for its
    own clients; a client made elsewhere, e.g. the WebSocket Management API's, is passed here)."""
    events = client.meta.events
    events.register("before-parameter-build", _remember_resource, unique_id="nexus-count-resource")
    events.register("before-call", _count_call, unique_id="nexus-count-call")


def request_counts() -> dict[tuple[str, str, str], int]:
    """The requests counted so far in this process: (service, operation, resource) -> count."""
    with _counts_lock:
        return dict(_counts)


def reset_request_counts() -> None:
    with _counts_lock:
        _counts.clear()


def _remember_resource(params: Any, context: Any, **_: Any) -> None:
    if isinstance(context, dict) and isinstance(params, dict):
        context[_RESOURCE] = resource_of(params)


def _count_call(model: Any, context: Any, **_: Any) -> None:
    resource = context.get(_RESOURCE, "") if isinstance(context, dict) else ""
    key = (str(model.service_model.service_name), str(model.name), str(resource))
    with _counts_lock:
        _counts[key] += 1


def resource_of(params: dict[str, Any]) -> str:
    """The table, queue or stream a request's parameters name ("" when none)."""
    for name in ("TableName", "StreamName", "QueueName"):
        value = params.get(name)
        if isinstance(value, str):
            return value
    for name in ("QueueUrl", "StreamARN"):
        value = params.get(name)
        if isinstance(value, str):
            return value.rstrip("/").rsplit("/", 1)[-1]
    tables: set[str] = set()
    items = params.get("RequestItems")
    if isinstance(items, dict):
        tables.update(str(name) for name in items)
    for entry in params.get("TransactItems") or ():
        if isinstance(entry, dict):
            for action in entry.values():
                if isinstance(action, dict) and "TableName" in action:
                    tables.add(str(action["TableName"]))
    return ",".join(sorted(tables))
