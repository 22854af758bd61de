"""Structured logs (Powertools ``Logger``) that never carry a secret.

Every log record is redacted just before it is written, whatever its shape:

* a value under a sensitive key (``authorization``, ``x-api-key``, ``api_key``, ``password``,
  ``token``, ``secret``, ``cookie``, ``credential`` ... case-insensitive, ``-`` same as ``_``,
  at any depth of dicts and lists) becomes ``"***"``;
* inside any string (messages, exception text, stack traces): ``Bearer <token>`` becomes
  ``Bearer ***``, NexusTrade API keys (``nxk_...``) become ``nxk_***``, refresh tokens
  (``nxr_...``) ``nxr_***`` and JWTs (``eyJ...``) ``eyJ***``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

R = TypeVar("R")

REDACTED: Final = "***"

_SENSITIVE_KEY_PARTS: Final = (
    "authorization",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "passphrase",
    "token",
    "secret",
    "cookie",
    "credential",
    "private_key",
    "signature",
)
_BEARER: Final = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")
_API_KEY: Final = re.compile(r"\bnxk_[A-Za-z0-9_\-]+")
_REFRESH_TOKEN: Final = re.compile(r"\bnxr_[A-Za-z0-9_.\-]+")
_JWT: Final = re.compile(r"\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_KEY_VALUE: Final = re.compile(
    r"(?i)([\"']?(?:x[-_])?(?:api[-_]?key|password|secret|token|authorization)[\"']?\s*[:=]\s*)"
    r"(?:(?:bearer|basic)\s+)?(?:[\"'][^\"']*[\"']|[^\s,;}&]+)"
)
_MAX_DEPTH: Final = 20


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("-", "_")
    return any(part in normalized for part in _SENSITIVE_KEY_PARTS)


def redact_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _JWT.sub("eyJ" + REDACTED, text)
    text = _REFRESH_TOKEN.sub("nxr_" + REDACTED, text)
    return _API_KEY.sub("nxk_" + REDACTED, text)


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secrets replaced by ``***`` (see module docstring)."""
    if _depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_sensitive_key(k) else redact(v, _depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", errors="replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (an exception object, a model...) is written with str(): redact that text.
    return redact_text(str(value))


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that redacts the whole structured record before writing it."""

    def serialize(self, log: Any) -> str:
        redacted = redact(log)
        return super().serialize(log=redacted)


def get_logger(service: str | None = None, level: str | int | None = None, **kwargs: Any) -> Logger:
    """A Powertools ``Logger`` with the redacting formatter and UTC timestamps.

    ``service`` defaults to ``POWERTOOLS_SERVICE_NAME``; ``level`` to ``POWERTOOLS_LOG_LEVEL``.
    """
    return Logger(
        service=service,
        level=level,
        logger_formatter=RedactingFormatter(utc=True, use_rfc3339=True),
        **kwargs,
    )


_CONTEXT_KEYS: Final = (
    ("function_request_id", "aws_request_id"),
    ("function_name", "function_name"),
    ("function_arn", "invoked_function_arn"),
)


def with_lambda_context(
    logger: Logger,
) -> Callable[[Callable[[Any, Any], R]], Callable[[Any, Any], R]]:
    """Decorator for ``handler(event, context)``: adds the request id and function name to every
    log line of the invocation. Unlike Powertools' ``inject_lambda_context`` it tolerates a
    partial context (the local runtime, tests)."""

    def decorate(handler: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> R:
            keys = {
                key: value
                for key, attribute in _CONTEXT_KEYS
                if isinstance(value := getattr(context, attribute, None), str)
            }
            logger.append_keys(**keys)
            try:
                return handler(event, context)
            finally:
                logger.remove_keys(list(keys))

        return wrapper

    return decorate
