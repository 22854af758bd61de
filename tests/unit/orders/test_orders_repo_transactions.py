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
from nexus_orders.ports import ReplaceRelease
from nexus_orders.repo import RELEASE_ATTEMPTS, DynamoOrderRepository
from nexus_orders.risk import Reservation

ORDER = Order.model_validate({
    "order_id": "o-1", "account_id": "acc_1", "symbol": "AAPL", "side": "buy", "type": "limit",
    "quantity": Decimal(10), "price": Decimal("100.00"), "time_in_force": "gtc", "status": "new",
    "remaining_quantity": Decimal(10), "created_at": "2026-03-05T15:00:00Z", "updated_at": "2026-03-05T15:00:00Z",
})  # fmt: skip


def cancelled(*codes: str) -> ClientError:
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": code} for code in codes]}, "TransactWriteItems")  # fmt: skip


def repository(*codes: str, calls: list[dict[str, Any]] | None = None) -> DynamoOrderRepository:
    """A repository whose table's client cancels every transaction with ``codes`` (each request
    kept in ``calls``)."""

    def transact_write_items(**request: Any) -> None:
        if calls is not None:
            calls.append(request)
        raise cancelled(*codes)

    table = SimpleNamespace(name="orders", meta=SimpleNamespace(client=SimpleNamespace(
        transact_write_items=transact_write_items)))  # fmt: skip
    return DynamoOrderRepository("orders", table=table, accounts_table="accounts")


RESERVATION = Reservation("acc_1", "AAPL", "buy", Decimal(5), Decimal("500.15"), reservation_id="o-1~r1.abc")


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


def test_a_replace_on_a_reservation_found_in_place_begins_only_while_the_account_holds_it() -> None:
    calls: list[dict[str, Any]] = []
    start = datetime(2026, 3, 5, 15, 1, tzinfo=UTC)
    refusing = repository("ConditionalCheckFailed", calls=calls)
    assert refusing.begin_replace(ORDER, 1, None, None, start, "o-1~r1.abc") is None
    assert not any("ConditionCheck" in item for item in calls[0]["TransactItems"])  # written by this request
    assert repository("None", "ConditionalCheckFailed", calls=calls).begin_replace(
        ORDER, 1, None, None, start, "o-1~r1.abc", check_held=True) is None  # fmt: skip
    (check,) = [item["ConditionCheck"] for item in calls[1]["TransactItems"] if "ConditionCheck" in item]
    assert check["TableName"] == "accounts" and check["Key"] == {"account_id": "acc_1"}
    assert check["ConditionExpression"] == "contains(#res, :rid)"
    assert check["ExpressionAttributeValues"] == {":rid": "o-1~r1.abc"}


@pytest.mark.parametrize(("codes", "outcome"), [
    (("ConditionalCheckFailed", "None"), ReplaceRelease.BEGUN),
    (("ConditionalCheckFailed", "ConditionalCheckFailed"), ReplaceRelease.BEGUN),
    (("None", "ConditionalCheckFailed"), ReplaceRelease.NOT_HELD),
])  # fmt: skip
def test_a_replace_reservation_is_given_back_only_while_its_replace_has_not_begun(
    codes: tuple[str, ...], outcome: ReplaceRelease
) -> None:
    calls: list[dict[str, Any]] = []
    assert repository(*codes, calls=calls).release_replace_reservation("o-1", 1, RESERVATION) is outcome
    check, release = calls[0]["TransactItems"]
    assert check["ConditionCheck"]["Key"] == {"order_id": "o-1"}
    assert check["ConditionCheck"]["ExpressionAttributeValues"] == {":n": 1}
    assert release["Update"]["TableName"] == "accounts" and release["Update"]["Key"] == {"account_id": "acc_1"}


def test_a_give_back_cancelled_by_conflicts_alone_is_tried_again_then_raised() -> None:
    calls: list[dict[str, Any]] = []
    with pytest.raises(ClientError):
        repository("TransactionConflict", "None", calls=calls).release_replace_reservation("o-1", 1, RESERVATION)
    assert len(calls) == RELEASE_ATTEMPTS
    throttled: list[dict[str, Any]] = []
    with pytest.raises(ClientError):
        repository("ThrottlingError", "None", calls=throttled).release_replace_reservation("o-1", 1, RESERVATION)
    assert len(throttled) == 1  # not a conflict: raised at once


def test_a_replace_reservation_needs_the_accounts_table() -> None:
    with pytest.raises(ValueError, match="accounts table"):
        DynamoOrderRepository("orders", table=SimpleNamespace(name="orders")).release_replace_reservation(
            "o-1", 1, RESERVATION)  # fmt: skip
