"""The fakes and worlds of the orders tests (the one module of them).

* In memory: the ports of ``nexus_orders.ports`` (``MemoryOrders``, ``MemoryRiskBook``,
  ``EngineMarket``, ``Instruments``, ``RecordingCommands``, ``RecordingNotifier``) and a trading
  venue over them (``Venue``, ``venue``): the real ``OrderService`` and ``PreTradeRisk``, the real
  matching engine in process, and every event it emits applied at once by the real orders
  consumer code (``apply_events``) and the real risk consumer domain
  (``nexus_risk.domain.changes_of``) to one account item per account. The fakes keep the
  contracts of their DynamoDB adapters (``nexus_orders.repo``): items are stored exactly as
  ``order_to_item`` writes them, the replace terms items as ``_terms_items`` writes them, and the
  risk book applies the same conditions as ``DynamoRiskBook.reserve``.
* Under moto, with the tables and streams the template declares: ``World`` (the orders API, a
  funded ``acc_1`` and a last AAPL trade at 100.00), ``OrdersWorld`` (the orders API, accounts
  funded by ``conftest.py``) and ``ConsumerWorld`` (the orders API and the execution-events
  handler).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from lambda_events import FakeLambdaContext, call, kinesis_event, rest_event
from nexus_common.events import (
    COMMAND_ADAPTER,
    ENGINE_EVENT_ADAPTER,
    CancelOrderCommand,
    FenceCommand,
    NewOrderCommand,
    iso,
)
from nexus_common.fees import FeeSchedule
from nexus_common.instruments import DEMO_INSTRUMENTS, Instrument
from nexus_common.risk import ZERO, ReplaceTerms, RiskLimits, RiskRefused, replace_record_id
from nexus_marketdata.repo import put_instruments
from nexus_matching.engine import MatchingEngine
from nexus_orders import on_execution_events
from nexus_orders.api import app, service
from nexus_orders.commands import AnyOrderCommand
from nexus_orders.folding import OrderChange
from nexus_orders.models import NewOrderRequest, OcoRequest
from nexus_orders.order import OPEN_STATUSES, Order
from nexus_orders.ports import ApplyResult, PendingEntry, PendingReplace, ReplaceRelease
from nexus_orders.repo import (
    ENTRY_SHARD,
    ENTRY_SHARDS,
    _terms_items,
    entry_shard,
    is_order_item,
    order_from_item,
    order_to_item,
)
from nexus_orders.risk import Reservation
from nexus_orders.service import EntrySweep, OrderService, PreTradeRisk, apply_events
from nexus_risk.domain import AccountChange, HeldRelease, OrderFacts, changes_of, held_releases

D = Decimal
SYMBOL = "AAPL"
FEES = FeeSchedule.from_bps(D(1), D(3))
LIMITS = RiskLimits(
    max_order_quantity=D(100_000),
    max_order_value=D(10_000_000),
    position_limit=D(1_000_000),
    short_limit=D(100_000),
    price_collar=D("0.10"),
    market_protection=D("0.05"),
    fee_buffer=FEES.max_rate,
    max_open_orders=4000,
)
INSTRUMENT = Instrument(symbol=SYMBOL, tick_size=D("0.01"), lot_size=D(1))
START = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)  # a Thursday, before the 16:00 New York close


class Clock:
    """Command time: each reading is one second after the last (the engine's only clock)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class MemoryOrders:
    """``OrderRepository`` + ``OrderDeleter`` over a dict of DynamoDB-shaped items; ``accounts``
    (the ``Venue``'s) for the transactions that also read or write an account item."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.swept: str | None = None
        self.accounts: dict[str, Account] = {}

    def put_new(self, order: Order) -> bool:
        if order.order_id in self.items:
            return False
        self.items[order.order_id] = order_to_item(order)
        return True

    def put_group(self, legs: list[Order]) -> bool:
        if any(leg.order_id in self.items for leg in legs):
            return False
        for leg in legs:
            self.items[leg.order_id] = order_to_item(leg)
        return True

    def delete_pending(self, order: Order) -> bool:
        item = self.items.get(order.order_id)
        if item is None:
            return True
        if item.get("status") != "pending_new":
            return False
        del self.items[order.order_id]
        return True

    def get(self, order_id: str) -> Order | None:
        item = self.items.get(order_id)
        return order_from_item(item) if item and is_order_item(item) else None

    def replace_reservation(self, order_id: str, number: int) -> str | None:
        item = self.items.get(replace_record_id(order_id, number))
        return str(item["reservation_id"]) if item and item.get("reservation_id") else None

    def get_many(self, order_ids: list[str]) -> dict[str, Order]:
        found = {order_id: self.get(order_id) for order_id in order_ids}
        return {order_id: order for order_id, order in found.items() if order is not None}

    def list_by_account(self, account_id: str, statuses: frozenset[str] | None, limit: int) -> list[Order]:
        found = [self.get(key) for key, item in self.items.items() if item.get("account_id") == account_id]
        orders = [o for o in found if o is not None and (statuses is None or o.status in statuses)]
        return sorted(orders, key=lambda o: o.created_at, reverse=True)[:limit]

    def mark_cancel_requested(self, order: Order, now: datetime) -> Order | None:
        item = self.items.get(order.order_id)
        if item is None or item.get("status") not in OPEN_STATUSES:
            return None
        item.update(cancel_requested=True, cancel_requested_at=iso(now))
        return order_from_item(item)

    def begin_replace(
        self, order: Order, number: int, terms: ReplaceTerms | None, protection_price: Decimal | None, now: datetime,
        reservation_id: str | None = None, check_held: bool = False,
    ) -> Order | None:
        item = self.items.get(order.order_id)
        if (
            item is None
            or item.get("status") not in OPEN_STATUSES
            or int(item.get("replace_count", 0)) != number - 1
            or item.get("replace_pending")
        ):
            return None
        account = self.accounts.get(order.account_id)
        held = account is not None and reservation_id in account.reservations
        if check_held and reservation_id is not None and not held:
            return None  # the account no longer holds the id (given back by another request)
        item.update(replace_count=number, replace_pending=True, updated_at=iso(now),
                    replace_shard=entry_shard(order.order_id), replace_at=iso(now))  # fmt: skip
        item.pop("replace_reject_reason", None)
        if terms is not None:
            item["price_topup"] = terms.topup_total
            if terms.cover_rate is not None:
                item["cover_rate"] = terms.cover_rate
            for record in _terms_items(order, number, terms.quantity_change, terms.settle_cash, terms.topup,
                                       reservation_id):  # fmt: skip
                self.items[record["order_id"]] = record
        if protection_price is not None:
            item["protection_price"] = protection_price
        return order_from_item(item)

    def release_replace_reservation(self, order_id: str, number: int, reservation: Reservation) -> ReplaceRelease:
        item = self.items.get(order_id)
        if item is not None and int(item.get("replace_count", 0)) >= number:
            return ReplaceRelease.BEGUN
        account = self.accounts.get(reservation.account_id)
        released = account is not None and account.release_held(reservation)
        return ReplaceRelease.RELEASED if released else ReplaceRelease.NOT_HELD

    def apply(self, change: OrderChange) -> ApplyResult:
        item = self.items.get(change.order_id)
        if item is None:
            return ApplyResult(False, None)
        newer = "last_seq" in item and int(item["last_seq"]) >= change.seq
        guarded = (change.only_status is not None and item.get("status") != change.only_status) or (
            change.only_replace is not None
            and not (item.get("replace_pending") and int(item.get("replace_count", 0)) == change.only_replace)
        )
        if newer or int(item.get("last_epoch", 0)) > change.epoch or guarded:  # the repo's condition
            return ApplyResult(False, order_from_item(item) if is_order_item(item) else None)
        for name, value in change.values.items():
            if value is None:
                item.pop(name, None)
            else:
                item[name] = value
        for name in (*change.remove, *((ENTRY_SHARD,) if change.received else ())):
            item.pop(name, None)
        item["last_seq"], item["last_epoch"] = change.seq, change.epoch
        return ApplyResult(True, order_from_item(item) if is_order_item(item) else None)

    entry_shards = ENTRY_SHARDS

    def pending_entries(self, shard: int, since: str | None, before: str, limit: int) -> list[PendingEntry]:
        """The ``pending-entries`` index: one partition's items, oldest first."""
        found = sorted((i for i in self.items.values() if i.get(ENTRY_SHARD) == f"e{shard}"),
                       key=lambda i: str(i["created_at"]))  # fmt: skip
        return [PendingEntry(str(i["order_id"]), str(i["account_id"]), str(i["symbol"]), str(i["created_at"]),
                             i.get("group_id"))
                for i in found if (since is None or since <= i["created_at"]) and i["created_at"] <= before][:limit]

    def pending_replaces(self, shard: int, before: str, limit: int) -> list[PendingReplace]:
        """The ``pending-replaces`` index: one partition's items, oldest first."""
        found = sorted((i for i in self.items.values() if i.get("replace_shard") == f"e{shard}"),
                       key=lambda i: str(i["replace_at"]))  # fmt: skip
        return [PendingReplace(str(i["order_id"]), str(i["account_id"]), str(i["symbol"]), int(i["replace_count"]),
                               str(i["replace_at"]))
                for i in found if i["replace_at"] <= before][:limit]  # fmt: skip

    def swept_through(self) -> str | None:
        return self.swept

    def mark_swept(self, through: str) -> None:
        self.swept = through

    def facts(self, order_id: str) -> OrderFacts | None:
        """What ``nexus_risk.repo.DynamoOrderFacts`` reads of an item."""
        item = self.items.get(order_id)
        if item is None:
            return None
        rate = item.get("reserve_rate")
        return OrderFacts(order_id, str(item["side"]), D(str(item["quantity"])), bool(item.get("reserved", False)),
                          None if rate is None else D(str(rate)), item.get("reservation_id"))  # fmt: skip


@dataclass
class Account:
    """The risk fields of an account item (one symbol)."""

    cash: Decimal
    available: Decimal
    pos: Decimal = ZERO
    sellable: Decimal = ZERO
    buying: Decimal = ZERO
    seq: int = 0
    reservations: set[str] = field(default_factory=set)  # the ids of the reservations held

    def release_held(self, release: HeldRelease | Reservation) -> bool:
        """``release_held_update``: give back only while the id is held."""
        if release.reservation_id not in self.reservations:
            return False
        self.reservations.discard(release.reservation_id)
        if release.side == "buy":
            self.available += release.amount
            self.buying -= release.quantity
        else:
            self.sellable += release.quantity
        return True

    @property
    def reserved_cash(self) -> Decimal:
        return self.cash - self.available

    @property
    def reserved_buy(self) -> Decimal:
        return self.buying - self.pos

    @property
    def reserved_sell(self) -> Decimal:
        return self.pos - self.sellable

    def apply(self, change: AccountChange) -> None:
        if change.seq <= self.seq:
            return  # the watermark: a redelivery changes nothing
        self.seq = change.seq
        self.cash += change.cash
        self.available += change.available
        self.pos += change.pos
        self.sellable += change.sellable
        self.buying += change.buying
        self.reservations -= set(change.ended_ids)


class MemoryRiskBook:
    """``RiskBook`` with the conditions of ``DynamoRiskBook.reserve`` and ``release`` (an id
    already held is a reservation in place; a release gives back only an id held)."""

    def __init__(self, accounts: dict[str, Account]) -> None:
        self.accounts = accounts
        self.writes = 0

    def reserve(self, reservation: Reservation, limits: RiskLimits) -> bool:
        account = self.accounts.get(reservation.account_id)
        if account is None:
            raise RiskRefused("account_not_found", "the account has no risk record", None)
        if reservation.reservation_id in account.reservations:
            return False
        if len(account.reservations) >= limits.max_open_orders:
            raise RiskRefused("max_open_orders_exceeded", "too many open orders", None)
        if reservation.side == "buy":
            if account.available < reservation.amount:
                raise RiskRefused("insufficient_buying_power", "not enough buying power", "quantity")
            if account.buying > limits.position_limit - reservation.quantity:
                raise RiskRefused("position_limit_exceeded", "position limit", "quantity")
            account.available -= reservation.amount
            account.buying += reservation.quantity
        else:
            floor = reservation.quantity - min(limits.short_limit, limits.position_limit)
            if account.sellable < floor:
                raise RiskRefused("insufficient_position", "not enough to sell", "quantity")
            account.sellable -= reservation.quantity
        account.reservations.add(reservation.reservation_id)
        self.writes += 1
        return True

    def holds(self, account_id: str, reservation_id: str) -> bool:
        account = self.accounts.get(account_id)
        return account is not None and reservation_id in account.reservations

    def release(self, reservation: Reservation) -> bool:
        return self.accounts[reservation.account_id].release_held(reservation)


class EngineMarket:
    """``MarketReference``: the last trade the engine printed (no best ask: market buys are not
    used here)."""

    def __init__(self) -> None:
        self.last: Decimal | None = None

    def last_trade(self, symbol: str) -> Decimal | None:
        return self.last

    def best_ask(self, symbol: str) -> Decimal | None:
        return None


class Instruments:
    def get(self, symbol: str) -> Instrument | None:
        return INSTRUMENT if symbol == SYMBOL else None


class RecordingCommands:
    """``CommandPublisher``: keeps what it is given, or fails every send (``fail``)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[AnyOrderCommand] = []
        self.fail = fail

    def publish(self, command: AnyOrderCommand) -> None:
        if self.fail:
            raise ConnectionError("kinesis down")
        self.sent.append(command)


class RecordingNotifier:
    """``Notifier``: keeps every message, in order."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        self.sent.extend(messages)


@dataclass
class Venue:
    """Order entry, engine and both consumers, in process and in step."""

    accounts: dict[str, Account]
    orders: MemoryOrders = field(default_factory=MemoryOrders)
    market: EngineMarket = field(default_factory=EngineMarket)
    clock: Clock = field(default_factory=Clock)
    events: list[Any] = field(default_factory=list)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    fail_next_send: bool = False
    fail_after_next: bool = False  # the send after the failed one fails too
    failed_send_lands: bool = False  # a failed send reaches the engine all the same (its answer lost)
    landed: list[Any] = field(default_factory=list)  # such sends, not yet read by the engine

    def __post_init__(self) -> None:
        self.engine = MatchingEngine({SYMBOL: INSTRUMENT})
        self.book = MemoryRiskBook(self.accounts)
        self.orders.accounts = self.accounts
        self.service = OrderService(self.orders, Instruments(), self, self.clock,
                                    PreTradeRisk(self.book, self.market, LIMITS))  # fmt: skip
        self._redeliver = itertools.count()

    # CommandPublisher: the engine takes the command at once; its events reach both consumers.
    def publish(self, command: AnyOrderCommand | FenceCommand) -> None:
        if self.fail_next_send:
            self.fail_next_send, self.fail_after_next = self.fail_after_next, False
            if self.failed_send_lands:  # on the stream, read by the engine before the next command
                self.landed.append(command)
            raise ConnectionError("stream unavailable")
        while self.landed:
            self._take(self.landed.pop(0))
        self._take(command)

    def _take(self, command: AnyOrderCommand | FenceCommand) -> None:
        raw = self.engine.process(command.model_dump(mode="json"))
        events = [ENGINE_EVENT_ADAPTER.validate_python(event) for event in raw]
        self.deliver(events)

    def deliver(self, events: list[Any]) -> None:
        self.events.extend(events)
        for event in events:
            if event.type == "trade":
                self.market.last = event.price
        apply_events(events, self.orders, self.notifier)
        for change in changes_of(events, self.orders.facts, FEES):
            self.accounts[change.account_id].apply(change)
        for release in held_releases(events, self.orders.facts):
            self.accounts[release.account_id].release_held(release)

    # FencePublisher: the entry sweep's fences, taken by the engine at once.
    def publish_all(self, commands: list[FenceCommand]) -> None:
        for command in commands:
            self.publish(command)

    def sweep(self) -> list[FenceCommand]:
        """One run of the entry sweep at the venue's time."""
        return EntrySweep(self.orders, self, lambda: self.clock.now).run()

    def clock_tick(self, seconds: int) -> None:
        """Time passes on the venue: a ``clock`` command expires what is due."""
        self.clock.now += timedelta(seconds=seconds)
        raw = self.engine.process({"type": "clock", "command_id": f"clock-{self.clock.now.isoformat()}",
                                   "symbol": SYMBOL, "ts": iso(self.clock.now)})  # fmt: skip
        self.deliver([ENGINE_EVENT_ADAPTER.validate_python(event) for event in raw])

    def open_orders(self, account_id: str) -> list[Order]:
        return self.orders.list_by_account(account_id, OPEN_STATUSES, 10_000)


def venue(**cash: str) -> Venue:
    return Venue({name: Account(D(amount), D(amount)) for name, amount in cash.items()})


def order(**fields: Any) -> NewOrderRequest:
    """A new order request in AAPL."""
    return NewOrderRequest.model_validate({"symbol": "AAPL", **fields})


def oco(**fields: Any) -> OcoRequest:
    """An OCO group request in AAPL."""
    return OcoRequest.model_validate({"symbol": "AAPL", **fields})


# -- under moto: the orders API with the template's tables --------------------------------------

FEE_BUFFER = D(3) / D(10_000)  # the template's taker fee, the highest rate
STOP = {"symbol": "AAPL", "side": "buy", "type": "stop", "quantity": "10", "stop_price": "102.00"}
OCO = {"symbol": "AAPL", "side": "sell", "quantity": "10", "take_profit": {"price": "105.00"},
       "stop_loss": {"stop_price": "95.00"}}  # fmt: skip


def future(minutes: int = 60) -> str:
    """An instant ``minutes`` after ``START``: ahead of the ``World``'s clock (its orders API reads a
    ``Clock`` from ``START``, a second a reading) for the whole of a test."""
    return (START + timedelta(minutes=minutes)).isoformat()


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of ``stream`` under moto, shard by shard from the start."""
    found: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found.extend(kinesis.get_records(ShardIterator=iterator)["Records"])
    return found


class World:
    """The orders API under moto, on a ``Clock`` from ``START`` (never the wall clock)."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self.env = aws.use_function_env("OrdersApiFunction")
        self.clock = Clock()
        service().clock = self.clock  # the API's service, built for this test's tables
        put_instruments(self.env["INSTRUMENTS_TABLE"], DEMO_INSTRUMENTS)
        self.ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")
        self.ddb.Table(self.env["TRADES_TABLE"]).put_item(
            Item={"symbol": "AAPL", "seq": 0, "price": D("100.00"), "quantity": D(1)}
        )
        self.account("acc_1", "1000000.00", **{"pos#AAPL": D(100), "sellable#AAPL": D(100), "buying#AAPL": D(100)})

    def account(self, account_id: str, cash: str, **extra: Any) -> None:
        self.ddb.Table(self.env["ACCOUNTS_TABLE"]).put_item(
            Item={"account_id": account_id, "cash": D(cash), "currency": "USD", "status": "active", **extra}
        )

    def item(self, account_id: str = "acc_1") -> dict[str, Any]:
        return dict(self.ddb.Table(self.env["ACCOUNTS_TABLE"]).get_item(Key={"account_id": account_id})["Item"])

    def request(self, method: str, resource: str, body: Any = None, account: str = "acc_1",
                **path: str) -> tuple[int, Any]:  # fmt: skip
        return call(app, rest_event(method, resource, body=body, account_id=account, path_params=path or None))

    def orders(self) -> list[dict[str, Any]]:
        return list(self.ddb.Table(self.env["ORDERS_TABLE"]).scan()["Items"])

    def records(self, stream_env: str) -> list[dict[str, Any]]:
        return [{"key": record["PartitionKey"], "data": json.loads(record["Data"])}
                for record in stream_records(self.kinesis, self.env[stream_env])]

    def commands(self) -> list[Any]:
        return [COMMAND_ADAPTER.validate_python(r["data"]) for r in self.records("ORDER_COMMANDS_STREAM")]


class OrdersWorld:
    """The orders API under moto, with AAPL (tick 0.01, lot 1) and BTC (tick 0.5, lot 0.001)."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self.env = aws.use_function_env("OrdersApiFunction")
        put_instruments(
            self.env["INSTRUMENTS_TABLE"],
            [
                Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1")),
                Instrument(symbol="BTC", tick_size=Decimal("0.5"), lot_size=Decimal("0.001")),
            ],
        )
        self.ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")

    def post(
        self, body: Any = None, *, account: str | None = "acc_1", **kw: Any
    ) -> tuple[int, Any]:
        return call(app, rest_event("POST", "/v1/orders", body=body, account_id=account, **kw))

    def get(self, order_id: str, account: str = "acc_1") -> tuple[int, Any]:
        ev = rest_event(
            "GET", "/v1/orders/{order_id}", path_params={"order_id": order_id}, account_id=account
        )
        return call(app, ev)

    def list(self, account: str = "acc_1", **query: str) -> tuple[int, Any]:
        return call(app, rest_event("GET", "/v1/orders", query=query or None, account_id=account))

    def delete(self, order_id: str, account: str = "acc_1") -> tuple[int, Any]:
        ev = rest_event(
            "DELETE",
            "/v1/orders/{order_id}",
            path_params={"order_id": order_id},
            account_id=account,
        )
        return call(app, ev)

    def items(self) -> list[dict[str, Any]]:
        return list(self.ddb.Table(self.env["ORDERS_TABLE"]).scan()["Items"])

    def set_status(self, order_id: str, status: str) -> None:
        self.ddb.Table(self.env["ORDERS_TABLE"]).update_item(
            Key={"order_id": order_id},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status},
        )

    def commands(self) -> list[tuple[str, NewOrderCommand | CancelOrderCommand]]:
        return [(record["PartitionKey"], COMMAND_ADAPTER.validate_json(record["Data"]))
                for record in stream_records(self.kinesis, self.env["ORDER_COMMANDS_STREAM"])]


class ConsumerWorld:
    """The orders API and the execution-events handler under moto, with the demo instruments."""

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        api_env = aws.use_function_env("OrdersApiFunction")
        put_instruments(api_env["INSTRUMENTS_TABLE"], DEMO_INSTRUMENTS)
        self.env = aws.use_function_env("OrdersConsumerFunction")
        self.table = boto3.resource("dynamodb", region_name="us-east-1").Table(
            self.env["ORDERS_TABLE"]
        )
        self.sqs = boto3.client("sqs", region_name="us-east-1")

    def place(self, account: str, body: dict[str, Any]) -> str:
        status, answer = call(
            app, rest_event("POST", "/v1/orders", body=body, account_id=account)
        )
        assert status == 202
        return str(answer["order"]["order_id"])

    def item(self, order_id: str) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"order_id": order_id})["Item"])

    def notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.env["NOTIFICATIONS_QUEUE_URL"], MaxNumberOfMessages=10
            ).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.env["NOTIFICATIONS_QUEUE_URL"],
                    ReceiptHandle=message["ReceiptHandle"],
                )

    def handle(self, *payloads: Any) -> dict[str, Any]:
        return on_execution_events.handler(kinesis_event(*payloads), FakeLambdaContext())
