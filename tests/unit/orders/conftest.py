"""Fixtures of the orders tests.

The orders API refuses an order with pre-trade risk (``nexus_common.risk``) unless the caller's
account item exists, is active and can afford it, and it refuses a market buy without a
reference price. ``create_account`` writes the account item of every real account; the order
tests written before pre-trade risk trade from fixed account ids without creating them, and send
a market buy to an empty market. For those modules (``PRE_RISK_MODULES``) the accounts are
created here, funded, and AAPL has a last trade at 101.50 (the reference of the price collar and
of market buys), whenever a test builds the tables.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import boto3
import pytest

PRE_RISK_MODULES: Final = frozenset({"test_orders_api", "test_orders_on_execution_events"})
FIXTURE_ACCOUNTS: Final = ("acc_1", "acc_2", "acc_other", "acc_maker", "acc_taker", "acc_fix")
FIXTURE_CASH: Final = Decimal("10000000.00")
AAPL_LAST_TRADE: Final = Decimal("101.50")


def fund(table_name: str, account_ids: tuple[str, ...], cash: Decimal = FIXTURE_CASH) -> None:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(table_name)
    for account_id in account_ids:
        table.put_item(
            Item={"account_id": account_id, "name": account_id, "cash": cash, "currency": "USD", "status": "active"}
        )


@pytest.fixture(autouse=True)
def _pre_risk_order_tests_have_funded_accounts(request: pytest.FixtureRequest) -> None:
    if request.module.__name__ not in PRE_RISK_MODULES or "aws" not in request.fixturenames:
        return
    aws: Any = request.getfixturevalue("aws")
    fund(aws.table_name("AccountsTable"), FIXTURE_ACCOUNTS)
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("TradesTable")).put_item(
        Item={"symbol": "AAPL", "seq": 0, "price": AAPL_LAST_TRADE, "quantity": Decimal(1)}
    )
