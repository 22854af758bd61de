"""Data access of the notifications service: the inbox, the alerts table, the last trade prices (the
notifications queue is written with ``nexus_common.sqs.SqsBatchSender``)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from nexus_common.dynamo import LazyTable, conditional_answer, conditional_write, pages, paginate
from nexus_common.errors import NotFound, ValidationFailed
from nexus_common.events import iso

from nexus_notifications.alerts import Alert


class Inbox(LazyTable):
    """``NotificationsTable``: pk ``account_id``, sk ``notification_id``; GSI ``by-time``."""

    def add(self, item: dict[str, Any]) -> bool:
        """Store once; False when that notification id is already stored (a redelivery)."""
        return conditional_write(
            self.table.put_item, Item=item, ConditionExpression="attribute_not_exists(notification_id)"
        )

    def get(self, account_id: str, notification_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(
            Key={"account_id": account_id, "notification_id": notification_id}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None

    def mark_pushed(self, account_id: str, notification_id: str, now: datetime) -> None:
        self.table.update_item(
            Key={"account_id": account_id, "notification_id": notification_id},
            UpdateExpression="SET pushed_at = :now",
            ExpressionAttributeValues={":now": iso(now)},
        )

    def page(self, account_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The account's notifications, newest first, and the cursor of the next page."""
        kwargs: dict[str, Any] = {
            "IndexName": "by-time",
            "KeyConditionExpression": "account_id = :a",
            "ExpressionAttributeValues": {":a": account_id},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = {"account_id": account_id, **decode_cursor(cursor)}
        page = self.table.query(**kwargs)
        last = page.get("LastEvaluatedKey")
        next_cursor = encode_cursor(last) if last else None
        return [dict(i) for i in page.get("Items", [])], next_cursor


def encode_cursor(key: dict[str, Any]) -> str:
    data = {"n": str(key["notification_id"]), "s": str(key["sort_key"])}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    """The index key a cursor names (never an account: the caller's own is used)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValidationFailed("invalid_field", "cursor is not one this API gave", "cursor") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"n", "s"}
        or not all(isinstance(v, str) and 0 < len(v) <= 300 for v in data.values())
    ):
        raise ValidationFailed("invalid_field", "cursor is not one this API gave", "cursor")
    return {"notification_id": data["n"], "sort_key": data["s"]}


def _dec(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def alert_to_item(alert: Alert) -> dict[str, Any]:
    item: dict[str, Any] = {
        "account_id": alert.account_id,
        "alert_id": alert.alert_id,
        "symbol": alert.symbol,
        "type": alert.type,
        "status": alert.status,
        "created_at": iso(alert.created_at),
    }
    for name in ("upper", "lower", "price", "percent", "reference_price", "direction", "note"):
        value = getattr(alert, name)
        if value is not None:
            item[name] = value
    if alert.status == "armed":
        item["armed_symbol"] = alert.symbol
    return item


def alert_from_item(item: dict[str, Any]) -> Alert:
    return Alert(
        alert_id=str(item["alert_id"]),
        account_id=str(item["account_id"]),
        symbol=str(item["symbol"]),
        type=str(item["type"]),
        created_at=_ts(item["created_at"]),  # type: ignore[arg-type]
        upper=_dec(item.get("upper")),
        lower=_dec(item.get("lower")),
        price=_dec(item.get("price")),
        percent=_dec(item.get("percent")),
        direction=item.get("direction"),
        reference_price=_dec(item.get("reference_price")),
        note=item.get("note"),
        status=str(item.get("status", "armed")),
        fired_at=_ts(item.get("fired_at")),
        fired_price=_dec(item.get("fired_price")),
        fired_by=item.get("fired_by"),
    )


class AlertsTable(LazyTable):
    """``AlertsTable``: pk ``account_id``, sk ``alert_id``; sparse GSI ``armed-by-symbol``."""

    def add(self, alert: Alert) -> None:
        self.table.put_item(Item=alert_to_item(alert), ConditionExpression="attribute_not_exists(alert_id)")

    def count(self, account_ids: Iterable[str]) -> int:
        """How many alerts (armed or fired) these accounts keep (a COUNT query each)."""
        return sum(
            int(page.get("Count", 0))
            for account_id in account_ids
            for page in pages(
                self.table.query,
                KeyConditionExpression="account_id = :a",
                ExpressionAttributeValues={":a": account_id},
                Select="COUNT",
            )
        )

    def for_account(self, account_id: str, status: str | None) -> list[Alert]:
        items = paginate(
            self.table.query, KeyConditionExpression="account_id = :a", ExpressionAttributeValues={":a": account_id}
        )
        alerts = [alert_from_item(i) for i in items]
        alerts.sort(key=lambda a: a.created_at, reverse=True)
        return [a for a in alerts if status is None or a.status == status]

    def delete(self, account_id: str, alert_id: str) -> Alert:
        answer = conditional_answer(
            self.table.delete_item,
            Key={"account_id": account_id, "alert_id": alert_id},
            ConditionExpression="attribute_exists(alert_id)",
            ReturnValues="ALL_OLD",
        )
        if answer is None:
            raise NotFound("alert_not_found", "no such alert", "alert_id")
        return alert_from_item(answer["Attributes"])

    def get(self, account_id: str, alert_id: str) -> Alert | None:
        item = self.table.get_item(Key={"account_id": account_id, "alert_id": alert_id}, ConsistentRead=True).get(
            "Item"
        )
        return alert_from_item(item) if item else None

    def armed(self, symbol: str) -> list[Alert]:
        items = paginate(
            self.table.query,
            IndexName="armed-by-symbol",
            KeyConditionExpression="armed_symbol = :s",
            ExpressionAttributeValues={":s": symbol},
        )
        return [alert_from_item(i) for i in items]

    def fire(self, fired: Alert) -> bool:
        """armed -> fired, once: False when it is no longer armed (fired, or deleted)."""
        return conditional_write(
            self.table.update_item,
            Key={"account_id": fired.account_id, "alert_id": fired.alert_id},
            UpdateExpression="SET #s = :fired, fired_at = :at, fired_price = :p, fired_by = :by REMOVE armed_symbol",
            ConditionExpression="#s = :armed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":fired": "fired",
                ":armed": "armed",
                ":at": iso(fired.fired_at) if fired.fired_at else None,
                ":p": fired.fired_price,
                ":by": fired.fired_by,
            },
        )


class LastPrices(LazyTable):
    """The last trade price of a symbol (``TradesTable``, pk ``symbol``, sk ``seq``)."""

    def last(self, symbol: str) -> Decimal | None:
        page = self.table.query(
            KeyConditionExpression="symbol = :s",
            ExpressionAttributeValues={":s": symbol},
            ScanIndexForward=False,
            Limit=1,
        )
        items = page.get("Items", [])
        return Decimal(str(items[0]["price"])) if items else None
