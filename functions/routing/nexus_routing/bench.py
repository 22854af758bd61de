"""``nexus bench routing``: the router's speed in process, on simulated venues.

Setup (seeded, ``random.Random(seed)``): ``venues`` simulated venues (default 6: the matching core
as a library, each with its own fees and latency model), one symbol, a market maker quoting
``levels`` price levels a side (100 to 1,000 shares each) around 100.00 on every venue.

1. NBBO: ``compute_nbbo`` over every enabled venue's book snapshot (each venue caches its
   snapshot until its book changes), with each venue's quote and depth, computed afresh at every
   call. Timed per call.
2. Routing decision: ``SmartOrderRouter.decide``: the venues' current books, the NBBO as the
   router maintains it (recomputed when a venue's book changed, else reused) and ``route_order``,
   for requests drawn ahead of time (side, 100 to 5,000 shares, one of the six strategies,
   urgency, market or a limit 0 to 5 ticks through the NBBO). Timed per call; the decision record
   is complete (venues considered, children, alternatives, NBBO), not serialised.
3. Sustained: requests arrive on a fixed schedule at ``rate`` per second for ``seconds``; each is
   routed end to end (decisions, child orders executed on the simulated venues, reports folded
   into the parent and the venue statistics), then the market maker puts back what was taken
   (not timed, but inside the schedule). A request's latency runs from its scheduled arrival to
   the end of its routing, so falling behind the schedule shows in the figures. The rate achieved
   is the requests over the schedule's window, or over the time they took when that was longer.

The garbage collector is collected, frozen and disabled around each timed part (as ``nexus bench
matching`` does). Parts 1 and 2 run ``repeat`` times; the figure is the run with the lowest p99 and
the median p99 is printed beside it (on a shared machine the slower runs measure the other work;
the load average as the run starts is printed too). Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from nexus_common.instruments import Instrument
from nexus_matching.bench import percentile as matching_percentile
from nexus_matching.bench import quiet_gc

from nexus_routing.execution import SmartOrderRouter
from nexus_routing.model import ChildOrder, ExecStatus, OrderType, Side, Strategy, Urgency
from nexus_routing.nbbo import compute_nbbo
from nexus_routing.router import RouteRequest
from nexus_routing.venues import SimulatedVenue, Venue

SYMBOL = "BENCH"
TICK = Decimal("0.01")
MID_TICKS = 10_000
STRATEGIES = tuple(Strategy)


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def percentile(sorted_samples: list[int], q: float) -> int:
    return matching_percentile(sorted_samples, q) if sorted_samples else 0


@dataclass(frozen=True)
class Figures:
    samples: int
    p50_us: float
    p99_us: float
    max_us: float

    @classmethod
    def of(cls, ns: list[int]) -> Figures:
        ns = sorted(ns)
        return cls(len(ns), percentile(ns, 0.50) / 1000, percentile(ns, 0.99) / 1000, (ns[-1] if ns else 0) / 1000)


@dataclass(frozen=True)
class Result:
    venues: int
    levels: int
    nbbo_runs: list[Figures]
    decision_runs: list[Figures]
    rate: int
    seconds: float
    sustained: Figures
    achieved_per_s: float
    filled_shares: Decimal
    load: float  # the 1-minute load average as the run started

    @property
    def nbbo(self) -> Figures:
        return min(self.nbbo_runs, key=lambda f: f.p99_us)

    @property
    def decision(self) -> Figures:
        return min(self.decision_runs, key=lambda f: f.p99_us)


def build(venues: int, levels: int, seed: int) -> SmartOrderRouter:
    rng = random.Random(seed)
    clock = _Clock()
    instruments = {SYMBOL: Instrument(symbol=SYMBOL, tick_size=TICK, lot_size=Decimal(1))}
    sims: dict[str, SimulatedVenue] = {}
    for i in range(venues):
        name = f"Venue{i}"
        config = Venue(
            name=name, mic=f"XB{i:02d}", kind="internal" if i == 0 else "simulated",
            fees={"taker_fee": Decimal(rng.randint(-10, 30)) / 10_000,
                  "maker_rebate": Decimal(rng.randint(0, 30)) / 10_000},
            latency={"base_us": rng.randint(100, 1500), "jitter_us": rng.randint(0, 300), "seed": seed + i},
        )
        sims[name] = SimulatedVenue(config, instruments, clock)
    serial = 0
    for sim in sims.values():
        for k in range(levels):
            for side, ticks in ((Side.SELL, MID_TICKS + 1 + k), (Side.BUY, MID_TICKS - 1 - k)):
                size = rng.randint(1, 10) * 100
                serial += 1
                sim.submit(ChildOrder(f"mm{serial}", SYMBOL, side, Decimal(size), TICK * ticks, "gtc", account_id="mm"))
    return SmartOrderRouter(sims, clock)


def requests(n: int, seed: int, router: SmartOrderRouter, prefix: str) -> list[RouteRequest]:
    rng = random.Random(seed)
    nbbo = router.nbbo(SYMBOL)
    out = []
    for i in range(n):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        far = nbbo.far(side)
        assert far is not None
        market = rng.random() < 0.2
        through = TICK * rng.randint(0, 5)
        limit = None if market else (far + through if side is Side.BUY else far - through)
        out.append(
            RouteRequest(
                f"{prefix}{i}", SYMBOL, side, Decimal(rng.randint(1, 50) * 100), STRATEGIES[rng.randrange(6)],
                OrderType.MARKET if market else OrderType.LIMIT, limit, urgency=rng.choice(list(Urgency)),
            )
        )
    return out


def run(venues: int = 6, levels: int = 10, decisions: int = 20_000, rate: int = 1_000, seconds: float = 5.0,
        seed: int = 42, repeat: int = 3) -> Result:
    load = os.getloadavg()[0]
    router = build(venues, levels, seed)
    configs = router.configs

    # 1. NBBO, computed from the venues' quotes at every call (no caching of the NBBO itself)
    books = router.books
    for _ in range(1_000):
        compute_nbbo(SYMBOL, books(SYMBOL), configs)
    nbbo_runs: list[Figures] = []
    for _ in range(repeat):
        samples: list[int] = []
        with quiet_gc():
            for _ in range(decisions):
                start = time.perf_counter_ns()
                compute_nbbo(SYMBOL, books(SYMBOL), configs)
                samples.append(time.perf_counter_ns() - start)
        nbbo_runs.append(Figures.of(samples))

    # 2. routing decisions
    todo = requests(decisions, seed + 1, router, "D")
    decide = router.decide
    for request in todo[:1_000]:
        decide(request)
    decision_runs: list[Figures] = []
    for _ in range(repeat):
        samples = []
        with quiet_gc():
            for request in todo:
                start = time.perf_counter_ns()
                decide(request)
                samples.append(time.perf_counter_ns() - start)
        decision_runs.append(Figures.of(samples))

    # 3. sustained, paced
    total = int(rate * seconds)
    todo = requests(total, seed + 2, router, "S")
    interval = 1_000_000_000 // rate
    samples = []
    filled = Decimal(0)
    with quiet_gc():
        begin = time.perf_counter_ns()
        for i, request in enumerate(todo):
            due = begin + i * interval
            while time.perf_counter_ns() < due:
                pass
            parent = router.route(request)
            samples.append(time.perf_counter_ns() - due)
            filled += parent.filled
            _put_back(router, parent.children.values(), request.side)
            if i % 1_000 == 999:
                router.evict_done()
        # the run is the schedule's window (``total`` intervals, the last request arriving one
        # interval before its end), or longer when the router fell behind the schedule
        elapsed = max(time.perf_counter_ns() - begin, total * interval) / 1e9
    return Result(venues, levels, nbbo_runs, decision_runs, rate, seconds, Figures.of(samples),
                  total / elapsed, filled, load)


def _put_back(router: SmartOrderRouter, children: object, side: Side) -> None:
    """The market maker re-quotes what the router took (and cancels what the router rested)."""
    for child in children:  # type: ignore[attr-defined]
        venue = router.venues[child.venue]
        if child.open:
            venue.cancel(SYMBOL, child.order_id)
        if child.filled:
            maker_side = Side.SELL if side is Side.BUY else Side.BUY
            average = (child.notional / child.filled).quantize(TICK)
            report = venue.submit(ChildOrder(f"{child.order_id}-mm", SYMBOL, maker_side, child.filled,
                                             average, "gtc", account_id="mm"))
            assert report.status is not ExecStatus.REJECTED, report
        venue.drain_reports()


def _median_p99(runs: list[Figures]) -> float:
    return statistics.median(f.p99_us for f in runs)


def report(result: Result) -> list[str]:
    nbbo, decision = result.nbbo, result.decision
    return [
        f"routing, in process ({result.venues} simulated venues on the matching core, {result.levels} levels a side; "
        f"load average {result.load:.2f} on {os.cpu_count()} cores as it started):",
        f"  NBBO              p50 {nbbo.p50_us:8.2f} us   p99 {nbbo.p99_us:8.2f} us   max {nbbo.max_us:9.1f} us   "
        f"({nbbo.samples:,} calls; best p99 of {len(result.nbbo_runs)} runs, median p99 "
        f"{_median_p99(result.nbbo_runs):.2f} us; target p99 <= 20 us)",
        f"  routing decision  p50 {decision.p50_us:8.2f} us   p99 {decision.p99_us:8.2f} us   "
        f"max {decision.max_us:9.1f} us   ({decision.samples:,} decisions; best p99 of {len(result.decision_runs)} "
        f"runs, median p99 {_median_p99(result.decision_runs):.2f} us; target p99 <= 100 us)",
        f"  sustained         {result.achieved_per_s:,.0f} requests/s offered at {result.rate:,}/s for "
        f"{result.seconds:g} s: p50 {result.sustained.p50_us:.1f} us   p99 {result.sustained.p99_us:.1f} us   "
        f"max {result.sustained.max_us:.1f} us",
        "                    (each request routed end to end: decisions, children executed on the venues, reports "
        f"folded; {result.filled_shares:,} shares filled)",
    ]
