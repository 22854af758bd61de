"""The DynamoDB toolkit shared by the services' data-access modules.

* Conditional writes: ``conditional_write`` (written or not), ``conditional_answer`` (the write's
  response, or None when refused), ``conditional_write_or_old`` (None when written, else the item
  as it was), ``conditional`` (all of it, as a ``WriteOutcome``) and ``transaction`` (a
  ``TransactWriteItems`` that may be cancelled, with which item refused). A refused condition is
  a result; any other error, a ``ClientError`` of another code or not a ``ClientError`` at all,
  propagates unchanged. This is the one place that turns ``ConditionalCheckFailedException`` into
  a result.
* Pagination: ``pages`` (every page of a Query or Scan, lazily: stop early and no further page is
  read) and ``paginate`` (their items).

Each call is one request, made exactly as the caller wrote it: nothing here reads before a write
or retries one (the botocore client retries throttling itself). Requests are counted by the
client factory (``nexus_common.aws.request_counts``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a conditional write did.

    ``answer`` is the write's response when written (its ``Attributes`` when ``ReturnValues`` asked
    for them). When refused, ``old`` is the item as it was if the write asked for it with
    ``ReturnValuesOnConditionCheckFailure="ALL_OLD"`` and the item exists (as Python values, numbers
    ``Decimal``), and ``error`` is the refusal itself."""

    written: bool
    answer: dict[str, Any] = field(default_factory=dict)
    old: dict[str, Any] | None = None
    error: ClientError | None = None


def conditional(write: Callable[..., Any], /, **kwargs: Any) -> WriteOutcome:
    """Call ``write(**kwargs)`` (``table.put_item``, ``update_item``, ``delete_item`` or the
    client's); a failed condition is a refused ``WriteOutcome``, any other error is raised."""
    try:
        answer = write(**kwargs)
    except ClientError as exc:
        if not is_condition_failed(exc):
            raise
        old = old_item(exc)
        return WriteOutcome(False, old=deserialize(old) if old is not None else None, error=exc)
    return WriteOutcome(True, answer=dict(answer or {}))


def conditional_write(write: Callable[..., Any], /, **kwargs: Any) -> bool:
    """True when written, False when its condition failed."""
    return conditional(write, **kwargs).written


def conditional_answer(write: Callable[..., Any], /, **kwargs: Any) -> dict[str, Any] | None:
    """The write's response when written (e.g. its ``Attributes``), None when its condition failed."""
    outcome = conditional(write, **kwargs)
    return outcome.answer if outcome.written else None


def conditional_write_or_old(write: Callable[..., Any], /, **kwargs: Any) -> dict[str, Any] | None:
    """None when written; when refused, the item as it was (the write passes
    ``ReturnValuesOnConditionCheckFailure="ALL_OLD"``), or None when there is no such item."""
    return conditional(write, **kwargs).old


@dataclass(frozen=True, slots=True)
class TransactionOutcome:
    """What a ``TransactWriteItems`` did: applied, or cancelled with one reason code per item
    (``"None"`` for an item that was fine, ``"ConditionalCheckFailed"``, ``"TransactionConflict"``,
    ...), in the order of ``TransactItems``."""

    applied: bool
    reasons: tuple[str, ...] = ()
    error: ClientError | None = None

    def raise_if_cancelled(self) -> None:
        """Raise the cancellation itself, for a caller with no result to give it."""
        if self.error is not None:
            raise self.error

    def cancellation(self) -> ClientError:
        """The cancellation itself, to raise (an outcome that applied has none)."""
        if self.error is None:
            raise ValueError("the transaction applied")
        return self.error

    def refused(self, index: int) -> bool:
        """True when item ``index`` failed its condition."""
        return len(self.reasons) > index and self.reasons[index] == CONDITION_FAILED_REASON

    @property
    def any_refused(self) -> bool:
        return CONDITION_FAILED_REASON in self.reasons

    @property
    def conflicts_only(self) -> bool:
        """Cancelled for transaction conflicts alone (another write on one of its items): worth
        trying again, unlike a refusal, throttling or a validation error."""
        return not self.applied and CONFLICT_REASON in self.reasons and all(
            reason in ("None", CONFLICT_REASON) for reason in self.reasons
        )

    def applied_or_refused(self) -> bool:
        """True when the transaction applied, False when a condition refused it; a transaction
        cancelled for other reasons only (a conflict, throttling) is raised."""
        if not self.applied and not self.any_refused:
            self.raise_if_cancelled()
        return self.applied


CONDITION_FAILED_REASON: Final = "ConditionalCheckFailed"
CONFLICT_REASON: Final = "TransactionConflict"


def transaction(write: Callable[..., Any], /, **kwargs: Any) -> TransactionOutcome:
    """Call ``write(**kwargs)`` (``client.transact_write_items``); a cancelled transaction is a
    ``TransactionOutcome`` with its reasons, any other error is raised."""
    try:
        write(**kwargs)
    except ClientError as exc:
        if error_code(exc) != TRANSACTION_CANCELLED:
            raise
        reasons = exc.response.get("CancellationReasons") or []
        return TransactionOutcome(False, tuple(str(r.get("Code", "")) for r in reasons), exc)
    return TransactionOutcome(True)


def pages(read: Callable[..., Any], /, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of ``read(**kwargs)`` (``table.query``, ``table.scan`` or the client's), each
    read from where the one before stopped (``ExclusiveStartKey``). Lazy: a caller that stops
    early reads no further page."""
    while True:
        page: dict[str, Any] = read(**kwargs)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def paginate(read: Callable[..., Any], /, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of every page of ``read(**kwargs)``, in order."""
    for page in pages(read, **kwargs):
        yield from page.get("Items", [])
