"""Data access of the orders service: DynamoDB orders table, Kinesis commands, SQS notifications.

Item of ``OrdersTable`` (pk ``order_id``; GSI ``by-account``: ``account_id`` + ``created_at``):
``order_id, client_order_id?, account_id, symbol, side, type, quantity N, price N?,
time_in_force, status, filled_quantity N, filled_notional N, average_price N?,
remaining_quantity N, created_at, updated_at, last_seq N?, reject_reason?, cancel_reason?,
cancel_requested BOOL?, cancel_requested_at?``, and the engine instructions and OCO/replace
fields of ``order.Order`` when set (``stop_price``, ``expire_at``, ``post_only``,
``display_quantity``, ``stp``, ``triggered``, ``group_id``, ``leg``, ``replace_count``,
``replace_pending``, ``price_topup``, ``cover_rate``) and ``rests_on`` (a routed order resting on
an external venue: the venue); ``entry_shard`` while the engine has not been seen to take the
order, ``replace_shard`` and ``replace_at`` while a replace waits for the engine's answer (the
entry sweep's sparse indexes).

The same table holds the reservation terms of each replace of a reserved order, for the risk
consumer (``nexus_common.risk``): items ``<order_id>~r<n>`` and ``<order_id>~p<n>`` with
``record_of``, ``side``, ``quantity``, ``reserved`` and ``reserve_rate`` and no ``account_id``
(so no account's listing shows them).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import zlib
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.conditions import Key
from nexus_common import aws, kinesis
from nexus_common.dynamo import (
    LazyTable,
    conditional,
    conditional_answer,
    conditional_write,
    conditional_write_or_old,
    pages,
    transaction,
)
from nexus_common.dynamo_batch import batch_get
from nexus_common.errors import ValidationFailed
from nexus_common.events import FenceCommand, iso
from nexus_common.risk import (
    RESERVATIONS,
    ZERO,
    ReplaceTerms,
    RiskLimits,
    attr,
    release_held_update,
    replace_record_id,
    topup_record_id,
)

from nexus_orders.commands import AnyOrderCommand
from nexus_orders.folding import PENDING_REPLACE, OrderChange
from nexus_orders.order import OPEN_STATUSES, Order
from nexus_orders.ports import ApplyResult, PendingEntry, PendingReplace, ReplaceRelease
from nexus_orders.risk import Reservation, refusal

BY_ACCOUNT_INDEX: Final = "by-account"
# The sparse index of the entries not yet seen by the engine: an order stored ``pending_new`` for
# the engine carries ``entry_shard`` (``e0``..``e7``, from its id) until the orders consumer's first
# write of it removes the attribute. Eight partitions spread the index's writes (two per order).
PENDING_ENTRIES_INDEX: Final = "pending-entries"
ENTRY_SHARD: Final = "entry_shard"
ENTRY_SHARDS: Final = 8
# The sparse index of the replaces waiting for the engine's answer: ``folding.PENDING_REPLACE``
# (``replace_shard``, from the order id as ``entry_shard``, and ``replace_at``, when it began).
PENDING_REPLACES_INDEX: Final = "pending-replaces"
# The entry sweep's progress: an item of the orders table without ``account_id`` (not an order).
SWEEP_KEY: Final = "~entry-sweep"
# A listing page reads at most this many index pages, each of at least FILTERED_READ items when
# a status filter drops some: a page of a filtered listing may come back short (even empty) with
# a next cursor, instead of reading the whole history of a busy account in one request.
MAX_PAGE_READS: Final = 10
FILTERED_READ: Final = 100


def order_to_item(order: Order) -> dict[str, Any]:
    item = order.model_dump(exclude_none=True)
    if not order.cancel_requested:
        item.pop("cancel_requested", None)
    if not order.reserved:
        item.pop("reserved", None)
    if order.status == "pending_new" and order.routing is None:
        item[ENTRY_SHARD] = entry_shard(order.group_id or order.order_id)
    return item


def entry_shard(order_id: str) -> str:
    """The ``pending-entries`` index's partition of an order (an OCO group's legs share one)."""
    return f"e{zlib.crc32(order_id.encode()) % ENTRY_SHARDS}"


def is_order_item(item: dict[str, Any]) -> bool:
    """False for the replace terms items (``<order_id>~r<n>``) that share the table."""
    return "account_id" in item and "record_of" not in item


def order_from_item(item: dict[str, Any]) -> Order:
    data = dict(item)
    if "last_seq" in data:
        data["last_seq"] = int(data["last_seq"])
    return Order.model_validate(data)


def encode_order_cursor(key: dict[str, Any]) -> str:
    """The opaque cursor of an order's ``by-account`` key (never its account)."""
    data = {"t": str(key["created_at"]), "o": str(key["order_id"])}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_order_cursor(cursor: str) -> dict[str, str]:
    """The ``by-account`` key a cursor names, without the account (the caller's own is used);
    400 ``invalid_field`` on ``cursor`` when it is not one this API gave."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ValidationFailed("invalid_field", "cursor is not one this API gave", "cursor") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"t", "o"}
        or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in data.values())
    ):
        raise ValidationFailed("invalid_field", "cursor is not one this API gave", "cursor")
    return {"created_at": data["t"], "order_id": data["o"]}


def _by_account_query(account_id: str, statuses: frozenset[str] | None, limit: int) -> dict[str, Any]:
    """The ``by-account`` index query of an account's orders, newest first, ``limit`` read per page,
    filtered to ``statuses`` when given."""
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
    return kwargs


RELEASE_ATTEMPTS: Final = 3  # a replace's give-back cancelled by transaction conflicts alone
RELEASE_BACKOFF_S: Final = 0.02  # times the attempt number, between those attempts


class DynamoOrderRepository(LazyTable):
    """Orders (``OrdersTable``). ``accounts_table`` (``AccountsTable``) is needed only to begin a
    replace that reserved up front, or to give its reservation back: both are transactions with
    a condition on the account item's or the order's side (see ``begin_replace``)."""

    def __init__(self, table_name: str, table: Any = None, accounts_table: str | None = None) -> None:
        super().__init__(table_name, table)
        self.accounts_table = accounts_table

    def _accounts(self) -> str:
        if self.accounts_table is None:
            raise ValueError("a replace's reservation needs the accounts table (accounts_table)")
        return self.accounts_table

    def put_new(self, order: Order) -> bool:
        return conditional_write(
            self.table.put_item, Item=order_to_item(order), ConditionExpression="attribute_not_exists(order_id)"
        )

    def put_group(self, legs: list[Order]) -> bool:
        """Both legs of an OCO group in one transaction, unless either exists (False). A
        transaction cancelled for another reason (a conflict) is raised."""
        puts = [{"Put": {"TableName": self.table.name, "Item": order_to_item(leg),
                         "ConditionExpression": "attribute_not_exists(order_id)"}} for leg in legs]  # fmt: skip
        return transaction(self.table.meta.client.transact_write_items, TransactItems=puts).applied_or_refused()

    def begin_replace(
        self, order: Order, number: int, terms: ReplaceTerms | None, protection_price: Decimal | None, now: datetime,
        reservation_id: str | None = None, check_held: bool = False,
    ) -> Order | None:
        open_statuses = sorted(OPEN_STATUSES)
        values: dict[str, Any] = {
            ":n": number,
            ":prev": number - 1,
            ":true": True,
            ":false": False,
            ":ts": iso(now),
            ":acct": order.account_id,
            **{f":o{i}": status for i, status in enumerate(open_statuses)},
        }
        # in the pending-replaces index until the engine's answer is applied (``folding.PENDING_REPLACE``)
        values[":rs"] = entry_shard(order.order_id)
        sets = ["replace_count = :n", "replace_pending = :true", "updated_at = :ts", "replace_shard = :rs",
                "replace_at = :ts"]  # fmt: skip
        if terms is not None:
            values[":topup"] = terms.topup_total
            sets.append("price_topup = :topup")
            if terms.cover_rate is not None:
                values[":cover"] = terms.cover_rate
                sets.append("cover_rate = :cover")
        if protection_price is not None:
            values[":cap"] = protection_price
            sets.append("protection_price = :cap")
        placeholders = ", ".join(f":o{i}" for i in range(len(open_statuses)))
        update = {
            "Update": {
                "TableName": self.table.name,
                "Key": {"order_id": order.order_id},
                "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE replace_reject_reason",
                "ConditionExpression": (
                    f"attribute_exists(order_id) AND account_id = :acct AND #status IN ({placeholders}) AND "
                    "(attribute_not_exists(replace_count) OR replace_count = :prev) AND "
                    "(attribute_not_exists(replace_pending) OR replace_pending = :false)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
            }
        }
        items: list[dict[str, Any]] = [update]
        if terms is not None:
            terms_items = _terms_items(order, number, terms.quantity_change, terms.settle_cash, terms.topup,
                                       reservation_id)  # fmt: skip
            items += [{"Put": {"TableName": self.table.name, "Item": item}} for item in terms_items]
        if reservation_id is not None and check_held:
            # only while the account holds the id: a request of the same number that found it in
            # place never begins on what the request that wrote it gave back
            # (``release_replace_reservation``)
            items.append({"ConditionCheck": {
                "TableName": self._accounts(), "Key": {"account_id": order.account_id},
                "ConditionExpression": "contains(#res, :rid)", "ExpressionAttributeNames": {"#res": RESERVATIONS},
                "ExpressionAttributeValues": {":rid": reservation_id},
            }})  # fmt: skip
        if not transaction(self.table.meta.client.transact_write_items, TransactItems=items).applied_or_refused():
            return None
        return self.get(order.order_id)

    def release_replace_reservation(self, order_id: str, number: int, reservation: Reservation) -> ReplaceRelease:
        """Give a replace's reservation back by id, in one transaction with the condition that
        replace ``number`` of the order has not begun. ``BEGUN`` when it has (nothing given back:
        whether the replace holds this id is the caller's to read), ``NOT_HELD`` when the account
        does not hold the id (nothing to give back), else ``RELEASED``."""
        check = {"ConditionCheck": {
            "TableName": self.table.name, "Key": {"order_id": order_id},
            "ConditionExpression": "attribute_not_exists(order_id) OR attribute_not_exists(replace_count) "
                                   "OR replace_count < :n",
            "ExpressionAttributeValues": {":n": number},
        }}  # fmt: skip
        release = {"Update": {
            "TableName": self._accounts(), "Key": {"account_id": reservation.account_id},
            **release_held_update(reservation.reservation_id, reservation.side, reservation.symbol,
                                  reservation.quantity, reservation.amount),
        }}  # fmt: skip
        for attempt in range(RELEASE_ATTEMPTS):
            outcome = transaction(self.table.meta.client.transact_write_items, TransactItems=[check, release])
            if outcome.applied:
                return ReplaceRelease.RELEASED
            if outcome.refused(0):
                return ReplaceRelease.BEGUN
            if outcome.refused(1):
                return ReplaceRelease.NOT_HELD
            if not outcome.conflicts_only:
                break  # throttled, or refused as invalid: raised
            time.sleep(RELEASE_BACKOFF_S * (attempt + 1))  # a conflict with a write of the order or account: again
        raise outcome.cancellation()

    def delete_pending(self, order: Order) -> bool:
        """True when the table no longer holds the order (deleted, or never stored); False when
        it holds it in another status than ``pending_new`` (its command reached the engine)."""
        still_there = conditional_write_or_old(
            self.table.delete_item,
            Key={"order_id": order.order_id},
            ConditionExpression="#status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": "pending_new"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return still_there is None

    entry_shards = ENTRY_SHARDS

    def pending_entries(self, shard: int, since: str | None, before: str, limit: int) -> list[PendingEntry]:
        """One partition of the ``pending-entries`` index, oldest first, from ``since`` (all when
        None) up to ``before`` (ISO instants, both included), at most ``limit``: Query pages."""
        bound = Key("created_at").between(since, before) if since is not None else Key("created_at").lte(before)
        items = self._first_of_index(PENDING_ENTRIES_INDEX, Key(ENTRY_SHARD).eq(f"e{shard}") & bound, limit)
        return [PendingEntry(order_id=str(item["order_id"]), account_id=str(item["account_id"]),
                             symbol=str(item["symbol"]), created_at=str(item["created_at"]),
                             group_id=str(item["group_id"]) if item.get("group_id") else None)
                for item in items]  # fmt: skip

    def pending_replaces(self, shard: int, before: str, limit: int) -> list[PendingReplace]:
        """One partition of the ``pending-replaces`` index, oldest first, begun up to ``before``
        (an ISO instant, included), at most ``limit``: Query pages."""
        key = Key(PENDING_REPLACE[0]).eq(f"e{shard}") & Key(PENDING_REPLACE[1]).lte(before)
        return [PendingReplace(order_id=str(item["order_id"]), account_id=str(item["account_id"]),
                               symbol=str(item["symbol"]), number=int(item["replace_count"]),
                               begun_at=str(item[PENDING_REPLACE[1]]))
                for item in self._first_of_index(PENDING_REPLACES_INDEX, key, limit)]  # fmt: skip

    def _first_of_index(self, index: str, key: Any, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` items of one partition of a sparse index, oldest first: Query pages
        of ``limit``, no page more than needed."""
        found: list[dict[str, Any]] = []
        for page in pages(self.table.query, IndexName=index, Limit=limit, KeyConditionExpression=key):
            found.extend(page.get("Items") or [])
            if len(found) >= limit:
                break
        return found[:limit]

    def swept_through(self) -> str | None:
        item = self.table.get_item(Key={"order_id": SWEEP_KEY}, ConsistentRead=True).get("Item")
        return str(item["through"]) if item and item.get("through") else None

    def mark_swept(self, through: str) -> None:
        self.table.put_item(Item={"order_id": SWEEP_KEY, "through": through})

    def get(self, order_id: str) -> Order | None:
        item = self.table.get_item(Key={"order_id": order_id}, ConsistentRead=True).get("Item")
        return order_from_item(item) if item and is_order_item(item) else None

    def replace_reservation(self, order_id: str, number: int) -> str | None:
        item = self.table.get_item(
            Key={"order_id": replace_record_id(order_id, number)}, ConsistentRead=True,
            ProjectionExpression="reservation_id",
        ).get("Item")  # fmt: skip
        return str(item["reservation_id"]) if item and item.get("reservation_id") else None

    def get_many(self, order_ids: list[str]) -> dict[str, Order]:
        """The orders of ``order_ids`` that exist, by id: consistent reads, one ``BatchGetItem``
        per 100 ids."""
        keys = [{"order_id": order_id} for order_id in dict.fromkeys(order_ids)]
        items = batch_get(self.table, keys, ConsistentRead=True) if keys else []
        return {str(item["order_id"]): order_from_item(item) for item in items if is_order_item(item)}

    def list_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int
    ) -> list[Order]:
        kwargs = _by_account_query(account_id, statuses, limit)
        orders: list[Order] = []
        if limit <= 0:
            return orders
        for page in pages(self.table.query, **kwargs):
            orders.extend(order_from_item(item) for item in page.get("Items", []))
            if len(orders) >= limit:
                break
        return orders[:limit]

    def page_by_account(
        self, account_id: str, statuses: frozenset[str] | None, limit: int, cursor: str | None
    ) -> tuple[list[Order], str | None]:
        """The account's orders, newest first, after ``cursor``, and the cursor of the next page
        (None when no order is left). The cursor names the last order listed (its ``by-account``
        key); it pages on in the caller's own account only."""
        kwargs = _by_account_query(account_id, statuses, max(limit, FILTERED_READ) if statuses else limit)
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = {"account_id": account_id, **decode_order_cursor(cursor)}
        orders: list[Order] = []
        last: dict[str, Any] | None = None
        for _ in range(MAX_PAGE_READS):
            page = self.table.query(**kwargs)
            items = page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            for position, item in enumerate(items, start=1):
                orders.append(order_from_item(item))
                if len(orders) == limit:
                    more = position < len(items) or last is not None
                    return orders, encode_order_cursor(item) if more else None
            if last is None:
                return orders, None
            kwargs["ExclusiveStartKey"] = last
        return orders, encode_order_cursor(last) if last is not None else None

    def mark_cancel_requested(self, order: Order, now: datetime) -> Order | None:
        open_statuses = sorted(OPEN_STATUSES)
        values: dict[str, Any] = {
            ":true": True,
            ":ts": iso(now),
            ":acct": order.account_id,
            **{f":o{i}": status for i, status in enumerate(open_statuses)},
        }
        placeholders = ", ".join(f":o{i}" for i in range(len(open_statuses)))
        result = conditional_answer(
            self.table.update_item,
            Key={"order_id": order.order_id},
            UpdateExpression="SET cancel_requested = :true, cancel_requested_at = :ts",
            ConditionExpression=f"attribute_exists(order_id) AND account_id = :acct AND #status IN ({placeholders})",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return order_from_item(result["Attributes"]) if result is not None else None

    def apply(self, change: OrderChange) -> ApplyResult:
        names: dict[str, str] = {"#last_seq": "last_seq", "#last_epoch": "last_epoch"}
        values: dict[str, Any] = {":seq": change.seq, ":epoch": change.epoch}
        sets = ["#last_seq = :seq", "#last_epoch = :epoch"]
        # the engine has received the order: out of the entry sweep's index
        to_remove = [*change.remove, ENTRY_SHARD] if change.received else list(change.remove)
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
        # A newer seq, from the same or a later engine leader (epoch): replays and redeliveries
        # (older seq) and a deposed leader's events (older epoch) are dropped.
        condition = (
            "attribute_exists(order_id) AND "
            "(attribute_not_exists(#last_seq) OR #last_seq < :seq) AND "
            "(attribute_not_exists(#last_epoch) OR #last_epoch <= :epoch)"
        )
        if change.only_status is not None:
            names["#status_now"] = "status"
            values[":status_now"] = change.only_status
            condition += " AND #status_now = :status_now"
        if change.only_replace is not None:
            values.update({":pending_now": True, ":replace_now": change.only_replace})
            condition += " AND replace_pending = :pending_now AND replace_count = :replace_now"
        outcome = conditional(
            self.table.update_item,
            Key={"order_id": change.order_id},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if not outcome.written:
            found = outcome.old
            return ApplyResult(False, order_from_item(found) if found and is_order_item(found) else None)
        return ApplyResult(True, order_from_item(outcome.answer["Attributes"]))


class KinesisCommandPublisher:
    """Puts a command on ``order-commands`` with partition key = symbol."""

    def __init__(self, stream_name: str, client: Any = None) -> None:
        self.stream_name = stream_name
        self._client = client

    def publish(self, command: AnyOrderCommand) -> None:
        if command.symbol is None:  # the API sends one mass cancel per symbol, never an all-symbols one
            raise ValueError("a command on order-commands needs a symbol (its partition key)")
        client = self._client or aws.client("kinesis")
        client.put_record(
            StreamName=self.stream_name,
            Data=command.model_dump_json().encode("utf-8"),
            PartitionKey=command.symbol,
        )

    def publish_all(self, commands: list[FenceCommand]) -> None:
        """Many commands at once (``PutRecords``, 500 a call), each on its symbol's shard."""
        kinesis.put_records(self.stream_name, [(c.symbol, c.model_dump_json().encode("utf-8")) for c in commands])


def _terms_items(
    order: Order, number: int, quantity_change: Decimal, settle_cash: Decimal, topup: Decimal,
    reservation_id: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The risk consumer's facts of replace ``number``: ``~r<n>`` (quantity = the change of the
    total, reserve_rate = cash settled on ``replaced``, reservation_id = the id of what it reserved
    up front, ``nexus_common.risk.replace_reservation_id``) and, for a buy, ``~p<n>`` (reserve_rate
    = the price top-up held until the order ends)."""
    common = {"record_of": order.order_id, "side": order.side, "reserved": True}
    items = [{"order_id": replace_record_id(order.order_id, number), **common,
              "quantity": quantity_change, "reserve_rate": settle_cash}]  # fmt: skip
    if reservation_id is not None:
        items[0]["reservation_id"] = reservation_id
    if order.side == "buy":
        items.append({"order_id": topup_record_id(order.order_id, number), **common,
                      "quantity": Decimal(1), "reserve_rate": topup})  # fmt: skip
    return items


class DynamoRiskBook(LazyTable):
    """Reservations on the account item (``AccountsTable``): one conditional ``UpdateItem`` per
    order (see ``nexus_common.risk`` for the attributes), which also ADDs the reservation's id to
    the item's ``reservations`` set under ``NOT contains(reservations, id)``. A refused write reads
    the item returned with the failed condition (``ALL_OLD``): when it already holds the id, the
    reservation is in place (the write applied before, e.g. an SDK retry of a write whose answer
    was lost, or another request's of the same id) and nothing more is done (``reserve`` answers
    False); else nothing was written and the reason is the refusal (``risk.refusal``)."""

    def reserve(self, reservation: Reservation, limits: RiskLimits) -> bool:
        names: dict[str, str] = {"#status": "status", "#res": RESERVATIONS}
        rid = reservation.reservation_id
        values: dict[str, Any] = {":active": "active", ":false": False, ":zero": ZERO, ":rid": rid, ":rids": {rid},
                                  ":open": limits.max_open_orders}  # fmt: skip
        checks = [
            "attribute_exists(account_id)",
            "NOT contains(#res, :rid)",
            "#status = :active",
            "(attribute_not_exists(trading_enabled) OR trading_enabled <> :false)",
            "(attribute_not_exists(#res) OR size(#res) < :open)",
        ]
        if reservation.side == "buy":
            names["#exp"] = attr("buying", reservation.symbol)
            values[":amt"] = reservation.amount
            values[":q"] = reservation.quantity
            values[":max"] = limits.position_limit - reservation.quantity
            update = (
                "SET available_cash = if_not_exists(available_cash, cash) - :amt, "
                "opening_cash = if_not_exists(opening_cash, cash), "
                "#exp = if_not_exists(#exp, :zero) + :q"
            )
            checks.append(
                "((attribute_exists(available_cash) AND available_cash >= :amt) OR "
                "(attribute_not_exists(available_cash) AND cash >= :amt))"
            )
            checks.append("(attribute_not_exists(#exp) OR #exp <= :max)")
        else:
            names["#sell"] = attr("sellable", reservation.symbol)
            floor = reservation.quantity - min(limits.short_limit, limits.position_limit)
            values[":q"] = reservation.quantity
            values[":min"] = floor
            update = "SET #sell = if_not_exists(#sell, :zero) - :q, opening_cash = if_not_exists(opening_cash, cash)"
            checks.append("(attribute_not_exists(#sell) OR #sell >= :min)" if floor <= 0 else "#sell >= :min")
        outcome = conditional(
            self.table.update_item,
            Key={"account_id": reservation.account_id},
            UpdateExpression=update + " ADD #res :rids",
            ConditionExpression=" AND ".join(checks),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        if outcome.written:
            return True
        item = outcome.old
        if item is not None and reservation.reservation_id in item.get(RESERVATIONS, set()):
            return False  # already in place: the same reservation applied before
        raise refusal(reservation, item, limits)

    def holds(self, account_id: str, reservation_id: str) -> bool:
        item = self.table.get_item(
            Key={"account_id": account_id}, ProjectionExpression="#res",
            ExpressionAttributeNames={"#res": RESERVATIONS}, ConsistentRead=True,
        ).get("Item")  # fmt: skip
        return item is not None and reservation_id in (item.get(RESERVATIONS) or ())

    def release(self, reservation: Reservation) -> bool:
        """Give the reservation back and DELETE its id, only while the item holds the id: False
        when it does not (never applied, or already given back), and nothing changes."""
        return conditional_write(
            self.table.update_item,
            Key={"account_id": reservation.account_id},
            **release_held_update(reservation.reservation_id, reservation.side, reservation.symbol,
                                  reservation.quantity, reservation.amount),
        )  # fmt: skip


class DynamoMarketReference:
    """Reference prices from the market data tables: the last trade (``TradesTable``, newest
    ``seq``) and the best ask (``BookLevelsTable``, lowest live ``A#`` level)."""

    def __init__(self, trades_table: str, book_levels_table: str) -> None:
        self._trades = LazyTable(trades_table)  # each Table made once (boto3 builds a class per Table())
        self._levels = LazyTable(book_levels_table)

    def last_trade(self, symbol: str) -> Decimal | None:
        page = self._trades.table.query(
            KeyConditionExpression="symbol = :s",
            ExpressionAttributeValues={":s": symbol},
            ScanIndexForward=False,
            Limit=1,
        )
        items = page.get("Items", [])
        return Decimal(str(items[0]["price"])) if items else None

    def best_ask(self, symbol: str) -> Decimal | None:
        levels = self.levels(symbol, "sell")
        return levels[0][0] if levels else None

    def levels(self, symbol: str, side: str, depth: int = 20) -> list[tuple[Decimal, Decimal]]:
        """The live levels (price, quantity) of one side of the book among its best ``depth``
        (``buy``: the bids, highest first; ``sell``: the asks, lowest first), one read."""
        page = self._levels.table.query(
            KeyConditionExpression="symbol = :s AND begins_with(#level, :p)",
            ExpressionAttributeNames={"#level": "level"},
            ExpressionAttributeValues={":s": symbol, ":p": "B#" if side == "buy" else "A#"},
            ScanIndexForward=side != "buy",
            Limit=depth,
        )
        live = ((Decimal(str(item["price"])), Decimal(str(item.get("quantity", 0)))) for item in page.get("Items", []))
        return [(price, quantity) for price, quantity in live if quantity > 0]
