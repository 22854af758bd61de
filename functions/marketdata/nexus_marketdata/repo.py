"""Data access of market data: ``TradesTable`` (symbol, seq), ``BookLevelsTable`` (symbol,
level), ``CandlesTable`` (series, bucket) and ``BookOrdersTable`` (symbol, order_id; GSI
``by-priority``). Every write is conditional on the item's seq watermark, so a redelivered or
replayed event changes nothing; candles and L3 orders are read once per record (BatchGetItem),
folded in memory and written back with one conditional put per item (no transactions)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common.dynamo import LazyTable, conditional_write, pages
from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent

from nexus_marketdata.candles import Candle, candle_from_item, candle_keys, merge, series_id
from nexus_marketdata.domain import (
    SIDE_PREFIX,
    BookLevel,
    level_key,
    level_values,
    live_levels,
    trade_item,
)
from nexus_marketdata.l3 import (
    TOMBSTONE_SECONDS,
    L3Fold,
    L3Level,
    L3Order,
    l3_levels,
    order_from_item,
    touched_order_ids,
)


class DynamoTrades(LazyTable):
    def put(self, event: TradeEvent) -> bool:
        """Append a trade to the tape; False when that (symbol, seq) is already there.

        A later engine leader (higher epoch) replaces what a deposed one wrote at that seq."""
        return conditional_write(
            self.table.put_item,
            Item=trade_item(event),
            ConditionExpression="attribute_not_exists(seq) OR epoch < :epoch",
            ExpressionAttributeValues={":epoch": event.epoch},
        )

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
        return conditional_write(
            self.table.update_item,
            Key={"symbol": event.symbol, "level": level_key(event.side, event.price)},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression=(
                "(attribute_not_exists(#seq) OR #seq < :seq) AND (attribute_not_exists(#epoch) OR #epoch <= :epoch)"
            ),
            ExpressionAttributeNames={**names, "#seq": "seq", "#epoch": "epoch"},
            ExpressionAttributeValues={**attrs, ":seq": event.seq, ":epoch": event.epoch},
        )

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
        for page in pages(self.table.query, **kwargs):
            items.extend(page.get("Items", []))
            if len(items) >= depth:
                break
        return live_levels(items, depth)


def _batch_get(table: Any, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Strongly consistent BatchGetItem of ``keys`` (100 a call, unprocessed keys retried)."""
    found: list[dict[str, Any]] = []
    client = table.meta.client  # the resource's client: Python values in and out
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table.name: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(table.name, []))
            request = answer.get("UnprocessedKeys") or {}
    return found


def _put_guarded(table: Any, item: dict[str, Any], previous_seq: int | None) -> bool:
    """One conditional put: the item is replaced only if it is still at ``previous_seq`` (None:
    it must not exist). False when the condition failed (someone got there first)."""
    if previous_seq is None:
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(last_seq)"}
    else:
        condition = {
            "ConditionExpression": "last_seq = :prev",
            "ExpressionAttributeValues": {":prev": previous_seq},
        }
    return conditional_write(table.put_item, Item=item, **condition)


class DynamoCandles(LazyTable):
    """``CandlesTable`` (series ``<symbol>#<interval>``, bucket = UTC start)."""

    def load(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Candle]:
        items = _batch_get(self.table, [{"series": s, "bucket": b} for s, b in keys])
        return {(str(i["series"]), str(i["bucket"])): candle_from_item(i) for i in items}

    def apply(self, trades: list[TradeEvent]) -> int:
        """Count ``trades`` (one record's, in seq order) in every candle they touch: one batched
        read, then one conditional put per changed candle. Returns how many candles changed."""
        if not trades:
            return 0
        keys = candle_keys(trades)
        for _ in range(3):
            stored = self.load(keys)
            changed = merge(stored, trades)
            lost = [
                key
                for key, candle in changed.items()
                if not _put_guarded(self.table, candle.to_item(), stored[key].last_seq if key in stored else None)
            ]
            if not lost:
                return len(changed)
            keys = lost  # a concurrent writer moved these: read them again and re-fold
        raise RuntimeError("candles kept changing under the consumer")

    def range(self, symbol: str, interval: str, start: str, end: str, limit: int) -> list[Candle]:
        """Candles with ``start <= bucket <= end`` (bucket ids), oldest first, at most ``limit``."""
        page = self.table.query(
            KeyConditionExpression="series = :s AND bucket BETWEEN :a AND :b",
            ExpressionAttributeValues={":s": series_id(symbol, interval), ":a": start, ":b": end},
            Limit=limit,
        )
        return [candle_from_item(i) for i in page.get("Items", [])]

    def get(self, symbol: str, interval: str, bucket: str) -> Candle | None:
        item = self.table.get_item(Key={"series": series_id(symbol, interval), "bucket": bucket}).get("Item")
        return candle_from_item(item) if item else None


class DynamoBookOrders(LazyTable):
    """``BookOrdersTable`` (symbol, order_id) and its GSI ``by-priority`` (symbol, book_key)."""

    INDEX = "by-priority"

    def load(self, symbol: str, order_ids: list[str]) -> dict[str, L3Order]:
        items = _batch_get(self.table, [{"symbol": symbol, "order_id": o} for o in order_ids])
        return {str(i["order_id"]): order_from_item(i) for i in items}

    def plan(self, symbol: str, events: list[AnyEngineEvent]) -> list[Callable[[], int]]:
        """Read the orders the events name (one batched read) and fold the events into them; the
        conditional puts are returned, to be run in any order (each is one order's item)."""
        needed = touched_order_ids(events)
        stored = self.load(symbol, needed) if needed else {}
        fold = L3Fold(stored)
        for event in events:
            fold.apply(event)
        return [self._writer(symbol, order, stored.get(order_id)) for order_id, order in fold.finish().items()]

    def _writer(self, symbol: str, order: L3Order, before: L3Order | None) -> Callable[[], int]:
        def write() -> int:
            expires = int(datetime.fromisoformat(order.ts).timestamp()) + TOMBSTONE_SECONDS if order.ts else None
            if not _put_guarded(self.table, order.to_item(expires), before.last_seq if before else None):
                raise RuntimeError(f"L3 order of {symbol} changed under the consumer")
            return 1

        return write

    def side(self, symbol: str, side: str, depth: int) -> list[L3Level]:
        """The best ``depth`` levels of one side, each with its orders in time priority."""
        kwargs: dict[str, Any] = {
            "IndexName": self.INDEX,
            "KeyConditionExpression": "symbol = :s AND begins_with(book_key, :p)",
            "ExpressionAttributeValues": {":s": symbol, ":p": SIDE_PREFIX[side]},
            "Limit": 200,
        }
        items: list[dict[str, Any]] = []
        for page in pages(self.table.query, **kwargs):
            items.extend(page.get("Items", []))
            if len({str(i["price"]) for i in items}) > depth:
                break
        return l3_levels(items, depth)
