"""Requests to the embedded AWS carry their credential scope without a signature; others are signed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSResponse

from nexus.local import signing

KEYS = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "secret", "region_name": "eu-west-1"}
SIGNED = re.compile(r"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/\d{8}/eu-west-1/dynamodb/aws4_request, "
                    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}")  # fmt: skip


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test installs is undone after it."""
    monkeypatch.setattr(SigV4Auth, "add_auth", SigV4Auth.add_auth)
    monkeypatch.setattr(signing, "_endpoints", ())
    monkeypatch.delenv(signing.ENDPOINT_ENV, raising=False)


def _headers_sent(client: Any) -> list[dict[str, str]]:
    sent: list[dict[str, str]] = []

    def keep(request: Any, **_: Any) -> None:
        sent.append({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    client.meta.events.register("before-send", keep)
    return sent


class _Answer:
    """The raw body of an answer no server gave: an empty table list."""

    @staticmethod
    def stream() -> Iterator[bytes]:
        yield b'{"TableNames": []}'


def _table(client: Any) -> None:
    client.create_table(TableName="signed", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")  # fmt: skip


def test_requests_to_the_embedded_aws_carry_the_scope_and_work_as_signed_ones(
    embedded_endpoint: str, restored: None
) -> None:
    # GIVEN the scope-only header installed for the embedded AWS (as nexus up does, from its variable)
    os.environ[signing.ENDPOINT_ENV] = embedded_endpoint
    assert signing.install()
    client = boto3.client("dynamodb", endpoint_url=embedded_endpoint, aws_session_token="token", **KEYS)
    sent = _headers_sent(client)
    # WHEN a table is made, an item put and read back
    _table(client)
    client.put_item(TableName="signed", Item={"pk": {"S": "a"}, "n": {"N": "1.50"}})
    item = client.get_item(TableName="signed", Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    # THEN the requests were served (in the region and account the scope names: the table is there)
    assert item == {"pk": {"S": "a"}, "n": {"N": "1.50"}}
    assert "signed" in client.list_tables()["TableNames"]
    elsewhere = boto3.client("dynamodb", endpoint_url=embedded_endpoint, **{**KEYS, "region_name": "us-east-2"})
    assert "signed" not in elsewhere.list_tables()["TableNames"]
    # ... each with the credential scope, no signature, and a signed request's other headers
    for headers in sent:
        date = headers["X-Amz-Date"]
        assert headers["Authorization"] == signing.scope_header("AKIAIOSFODNN7EXAMPLE", date, "eu-west-1", "dynamodb")
        assert headers["Authorization"].endswith("Signature=unsigned")
        assert headers["X-Amz-Security-Token"] == "token"
        assert re.fullmatch(r"\d{8}T\d{6}Z", date)


def test_requests_anywhere_else_are_signed(embedded_endpoint: str, restored: None) -> None:
    # GIVEN the scope-only header installed for the embedded AWS
    signing.install(embedded_endpoint)
    elsewhere = "http://127.0.0.1:9"  # another endpoint (LocalStack, say): answered below, never reached
    client = boto3.client("dynamodb", endpoint_url=elsewhere, **KEYS)
    sent = _headers_sent(client)
    client.meta.events.register("before-send", lambda **_: AWSResponse(elsewhere, 200, {}, _Answer()))
    # WHEN a request goes there
    client.list_tables()
    # THEN it carries a Signature Version 4 signature
    assert len(sent) == 1
    assert SIGNED.fullmatch(sent[0]["Authorization"])
    # AND so is a request to an endpoint whose address only starts like the embedded one's
    signing.install("http://127.0.0.1:456")
    longer = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:4567", **KEYS)
    sent = _headers_sent(longer)
    longer.meta.events.register("before-send", lambda **_: AWSResponse("http://127.0.0.1:4567", 200, {}, _Answer()))
    longer.list_tables()
    assert SIGNED.fullmatch(sent[0]["Authorization"])


def test_without_an_embedded_aws_nothing_is_installed(restored: None) -> None:
    # GIVEN no embedded endpoint (AWS_ENDPOINT_URL names LocalStack, or nothing does)
    before = SigV4Auth.add_auth
    # WHEN the worker's start asks for the scope-only header
    installed = signing.install()
    # THEN nothing changes: every request is signed
    assert installed is False
    assert SigV4Auth.add_auth is before
    assert signing.install("") is False


def test_lambda_workers_are_told_the_endpoint_is_the_embedded_aws_only_when_it_is() -> None:
    from nexus.local.lambdas import worker_base_env

    # GIVEN the environment nexus up gives its Lambda workers, for the embedded AWS and for another
    embedded = worker_base_env("http://127.0.0.1:4566", "us-east-1", embedded=True)
    other = worker_base_env("http://localstack:4566", "us-east-1")
    # THEN only the embedded one's workers send requests unsigned (``signing.install`` reads it)
    assert embedded[signing.ENDPOINT_ENV] == embedded["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert signing.ENDPOINT_ENV not in other


def test_the_local_platform_and_the_client_factory_name_the_same_variable() -> None:
    from nexus_common import aws

    assert signing.ENDPOINT_ENV == aws.EMBEDDED_AWS_ENV
