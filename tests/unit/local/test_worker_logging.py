"""What a Lambda execution environment logs when an invocation fails: an authorizer's ordinary 401
is one INFO line (the authorizer's, with its reason) and no traceback; an unexpected error keeps
its traceback."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from nexus.local.worker import serve

ROOT = Path(__file__).resolve().parents[3]
AUTHORIZER = {
    "function_name": "nexus-test-authorizer",
    "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:nexus-test-authorizer",
    "handler": "nexus_auth.authorizer.handler",
    "code_uri": str(ROOT / "functions" / "auth"),
    "layers": [str(ROOT / "layers" / "common")],
    "timeout": 10,
    "memory": 512,
}
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:local-api/api/GET/v1/portfolio"


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    answers = io.StringIO()
    serve(AUTHORIZER, io.StringIO(json.dumps(event) + "\n"), answers)
    ready, answer = (json.loads(line) for line in answers.getvalue().splitlines())
    assert ready == {"ready": True}
    return dict(answer)


def worker_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "nexus.local.worker"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not-a-credential"}],
)
def test_an_ordinary_401_is_one_info_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="nexus.local.worker")
    stderr = io.StringIO()  # where the environment used to print every failure's traceback
    monkeypatch.setattr("sys.stderr", stderr)
    # GIVEN the edge authorizer in an execution environment
    # WHEN a request comes without usable credentials
    answer = invoke({"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers})
    # THEN the function answers Unauthorized (API Gateway's 401) ...
    assert answer["error"]["errorMessage"] == "Unauthorized"
    # ... and the log holds one INFO line for it (the authorizer's reason), no traceback anywhere
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.levelname, r.exc_info) for r in shown] == [("INFO", None)]
    assert shown[0].getMessage().startswith("denied")
    (runtime,) = worker_records(caplog)
    assert (runtime.levelno, runtime.getMessage()) == (logging.DEBUG, "nexus-test-authorizer: Unauthorized (401)")
    assert "Traceback" not in caplog.text and "Traceback" not in stderr.getvalue()


def test_an_unexpected_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nexus.local.worker")
    # GIVEN the edge authorizer in an execution environment
    # WHEN it is invoked with an event it cannot read (no methodArn: a bug, not a 401)
    answer = invoke({"type": "REQUEST", "headers": {}})
    # THEN the function fails with that error, and the log has it as an ERROR with its traceback
    assert answer["error"]["errorType"] == "KeyError"
    (record,) = worker_records(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "Traceback" in caplog.text and "KeyError: 'methodArn'" in caplog.text
