"""``nexus bench matching``: workload W1 through the engine, and through a published peer.

W1 (issue 3): ``random.Random(42)``, one symbol, integer ticks around ``P0 = 10_000``; per op a
draw ``u``: ``u < 0.20`` cancels a random id among the last 1,000 passive orders (a no-op when
it is gone), ``0.20 <= u < 0.25`` a market order (side 50/50, quantity 1-100), ``0.25 <= u <
0.50`` a crossing limit at ``P0 + 5`` (buy) or ``P0 - 5`` (sell), otherwise a passive limit at
``P0 - (1 + k)`` (buy) or ``P0 + (1 + k)`` (sell), ``k`` in 0-19. Limit quantities are 1-100 as
well; sides 50/50. The workload is generated before any timing.

The engine runs on its integer fast path (``MatchingEngine.submit`` / ``cancel_order``: the same
matching core as ``process``, with the protection band, collar, self-trade checks, icebergs,
OCO and stop triggers all in place, minus the event dicts), compiled when the extension is built
(``nexus_matching.implementation()``, printed by the command; ``NEXUS_MATCHING_PURE=1`` measures
the pure Python engine). Pass 1 times the whole run (ops/s, no per-op timer), ``repeat`` times
on a fresh engine each; the figure is the fastest run and the median is printed beside it (as
``timeit`` does: on a shared machine the slower runs measure the other work, not the engine).
Pass 2, on a fresh engine, times every op with ``time.perf_counter_ns``. The garbage collector is
collected, frozen and disabled around each timed run. The peer (``cython-orderbook``, a compiled
Cython order book from PyPI, the ``bench`` extra) runs the same ops the same number of times,
interleaved with the engine's runs; the ratio is the engine's best ops/s over the peer's.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from typing import Any

from nexus_common.instruments import Instrument

from nexus_matching.engine import MatchingEngine

P0 = 10_000
SYMBOL = "BENCH"
CANCEL, MARKET, LIMIT = 0, 1, 2
PEER = "cython-orderbook"

# (kind, order_id, account_id, is_buy, price or None, lots); cancels: (CANCEL, order_id, account_id)
Op = tuple[Any, ...]


def workload(n: int = 1_000_000, seed: int = 42) -> list[Op]:
    """W1 as a list of ops (see the module doc)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    passive: list[tuple[str, str]] = []  # the last 1,000 passive orders (id, account)
    for i in range(n):
        u = rng.random()
        account = f"acct-{i % 16}"
        order_id = f"o{i}"
        if u < 0.20:
            if passive:
                target, owner = passive[rng.randrange(len(passive))]
                ops.append((CANCEL, target, owner))
            else:
                ops.append((CANCEL, "none", account))
        elif u < 0.25:
            is_buy = rng.random() < 0.5
            ops.append((MARKET, order_id, account, is_buy, None, rng.randint(1, 100)))
        elif u < 0.50:
            is_buy = rng.random() < 0.5
            ops.append((LIMIT, order_id, account, is_buy, P0 + 5 if is_buy else P0 - 5, rng.randint(1, 100)))
        else:
            is_buy = rng.random() < 0.5
            k = rng.randint(0, 19)
            price = P0 - (1 + k) if is_buy else P0 + (1 + k)
            ops.append((LIMIT, order_id, account, is_buy, price, rng.randint(1, 100)))
            passive.append((order_id, account))
            if len(passive) > 1_000:
                del passive[0]
    return ops


def new_engine() -> MatchingEngine:
    instrument = Instrument(symbol=SYMBOL, tick_size=Decimal("0.01"), lot_size=Decimal("1"))
    return MatchingEngine({SYMBOL: instrument})


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No collection during the timed part: collect and freeze what exists, then disable."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def engine_runner(engine: MatchingEngine) -> Callable[[Op], Any]:
    submit = engine.submit
    cancel = engine.cancel_order

    def run(op: Op) -> Any:
        if op[0] == CANCEL:
            return cancel(SYMBOL, op[1], op[2])
        return submit(SYMBOL, op[1], op[2], op[3], op[4], op[5])

    return run


