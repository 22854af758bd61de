"""The portfolio API's query strings: every GET route refuses what it does not know, and a ledger
range whose ``from`` comes after its ``to`` is refused as the candles route refuses it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import call, rest_event
from nexus_portfolio import api as portfolio_api


@pytest.fixture
def portfolio(aws: Any) -> Any:
    env = aws.use_function_env("PortfolioApiFunction")
    boto3.resource("dynamodb", region_name="us-east-1").Table(env["ACCOUNTS_TABLE"]).put_item(
        Item={"account_id": "acc_p", "cash": Decimal("1000.00"), "currency": "USD", "status": "active"}
    )

    def get(path: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
        return call(portfolio_api.app, rest_event("GET", path, account_id="acc_p", query=query))

    return get


@pytest.mark.parametrize("path", ["/v1/portfolio", "/v1/positions", "/v1/ledger", "/v1/settlements"])
def test_every_portfolio_get_route_refuses_an_unknown_query_parameter(portfolio: Any, path: str) -> None:
    # GIVEN an account that can read its portfolio
    assert portfolio(path)[0] == 200
    # WHEN a route is called with a parameter it does not have
    status, body = portfolio(path, {"acount": "acc_other"})
    # THEN 400 unknown_field naming it, as every other route answers
    assert status == 400
    assert body["error"] == {"code": "unknown_field", "message": "unknown field: acount", "field": "acount"}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-06", "2026-03-05"),
        ("2026-03-05T12:00:00Z", "2026-03-05T11:59:59Z"),
        ("2026-03-06", "2026-03-05T23:59:59Z"),
        ("2026-03-05T10:00:00-05:00", "2026-03-05T14:59:59Z"),
    ],
)
def test_a_ledger_range_with_from_after_to_is_400_invalid_range(portfolio: Any, start: str, end: str) -> None:
    # GIVEN a ledger query whose from is a later instant than its to (offsets taken into account)
    # WHEN the ledger is read
    status, body = portfolio("/v1/ledger", {"from": start, "to": end})
    # THEN 400 invalid_range on from, not an empty list
    assert (status, body["error"]["code"], body["error"]["field"]) == (400, "invalid_range", "from")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-05", "2026-03-05"),
        ("2026-03-05T12:00:00Z", "2026-03-05T12:00:00Z"),
        ("2026-03-05T23:00:00Z", "2026-03-05"),
        ("2026-03-05T10:00:00-05:00", "2026-03-05T15:00:00Z"),
    ],
)
def test_a_ledger_range_that_is_one_day_or_one_instant_is_accepted(portfolio: Any, start: str, end: str) -> None:
    # GIVEN a range whose ends are the same day or the same instant
    # WHEN the ledger is read
    status, body = portfolio("/v1/ledger", {"from": start, "to": end})
    # THEN it answers the entries in it (none here)
    assert (status, body) == (200, {"entries": []})
