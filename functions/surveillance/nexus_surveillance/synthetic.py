"""A seeded synthetic trading day with labelled manipulation, for the surveillance benchmark.

The day (2026-01-05, 09:30-16:00 New York) holds, per symbol:

* a **market maker** (one owner) quoting both sides around a random-walk mid, requoting every
  few seconds and cancelling almost every quote; in volatile spells it requotes every 100-300 ms,
  some symbols it quotes a three-level ladder each side;
* **benign traders** (thousands of owners, one to three accounts each) taking the maker's quotes,
  resting limit orders they often cancel, and the benign look-alikes of every pattern: large
  orders pulled quickly with no trade the other way, ladders scaled into and left standing,
  sweeps kept (or sold later or at a loss), counterparties that meet twice with unlike sizes, busy
  but trading algorithms, heavy buying at the close with little impact, closes moved by many;
* **injected episodes** of every pattern (``episodes`` each, default 120) with varied sizes,
  timings, prices and account splits, a share of them placed across a minute (and, for quote
  stuffing, a second) boundary. ``Episode`` is the ground truth.

It writes the platform's formats through ``Tape``: the commands a client sends (new orders carry
the owner's ``user_id``) and the engine's events, globally in time order, each symbol's ``seq``
counting from 1. The script says who trades with whom; there is no matching engine in the loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus_surveillance.tape import Record, Tape

SECOND = 1_000_000_000
MS = 1_000_000
MINUTE = 60 * SECOND
OPEN_NS = 1_767_623_400 * SECOND  # 2026-01-05T14:30:00Z = 09:30 New York
CLOSE_NS = 1_767_646_800 * SECOND  # 2026-01-05T21:00:00Z = 16:00 New York
PATTERNS = ("spoofing", "layering", "wash_trading", "momentum_ignition", "marking_the_close", "quote_stuffing")
MM_USER = "u_mm"
MM_ACCOUNT = "acc_mm"

_PRICES: dict[int, Decimal] = {}


def px(cents: int) -> Decimal:
    """A price in cents as a 2-dp Decimal (cached: the day uses few distinct prices)."""
    value = _PRICES.get(cents)
    if value is None:
        value = _PRICES[cents] = Decimal(cents).scaleb(-2)
    return value


@dataclass(frozen=True)
class Episode:
    pattern: str
    symbol: str
    users: tuple[str, ...]
    accounts: tuple[str, ...]
    start_ns: int
    end_ns: int
    kind: str = ""  # wash trading: same_owner | round_trip

    def straddles(self, bucket_ns: int) -> bool:
        return self.start_ns // bucket_ns != self.end_ns // bucket_ns


@dataclass
class DayStats:
    commands: int = 0
    events: int = 0
    orders: int = 0
    market_maker_orders: int = 0
    trades: int = 0


@dataclass
class Day:
    episodes: list[Episode]
    owners: dict[str, str]
    stats: DayStats
    commands: list[Record] = field(default_factory=list)
    events: list[Record] = field(default_factory=list)


Action = tuple[int, int, str, str, tuple[Any, ...]]  # ts, n, symbol, verb, args


class _Script:
    """Every action of the day, sorted by time (then by script order) before it is taped."""

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self._n = 0
        self._oid = 0

    def oid(self, prefix: str) -> str:
        self._oid += 1
        return f"{prefix}{self._oid}"

    def _add(self, ts: int, symbol: str, verb: str, args: tuple[Any, ...]) -> None:
        self._n += 1
        self.actions.append((ts, self._n, symbol, verb, args))

    def new(self, ts: int, sym: str, oid: str, acc: str, side: str, cents: int, qty: int) -> None:
        self._add(ts, sym, "new", (oid, acc, side, cents, qty))

    def cancel(self, ts: int, sym: str, oid: str, acc: str, remaining: int) -> None:
        self._add(ts, sym, "cancel", (oid, acc, remaining))

    def trade(self, ts: int, sym: str, cents: int, qty: int, aggressor: str, taker: tuple[str, str],
              maker: tuple[str, str], taker_rem: int = 0, maker_rem: int = 0) -> None:
        self._add(ts, sym, "trade", (cents, qty, aggressor, taker, maker, taker_rem, maker_rem))

    def take(self, ts: int, sym: str, acc: str, side: str, cents: int, qty: int, maker: tuple[str, str],
             maker_rem: int = 0) -> str:
        """A marketable order that fills in full against ``maker`` at ``cents``."""
        oid = self.oid("t")
        self.new(ts, sym, oid, acc, side, cents, qty)
        self.trade(ts, sym, cents, qty, side, (oid, acc), maker, 0, maker_rem)
        return oid

    def cross(self, ts: int, sym: str, seller: str, buyer: str, cents: int, qty: int, aggressor: str,
              gap_ns: int) -> None:
        """One account rests, the other takes it ``gap_ns`` later."""
        rest_side = "sell" if aggressor == "buy" else "buy"
        rester, taker = (seller, buyer) if aggressor == "buy" else (buyer, seller)
        rest = self.oid("r")
        self.new(ts, sym, rest, rester, rest_side, cents, qty)
        self.take(ts + gap_ns, sym, taker, aggressor, cents, qty, (rest, rester))


class _Symbol:
    """A symbol's market: the maker's quote schedule around a random-walk mid, plus price shifts
    the episodes cause (benign flow trades at the shifted price)."""

    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.base = rng.randrange(2_000, 40_000)  # 20.00 .. 400.00
        self.half_spread = max(1, self.base // 20_000)
        self.interval = rng.randrange(10, 50) * SECOND
        self.size = rng.choice((100, 200, 300, 500))
        self.ladder = rng.random() < 0.2
        steps = (CLOSE_NS - OPEN_NS) // self.interval + 2
        walk = [0] * steps
        level = 0
        vol = max(1, self.base // 4_000)
        for i in range(steps):
            level += rng.choice((-vol, 0, 0, vol))
            level = max(-self.base // 10, min(self.base // 10, level))
            walk[i] = level
        self.walk = walk
        self.shifts: list[tuple[int, int, int]] = []  # start, end, cents

    def mid(self, ts: int) -> int:
        k = max(0, (ts - OPEN_NS) // self.interval)
        shift = 0
        for start, end, cents in self.shifts:
            if start <= ts <= end:
                shift = cents
        return self.base + self.walk[min(k, len(self.walk) - 1)] + shift

    def quote(self, ts: int, side: str) -> tuple[str, int]:
        """The maker's order on ``side`` live at ``ts`` and its price."""
        k = max(0, (ts - OPEN_NS) // self.interval)
        oid = f"{self.name}.mm.{k}.{'b' if side == 'buy' else 'a'}"
        mid = self.mid(ts)  # the maker follows the price at once
        return oid, (mid - self.half_spread if side == "buy" else mid + self.half_spread)


class _Population:
    def __init__(self, rng: random.Random, users: int) -> None:
        self.rng = rng
        self.owners: dict[str, str] = {MM_ACCOUNT: MM_USER}
        self.accounts: dict[str, list[str]] = {}
        for u in range(users):
            self._user(f"u{u}", rng.choice((1, 1, 1, 2, 2, 3)))
        self.benign = list(self.accounts)
        self._bad = 0

    def _user(self, user: str, n: int) -> list[str]:
        accs = [f"{user}.a{i}" for i in range(n)]
        self.accounts[user] = accs
        for acc in accs:
            self.owners[acc] = user
        return accs

    def manipulator(self, accounts: int) -> tuple[str, list[str]]:
        self._bad += 1
        user = f"x{self._bad}"
        return user, self._user(user, accounts)

    def trader(self, avoid: str | None = None) -> tuple[str, str]:
        """A benign owner and one of its accounts (never the owner of ``avoid``)."""
        not_this = self.owners.get(avoid) if avoid is not None else None
        while True:
            user = self.rng.choice(self.benign)
            if user != not_this:
                return user, self.rng.choice(self.accounts[user])


def _other(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def _episode_start(rng: random.Random, straddle_share: float, lo: int, hi: int, span_ns: int) -> int:
    """A start in [lo, hi); a share of them placed so the episode crosses a minute boundary."""
    t = rng.randrange(lo, hi)
    if rng.random() < straddle_share:
        minute = (t // MINUTE + 1) * MINUTE
        t = minute - rng.randrange(1, max(2, span_ns))
    return t


def generate_day(
    seed: int = 7,
    symbols: int = 160,
    episodes: int = 120,
    users: int = 2_000,
    *,
    on_command: Callable[[Record], None] | None = None,
    on_event: Callable[[Record], None] | None = None,
    benign_rate: float = 1.0,
) -> Day:
    """The day's records (to the sinks, else kept in ``Day.commands``/``Day.events``), the owners
    map and the ground truth. ``symbols`` must be at least ``episodes`` (one close per symbol)."""
    if symbols < episodes or episodes < 1 or symbols > 10_000 or users < 10:
        raise ValueError("need episodes >= 1, symbols >= episodes (<= 10,000) and users >= 10")
    rng = random.Random(seed)
    script = _Script()
    pop = _Population(rng, users)
    market = [_Symbol(f"S{i:04d}", rng) for i in range(symbols)]
    truth: list[Episode] = []
    stats = DayStats()
    # busy periods are chosen before the flow so the flow can avoid nothing: episodes overlap
    # benign flow and the market maker, as in a real day.
    for pattern in PATTERNS:
        for i in range(episodes):
            sym = market[i] if pattern == "marking_the_close" else rng.choice(market)
            truth.append(_INJECT[pattern](script, rng, pop, sym, i))
    for sym in market:
        _market_maker(script, rng, sym, stats)
        _benign_flow(script, rng, pop, sym, benign_rate)
        _look_alikes(script, rng, pop, sym, benign_rate)
    script.actions.sort(key=lambda a: (a[0], a[1]))
    day = Day(episodes=truth, owners=pop.owners, stats=stats)

    def count_command(record: Record) -> None:
        stats.commands += 1
        (on_command or day.commands.append)(record)

    def count_event(record: Record) -> None:
        stats.events += 1
        (on_event or day.events.append)(record)

    tape = Tape(count_command, count_event)
    owners = pop.owners
    decimals: dict[int, Decimal] = {}

    def q(n: int) -> Decimal:
        value = decimals.get(n)
        if value is None:
            value = decimals[n] = Decimal(n)
        return value

    for ts, _n, sym_name, verb, args in script.actions:
        if verb == "new":
            oid, acc, side, cents, qty = args
            tape.new(sym_name, oid, acc, side, px(cents), q(qty), ts, user=owners.get(acc))
            stats.orders += 1
        elif verb == "cancel":
            oid, acc, remaining = args
            tape.cancel(sym_name, oid, acc, q(remaining), ts)
        else:
            cents, qty, aggressor, taker, maker, taker_rem, maker_rem = args
            tape.trade(sym_name, ts, px(cents), q(qty), aggressor, taker, maker, q(taker_rem), q(maker_rem))
            stats.trades += 1
    script.actions.clear()
    return day


# -- the market maker and the benign flow -----------------------------------------------------


def _market_maker(script: _Script, rng: random.Random, sym: _Symbol, stats: DayStats) -> None:
    """Two-sided quotes every ``interval``, each cancelled at the next requote; volatile spells
    add fast requotes of extra orders."""
    name = sym.name
    k = 0
    t = OPEN_NS
    while t < CLOSE_NS:
        mid = sym.mid(t)
        nxt = t + sym.interval
        for side, letter, sign in (("buy", "b", -1), ("sell", "a", 1)):
            oid = f"{name}.mm.{k}.{letter}"
            script.new(t, name, oid, MM_ACCOUNT, side, mid + sign * sym.half_spread, sym.size * 10)
            script.cancel(nxt - MS, name, oid, MM_ACCOUNT, sym.size * 10)
            stats.market_maker_orders += 1
            if sym.ladder:
                for level in (2, 3):
                    lid = f"{oid}.{level}"
                    script.new(t + 1, name, lid, MM_ACCOUNT, side, mid + sign * sym.half_spread * level,
                               sym.size * 10)
                    script.cancel(nxt - MS, name, lid, MM_ACCOUNT, sym.size * 10)
                    stats.market_maker_orders += 1
        if rng.random() < 0.02:  # a volatile spell: 5-20 s of requotes every 100-300 ms
            spell_end = t + rng.randrange(5, 20) * SECOND
            step = rng.randrange(100, 300) * MS
            s = t + step
            j = 0
            while s < min(spell_end, CLOSE_NS):
                for side, sign in (("buy", -1), ("sell", 1)):
                    oid = f"{name}.mmv.{k}.{j}.{side[0]}"
                    script.new(s, name, oid, MM_ACCOUNT, side, mid + sign * (sym.half_spread + 1), sym.size * 10)
                    script.cancel(s + step - MS, name, oid, MM_ACCOUNT, sym.size * 10)
                    stats.market_maker_orders += 1
                j += 1
                s += step
        t = nxt
        k += 1


def _benign_flow(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, rate: float) -> None:
    name = sym.name
    t = OPEN_NS + rng.randrange(0, 10 * SECOND)
    mean_gap = 25.0 / rate
    while t < CLOSE_NS:
        _, acc = pop.trader()
        r = rng.random()
        side = rng.choice(("buy", "sell"))
        if r < 0.6:  # take the maker's quote
            maker_side = _other(side)
            moid, cents = sym.quote(t, maker_side)
            script.take(t, name, acc, side, cents, rng.choice((1, 1, 2, 3, 5)) * sym.size // 2 or 1,
                        (moid, MM_ACCOUNT), sym.size * 9)
        elif r < 0.9:  # rest away from the touch, usually cancelled, sometimes filled by someone
            oid = script.oid("p")
            mid = sym.mid(t)
            off = rng.randrange(1, 20) * max(1, sym.half_spread)
            cents = mid - off if side == "buy" else mid + off
            qty = rng.choice((1, 2, 4, 10)) * 100
            script.new(t, name, oid, acc, side, cents, qty)
            life = int(rng.expovariate(1 / 30.0) * SECOND) + 50 * MS
            if rng.random() < 0.25:
                _, other = pop.trader(avoid=acc)
                script.take(t + life, name, other, _other(side), cents, qty, (oid, acc))
            else:
                script.cancel(t + life, name, oid, acc, qty)
        else:  # a two-level take
            maker_side = _other(side)
            moid, cents = sym.quote(t, maker_side)
            oid = script.oid("t")
            qty = sym.size
            script.new(t, name, oid, acc, side, cents + (2 if side == "buy" else -2), 2 * qty)
            script.trade(t, name, cents, qty, side, (oid, acc), (moid, MM_ACCOUNT), qty, sym.size * 9)
            second = cents + (1 if side == "buy" else -1)
            _, other = pop.trader(avoid=acc)
            rest = script.oid("r")
            script.new(t - 5 * SECOND, name, rest, other, maker_side, second, qty)
            script.trade(t, name, second, qty, side, (oid, acc), (rest, other), 0, 0)
        t += int(rng.expovariate(1 / mean_gap) * SECOND) + MS


def _look_alikes(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, rate: float) -> None:
    """Benign activity that resembles each pattern, a few of each kind per symbol."""
    name = sym.name
    n = max(1, int(3 * rate))
    day_end = CLOSE_NS - 10 * MINUTE
    for _ in range(n):
        # a large order pulled quickly, nothing traded the other way
        t = rng.randrange(OPEN_NS, day_end)
        _, acc = pop.trader()
        oid = script.oid("big")
        side = rng.choice(("buy", "sell"))
        mid = sym.mid(t)
        qty = rng.randrange(20, 200) * 100
        script.new(t, name, oid, acc, side, mid - 5 if side == "buy" else mid + 5, qty)
        script.cancel(t + rng.randrange(100, 4_000) * MS, name, oid, acc, qty)
        # a large order on one side, a trade of like size the other way (a pair trade, a hedge)
        t = rng.randrange(OPEN_NS, day_end)
        _, acc = pop.trader()
        side = rng.choice(("buy", "sell"))
        qty = rng.randrange(10, 40) * 100
        oid = script.oid("hedge")
        mid = sym.mid(t)
        script.new(t, name, oid, acc, side, mid - 3 if side == "buy" else mid + 3, qty)
        moid, cents = sym.quote(t + 200 * MS, side)
        script.take(t + 200 * MS, name, acc, _other(side), cents, qty * rng.randrange(40, 100) // 100,
                    (moid, MM_ACCOUNT), sym.size * 9)
        script.cancel(t + rng.randrange(500, 3_000) * MS, name, oid, acc, qty)
        # a ladder scaled into and left standing for minutes, a trade the other way meanwhile
        t = rng.randrange(OPEN_NS, day_end)
        _, acc = pop.trader()
        side = rng.choice(("buy", "sell"))
        mid = sym.mid(t)
        ladder = []
        for lvl in range(rng.randrange(3, 6)):
            oid = script.oid("lad")
            cents = mid - 3 - lvl if side == "buy" else mid + 3 + lvl
            script.new(t + lvl * 300 * MS, name, oid, acc, side, cents, 300)
            ladder.append(oid)
        moid, cents = sym.quote(t + 3 * SECOND, side)
        script.take(t + 3 * SECOND, name, acc, _other(side), cents, 200, (moid, MM_ACCOUNT), sym.size * 9)
        for oid in ladder:
            script.cancel(t + rng.randrange(60, 600) * SECOND, name, oid, acc, 300)
        # a sweep that is kept, or sold much later, or sold at a loss
        t = rng.randrange(OPEN_NS, day_end)
        _, acc = pop.trader()
        side = rng.choice(("buy", "sell"))
        sign = 1 if side == "buy" else -1
        start = sym.mid(t) + sign * sym.half_spread
        levels = rng.randrange(3, 6)
        step = max(1, math.ceil(start * 0.003 / (levels - 1)))
        oid = script.oid("sw")
        script.new(t, name, oid, acc, side, start + sign * step * levels, 100 * levels)
        for lvl in range(levels):
            _, other = pop.trader(avoid=acc)
            rest = script.oid("r")
            script.new(t - rng.randrange(1, 30) * SECOND, name, rest, other, _other(side),
                       start + sign * step * lvl, 100)
            script.trade(t, name, start + sign * step * lvl, 100, side, (oid, acc), (rest, other),
                         100 * (levels - lvl - 1), 0)
        fate = rng.random()
        if fate < 0.5:
            when, cents = t + rng.randrange(60, 600) * SECOND, start + sign * step * levels
        else:
            when, cents = t + rng.randrange(2, 20) * SECOND, start - sign * step
        if fate > 0.2:
            _, other = pop.trader(avoid=acc)
            out = script.oid("out")
            script.new(when, name, out, acc, _other(side), cents, 100 * levels)
            script.take(when + 10 * MS, name, other, side, cents, 100 * levels, (out, acc))
        # two benign traders who meet twice, with unlike sizes
        t = rng.randrange(OPEN_NS, day_end)
        _, a = pop.trader()
        _, b = pop.trader()
        if pop.owners[a] != pop.owners[b]:
            cents = sym.mid(t)
            script.cross(t, name, a, b, cents, 300, "buy", 200 * MS)
            script.cross(t + 20 * SECOND, name, a, b, cents + 1, 700, "sell", 200 * MS)
    for _ in range(max(1, n // 3)):
        # a busy algorithm: 60-95 orders a second, cancelled, for 20 s; or 150 in a second with fills
        t = rng.randrange(OPEN_NS, day_end)
        _, acc = pop.trader()
        if rng.random() < 0.5:
            per_s = rng.randrange(60, 95)
            for s in range(20):
                for j in range(per_s):
                    ts = t + s * SECOND + j * SECOND // per_s
                    oid = script.oid("algo")
                    script.new(ts, name, oid, acc, "buy", sym.mid(ts) - 2, 100)
                    script.cancel(ts + 5 * MS, name, oid, acc, 100)
        else:
            fills = 0
            for j in range(150):
                ts = t + j * 6 * MS
                oid = script.oid("algo")
                side = "buy" if j % 2 else "sell"
                cents = sym.mid(ts) + (-2 if side == "buy" else 2)
                script.new(ts, name, oid, acc, side, cents, 100)
                if j % 8 == 0:
                    _, other = pop.trader(avoid=acc)
                    script.take(ts + MS, name, other, _other(side), cents, 100, (oid, acc))
                    fills += 1
                else:
                    script.cancel(ts + 3 * MS, name, oid, acc, 100)
    # the close: heavy buying with little impact, or a move made by many traders
    t0 = CLOSE_NS - 4 * MINUTE
    if rng.random() < 0.5:
        _, acc = pop.trader()
        side = rng.choice(("buy", "sell"))
        for j in range(rng.randrange(2, 5)):
            ts = t0 + j * 30 * SECOND
            moid, cents = sym.quote(ts, _other(side))
            script.take(ts, name, acc, side, cents, sym.size * 3, (moid, MM_ACCOUNT), sym.size * 9)


# -- the injected episodes --------------------------------------------------------------------


def _spoofing(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, _i: int) -> Episode:
    user, accs = pop.manipulator(rng.choice((1, 1, 2, 3)))
    name = sym.name
    life = rng.randrange(300, 9_000) * MS
    t0 = _episode_start(rng, 0.3, OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE, life + SECOND)
    real_side = rng.choice(("buy", "sell"))
    spoof_side = _other(real_side)
    real_qty = rng.randrange(1, 8) * 100
    real_acc = rng.choice(accs)
    mid = sym.mid(t0)
    real_cents = mid - sym.half_spread if real_side == "buy" else mid + sym.half_spread
    real = script.oid("sreal")
    script.new(t0, name, real, real_acc, real_side, real_cents, real_qty)
    end = t0
    first = t0 + rng.randrange(20, 500) * MS
    fill_at = first + int(life * rng.uniform(0.2, 0.9))
    spoof_levels = rng.choice((1, 2))
    for j in range(rng.randrange(1, 5)):
        oid = script.oid("spoof")
        qty = max(1_000, real_qty * rng.randrange(3, 16) // 100 * 100)
        off = (1 + j % spoof_levels) * max(1, sym.half_spread)
        cents = mid + sym.half_spread + off if spoof_side == "sell" else mid - sym.half_spread - off
        placed = first + j * rng.randrange(5, 80) * MS
        acc = rng.choice(accs)
        script.new(placed, name, oid, acc, spoof_side, cents, qty)
        gone = placed + life
        script.cancel(gone, name, oid, acc, qty)
        end = max(end, gone)
    _, hitter = pop.trader()
    script.take(fill_at, name, hitter, spoof_side, real_cents, real_qty, (real, real_acc))
    return Episode("spoofing", name, (user,), tuple(accs), t0, max(end, fill_at))


def _layering(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, _i: int) -> Episode:
    user, accs = pop.manipulator(rng.choice((1, 1, 2)))
    name = sym.name
    build = rng.randrange(500, 10_000) * MS
    t0 = _episode_start(rng, 0.3, OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE, build + 3 * SECOND)
    layer_side = rng.choice(("buy", "sell"))
    sign = -1 if layer_side == "buy" else 1
    n = rng.randrange(3, 7)
    levels = rng.randrange(3, min(n, 5) + 1)
    mid = sym.mid(t0)
    layers = []
    for j in range(n):
        oid = script.oid("layer")
        acc = accs[0]
        cents = mid + sign * (sym.half_spread + 1 + j % levels)
        qty = rng.randrange(2, 20) * 100
        script.new(t0 + j * build // n, name, oid, acc, layer_side, cents, qty)
        layers.append((oid, acc, qty))
    exec_at = t0 + build + rng.randrange(200, 3_000) * MS
    real_side = _other(layer_side)
    real_qty = rng.randrange(1, 10) * 100
    real_acc = rng.choice(accs)
    real = script.oid("lreal")
    real_cents = mid - sym.half_spread if real_side == "buy" else mid + sym.half_spread
    script.new(exec_at - rng.randrange(50, 500) * MS, name, real, real_acc, real_side, real_cents, real_qty)
    _, hitter = pop.trader()
    script.take(exec_at, name, hitter, layer_side, real_cents, real_qty, (real, real_acc))
    end = exec_at
    keep_one = n >= 5 and rng.random() < 0.3
    for j, (oid, acc, qty) in enumerate(layers):
        if keep_one and j == n - 1:
            continue
        gone = exec_at + rng.randrange(100, 14_000) * MS
        script.cancel(gone, name, oid, acc, qty)
        end = max(end, gone)
    return Episode("layering", name, (user,), tuple(accs), t0, end)


def _wash(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, i: int) -> Episode:
    name = sym.name
    if i % 2 == 0:  # one owner on both sides: one account (no STP), or across its accounts
        user, accs = pop.manipulator(rng.choice((1, 2, 2, 3)))
        t0 = _episode_start(rng, 0.3, OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE, 20 * SECOND)
        t = t0
        for _ in range(rng.randrange(1, 5)):
            seller, buyer = rng.choice(accs), rng.choice(accs)
            script.cross(t, name, seller, buyer, sym.mid(t) + rng.randrange(-2, 3), rng.randrange(1, 50) * 100,
                         rng.choice(("buy", "sell")), rng.randrange(5, 2_000) * MS)
            t += rng.randrange(1, 15) * SECOND
        return Episode("wash_trading", name, (user,), tuple(accs), t0, t, kind="same_owner")
    u1, a1 = pop.manipulator(1)
    u2, a2 = pop.manipulator(1)
    t0 = _episode_start(rng, 0.3, OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE, 60 * SECOND)
    t = t0
    for _ in range(rng.randrange(2, 5)):
        qty = rng.randrange(1, 40) * 100
        back = qty + qty * rng.randrange(-5, 6) // 100
        cents = sym.mid(t)
        script.cross(t, name, a2[0], a1[0], cents, qty, rng.choice(("buy", "sell")), rng.randrange(5, 800) * MS)
        t += rng.randrange(2, 20) * SECOND
        script.cross(t, name, a1[0], a2[0], cents + rng.randrange(-3, 4), back, rng.choice(("buy", "sell")),
                     rng.randrange(5, 800) * MS)
        t += rng.randrange(2, 20) * SECOND
    return Episode("wash_trading", name, (u1, u2), (a1[0], a2[0]), t0, t, kind="round_trip")


def _momentum(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, _i: int) -> Episode:
    user, accs = pop.manipulator(rng.choice((1, 1, 2)))
    name = sym.name
    t0 = _episode_start(rng, 0.3, OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE, 10 * SECOND)
    side = rng.choice(("buy", "sell"))
    sign = 1 if side == "buy" else -1
    start = sym.mid(t0) + sign * sym.half_spread
    levels = rng.randrange(3, 7)
    move_bps = rng.randrange(12, 80)
    step = max(1, math.ceil(start * move_bps / 10_000 / (levels - 1)))
    acc = accs[0]
    oid = script.oid("ign")
    per = rng.randrange(1, 6) * 100
    script.new(t0, name, oid, acc, side, start + sign * step * levels, per * levels)
    for lvl in range(levels):
        _, other = pop.trader()
        rest = script.oid("r")
        cents = start + sign * step * lvl
        script.new(t0 - rng.randrange(1, 60) * SECOND, name, rest, other, _other(side), cents, per)
        script.trade(t0 + lvl * rng.randrange(0, 300) * MS, name, cents, per, side, (oid, acc), (rest, other),
                     per * (levels - lvl - 1), 0)
    far = start + sign * step * (levels - 1)
    t_out = t0 + SECOND * levels // 3 + rng.randrange(1_000, 25_000) * MS
    out_cents = far - sign * rng.randrange(0, max(1, int(step * (levels - 1) * 0.4)) + 1)
    out_acc = rng.choice(accs)
    out_qty = per * levels * rng.randrange(60, 121) // 100
    out = script.oid("out")
    script.new(t_out, name, out, out_acc, _other(side), out_cents, out_qty)
    _, fomo = pop.trader()
    script.take(t_out + rng.randrange(1, 500) * MS, name, fomo, side, out_cents, out_qty, (out, out_acc))
    sym.shifts.append((t0, t_out + 10 * SECOND, sign * step * (levels - 1)))
    return Episode("momentum_ignition", name, (user,), tuple(accs), t0, t_out + 500 * MS)


def _marking(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, _i: int) -> Episode:
    user, accs = pop.manipulator(rng.choice((1, 1, 2)))
    name = sym.name
    side = rng.choice(("buy", "sell"))
    sign = 1 if side == "buy" else -1
    n = rng.randrange(2, 7)
    span = rng.randrange(60, 270) * SECOND
    t0 = CLOSE_NS - span
    ref = sym.mid(t0 - SECOND)
    move = max(n, math.ceil(ref * rng.randrange(15, 90) / 10_000))
    t = t0
    for j in range(n):
        cents = ref + sign * (sym.half_spread + move * (j + 1) // n)
        acc = rng.choice(accs)
        _, other = pop.trader()
        rest = script.oid("r")
        qty = rng.randrange(5, 25) * 100
        script.new(t - rng.randrange(1, 30) * SECOND, name, rest, other, _other(side), cents, qty)
        script.take(t, name, acc, side, cents, qty, (rest, other))
        sym.shifts.append((t, CLOSE_NS + MINUTE, cents - ref))
        t += span // n
    last = t - span // n
    return Episode("marking_the_close", name, (user,), tuple(accs), t0, min(CLOSE_NS, last + SECOND))


def _stuffing(script: _Script, rng: random.Random, pop: _Population, sym: _Symbol, _i: int) -> Episode:
    user, accs = pop.manipulator(rng.choice((1, 1, 2)))
    name = sym.name
    span = rng.randrange(100, 900) * MS
    t0 = rng.randrange(OPEN_NS + MINUTE, CLOSE_NS - 10 * MINUTE)
    if rng.random() < 0.5:  # across a second boundary
        t0 = (t0 // SECOND + 1) * SECOND - rng.randrange(1, span // MS) * MS
    n = rng.randrange(95, 1_500)
    fills = rng.randrange(0, 4)
    mid = sym.mid(t0)
    for j in range(n):
        ts = t0 + j * span // n
        oid = script.oid("q")
        acc = accs[j % len(accs)]
        side = "buy" if j % 2 else "sell"
        cents = mid - 5 if side == "buy" else mid + 5
        qty = rng.randrange(1, 10) * 100
        script.new(ts, name, oid, acc, side, cents, qty)
        if j < fills:
            _, other = pop.trader()
            script.take(ts + MS, name, other, _other(side), cents, qty, (oid, acc))
        else:
            script.cancel(ts + rng.randrange(1, 20) * MS, name, oid, acc, qty)
    return Episode("quote_stuffing", name, (user,), tuple(accs), t0, t0 + span + 20 * MS)


_INJECT: dict[str, Callable[[_Script, random.Random, _Population, _Symbol, int], Episode]] = {
    "spoofing": _spoofing,
    "layering": _layering,
    "wash_trading": _wash,
    "momentum_ignition": _momentum,
    "marking_the_close": _marking,
    "quote_stuffing": _stuffing,
}