def run_engine(ops: list[Op]) -> float:
    """Pass 1: seconds for the whole workload, one timer around it."""
    engine = new_engine()
    submit = engine.submit
    cancel = engine.cancel_order
    symbol = SYMBOL
    with quiet_gc():
        start = time.perf_counter_ns()
        for op in ops:
            if op[0] == CANCEL:
                cancel(symbol, op[1], op[2])
            else:
                submit(symbol, op[1], op[2], op[3], op[4], op[5])
        elapsed = time.perf_counter_ns() - start
    return elapsed / 1e9


def latencies(ops: list[Op]) -> list[int]:
    """Pass 2: every op timed on its own (ns), on a fresh engine."""
    engine = new_engine()
    submit = engine.submit
    cancel = engine.cancel_order
    symbol = SYMBOL
    clock = time.perf_counter_ns
    samples = [0] * len(ops)
    with quiet_gc():
        for i, op in enumerate(ops):
            if op[0] == CANCEL:
                start = clock()
                cancel(symbol, op[1], op[2])
                samples[i] = clock() - start
            else:
                start = clock()
                submit(symbol, op[1], op[2], op[3], op[4], op[5])
                samples[i] = clock() - start
    return samples


def run_peer(ops: list[Op]) -> float | None:
    """The same ops through ``cython-orderbook``; None when it is not installed."""
    try:
        from cython_orderbook import Order, OrderBook, OrderSide
    except ImportError:
        return None
    book = OrderBook()
    bid, ask = OrderSide.BID, OrderSide.ASK
    ids: dict[str, str] = {}  # our order id -> the peer's
    prepared: list[tuple[int, Any]] = []
    for op in ops:  # the peer's order objects are built before timing, like our op tuples
        if op[0] == CANCEL:
            prepared.append((CANCEL, op[1]))
        else:
            order = Order(bid if op[3] else ask, op[5], op[4])
            ids[op[1]] = order.order_id
            prepared.append((op[0], order))
    add_limit, add_market, cancel = book.add_limit_order, book.add_market_order, book.cancel_order
    with quiet_gc():
        start = time.perf_counter_ns()
        for kind, arg in prepared:
            if kind == LIMIT:
                add_limit(arg)
            elif kind == MARKET:
                add_market(arg)
            else:
                try:
                    cancel(ids.get(arg, ""))
                except (KeyError, ValueError):  # a cancel of a finished order is a no-op in W1
                    pass  # (the peer looks the order's level up in a dict and takes it out of a queue)
        elapsed = time.perf_counter_ns() - start
    return elapsed / 1e9


def peer_version() -> str:
    try:
        return metadata.version(PEER)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Result:
    ops: int
    runs: tuple[float, ...]  # seconds of each pass-1 run
    p50_ns: int
    p99_ns: int
    p999_ns: int
    max_ns: int
    peer_runs: tuple[float, ...]  # empty when the peer was not run

    @property
    def seconds(self) -> float:
        return min(self.runs)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds

    @property
    def median_ops_per_s(self) -> float:
        return self.ops / statistics.median(self.runs)

    @property
    def peer_seconds(self) -> float | None:
        return min(self.peer_runs) if self.peer_runs else None

    @property
    def peer_ops_per_s(self) -> float | None:
        return None if self.peer_seconds is None else self.ops / self.peer_seconds


def percentile(sorted_samples: list[int], q: float) -> int:
    index = min(len(sorted_samples) - 1, int(q * len(sorted_samples)))
    return sorted_samples[index]


def run(n: int = 1_000_000, peer: bool = True, repeat: int = 3) -> Result:
    ops = workload(n)
    runs: list[float] = []
    peer_runs: list[float] = []
    for _ in range(repeat):
        runs.append(run_engine(ops))
        peer_seconds = run_peer(ops) if peer else None
        if peer_seconds is not None:
            peer_runs.append(peer_seconds)
    samples = sorted(latencies(ops))
    return Result(
        ops=n,
        runs=tuple(runs),
        p50_ns=percentile(samples, 0.50),
        p99_ns=percentile(samples, 0.99),
        p999_ns=percentile(samples, 0.999),
        max_ns=samples[-1],
        peer_runs=tuple(peer_runs),
    )
