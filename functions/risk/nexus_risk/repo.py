"""Data access of the risk consumer: the account item (one conditional write per event per
account) and the orders table (reservation facts of an order, read once and cached)."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any, Final

from nexus_common import aws
from nexus_common.dynamo import LazyTable, is_condition_failed
from nexus_common.risk import ZERO, attr

from nexus_risk.domain import AccountChange, OrderFacts

FACTS_CACHE_SIZE: Final = 10_000


class DynamoAccounts(LazyTable):
    def apply(self, change: AccountChange) -> bool:
        """Add the change's deltas unless the account has seen this symbol's ``seq`` already.
        False when nothing was written (a redelivery, an older event, or no such account)."""
        names = {
            "#seq": attr("seq", change.symbol),
            "#pos": attr("pos", change.symbol),
            "#sell": attr("sellable", change.symbol),
            "#buy": attr("buying", change.symbol),
        }
        values: dict[str, Any] = {
            ":seq": change.seq,
            ":cash": change.cash,
            ":avail": change.available,
            ":pos": change.pos,
            ":sell": change.sellable,
            ":buy": change.buying,
            ":zero": ZERO,
        }
        try:
            self.table.update_item(
                Key={"account_id": change.account_id},
                UpdateExpression=(
                    "SET cash = cash + :cash, "
                    "available_cash = if_not_exists(available_cash, cash) + :avail, "
                    "opening_cash = if_not_exists(opening_cash, cash), "
                    "#pos = if_not_exists(#pos, :zero) + :pos, "
                    "#sell = if_not_exists(#sell, :zero) + :sell, "
                    "#buy = if_not_exists(#buy, :zero) + :buy, "
                    "#seq = :seq"
                ),
                ConditionExpression="attribute_exists(account_id) AND (attribute_not_exists(#seq) OR #seq < :seq)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return False
            raise
        return True


class DynamoOrderFacts:
    """``OrderFacts`` from ``OrdersTable`` (consistent read), cached: they never change."""

    def __init__(self, table_name: str, table: Any = None) -> None:
        self.table_name = table_name
        self._table = table
        self._cache: OrderedDict[str, OrderFacts] = OrderedDict()

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = aws.dynamodb_table(self.table_name)
        return self._table

    def __call__(self, order_id: str) -> OrderFacts | None:
        found = self._cache.get(order_id)
        if found is not None:
            return found
        item = self.table.get_item(
            Key={"order_id": order_id},
            ConsistentRead=True,
            ProjectionExpression="order_id, side, quantity, reserved, reserve_rate",
        ).get("Item")
        if not item:
            return None
        rate = item.get("reserve_rate")
        facts = OrderFacts(
            order_id=order_id,
            side=str(item["side"]),
            quantity=Decimal(str(item["quantity"])),
            reserved=bool(item.get("reserved", False)),
            reserve_rate=Decimal(str(rate)) if rate is not None else None,
        )
        self._cache[order_id] = facts
        if len(self._cache) > FACTS_CACHE_SIZE:
            self._cache.popitem(last=False)
        return facts
