"""Market data views against independent references, on random journals run by the real
matching engine (in process, no AWS):

* L3 folded from the events (``nexus_marketdata.l3``) == the engine's own book: every resting
  order, its shown quantity and its place in the queue (icebergs, stop-limits, replaces,
  self-trade decrements, partial fills included); folded record by record in any batches, with
  batches redelivered and the whole stream replayed in other batches, too, where an order its
  own record ended has no item;
* L2 from the ``book`` deltas (last delta per level wins) == the engine's aggregated depth, and
  == the L3 levels summed;
* candles folded per record (``nexus_marketdata.candles.fold``, every candle under its own key),
  with records redelivered, ==
  a straightforward recomputation from the tape (group by UTC bucket, first/max/min/last/sum);
  and so are the live and closed candles the consumer keeps (``candles.advance``), in any
  batches, with batches redelivered, attempts stopped between the closed candles' writes and the
  live item's, and the whole tape replayed in batches of one.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_common.candle_items import live_series
from nexus_common.events import ENGINE_EVENT_ADAPTER, AcceptedEvent, AnyEngineEvent, BookEvent, TradeEvent
from nexus_common.instruments import Instrument
from nexus_marketdata.candles import INTERVALS, Candle, advance, candle_key, candle_keys, fold, newest
from nexus_marketdata.l3 import L3Fold, L3Order, touched_order_ids
from nexus_matching.engine import MatchingEngine

SETTINGS = settings(
    max_examples=int(os.environ.get("MARKETDATA_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TICK = Decimal("0.01")
START = datetime(2026, 3, 6, 23, 58, 30, tzinfo=UTC)  # crosses minute, hour and UTC-day bounds
ACCOUNTS = ("alice", "bob", "carol")


@st.composite
def journals(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(min_value=1, max_value=45))
    commands: list[dict[str, Any]] = []
    ids: list[str] = []
    elapsed = 0.0
    for i in range(size):
        elapsed += draw(st.sampled_from([0.0, 0.5, 7.0, 61.0, 400.0]))
        ts = (START + timedelta(seconds=elapsed)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        kind = draw(
            st.sampled_from(["limit"] * 4 + ["iceberg"] * 3 + ["market", "stop_limit", "cancel"] + ["replace"] * 3)
        )
        account = draw(st.sampled_from(ACCOUNTS))
        base: dict[str, Any] = {"command_id": f"c{i}", "account_id": account, "symbol": "AAPL", "ts": ts}
        if kind in ("cancel", "replace") and ids:
            target = draw(st.sampled_from(ids))
            if kind == "cancel":
                commands.append({**base, "type": "cancel", "order_id": target})
            else:
                change: dict[str, Any] = {}
                if draw(st.booleans()):
                    change["price"] = str(Decimal(draw(st.integers(9_990, 10_010))) * TICK)
                change["quantity"] = str(draw(st.integers(1, 12)))
                commands.append({**base, "type": "replace", "order_id": target, **change})
            continue
        order_id = f"o{i}"
        ids.append(order_id)
        side = draw(st.sampled_from(["buy", "sell"]))
        quantity = draw(st.integers(1, 12))
        command: dict[str, Any] = {
            **base,
            "type": "new",
            "order_id": order_id,
            "side": side,
            "quantity": str(quantity),
            "time_in_force": draw(st.sampled_from(["gtc", "gtc", "gtc", "ioc"])),
        }
        price = str(Decimal(draw(st.integers(9_990, 10_010))) * TICK)
        if kind == "market":
            command.update(order_type="market", time_in_force="ioc")
        elif kind == "stop_limit":
            command.update(order_type="stop_limit", price=price, stop_price=price)
        else:
            command.update(order_type="limit", price=price)
            if kind == "iceberg" and quantity > 1:
                command["display_quantity"] = str(draw(st.integers(1, quantity - 1)))
        if draw(st.integers(0, 5)) == 0:
            command["stp"] = draw(st.sampled_from(["decrement", "cancel_oldest", "cancel_newest"]))
        commands.append(command)
    return commands


def run(commands: list[dict[str, Any]]) -> tuple[MatchingEngine, list[list[AnyEngineEvent]]]:
    engine = MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=TICK, lot_size=Decimal(1))})
    steps = []
    for command in commands:
        events = engine.process(command)
        if events:
            steps.append([ENGINE_EVENT_ADAPTER.validate_python(e) for e in events])
    return engine, steps


def fold_l3(steps: list[list[AnyEngineEvent]], redeliver: set[int]) -> dict[str, L3Order]:
    """What the consumer does per record: load the named orders, fold, store the changed ones."""
    store: dict[str, L3Order] = {}
    for index, step in enumerate(steps):
        for _ in range(2 if index in redeliver else 1):
            fold = L3Fold(store)
            for event in step:
                fold.apply(event)
            store.update(fold.finish())
    return store


def engine_l3(engine: MatchingEngine) -> dict[str, list[tuple[Decimal, list[tuple[str, Decimal]]]]]:
    book = engine._markets["AAPL"].book  # the reference: the engine's own queues
    out = {}
    for name, side in (("buy", book.bids), ("sell", book.asks)):
        out[name] = [
            (Decimal(level.price) * TICK, [(o.order_id, Decimal(o.remaining)) for o in level.orders()])
            for level in side.iter_levels()
        ]
    return out


def folded_l3(store: dict[str, L3Order]) -> dict[str, list[tuple[Decimal, list[tuple[str, Decimal]]]]]:
    out: dict[str, list[tuple[Decimal, list[tuple[str, Decimal]]]]] = {}
    for side in ("buy", "sell"):
        resting = [o for o in store.values() if o.side == side and o.resting]
        prices = sorted({o.price for o in resting if o.price is not None}, reverse=side == "buy")
        out[side] = [
            (p, [(o.order_id, o.shown) for o in sorted((o for o in resting if o.price == p), key=lambda o: o.priority)])
            for p in prices
        ]
    return out


@SETTINGS
@given(journals(), st.sets(st.integers(0, 60), max_size=10))
def test_l3_from_events_is_the_engines_book(commands: list[dict[str, Any]], redeliver: set[int]) -> None:
    # GIVEN a random journal run by the engine WHEN its events are folded (some records twice)
    engine, steps = run(commands)
    store = fold_l3(steps, redeliver)
    # THEN every resting order is where the engine has it, with the quantity it shows
    assert folded_l3(store) == engine_l3(engine)


def grouped(items: list[Any], cuts: set[int]) -> list[list[Any]]:
    """``items`` cut into consecutive groups, a new one starting at each index in ``cuts``."""
    groups: list[list[Any]] = []
    for index, item in enumerate(items):
        if not groups or index in cuts:
            groups.append([])
        groups[-1].append(item)
    return groups


def fold_l3_batches(
    batches: list[list[list[AnyEngineEvent]]], store: dict[str, L3Order], redeliver: set[int]
) -> int:
    """What the consumer does per batch: load the named orders, fold record by record (the fold
    told where each record ends), store the changed ones. Some batches are delivered twice.
    Returns how many items were written."""
    written = 0
    for index, batch in enumerate(batches):
        for _ in range(2 if index in redeliver else 1):
            fold = L3Fold(store)
            for record in batch:
                for event in record:
                    fold.apply(event)
                fold.end_record()
            changed = fold.finish()
            store.update(changed)
            written += len(changed)
    return written


@SETTINGS
@given(
    journals(),
    st.sets(st.integers(0, 60), max_size=30),
    st.sets(st.integers(0, 60), max_size=20),
    st.sets(st.integers(0, 60), max_size=20),
    st.sets(st.integers(0, 30), max_size=5),
)
def test_l3_folded_by_record_in_any_batches_is_the_engines_book_and_leaves_out_what_never_rested(
    commands: list[dict[str, Any]], record_cuts: set[int], first_cuts: set[int], replay_cuts: set[int],
    redeliver: set[int],
) -> None:  # fmt: skip
    # GIVEN a random journal run by the engine, its steps published as records of one or more
    # steps, the records read in batches, some batches delivered twice
    engine, steps = run(commands)
    records = [[event for step in group for event in step] for group in grouped(steps, record_cuts)]
    store: dict[str, L3Order] = {}
    fold_l3_batches(grouped(records, first_cuts), store, redeliver)
    # THEN the book is the engine's
    assert folded_l3(store) == engine_l3(engine)
    # AND an order that its own record left resting or parked has an item; one that its own record
    # ended (market, IOC, FOK, filled on arrival), and no later record names, has none
    for index, record in enumerate(records):
        named_later = {name for later in records[index + 1 :] for name in touched_order_ids(later)}
        for event in record:
            if isinstance(event, AcceptedEvent):
                if not _ended_in(record, event.order_id):
                    assert event.order_id in store
                elif event.order_id not in named_later:
                    assert event.order_id not in store
    # AND the whole stream read again in other batches (a replay from the start) changes nothing
    replayed = dict(store)
    fold_l3_batches(grouped(records, replay_cuts), replayed, set())
    assert replayed == store


def _ended_in(record: list[AnyEngineEvent], order_id: str) -> bool:
    """Whether ``record`` alone, folded from nothing, leaves ``order_id`` ended."""
    fold = L3Fold({})
    for event in record:
        fold.apply(event)
    return fold.finish()[order_id].state == "done"


@SETTINGS
@given(journals())
def test_l2_from_book_deltas_is_the_engines_depth(commands: list[dict[str, Any]]) -> None:
    engine, steps = run(commands)
    levels: dict[tuple[str, Decimal], tuple[Decimal, int]] = {}
    for step in steps:
        for event in step:
            if isinstance(event, BookEvent):
                levels[(event.side, event.price)] = (event.quantity, event.orders)
    depth = engine.book_depth("AAPL", 1000)
    for side, engine_side in (("buy", depth["bids"]), ("sell", depth["asks"])):
        ours = sorted(
            ((p, q, n) for (s, p), (q, n) in levels.items() if s == side and q > 0), reverse=side == "buy"
        )
        assert ours == [(Decimal(p) * TICK, Decimal(q), n) for p, q, n in engine_side]
    # and L1 is the first level of each side
    best_bid = max((p for (s, p), (q, _) in levels.items() if s == "buy" and q > 0), default=None)
    assert best_bid == (Decimal(depth["bids"][0][0]) * TICK if depth["bids"] else None)


def merge(existing: dict[tuple[str, str], Candle], trades: list[TradeEvent]) -> dict[tuple[str, str], Candle]:
    """The candles changed by ``trades`` (in seq order), each folded onto ``existing`` by bucket."""
    current = dict(existing)
    changed: dict[tuple[str, str], Candle] = {}
    for trade in sorted(trades, key=lambda t: t.seq):
        for interval in INTERVALS:
            key = candle_key(trade.symbol, interval, trade.ts)
            folded = fold(current.get(key), trade, interval)
            if folded is not None:
                current[key] = changed[key] = folded
    return changed


def reference_candles(trades: list[TradeEvent]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The obvious computation: bucket = floor(epoch seconds / interval); sort by seq."""
    groups: dict[tuple[str, str], list[TradeEvent]] = defaultdict(list)
    for trade in trades:
        for interval, seconds in INTERVALS.items():
            start = int(trade.ts.timestamp()) // seconds * seconds
            bucket = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            groups[(f"AAPL#{interval}", bucket)].append(trade)
    out = {}
    for key, group in groups.items():
        group.sort(key=lambda t: t.seq)
        prices = [t.price for t in group]
        out[key] = (
            prices[0], max(prices), min(prices), prices[-1],
            sum((t.quantity for t in group), Decimal(0)),
            sum((t.price * t.quantity for t in group), Decimal(0)),
            len(group),
        )
    return out


