"""logging: no secret reaches a log line, whatever shape it has."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from nexus_common.logging import get_logger, redact, with_lambda_context

API_KEY = "nxk_" + "A" * 43
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def capture() -> tuple[Any, io.StringIO]:
    stream = io.StringIO()
    logger = get_logger(service=f"test-{uuid.uuid4().hex}", level="DEBUG", stream=stream)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_sensitive_keys_are_redacted_case_insensitively_at_any_depth() -> None:
    # GIVEN a record with secrets under various keys, nested in dicts and lists
    logger, stream = capture()
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "X-Api-Key": "k-123",
        "Content-Type": "application/json",
    }
    # WHEN it is logged as extra keys and as a dict message
    logger.info(
        "request",
        extra={
            "headers": headers,
            "body": {"user": {"PASSWORD": "hunter2", "api_key": "k", "name": "alice"}},
            "items": [{"client_secret": "s3"}, {"access_token": "t0k"}],
        },
    )
    logger.info({"event": {"headers": headers}, "Token": "abc"})
    # THEN no secret is in the output, and the harmless values are
    output = stream.getvalue()
    for secret in (API_KEY, "k-123", "hunter2", "s3", "t0k", '"abc"'):
        assert secret not in output
    first, second = lines(stream)
    assert first["headers"]["Authorization"] == "***"
    assert first["headers"]["X-Api-Key"] == "***"
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["body"]["user"] == {"PASSWORD": "***", "api_key": "***", "name": "alice"}
    assert second["message"]["event"]["headers"]["Authorization"] == "***"
    assert second["message"]["Token"] == "***"


def test_bearer_tokens_and_api_keys_inside_strings_are_redacted() -> None:
    logger, stream = capture()
    logger.info("got header Authorization: Bearer %s from client", JWT)
    logger.info("upstream said: Bearer %s is expired", JWT)
    logger.warning(f"retrying with key {API_KEY}")
    logger.info("config password=hunter2 secret: 'xyz' token=abc&next=1")
    output = stream.getvalue()
    for secret in (JWT, API_KEY, "hunter2", "xyz", "token=abc"):
        assert secret not in output
    messages = [line["message"] for line in lines(stream)]
    assert messages[0] == "got header Authorization: *** from client"
    assert messages[1] == "upstream said: Bearer *** is expired"
    assert "nxk_***" in messages[2]
    assert "next=1" in messages[3]


def test_exceptions_and_tracebacks_are_redacted() -> None:
    logger, stream = capture()
    try:
        raise RuntimeError(f"upstream rejected Bearer {JWT}")
    except RuntimeError:
        logger.exception("call failed")
    output = stream.getvalue()
    assert JWT not in output
    assert "Bearer ***" in output


def test_redact_leaves_other_values_alone() -> None:
    value = {"order_id": "o-1", "quantity": "10", "key_id": "nxk_abcd", "n": 3, "ok": True}
    assert redact(value) == {**value, "key_id": "nxk_***"}
    assert redact(["a", ("b", {"secret": 1})]) == ["a", ["b", {"secret": "***"}]]


def test_lambda_context_keys_are_added_for_the_invocation_only() -> None:
    logger, stream = capture()

    class Context:
        aws_request_id = "req-1"
        function_name = "fn"

    @with_lambda_context(logger)
    def handler(event: Any, context: Any) -> str:
        logger.info("inside")
        return "ok"

    assert handler({}, Context()) == "ok"
    assert handler({}, None) == "ok"
    logger.info("outside")
    inside, inside_no_context, outside = lines(stream)
    assert inside["function_request_id"] == "req-1"
    assert "function_request_id" not in inside_no_context
    assert "function_request_id" not in outside
