# cython: language_level=3, annotation_typing=False
"""The matching engine: commands in, events out, for every symbol of the venue.

Pure domain: no I/O, no clock, no randomness. ``process`` takes one JSON-decoded command (the
command models of ``nexus_common.events``, decimals as strings) and returns the events it causes
as flat JSON-ready dicts shaped like the event models of ``nexus_common.events``; the same
journal of commands always gives the same events, so snapshot + replay rebuild the same books and
the same event ids. ``submit`` / ``cancel_order`` drive the same matching core on integers and
build no event (the embedded fast path the benchmark measures).

Command types: ``new``, ``cancel``, ``replace``, ``mass_cancel``, ``oco``, ``clock``, ``halt``,
``resume``, ``routed_fills`` and ``fence`` (an entry that never completed: an order id the engine
never received is remembered and refused ``entry_incomplete``; a received one changes nothing; with
``replace_command_id``, the same for a replace command).

The engine's contract in full (halts, time, validation order, order types, trigger order, self-trade
prevention, replace, OCO, collar, book deltas, idempotency) is docs/matching-engine.md; the
README section "Engine command and event formats" is the user's reference.

This module is the matching core: price-time priority, triggers, expiries, self-trade prevention
and OCO, on integers. Around it, each in a module of its own: ``config`` (``EngineConfig``),
``seen`` (the window of seen ids), ``market`` (one symbol: conversions, collar, parked stops),
``commands`` (parsing), ``render`` (events) and ``snapshot`` (snapshot / restore).
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Mapping
from typing import Any, Final

from nexus_common.events import ENTRY_INCOMPLETE
from nexus_common.instruments import Instrument

from nexus_matching.book import (
    DONE,
    LIMIT,
    MARKET,
    NEW,
    ORDER_SHARDS,
    PENDING,
    RESTING,
    STOP,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    STP_DECREMENT,
    Level,
    OcoGroup,
    Order,
    OrderRow,
)
from nexus_matching.commands import (
    parse_new,
    parse_oco,
    parse_replace,
    parse_routed_fills,
    parse_routed_rest,
    read_ts,
)
from nexus_matching.config import EngineConfig
from nexus_matching.market import Invalid, Market, by_arrival, micros_iso, scaled_str, ts_micros
from nexus_matching.render import (
    ACCEPT,
    CANCEL,
    EXPIRE,
    REPLACE,
    TRADE,
    TRIGGER,
    Event,
    cancel_rejected,
    rejected,
    render,
    route_totals,
    route_working,
    routed_events,
    trading_status,
)
from nexus_matching.seen import SEEN_SHARDS, SeenIds
from nexus_matching.snapshot import READABLE_FORMATS, SNAPSHOT_FORMAT, restore_engine, snapshot_of

_SEEN_MASK: Final = SEEN_SHARDS - 1
_ORDER_MASK: Final = ORDER_SHARDS - 1


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
    """Price-time-priority matching for every instrument of the venue. See docs/matching-engine.md.

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
        self._markets: dict[str, Market] = {}
        for symbol, instrument in instruments.items():
            if symbol != instrument.symbol:
                raise ValueError(f"instrument {instrument.symbol!r} listed under {symbol!r}")
            self._markets[symbol] = Market(instrument, self.config)
        # Sequence counters of symbol strings that are not instruments (their rejections).
        self._other_seq: dict[str, int] = {}
        # Order ids of new orders, OCO groups and legs, in two generations of ``dedup_window``
        # ids (see "Idempotency" in docs/matching-engine.md).
        self._seen = SeenIds(self.config.dedup_window)
        self._epoch = 0
        self._last_ts: str | None = None  # the last ts that passed _valid_ts (a cache)
        self._last_now = 0  # ... and its instant in microseconds
        self.dropped_commands = 0
        self._halted: set[str] = set()  # symbols halted by a ``halt`` command (see "Halts")
        # Routed orders working on an external venue: order id -> the parent's totals so far
        # (filled quantity, notional, remaining, as the fills carried them), for the end of one
        # that comes without a fill (a cancel or expiry on the venue).
        self._working: dict[str, tuple[str, str, str]] = {}
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
            self._markets[instrument.symbol] = Market(instrument, self.config, seq=seq)
            return
        old = market.instrument
        if (market.book.orders or market.pending or market.last) and (
            old.tick_size != instrument.tick_size or old.lot_size != instrument.lot_size
        ):
            raise ValueError("tick or lot size cannot change while the symbol has orders or trades")
        fresh = Market(instrument, self.config, market.seq)
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
        if kind == "routed_fills":
            return self._routed_fills(command, symbol, command_id, ts)
        if kind == "fence":
            return self._fence(command, order_id, symbol, command_id, ts, now)
        self.dropped_commands += 1
        return []

    def _routed_fills(self, command: Mapping[str, Any], symbol: str, command_id: str, ts: str) -> list[Event]:
        """A routed order's executions on external venues, put in the symbol's sequence as they
        are (``venue_fill`` events), then its end or its rest on this book, under the parent's
        id, its counters starting at the external totals (its events carry the parent's totals):
        with ``internal_price`` what is left takes this book's liquidity up to that price; then,
        with ``rest_price`` (``gtc`` / ``day``), what is still left rests at that price (an
        ``accepted`` first when nothing filled yet), else it is cancelled as an IOC's remainder.
        Without either, or when that part cannot run, a ``route_ended``. ``working``: the order
        keeps working on an external venue, so the fills only (no internal part, no end), and
        with ``rest_venue`` (the route's first command) a ``route_working`` after them saying
        where it rests; a later command of the order brings its fills there, or its end. The
        engine keeps a working order's totals, for an end without a fill (its totals). The
        command id goes into the window of seen ids: a resent command (a routing retry) is
        dropped."""
        fills = parse_routed_fills(command)
        order_id = command["order_id"]
        if fills is None or self._seen.contains(command_id) or self._taken(self._markets.get(symbol), order_id):
            self.dropped_commands += 1
            return []
        self._remember(command_id)
        market = self._markets.get(symbol)
        order = None
        rest_ticks = 0
        refused = ""
        working = command.get("working") is True
        if not working and (command.get("internal_price") is not None or command.get("rest_price") is not None):
            if market is None:
                refused = "unknown_symbol"
            else:
                try:
                    order, rest_ticks = parse_routed_rest(market, command, fills, self._last_now,
                                                          symbol in self._halted)
                except Invalid as invalid:
                    refused = invalid.reason
        first = (market.seq if market is not None else self._other_seq.get(symbol, 0)) + 1
        shown = dict(command)
        if refused:
            shown["end_reason"] = refused  # its part here could not run: that is why it ended
        totals = None  # a working order's totals so far, for its end without a fill
        if working:
            self._working[order_id] = route_totals(fills, command["quantity"], self._working.get(order_id))
        else:
            totals = self._working.pop(order_id, None)
        events = routed_events(symbol, first, self._epoch, ts, command_id, shown, fills,
                               end=order is None and not working, totals=totals)
        if working and command.get("rest_venue") is not None:
            events.append(route_working(symbol, first + len(events), self._epoch, ts, command_id, command, fills))
        for _ in events:
            self._next_seq(symbol)
        if order is None or market is None:
            return events
        self._remember(order_id)
        self._run_routed(market, order, command.get("internal_price") is not None, rest_ticks, not fills)
        events.extend(render(market, self._epoch, ts, command_id))
        return events

    def _run_routed(self, m: Market, o: Order, take: bool, rest_ticks: int, announce: bool) -> None:
        """A routed order's part on this book: take up to its price, then rest at ``rest_ticks``
        (announced with an ``accepted`` when nothing filled before) or end as an IOC's rest."""
        m.arrivals += 1
        o.arrival = m.arrivals
        if take and rest_ticks:
            limit_key = -o.price if o.is_buy else o.price
            opposite = m.book.asks.keys if o.is_buy else m.book.bids.keys
            if opposite and opposite[-1] >= limit_key:
                filled_before = o.filled
                if self._match(m, o, limit_key):
                    self._finish(m, o, "self_trade")
                    return
                announce = announce and o.filled == filled_before
            if o.state == DONE or not o.remaining:
                o.state = DONE
                return
            o.price = rest_ticks
        if rest_ticks and announce:
            m.out.append((ACCEPT, o, o.quantity, o.price, o.stop_price, o.kind))
        self._execute(m, o)
        if m.pending:
            self._cascade(m)

    def _valid_ts(self, ts: str) -> bool:
        now = read_ts(ts)
        if now is None:
            return False
        self._last_ts = ts
        self._last_now = now
        return True

    def _taken(self, m: Market | None, order_id: str) -> bool:
        """Is a new order or OCO group id a duplicate: in the window of seen ids, or the id of a
        live order or OCO group of the symbol?"""
        if self._seen.contains(order_id):
            return True
        if m is None:
            return False
        if order_id in m.book.orders or order_id in m.pending:
            return True
        group = m.groups.get(order_id)
        return group is not None and group.live()

    def _remember(self, order_id: str) -> None:
        if self._seen.add(order_id):
            self._drop_finished_groups()

    def _rotate(self) -> None:
        """Start a new generation of seen ids, forgetting the oldest; drop finished OCO groups."""
        self._seen.rotate()
        self._drop_finished_groups()

    def _drop_finished_groups(self) -> None:
        """After a new generation of seen ids began: forget the finished OCO groups (a finished
        group's id answers like an unknown one either way)."""
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
                raise Invalid("unknown_symbol", f"unknown symbol {symbol!r}")
            order = parse_new(market, c, order_id, account_id, now, symbol in self._halted)
        except Invalid as invalid:
            account = account_id if type(account_id) is str else ""
            early = render(market, self._epoch, ts, command_id) if market is not None else []
            return [*early, self._rejected("rejected", symbol, ts, command_id, order_id, account, invalid)]
        self._accept(market, order)
        self._run_new(market, order)
        return render(market, self._epoch, ts, command_id)

    def _fence(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        """Close an entry that never completed (the orders API's entry sweep): an id the engine
        has received (``_taken``: in the window of seen ids, or a live order or OCO group of the
        symbol) changes nothing; any other is remembered, so a ``new`` or ``oco`` of it arriving
        later is a duplicate, and refused with one ``rejected`` event (``entry_incomplete``).

        With ``replace_command_id``, a replace of ``order_id`` whose sending was not confirmed
        (the orders API): received (in the window of seen ids) changes nothing; else the id is
        remembered, so the replace arriving later is dropped, and refused with one
        ``replace_rejected`` event (``entry_incomplete``) whose ``correlation_id`` is the
        replace's command id, as if the engine had refused the replace itself."""
        replace_id = c.get("replace_command_id")
        if replace_id is not None and not (type(replace_id) is str and replace_id):
            self.dropped_commands += 1
            return []
        market = self._markets.get(symbol)
        if self._seen.contains(replace_id) if replace_id is not None else self._taken(market, order_id):
            return []
        self._remember(replace_id if replace_id is not None else order_id)
        account_id = c.get("account_id")
        account = account_id if type(account_id) is str else ""
        if market is not None and market.expiries and market.expiries[0][0] <= now:
            self._expire(market, now)
        early = render(market, self._epoch, ts, command_id) if market is not None else []
        if replace_id is not None:
            invalid = Invalid(ENTRY_INCOMPLETE, "the replace was not confirmed sent; the engine never received it")
            return [*early, self._rejected("replace_rejected", symbol, ts, replace_id, order_id, account, invalid)]
        invalid = Invalid(ENTRY_INCOMPLETE, "the order's entry did not complete; the engine never received it")
        return [*early, self._rejected("rejected", symbol, ts, command_id, order_id, account, invalid)]

    def _accept(self, m: Market, order: Order) -> None:
        m.arrivals += 1
        order.arrival = m.arrivals
        m.out.append((ACCEPT, order, order.quantity, order.price, order.stop_price, order.kind))

    def _run_new(self, m: Market, order: Order) -> None:
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

    def _cascade(self, m: Market) -> None:
        """Trigger and execute parked stops, round after round (see "Trigger order")."""
        while m.pending and m.last:
            triggered = m.collect_triggered()
            if not triggered:
                return
            for order in triggered:
                if order.state == DONE:
                    continue  # cancelled meanwhile (its OCO sibling filled)
                self._trigger(m, order)

    def _trigger(self, m: Market, o: Order) -> None:
        """A stop reached: record it, and from now on it is a market (stop) or limit
        (stop_limit) order, executed at once."""
        m.out.append((TRIGGER, o, m.last, o.kind, o.stop_price))
        o.kind = MARKET if o.kind == STOP else LIMIT
        self._execute(m, o)

    def _execute(self, m: Market, o: Order) -> None:
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

    def _finish(self, m: Market, o: Order, reason: str) -> None:
        """Cancel the open quantity of an order that is not in the book (a taker, or new)."""
        o.state = DONE
        m.out.append((CANCEL, o, o.remaining + o.hidden, reason))

    def _match(self, m: Market, taker: Order, limit_key: int) -> bool:
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
                    (TRADE, maker, taker, price, lots, maker.filled, maker.notional,
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

    def _self_trade(self, m: Market, taker: Order, maker: Order) -> bool:
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
            m.out.append((CANCEL, taker, cut, "self_trade"))
            stop = True
        # The legs of an OCO group share one quantity: what a decrement takes off a leg comes
        # off its sibling too (reason ``oco``), after the pair of self-trade events.
        if maker.group is not None:
            self._oco_fill(m, maker, cut)
        if taker.group is not None:
            self._oco_fill(m, taker, cut)
        return stop

    def _reduce(self, m: Market, o: Order, cut: int, reason: str) -> None:
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

    def _oco_fill(self, m: Market, leg: Order, lots: int) -> None:
        group = leg.group
        assert group is not None
        sibling = group.sibling(leg)
        if sibling is not None:
            self._reduce(m, sibling, lots, "oco")

    def _cancel_live(self, m: Market, o: Order, reason: str, *, sibling: bool = True) -> None:
        """Cancel a live order wherever it is (book, parked, or not yet placed); with
        ``sibling``, its OCO sibling too (same reason)."""
        if o.state == RESTING:
            level = m.book.cancel(o)
            m.touched[level.key] = level
        elif o.state == PENDING:
            m.unpark(o)
        o.state = DONE
        m.out.append((CANCEL, o, o.remaining + o.hidden, reason))
        if sibling and o.group is not None:
            other = o.group.sibling(o)
            if other is not None:
                self._cancel_live(m, other, reason, sibling=False)

    def _replaced_record(self, o: Order, reason: str, kept: bool) -> tuple[Any, ...]:
        return (REPLACE, o, o.price, o.stop_price, o.quantity, o.remaining + o.hidden, kept, reason, o.kind)

    def _expire(self, m: Market, now: int) -> None:
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
            m.out.append((EXPIRE, order, order.remaining + order.hidden, order.tif))

    # -- cancel, replace, mass cancel, clock -------------------------------------------------

    def _find(self, m: Market, order_id: str) -> Order | None:
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
            early = render(market, self._epoch, ts, command_id)
            return [*early, self._cancel_rejected(symbol, ts, command_id, order_id, account, reason)]
        self._cancel_live(market, order, "user")
        return render(market, self._epoch, ts, command_id)

    def _replace(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str, now: int
    ) -> list[Event]:
        if self._seen.contains(command_id):  # a resent replace, or one its fence already refused
            self.dropped_commands += 1
            return []
        self._remember(command_id)
        account_id = c.get("account_id")
        account = account_id if type(account_id) is str else ""
        m = self._markets.get(symbol)
        if m is None:
            return [self._rejected("replace_rejected", symbol, ts, command_id, order_id, account,
                                   Invalid("unknown_order", "no such order"))]
        if m.expiries and m.expiries[0][0] <= now:
            self._expire(m, now)
        try:
            order = m.book.orders.get(order_id) or m.pending.get(order_id)
            if order is None:
                raise Invalid("unknown_order", "no such live order")
            if order.account_id != account_id:
                raise Invalid("not_owner", "the order belongs to another account")
            price, stop_price, quantity = parse_replace(m, c, order, symbol in self._halted)
        except Invalid as invalid:
            early = render(m, self._epoch, ts, command_id)
            return [*early, self._rejected("replace_rejected", symbol, ts, command_id, order_id, account, invalid)]
        keep = price == order.price and stop_price == order.stop_price and quantity <= order.quantity
        if keep:
            cut = order.quantity - quantity
            if cut:
                self._reduce(m, order, cut, "user")
            else:
                m.out.append(self._replaced_record(order, "user", True))
            return render(m, self._epoch, ts, command_id)
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
        return render(m, self._epoch, ts, command_id)

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
            mine.sort(key=by_arrival)
            for order in mine:
                if order.state != DONE:
                    self._cancel_live(m, order, "mass_cancel")
            events.extend(render(m, self._epoch, ts, command_id))
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
                events.extend(render(m, self._epoch, ts, command_id))
        return events

    def _trading_status(self, symbol: str, halt: bool, reason: str, command_id: str, ts: str) -> list[Event]:
        """``halt`` / ``resume``: one ``trading_status`` event when the state changes."""
        if (symbol in self._halted) == halt:
            return []
        if halt:
            self._halted.add(symbol)
        else:
            self._halted.discard(symbol)
        return [trading_status(symbol, self._next_seq(symbol), self._epoch, ts, command_id, halt, reason)]

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
                raise Invalid("unknown_symbol", f"unknown symbol {symbol!r}")
            if self._taken(m, tp_id) or self._taken(m, sl_id):
                raise Invalid("invalid_command", "a leg's order id is already taken")
            tp, sl = parse_oco(m, c, group_id, account_id, now, symbol in self._halted)
        except Invalid as invalid:
            account = account_id if type(account_id) is str else ""
            early = render(m, self._epoch, ts, command_id) if m is not None else []
            return [*early, self._rejected("rejected", symbol, ts, command_id, group_id, account, invalid)]
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
        return render(m, self._epoch, ts, command_id)

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
        seen = self._seen.current
        shard = seen.shards[h & _SEEN_MASK]
        if (
            order_id in shard
            or order_id in self._seen.previous.shards[h & _SEEN_MASK]
            or order_id in m.book.orders.shards[h & _ORDER_MASK]
            or (m.pending and order_id in m.pending)
            or (m.groups and self._taken(m, order_id))
        ):
            return
        shard.add(order_id)  # IdSet.add of an id known to be new
        seen.size += 1
        if seen.size >= self._seen.limit:
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

    def _rejected(
        self, type_: str, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, invalid: Invalid
    ) -> Event:
        """A ``rejected`` / ``replace_rejected`` event with the symbol's next seq."""
        return rejected(type_, symbol, self._next_seq(symbol), self._epoch, ts, command_id, order_id, account_id,
                        invalid)

    def _cancel_rejected(
        self, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, reason: str
    ) -> Event:
        """A ``cancel_rejected`` event with the symbol's next seq."""
        return cancel_rejected(symbol, self._next_seq(symbol), self._epoch, ts, command_id, order_id, account_id,
                               reason)

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

    # -- snapshot / restore (the ``snapshot`` module) ----------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The full state as JSON-ready data, deterministic (same state -> same dict/JSON)."""
        return snapshot_of(self)

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
        engine: MatchingEngine = restore_engine(cls, state, instruments, config)
        return engine


# Re-exported from the modules split off this one, for the importers of ``nexus_matching.engine``
# (the cimported extension types, ``IdSet`` and ``Market``, are not attributes of the compiled
# module: import them from ``seen`` and ``market``).
__all__ = [
    "READABLE_FORMATS", "SNAPSHOT_FORMAT", "EngineConfig", "Event", "MatchingEngine", "OrderRow", "micros_iso",
    "scaled_str", "ts_micros",
]
