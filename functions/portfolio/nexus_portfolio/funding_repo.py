"""Data access of funding (``FundingStore``): ``FundingRequestsTable``, the account item of
``AccountsTable``, the open obligations of ``SettlementsTable``, and the journal of ``LedgerTable``.

* Request item (pk ``request_id``): ``account_id, kind, amount, status, client_request_id,
  requested_by, requested_at, memo`` and, once decided, ``decided_by, decided_at, reason``
  (``entry_id`` when approved). GSI ``by-account`` (pk ``account_id``, sk ``requested_at``) lists an
  account's requests; the sparse GSI ``pending`` (pk ``queue`` = ``"pending"``, present only while
  the request is pending, sk ``requested_at``) is the admins' queue.
* Approval is one ``TransactWriteItems`` of three writes, each conditional: the request
  (``status = pending``), the account item (exists; a withdrawal also ``cash = :seen`` and
  ``available_cash >= :need``, as ``nexus_orders`` reserves: ``if_not_exists(available_cash,
  cash)`` for an item no reservation wrote yet; ``opening_cash`` is set once as the risk writers
  do, so reconciliation's ``cash - opening_cash = ledger cash`` holds), and the journal entry
  (``attribute_not_exists(entry_key)``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, cast

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeSerializer
from nexus_common import aws
from nexus_common.dynamo import LazyTable, conditional_write, transaction
from nexus_common.events import iso

from nexus_portfolio.funding import KINDS, STATUSES, AccountCash, FundingRequest, Kind, Status
from nexus_portfolio.funding_service import Applied
from nexus_portfolio.ledger import Entry
from nexus_portfolio.repo import DynamoSettlements

BY_ACCOUNT: Final = "by-account"
PENDING: Final = "pending"
QUEUE: Final = "queue"


def request_to_item(request: FundingRequest) -> dict[str, Any]:
    item: dict[str, Any] = {
        "request_id": request.request_id,
        "account_id": request.account_id,
        "kind": request.kind,
        "amount": request.amount,
        "status": request.status,
        "client_request_id": request.client_request_id,
        "requested_by": request.requested_by,
        "requested_at": iso(request.requested_at),
        "memo": request.memo,
    }
    if request.status == "pending":
        item[QUEUE] = PENDING
    if request.decided_at is not None:
        item.update(decided_by=request.decided_by, decided_at=iso(request.decided_at), reason=request.reason)
    return item


def _ts(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def request_from_item(item: dict[str, Any]) -> FundingRequest:
    return FundingRequest(
        request_id=str(item["request_id"]),
        account_id=str(item["account_id"]),
        kind=_kind(item["kind"]),
        amount=Decimal(str(item["amount"])),
        status=_status(item["status"]),
        client_request_id=str(item["client_request_id"]),
        requested_by=str(item["requested_by"]),
        requested_at=_ts(item["requested_at"]),
        memo=str(item.get("memo", "")),
        decided_by=str(item["decided_by"]) if item.get("decided_by") else None,
        decided_at=_ts(item["decided_at"]) if item.get("decided_at") else None,
        reason=str(item.get("reason", "")),
    )


def _kind(value: Any) -> Kind:
    if value not in KINDS:
        raise ValueError(f"unknown funding kind {value!r}")
    return cast(Kind, str(value))


def _status(value: Any) -> Status:
    if value not in STATUSES:
        raise ValueError(f"unknown funding status {value!r}")
    return cast(Status, str(value))


class DynamoFundingStore(LazyTable):
    """``FundingStore`` over the physical tables (``table_name`` is the requests table)."""

    def __init__(self, table_name: str, accounts_table: str, ledger_table: str, settlements_table: str,
                 client: Any = None) -> None:  # fmt: skip
        super().__init__(table_name)
        self.accounts = LazyTable(accounts_table)
        self.accounts_table = accounts_table
        self.ledger_table = ledger_table
        self.settlements = DynamoSettlements(settlements_table)
        self._client = client
        self._serializer = TypeSerializer()

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def _low(self, item: dict[str, Any]) -> dict[str, Any]:
        return {key: self._serializer.serialize(value) for key, value in item.items()}

    # -- requests ---------------------------------------------------------------------------

    def add(self, request: FundingRequest) -> FundingRequest | None:
        written = conditional_write(
            self.table.put_item, Item=request_to_item(request), ConditionExpression="attribute_not_exists(request_id)"
        )
        return request if written else None

    def get(self, request_id: str) -> FundingRequest | None:
        item = self.table.get_item(Key={"request_id": request_id}, ConsistentRead=True).get("Item")
        return request_from_item(item) if item else None

    def of_account(self, account_id: str, limit: int) -> list[FundingRequest]:
        page = self.table.query(IndexName=BY_ACCOUNT, KeyConditionExpression=Key("account_id").eq(account_id),
                                ScanIndexForward=False, Limit=limit)  # fmt: skip
        return [request_from_item(item) for item in page.get("Items", [])]

    def pending(self, limit: int) -> list[FundingRequest]:
        page = self.table.query(IndexName=PENDING, KeyConditionExpression=Key(QUEUE).eq(PENDING),
                                ScanIndexForward=True, Limit=limit)  # fmt: skip
        return [request_from_item(item) for item in page.get("Items", [])]

    def reject(self, decided: FundingRequest) -> bool:
        return conditional_write(
            self.table.update_item,
            Key={"request_id": decided.request_id},
            UpdateExpression=(
                "SET #status = :rejected, decided_by = :by, decided_at = :at, reason = :reason REMOVE #queue"
            ),
            ConditionExpression="#status = :pending",
            ExpressionAttributeNames={"#status": "status", "#queue": QUEUE},
            ExpressionAttributeValues={
                ":rejected": "rejected",
                ":pending": "pending",
                ":by": decided.decided_by,
                ":at": iso(decided.decided_at) if decided.decided_at else "",
                ":reason": decided.reason,
            },
        )

    # -- the account and its unsettled trades -----------------------------------------------

    def account(self, account_id: str) -> AccountCash | None:
        item = self.accounts.table.get_item(
            Key={"account_id": account_id}, ConsistentRead=True,
            ProjectionExpression="account_id, cash, available_cash, #status",
            ExpressionAttributeNames={"#status": "status"},
        ).get("Item")  # fmt: skip
        if not item:
            return None
        cash = Decimal(str(item.get("cash", 0)))
        return AccountCash(
            account_id=account_id,
            cash=cash,
            available_cash=Decimal(str(item.get("available_cash", cash))),
            status=str(item.get("status", "")),
        )

    def open_obligation_cash(self, account_id: str) -> list[Decimal]:
        return [obligation.cash for obligation in self.settlements.open_of_account(account_id)]

    # -- approval: one transaction ----------------------------------------------------------

    def approve(self, decided: FundingRequest, entry: Entry, seen_cash: Decimal | None, need: Decimal) -> Applied:
        if decided.decided_at is None:
            raise ValueError("an approval needs its time")
        values: dict[str, Any] = {":delta": decided.signed_amount}
        conditions = ["attribute_exists(account_id)"]
        if decided.kind == "withdrawal":
            if seen_cash is None:
                raise ValueError("a withdrawal is approved against the cash it read")
            values.update({":seen": seen_cash, ":need": need})
            conditions += [
                "cash = :seen",
                "((attribute_exists(available_cash) AND available_cash >= :need) OR "
                "(attribute_not_exists(available_cash) AND cash >= :need))",
            ]
        items = [
            {"Update": {
                "TableName": self.table_name,
                "Key": self._low({"request_id": decided.request_id}),
                "UpdateExpression": "SET #status = :approved, decided_by = :by, decided_at = :at, entry_id = :entry "
                                    "REMOVE #queue",
                "ConditionExpression": "#status = :pending",
                "ExpressionAttributeNames": {"#status": "status", "#queue": QUEUE},
                "ExpressionAttributeValues": self._low({
                    ":approved": "approved", ":pending": "pending", ":by": decided.decided_by,
                    ":at": iso(decided.decided_at), ":entry": entry.entry_id,
                }),
            }},
            {"Update": {
                "TableName": self.accounts_table,
                "Key": self._low({"account_id": decided.account_id}),
                "UpdateExpression": "SET cash = cash + :delta, "
                                    "available_cash = if_not_exists(available_cash, cash) + :delta, "
                                    "opening_cash = if_not_exists(opening_cash, cash)",
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeValues": self._low(values),
            }},
            {"Put": {
                "TableName": self.ledger_table,
                "Item": self._low(entry.to_item()),
                "ConditionExpression": "attribute_not_exists(entry_key)",
            }},
        ]  # fmt: skip
        outcome = transaction(self.client.transact_write_items, TransactItems=items, ClientRequestToken=_token(decided))
        if outcome.applied:
            return Applied.APPLIED
        if outcome.refused(0) or outcome.refused(2):
            return Applied.NOT_PENDING
        if outcome.refused(1):
            return Applied.REFUSED if self.account(decided.account_id) is not None else Applied.NO_ACCOUNT
        if "TransactionConflict" in outcome.reasons:  # another write on one of the items: read again
            return Applied.REFUSED
        raise outcome.cancellation()


def _token(decided: FundingRequest) -> str:
    """The transaction's idempotency token: an SDK retry of the same approval applies once."""
    text = f"{decided.request_id}:{iso(decided.decided_at) if decided.decided_at else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:36]
