"""Data access of the orders service: DynamoDB orders table, Kinesis commands, SQS notifications.

Item of ``OrdersTable`` (pk ``order_id``; GSI ``by-account``: ``account_id`` + ``created_at``):
``order_id, client_order_id?, account_id, symbol, side, type, quantity N, price N?,
time_in_force, status, filled_quantity N, filled_notional N, average_price N?,
remaining_quantity N, created_at, updated_at, last_seq N?, reject_reason?, cancel_reason?,
cancel_requested BOOL?, cancel_requested_at?``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from nexus_common import aws
from nexus_common.dynamo import deserialize, is_condition_failed, old_item
from nexus_common.events import CancelOrderCommand, NewOrderCommand, iso
from nexus_common.jsonutil import dumps

from nexus_orders.domain import OPEN_STATUSES, Order, OrderChange
from nexus_orders.service import ApplyResult

BY_ACCOUNT_INDEX: Final = "by-account"


def order_to_item(order: Order) -> dict[str, Any]:
    item = order.model_dump(exclude_none=True)
    if not order.cancel_requested:
        item.pop("cancel_requested", None)
    return item


def order_from_item(item: dict[str, Any]) -> Order:
    data = dict(item)
    if "last_seq" in data:
        data["last_seq"] = int(data["last_seq"])
    return Order.model_validate(data)


class DynamoOrderRepository:
    def __init__(self, table_name: str, table: Any = None) -> None:
        self.table_name = table_name
        self._table = table

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = aws.dynamodb_table(self.table_name)
        return self._table

    def put_new(self, order: Order) -> bool:
        try:
            self.table.put_item(
                Item=order_to_item(order), ConditionExpression="attribute_not_exists(order_id)"
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return False
            raise
        return True

    def get(self, order_id: str) -> Order | None:
        item = self.table.get_item(Key={"order_id": order_id}, ConsistentRead=True).get("Item")
        return order_from_item(item) if item else None

    def list_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int
    ) -> list[Order]:
        kwargs: dict[str, Any] = {
            "IndexName": BY_ACCOUNT_INDEX,
            "KeyConditionExpression": "account_id = :a",
            "ExpressionAttributeValues": {":a": account_id},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if statuses:
            names = sorted(statuses)
            placeholders = [f":s{i}" for i in range(len(names))]
            kwargs["FilterExpression"] = f"#status IN ({', '.join(placeholders)})"
            kwargs["ExpressionAttributeNames"] = {"#status": "status"}
            kwargs["ExpressionAttributeValues"].update(dict(zip(placeholders, names, strict=True)))
        orders: list[Order] = []
        while len(orders) < limit:
            page = self.table.query(**kwargs)
            orders.extend(order_from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return orders[:limit]

    def mark_cancel_requested(self, order: Order, now: datetime) -> Order | None:
        open_statuses = sorted(OPEN_STATUSES)
        values: dict[str, Any] = {
            ":true": True,
            ":ts": iso(now),
            ":acct": order.account_id,
            **{f":o{i}": status for i, status in enumerate(open_statuses)},
        }
        placeholders = ", ".join(f":o{i}" for i in range(len(open_statuses)))
        try:
            result = self.table.update_item(
                Key={"order_id": order.order_id},
                UpdateExpression="SET cancel_requested = :true, cancel_requested_at = :ts",
                ConditionExpression=(
                    f"attribute_exists(order_id) AND account_id = :acct "
                    f"AND #status IN ({placeholders})"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return None
            raise
        return order_from_item(result["Attributes"])

    def apply(self, change: OrderChange) -> ApplyResult:
        names: dict[str, str] = {"#last_seq": "last_seq", "#last_epoch": "last_epoch"}
        values: dict[str, Any] = {":seq": change.seq, ":epoch": change.epoch}
        sets = ["#last_seq = :seq", "#last_epoch = :epoch"]
        to_remove = list(change.remove)
        for i, (name, value) in enumerate(sorted(change.values.items())):
            if value is None:
                to_remove.append(name)
                continue
            names[f"#f{i}"] = name
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        expression = "SET " + ", ".join(sets)
        if to_remove:
            removes = []
            for j, name in enumerate(to_remove):
                names[f"#r{j}"] = name
                removes.append(f"#r{j}")
            expression += " REMOVE " + ", ".join(removes)
        try:
            result = self.table.update_item(
                Key={"order_id": change.order_id},
                UpdateExpression=expression,
                # A newer seq, from the same or a later engine leader (epoch): replays and
                # redeliveries (older seq) and a deposed leader's events (older epoch) are dropped.
                ConditionExpression=(
                    "attribute_exists(order_id) AND "
                    "(attribute_not_exists(#last_seq) OR #last_seq < :seq) AND "
                    "(attribute_not_exists(#last_epoch) OR #last_epoch <= :epoch)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failed(exc):
                raise
            current = old_item(exc)
            return ApplyResult(False, order_from_item(deserialize(current)) if current else None)
        return ApplyResult(True, order_from_item(result["Attributes"]))


class KinesisCommandPublisher:
    """Puts a command on ``order-commands`` with partition key = symbol."""

    def __init__(self, stream_name: str, client: Any = None) -> None:
        self.stream_name = stream_name
        self._client = client

    def publish(self, command: NewOrderCommand | CancelOrderCommand) -> None:
        client = self._client or aws.client("kinesis")
        client.put_record(
            StreamName=self.stream_name,
            Data=command.model_dump_json().encode("utf-8"),
            PartitionKey=command.symbol,
        )


class SqsNotifier:
    """Sends notification messages with ``SendMessageBatch`` (10 per call); raises on failure."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, messages: list[dict[str, Any]]) -> None:
        client = self._client or aws.client("sqs")
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": dumps(message)} for i, message in enumerate(chunk)
                ],
            )
            failed = response.get("Failed") or []
            if failed:
                codes = ", ".join(str(f.get("Code")) for f in failed)
                raise RuntimeError(f"{len(failed)} notification(s) not sent: {codes}")
