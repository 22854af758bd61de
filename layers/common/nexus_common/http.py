"""The HTTP edge for Chalice apps: one error body, strict bodies, the caller's account.

``install_error_handling(app)`` makes every answer of ``app`` that is not a success carry the
NexusTrade error body ``{"error": {"code", "message", "field"?}}``:

* ``NexusError`` (and subclasses) -> its status, code, message and field;
* client input validated with ``parse_body`` / ``parse_query`` / ``validate_input`` -> 400 with
  the first offending field named: ``unknown_field`` (a field the model does not have),
  ``missing_field``, ``invalid_decimal`` (``fields.WireDecimal``: not a JSON number, or beyond
  the digits/exponent/magnitude bounds), ``invalid_field`` (any other pydantic
  ``ValidationError`` is a bug: 500);
* malformed JSON (``jsonutil.JSONError`` or Chalice's ``BadRequestError``) -> 400
  ``malformed_json``;
* Chalice's own answers (415 ``unsupported_media_type``, 405 ``method_not_allowed``, ...) are
  rewritten into the same body; an unknown route answers 404 ``route_not_found``;
* anything unexpected -> 500 ``internal_error`` with no detail (the traceback goes to the log,
  redacted);
* before any view runs (``edge_refusal``): a body over ``MAX_BODY_BYTES`` -> 413
  ``payload_too_large``; a request the edge authorizer found over its rate limits (context
  ``retry_after`` > 0) -> 429 ``rate_limited`` with ``Retry-After``. A ``NexusError`` with a
  ``retry_after`` (``nexus_common.ratelimit.RateLimited``) also answers with ``Retry-After``.

Chalice catches every exception a view raises and answers its own 500, so the errors cannot be
mapped by a middleware alone: the middleware wraps the matched route's view function (once) in
``guard_view``, which turns exceptions into responses, and rewrites Chalice's own error
responses on the way out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from aws_lambda_powertools import Logger
from chalice.app import (
    BadRequestError,
    Chalice,
    ChaliceViewError,
    Request,
    Response,
)
from pydantic import BaseModel, ValidationError

from nexus_common.errors import NexusError, Unauthorized, ValidationFailed, error_body
from nexus_common.jsonutil import JSONError, dumps, loads

M = TypeVar("M", bound=BaseModel)

JSON_HEADERS: Final = {"Content-Type": "application/json"}
_WRAPPED_MARK: Final = "__nexus_guarded__"

_CHALICE_CODES: Final = {
    "UnsupportedMediaType": "unsupported_media_type",
    "MethodNotAllowedError": "method_not_allowed",
    "BadRequest": "bad_request",
    "BadRequestError": "bad_request",
    "InternalServerError": "internal_error",
    "NotFoundError": "not_found",
    "UnauthorizedError": "unauthorized",
    "ForbiddenError": "forbidden",
    "ConflictError": "conflict",
    "TooManyRequestsError": "too_many_requests",
}

# pydantic error types that are NexusTrade error codes as they are (``fields.wire_decimal``).
_CODED_ERRORS: Final = frozenset({"invalid_decimal"})

_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_default_logger: Logger | None = None


def _logger() -> Logger:
    global _default_logger
    if _default_logger is None:
        from nexus_common.logging import get_logger

        _default_logger = get_logger()
    return _default_logger


# -- responses -------------------------------------------------------------------------------


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialized with ``jsonutil.dumps`` (Decimal as canonical strings)."""
    return Response(
        body=dumps(body), status_code=status, headers={**JSON_HEADERS, **(headers or {})}
    )


def error_response(code: str, message: str, status: int, field: str | None = None) -> Response:
    return json_response(error_body(code, message, field), status=status)


def validation_error_to_nexus(exc: ValidationError) -> NexusError:
    """Map the first pydantic error to ``unknown_field`` / ``missing_field`` / ``invalid_field``."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return ValidationFailed("invalid_request", "the request is not valid")
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "extra_forbidden":
        return ValidationFailed("unknown_field", f"unknown field: {field}", field)
    if kind == "missing":
        return ValidationFailed("missing_field", f"missing required field: {field}", field)
    message = str(first["msg"])
    if kind in _CODED_ERRORS:  # a validator that names its own code (PydanticCustomError)
        return ValidationFailed(kind, f"{field}: {message}" if field else message, field)
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ValidationFailed("invalid_field", message, field)


def exception_to_response(exc: BaseException, logger: Logger | None = None) -> Response:
    """The one mapping from an exception to an error response."""
    if isinstance(exc, NexusError):
        if exc.status >= 500:
            (logger or _logger()).warning(
                "request failed", extra={"code": exc.code, "status": exc.status}
            )
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int):
            return json_response(
                error_body(exc.code, exc.message, exc.field), exc.status, {"Retry-After": str(retry_after)}
            )
        return error_response(exc.code, exc.message, exc.status, exc.field)
    if isinstance(exc, JSONError):
        return error_response("malformed_json", str(exc), 400)
    if isinstance(exc, BadRequestError) and "JSON" in str(exc):
        return error_response("malformed_json", "malformed JSON body", 400)
    if isinstance(exc, ChaliceViewError):
        status = int(getattr(exc, "STATUS_CODE", 500))
        code = _CHALICE_CODES.get(type(exc).__name__, _snake(type(exc).__name__))
        if status >= 500:
            (logger or _logger()).exception("unhandled Chalice error")
            return error_response("internal_error", "internal error", 500)
        return error_response(code, str(exc) or code.replace("_", " "), status)
    (logger or _logger()).exception("unhandled error")
    return error_response("internal_error", "internal error", 500)


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name.removesuffix("Error")).lower() or "error"


def _normalize(response: Response) -> Response:
    """Rewrite Chalice's own error answers (``{"Code", "Message"}``) into the NexusTrade body."""
    status = int(response.status_code)
    if status < 400:
        return response
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        chalice_code = str(body["Code"])
        if status >= 500:
            return error_response("internal_error", "internal error", status)
        code = _CHALICE_CODES.get(chalice_code, _snake(chalice_code))
        headers = {k: str(v) for k, v in response.headers.items() if k.lower() != "content-type"}
        return json_response(error_body(code, str(body["Message"])), status, headers)
    if status >= 500 and not (isinstance(body, str) and body.startswith('{"error"')):
        # e.g. Chalice's debug-mode plain-text stack trace: never leak it.
        return error_response("internal_error", "internal error", status)
    return response


