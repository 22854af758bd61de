"""The gateway's own record of the orders entered over FIX: which session owns an order (its FIX
origin), its ClOrdID chain, and the cumulative state its execution reports carry.

One DynamoDB table (``FixOrdersTable``, key ``pk``) holds three kinds of item:

=====================================  ==============================================================
``o#<order id>``                       a ``FixOrder`` (session, ClOrdIDs, terms, CumQty, last engine seq
                                       applied ``seq``, last seq reported ``sent_seq``)
``c#<account id>#<ClOrdID>``           a ClOrdID claimed for an account -> the order id it names (a
                                       cancel/replace ClOrdID names the order it acts on)
``k#<stream>#<shard id>``              the execution-events consumer's checkpoint of one shard
=====================================  ==============================================================

ClOrdIDs are claimed per account because the orders service derives an order's id from
(account, client_order_id): the same ClOrdID on two sessions of one account names one order.
No boto3 in the domain part; ``DynamoFixOrders`` is the adapter, ``MemoryFixOrders`` the fake.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.dynamo import LazyTable, conditional_write

ZERO = Decimal(0)


@dataclass(frozen=True)
class Pending:
    """A cancel or replace request waiting for the engine: its ClOrdID and the one it acts on."""

    kind: str  # cancel | replace
    cl_ord_id: str
    orig_cl_ord_id: str


@dataclass(frozen=True)
class FixOrder:
    order_id: str
    session_id: str
    account_id: str
    cl_ord_id: str  # the order's current ClOrdID (the last replace's)
    symbol: str
    side: str  # buy | sell
    ord_type: str  # limit | market | stop | stop_limit
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "day"
    orig_cl_ord_id: str | None = None  # the ClOrdID the current one replaced
    pending: Pending | None = None
    status: str = "A"  # OrdStatus (39) as last reported
    cum_qty: Decimal = ZERO
    cum_notional: Decimal = ZERO
    leaves_qty: Decimal = ZERO
    seq: int = 0  # the last engine seq applied to this record
    sent_seq: int = 0  # the last engine seq whose reports were handed to the session
    created_at: str = ""

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None}
        item["pk"] = order_key(self.order_id)
        if self.pending is not None:
            item["pending"] = asdict(self.pending)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> FixOrder:
        data = {k: v for k, v in item.items() if k in _FIELDS}
        for name in ("quantity", "cum_qty", "cum_notional", "leaves_qty", "price", "stop_price"):
            if data.get(name) is not None:
                data[name] = Decimal(str(data[name]))
        for name in ("seq", "sent_seq"):
            data[name] = int(data.get(name, 0))
        pending = data.get("pending")
        data["pending"] = Pending(**{k: str(v) for k, v in pending.items()}) if pending else None
        return cls(**data)


_FIELDS = frozenset(FixOrder.__dataclass_fields__)


def order_key(order_id: str) -> str:
    return f"o#{order_id}"


def claim_key(account_id: str, cl_ord_id: str) -> str:
    return f"c#{account_id}#{cl_ord_id}"


def checkpoint_key(stream: str, shard_id: str) -> str:
    return f"k#{stream}#{shard_id}"


class FixOrderStore(Protocol):
    def claim(self, account_id: str, cl_ord_id: str, order_id: str) -> bool:
        """Claim a ClOrdID for an account; False when it was claimed before (by any order)."""

    def unclaim(self, account_id: str, cl_ord_id: str) -> None: ...

    def lookup(self, account_id: str, cl_ord_id: str) -> str | None:
        """The order id a ClOrdID of the account names, None when unknown."""

    def get(self, order_id: str) -> FixOrder | None: ...

    def forget(self, order_id: str) -> None:
        """Drop a record written for an order that turned out not to be the gateway's."""

    def get_many(self, order_ids: Iterable[str]) -> dict[str, FixOrder]: ...

    def save(self, order: FixOrder) -> None:
        """Write the record as is (the gateway serialises the writers of one order)."""

    def apply(self, order: FixOrder) -> bool:
        """Write the record only if the stored one has a lower ``seq`` (an engine event applied
        once); False when it does not."""

    def mark_sent(self, order_id: str, seq: int) -> None: ...

    def checkpoint(self, stream: str, shard_id: str) -> str | None: ...

    def set_checkpoint(self, stream: str, shard_id: str, sequence_number: str) -> None: ...


