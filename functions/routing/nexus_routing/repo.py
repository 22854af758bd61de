"""Data access of the routing service: the venues table, the routing-decisions table, the venue
statistics table, the two streams, the internal venue's displayed levels, and the simulated
venues' books in Redis (each under its own lock)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.dynamo import LazyTable, conditional_write, is_condition_failed, pages, transaction
from nexus_common.dynamo_batch import batch_get
from nexus_common.errors import Conflict, NotFound, Unavailable
from nexus_common.events import RoutedFillsCommand
from nexus_common.instruments import Instrument
from nexus_common.jsonutil import dumps

from nexus_routing import venue_state
from nexus_routing.model import BookLevel, VenueBook
from nexus_routing.venues import DEFAULT_DEPTH, SimulatedVenue, Venue

MAX_VENUES: Final = 64  # rows of the venues table read per scan (a bound, not a page size)
LOCK_MS: Final = 5_000
LOCK_WAIT_S: Final = 3.0
REPORT_MARKER_TTL_S: Final = 7 * 86_400
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class DynamoVenues(LazyTable):
    """``VenuesTable`` (name): one row per venue, ``Venue.to_item`` as stored."""

    def list(self) -> list[Venue]:
        rows: list[Venue] = []
        for page in pages(self.table.scan, ConsistentRead=True):
            for item in page.get("Items", []):
                rows.append(Venue.from_item(_plain(item)))
                if len(rows) >= MAX_VENUES:
                    return sorted(rows, key=lambda v: v.name)
        return sorted(rows, key=lambda v: v.name)

    def add(self, venue: Venue) -> None:
        written = conditional_write(
            self.table.put_item, Item=venue.to_item(),
            ConditionExpression="attribute_not_exists(#n)", ExpressionAttributeNames={"#n": "name"},
        )
        if not written:
            raise Conflict("venue_exists", f"venue {venue.name!r} exists", "name")

    def put(self, venue: Venue) -> None:
        self.table.put_item(Item=venue.to_item())

    def set_enabled(self, name: str, enabled: bool) -> Venue:
        try:
            answer = self.table.update_item(
                Key={"name": name}, UpdateExpression="SET enabled = :e", ConditionExpression="attribute_exists(#n)",
                ExpressionAttributeNames={"#n": "name"}, ExpressionAttributeValues={":e": enabled},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:  # a failed condition is an unknown venue; anything else re-raised
            if is_condition_failed(exc):
                raise NotFound("unknown_venue", f"no venue {name[:80]!r}", "name") from None
            raise
        return Venue.from_item(_plain(answer["Attributes"]))


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to the JSON-ish values a model was stored from (ints stay ints)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else str(value)
    return value


class DynamoDecisions(LazyTable):
    """``RoutingDecisionsTable`` (order_id, item): ``parent`` and ``decision#<round>#<id>``."""

    def put_decision(self, order_id: str, decision: Mapping[str, Any]) -> None:
        item = {"order_id": order_id, "item": f"decision#{int(decision['round']):03d}#{decision['decision_id']}",
                "decision": dumps(decision)}
        self.table.put_item(Item=item)

    def put_parent(self, parent: Mapping[str, Any]) -> None:
        self.table.put_item(Item={**parent, "item": "parent", "body": dumps(parent["body"])})

    def get(self, order_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        parent: dict[str, Any] | None = None
        decisions: list[dict[str, Any]] = []
        for page in pages(self.table.query, KeyConditionExpression="order_id = :o",
                          ExpressionAttributeValues={":o": order_id}, ConsistentRead=True):
            for item in page.get("Items", []):
                if item["item"] == "parent":
                    parent = _parent_from_item(item)
                else:
                    decisions.append(json.loads(item["decision"]))
                if len(decisions) > 1000:
                    break
        return parent, decisions

    def parents(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored parents of these orders, by id: BatchGetItem, 100 keys a request."""
        keys = [{"order_id": order_id, "item": "parent"} for order_id in dict.fromkeys(order_ids)]
        if not keys:
            return {}
        return {str(item["order_id"]): _parent_from_item(item)
                for item in batch_get(self.table, keys, ConsistentRead=True)}

    def parents_in_months(self, months: Iterable[str], start: str = "0", end: str = "~", limit: int = 100_000
                          ) -> Iterator[dict[str, Any]]:
        """Parents received in ``months`` ("YYYY-MM", market time), between ``start`` and ``end``
        (ISO instants, sort key prefix), at most ``limit``."""
        count = 0
        for month in months:
            for page in pages(self.table.query, IndexName="by-month",
                              KeyConditionExpression="#m = :m AND #s BETWEEN :a AND :b",
                              ExpressionAttributeNames={"#m": "month", "#s": "sort"},
                              ExpressionAttributeValues={":m": month, ":a": start, ":b": end}):
                for item in page.get("Items", []):
                    count += 1
                    if count > limit:
                        return
                    yield _parent_from_item(item)


def _parent_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in item.items() if k != "body"}, "body": json.loads(item["body"])}


class DynamoVenueStats(LazyTable):
    """``VenueStatsTable`` (key, venue): counters per ``<symbol>#<side>#<bucket>`` and venue, and a
    ``report#<id>`` marker per report applied."""

    def apply(self, report_id: str, key: str, venue: str, deltas: Mapping[str, int | Decimal], now_s: int) -> bool:
        """Add ``deltas`` once for this report (False: it was applied already)."""
        client = self.table.meta.client
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(deltas.values())}
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas)))
        outcome = transaction(client.transact_write_items, TransactItems=[
            {"Put": {"TableName": self.table_name,
                     "Item": {"key": f"report#{report_id}", "venue": "-", "expires_at": now_s + REPORT_MARKER_TTL_S},
                     "ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": "key"}}},
            {"Update": {"TableName": self.table_name, "Key": {"key": key, "venue": venue},
                        "UpdateExpression": update, "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values}},
        ])  # fmt: skip
        if outcome.refused(0):  # the report's marker exists: applied already
            return False
        outcome.raise_if_cancelled()
        return True

    def rows(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in pages(self.table.query, KeyConditionExpression="#k = :k",
                          ExpressionAttributeNames={"#k": "key"}, ExpressionAttributeValues={":k": key}):
            items.extend(page.get("Items", []))
            if len(items) > MAX_VENUES:
                break
        return items


class KinesisPublisher:
    """One stream; records as compact JSON, partition key given."""

    def __init__(self, stream_name: str) -> None:
        self.stream_name = stream_name

    def publish(self, records: list[tuple[str, Mapping[str, Any]]]) -> None:
        from nexus_common import kinesis

        kinesis.put_records(self.stream_name, [(key, dumps(data).encode()) for key, data in records])


class DynamoOrderTotals(LazyTable):
    """A routed order's totals from the orders table (``OrdersTable``), 100 keys a BatchGetItem."""

    def totals(self, order_ids: list[str]) -> dict[str, tuple[Decimal, Decimal, datetime]]:
        keys = [{"order_id": order_id} for order_id in dict.fromkeys(order_ids)]
        items = batch_get(self.table, keys,
                          ProjectionExpression="order_id, filled_quantity, filled_notional, updated_at")
        return {str(item["order_id"]): (Decimal(str(item.get("filled_quantity", 0))),
                                        Decimal(str(item.get("filled_notional", 0))),
                                        datetime.fromisoformat(str(item["updated_at"]))) for item in items}


class KinesisEngineCommands:
    """A routed order's ``routed_fills`` command on ``order-commands`` (partition key = symbol)."""

    def __init__(self, stream_name: str) -> None:
        self.stream_name = stream_name

    def send(self, command: RoutedFillsCommand) -> None:
        from nexus_common import aws

        aws.client("kinesis").put_record(StreamName=self.stream_name, PartitionKey=command.symbol,
                                         Data=command.model_dump_json().encode())


class DynamoInternalBook(LazyTable):
    """The internal venue's displayed levels, from the market-data ``BookLevelsTable``."""

    def depth(self, venue: str, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        sides = []
        for prefix, forward in (("B#", False), ("A#", True)):
            rows: list[BookLevel] = []
            for page in pages(self.table.query, KeyConditionExpression="symbol = :s AND begins_with(#l, :p)",
                              FilterExpression="quantity > :z", ExpressionAttributeNames={"#l": "level"},
                              ExpressionAttributeValues={":s": symbol, ":p": prefix, ":z": 0},
                              ScanIndexForward=forward, Limit=max(levels, 25)):
                for item in page.get("Items", []):
                    rows.append(BookLevel(Decimal(str(item["price"])), Decimal(str(item["quantity"]))))
                if len(rows) >= levels:
                    break
            sides.append(tuple(rows[:levels]))
        return VenueBook(venue, symbol, sides[0], sides[1])


class RedisVenueBooks:
    """The simulated venues' state in Redis: ``<prefix>:<venue>`` (``venue_state.dump``), its
    lock ``<prefix>:<venue>:lock`` and each symbol's displayed book ``<prefix>:<venue>:book:<symbol>``
    (written with the state, read alone for the NBBO)."""

    def __init__(self, redis: Any, prefix: str, instruments: Callable[[], Mapping[str, Instrument]],
                 clock: Callable[[], datetime], lock_ms: int = LOCK_MS, wait_s: float = LOCK_WAIT_S) -> None:
        self.redis = redis
        self.prefix = prefix
        self.instruments = instruments
        self.clock = clock
        self.lock_ms = lock_ms
        self.wait_s = wait_s
        self._release = redis.register_script(_RELEASE)

    def _key(self, venue: str) -> str:
        return f"{self.prefix}:{venue}"

    def _lock(self, venue: str) -> str:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_s
        while not self.redis.set(self._key(venue) + ":lock", token, nx=True, px=self.lock_ms):
            if time.monotonic() > deadline:
                raise Unavailable("venue_busy", f"venue {venue} is busy; retry")
            time.sleep(0.002)
        return token

    @contextmanager
    def open(self, configs: Iterable[Venue], account: str | None = None) -> Iterator[dict[str, SimulatedVenue]]:
        """The venues, locked (in name order), loaded; saved with their books when the block ends
        without an error (an error leaves every venue as it was)."""
        ordered = sorted({c.name: c for c in configs if not c.internal}.values(), key=lambda c: c.name)
        tokens: list[tuple[str, str]] = []
        try:
            for config in ordered:
                tokens.append((config.name, self._lock(config.name)))
            instruments = self.instruments()
            raw = self.redis.mget([self._key(c.name) for c in ordered]) if ordered else []
            states = [None if r is None else json.loads(r) for r in raw]
            venues = {c.name: venue_state.load(c, instruments, self.clock, state, account)
                      for c, state in zip(ordered, states, strict=True)}
            yield venues
            self._save(venues, states, instruments, tokens)
        finally:
            for name, token in tokens:
                self._release(keys=[self._key(name) + ":lock"], args=[token])

    def _save(self, venues: Mapping[str, SimulatedVenue], states: list[Any], instruments: Mapping[str, Instrument],
              tokens: list[tuple[str, str]]) -> None:
        """Write the venues and their books in one transaction, only while every lock is still ours:
        the lock keys are watched and their tokens compared before MULTI, so a holder whose lease
        ran out (and whose venue another holder may have changed since) saves nothing and gets
        ``venue_lock_lost`` (retryable: the work is redone on the state as it now is)."""
        from redis.exceptions import WatchError

        lock_keys = [self._key(name) + ":lock" for name, _ in tokens]
        lost = Unavailable("venue_lock_lost", "a venue's lock expired before its state was saved; nothing was "
                                              "saved; retry")
        pipe = self.redis.pipeline(transaction=True)
        try:
            if lock_keys:
                pipe.watch(*lock_keys)
                held = pipe.mget(lock_keys)
                for (_, token), value in zip(tokens, held, strict=True):
                    if value is None or (value.decode() if isinstance(value, bytes) else value) != token:
                        raise lost
            pipe.multi()
            for (name, venue), before in zip(venues.items(), states, strict=True):
                state = venue_state.dump(venue)
                pipe.set(self._key(name), dumps(state))
                # the books that changed: those with orders now, and those that had orders before
                touched = set(state["engine"].get("books", {})) | set((before or {}).get("engine", {}).get("books", {}))
                for symbol in sorted(touched & set(instruments)):
                    pipe.set(f"{self._key(name)}:book:{symbol}", dumps(venue.depth(symbol).to_dict()))
            pipe.execute()
        except WatchError:  # a lock changed hands between the check and the write
            raise lost from None
        finally:
            pipe.reset()

    def books(self, names: Iterable[str], symbol: str) -> dict[str, VenueBook]:
        """The displayed books of ``symbol`` as last saved (a venue never written: empty)."""
        names = list(names)
        raw = self.redis.mget([f"{self._key(n)}:book:{symbol}" for n in names]) if names else []
        return {
            n: venue_state.book_from_dict(json.loads(r)) if r is not None else VenueBook(n, symbol, (), ())
            for n, r in zip(names, raw, strict=True)
        }
