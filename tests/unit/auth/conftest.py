"""Fixtures of the identity tests: moto tables from the template, a real Redis (a redis-server from
nexus.local.redis_server), and an in-process edge that runs a request through the real authorizer
and then the real Chalice app, as API Gateway does (401 when the authorizer refuses, 403 when its
policy does not allow the method, else the authorizer's context in ``requestContext.authorizer``)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, rest_event

from nexus.local.apigw import _allows
from nexus.local.redis_server import RedisServer

METHOD_ARN_BASE = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/api"
STRONG_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


class AuthorizerClock:
    """The monotonic clock of the authorizer's kept credential items (``RecentCredentials``)."""

    now = 0.0


def use_authorizer_clock() -> None:
    """Give the (possibly rebuilt) authorizer the tests' clock; call before each authorization."""
    from nexus_auth import authorizer

    authorizer.store().clock = lambda: AuthorizerClock.now


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Edge:
    """API Gateway in process: authorizer first (unless the route is public), then the app."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        AuthorizerClock.now = 0.0

    def pass_authorizer_bound(self) -> None:
        """Move the authorizer's clock past the time it keeps a good key, session or user item."""
        AuthorizerClock.now += float(os.environ["AUTHORIZER_CACHE_SECONDS"]) + 0.001

    def event(
        self,
        method: str,
        resource: str,
        *,
        path_params: dict[str, str] | None = None,
        body: Any = None,
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
        source_ip: str = "198.51.100.7",
    ) -> dict[str, Any]:
        event = rest_event(method, resource, path_params=path_params, body=body, raw_body=raw_body, headers=headers,
                           account_id=None)  # fmt: skip
        context = event["requestContext"]
        context["identity"] = {"sourceIp": source_ip, "userAgent": "pytest"}
        return event

    def authorize(self, event: dict[str, Any]) -> Answer | dict[str, Any]:
        from nexus_auth import authorizer

        use_authorizer_clock()
        method_arn = f"{METHOD_ARN_BASE}/{event['httpMethod']}{event['path']}"
        auth_event = {"type": "REQUEST", "methodArn": method_arn, **{k: v for k, v in event.items() if k != "body"}}
        try:
            policy = authorizer.handler(auth_event, FakeLambdaContext())
        except Exception as exc:
            if str(exc) == "Unauthorized":
                return Answer(401, {"error": {"code": "unauthorized", "message": "missing or invalid credentials"}}, {})
            raise
        if not _allows(policy.get("policyDocument") or {}, method_arn):
            return Answer(403, {"error": {"code": "forbidden", "message": "access denied"}}, {})
        return dict(policy["context"])

    def call(
        self,
        app: Any,
        method: str,
        resource: str,
        *,
        credential: str | None = None,
        public: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Answer:
        all_headers = dict(headers or {})
        if credential is not None:
            all_headers["Authorization"] = f"Bearer {credential}"
        event = self.event(method, resource, headers=all_headers, **kwargs)
        if not public:
            context = self.authorize(event)
            if isinstance(context, Answer):
                return context
            event["requestContext"]["authorizer"] = context
        response = app(event, FakeLambdaContext())
        raw = response.get("body") or ""
        if response.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return Answer(int(response["statusCode"]), parsed, dict(response.get("headers") or {}))

    def audit_events(self) -> list[dict[str, Any]]:
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        stream = self.aws.stream_name("AuditEventsStream")
        events: list[dict[str, Any]] = []
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            events.extend(json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=iterator)["Records"])
        return events

    def audit_kinds(self) -> list[str]:
        return [e["kind"] for e in self.audit_events()]


@pytest.fixture
def edge(aws: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Edge:
    """The auth functions' environment (from the template), Redis, cheap argon2 for speed."""
    for function_id in ("AuthorizerFunction", "AuthApiFunction", "AdminApiFunction"):
        aws.use_function_env(function_id)
    from nexus_common.settings import reset_lazy

    reset_lazy()  # a cold authorizer: nothing kept from another test
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "1024")
    import redis
    from nexus_common.redis_store import reset_redis_client

    redis.Redis.from_url(redis_url).flushall()
    reset_redis_client()
    return Edge(aws)


def register_and_login(edge: Edge, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
    from nexus_auth import api

    answer = edge.call(api.app, "POST", "/v1/auth/register", public=True, body={"email": email, "password": password})
    assert answer.status == 202, answer.body
    login = edge.call(api.app, "POST", "/v1/auth/login", public=True, body={"email": email, "password": password})
    assert login.status == 200, login.body
    return dict(login.body)
