# cython: language_level=3, annotation_typing=False
"""The matching engine: commands in, events out, for every symbol of the venue.

Pure domain: no I/O, no clock, no randomness. ``process`` takes one JSON-decoded command (the
command models of ``nexus_common.events``, decimals as strings) and returns the events it causes
as flat JSON-ready dicts shaped exactly like the event models of ``nexus_common.events``
(decimals as canonical strings, as ``nexus_common.money.fmt`` writes them). The same journal of
commands always gives the same events, which is what makes snapshot + replay rebuild the same
books and the same event ids. The README section "Engine command and event formats" is the
user's reference; this docstring is the engine's contract in full.

Envelope of every event: ``event_id = f"{symbol}-{seq}"``, ``version`` 1, ``ts`` copied from the
command (never the engine's clock), ``correlation_id`` = the command's ``command_id``,
``symbol``, ``seq`` (per-symbol counter 1, 2, 3, ... with no gaps) and ``epoch`` (the leadership
epoch set with ``set_epoch``).

Commands (``type``): ``new``, ``cancel``, ``replace``, ``mass_cancel``, ``oco``, ``clock``,
``halt``, ``resume``.

Halts. A trading halt is a command on the journal, so every replay of the journal halts and
resumes at the same point: ``halt`` (``symbol``, optional ``reason``) stops trading in the
symbol: a ``new``, ``oco`` or ``replace`` is refused ``symbol_halted``, so no trade happens and
no parked stop can trigger; resting and parked orders stay, cancels, mass cancels and expiries go
on. ``resume`` lifts it. Each gives one ``trading_status`` event (``status`` ``halted`` or
``active``, ``reason``) when it changes the state, none when the symbol already was so. The
instrument's ``status`` in the instruments table is order entry's pre-check; the engine decides
on its own halt state only (it is in the snapshot), never on the table, which a replay would
read as it is now rather than as it was.

Time. Only the commands' ``ts`` tells the time. Before a command of a symbol is applied, every
DAY/GTD order of that symbol whose expiry is at or before the command's ``ts`` expires (an
``expired`` event, reason ``day`` or ``gtd``), in expiry-instant order, then by arrival. A
``clock`` command (``symbol`` optional: all symbols) does only that, so a scheduler can put one
on the stream at each session close. DAY orders expire at the first session close at or after
their arrival: ``EngineConfig.session_close`` (local time, default 16:00) in
``EngineConfig.session_zone`` (default America/New_York), per symbol overridable with
``session_closes`` (``None``: no session close, DAY behaves as GTC). Every calendar day has a
close (weekends and holidays are the scheduler's business). GTD orders carry ``expire_at``.

New order. Validation never raises; a bad order gets one ``rejected`` event whose reason is, in
the order checked: ``unknown_symbol``, ``symbol_halted``, ``invalid_command`` (side, order type,
time in force, account id, ``post_only`` / ``stp`` / ``expire_at`` / ``display_quantity`` of
the wrong type or where the order type does not take it), ``missing_price`` (limit or stop-limit
without price), ``unexpected_price`` (market or stop with a price), ``invalid_price`` /
``price_off_tick`` (price, then stop price), ``missing_stop_price`` / ``unexpected_stop_price``,
``invalid_quantity`` / ``quantity_off_lot``, ``invalid_display_quantity``, ``missing_expire_at``
/ ``invalid_expire_at`` / ``already_expired`` (GTD), ``price_collar``, ``post_only_would_take``.
Every size the API admits (below ``money.MAX_MAGNITUDE``) is exact: Python integers do not
overflow. A valid order gives ``accepted`` and then what it does.

Order types:

* ``limit``: matches up to its price, the remainder per time in force.
* ``market``: matches, but never beyond the *protection band*: ``market_band_bps`` (default 500
  = 5 %) of the best opposite price at its arrival, floor-rounded to ticks, away from that
  price. The remainder is cancelled: reason ``market_protection`` when liquidity is left beyond
  the band, ``market_no_liquidity`` when the opposite side is empty.
* ``stop`` / ``stop_limit``: parked until the last trade price reaches ``stop_price`` (a buy
  stop when last >= stop, a sell stop when last <= stop; at once on arrival if already so).
  Then a ``triggered`` event, and the order executes as a market order (stop, with the band,
  never rests) or a limit order at ``price`` (stop_limit, its time in force applies).

Trigger order. Triggers are checked after each execution (an incoming order, or a triggered
one): every parked stop the last trade price now reaches is triggered, in arrival order, and
each executes completely before the next. Stops that those executions trigger in turn form the
next round, in the same engine step (same command, same ``correlation_id``), until none is
left. Cancels, expiries and replaces never trigger except through trades.

Time in force: ``gtc`` rests; ``day`` rests until the session close; ``gtd`` until
``expire_at``; ``ioc`` cancels its remainder (reason ``ioc``); ``fok`` fills completely at once
or is cancelled (reason ``fok``) with no trade, no book change and no other trace.

Instructions on ``new``: ``post_only`` (limit, not ioc/fok: rejected ``post_only_would_take``
when it would cross); ``display_quantity`` (iceberg; limit or stop-limit: it shows that many
lots, and each time the shown slice is used up the next one is shown at the back of its price's
queue; the hidden reserve counts for FOK); ``stp`` self-trade prevention, see below.

Self-trade prevention. When a taker would trade with a resting order of the same account and
either has an ``stp`` mode (the taker's mode wins; the maker's applies when the taker has
none), no trade happens and: ``cancel_newest`` cancels the taker's remainder;
``cancel_oldest`` cancels the resting order and matching goes on; ``cancel_both`` cancels both;
``decrement`` reduces both by the smaller open quantity (a ``replaced`` event, reason
``self_trade``, for one that keeps a quantity; ``cancelled``, reason ``self_trade``, for one that
is used up) and matching goes on. Without a mode, an account's orders trade with each other. A
FOK order that would meet such an order before it is filled is cancelled (``fok``).

Replace (``price``, ``stop_price``, ``quantity`` = the new total, filled included; at least one):
``replaced`` with ``kept_priority``. A lower quantity at the same prices keeps the order's place
(iceberg: the hidden reserve shrinks first); a price change or a larger quantity takes the order
out and runs it again as if it just arrived (it may trade). ``replace_rejected`` reasons:
``unknown_order``, ``not_owner``, ``symbol_halted``, ``invalid_command``, ``oco_leg`` (legs cannot
be replaced), price and quantity reasons as for a new order, ``quantity_below_filled``,
``post_only_would_take``. Cancel: ``cancelled`` reason ``user`` or ``cancel_rejected``
(``unknown_order``, ``not_owner``). Mass cancel (``account_id``, optional ``symbol``): every live
order of the account (resting and parked), ``cancelled`` reason ``mass_cancel``, per symbol in
arrival order. Cancels are accepted while a symbol is halted.

OCO (``type: oco``): legs ``{order_id}.tp`` (take-profit: a limit at ``price``) and
``{order_id}.sl`` (stop-loss: a stop at ``stop_price``, a stop-limit with ``stop_limit_price``),
one side, one ``quantity``. A sell group needs ``stop_price < price``, a buy group
``stop_price > price`` (else ``invalid_oco``). Every lot one leg fills is taken off the other in
the same step (``replaced``, reason ``oco``; ``cancelled``, reason ``oco`` once nothing is left),
so together they never fill more than the group's quantity. When both legs are executable at
arrival (the last price is already through the stop and the take-profit price crosses the book:
a gap through both levels), the take-profit, the leg more favourable to the owner, executes and
the stop-loss is cancelled (``oco``). Cancelling the group id or either leg cancels both.
Self-trade prevention acts on the group: a leg it cancels takes its sibling with it (both
``cancelled``, reason ``self_trade``), and what a ``decrement`` takes off a leg comes off its
sibling too (``replaced`` / ``cancelled``, reason ``oco``, after the pair of self-trade events).

Price collar: a limit price (limit, stop-limit, OCO take-profit) more than ``collar_bps``
(default 1000 = 10 %) through the reference price on its aggressive side (a buy above
``ref + band``, a sell below ``ref - band``; band floor-rounded to ticks) is rejected
``price_collar``. The reference is the symbol's last trade price, else
``EngineConfig.reference_prices[symbol]``, else there is no collar. Passive prices are free.

Book deltas: after everything else in a step, one ``book`` event per price level that changed,
with its new shown quantity and order count (``0``/``0`` when it emptied); bids by descending
price, then asks by ascending price.

Idempotency and robustness. A ``new``/``oco`` whose order id (or group id) is a duplicate is
ignored (no event). A duplicate is the id of a live order or OCO group of the symbol, however
old, or an id in the window of seen ids: the ids of new orders, OCO groups and legs, kept in two
generations of ``EngineConfig.dedup_window`` ids (default 50,000); when the newer generation is
full it becomes the older one and the previous older one is forgotten. Guarantee: a resent id is
ignored while its order lives, and otherwise as long as fewer than ``dedup_window`` other new
ids (all symbols) came in since; once ``2 * dedup_window - 1`` have, an id of a finished order
counts as new again. The window is part of the snapshot (format 3; ``restore`` also reads format
2, whose one unbounded list of ids becomes the older generation), so memory and snapshot stay
bounded by the live orders plus two windows. A command too malformed to answer is ignored and
counted in ``dropped_commands``: not a mapping, unknown ``type``, ``order_id`` or ``symbol`` not a non-empty
string (where required), ``command_id`` not a string, or ``ts`` not
``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with ``Z`` or ``+HH:MM``.

Speed: integers inside (ticks, lots, notional in ``tick_size * lot_size`` units, time in
microseconds). The matching core records compact tuples; only ``process`` turns them into event
dicts. ``submit`` / ``cancel_order`` drive the same core with integers and build no event at all
(and advance no event sequence): the embedded fast path the benchmark measures.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.money import (
    PRICE_PLACES,
    QUANTITY_PLACES,
    MoneyError,
    has_places,
    to_decimal,
)

from nexus_matching.book import (
    DONE,
    KIND_NAMES,
    LIMIT,
    MARKET,
    NEW,
    ORDER_SHARDS,
    PENDING,
    RESTING,
    STOP,
    STOP_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_DECREMENT,
    STP_NAMES,
    Level,
    OcoGroup,
    Order,
    OrderBook,
    OrderRow,
)

Event = dict[str, Any]

SNAPSHOT_FORMAT: Final = 4
# Older snapshot formats ``restore`` still reads (format 2: one unbounded list of seen ids;
# formats 2 and 3: no halted symbols).
READABLE_FORMATS: Final = (2, 3, 4)

_SIDES: Final = ("buy", "sell")
_KINDS: Final = {"limit": LIMIT, "market": MARKET, "stop": STOP, "stop_limit": STOP_LIMIT}
_TIFS: Final = ("gtc", "ioc", "fok", "day", "gtd")
_STPS: Final = {name: i for i, name in enumerate(STP_NAMES) if name is not None}
_CACHE_LIMIT: Final = 1 << 16
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

# Record kinds of the matching core (compact tuples, turned into events by ``_render``).
_TRADE: Final = 0
_CANCEL: Final = 1
_ACCEPT: Final = 2
_EXPIRE: Final = 3
_REPLACE: Final = 4
_TRIGGER: Final = 5

# The ISO-8601 shapes the engine accepts for ``ts`` (what ``nexus_common.events.iso`` writes,
# and the usual variants); calendar validity is then checked by ``datetime.fromisoformat``.
_TS_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


@dataclass(frozen=True)
class EngineConfig:
    """Venue rules of the engine (see the module doc)."""

    market_band_bps: int = 500
    collar_bps: int = 1000
    reference_prices: Mapping[str, Decimal] = field(default_factory=dict)
    session_close: time | None = time(16, 0)
    session_zone: str = "America/New_York"
    session_closes: Mapping[str, time | None] = field(default_factory=dict)
    dedup_window: int = 50_000

    def __post_init__(self) -> None:
        if self.market_band_bps < 0 or self.collar_bps < 0:
            raise ValueError("bands are non-negative basis points")
        if self.dedup_window < 1:
            raise ValueError("dedup_window is at least 1")
        ZoneInfo(self.session_zone)  # fails fast on an unknown zone

    def close_of(self, symbol: str) -> time | None:
        if symbol in self.session_closes:
            return self.session_closes[symbol]
        return self.session_close


class _Invalid(Exception):
    """Internal: a command fails validation (becomes a ``rejected`` / ``replace_rejected``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _unit(value: Decimal) -> tuple[int, int]:
    """A positive decimal as ``(coefficient, places)``: ``value == coefficient / 10**places``."""
    sign, digits, exponent = value.as_tuple()
    assert sign == 0 and isinstance(exponent, int), "units are positive finite decimals"
    return int("".join(map(str, digits))), -exponent


def scaled_str(units: int, places: int) -> str:
    """``units / 10**places`` (non-negative) in ``fmt``'s canonical form, exactly, without Decimal.

    Plain notation, no exponent, no trailing fractional zeros: ``(1250, 2) -> "12.5"``,
    ``(100, 2) -> "1"``, ``(0, 4) -> "0"``, ``(3, -2) -> "300"``.
    """
    if places <= 0:
        return str(units * 10**-places)
    text = str(units)
    if len(text) <= places:
        text = "0" * (places - len(text) + 1) + text
    whole, fraction = text[:-places], text[-places:].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def ts_micros(ts: str) -> int:
    """An ISO-8601 instant with an offset as microseconds since the epoch."""
    return (datetime.fromisoformat(ts) - _EPOCH) // _US


def micros_iso(micros: int) -> str:
    """Microseconds since the epoch as ``nexus_common.events.iso`` writes an instant."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Market:
    """One symbol: instrument, book, parked stops, expiries, sequence, conversions, records."""

    __slots__ = (
        "arrivals",
        "band_bps",
        "book",
        "buy_stop_keys",
        "buy_stops",
        "close",
        "collar_bps",
        "expiries",
        "groups",
        "instrument",
        "last",
        "lot_coef",
        "lot_places",
        "notional_coef",
        "notional_places",
        "out",
        "pending",
        "price_cache",
        "price_str_cache",
        "qty_cache",
        "qty_str",
        "ref",
        "sell_stop_keys",
        "sell_stops",
        "seq",
        "symbol",
        "tick_coef",
        "tick_places",
        "touched",
        "zone",
    )

    def __init__(self, instrument: Instrument, config: EngineConfig, seq: int = 0) -> None:
        self.symbol = instrument.symbol
        self.instrument = instrument
        self.book = OrderBook()
        self.seq = seq
        self.tick_coef, self.tick_places = _unit(instrument.tick_size)
        self.lot_coef, self.lot_places = _unit(instrument.lot_size)
        self.notional_coef = self.tick_coef * self.lot_coef
        self.notional_places = self.tick_places + self.lot_places
        # lots -> quantity string; plain ``str`` when the lot size is 1 (the common case).
        self.qty_str: Callable[[int], str] = (
            str if (self.lot_coef, self.lot_places) == (1, 0) else self._scaled_qty_str
        )
        # Parsed inputs (wire string -> ticks/lots) and formatted prices; bounded, cleared when
        # full. They only ever hold values that the uncached path computes identically.
        self.price_cache: dict[str, int] = {}
        self.qty_cache: dict[str, int] = {}
        self.price_str_cache: dict[int, str] = {}
        self.band_bps = config.market_band_bps
        self.collar_bps = config.collar_bps
        self.ref = 0
        reference = config.reference_prices.get(self.symbol)
        if reference is not None:
            self.ref = instrument.price_to_ticks(Decimal(reference))
        self.close = config.close_of(self.symbol)
        self.zone = ZoneInfo(config.session_zone)
        self.last = 0  # last trade price in ticks, 0 before the first trade
        self.arrivals = 0  # arrival counter: time priority of stops and expiries
        self.pending: dict[str, Order] = {}  # parked stops by id
        self.buy_stops: dict[int, list[Order]] = {}
        self.buy_stop_keys: list[int] = []
        self.sell_stops: dict[int, list[Order]] = {}
        self.sell_stop_keys: list[int] = []
        self.groups: dict[str, OcoGroup] = {}
        self.expiries: list[tuple[int, int, str]] = []  # heap of (expire_at, arrival, order_id)
        self.out: list[tuple[Any, ...]] = []  # records of the step in hand
        self.touched: dict[int, Level] = {}  # levels changed in the step, by key

    # -- decimal -> integers (entry) ---------------------------------------------------------

    def price_ticks(self, raw: object, name: str = "price") -> int:
        if type(raw) is str:
            cached = self.price_cache.get(raw)
            if cached is not None:
                return cached
        try:
            price = to_decimal(raw)
        except MoneyError as exc:
            raise _Invalid("invalid_price", f"{name}: {exc}") from None
        if price <= 0:
            raise _Invalid("invalid_price", f"{name} must be positive")
        if not has_places(price, PRICE_PLACES):
            raise _Invalid("price_off_tick", f"{name} needs at most {PRICE_PLACES} decimal places")
        try:
            ticks: int = self.instrument.price_to_ticks(price, name)
        except InstrumentError as exc:
            raise _Invalid(exc.code, exc.message) from None
        if type(raw) is str:
            if len(self.price_cache) >= _CACHE_LIMIT:
                self.price_cache.clear()
            self.price_cache[raw] = ticks
        return ticks

    def quantity_lots(self, raw: object, name: str = "quantity") -> int:
        if type(raw) is str:
            cached = self.qty_cache.get(raw)
            if cached is not None:
                return cached
        try:
            quantity = to_decimal(raw)
        except MoneyError as exc:
            raise _Invalid("invalid_quantity", f"{name}: {exc}") from None
        if quantity <= 0:
            raise _Invalid("invalid_quantity", f"{name} must be positive")
        if not has_places(quantity, QUANTITY_PLACES):
            raise _Invalid(
                "quantity_off_lot", f"{name} needs at most {QUANTITY_PLACES} decimal places"
            )
        try:
            lots: int = self.instrument.quantity_to_lots(quantity, name)
        except InstrumentError as exc:
            raise _Invalid(exc.code, exc.message) from None
        if type(raw) is str:
            if len(self.qty_cache) >= _CACHE_LIMIT:
                self.qty_cache.clear()
            self.qty_cache[raw] = lots
        return lots

    # -- integers -> canonical decimal strings (exit) ----------------------------------------

    def price_str(self, ticks: int) -> str:
        text = self.price_str_cache.get(ticks)
        if text is None:
            if len(self.price_str_cache) >= _CACHE_LIMIT:
                self.price_str_cache.clear()
            text = scaled_str(ticks * self.tick_coef, self.tick_places)
            self.price_str_cache[ticks] = text
        return text

    def _scaled_qty_str(self, lots: int) -> str:
        return scaled_str(lots * self.lot_coef, self.lot_places)

    def notional_str(self, notional: int) -> str:
        return scaled_str(notional * self.notional_coef, self.notional_places)

    # -- rules -------------------------------------------------------------------------------

    def check_collar(self, is_buy: bool, price: int) -> None:
        ref = self.last or self.ref
        if not ref:
            return
        band = ref * self.collar_bps // 10_000
        if (price > ref + band) if is_buy else (price < ref - band):
            raise _Invalid(
                "price_collar",
                f"price is more than {self.collar_bps} bps through the reference price "
                f"{self.price_str(ref)}",
            )

    def session_close_after(self, now: int) -> int:
        """The first session close at or after ``now`` (microseconds), 0 without a close."""
        close = self.close
        if close is None:
            return 0
        local = (_EPOCH + timedelta(microseconds=now)).astimezone(self.zone)
        day = local.date()
        while True:
            candidate = datetime.combine(day, close, tzinfo=self.zone)
            micros = (candidate - _EPOCH) // _US
            if micros >= now:
                return micros
            day += timedelta(days=1)

    # -- parked stops ------------------------------------------------------------------------

    def park(self, order: Order) -> None:
        order.state = PENDING
        self.pending[order.order_id] = order
        if order.is_buy:
            stops, keys = self.buy_stops, self.buy_stop_keys
        else:
            stops, keys = self.sell_stops, self.sell_stop_keys
        queue = stops.get(order.stop_price)
        if queue is None:
            stops[order.stop_price] = [order]
            insort(keys, order.stop_price)
        else:
            queue.append(order)

    def unpark(self, order: Order) -> None:
        del self.pending[order.order_id]
        if order.is_buy:
            stops, keys = self.buy_stops, self.buy_stop_keys
        else:
            stops, keys = self.sell_stops, self.sell_stop_keys
        queue = stops[order.stop_price]
        queue.remove(order)
        if not queue:
            del stops[order.stop_price]
            del keys[bisect_left(keys, order.stop_price)]

    def triggerable(self, order: Order) -> bool:
        last = self.last
        if not last:
            return False
        return last >= order.stop_price if order.is_buy else last <= order.stop_price

    def collect_triggered(self) -> list[Order]:
        """Unpark every stop the last price reaches, in arrival order."""
        last = self.last
        found: list[Order] = []
        keys = self.buy_stop_keys
        if keys and keys[0] <= last:
            i = bisect_right(keys, last)
            for key in keys[:i]:
                found.extend(self.buy_stops.pop(key))
            del keys[:i]
        keys = self.sell_stop_keys
        if keys and keys[-1] >= last:
            j = bisect_left(keys, last)
            for key in keys[j:]:
                found.extend(self.sell_stops.pop(key))
            del keys[j:]
        for order in found:
            del self.pending[order.order_id]
            order.state = NEW  # triggered, not yet executed: no longer parked
        found.sort(key=_arrival)
        return found


SEEN_SHARDS: Final = 16
_SEEN_MASK: Final = SEEN_SHARDS - 1
_ORDER_MASK: Final = ORDER_SHARDS - 1


class IdSet:
    """A set of order ids in ``SEEN_SHARDS`` sets picked by the id's hash: one generation of the
    window of seen ids. Each generation grows from empty to ``dedup_window`` ids, and a set
    rebuilds its whole table each time it grows (over a millisecond at tens of thousands of
    ids); a shard's table is a 16th of it."""

    __slots__ = ("shards", "size")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self.shards: list[set[str]] = [set() for _ in range(SEEN_SHARDS)]
        self.size = 0
        for order_id in ids:
            self.add(order_id)

    def contains(self, order_id: str) -> bool:
        return order_id in self.shards[hash(order_id) & _SEEN_MASK]

    def add(self, order_id: str) -> None:
        shard = self.shards[hash(order_id) & _SEEN_MASK]
        before = len(shard)
        shard.add(order_id)
        self.size += len(shard) - before

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.shards[hash(order_id) & _SEEN_MASK]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        for shard in self.shards:
            yield from shard


def _arrival(order: Order) -> int:
    return order.arrival


def _new_order(
    order_id: str, account_id: str, is_buy: bool, price: int, lots: int, tif: str, kind: int, stp: int, arrival: int
) -> Order:
    """``Order(order_id, account_id, is_buy, price, lots, tif, kind=kind, stp=stp, arrival=arrival)``
    for the fast path: the compiled engine fills the fields without an ``__init__`` call."""
    order = Order.__new__(Order)
    order.order_id = order_id
    order.account_id = account_id
    order.is_buy = is_buy
    order.price = price
    order.remaining = lots
    order.hidden = 0
    order.peak = 0
    order.filled = 0
    order.notional = 0
    order.quantity = lots
    order.tif = tif
    order.kind = kind
    order.stop_price = 0
    order.stp = stp
    order.post_only = False
    order.expire_at = 0
    order.arrival = arrival
    order.state = NEW
    order.group = None
    order.level = None
    order.prev = None
    order.next = None
    return order


class MatchingEngine:
    """Price-time-priority matching for every instrument of the venue. See the module doc.

    Lifecycle: build with the instruments (the leadership epoch, the venue rules), ``process``
    commands in journal order, ``snapshot`` at any point, ``restore`` a snapshot and keep
    processing: the restored engine continues exactly as the original would have.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        epoch: int = 0,
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config if config is not None else EngineConfig()
        self._markets: dict[str, _Market] = {}
        for symbol, instrument in instruments.items():
            if symbol != instrument.symbol:
                raise ValueError(f"instrument {instrument.symbol!r} listed under {symbol!r}")
            self._markets[symbol] = _Market(instrument, self.config)
        # Sequence counters of symbol strings that are not instruments (their rejections).
        self._other_seq: dict[str, int] = {}
        # Order ids of new orders, OCO groups and legs, in two generations (see "Idempotency"
        # in the module doc): ids go into ``_seen``; when it holds ``dedup_window`` ids it
        # becomes ``_seen_old`` and the generation before is forgotten.
        self._seen = IdSet()
        self._seen_old = IdSet()
        self._window = self.config.dedup_window
        self._epoch = 0
        self._last_ts: str | None = None  # the last ts that passed _valid_ts (a cache)
        self._last_now = 0  # ... and its instant in microseconds
        self.dropped_commands = 0
        self._halted: set[str] = set()  # symbols halted by a ``halt`` command (see "Halts")
        self.set_epoch(epoch)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the leadership epoch carried by every following event (fencing)."""
        if type(epoch) is not int or epoch < 0:
            raise ValueError("epoch must be a non-negative int")
        self._epoch = epoch

    def set_instrument(self, instrument: Instrument) -> None:
        """Replace an instrument's reference data (its ``status`` is not read: see "Halts").

        The tick and lot size of a symbol with live orders cannot change: those orders are held
        in ticks and lots.
        """
        market = self._markets.get(instrument.symbol)
        if market is None:
            seq = self._other_seq.pop(instrument.symbol, 0)
            self._markets[instrument.symbol] = _Market(instrument, self.config, seq=seq)
            return
        old = market.instrument
        if (market.book.orders or market.pending or market.last) and (
            old.tick_size != instrument.tick_size or old.lot_size != instrument.lot_size
        ):
            raise ValueError("tick or lot size cannot change while the symbol has orders or trades")
        fresh = _Market(instrument, self.config, market.seq)
        for name in (
            "book", "last", "ref", "arrivals", "pending", "buy_stops", "buy_stop_keys",
            "sell_stops", "sell_stop_keys", "groups", "expiries",
        ):
            setattr(fresh, name, getattr(market, name))
        self._markets[instrument.symbol] = fresh

    # -- commands ----------------------------------------------------------------------------

    def process(self, command: Mapping[str, Any]) -> list[Event]:
        """Apply one command; return its events (possibly none). Never raises on bad input."""
        if type(command) is not dict and not isinstance(command, Mapping):
            self.dropped_commands += 1
            return []
        get = command.get
        kind = get("type")
        command_id = get("command_id")
        ts = get("ts")
        if not (
            type(command_id) is str and type(ts) is str and (ts == self._last_ts or self._valid_ts(ts))
        ):
            self.dropped_commands += 1
            return []
        now = self._last_now
        symbol = get("symbol")
        if kind == "mass_cancel" or kind == "clock":
            if symbol is not None and not (type(symbol) is str and symbol):
                self.dropped_commands += 1
                return []
            if kind == "clock":
                return self._clock(symbol if type(symbol) is str else None, command_id, ts, now)
            return self._mass_cancel(command, symbol, command_id, ts, now)
        if kind == "halt" or kind == "resume":
            reason = get("reason", "")
            if not (type(symbol) is str and symbol and type(reason) is str):
                self.dropped_commands += 1
                return []
            return self._trading_status(symbol, kind == "halt", reason, command_id, ts)
        order_id = get("order_id")
        if not (type(order_id) is str and order_id and type(symbol) is str and symbol):
            self.dropped_commands += 1
            return []
        if kind == "new":
            return self._new(command, order_id, symbol, command_id, ts, now)
        if kind == "cancel":
            return self._cancel(command, order_id, symbol, command_id, ts, now)
        if kind == "replace":
            return self._replace(command, order_id, symbol, command_id, ts, now)
        if kind == "oco":
            return self._oco(command, order_id, symbol, command_id, ts, now)
        self.dropped_commands += 1
        return []

    def _valid_ts(self, ts: str) -> bool:
        if _TS_RE.fullmatch(ts) is None:
            return False
        try:
            now = ts_micros(ts)
        except ValueError:
            return False
        self._last_ts = ts
        self._last_now = now
        return True

    def _taken(self, m: _Market | None, order_id: str) -> bool:
        """Is a new order or OCO group id a duplicate: in the window of seen ids, or the id of a
        live order or OCO group of the symbol?"""
        if self._seen.contains(order_id) or self._seen_old.contains(order_id):
            return True
        if m is None:
            return False
        if order_id in m.book.orders or order_id in m.pending:
            return True
        group = m.groups.get(order_id)
        return group is not None and group.live()

    def _remember(self, order_id: str) -> None:
        seen = self._seen
        seen.add(order_id)
        if seen.size >= self._window:
            self._rotate()

    def _rotate(self) -> None:
        """Start a new generation of seen ids, forgetting the oldest; drop finished OCO groups
        (a finished group's id answers like an unknown one either way)."""
        self._seen_old = self._seen
        self._seen = IdSet()
        for m in self._markets.values():
            if m.groups:
                m.groups = {gid: group for gid, group in m.groups.items() if group.live()}

    def _next_seq(self, symbol: str) -> int:
        market = self._markets.get(symbol)
        if market is not None:
            market.seq += 1
            return market.seq
        seq = self._other_seq.get(symbol, 0) + 1
        self._other_seq[symbol] = seq
        return seq

    # -- new orders ----------------------------------------------------------------------------

    def _new(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        market = self._markets.get(symbol)
        if self._taken(market, order_id):
            return []
        self._remember(order_id)
        account_id = c.get("account_id")
        if market is not None and market.expiries and market.expiries[0][0] <= now:
            self._expire(market, now)
        try:
            if market is None:
                raise _Invalid("unknown_symbol", f"unknown symbol {symbol!r}")
            order = self._parse_new(market, c, order_id, account_id, now)
        except _Invalid as invalid:
            account = account_id if type(account_id) is str else ""
            early = self._render(market, ts, command_id) if market is not None else []
            return [*early, self._rejected(symbol, ts, command_id, order_id, account, invalid)]
        self._accept(market, order)
        self._run_new(market, order)
        return self._render(market, ts, command_id)

    def _parse_new(
        self, m: _Market, c: Mapping[str, Any], order_id: str, account_id: object, now: int
    ) -> Order:
        if m.symbol in self._halted:
            raise _Invalid("symbol_halted", f"{m.symbol} is halted")
        get = c.get
        side = get("side")
        order_type = get("order_type")
        kind = _KINDS.get(order_type) if type(order_type) is str else None
        tif = get("time_in_force", "gtc")
        if tif is None:
            tif = "gtc"
        if side not in _SIDES:
            raise _Invalid("invalid_command", "side must be buy or sell")
        if kind is None:
            raise _Invalid("invalid_command", "order_type must be limit, market, stop or stop_limit")
        if tif not in _TIFS:
            raise _Invalid("invalid_command", "time_in_force must be gtc, ioc, fok, day or gtd")
        if type(account_id) is not str or not account_id:
            raise _Invalid("invalid_command", "account_id is required")
        post_only = get("post_only")
        if post_only is None:
            post_only = False
        if type(post_only) is not bool:
            raise _Invalid("invalid_command", "post_only must be true or false")
        if post_only and (kind != LIMIT or tif in ("ioc", "fok")):
            raise _Invalid("invalid_command", "post_only is for gtc, day or gtd limit orders")
        stp_name = get("stp")
        stp = 0
        if stp_name is not None:
            if type(stp_name) is not str or stp_name not in _STPS:
                raise _Invalid("invalid_command", "stp must be " + ", ".join(_STPS))
            stp = _STPS[stp_name]
        raw_expire = get("expire_at")
        if raw_expire is not None and tif != "gtd":
            raise _Invalid("invalid_command", "expire_at is for gtd orders")
        raw_display = get("display_quantity")
        if raw_display is not None and kind not in (LIMIT, STOP_LIMIT):
            raise _Invalid("invalid_command", "display_quantity is for limit and stop_limit orders")
        has_limit = kind == LIMIT or kind == STOP_LIMIT
        raw_price = get("price")
        if has_limit:
            if raw_price is None:
                raise _Invalid("missing_price", f"a {KIND_NAMES[kind]} order needs a price")
            price = m.price_ticks(raw_price)
        else:
            if raw_price is not None:
                raise _Invalid("unexpected_price", f"a {KIND_NAMES[kind]} order takes no price")
            price = 0
        raw_stop = get("stop_price")
        stop_price = 0
        if kind == STOP or kind == STOP_LIMIT:
            if raw_stop is None:
                raise _Invalid("missing_stop_price", f"a {KIND_NAMES[kind]} order needs a stop_price")
            stop_price = m.price_ticks(raw_stop, "stop_price")
        elif raw_stop is not None:
            raise _Invalid("unexpected_stop_price", f"a {KIND_NAMES[kind]} order takes no stop_price")
        lots = m.quantity_lots(get("quantity"))
        peak = 0
        if raw_display is not None:
            try:
                peak = m.quantity_lots(raw_display, "display_quantity")
            except _Invalid as exc:
                raise _Invalid("invalid_display_quantity", exc.message) from None
            if peak > lots:
                raise _Invalid("invalid_display_quantity", "display_quantity exceeds quantity")
            if peak == lots:
                peak = 0
        expire_at = 0
        if tif == "gtd":
            expire_at = self._expire_at(raw_expire, now)
        elif tif == "day":
            expire_at = m.session_close_after(now)
        is_buy = side == "buy"
        if has_limit:
            m.check_collar(is_buy, price)
        if post_only and m.book.would_take(is_buy, price):
            raise _Invalid("post_only_would_take", "a post-only order would take liquidity")
        return Order(
            order_id, account_id, is_buy, price, lots, tif,
            kind=kind, stop_price=stop_price, stp=stp, peak=peak, post_only=post_only,
            expire_at=expire_at,
        )

    @staticmethod
    def _expire_at(raw: object, now: int) -> int:
        if raw is None:
            raise _Invalid("missing_expire_at", "a gtd order needs expire_at")
        if type(raw) is not str or _TS_RE.fullmatch(raw) is None:
            raise _Invalid("invalid_expire_at", "expire_at must be an ISO-8601 instant with an offset")
        try:
            expire_at = ts_micros(raw)
        except ValueError:
            raise _Invalid("invalid_expire_at", "expire_at is not a valid instant") from None
        if expire_at <= now:
            raise _Invalid("already_expired", "expire_at is not after the command's ts")
        return expire_at

    def _accept(self, m: _Market, order: Order) -> None:
        m.arrivals += 1
        order.arrival = m.arrivals
        m.out.append((_ACCEPT, order, order.quantity, order.price, order.stop_price, order.kind))

    def _run_new(self, m: _Market, order: Order) -> None:
        """An accepted order: park it (untriggered stop) or execute it, then the triggers."""
        if order.kind >= STOP:
            if m.triggerable(order):
                self._trigger(m, order)
            else:
                m.park(order)
                if order.expire_at:
                    heapq.heappush(m.expiries, (order.expire_at, order.arrival, order.order_id))
        else:
            self._execute(m, order)
        if m.pending:
            self._cascade(m)

    def _cascade(self, m: _Market) -> None:
        """Trigger and execute parked stops, round after round (see "Trigger order")."""
        while m.pending and m.last:
            triggered = m.collect_triggered()
            if not triggered:
                return
            for order in triggered:
                if order.state == DONE:
                    continue  # cancelled meanwhile (its OCO sibling filled)
                self._trigger(m, order)

    def _trigger(self, m: _Market, o: Order) -> None:
        """A stop reached: record it, and from now on it is a market (stop) or limit
        (stop_limit) order, executed at once."""
        m.out.append((_TRIGGER, o, m.last, o.kind, o.stop_price))
        o.kind = MARKET if o.kind == STOP else LIMIT
        self._execute(m, o)

    def _execute(self, m: _Market, o: Order) -> None:
        """Run a live order as a taker now; rest or cancel its remainder."""
        book = m.book
        is_buy = o.is_buy
        kind = o.kind
        tif = o.tif
        opposite = book.asks.keys if is_buy else book.bids.keys  # best key last
        market_order = kind == MARKET or kind == STOP
        if market_order:
            if not opposite:
                self._finish(m, o, "fok" if tif == "fok" else "market_no_liquidity")
                return
            best = opposite[-1]
            if is_buy:  # ask keys are -price
                limit_key = best - -best * m.band_bps // 10_000
            else:
                limit_key = best - best * m.band_bps // 10_000
        else:
            limit_key = -o.price if is_buy else o.price
        if tif == "fok" and not book.can_fill(
            is_buy, -limit_key if is_buy else limit_key, o.remaining, o.account_id, o.stp
        ):
            self._finish(m, o, "fok")
            return
        stopped = False
        if opposite and opposite[-1] >= limit_key:  # it crosses: match
            filled_before = o.filled
            stopped = self._match(m, o, limit_key)
            if o.group is not None and o.filled > filled_before:
                self._oco_fill(m, o, o.filled - filled_before)
            if o.state == DONE:
                return
        if not o.remaining:
            o.state = DONE
        elif stopped:
            self._finish(m, o, "self_trade")
            if o.group is not None:  # self-trade prevention ends an OCO group, not one leg of it
                sibling = o.group.sibling(o)
                if sibling is not None:
                    self._cancel_live(m, sibling, "self_trade", sibling=False)
        elif market_order:
            self._finish(m, o, "market_protection" if opposite else "market_no_liquidity")
        elif tif == "ioc" or tif == "fok":
            self._finish(m, o, tif)
        else:
            if o.peak and o.remaining > o.peak:
                o.hidden = o.remaining - o.peak
                o.remaining = o.peak
            # OrderBook.rest, inlined (the hot path); the book key of a resting order is the
            # negated limit key: +price for a bid, -price for an ask.
            order_id = o.order_id
            book.orders.shards[hash(order_id) & _ORDER_MASK][order_id] = o  # OrderIndex.add inline
            o.state = RESTING
            key = -limit_key
            levels = book.bids.levels if is_buy else book.asks.levels
            level = levels.get(key)
            if level is None:
                level = Level(key, o.price)
                levels[key] = level
                insort(book.bids.keys if is_buy else book.asks.keys, key)
            tail = level.tail
            o.prev = tail
            o.next = None
            if tail is None:
                level.head = o
            else:
                tail.next = o
            level.tail = o
            level.qty += o.remaining
            level.count += 1
            o.level = level
            m.touched[key] = level
            if o.expire_at:
                heapq.heappush(m.expiries, (o.expire_at, o.arrival, o.order_id))

    def _finish(self, m: _Market, o: Order, reason: str) -> None:
        """Cancel the open quantity of an order that is not in the book (a taker, or new)."""
        o.state = DONE
        m.out.append((_CANCEL, o, o.remaining + o.hidden, reason))

    def _match(self, m: _Market, taker: Order, limit_key: int) -> bool:
        """Match ``taker`` against the opposite side down to ``limit_key``.

        Updates every counter, takes used-up makers out, records the trades, and returns True
        when self-trade prevention stopped the taker (its remainder is then to be cancelled).
        The hot path: everything rare (self-trade, OCO makers, iceberg refresh) is a branch.
        """
        book = m.book
        opposite = book.asks if taker.is_buy else book.bids
        keys = opposite.keys
        levels = opposite.levels
        shards = book.orders.shards  # the order index's shards (OrderIndex.remove inline)
        out = m.out
        touched = m.touched
        acct = taker.account_id
        tstp = taker.stp
        remaining = taker.remaining
        filled = taker.filled
        notional = taker.notional
        price = 0
        traded = 0  # the price of the last trade (a level can also be left by self-trade alone)
        stopped = False
        while remaining and keys:
            key = keys[-1]
            if key < limit_key:
                break
            level = levels[key]
            touched[key] = level
            price = level.price
            maker: Order | None = level.head
            while maker is not None:
                if (tstp or maker.stp) and maker.account_id == acct:
                    level.head = maker
                    maker.prev = None
                    taker.remaining, taker.filled, taker.notional = remaining, filled, notional
                    stopped = self._self_trade(m, taker, maker)
                    remaining = taker.remaining
                    maker = level.head if level.count else None
                    if stopped or not remaining:
                        break
                    continue
                mrem = maker.remaining
                lots = mrem if mrem <= remaining else remaining
                remaining -= lots
                filled += lots
                value = price * lots
                traded = price
                notional += value
                mrem -= lots
                maker.remaining = mrem
                maker.filled += lots
                maker.notional += value
                level.qty -= lots
                out.append(
                    (_TRADE, maker, taker, price, lots, maker.filled, maker.notional,
                     mrem + maker.hidden, filled, notional, remaining)
                )
                if maker.group is not None:
                    level.head = maker
                    maker.prev = None
                    self._oco_fill(m, maker, lots)
                if mrem:
                    break
                if maker.hidden:  # iceberg: show the next slice at the back of the queue
                    shown = maker.peak if maker.peak < maker.hidden else maker.hidden
                    maker.hidden -= shown
                    maker.remaining = shown
                    level.qty += shown
                    nxt = maker.next
                    if nxt is None:
                        level.head = maker
                        maker.prev = None
                    else:
                        level.head = nxt
                        nxt.prev = None
                        tail = level.tail
                        assert tail is not None
                        tail.next = maker
                        maker.prev = tail
                        maker.next = None
                        level.tail = maker
                        maker = nxt
                    if not remaining:
                        break
                    continue
                order_id = maker.order_id
                del shards[hash(order_id) & _ORDER_MASK][order_id]
                maker.state = DONE
                level.count -= 1
                nxt = maker.next
                maker.next = None
                maker = nxt
                if not remaining:
                    break
            if maker is None:
                # The level is used up; it is the best one, so it is the last key.
                if levels.get(key) is level:
                    level.head = level.tail = None
                    keys.pop()
                    del levels[key]
            else:
                maker.prev = None
                level.head = maker
            if stopped:
                break
        if traded:
            m.last = traded
        taker.filled = filled
        taker.notional = notional
        taker.remaining = remaining
        return stopped

    def _self_trade(self, m: _Market, taker: Order, maker: Order) -> bool:
        """Apply self-trade prevention to ``taker`` meeting its own account's resting ``maker``
        (the head of its level). Returns True when the taker must stop."""
        mode = taker.stp or maker.stp
        if mode == STP_CANCEL_NEWEST:
            return True
        if mode == STP_CANCEL_OLDEST or mode == STP_CANCEL_BOTH:
            self._cancel_live(m, maker, "self_trade")
            return mode == STP_CANCEL_BOTH
        assert mode == STP_DECREMENT
        cut = min(taker.remaining, maker.remaining + maker.hidden)
        self._reduce(m, maker, cut, "self_trade")
        taker.remaining -= cut
        taker.quantity -= cut
        if taker.remaining:
            m.out.append(self._replaced_record(taker, "self_trade", True))
            stop = False
        else:
            taker.state = DONE
            m.out.append((_CANCEL, taker, cut, "self_trade"))
            stop = True
        # The legs of an OCO group share one quantity: what a decrement takes off a leg comes
        # off its sibling too (reason ``oco``), after the pair of self-trade events.
        if maker.group is not None:
            self._oco_fill(m, maker, cut)
        if taker.group is not None:
            self._oco_fill(m, taker, cut)
        return stop

    def _reduce(self, m: _Market, o: Order, cut: int, reason: str) -> None:
        """Take ``cut`` lots off a live order's open quantity (hidden reserve first), keeping its
        place; cancel it when nothing is left."""
        if cut >= o.remaining + o.hidden:
            self._cancel_live(m, o, reason, sibling=False)
            return
        from_hidden = cut if cut <= o.hidden else o.hidden
        o.hidden -= from_hidden
        shown_cut = cut - from_hidden
        o.remaining -= shown_cut
        o.quantity -= cut
        if o.state == RESTING and shown_cut:
            level = o.level
            assert level is not None
            level.qty -= shown_cut
            m.touched[level.key] = level
        m.out.append(self._replaced_record(o, reason, True))

    def _oco_fill(self, m: _Market, leg: Order, lots: int) -> None:
        group = leg.group
        assert group is not None
        sibling = group.sibling(leg)
        if sibling is not None:
            self._reduce(m, sibling, lots, "oco")

    def _cancel_live(self, m: _Market, o: Order, reason: str, *, sibling: bool = True) -> None:
        """Cancel a live order wherever it is (book, parked, or not yet placed); with
        ``sibling``, its OCO sibling too (same reason)."""
        if o.state == RESTING:
            level = m.book.cancel(o)
            m.touched[level.key] = level
        elif o.state == PENDING:
            m.unpark(o)
        o.state = DONE
        m.out.append((_CANCEL, o, o.remaining + o.hidden, reason))
        if sibling and o.group is not None:
            other = o.group.sibling(o)
            if other is not None:
                self._cancel_live(m, other, reason, sibling=False)

    def _replaced_record(self, o: Order, reason: str, kept: bool) -> tuple[Any, ...]:
        return (_REPLACE, o, o.price, o.stop_price, o.quantity, o.remaining + o.hidden, kept, reason, o.kind)

    def _expire(self, m: _Market, now: int) -> None:
        heap = m.expiries
        while heap and heap[0][0] <= now:
            expire_at, arrival, order_id = heapq.heappop(heap)
            order = m.book.orders.get(order_id) or m.pending.get(order_id)
            if order is None or order.expire_at != expire_at or order.arrival != arrival:
                continue  # gone, or replaced since (a fresher entry exists)
            if order.state == RESTING:
                level = m.book.cancel(order)
                m.touched[level.key] = level
            else:
                m.unpark(order)
            order.state = DONE
            m.out.append((_EXPIRE, order, order.remaining + order.hidden, order.tif))

    # -- cancel, replace, mass cancel, clock -------------------------------------------------

    def _find(self, m: _Market, order_id: str) -> Order | None:
        order = m.book.orders.get(order_id)
        if order is None:
            order = m.pending.get(order_id)
        if order is None:
            group = m.groups.get(order_id)
            if group is not None:
                order = group.sibling(group.legs[0]) if group.legs[0].state == DONE else group.legs[0]
        return order

    def _cancel(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        account_id = c.get("account_id")
        account = account_id if type(account_id) is str else ""
        market = self._markets.get(symbol)
        if market is None:
            return [self._cancel_rejected(symbol, ts, command_id, order_id, account, "unknown_order")]
        if market.expiries and market.expiries[0][0] <= now:
            self._expire(market, now)
        order = self._find(market, order_id)
        if order is None or order.account_id != account_id:
            reason = "unknown_order" if order is None else "not_owner"
            early = self._render(market, ts, command_id)
            return [*early, self._cancel_rejected(symbol, ts, command_id, order_id, account, reason)]
        self._cancel_live(market, order, "user")
        return self._render(market, ts, command_id)

    def _replace(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        account_id = c.get("account_id")
        account = account_id if type(account_id) is str else ""
        m = self._markets.get(symbol)
        if m is None:
            return [self._replace_rejected(symbol, ts, command_id, order_id, account,
                                           _Invalid("unknown_order", "no such order"))]
        if m.expiries and m.expiries[0][0] <= now:
            self._expire(m, now)
        try:
            order = m.book.orders.get(order_id) or m.pending.get(order_id)
            if order is None:
                raise _Invalid("unknown_order", "no such live order")
            if order.account_id != account_id:
                raise _Invalid("not_owner", "the order belongs to another account")
            if symbol in self._halted:
                raise _Invalid("symbol_halted", f"{symbol} is halted")
            if order.group is not None:
                raise _Invalid("oco_leg", "an OCO leg cannot be replaced; cancel the group")
            raw_price, raw_stop, raw_qty = c.get("price"), c.get("stop_price"), c.get("quantity")
            if raw_price is None and raw_stop is None and raw_qty is None:
                raise _Invalid("invalid_command", "replace needs price, stop_price or quantity")
            price = order.price
            if raw_price is not None:
                if order.kind not in (LIMIT, STOP_LIMIT):
                    raise _Invalid("unexpected_price", "the order has no limit price")
                price = m.price_ticks(raw_price)
            stop_price = order.stop_price
            if raw_stop is not None:
                if order.state != PENDING:
                    raise _Invalid("unexpected_stop_price", "the order has no stop price to change")
                stop_price = m.price_ticks(raw_stop, "stop_price")
            quantity = order.quantity
            if raw_qty is not None:
                quantity = m.quantity_lots(raw_qty)
                if quantity <= order.filled:
                    raise _Invalid("quantity_below_filled", "quantity must exceed the filled quantity")
            if price != order.price and order.kind in (LIMIT, STOP_LIMIT):
                m.check_collar(order.is_buy, price)
            if order.post_only and order.state == RESTING and m.book.would_take(order.is_buy, price):
                raise _Invalid("post_only_would_take", "a post-only order would take liquidity")
        except _Invalid as invalid:
            early = self._render(m, ts, command_id)
            return [*early, self._replace_rejected(symbol, ts, command_id, order_id, account, invalid)]
        keep = price == order.price and stop_price == order.stop_price and quantity <= order.quantity
        if keep:
            cut = order.quantity - quantity
            if cut:
                self._reduce(m, order, cut, "user")
            else:
                m.out.append(self._replaced_record(order, "user", True))
            return self._render(m, ts, command_id)
        # Loses priority: out, new terms, in again as a new arrival.
        if order.state == RESTING:
            level = m.book.cancel(order)
            m.touched[level.key] = level
        else:
            m.unpark(order)
        order.state = NEW
        order.price = price
        order.stop_price = stop_price
        order.quantity = quantity
        order.remaining = quantity - order.filled
        order.hidden = 0
        m.arrivals += 1
        order.arrival = m.arrivals
        m.out.append(self._replaced_record(order, "user", False))
        self._run_new(m, order)
        return self._render(m, ts, command_id)

    def _mass_cancel(
        self, c: Mapping[str, Any], symbol: str | None, command_id: str, ts: str, now: int
    ) -> list[Event]:
        account_id = c.get("account_id")
        if type(account_id) is not str or not account_id:
            self.dropped_commands += 1
            return []
        if symbol is None:
            symbols = sorted(self._markets)
        else:
            symbols = [symbol] if symbol in self._markets else []
        events: list[Event] = []
        for name in symbols:
            m = self._markets[name]
            if m.expiries and m.expiries[0][0] <= now:
                self._expire(m, now)
            mine = [o for o in m.book.orders.values() if o.account_id == account_id]
            mine.extend(o for o in m.pending.values() if o.account_id == account_id)
            mine.sort(key=_arrival)
            for order in mine:
                if order.state != DONE:
                    self._cancel_live(m, order, "mass_cancel")
            events.extend(self._render(m, ts, command_id))
        return events

    def _clock(self, symbol: str | None, command_id: str, ts: str, now: int) -> list[Event]:
        if symbol is None:
            symbols = sorted(self._markets)
        else:
            symbols = [symbol] if symbol in self._markets else []
        events: list[Event] = []
        for name in symbols:
            m = self._markets[name]
            if m.expiries and m.expiries[0][0] <= now:
                self._expire(m, now)
                events.extend(self._render(m, ts, command_id))
        return events

    def _trading_status(self, symbol: str, halt: bool, reason: str, command_id: str, ts: str) -> list[Event]:
        """``halt`` / ``resume``: one ``trading_status`` event when the state changes."""
        if (symbol in self._halted) == halt:
            return []
        if halt:
            self._halted.add(symbol)
        else:
            self._halted.discard(symbol)
        seq = self._next_seq(symbol)
        return [{
            "event_id": f"{symbol}-{seq}",
            "type": "trading_status",
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": symbol,
            "seq": seq,
            "epoch": self._epoch,
            "status": "halted" if halt else "active",
            "reason": reason,
        }]

    def is_halted(self, symbol: str) -> bool:
        return symbol in self._halted

    # -- OCO ---------------------------------------------------------------------------------

    def _oco(
        self, c: Mapping[str, Any], group_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        tp_id, sl_id = f"{group_id}.tp", f"{group_id}.sl"
        m = self._markets.get(symbol)
        if self._taken(m, group_id):
            return []
        self._remember(group_id)
        account_id = c.get("account_id")
        if m is not None and m.expiries and m.expiries[0][0] <= now:
            self._expire(m, now)
        try:
            if m is None:
                raise _Invalid("unknown_symbol", f"unknown symbol {symbol!r}")
            if self._taken(m, tp_id) or self._taken(m, sl_id):
                raise _Invalid("invalid_command", "a leg's order id is already taken")
            leg = dict(c)
            leg.pop("stop_limit_price", None)
            leg.update(order_type="limit", stop_price=None)
            tp = self._parse_new(m, leg, tp_id, account_id, now)
            if tp.tif not in ("gtc", "day", "gtd"):
                raise _Invalid("invalid_command", "an OCO group's time_in_force is gtc, day or gtd")
            stop_limit = c.get("stop_limit_price")
            leg = dict(c)
            leg.pop("stop_limit_price", None)
            leg.update(
                order_type="stop" if stop_limit is None else "stop_limit",
                price=stop_limit,
                stop_price=c.get("stop_price"),
            )
            sl = self._parse_new(m, leg, sl_id, account_id, now)
            if (sl.stop_price >= tp.price) if not tp.is_buy else (sl.stop_price <= tp.price):
                raise _Invalid(
                    "invalid_oco", "the stop must be below the take-profit price (sell) or above it (buy)"
                )
        except _Invalid as invalid:
            account = account_id if type(account_id) is str else ""
            early = self._render(m, ts, command_id) if m is not None else []
            return [*early, self._rejected(symbol, ts, command_id, group_id, account, invalid)]
        self._remember(tp_id)
        self._remember(sl_id)
        group = OcoGroup(group_id)
        group.legs.extend((tp, sl))
        tp.group = sl.group = group
        m.groups[group_id] = group
        self._accept(m, tp)
        self._accept(m, sl)
        stop_now = m.triggerable(sl)
        take_now = m.book.would_take(tp.is_buy, tp.price)
        if stop_now and take_now:
            # A gap through both levels: the take-profit is the better leg for the owner.
            self._finish(m, sl, "oco")
            self._run_new(m, tp)
        elif stop_now:
            self._run_new(m, tp)  # rests (it does not cross)
            if sl.state != DONE:
                self._trigger(m, sl)
                if m.pending:
                    self._cascade(m)
        else:
            m.park(sl)
            if sl.expire_at:
                heapq.heappush(m.expiries, (sl.expire_at, sl.arrival, sl.order_id))
            self._run_new(m, tp)
        return self._render(m, ts, command_id)

    # -- the integer fast path ---------------------------------------------------------------

    def submit(
        self,
        symbol: str,
        order_id: str,
        account_id: str,
        is_buy: bool,
        price: int | None,
        lots: int,
        tif: str = "gtc",
        stp: int = 0,
    ) -> None:
        """A new limit (``price`` in ticks) or market (``price`` None) order on integers,
        through the same core as ``process`` (idempotency, collar, band, self-trade prevention,
        icebergs, OCO makers, triggers), without building events or advancing sequences. Raises
        KeyError for an unknown symbol and ValueError for what ``process`` would reject."""
        m = self._markets[symbol]
        # The id's shards in the seen windows and the order index, picked inline (the hot path).
        h = hash(order_id)
        seen = self._seen
        shard = seen.shards[h & _SEEN_MASK]
        if (
            order_id in shard
            or order_id in self._seen_old.shards[h & _SEEN_MASK]
            or order_id in m.book.orders.shards[h & _ORDER_MASK]
            or (m.pending and order_id in m.pending)
            or (m.groups and self._taken(m, order_id))
        ):
            return
        shard.add(order_id)  # IdSet.add of an id known to be new
        seen.size += 1
        if seen.size >= self._window:
            self._rotate()
        if price is None:
            price, kind = 0, MARKET
        else:
            kind = LIMIT
            ref = m.last or m.ref
            if ref:  # the collar (check_collar, inlined)
                band = ref * m.collar_bps // 10_000
                if (price > ref + band) if is_buy else (price < ref - band):
                    raise ValueError("price_collar")
        arrival = m.arrivals = m.arrivals + 1
        order = _new_order(order_id, account_id, is_buy, price, lots, tif, kind, stp, arrival)
        self._execute(m, order)
        if m.pending:
            self._cascade(m)
        if m.out:
            m.out.clear()
        m.touched.clear()

    def cancel_order(self, symbol: str, order_id: str, account_id: str) -> bool:
        """Cancel a live order on the fast path; False when it is not live or not the account's."""
        m = self._markets[symbol]
        order = m.book.orders.shards[hash(order_id) & _ORDER_MASK].get(order_id)  # OrderIndex.get inline
        if order is None:
            order = m.pending.get(order_id)
            if order is None:
                return False
        if order.account_id != account_id:
            return False
        self._cancel_live(m, order, "user")
        m.out.clear()
        m.touched.clear()
        return True

    # -- events ------------------------------------------------------------------------------

    def _render(self, m: _Market, ts: str, command_id: str) -> list[Event]:
        """The step's records and touched levels as events, sequenced; clears both."""
        events: list[Event] = []
        out = m.out
        epoch = self._epoch
        symbol = m.symbol
        qty_str = m.qty_str
        price_str = m.price_str
        seq = m.seq
        for rec in out:
            seq += 1
            kind = rec[0]
            if kind == _TRADE:
                _, maker, taker, price, lots, mf, mn, mr, tf, tn, tr = rec
                events.append(
                    {
                        "event_id": f"{symbol}-{seq}",
                        "type": "trade",
                        "version": 1,
                        "ts": ts,
                        "correlation_id": command_id,
                        "symbol": symbol,
                        "seq": seq,
                        "epoch": epoch,
                        "price": price_str(price),
                        "quantity": qty_str(lots),
                        "aggressor_side": "buy" if taker.is_buy else "sell",
                        "maker_order_id": maker.order_id,
                        "maker_account_id": maker.account_id,
                        "taker_order_id": taker.order_id,
                        "taker_account_id": taker.account_id,
                        "maker_filled_quantity": qty_str(mf),
                        "maker_filled_notional": m.notional_str(mn),
                        "maker_remaining_quantity": qty_str(mr),
                        "taker_filled_quantity": qty_str(tf),
                        "taker_filled_notional": m.notional_str(tn),
                        "taker_remaining_quantity": qty_str(tr),
                    }
                )
                continue
            order: Order = rec[1]
            event: Event = {
                "event_id": f"{symbol}-{seq}",
                "type": "",
                "version": 1,
                "ts": ts,
                "correlation_id": command_id,
                "symbol": symbol,
                "seq": seq,
                "epoch": epoch,
                "order_id": order.order_id,
                "account_id": order.account_id,
            }
            if kind == _ACCEPT:
                _, _, quantity, price, stop, okind = rec
                has_limit = okind == LIMIT or okind == STOP_LIMIT
                event.update(
                    type="accepted",
                    side="buy" if order.is_buy else "sell",
                    order_type=KIND_NAMES[okind],
                    price=price_str(price) if has_limit else None,
                    quantity=qty_str(quantity),
                    time_in_force=order.tif,
                    stop_price=price_str(stop) if okind >= STOP else None,
                    display_quantity=qty_str(order.peak) if order.peak else None,
                    post_only=order.post_only,
                    stp=STP_NAMES[order.stp],
                    expire_at=micros_iso(order.expire_at) if order.expire_at else None,
                    group_id=None if order.group is None else order.group.group_id,
                )
            elif kind == _CANCEL:
                event.update(type="cancelled", remaining_quantity=qty_str(rec[2]), reason=rec[3])
            elif kind == _EXPIRE:
                event.update(type="expired", remaining_quantity=qty_str(rec[2]), reason=rec[3])
            elif kind == _REPLACE:
                _, _, price, stop, quantity, open_qty, kept, reason, okind = rec
                event.update(
                    type="replaced",
                    price=price_str(price) if okind in (LIMIT, STOP_LIMIT) else None,
                    stop_price=price_str(stop) if okind >= STOP else None,
                    quantity=qty_str(quantity),
                    remaining_quantity=qty_str(open_qty),
                    kept_priority=kept,
                    reason=reason,
                )
            else:
                assert kind == _TRIGGER
                event.update(
                    type="triggered",
                    order_type=KIND_NAMES[rec[3]],
                    stop_price=price_str(rec[4]),
                    trigger_price=price_str(rec[2]),
                )
            events.append(event)
        touched = m.touched
        if touched:
            for key in sorted(touched, reverse=True) if len(touched) > 1 else touched:
                level = touched[key]
                seq += 1
                events.append(
                    {
                        "event_id": f"{symbol}-{seq}",
                        "type": "book",
                        "version": 1,
                        "ts": ts,
                        "correlation_id": command_id,
                        "symbol": symbol,
                        "seq": seq,
                        "epoch": epoch,
                        "side": "buy" if key > 0 else "sell",  # bid keys are +price
                        "price": price_str(level.price),
                        "quantity": qty_str(level.qty),
                        "orders": level.count,
                    }
                )
            touched.clear()
        out.clear()
        m.seq = seq
        return events

    def _rejected(
        self, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, invalid: _Invalid
    ) -> Event:
        event = self._order_event("rejected", symbol, ts, command_id, order_id, account_id)
        event["reason"] = invalid.reason
        event["message"] = invalid.message
        return event

    def _replace_rejected(
        self, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, invalid: _Invalid
    ) -> Event:
        event = self._rejected(symbol, ts, command_id, order_id, account_id, invalid)
        event["type"] = "replace_rejected"
        return event

    def _cancel_rejected(
        self, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, reason: str
    ) -> Event:
        event = self._order_event("cancel_rejected", symbol, ts, command_id, order_id, account_id)
        event["reason"] = reason
        return event

    def _order_event(
        self, type_: str, symbol: str, ts: str, command_id: str, order_id: str, account_id: str
    ) -> Event:
        """The envelope and order fields of a refusal event, with the symbol's next seq."""
        seq = self._next_seq(symbol)
        return {
            "event_id": f"{symbol}-{seq}",
            "type": type_,
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": symbol,
            "seq": seq,
            "epoch": self._epoch,
            "order_id": order_id,
            "account_id": account_id,
        }

    # -- queries -----------------------------------------------------------------------------

    def book_depth(self, symbol: str, depth: int) -> dict[str, list[tuple[int, int, int]]]:
        """Top ``depth`` levels per side, best first: ``(price_ticks, qty_lots, orders)``.

        Raises KeyError for a symbol that is not an instrument.
        """
        return self._markets[symbol].book.depth(depth)

    def last_price(self, symbol: str) -> int:
        """The last trade price in ticks (0 before the first trade)."""
        return self._markets[symbol].last

    def live_orders(self, symbol: str) -> dict[str, Order]:
        """Every live order of a symbol (resting and parked) by id (read only)."""
        m = self._markets[symbol]
        return {**dict(m.book.orders.items()), **m.pending}

    # -- snapshot / restore ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The full state as JSON-ready data, deterministic (same state -> same dict/JSON)."""
        seqs = dict(self._other_seq)
        books: dict[str, Any] = {}
        counters: dict[str, Any] = {}
        for symbol in sorted(self._markets):
            m = self._markets[symbol]
            if m.seq:
                seqs[symbol] = m.seq
            if m.last or m.arrivals:
                counters[symbol] = {"last": m.last, "arrivals": m.arrivals}
            if m.book.orders or m.pending:
                instrument = m.instrument
                stops = sorted(m.pending.values(), key=_arrival)
                books[symbol] = {
                    "tick_size": str(instrument.tick_size),
                    "lot_size": str(instrument.lot_size),
                    **m.book.to_state(),
                    "stops": [o.to_row() for o in stops],
                }
        return {
            "format": SNAPSHOT_FORMAT,
            "epoch": self._epoch,
            "dropped_commands": self.dropped_commands,
            "seq": {symbol: seqs[symbol] for symbol in sorted(seqs)},
            "counters": counters,
            "books": books,
            "seen_order_ids": {"previous": sorted(self._seen_old), "current": sorted(self._seen)},
            "halted": sorted(self._halted),
        }

    @classmethod
    def restore(
        cls,
        state: Mapping[str, Any],
        instruments: Mapping[str, Instrument],
        config: EngineConfig | None = None,
    ) -> MatchingEngine:
        """Rebuild an engine from ``snapshot()`` output (also after a JSON round trip).

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
                for order in sorted([*m.book.orders.values(), *stops], key=_arrival):
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
            engine._seen_old = IdSet(previous)
            engine._seen = IdSet(current)
            halted = state["halted"] if version >= 4 else []
            if type(halted) is not list or not all(type(symbol) is str and symbol for symbol in halted):
                raise ValueError("malformed halted symbols")
            engine._halted = set(halted)
            if version == 2:
                for market in engine._markets.values():
                    live = {order_id for order_id, _ in market.book.orders.items()} | market.pending.keys()
                    if not all(order_id in engine._seen_old for order_id in live):
                        raise ValueError(f"live orders of {market.symbol} missing from seen ids")
        except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"malformed snapshot: {exc!r}") from exc
        return engine


__all__ = ["EngineConfig", "Event", "MatchingEngine", "OrderRow", "micros_iso", "scaled_str", "ts_micros"]
