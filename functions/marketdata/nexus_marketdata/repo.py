"""Data access of market data: ``TradesTable`` (symbol, seq) and ``BookLevelsTable`` (symbol,
level). Every write is conditional, so a redelivered or replayed event changes nothing."""

from __future__ import annotations

from typing import Any

from nexus_common.dynamo import LazyTable, is_condition_failed
from nexus_common.events import BookEvent, TradeEvent

from nexus_marketdata.domain import (
    SIDE_PREFIX,
    BookLevel,
    level_key,
    level_values,
    live_levels,
    trade_item,
)


class DynamoTrades(LazyTable):
    def put(self, event: TradeEvent) -> bool:
        """Append a trade to the tape; False when that (symbol, seq) is already there.

        A later engine leader (higher epoch) replaces what a deposed one wrote at that seq."""
        try:
            self.table.put_item(
                Item=trade_item(event),
                ConditionExpression="attribute_not_exists(seq) OR epoch < :epoch",
                ExpressionAttributeValues={":epoch": event.epoch},
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return False
            raise
        return True

    def recent(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        page = self.table.query(
            KeyConditionExpression="symbol = :s",
            ExpressionAttributeValues={":s": symbol},
            ScanIndexForward=False,
            Limit=limit,
        )
        return list(page.get("Items", []))


class DynamoBookLevels(LazyTable):
    def apply(self, event: BookEvent) -> bool:
        """Set one level to its new aggregate unless a newer (or the same) seq is there."""
        values = level_values(event)
        names = {f"#a{i}": name for i, name in enumerate(values)}
        attrs = {f":a{i}": value for i, value in enumerate(values.values())}
        assignments = ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        try:
            self.table.update_item(
                Key={"symbol": event.symbol, "level": level_key(event.side, event.price)},
                UpdateExpression=f"SET {assignments}",
                ConditionExpression=(
                    "(attribute_not_exists(#seq) OR #seq < :seq) AND "
                    "(attribute_not_exists(#epoch) OR #epoch <= :epoch)"
                ),
                ExpressionAttributeNames={**names, "#seq": "seq", "#epoch": "epoch"},
                ExpressionAttributeValues={**attrs, ":seq": event.seq, ":epoch": event.epoch},
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return False
            raise
        return True

    def top(self, symbol: str, side: str, depth: int) -> list[BookLevel]:
        """Best ``depth`` live levels of one side (bids descending, asks ascending)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "symbol = :s AND begins_with(#level, :p)",
            "FilterExpression": "quantity > :zero",
            "ExpressionAttributeNames": {"#level": "level"},
            "ExpressionAttributeValues": {":s": symbol, ":p": SIDE_PREFIX[side], ":zero": 0},
            "ScanIndexForward": side == "sell",
            "Limit": max(depth, 25),
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if len(items) >= depth or "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return live_levels(items, depth)
