"""settings (fail fast, lazy) and aws (endpoint, region, cache)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr, Equals
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ParamValidationError
from nexus_common import aws
from nexus_common.settings import NexusSettings, SettingsError, lazy, lazy_settings, reset_lazy


class ExampleSettings(NexusSettings):
    orders_table: str
    order_commands_stream: str


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_TABLE", "nexus-x-orders")
    monkeypatch.setenv("ORDER_COMMANDS_STREAM", "nexus-x-order-commands")
    settings = lazy_settings(ExampleSettings)
    assert settings().orders_table == "nexus-x-orders"
    assert settings() is settings()


def test_missing_or_empty_variables_fail_naming_every_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_TABLE", raising=False)
    monkeypatch.setenv("ORDER_COMMANDS_STREAM", "")
    settings = lazy_settings(ExampleSettings)
    with pytest.raises(SettingsError) as caught:
        settings()
    assert "ORDERS_TABLE" in str(caught.value)
    assert "ORDER_COMMANDS_STREAM" in str(caught.value)


def test_nothing_is_read_until_first_use_and_reset_rebuilds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    value = lazy(lambda: calls.append(1) or len(calls))
    assert calls == []
    assert value() == 1
    assert value() == 1
    reset_lazy()
    assert value() == 2


def test_region_and_endpoint_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert aws.region() == "us-east-1"
    assert aws.endpoint_url() is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert aws.region() == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert aws.region() == "eu-central-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    assert aws.endpoint_url() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert aws.endpoint_url() == "http://127.0.0.1:5000"


def test_clients_are_cached_per_service_region_and_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    aws.clear_clients()
    try:
        first = aws.client("dynamodb")
        assert aws.client("dynamodb") is first
        assert first.meta.endpoint_url == "http://127.0.0.1:5999"
        assert first.meta.region_name == "us-east-1"
        assert first.meta.config.retries["mode"] == "standard"
        assert first.meta.config.max_pool_connections == 50
        assert aws.client("sqs") is not first
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        other = aws.client("dynamodb")
        assert other is not first and other.meta.region_name == "eu-west-1"
        table = aws.dynamodb_table("t")
        assert table.name == "t"
    finally:
        aws.clear_clients()


class _Body:
    """An HTTP body for ``AWSResponse``: an empty JSON object."""

    def stream(self, **_: object) -> Iterator[bytes]:
        yield b"{}"


def test_the_sdk_checks_parameters_except_against_the_local_platforms_embedded_aws(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.delenv(aws.EMBEDDED_AWS_ENV, raising=False)
    wrong = {"TableName": "t", "Item": {"k": {"S": 5}}}  # a number where the model says string
    sent: list[bytes] = []

    def answer(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        sent.append(request.body)
        return AWSResponse(request.url, 200, {}, _Body())

    aws.clear_clients()
    try:
        # GIVEN any AWS but the embedded one: the SDK refuses the request unsent
        checked = aws.client("dynamodb")
        checked.meta.events.register("before-send.dynamodb.PutItem", answer)
        with pytest.raises(ParamValidationError):
            checked.put_item(**wrong)
        assert sent == []
        # WHEN the AWS is the local platform's embedded one: the request is sent as given
        monkeypatch.setenv(aws.EMBEDDED_AWS_ENV, "http://127.0.0.1:5999")
        aws.clear_clients()
        unchecked = aws.client("dynamodb")
        unchecked.meta.events.register("before-send.dynamodb.PutItem", answer)
        unchecked.put_item(**wrong)
        assert len(sent) == 1 and json.loads(sent[0])["Item"] == {"k": {"S": 5}}
        assert unchecked.meta.config.retries["mode"] == "standard"  # the rest of the configuration kept
    finally:
        aws.clear_clients()


class _Gate(Equals):
    """An equality whose expression is given only once ``release`` is set (after setting
    ``reached``): the thread building its request's condition stops in the middle of it."""

    def __init__(self, attribute: Attr, value: object, reached: threading.Event, release: threading.Event) -> None:
        super().__init__(attribute, value)
        self.reached, self.release = reached, release

    def __deepcopy__(self, memo: dict[int, object]) -> _Gate:  # boto3 copies a request's parameters
        return self

    def get_expression(self) -> dict[str, Any]:
        self.reached.set()
        assert self.release.wait(10)
        expression: dict[str, Any] = super().get_expression()
        return expression


def _resolved(body: dict[str, Any]) -> str:
    """The request's condition with each placeholder replaced by the name or number it stands for."""
    names, values = body["ExpressionAttributeNames"], body["ExpressionAttributeValues"]
    return re.sub(r"#n\d+|:v\d+", lambda m: names[m[0]] if m[0][0] == "#" else values[m[0]]["N"],
                  body["ConditionExpression"])  # fmt: skip


def test_threads_building_conditions_at_once_each_send_their_own(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    sent: dict[str, dict[str, Any]] = {}  # thread name -> the request's body

    def answer(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        sent[threading.current_thread().name] = json.loads(request.body)
        return AWSResponse(request.url, 200, {}, _Body())

    aws.clear_clients()
    try:
        table = aws.dynamodb_table("t")
        table.meta.client.meta.events.register("before-send.dynamodb.PutItem", answer)
        # GIVEN a write whose thread stopped building its condition after two of its three terms
        reached, release = threading.Event(), threading.Event()
        condition = Attr("a").eq(1) & Attr("b").eq(2) & _Gate(Attr("c"), 3, reached, release)
        writer = threading.Thread(target=lambda: table.put_item(Item={"k": "1"}, ConditionExpression=condition),
                                  name="stopped")  # fmt: skip
        writer.start()
        assert reached.wait(10)
        # WHEN another thread sends a conditional write through the same table meanwhile
        table.put_item(Item={"k": "2"}, ConditionExpression=Attr("z").eq(9))
        release.set()
        writer.join(10)
        # THEN each request holds its own condition, every term with its own name and value
        assert _resolved(sent["stopped"]) == "((a = 1 AND b = 2) AND c = 3)"
        assert _resolved(sent[threading.current_thread().name]) == "z = 9"
    finally:
        release.set()
        aws.clear_clients()
