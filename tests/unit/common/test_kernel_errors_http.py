"""errors + http: every non-success answer of a Chalice app carries the one error body."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from chalice import BadRequestError, Chalice, Response
from nexus_common.errors import (
    Conflict,
    Forbidden,
    NexusError,
    NotFound,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    error_body,
)
from nexus_common.fields import WireDecimal
from nexus_common.http import (
    caller_account_id,
    install_error_handling,
    json_response,
    parse_body,
    parse_query,
)
from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str
    quantity: WireDecimal = Field(gt=0)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=10, ge=1, le=100)


def make_app() -> Chalice:
    app = Chalice(app_name="test-http", configure_logs=False)
    install_error_handling(app)

    @app.route("/things", methods=["POST"])
    def create() -> Response:
        body = parse_body(app.current_request, Body)
        account = caller_account_id(app.current_request)
        return json_response({"account": account, "quantity": body.quantity}, 202)

    @app.route("/things", methods=["GET"])
    def listing() -> Response:
        query = parse_query(app.current_request, Query)
        return json_response({"limit": query.limit})

    @app.route("/things/{thing_id}", methods=["GET"])
    def fail(thing_id: str) -> Response:
        errors: dict[str, Exception] = {
            "missing": NotFound("thing_not_found", "no such thing", "thing_id"),
            "conflict": Conflict("thing_busy", "busy"),
            "down": Unavailable(),
            "boom": RuntimeError("password=hunter2 in a stack trace"),
            "chalice": BadRequestError("nope"),
            "chalice-json": BadRequestError("Error Parsing JSON"),
        }
        if thing_id == "bad-item":
            Body.model_validate({"symbol": 1})  # data read back, not client input: a bug
        raise errors[thing_id]

    return app


def event(
    method: str,
    resource: str,
    *,
    body: str | None = None,
    content_type: str | None = "application/json",
    path_params: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    authorizer: dict[str, Any] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    if base64_body and body is not None:
        body = base64.b64encode(body.encode()).decode()
    path = resource
    for key, value in (path_params or {}).items():
        path = path.replace("{" + key + "}", value)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": query,
        "pathParameters": path_params,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": base64_body,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "authorizer": {"account_id": "acc_1"} if authorizer is None else authorizer,
        },
    }


def call(app: Chalice, ev: dict[str, Any]) -> tuple[int, Any]:
    response = app(ev, None)
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def app() -> Chalice:
    return make_app()


def test_error_body_shape() -> None:
    assert error_body("x_y", "msg") == {"error": {"code": "x_y", "message": "msg"}}
    assert error_body("x_y", "msg", "f") == {
        "error": {"code": "x_y", "message": "msg", "field": "f"}
    }


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationFailed(), 400),
        (Unauthorized(), 401),
        (Forbidden(), 403),
        (NotFound(), 404),
        (Conflict(), 409),
        (Unavailable(), 503),
        (NexusError("teapot", "short and stout", status=418), 418),
    ],
)
def test_domain_errors_carry_their_status(error: NexusError, status: int) -> None:
    assert error.status == status
    assert error.body()["error"]["code"] == error.code


def test_a_valid_request_passes_with_decimals_as_strings(app: Chalice) -> None:
    status, body = call(app, event("POST", "/things", body='{"symbol": "AAPL", "quantity": 1.50}'))
    assert (status, body) == (202, {"account": "acc_1", "quantity": "1.5"})


def test_base64_bodies_are_decoded(app: Chalice) -> None:
    ev = event("POST", "/things", body='{"symbol": "A", "quantity": "2"}', base64_body=True)
    assert call(app, ev)[0] == 202


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ('{"symbol": "AAPL", "quantity": "1", "extra": 1}', "unknown_field", "extra"),
        ('{"symbol": "AAPL"}', "missing_field", "quantity"),
        ('{"symbol": "AAPL", "quantity": "abc"}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": "-1"}', "invalid_field", "quantity"),
        ('{"symbol": "AAPL", "quantity": 1.5e400000}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": true}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": "NaN"}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": "1_000"}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": "1e-999999999"}', "invalid_decimal", "quantity"),
        ('{"symbol": "AAPL", "quantity": NaN}', "malformed_json", None),
        ('{"symbol": "AAPL", "symbol": "MSFT", "quantity": "1"}', "malformed_json", None),
        ('{"symbol": ', "malformed_json", None),
        ("[1, 2]", "malformed_json", None),
        ("", "malformed_json", None),
    ],
)
def test_bad_bodies_answer_400_naming_the_field(
    app: Chalice, raw: str, code: str, field: str | None
) -> None:
    status, body = call(app, event("POST", "/things", body=raw))
    assert status == 400
    assert body["error"]["code"] == code
    assert body["error"].get("field") == field
    assert body["error"]["message"]


def test_a_non_json_content_type_answers_415_in_our_body(app: Chalice) -> None:
    status, body = call(app, event("POST", "/things", body="a=1", content_type="text/plain"))
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


def test_a_missing_authorizer_context_answers_401(app: Chalice) -> None:
    ev = event("POST", "/things", body='{"symbol": "A", "quantity": "1"}', authorizer={})
    assert call(app, ev) == (
        401,
        {"error": {"code": "unauthorized", "message": "missing or invalid credentials"}},
    )


def test_query_parameters_are_validated(app: Chalice) -> None:
    assert call(app, event("GET", "/things", query={"limit": ["5"]})) == (200, {"limit": 5})
    assert call(app, event("GET", "/things")) == (200, {"limit": 10})
    status, body = call(app, event("GET", "/things", query={"limit": ["0"]}))
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        400,
        "invalid_field",
        "limit",
    )
    status, body = call(app, event("GET", "/things", query={"offset": ["1"]}))
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        400,
        "unknown_field",
        "offset",
    )


@pytest.mark.parametrize(
    ("thing", "status", "code"),
    [
        ("missing", 404, "thing_not_found"),
        ("conflict", 409, "thing_busy"),
        ("down", 503, "unavailable"),
        ("chalice", 400, "bad_request"),
        ("chalice-json", 400, "malformed_json"),
    ],
)
def test_raised_errors_map_to_their_status(
    app: Chalice, thing: str, status: int, code: str
) -> None:
    got_status, body = call(
        app, event("GET", "/things/{thing_id}", path_params={"thing_id": thing})
    )
    assert (got_status, body["error"]["code"]) == (status, code)


@pytest.mark.parametrize("thing", ["boom", "bad-item"])
def test_unexpected_errors_answer_500_without_details(app: Chalice, thing: str) -> None:
    status, body = call(app, event("GET", "/things/{thing_id}", path_params={"thing_id": thing}))
    assert (status, body) == (
        500,
        {"error": {"code": "internal_error", "message": "internal error"}},
    )
    assert "hunter2" not in json.dumps(body)


def test_method_not_allowed_and_unknown_routes_use_our_body(app: Chalice) -> None:
    status, body = call(app, event("DELETE", "/things"))
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    status, body = call(app, event("GET", "/nowhere"))
    assert (status, body["error"]["code"]) == (404, "route_not_found")


def test_wire_decimal_refuses_float_in_python_too() -> None:
    with pytest.raises(ValueError):
        Body.model_validate({"symbol": "A", "quantity": 1.5})
    assert Body.model_validate({"symbol": "A", "quantity": Decimal("1.5")}).quantity == Decimal(
        "1.5"
    )
