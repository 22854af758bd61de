"""settings (fail fast, lazy) and aws (endpoint, region, cache)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
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