@SETTINGS
@given(journals(), st.sets(st.integers(0, 60), max_size=10))
def test_candles_folded_per_record_match_the_tape(commands: list[dict[str, Any]], redeliver: set[int]) -> None:
    _, steps = run(commands)
    stored: dict[tuple[str, str], Candle] = {}
    for index, step in enumerate(steps):
        trades = [e for e in step if isinstance(e, TradeEvent)]
        for _ in range(2 if index in redeliver else 1):  # a redelivered record counts once
            stored.update(merge(stored, trades))
    tape = [e for step in steps for e in step if isinstance(e, TradeEvent)]
    ours = {
        key: (c.open, c.high, c.low, c.close, c.volume, c.notional, c.trades) for key, c in stored.items()
    }
    assert ours == reference_candles(tape)


class CandleStore:
    """The candles table as ``DynamoCandles.apply`` leaves it, in memory."""

    def __init__(self) -> None:
        self.closed: dict[tuple[str, str], Candle] = {}  # the closed candles' items
        self.live: dict[str, Candle] = {}  # the live item, by interval

    def attempt(self, trades: list[TradeEvent], stops: bool = False) -> None:
        """Read, advance, write the closed candles (unless their item counts as much), then the
        live item (unless the attempt stops before)."""
        stored = {key: self.closed[key] for key in candle_keys(trades) if key in self.closed}
        stored.update({(live_series("AAPL"), interval): candle for interval, candle in self.live.items()})
        step = advance(stored, "AAPL", trades)
        for candle in step.closed:
            if candle.key not in self.closed or self.closed[candle.key].last_seq < candle.last_seq:
                self.closed[candle.key] = candle
        if step.live is not None and not stops:
            self.live.clear()
            self.live.update(step.live)

    def candle(self, key: tuple[str, str]) -> Candle | None:
        return newest(self.closed.get(key), next((c for c in self.live.values() if c.key == key), None))


