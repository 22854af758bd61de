"""Bad input at the HTTP edge of the running platform: a 4xx with the one error body, and
nothing written to the orders table or sent to the engine."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from helpers import commands_sent
from http_client import Answer, Api

# The whole platform, in this process: run with the other system tests, not beside the unit
# tests, whose process environment a running platform changes (its endpoint, credentials and SDK
# app id) while it runs.
pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def local_platform() -> Iterator[Any]:
    """A platform of its own: its orders rest far from the market, which the other system tests
    move (a price collar around their last trades would refuse them), and its counts of what
    reached the orders table and the engine are its own."""
    from nexus.local.runtime import Options, free_port, running

    options = Options(
        api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="badinput", demo=True, write_state=False
    )
    with running(options) as platform:
        yield platform


@pytest.fixture(scope="module")
def trader(local_platform: Any) -> Api:
    from nexus.local.demo import create_account

    created = create_account(local_platform.table, "Bad Input Tester", Decimal("1000.00"))
    return Api(local_platform.api_url, created["api_key"])


def _orders_stored(platform: Any) -> int:
    dynamodb = boto3.client("dynamodb", endpoint_url=platform.aws_endpoint, region_name="us-east-1")
    return int(dynamodb.scan(TableName=platform.table("OrdersTable"), Select="COUNT")["Count"])


def _assert_error(answer: Answer, status: int, code: str, field: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert set(answer.body) == {"error"}, answer.body
    error = answer.body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error.get("field") == field, error


GOOD = {"symbol": "GOOGL", "side": "buy", "type": "limit", "quantity": "1", "price": "100.00"}

BAD_BODIES = [
    pytest.param({**GOOD, "symbol": "NOPE"}, 400, "unknown_symbol", "symbol", id="unknown symbol"),
    pytest.param({**GOOD, "quantity": "0"}, 400, "invalid_field", "quantity", id="zero quantity"),
    pytest.param({**GOOD, "quantity": "-5"}, 400, "invalid_field", "quantity", id="negative quantity"),
    pytest.param({**GOOD, "quantity": "ten"}, 400, "invalid_decimal", "quantity", id="non-numeric quantity"),
    pytest.param({**GOOD, "quantity": "1_000"}, 400, "invalid_decimal", "quantity", id="python-only digit grouping"),
    pytest.param({**GOOD, "quantity": "\uff11"}, 400, "invalid_decimal", "quantity", id="fullwidth digit"),
    pytest.param({**GOOD, "quantity": "1e999999999"}, 400, "invalid_decimal", "quantity", id="overflowing quantity"),
    pytest.param({**GOOD, "price": "1e-999999999"}, 400, "invalid_decimal", "price", id="huge negative exponent"),
    pytest.param({**GOOD, "quantity": "1.5"}, 400, "quantity_off_lot", "quantity", id="quantity off the lot"),
    pytest.param({**GOOD, "price": "100.001"}, 400, "price_off_tick", "price", id="price off the tick"),
    pytest.param(
        {k: v for k, v in GOOD.items() if k != "price"}, 400, "missing_field", "price", id="limit without price"
    ),
    pytest.param({**GOOD, "colour": "blue"}, 400, "unknown_field", "colour", id="unknown field"),
    pytest.param({**GOOD, "side": "hold"}, 400, "invalid_field", "side", id="bad side"),
    pytest.param({**GOOD, "quantity": 1.5}, 400, "quantity_off_lot", "quantity", id="JSON number off the lot"),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_BODIES)
def test_bad_order_is_refused_and_nothing_is_written_or_sent(
    local_platform: Any, trader: Api, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    # GIVEN the counts of stored orders and sent commands
    orders, commands = _orders_stored(local_platform), commands_sent(local_platform)
    # WHEN a bad order is posted
    answer = trader.post("/v1/orders", body)
    # THEN a 4xx with the error body naming the field, and nothing was written or sent
    _assert_error(answer, status, code, field)
    assert _orders_stored(local_platform) == orders
    assert commands_sent(local_platform) == commands


def test_malformed_json_is_refused(local_platform: Any, trader: Api) -> None:
    orders = _orders_stored(local_platform)
    answer = trader.call("POST", "/v1/orders", raw=b'{"symbol": "GOOGL", ')
    _assert_error(answer, 400, "malformed_json")
    assert _orders_stored(local_platform) == orders


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nxk_not-a-real-key", "Basic dXNlcjpwYXNz"])
def test_missing_or_wrong_api_key_is_refused(local_platform: Any, header: str | None) -> None:
    orders = _orders_stored(local_platform)
    headers = {"Authorization": header} if header else {}
    answer = Api(local_platform.api_url).call("POST", "/v1/orders", GOOD, headers=headers)
    _assert_error(answer, 401, "unauthorized")
    assert _orders_stored(local_platform) == orders


def test_another_accounts_order_is_not_found(local_platform: Any, trader: Api) -> None:
    from nexus.local.demo import create_account

    # GIVEN an order of another account
    other = Api(local_platform.api_url, create_account(local_platform.table, "Other", Decimal("10000"))["api_key"])
    placed = other.post("/v1/orders", {**GOOD, "price": "90.00"})
    assert placed.status == 202, placed.body
    order_id = placed.body["order"]["order_id"]
    # WHEN this trader reads or cancels it
    read, cancel = trader.get(f"/v1/orders/{order_id}"), trader.delete(f"/v1/orders/{order_id}")
    # THEN both answer 404 exactly as for an order that does not exist
    _assert_error(read, 404, "order_not_found")
    _assert_error(cancel, 404, "order_not_found")
    _assert_error(trader.get("/v1/orders/does-not-exist"), 404, "order_not_found")


def test_health_is_public_and_everything_else_needs_a_key(local_platform: Any) -> None:
    anonymous = Api(local_platform.api_url)
    assert anonymous.get("/health").status == 200
    for path in ("/v1/orders", "/v1/markets", "/v1/markets/AAPL/book", "/v1/markets/AAPL/trades"):
        _assert_error(anonymous.get(path), 401, "unauthorized")


def test_unknown_route_answers_not_found(local_platform: Any, trader: Api) -> None:
    _assert_error(trader.get("/v1/nothing-here"), 404, "not_found")
