"""Snapshot and restore of the matching engine's state: JSON-ready data, deterministic.

``snapshot_of`` writes the full state (every book with its parked stops, the counters, the event
sequences, the window of seen ids, the halted symbols, the totals of the routed orders working
on external venues) so that an engine ``restore_engine`` rebuilds from it continues exactly as
the original would have; ``MatchingEngine.snapshot`` and ``MatchingEngine.restore`` are these
two. Format 5; ``restore_engine`` also reads formats 2 to 4 (docs/matching-engine.md,
"Idempotency").

Run at start-up and at each snapshot, never per command: this module is not compiled. It reads
and sets the engine's and the markets' fields, the engine's own state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from nexus_common.instruments import Instrument

from nexus_matching.book import STOP, OcoGroup, Order, OrderBook
from nexus_matching.commands import DECIMAL_RE
from nexus_matching.config import EngineConfig
from nexus_matching.market import by_arrival
from nexus_matching.seen import SeenIds

if TYPE_CHECKING:
    from nexus_matching.engine import MatchingEngine

SNAPSHOT_FORMAT: Final = 5
# Older snapshot formats ``restore`` still reads (format 2: one unbounded list of seen ids;
# formats 2 and 3: no halted symbols; formats 2 to 4: no routed orders working on external venues).
READABLE_FORMATS: Final = (2, 3, 4, 5)


def snapshot_of(engine: MatchingEngine) -> dict[str, Any]:
    """The engine's full state as JSON-ready data, deterministic (same state -> same dict/JSON)."""
    seqs = dict(engine._other_seq)
    books: dict[str, Any] = {}
    counters: dict[str, Any] = {}
    for symbol in sorted(engine._markets):
        m = engine._markets[symbol]
        if m.seq:
            seqs[symbol] = m.seq
        if m.last or m.arrivals:
            counters[symbol] = {"last": m.last, "arrivals": m.arrivals}
        if m.book.orders or m.pending:
            instrument = m.instrument
            stops = sorted(m.pending.values(), key=by_arrival)
            books[symbol] = {
                "tick_size": str(instrument.tick_size),
                "lot_size": str(instrument.lot_size),
                **m.book.to_state(),
                "stops": [o.to_row() for o in stops],
            }
    return {
        "format": SNAPSHOT_FORMAT,
        "epoch": engine._epoch,
        "dropped_commands": engine.dropped_commands,
        "seq": {symbol: seqs[symbol] for symbol in sorted(seqs)},
        "counters": counters,
        "books": books,
        "seen_order_ids": {"previous": sorted(engine._seen.previous), "current": sorted(engine._seen.current)},
        "halted": sorted(engine._halted),
        "working_routes": {order_id: list(engine._working[order_id]) for order_id in sorted(engine._working)},
    }

def restore_engine(
    cls: Callable[..., MatchingEngine],
    state: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    config: EngineConfig | None = None,
) -> MatchingEngine:
    """Rebuild an engine (``cls``: the engine class) from ``snapshot_of`` output (also after a
    JSON round trip).

    Raises ValueError when the state is malformed or does not fit the instruments (a book
    for an unknown symbol, or a different tick or lot size).
    """
    try:
        version = state["format"]
        if version not in READABLE_FORMATS:
            raise ValueError(f"unsupported snapshot format {version!r}")
        engine = cls(instruments, epoch=state["epoch"], config=config)
        dropped = state["dropped_commands"]
        if type(dropped) is not int or dropped < 0:
            raise ValueError("malformed dropped_commands")
        engine.dropped_commands = dropped
        for symbol, book_state in state["books"].items():
            m = engine._markets.get(symbol)
            if m is None:
                raise ValueError(f"snapshot has orders for unknown symbol {symbol!r}")
            instrument = m.instrument
            if (
                Decimal(book_state["tick_size"]) != instrument.tick_size
                or Decimal(book_state["lot_size"]) != instrument.lot_size
            ):
                raise ValueError(f"tick or lot size of {symbol} changed since the snapshot")
            m.book = OrderBook.from_state(book_state)
            stops = [Order.from_row(row) for row in book_state["stops"]]
            for order in stops:
                if order.kind < STOP or order.order_id in m.book.orders or order.order_id in m.pending:
                    raise ValueError(f"malformed parked stop {order.order_id!r}")
                m.park(order)
            group_ids: dict[Any, Any] = {
                row[0]: row[17]
                for row in [*book_state["bids"], *book_state["asks"], *book_state["stops"]]
            }
            groups: dict[str, OcoGroup] = {}
            for order in sorted([*m.book.orders.values(), *stops], key=by_arrival):
                group_id = group_ids[order.order_id]
                if isinstance(group_id, str):
                    group = groups.setdefault(group_id, OcoGroup(group_id))
                    if len(group.legs) >= 2:
                        raise ValueError(f"OCO group {group_id!r} has more than two legs")
                    group.legs.append(order)
                    order.group = group
                if order.expire_at:
                    m.expiries.append((order.expire_at, order.arrival, order.order_id))
            heapq.heapify(m.expiries)
            m.groups = groups
        for symbol, counter in state["counters"].items():
            m = engine._markets.get(symbol)
            if m is None:
                raise ValueError(f"snapshot has counters for unknown symbol {symbol!r}")
            last, arrivals = counter["last"], counter["arrivals"]
            if type(last) is not int or type(arrivals) is not int or last < 0 or arrivals < 0:
                raise ValueError(f"malformed counters of {symbol}")
            m.last, m.arrivals = last, arrivals
        for symbol, seq in state["seq"].items():
            if type(symbol) is not str or type(seq) is not int or seq < 1:
                raise ValueError(f"malformed sequence counter {symbol!r}: {seq!r}")
            market = engine._markets.get(symbol)
            if market is not None:
                market.seq = seq
            else:
                engine._other_seq[symbol] = seq
        seen = state["seen_order_ids"]
        if version == 2:  # one unbounded set: it becomes the older generation
            previous, current = seen, []
        else:
            previous, current = seen["previous"], seen["current"]
        for ids in (previous, current):
            if type(ids) is not list or not all(type(order_id) is str for order_id in ids):
                raise ValueError("malformed seen_order_ids")
        engine._seen = SeenIds(engine._seen.limit, previous, current)
        halted = state["halted"] if version >= 4 else []
        if type(halted) is not list or not all(type(symbol) is str and symbol for symbol in halted):
            raise ValueError("malformed halted symbols")
        engine._halted = set(halted)
        working = state["working_routes"] if version >= 5 else {}
        if type(working) is not dict or not all(
            type(order_id) is str and order_id and type(totals) is list and len(totals) == 3
            and all(type(value) is str and DECIMAL_RE.fullmatch(value) for value in totals)
            for order_id, totals in working.items()
        ):
            raise ValueError("malformed working routes")
        engine._working = {order_id: (totals[0], totals[1], totals[2]) for order_id, totals in working.items()}
        if version == 2:
            for market in engine._markets.values():
                live = {order_id for order_id, _ in market.book.orders.items()} | market.pending.keys()
                if not all(order_id in engine._seen.previous for order_id in live):
                    raise ValueError(f"live orders of {market.symbol} missing from seen ids")
    except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"malformed snapshot: {exc!r}") from exc
    return engine


__all__ = ["READABLE_FORMATS", "SNAPSHOT_FORMAT", "restore_engine", "snapshot_of"]