@SETTINGS
@given(journals(), st.data())
def test_live_and_closed_candles_advanced_in_any_batches_match_the_tape(
    commands: list[dict[str, Any]], data: st.DataObject
) -> None:
    _, steps = run(commands)
    # some trades stamped up to two minutes early: late trades, in buckets that may have closed
    late = data.draw(st.lists(st.sampled_from([0, 0, 0, 30, 75, 120]), min_size=len(steps), max_size=len(steps)))
    records = [[e.model_copy(update={"ts": e.ts - timedelta(seconds=back)}) for e in step if isinstance(e, TradeEvent)]
               for step, back in zip(steps, late, strict=True)]  # fmt: skip
    store = CandleStore()
    attempt, closed, live = store.attempt, store.closed, store.live

    def batch(start: int, size: int) -> list[TradeEvent]:
        return [t for record in records[start:start + size] for t in record]

    at = 0
    while at < len(records):  # batches from the checkpoint: a stopped one, retried longer or shorter
        size = data.draw(st.integers(1, 6))
        if data.draw(st.integers(0, 3)) == 0:
            attempt(batch(at, data.draw(st.integers(1, 6))), stops=True)
        attempt(batch(at, size))
        if data.draw(st.integers(0, 4)) == 0:
            attempt(batch(at, size))  # redelivered
        at += size
    for record in records:  # the whole tape again, record by record
        attempt(record)
    tape = [t for record in records for t in record]
    live_by_key = {candle.key: candle for candle in live.values()}
    # closing never lost a trade and nothing counted twice: each bucket's newest copy counts
    # exactly its trades
    ours: dict[tuple[str, str], tuple[Any, ...]] = {}
    for key in {*closed, *live_by_key}:
        c = newest(closed.get(key), live_by_key.get(key))
        assert c is not None
        ours[key] = (c.open, c.high, c.low, c.close, c.volume, c.notional, c.trades)
    assert ours == reference_candles(tape)
    # and every live candle is its interval's newest bucket
    for interval, candle in live.items():
        assert all(c.start <= candle.start for c in closed.values() if c.interval == interval)


