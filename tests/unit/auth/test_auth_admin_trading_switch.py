"""The account kill switch takes a JSON boolean and nothing that merely looks like one."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from conftest import Edge, register_and_login
from nexus_auth import admin_api, api

SWITCH = "/v1/admin/accounts/{account_id}/trading"


@pytest.fixture
def switch(edge: Edge, aws: Any) -> Any:
    admin = register_and_login(edge, "switch-admin@example.com")
    api.service().change_role(admin["user_id"], "admin", True, "operator")
    trader = register_and_login(edge, "switched-trader@example.com")
    me = edge.call(api.app, "GET", "/v1/users/me", credential=trader["access_token"])
    account = me.body["user"]["accounts"][0]
    accounts = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AccountsTable"))

    def put(value: Any) -> tuple[Any, dict[str, Any]]:
        answer = edge.call(admin_api.app, "PUT", SWITCH, credential=admin["access_token"],
                           path_params={"account_id": account}, body={"trading_enabled": value, "reason": "test"})
        return answer, dict(accounts.get_item(Key={"account_id": account})["Item"])

    return put


@pytest.mark.parametrize("value", ["yes", 1, 0, "false", "true", "", None, [False], {"on": False}])
def test_a_value_that_is_not_a_json_boolean_is_400_and_changes_nothing(switch: Any, value: Any) -> None:
    # GIVEN an account whose trading is on
    _, before = switch(True)
    # WHEN an admin sends the switch with something other than true/false
    answer, after = switch(value)
    # THEN 400 invalid_field on trading_enabled, and the account is as it was
    assert answer.status == 400
    assert (answer.body["error"]["code"], answer.body["error"]["field"]) == ("invalid_field", "trading_enabled")
    assert after == before


def test_json_false_and_true_switch_trading_off_and_on(switch: Any) -> None:
    # GIVEN an account
    # WHEN an admin switches its trading off, then on, with JSON booleans
    off, item_off = switch(False)
    on, item_on = switch(True)
    # THEN each is applied
    assert (off.status, off.body["account"]["trading_enabled"], item_off["trading_enabled"]) == (200, False, False)
    assert (on.status, on.body["account"]["trading_enabled"], item_on["trading_enabled"]) == (200, True, True)
