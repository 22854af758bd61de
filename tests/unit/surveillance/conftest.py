"""Fixtures of the surveillance service tests: moto resources from the template (``aws``), a real
Redis (``redis_db``), and accounts with owners plus a compliance user (``people``)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from surv_service_helpers import OWNERS


@pytest.fixture
def people(aws: Any) -> Iterator[dict[str, str]]:
    """The accounts (with their owners) and a compliance user whose inbox is acc_c."""
    dynamo = boto3.resource("dynamodb", region_name="us-east-1")
    accounts = dynamo.Table(aws.table_name("AccountsTable"))
    for account, owner in OWNERS.items():
        accounts.put_item(Item={"account_id": account, "owner_user_id": owner, "status": "active",
                                "cash": Decimal("1000000"), "currency": "USD"})  # fmt: skip
    users = dynamo.Table(aws.table_name("UsersTable"))
    users.put_item(Item={"pk": "user#usr_c", "user_id": "usr_c", "roles": ["compliance"], "status": "active",
                         "accounts": ["acc_c"], "default_account_id": "acc_c"})  # fmt: skip
    users.put_item(Item={"pk": "user#usr_a", "user_id": "usr_a", "roles": ["trader"], "status": "active",
                         "accounts": ["acc_a1", "acc_a2"], "default_account_id": "acc_a1"})  # fmt: skip
    yield OWNERS
