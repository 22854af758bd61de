"""Data access of the portfolio service: ``PositionsTable``, ``LedgerTable``, ``SettlementsTable``
(and reads of ``AccountsTable`` and ``TradesTable`` for the portfolio view).

* Position item (pk ``account_id``, sk ``symbol``): ``quantity, cost, realized_pnl, fees, bought,
  sold, last_seq`` (numbers exact), written only with ``last_seq`` unchanged since the read.
* Ledger item (pk ``account_id``, sk ``entry_key`` = ``<ts>#<entry_id>``): ``entry_id, ts, kind,
  memo, legs`` (list of ``{book, account, asset, amount}``), put with
  ``attribute_not_exists(entry_key)``: one item per entry, never half.
* Settlement items (pk ``account_id``, sk ``item_id``): obligations ``OBL#<date>#<symbol>#<event>#<liq>``
  and batches ``BAT#<date>#<symbol>#<attempt>``; ``open_date`` (the due date) is present only
  while an obligation is not settled or a batch is ``started``: the sparse GSI ``open-by-date``
  (pk ``open_date``) finds what a run must look at.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from nexus_common.dynamo import LazyTable, conditional_write, paginate
from nexus_common.dynamo_batch import batch_get, batch_put
from nexus_common.events import iso

from nexus_portfolio.ledger import Entry
from nexus_portfolio.positions import Position
from nexus_portfolio.settlement import Batch, Obligation

OPEN_BY_DATE: Final = "open-by-date"
LOOKBACK_DAYS: Final = 30  # a run looks this many calendar days back for what is still open


class _Table(LazyTable):
    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(paginate(self.table.query, **kwargs))

    def scan_all(self) -> list[dict[str, Any]]:
        return list(paginate(self.table.scan))


def _put_new(table: Any, item: dict[str, Any], key: str) -> bool:
    return conditional_write(table.put_item, Item=item, ConditionExpression=f"attribute_not_exists({key})")


# -- positions -------------------------------------------------------------------------------


def position_from_item(item: dict[str, Any]) -> Position:
    def num(name: str) -> Decimal:
        return Decimal(str(item.get(name, 0)))

    return Position(
        account_id=str(item["account_id"]),
        symbol=str(item["symbol"]),
        quantity=num("quantity"),
        cost=num("cost"),
        realized_pnl=num("realized_pnl"),
        fees=num("fees"),
        bought=num("bought"),
        sold=num("sold"),
        last_seq=int(item["last_seq"]) if "last_seq" in item else None,
    )


class DynamoPositions(_Table):
    def get(self, account_id: str, symbol: str) -> Position | None:
        item = self.table.get_item(Key={"account_id": account_id, "symbol": symbol}, ConsistentRead=True).get("Item")
        return position_from_item(item) if item else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Position]:
        """The positions that exist among ``keys`` (consistent reads, 100 to a call)."""
        wanted = sorted(set(keys))
        items = batch_get(
            self.table, [{"account_id": a, "symbol": s} for a, s in wanted], ConsistentRead=True
        )
        found = (position_from_item(item) for item in items)
        return {(p.account_id, p.symbol): p for p in found}

    def save(self, position: Position, previous_seq: int | None) -> bool:
        item = {
            "account_id": position.account_id,
            "symbol": position.symbol,
            "quantity": position.quantity,
            "cost": position.cost,
            "realized_pnl": position.realized_pnl,
            "fees": position.fees,
            "bought": position.bought,
            "sold": position.sold,
            "last_seq": position.last_seq,
        }
        if previous_seq is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(last_seq)"}
        else:
            condition = {
                "ConditionExpression": "last_seq = :prev",
                "ExpressionAttributeValues": {":prev": previous_seq},
            }
        return conditional_write(self.table.put_item, Item=item, **condition)

    def of_account(self, account_id: str) -> list[Position]:
        items = self._query_all(KeyConditionExpression=Key("account_id").eq(account_id), ConsistentRead=True)
        return [position_from_item(item) for item in items]

    def all(self) -> list[Position]:
        return [position_from_item(item) for item in self.scan_all()]


# -- ledger ----------------------------------------------------------------------------------


class DynamoJournal(_Table):
    def post(self, entry: Entry) -> bool:
        return _put_new(self.table, entry.to_item(), "entry_key")

    def post_many(self, entries: list[Entry]) -> None:
        """Fill entries of a batch with ``BatchWriteItem``: an entry's id and content come from its
        event, so writing it again writes the same item (never half: one item per entry)."""
        batch_put(self.table, (entry.to_item() for entry in entries), ("account_id", "entry_key"))

    def exists(self, entry: Entry) -> bool:
        key = {"account_id": entry.account_id, "entry_key": entry.entry_key}
        return "Item" in self.table.get_item(Key=key, ConsistentRead=True, ProjectionExpression="entry_id")

    def of_account(self, account_id: str, start: str, end: str, limit: int | None = None) -> list[Entry]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("account_id").eq(account_id) & Key("entry_key").between(start, end),
            "ConsistentRead": True,
        }
        if limit is not None:
            kwargs["Limit"] = limit
            page = self.table.query(**kwargs)
            return [Entry.from_item(item) for item in page.get("Items", [])]
        return [Entry.from_item(item) for item in self._query_all(**kwargs)]

    def all(self) -> list[Entry]:
        return [Entry.from_item(item) for item in self.scan_all()]


# -- settlement ------------------------------------------------------------------------------


def obligation_to_item(obligation: Obligation) -> dict[str, Any]:
    item: dict[str, Any] = {
        "account_id": obligation.account_id,
        "item_id": obligation.item_id,
        "kind": "obligation",
        "symbol": obligation.symbol,
        "settle_date": obligation.settle_date.isoformat(),
        "trade_date": obligation.trade_date.isoformat(),
        "event_id": obligation.event_id,
        "liquidity": obligation.liquidity,
        "cash": obligation.cash,
        "quantity": obligation.quantity,
        "status": obligation.status,
    }
    if obligation.status != "settled":
        item["open_date"] = obligation.settle_date.isoformat()
    if obligation.batch_id:
        item["batch_id"] = obligation.batch_id
    return item


def obligation_from_item(item: dict[str, Any]) -> Obligation:
    return Obligation(
        account_id=str(item["account_id"]),
        symbol=str(item["symbol"]),
        settle_date=date.fromisoformat(str(item["settle_date"])),
        trade_date=date.fromisoformat(str(item["trade_date"])),
        event_id=str(item["event_id"]),
        liquidity=str(item["liquidity"]),
        cash=Decimal(str(item["cash"])),
        quantity=Decimal(str(item["quantity"])),
        status=str(item["status"]),
        batch_id=str(item["batch_id"]) if item.get("batch_id") else None,
    )


def batch_to_item(batch: Batch) -> dict[str, Any]:
    item: dict[str, Any] = {
        "account_id": batch.account_id,
        "item_id": batch.item_id,
        "kind": "batch",
        "symbol": batch.symbol,
        "settle_date": batch.settle_date.isoformat(),
        "attempt": batch.attempt,
        "created_at": iso(batch.created_at),
        "obligations": list(batch.obligations),
        "cash": batch.cash,
        "quantity": batch.quantity,
        "status": batch.status,
    }
    if batch.status == "started":
        item["open_date"] = batch.settle_date.isoformat()
    if batch.failed_step:
        item["failed_step"] = batch.failed_step
    if batch.error:
        item["error"] = batch.error
    return item


def batch_from_item(item: dict[str, Any]) -> Batch:
    return Batch(
        account_id=str(item["account_id"]),
        symbol=str(item["symbol"]),
        settle_date=date.fromisoformat(str(item["settle_date"])),
        attempt=int(item["attempt"]),
        created_at=datetime.fromisoformat(str(item["created_at"]).replace("Z", "+00:00")),
        obligations=tuple(str(o) for o in item.get("obligations", [])),
        cash=Decimal(str(item["cash"])),
        quantity=Decimal(str(item["quantity"])),
        status=str(item["status"]),
        failed_step=item.get("failed_step"),
        error=item.get("error"),
    )


class DynamoSettlements(_Table):
    """Obligations (written by the consumer) and the ``SettlementStore`` of the saga."""

    def add(self, obligation: Obligation) -> bool:
        return _put_new(self.table, obligation_to_item(obligation), "item_id")

    def add_many(self, obligations: list[Obligation]) -> int:
        """Write the obligations that do not exist yet (one consistent ``BatchGetItem`` per 100,
        then ``BatchWriteItem``): one that exists may be settling or settled already and is
        left as it is. Only the portfolio consumer creates obligations, one shard at a time, so
        none can appear between the read and the write."""
        if not obligations:
            return 0
        keys = sorted({(o.account_id, o.item_id) for o in obligations})
        existing = batch_get(
            self.table,
            [{"account_id": a, "item_id": i} for a, i in keys],
            ConsistentRead=True,
            ProjectionExpression="account_id, item_id",
        )
        present = {(str(item["account_id"]), str(item["item_id"])) for item in existing}
        new = [obligation_to_item(o) for o in obligations if (o.account_id, o.item_id) not in present]
        return batch_put(self.table, new, ("account_id", "item_id"))

    def _open(self, as_of: date) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for back in range(LOOKBACK_DAYS, -1, -1):
            day = (as_of - timedelta(days=back)).isoformat()
            items.extend(self._query_all(IndexName=OPEN_BY_DATE, KeyConditionExpression=Key("open_date").eq(day)))
        return items

    def due(self, as_of: date) -> list[Obligation]:
        return [
            obligation_from_item(item)
            for item in self._open(as_of)
            if item.get("kind") == "obligation" and item.get("status") == "pending"
        ]

    def unfinished(self, as_of: date) -> list[Batch]:
        return [
            batch_from_item(item)
            for item in self._open(as_of)
            if item.get("kind") == "batch" and item.get("status") == "started"
        ]

    def attempts(self, account_id: str, symbol: str, settle_date: date) -> int:
        prefix = f"BAT#{settle_date.isoformat()}#{symbol}#"
        items = self._query_all(
            KeyConditionExpression=Key("account_id").eq(account_id) & Key("item_id").begins_with(prefix),
            ConsistentRead=True,
            ProjectionExpression="item_id",
        )
        return len(items)

    def start(self, batch: Batch) -> bool:
        return _put_new(self.table, batch_to_item(batch), "item_id")

    def _each(
        self, batch: Batch, update: str, condition: str, values: dict[str, Any], strict: bool = False
    ) -> None:
        """One conditional update per obligation of the batch. A refused condition means the
        step is already done for that obligation (idempotent), except when ``strict``."""
        for item_id in batch.obligations:
            written = conditional_write(
                self.table.update_item,
                Key={"account_id": batch.account_id, "item_id": item_id},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":batch": batch.batch_id, **values},
            )
            if not written and strict:
                raise RuntimeError(f"obligation {item_id} is not pending")

    def claim(self, batch: Batch) -> None:
        self._each(
            batch,
            "SET #status = :settling, batch_id = :batch",
            "#status = :pending OR (#status = :settling AND batch_id = :batch)",
            {":pending": "pending", ":settling": "settling"},
            strict=True,
        )

    def unclaim(self, batch: Batch) -> None:
        self._each(
            batch,
            "SET #status = :pending REMOVE batch_id",
            "#status = :settling AND batch_id = :batch",
            {":pending": "pending", ":settling": "settling"},
        )

    def mark_settled(self, batch: Batch, at: datetime) -> None:
        self._each(
            batch,
            "SET #status = :settled, settled_at = :at REMOVE open_date",
            "#status = :settling AND batch_id = :batch",
            {":settling": "settling", ":settled": "settled", ":at": iso(at)},
        )

    def unmark_settled(self, batch: Batch) -> None:
        self._each(
            batch,
            "SET #status = :settling, open_date = settle_date REMOVE settled_at",
            "#status = :settled AND batch_id = :batch",
            {":settling": "settling", ":settled": "settled"},
        )

    def finish(self, batch: Batch) -> None:
        self.table.put_item(Item=batch_to_item(batch))

    def of_account(self, account_id: str) -> tuple[list[Obligation], list[Batch]]:
        items = self._query_all(KeyConditionExpression=Key("account_id").eq(account_id), ConsistentRead=True)
        obligations = [obligation_from_item(i) for i in items if i.get("kind") == "obligation"]
        batches = [batch_from_item(i) for i in items if i.get("kind") == "batch"]
        return obligations, batches

    def open_of_account(self, account_id: str) -> list[Obligation]:
        """The account's obligations not settled yet: the ones that still carry ``open_date``."""
        items = self._query_all(
            KeyConditionExpression=Key("account_id").eq(account_id) & Key("item_id").begins_with("OBL#"),
            FilterExpression=Attr("open_date").exists(),
            ConsistentRead=True,
        )
        return [obligation_from_item(item) for item in items]

    def all_obligations(self) -> list[Obligation]:
        return [obligation_from_item(i) for i in self.scan_all() if i.get("kind") == "obligation"]


# -- reads for the portfolio view ------------------------------------------------------------


class DynamoAccountView(_Table):
    def get(self, account_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"account_id": account_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def all(self) -> list[dict[str, Any]]:
        return self.scan_all()


class DynamoLastPrices(_Table):
    def last(self, symbol: str) -> Decimal | None:
        page = self.table.query(
            KeyConditionExpression=Key("symbol").eq(symbol), ScanIndexForward=False, Limit=1
        )
        items = page.get("Items", [])
        return Decimal(str(items[0]["price"])) if items else None