def test_a_late_trade_counts_in_its_closed_bucket_and_leaves_the_live_candle_alone() -> None:
    # GIVEN two trades, the later one (higher seq) stamped in the minute before the first one's
    base = {"account_id": "alice", "symbol": "AAPL", "type": "new", "time_in_force": "gtc", "order_type": "limit",
            "price": "100.00", "quantity": "1"}  # fmt: skip
    _, steps = run([{**base, "command_id": c, "order_id": c, "side": side, "account_id": who, "ts": START.isoformat()}
                    for c, side, who in (("s1", "sell", "alice"), ("b1", "buy", "bob"), ("s2", "sell", "alice"),
                                         ("b2", "buy", "bob"))])  # fmt: skip
    first, second = [e for step in steps for e in step if isinstance(e, TradeEvent)]
    second = second.model_copy(update={"ts": START - timedelta(minutes=1)})
    # WHEN the first is folded, then the second onto what the first left
    one = advance({}, "AAPL", [first])
    assert one.live is not None and one.closed == []
    stored = {(live_series("AAPL"), interval): candle for interval, candle in one.live.items()}
    two = advance(stored, "AAPL", [second])
    # THEN the second counts in a candle of its own minute, written as a closed one, and the live
    # 1m candle is still the first one's; the 1d candle, the same day's, counts both
    minute_before = START.replace(second=0) - timedelta(minutes=1)
    assert [(c.interval, c.start, c.trades) for c in two.closed] == [("1m", minute_before, 1)]
    assert two.live is not None and two.live["1m"] == one.live["1m"] and two.live["1d"].trades == 2
    # AND folded again, it changes nothing
    stored.update({(live_series("AAPL"), i): c for i, c in two.live.items()})
    stored.update({c.key: c for c in two.closed})
    again = advance(stored, "AAPL", [second])
    assert again.live is None and again.closed == []


