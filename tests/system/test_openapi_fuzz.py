"""Schemathesis over the served OpenAPI document, against the whole local platform: every operation,
valid and invalid inputs, a bounded number of examples each; no answer may be a 5xx or break the
schema the document gives it.

The credential is a trading API key of an account whose kill switch is on: bodies reach the
services and are validated all the way to pre-trade risk, but no fuzzed order reaches a book the
other system tests trade on. Admin routes answer 403 to it; key management needs a session (403).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from http_client import Api
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

pytestmark = pytest.mark.system

EXAMPLES_PER_OPERATION = 10


def test_no_operation_answers_5xx_or_breaks_its_schema(local_platform: Any) -> None:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error, response_schema_conformance

    from nexus.local.demo import create_account

    created = create_account(local_platform.table, "Fuzz", Decimal("1000.00"))
    boto3.resource("dynamodb", endpoint_url=local_platform.aws_endpoint, region_name="us-east-1").Table(
        local_platform.table("AccountsTable")
    ).update_item(Key={"account_id": created["account_id"]}, UpdateExpression="SET trading_enabled = :f",
                  ExpressionAttributeValues={":f": False})
    document = Api(local_platform.api_url).get("/openapi.json")
    assert document.status == 200
    schema = schemathesis.openapi.from_dict(document.body)
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    failures: list[str] = []
    calls: list[int] = []
    exercised: set[str] = set()

    def runner(operation: Any, mode: Any) -> Any:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(base_url=local_platform.api_url, headers=headers, timeout=30)
            calls.append(response.status_code)
            exercised.add(operation.label)
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            except Exception as exc:  # noqa: BLE001 - collect every operation's failures, then report them all
                failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {exc}"[:800])

        return run

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        runner(operation, GenerationMode.POSITIVE)()
        try:
            runner(operation, GenerationMode.NEGATIVE)()
        except Unsatisfiable:  # nothing of this operation can be made invalid (no body, no parameters)
            continue
    assert len(calls) >= 100
    assert exercised == {operation.label for operation in operations}  # every operation was called
    # the fuzzing got through: valid requests were served, invalid ones refused with a 4xx
    assert any(200 <= status < 300 for status in calls) and any(400 <= status < 500 for status in calls)
    print(f"schemathesis: {len(operations)} operations, {len(calls)} requests, statuses {sorted(set(calls))}")
    assert failures == [], "\n".join(failures[:20])
