"""One Lambda execution environment: a process that imports one handler and invokes it.

Started by ``nexus.local.lambdas`` with exactly the environment the template gives the function.
Requests arrive as JSON lines on stdin; each answer is one JSON line on the original stdout
(``{"ok": result}`` or ``{"error": {"errorType", "errorMessage", "stackTrace"}}``). Anything the
handler prints or logs goes to stderr, like CloudWatch Logs.

A failed invocation is logged with its traceback, except an authorizer's ``Unauthorized``: that
is how a Lambda authorizer answers 401 to every request without usable credentials (ordinary
traffic, not a failure). The authorizer logs that 401 as one INFO line with its reason; the
runtime adds only a DEBUG line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from typing import Any, TextIO

from nexus.local import http_headers, signing, transport

log = logging.getLogger("nexus.local.worker")


class LambdaContext:
    """The fields of the Lambda context object that handlers and Powertools read."""

    def __init__(self, spec: dict[str, Any], deadline: float) -> None:
        self.function_name = spec["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec["function_arn"]
        self.memory_limit_in_mb = int(spec["memory"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_handler(spec: dict[str, Any]) -> Any:
    for path in reversed([spec["code_uri"], *spec["layers"]]):
        sys.path.insert(0, path)
    module_name, _, attribute = spec["handler"].rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _is_unauthorized(exc: BaseException) -> bool:
    """The answer API Gateway turns into 401: an authorizer's ``Exception("Unauthorized")``."""
    return str(exc) == "Unauthorized"


def serve(spec: dict[str, Any], requests: TextIO, answers: TextIO) -> None:
    try:
        handler = _load_handler(spec)
    except Exception as exc:  # noqa: BLE001 - whatever the import raises is the function's cold-start failure
        answers.write(json.dumps({"init_error": _error(exc)}) + "\n")
        answers.flush()
        return
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        event = json.loads(line)
        context = LambdaContext(spec, time.monotonic() + float(spec["timeout"]))
        try:
            result = handler(event, context)
            answer = json.dumps({"ok": result}, default=str)
        except Exception as exc:  # reported to the caller as a function error, as Lambda does
            if _is_unauthorized(exc):
                log.debug("%s: Unauthorized (401)", spec["function_name"])
            else:
                log.error("%s: %s: %s", spec["function_name"], type(exc).__name__, exc, exc_info=exc)
            answer = json.dumps({"error": _error(exc)})
        answers.write(answer + "\n")
        answers.flush()


def main() -> None:
    spec = json.loads(os.environ.pop("NEXUS_WORKER_SPEC"))
    # Keep the real stdout for answers; send everything else the handler prints to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log.addHandler(to_stderr)
    log.setLevel(logging.INFO)
    log.propagate = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime decides when a worker stops
    signal.signal(signal.SIGTERM, lambda signum, frame: _exit_now())
    http_headers.install()  # the handler's SDK calls to the embedded AWS
    signing.install()  # ... which carry their credential scope, unsigned (when the AWS is the embedded one)
    transport.install()  # ... over lean HTTP connections (the same condition)
    serve(spec, sys.stdin, answers)
    _exit_now()  # end of requests: the runtime is stopping


def _exit_now() -> None:
    """Exit at once, even in the middle of an invocation (the runtime is stopping, as Lambda
    freezes an environment): flush what the handler wrote, and skip the interpreter's teardown
    of the handler's modules (boto3, pydantic, ...), which takes a second or more per worker
    when every worker of the platform stops at the same time."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
