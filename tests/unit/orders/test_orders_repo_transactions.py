"""The orders table's two transactions (an OCO group's legs, a replace's start) read through the
toolkit: a condition that refuses is a result (False / None); a transaction cancelled for another
reason only (a conflict) is raised, never taken for "it exists" or "the order changed"."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from nexus_orders.order import Order
from nexus_orders.repo import DynamoOrderRepository

ORDER = Order.model_validate({
    "order_id": "o-1", "account_id": "acc_1", "symbol": "AAPL", "side": "buy", "type": "limit",
    "quantity": Decimal(10), "price": Decimal("100.00"), "time_in_force": "gtc", "status": "new",
    "remaining_quantity": Decimal(10), "created_at": "2026-03-05T15:00:00Z", "updated_at": "2026-03-05T15:00:00Z",
})  # fmt: skip


def cancelled(*codes: str) -> ClientError:
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": code} for code in codes]}, "TransactWriteItems")  # fmt: skip


def repository(*codes: str) -> DynamoOrderRepository:
    """A repository whose table's client cancels every transaction with ``codes``."""

    def transact_write_items(**_: Any) -> None:
        raise cancelled(*codes)

    table = SimpleNamespace(name="orders", meta=SimpleNamespace(client=SimpleNamespace(
        transact_write_items=transact_write_items)))  # fmt: skip
    return DynamoOrderRepository("orders", table=table)


def test_a_refused_condition_is_a_result() -> None:
    assert repository("ConditionalCheckFailed", "None").put_group([ORDER, ORDER]) is False
    start = datetime(2026, 3, 5, 15, 1, tzinfo=UTC)
    assert repository("ConditionalCheckFailed").begin_replace(ORDER, 1, None, None, start) is None


@pytest.mark.parametrize("codes", [("TransactionConflict", "None"), ("None", "ThrottlingError")])
def test_a_transaction_cancelled_for_another_reason_is_raised(codes: tuple[str, ...]) -> None:
    with pytest.raises(ClientError) as raised:
        repository(*codes).put_group([ORDER, ORDER])
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    with pytest.raises(ClientError):
        repository(*codes).begin_replace(ORDER, 1, None, None, datetime(2026, 3, 5, 15, 1, tzinfo=UTC))
