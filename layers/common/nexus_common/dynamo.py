"""Small DynamoDB helpers shared by the services' data-access modules."""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import ClientError

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED: Final = "TransactionCanceledException"
_UNAVAILABLE: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_condition_failed(exc: BaseException) -> bool:
    return error_code(exc) == CONDITION_FAILED


def is_throttled(exc: BaseException) -> bool:
    return error_code(exc) in _UNAVAILABLE


def old_item(exc: BaseException) -> dict[str, Any] | None:
    """The item returned by ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` (resource format
    is not applied to it: values are in low-level ``{"S": ...}`` form), or None."""
    if isinstance(exc, ClientError):
        item = exc.response.get("Item")
        if isinstance(item, dict):
            return item
    return None


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """Low-level ``{"S": "x"}`` attribute values to Python values (numbers as ``Decimal``)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


class LazyTable:
    """Base of a data-access class over one DynamoDB table, given by its physical name.

    The boto3 ``Table`` is made on first use (nothing at import or construction), or given
    (tests pass one)."""

    def __init__(self, table_name: str, table: Any = None) -> None:
        self.table_name = table_name
        self._table = table

    @property
    def table(self) -> Any:
        if self._table is None:
            from nexus_common import aws  # boto3 only where data is accessed

            self._table = aws.dynamodb_table(self.table_name)
        return self._table
