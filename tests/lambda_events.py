"""Builders of the Lambda events the service handlers receive (API Gateway REST proxy with an
authorizer context, WebSocket routes, Kinesis, SQS), and a Lambda context: the one builder every service test uses."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/nexus-test-execution-events"
EVENTS_DIR = Path(__file__).resolve().parent / "events"


def load_event(name: str) -> Any:
    """A JSON fixture from ``tests/events/``."""
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def rest_event(
    method: str,
    resource: str,
    *,
    path_params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    account_id: str | None = "acc_test",
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as Chalice reads it, with the authorizer context."""
    event = copy.deepcopy(load_event("apigw_rest_request.json"))
    path = resource
    for name, value in (path_params or {}).items():
        path = path.replace("{" + name + "}", value)
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    event.update(
        resource=resource,
        path=path,
        httpMethod=method,
        headers=all_headers,
        multiValueHeaders={k: [v] for k, v in all_headers.items()},
        queryStringParameters=query,
        multiValueQueryStringParameters=(
            {k: [v] for k, v in query.items()} if query is not None else None
        ),
        pathParameters=path_params,
        body=raw_body,
    )
    context = event["requestContext"]
    context.update(resourcePath=resource, httpMethod=method, path=f"/api{path}")
    if account_id is None:
        context.pop("authorizer", None)
    else:
        context["authorizer"] = {"account_id": account_id, "key_id": "nxk_testtest"}
    return event


def call(app: Any, event: dict[str, Any]) -> tuple[int, Any]:
    """Invoke a Chalice app with a proxy event; returns (status, parsed JSON body)."""
    response = app(event, FakeLambdaContext())
    body = response["body"]
    return response["statusCode"], json.loads(body) if body else None


def kinesis_record(payload: Any, seq_number: str, partition_key: str = "AAPL") -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq_number,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1700000000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{seq_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


def kinesis_event(*payloads: Any) -> dict[str, Any]:
    """A Kinesis event with one record per payload (each ``{"events": [...]}``)."""
    return {
        "Records": [
            kinesis_record(payload, f"4959{i:020d}") for i, payload in enumerate(payloads, start=1)
        ]
    }


def ws_event(route: str, connection_id: str, account_id: str = "acc_taker", body: Any = None) -> dict[str, Any]:
    """A WebSocket API route's event (``$connect``, ``$disconnect`` or a message route) from a
    connection the authorizer let in for ``account_id``."""
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection_id,
            "authorizer": {"account_id": account_id, "accounts": account_id, "principalId": account_id},
        },
        "body": json.dumps(body) if body is not None else None,
    }


def sqs_event(*bodies: Any) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies, start=1):
        records.append(
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nexus-test-notifications",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}