def test_a_stopped_attempt_then_a_longer_retry_with_late_trades_loses_no_trade() -> None:
    # GIVEN trades 1..5 of one share, stamped: 1 in minute A, 2 in A, 3 in minute B, 4 and 5 late (in A)
    base = {"account_id": "alice", "symbol": "AAPL", "type": "new", "time_in_force": "gtc", "order_type": "limit",
            "price": "100.00", "quantity": "1", "ts": START.isoformat()}  # fmt: skip
    _, steps = run([{**base, "command_id": f"{side}{n}", "order_id": f"{side}{n}", "side": side,
                     "account_id": "alice" if side == "sell" else "bob"} for n in range(5) for side in ("sell", "buy")])
    minute_a = START.replace(second=0)
    stamps = [minute_a, minute_a, minute_a + timedelta(minutes=1), minute_a, minute_a]
    t1, t2, t3, t4, t5 = [trade.model_copy(update={"ts": at + timedelta(seconds=5)}) for trade, at in
                          zip([e for step in steps for e in step if isinstance(e, TradeEvent)], stamps, strict=True)]
    store = CandleStore()
    store.attempt([t1])
    # WHEN a batch [2, 3, 4] stops after writing the candles it closed, before the live item, and
    # the retry from the checkpoint is longer: [2, 3, 4, 5]
    store.attempt([t2, t3, t4], stops=True)
    store.attempt([t2, t3, t4, t5])
    # THEN minute A's candle counts its four trades, 1, 2, 4 and 5, each once
    candle = store.candle(("AAPL#1m", minute_a.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert candle is not None and (candle.trades, candle.volume) == (4, 4)