@dataclass
class MemoryFixOrders:
    """In-memory store for unit tests (same semantics as the DynamoDB one)."""

    items: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, account_id: str, cl_ord_id: str, order_id: str) -> bool:
        with self._lock:
            key = claim_key(account_id, cl_ord_id)
            if key in self.items:
                return False
            self.items[key] = order_id
            return True

    def unclaim(self, account_id: str, cl_ord_id: str) -> None:
        with self._lock:
            self.items.pop(claim_key(account_id, cl_ord_id), None)

    def lookup(self, account_id: str, cl_ord_id: str) -> str | None:
        found = self.items.get(claim_key(account_id, cl_ord_id))
        return found if isinstance(found, str) else None

    def get(self, order_id: str) -> FixOrder | None:
        found = self.items.get(order_key(order_id))
        return found if isinstance(found, FixOrder) else None

    def forget(self, order_id: str) -> None:
        with self._lock:
            self.items.pop(order_key(order_id), None)

    def get_many(self, order_ids: Iterable[str]) -> dict[str, FixOrder]:
        return {oid: o for oid in set(order_ids) if (o := self.get(oid)) is not None}

    def save(self, order: FixOrder) -> None:
        with self._lock:
            self.items[order_key(order.order_id)] = order

    def apply(self, order: FixOrder) -> bool:
        with self._lock:
            current = self.items.get(order_key(order.order_id))
            if isinstance(current, FixOrder) and current.seq >= order.seq:
                return False
            self.items[order_key(order.order_id)] = order
            return True

    def mark_sent(self, order_id: str, seq: int) -> None:
        with self._lock:
            current = self.items.get(order_key(order_id))
            if isinstance(current, FixOrder) and current.sent_seq < seq:
                self.items[order_key(order_id)] = replace(current, sent_seq=seq)

    def checkpoint(self, stream: str, shard_id: str) -> str | None:
        found = self.items.get(checkpoint_key(stream, shard_id))
        return found if isinstance(found, str) else None

    def set_checkpoint(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self.items[checkpoint_key(stream, shard_id)] = sequence_number


class DynamoFixOrders(LazyTable):
    """``FixOrdersTable`` (key ``pk``): orders, ClOrdID claims and shard checkpoints."""

    def claim(self, account_id: str, cl_ord_id: str, order_id: str) -> bool:
        return conditional_write(
            self.table.put_item,
            Item={"pk": claim_key(account_id, cl_ord_id), "order_id": order_id},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def unclaim(self, account_id: str, cl_ord_id: str) -> None:
        self.table.delete_item(Key={"pk": claim_key(account_id, cl_ord_id)})

    def lookup(self, account_id: str, cl_ord_id: str) -> str | None:
        item = self.table.get_item(Key={"pk": claim_key(account_id, cl_ord_id)}, ConsistentRead=True).get("Item")
        return str(item["order_id"]) if item else None

    def get(self, order_id: str) -> FixOrder | None:
        item = self.table.get_item(Key={"pk": order_key(order_id)}, ConsistentRead=True).get("Item")
        return FixOrder.from_item(item) if item else None

    def forget(self, order_id: str) -> None:
        self.table.delete_item(Key={"pk": order_key(order_id)})

    def get_many(self, order_ids: Iterable[str]) -> dict[str, FixOrder]:
        keys = sorted(set(order_ids))
        found: dict[str, FixOrder] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"pk": order_key(k)} for k in keys[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            for _ in range(20):  # unprocessed keys are retried, a bounded number of times
                answer = _batch_get(self.table, request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    order = FixOrder.from_item(item)
                    found[order.order_id] = order
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError("fix orders not read: keys left unprocessed")
        return found

    def save(self, order: FixOrder) -> None:
        self.table.put_item(Item=_dynamo_item(order))

    def apply(self, order: FixOrder) -> bool:
        return conditional_write(
            self.table.put_item,
            Item=_dynamo_item(order),
            ConditionExpression="attribute_not_exists(pk) OR #seq < :seq",
            ExpressionAttributeNames={"#seq": "seq"},
            ExpressionAttributeValues={":seq": order.seq},
        )

    def mark_sent(self, order_id: str, seq: int) -> None:
        conditional_write(
            self.table.update_item,
            Key={"pk": order_key(order_id)},
            UpdateExpression="SET sent_seq = :s",
            ConditionExpression="attribute_exists(pk) AND sent_seq < :s",
            ExpressionAttributeValues={":s": seq},
        )

    def checkpoint(self, stream: str, shard_id: str) -> str | None:
        item = self.table.get_item(Key={"pk": checkpoint_key(stream, shard_id)}, ConsistentRead=True).get("Item")
        return str(item["sequence_number"]) if item else None

    def set_checkpoint(self, stream: str, shard_id: str, sequence_number: str) -> None:
        self.table.put_item(Item={"pk": checkpoint_key(stream, shard_id), "sequence_number": sequence_number})


def _dynamo_item(order: FixOrder) -> dict[str, Any]:
    return order.to_item()


def _batch_get(table: Any, request: dict[str, Any]) -> dict[str, Any]:
    """BatchGetItem through the table resource's client (Python values in and out, as the
    resource's other calls)."""
    answer: dict[str, Any] = table.meta.client.batch_get_item(RequestItems=request)
    return answer