# -- installing on an app --------------------------------------------------------------------


def guard_view(view: Callable[..., Any], logger: Logger | None = None) -> Callable[..., Any]:
    """Wrap a view so that any exception becomes an error response (see module docstring)."""
    if getattr(view, _WRAPPED_MARK, False):
        return view

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the HTTP boundary: every error becomes an error body, a 5xx logged
            return exception_to_response(exc, logger)

    setattr(guarded, _WRAPPED_MARK, True)
    return guarded


MAX_BODY_BYTES: Final = 64 * 1024


def edge_refusal(request: Request) -> Response | None:
    """What the edge refuses before any view runs: a body over ``MAX_BODY_BYTES`` (413), a
    request the authorizer found over its rate limits (its context ``retry_after`` > 0: 429), and
    one it could not check while Redis is down on a fail-closed route (``limits: unavailable``:
    503 with ``Retry-After``)."""
    raw = request.raw_body
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        return error_response("payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
    context = request.context if isinstance(request.context, dict) else {}
    authorizer = context.get("authorizer")
    wait = authorizer.get("retry_after") if isinstance(authorizer, dict) else None
    if isinstance(authorizer, dict) and authorizer.get("limits") == "unavailable":  # fails closed
        seconds = str(int(wait)) if wait is not None and str(wait).isdigit() and int(wait) > 0 else "1"
        return json_response(
            error_body("rate_limiter_unavailable", "rate limits cannot be checked; try again shortly"),
            503,
            {"Retry-After": seconds},
        )
    if wait is not None and str(wait).isdigit() and int(wait) > 0:
        return json_response(
            error_body("rate_limited", "too many requests"), 429, {"Retry-After": str(int(wait))}
        )
    return None


def install_error_handling(app: Chalice, logger: Logger | None = None) -> None:
    """Give every answer of ``app`` the NexusTrade error body (call once, after ``Chalice()``)."""

    def nexus_errors(request: Request | None, get_response: Callable[..., Response]) -> Response:
        try:
            if request is not None:
                methods = app.routes.get(request.path)
                if not methods:
                    return error_response("route_not_found", "no such route", 404)
                entry = methods.get(request.method)
                if entry is not None and not getattr(entry.view_function, _WRAPPED_MARK, False):
                    entry.view_function = guard_view(entry.view_function, logger)
                refused = edge_refusal(request)
                if refused is not None:
                    return refused
            return _normalize(get_response(request))
        except Exception as exc:  # noqa: BLE001 - the HTTP boundary: every error becomes an error body, a 5xx logged
            return exception_to_response(exc, logger)

    app.register_middleware(nexus_errors, "http")


# -- reading the request ---------------------------------------------------------------------


def _request(request: Request | None) -> Request:
    if request is None:
        raise RuntimeError("no current request: call from inside a Chalice route")
    return request


def parse_body(request: Request | None, model: type[M]) -> M:
    """The JSON body of ``request`` as ``model`` (declare ``extra="forbid"`` on it).

    Numbers are parsed as ``Decimal``/``int`` (never float); NaN, duplicate keys and deep
    nesting are refused. Raises ``ValidationFailed`` (400): ``malformed_json``, or
    ``unknown_field`` / ``missing_field`` / ``invalid_field`` naming the field.
    """
    raw = _request(request).raw_body
    if not raw or not raw.strip():
        raise ValidationFailed("malformed_json", "the request body must be a JSON object")
    try:
        data = loads(raw)
    except JSONError as exc:
        raise ValidationFailed("malformed_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ValidationFailed("malformed_json", "the request body must be a JSON object")
    return validate_input(model, data)


def parse_query(request: Request | None, model: type[M]) -> M:
    """The query string of ``request`` as ``model`` (last value wins for a repeated name)."""
    params = _request(request).query_params
    data: dict[str, Any] = {}
    if params is not None:
        for name in params:
            data[name] = params.get(name)
    return validate_input(model, data)


def validate_input(model: type[M], data: Any) -> M:
    """Validate client input: a pydantic error becomes ``ValidationFailed`` (400, field named).

    Only client input goes through here: a ``ValidationError`` raised anywhere else (say, an
    item read back from a table) is a bug and answers 500.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_nexus(exc) from None


def caller_account_id(request: Request | None) -> str:
    """The ``account_id`` the API key authorizer put in the request context; 401 if absent."""
    raw_context = _request(request).context
    context = raw_context if isinstance(raw_context, dict) else {}
    authorizer = context.get("authorizer")
    account_id = authorizer.get("account_id") if isinstance(authorizer, dict) else None
    if not isinstance(account_id, str) or not account_id:
        raise Unauthorized("unauthorized", "missing or invalid credentials")
    return account_id
