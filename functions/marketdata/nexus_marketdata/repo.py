"""Data access of market data: ``TradesTable`` (symbol, seq), ``BookLevelsTable`` (symbol,
level), ``CandlesTable`` (series, bucket) and ``BookOrdersTable`` (symbol, order_id; GSI
``by-priority``). Every write is conditional on the item's seq watermark, so a redelivered or
replayed event changes nothing; candles and L3 orders are read once per batch (BatchGetItem),
folded in memory and written back with one conditional put per item (no transactions): a
symbol's live candles are one item (``nexus_marketdata.candles``).

Also here: the instruments' seeding and listing (``put_instruments``, ``list_instruments``: what
the operator CLI calls) and the snapshot cache on Redis (``SnapshotCache``)."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import redis
from nexus_common.candle_items import live_key, live_series, series_id
from nexus_common.dynamo import LazyTable, conditional_write, pages
from nexus_common.dynamo_batch import batch_get, batch_get_tables
from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import DEMO_INSTRUMENTS, Instrument

from nexus_marketdata.candles import (
    Candle,
    advance,
    bucket_id,
    candle_keys,
    candles_from_item,
    live_item,
    newest,
)
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
from nexus_marketdata.ports import CacheConfig, CacheRead, CacheStats, Freshness


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


def _put_closed(table: Any, candle: Candle) -> bool:
    """Write a closed candle unless its item already counts as much (``last_seq`` at least as
    high: written before, by an attempt that stopped before its live item's write)."""
    return conditional_write(
        table.put_item,
        Item=candle.to_item(),
        ConditionExpression="attribute_not_exists(last_seq) OR last_seq < :seq",
        ExpressionAttributeValues={":seq": candle.last_seq},
    )


def _live_seq(stored: dict[tuple[str, str], Candle], symbol: str) -> int | None:
    """The ``last_seq`` of the symbol's live item as read (None: there is none)."""
    seqs = [candle.last_seq for (series, _), candle in stored.items() if series == live_series(symbol)]
    return max(seqs) if seqs else None


class DynamoCandles(LazyTable):
    """``CandlesTable``: each symbol's live item (series ``<symbol>#live``, bucket ``live``) and the
    closed candles (series ``<symbol>#<interval>``, bucket = UTC start); see ``nexus_marketdata.candles``."""

    def load(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Candle]:
        items = batch_get(self.table, [{"series": s, "bucket": b} for s, b in keys], ConsistentRead=True)
        return {key: candle for item in items for key, candle in candles_from_item(item).items()}

    def apply(self, trades: list[TradeEvent], stored: dict[tuple[str, str], Candle] | None = None) -> int:
        """Count ``trades`` (in seq order) in every candle they touch: one batched read (or
        ``stored``: what a read of ``candle_keys(trades)`` found, ``ViewReads``), then per symbol
        a put of each candle the trades closed (see ``_put_closed``) and one put of the live item
        conditional on the ``last_seq`` it read. Returns how many items were written."""
        written = 0
        for symbol in dict.fromkeys(trade.symbol for trade in trades):
            written += self._apply_symbol(symbol, [t for t in trades if t.symbol == symbol], stored)
        return written

    def _apply_symbol(
        self, symbol: str, trades: list[TradeEvent], stored: dict[tuple[str, str], Candle] | None
    ) -> int:
        for _ in range(3):
            if stored is None:
                stored = self.load(candle_keys(trades))
            step = advance(stored, symbol, trades)
            written = sum(_put_closed(self.table, candle) for candle in step.closed)
            if step.live is None:
                return written
            if _put_guarded(self.table, live_item(symbol, step.live), _live_seq(stored, symbol)):
                return written + 1
            stored = None  # a concurrent writer moved the live item: read again and re-fold
        raise RuntimeError("candles kept changing under the consumer")

    def range(self, symbol: str, interval: str, start: str, end: str, limit: int) -> list[Candle]:
        """Candles with ``start <= bucket <= end`` (bucket ids), oldest first, at most ``limit``:
        the closed ones, and the live one when it is in the range. The live item is read first
        and the closed ones consistently after it, so a candle closed in between is found closed."""
        series, bucket = live_key(symbol)
        live_one = self.load([(series, bucket)]).get((series, interval))
        page = self.table.query(
            KeyConditionExpression="series = :s AND bucket BETWEEN :a AND :b",
            ExpressionAttributeValues={":s": series_id(symbol, interval), ":a": start, ":b": end},
            Limit=limit,
            ConsistentRead=True,
        )
        found = {candle.start: candle for item in page.get("Items", []) for candle in candles_from_item(item).values()}
        if live_one is not None and start <= bucket_id(live_one.start) <= end:
            found[live_one.start] = newest(live_one, found.get(live_one.start)) or live_one
        return [found[at] for at in sorted(found)][:limit]

    def get(self, symbol: str, interval: str, bucket: str) -> Candle | None:
        """The candle of one bucket: closed, or live (one read of both)."""
        stored = self.load([(series_id(symbol, interval), bucket), live_key(symbol)])
        live_one = stored.get((live_series(symbol), interval))
        if live_one is not None and bucket_id(live_one.start) != bucket:
            live_one = None
        return newest(stored.get((series_id(symbol, interval), bucket)), live_one)


class ViewReads:
    """The candles and the L3 orders a batch of events touches, every symbol's, read together:
    one consistent ``BatchGetItem`` for up to 100 items of both tables, instead of two per symbol."""

    def __init__(self, candles: DynamoCandles, book_orders: DynamoBookOrders) -> None:
        self.candles = candles
        self.book_orders = book_orders

    def load(
        self, candle_keys: list[tuple[str, str]], order_keys: list[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Candle], dict[tuple[str, str], L3Order]]:
        """Stored candles by (series, bucket) and L3 orders by (symbol, order id); a key that is
        missing does not exist."""
        found = batch_get_tables({
            self.candles.table: [{"series": s, "bucket": b} for s, b in candle_keys],
            self.book_orders.table: [{"symbol": s, "order_id": o} for s, o in order_keys],
        }, ConsistentRead=True)  # fmt: skip
        candles = {key: candle for i in found[self.candles.table.name] for key, candle in candles_from_item(i).items()}
        orders = {(str(i["symbol"]), str(i["order_id"])): order_from_item(i)
                  for i in found[self.book_orders.table.name]}  # fmt: skip
        return candles, orders


class DynamoBookOrders(LazyTable):
    """``BookOrdersTable`` (symbol, order_id) and its GSI ``by-priority`` (symbol, book_key)."""

    INDEX = "by-priority"

    def load(self, symbol: str, order_ids: list[str]) -> dict[str, L3Order]:
        items = batch_get(self.table, [{"symbol": symbol, "order_id": o} for o in order_ids], ConsistentRead=True)
        return {str(i["order_id"]): order_from_item(i) for i in items}

    def plan(
        self, symbol: str, records: Sequence[Sequence[AnyEngineEvent]], stored: dict[str, L3Order] | None = None
    ) -> list[Callable[[], int]]:
        """Read the orders the events name (one batched read, or ``stored``: what a read of all of
        them found, ``ViewReads``) and fold each record's events into them (``records``: the
        symbol's events, record by record); the conditional puts are returned, to be run in any
        order (each is one order's item). An order that began and ended within one record has
        none (``L3Fold.end_record``)."""
        if stored is None:
            needed = touched_order_ids(event for record in records for event in record)
            stored = self.load(symbol, needed) if needed else {}
        fold = L3Fold(stored)
        for record in records:
            for event in record:
                fold.apply(event)
            fold.end_record()
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


# -- instruments -----------------------------------------------------------------------------
# Seeding and reading instruments; what the operator CLI calls.
#
# ``put_instruments(table_name, instruments)`` creates or replaces instruments in the
# ``InstrumentsTable`` (physical name, e.g. ``nexus-local-instruments``);
# ``put_instruments(table_name)`` with no instruments seeds ``DEMO_INSTRUMENTS``. The item format
# is ``nexus_common.instrument_store`` (shared with the orders API and the engine).


def put_instruments(table_name: str, instruments: Iterable[Instrument] | None = None) -> int:
    """Create or replace instruments; returns how many were written."""
    chosen = DEMO_INSTRUMENTS if instruments is None else tuple(instruments)
    return DynamoInstruments(table_name).put_many(chosen)


def list_instruments(table_name: str) -> list[Instrument]:
    """Every instrument of the table, sorted by symbol."""
    return DynamoInstruments(table_name).list_all()


# -- the snapshot cache (Redis) --------------------------------------------------------------

_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class SnapshotCache:
    """Snapshot cache of market data views in Redis (book, ticker), the Redis client injected
    (its value types are in ``nexus_marketdata.ports``).

    ``SnapshotCache.get(symbol, view, fetch)`` answers a snapshot from Redis, or from ``fetch`` (the
    source: DynamoDB) when it must, with:

    * **Freshness by tier.** A snapshot is *fresh* for ``fresh_ms`` and may be served *stale* until
      ``max_age_ms``, when Redis drops it (``PX``). Tier 1 (AAPL, GOOGL, MSFT, AMZN, and any hot
      symbol): fresh 50 ms, never served older than 100 ms. Other symbols: fresh 1 s, at most 5 s.
      Ages are measured on Redis's clock (``PTTL``), never across machines' clocks.
    * **Jittered TTLs.** Each write scales both windows by a random factor in ``[1 - jitter, 1]``
      (downwards only, so a bound is never exceeded), so that the keys of many symbols written at
      the same instant do not expire together.
    * **Stale-while-revalidate.** A stale snapshot is answered at once; one reader (the one that
      takes the refresh lock) fetches the source and writes the new snapshot, the others keep
      answering the stale one meanwhile. If that fetch fails, the stale snapshot is answered.
    * **Request coalescing (single flight).** On a miss, readers race for a lock (``SET NX PX``);
      the winner fetches once and writes the snapshot, the others wait for it (polling the key with
      a short back-off) and answer it. A winner that fails releases the lock, and a waiter takes
      over; a waiter that waits longer than ``wait_ms`` fetches for itself rather than fail.
    * **Hot-symbol promotion.** Reads are counted per symbol in a fixed window (``INCR`` on a key
      named after the window); a symbol read ``hot_reads`` times in one window gets tier-1 treatment
      for its next writes. A symbol can also be pinned hot until a given time (``pin``): the
      pre-open warm-up pins the previous session's most traded symbols.

    A read is one pipelined round trip (GET, PTTL, INCR, EXPIRE, EXISTS pin) on a hit.
    """

    def __init__(
        self,
        client: redis.Redis,
        config: CacheConfig | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.config = config or CacheConfig()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.monotonic = monotonic
        self.wall = wall
        self.stats = CacheStats()
        self._release = client.register_script(_RELEASE)

    # -- keys ------------------------------------------------------------------------------

    def key(self, symbol: str, view: str) -> str:
        return f"{self.config.prefix}snap:{symbol}:{view}"

    def _lock_key(self, key: str) -> str:
        return f"{key}:lock"

    def _hot_key(self, symbol: str) -> str:
        window = int(self.wall() // self.config.hot_window_s)
        return f"{self.config.prefix}hot:{symbol}:{window}"

    def _pin_key(self, symbol: str) -> str:
        return f"{self.config.prefix}pin:{symbol}"

    # -- policy ----------------------------------------------------------------------------

    def is_tier1(self, symbol: str, reads: int, pinned: bool) -> bool:
        return symbol in self.config.tier1_symbols or pinned or reads >= self.config.hot_reads

    def freshness(self, tier1: bool) -> Freshness:
        """The jittered windows of one write (each scaled by a factor in [1 - jitter, 1])."""
        base = self.config.tier1 if tier1 else self.config.standard
        factor = 1.0 - self.config.jitter * self.rng.random()
        fresh = max(1, int(base.fresh_ms * factor))
        return Freshness(fresh_ms=fresh, max_age_ms=max(fresh + 1, int(base.max_age_ms * factor)))

    # -- reads -----------------------------------------------------------------------------

    def get(self, symbol: str, view: str, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
        """The snapshot ``view`` of ``symbol``: from Redis when fresh enough, else from ``fetch``
        (at most one caller fetches at a time; see the module doc)."""
        key = self.key(symbol, view)
        hot = self._hot_key(symbol)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        pipe.incr(hot)
        pipe.expire(hot, self.config.hot_window_s * 2)
        pipe.exists(self._pin_key(symbol))
        raw, pttl, reads, _, pinned = pipe.execute()
        tier1 = self.is_tier1(symbol, int(reads), bool(pinned))
        entry = _decode(raw)
        if entry is not None and int(pttl) > 0:
            age = int(entry["px"]) - int(pttl)
            if age <= int(entry["fresh"]):
                return self._done(CacheRead(entry["v"], "hit", tier1, age))
            # Stale: one reader revalidates, the rest answer the stale snapshot meanwhile.
            token = self._try_lock(key)
            if token is None:
                return self._done(CacheRead(entry["v"], "stale", tier1, age))
            try:
                return self._done(self._fetch_locked(key, token, tier1, fetch))
            except redis.RedisError:
                raise
            # any failure of the source (DynamoDB, the view's code): the stale snapshot is still within its bound
            except Exception:  # noqa: BLE001 - the fetch is the caller's, its failures are open-ended
                return self._done(CacheRead(entry["v"], "stale", tier1, age))
        return self._done(self._miss(key, tier1, fetch))

    def _done(self, read: CacheRead) -> CacheRead:
        self.stats.add(read.outcome)
        return read

    def _miss(self, key: str, tier1: bool, fetch: Callable[[], dict[str, Any]]) -> CacheRead:
        deadline = self.monotonic() + self.config.wait_ms / 1000
        pause, longest = self.config.poll_ms
        while True:
            token = self._try_lock(key)
            if token is not None:
                # Another leader may have written it between our GET and our lock.
                entry = _decode(self.redis.get(key))
                if entry is not None:
                    self._unlock(key, token)
                    return CacheRead(entry["v"], "coalesced", tier1)
                return self._fetch_locked(key, token, tier1, fetch)
            # Someone is fetching: wait for the snapshot (or for the lock to go, then race again).
            while True:
                self.sleep(pause / 1000)
                pause = min(pause * 2, longest)
                pipe = self.redis.pipeline(transaction=False)
                pipe.get(key)
                pipe.exists(self._lock_key(key))
                raw, locked = pipe.execute()
                entry = _decode(raw)
                if entry is not None:
                    return CacheRead(entry["v"], "coalesced", tier1)
                if self.monotonic() > deadline:
                    return CacheRead(fetch(), "fallback", tier1)
                if not locked:
                    break

    def _try_lock(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        if self.redis.set(self._lock_key(key), token, nx=True, px=self.config.lock_ms):
            return token
        return None

    def _unlock(self, key: str, token: str) -> None:
        self._release(keys=[self._lock_key(key)], args=[token])

    def _fetch_locked(
        self, key: str, token: str, tier1: bool, fetch: Callable[[], dict[str, Any]]
    ) -> CacheRead:
        try:
            value = fetch()
            self.put(key, value, tier1)
        finally:
            self._unlock(key, token)
        return CacheRead(value, "fetched", tier1)

    # -- writes ----------------------------------------------------------------------------

    def put(self, key: str, value: dict[str, Any], tier1: bool) -> Freshness:
        windows = self.freshness(tier1)
        entry = {"v": value, "px": windows.max_age_ms, "fresh": windows.fresh_ms}
        self.redis.set(key, json.dumps(entry, separators=(",", ":")), px=windows.max_age_ms)
        return windows

    def warm(self, symbol: str, view: str, value: dict[str, Any]) -> Freshness:
        """Write a snapshot ahead of demand (the pre-open warm-up)."""
        return self.put(self.key(symbol, view), value, symbol in self.config.tier1_symbols)

    def pin(self, symbol: str, seconds: int) -> None:
        """Treat ``symbol`` as tier 1 for ``seconds`` (hot-symbol promotion ahead of demand)."""
        self.redis.set(self._pin_key(symbol), b"1", ex=max(1, seconds))


def _decode(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    entry = json.loads(raw)
    return entry if isinstance(entry, dict) and "v" in entry else None
