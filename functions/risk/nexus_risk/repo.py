"""Data access of the risk consumer: the account item (one conditional write per account per
batch, ``nexus_risk.coalesce``, and one release while held per entry closed by the fence) and the
orders table (reservation facts of an order, read in batches and cached: they never change)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

from nexus_common import aws
from nexus_common.dynamo import LazyTable, conditional_write
from nexus_common.dynamo_batch import batch_get, batch_get_tables
from nexus_common.risk import RESERVATIONS, ZERO, attr, release_held_update

from nexus_risk.coalesce import AccountWrite, Watermarks
from nexus_risk.domain import AccountChange, HeldRelease, OrderFacts

FACTS_CACHE_SIZE: Final = 10_000
FACTS_PROJECTION: Final = "order_id, side, quantity, reserved, reserve_rate, reservation_id"


class StaleAccount(RuntimeError):
    """An account's watermarks changed between the batch's read and its write (another writer):
    the batch is retried."""


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
        update = (
            "SET cash = cash + :cash, "
            "available_cash = if_not_exists(available_cash, cash) + :avail, "
            "opening_cash = if_not_exists(opening_cash, cash), "
            "#pos = if_not_exists(#pos, :zero) + :pos, "
            "#sell = if_not_exists(#sell, :zero) + :sell, "
            "#buy = if_not_exists(#buy, :zero) + :buy, "
            "#seq = :seq"
        ) + _delete_ended(change.ended_ids, names, values)
        return conditional_write(
            self.table.update_item,
            Key={"account_id": change.account_id},
            UpdateExpression=update,
            ConditionExpression="attribute_exists(account_id) AND (attribute_not_exists(#seq) OR #seq < :seq)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def watermarks(self, keys: Iterable[tuple[str, str]]) -> Watermarks:
        """``seq#S`` of each (account, symbol) (None when absent), from one consistent read per
        100 accounts; the keys of an account that does not exist are left out."""
        wanted = _by_account(keys)
        if not wanted:
            return {}
        items = batch_get(self.table, _account_keys(wanted), ConsistentRead=True, **_watermark_projection(wanted))
        return _watermarks_found(wanted, items)

    def write(self, write: AccountWrite) -> None:
        """Add one batch's deltas to the account item with one conditional ``UpdateItem`` that also
        DELETEs the reservation ids the batch ended from the ``reservations`` set: the item must
        exist and still hold the watermarks the batch was folded from; otherwise ``StaleAccount``
        (the batch is retried and folded again)."""
        sets = [
            "cash = cash + :cash",
            "available_cash = if_not_exists(available_cash, cash) + :avail",
            "opening_cash = if_not_exists(opening_cash, cash)",
        ]
        conditions = ["attribute_exists(account_id)"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {":cash": write.cash, ":avail": write.available, ":zero": ZERO}
        for i, (symbol, delta) in enumerate(sorted(write.symbols.items())):
            names.update({
                f"#seq{i}": attr("seq", symbol),
                f"#pos{i}": attr("pos", symbol),
                f"#sell{i}": attr("sellable", symbol),
                f"#buy{i}": attr("buying", symbol),
            })
            values.update({
                f":seq{i}": write.seq[symbol],
                f":pos{i}": delta.pos,
                f":sell{i}": delta.sellable,
                f":buy{i}": delta.buying,
            })
            sets += [
                f"#pos{i} = if_not_exists(#pos{i}, :zero) + :pos{i}",
                f"#sell{i} = if_not_exists(#sell{i}, :zero) + :sell{i}",
                f"#buy{i} = if_not_exists(#buy{i}, :zero) + :buy{i}",
                f"#seq{i} = :seq{i}",
            ]
            previous = write.previous[symbol]
            if previous is None:
                conditions.append(f"attribute_not_exists(#seq{i})")
            else:
                values[f":prev{i}"] = previous
                conditions.append(f"#seq{i} = :prev{i}")
        update = "SET " + ", ".join(sets) + _delete_ended(write.ended_ids, names, values)
        written = conditional_write(
            self.table.update_item,
            Key={"account_id": write.account_id},
            UpdateExpression=update,
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if not written and not self._holds(write):
            raise StaleAccount(f"account {write.account_id} changed while the batch was applied")

    def release_held(self, release: HeldRelease) -> bool:
        """Give a reservation back by id with one conditional ``UpdateItem``, only while the account
        item holds the id (``nexus_common.risk.release_held_update``, as the orders API's
        compensation): False when it does not (never written, or already given back, or no such
        account), and nothing changes."""
        return conditional_write(
            self.table.update_item,
            Key={"account_id": release.account_id},
            **release_held_update(
                release.reservation_id, release.side, release.symbol, release.quantity, release.amount
            ),
        )

    def _holds(self, write: AccountWrite) -> bool:
        """After a refused write: True when the item already holds exactly the watermarks the write
        sets (the write went through and the SDK's retry of it was refused), or no longer exists."""
        names = {f"#s{i}": attr("seq", symbol) for i, symbol in enumerate(sorted(write.seq))}
        item = self.table.get_item(
            Key={"account_id": write.account_id},
            ConsistentRead=True,
            ProjectionExpression=", ".join(["account_id", *names]),
            ExpressionAttributeNames=names,
        ).get("Item")
        if item is None:
            return True
        return all(item.get(attr("seq", symbol)) == seq for symbol, seq in write.seq.items())


class DynamoOrderFacts:
    """``OrderFacts`` from ``OrdersTable`` (consistent read), cached: they never change."""

    def __init__(self, table_name: str, table: Any = None) -> None:
        self.table_name = table_name
        self._table = table
        self._cache: OrderedDict[str, OrderFacts] = OrderedDict()
        self._absent: set[str] = set()

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = aws.dynamodb_table(self.table_name)
        return self._table

    def prefetch(self, order_ids: Iterable[str]) -> None:
        """Read the facts of the orders not cached yet, 100 to a consistent ``BatchGetItem``. Until
        the next prefetch (the next batch), an id it did not find is answered None without
        another read (most ended orders have no price top-up item, for instance)."""
        missing = self.missing(order_ids)
        if missing:
            self.found(batch_get(self.table, missing, ConsistentRead=True, ProjectionExpression=FACTS_PROJECTION))

    def missing(self, order_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The keys of the orders not cached yet, each answered None until ``found`` says
        otherwise (a prefetch's first half)."""
        missing = sorted({order_id for order_id in order_ids if order_id not in self._cache})
        self._absent = set(missing)
        return [{"order_id": order_id} for order_id in missing]

    def found(self, items: Iterable[dict[str, Any]]) -> None:
        """The items a read of ``missing``'s keys found (a prefetch's second half)."""
        for item in items:
            self._absent.discard(self._remember(item).order_id)

    def __call__(self, order_id: str) -> OrderFacts | None:
        found = self._cache.get(order_id)
        if found is not None:
            return found
        if order_id in self._absent:
            return None
        item = self.table.get_item(
            Key={"order_id": order_id},
            ConsistentRead=True,
            ProjectionExpression=FACTS_PROJECTION,
        ).get("Item")
        if not item:
            return None
        return self._remember(item)

    def _remember(self, item: dict[str, Any]) -> OrderFacts:
        order_id = str(item["order_id"])
        rate = item.get("reserve_rate")
        facts = OrderFacts(
            order_id=order_id,
            side=str(item["side"]),
            quantity=Decimal(str(item["quantity"])),
            reserved=bool(item.get("reserved", False)),
            reserve_rate=Decimal(str(rate)) if rate is not None else None,
            reservation_id=str(item["reservation_id"]) if item.get("reservation_id") else None,
        )
        self._cache[order_id] = facts
        if len(self._cache) > FACTS_CACHE_SIZE:
            self._cache.popitem(last=False)
        return facts


class DynamoBatchReads:
    """A batch's two reads in one consistent ``BatchGetItem`` (100 keys a call, whichever table):
    the facts of its orders not cached yet and the watermarks of the (account, symbol) pairs its
    events name (``nexus_risk.domain.account_keys``), instead of one call for each."""

    def __init__(self, facts: DynamoOrderFacts, accounts: DynamoAccounts) -> None:
        self.facts = facts
        self.accounts = accounts

    def load(self, order_ids: Iterable[str], keys: Iterable[tuple[str, str]]) -> Watermarks:
        missing = self.facts.missing(order_ids)
        wanted = _by_account(keys)
        reads = {self.facts.table: missing, self.accounts.table: _account_keys(wanted)}
        options = {self.facts.table.name: {"ProjectionExpression": FACTS_PROJECTION},
                   self.accounts.table.name: _watermark_projection(wanted)}  # fmt: skip
        found = batch_get_tables({table: keys for table, keys in reads.items() if keys}, options, ConsistentRead=True)
        self.facts.found(found.get(self.facts.table.name, []))
        return _watermarks_found(wanted, found.get(self.accounts.table.name, []))


def _by_account(keys: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for account_id, symbol in keys:
        wanted.setdefault(account_id, set()).add(symbol)
    return wanted


def _account_keys(wanted: dict[str, set[str]]) -> list[dict[str, Any]]:
    return [{"account_id": account_id} for account_id in wanted]


def _watermark_projection(wanted: dict[str, set[str]]) -> dict[str, Any]:
    """Only the ``seq#S`` attributes read (an account item also holds its reservation ids)."""
    symbols = sorted({symbol for names in wanted.values() for symbol in names})
    names = {f"#s{i}": attr("seq", symbol) for i, symbol in enumerate(symbols)}
    return {"ProjectionExpression": ", ".join(["account_id", *names]), "ExpressionAttributeNames": names}


def _watermarks_found(wanted: dict[str, set[str]], items: Iterable[dict[str, Any]]) -> Watermarks:
    found: dict[tuple[str, str], int | None] = {}
    for item in items:
        account_id = str(item["account_id"])
        for symbol in wanted.get(account_id, ()):
            value = item.get(attr("seq", symbol))
            found[(account_id, symbol)] = None if value is None else int(value)
    return found


def _delete_ended(ended_ids: list[str], names: dict[str, str], values: dict[str, Any]) -> str:
    """The ``DELETE`` clause that removes the reservation ids a write ended from the account
    item's set (an id the set does not hold changes nothing); empty when it ended none."""
    if not ended_ids:
        return ""
    names["#res"] = RESERVATIONS
    values[":ended"] = set(ended_ids)
    return " DELETE #res :ended"
