"""The matching engine: commands in, events out, for every symbol of the venue.

Pure domain: no I/O, no clock, no randomness. ``process`` takes one JSON-decoded command
(``NewOrderCommand`` / ``CancelOrderCommand`` of ``nexus_common.events``, decimals as strings)
and returns the events it causes as flat JSON-ready dicts shaped exactly like the models of
``nexus_common.events`` (decimals as canonical strings, as ``nexus_common.money.fmt`` writes
them). The same journal of commands always gives the same events, which is what makes
snapshot + replay rebuild the same books and the same event ids.

Envelope of every event: ``event_id = f"{symbol}-{seq}"``, ``version`` 1, ``ts`` copied from the
command (never the engine's clock), ``correlation_id`` = the command's ``command_id``,
``symbol``, ``seq`` (per-symbol counter 1, 2, 3, ... with no gaps) and ``epoch`` (the leadership
epoch set with ``set_epoch``).

New order. Validation never raises; a bad order gets one ``rejected`` event whose reason is one
of ``unknown_symbol``, ``symbol_halted``, ``invalid_command`` (side, order type, time in force or
account id), ``missing_price`` (limit without price), ``unexpected_price`` (market with a price),
``invalid_price`` / ``price_off_tick``, ``invalid_quantity`` / ``quantity_off_lot``, checked in
that order. A valid order gives, in this order: ``accepted``; one ``trade`` per fill in matching
order (price-time priority, at the maker's price, with both orders' cumulative filled quantity,
filled notional and remaining quantity after the fill); ``cancelled`` for a remainder that does
not rest; then one ``book`` delta per price level whose aggregate changed (its new quantity and
order count, ``0``/``0`` when it emptied), bids by descending price, then asks by ascending price.

Time in force:

* ``gtc`` and ``day``: the remainder rests. DAY orders are not expired yet: expiring them at the
  end of the session is a later piece of work (it will be a command on the journal, so replays
  stay deterministic); until then a DAY order behaves as GTC.
* ``ioc``: the remainder is cancelled with reason ``ioc``.
* ``fok``: when the whole quantity cannot fill at once, nothing trades and the order is
  cancelled with reason ``fok`` (no trade, no book event).
* Market orders never rest: the remainder is cancelled with reason ``market_no_liquidity``
  (a market FOK that cannot fill completely is cancelled with reason ``fok``).

Cancel. ``cancelled`` (reason ``user``, ``remaining_quantity`` = the open quantity) and the book
delta of its level; or ``cancel_rejected`` with reason ``unknown_order`` (never seen, already
finished, or resting under another symbol) or ``not_owner`` (another account's order). Cancels
are accepted while a symbol is halted.

Idempotency and robustness. A ``new`` command for an order id the engine has already seen (live,
finished or rejected) is ignored: no event (a resent ``cancel`` answers ``cancel_rejected``). A
command too malformed to answer is ignored and counted in ``dropped_commands``: not a mapping,
``type`` not ``new``/``cancel``, ``order_id`` or ``symbol`` not a non-empty string,
``command_id`` not a string, or ``ts`` not ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with ``Z`` or
``+HH:MM`` (an event cannot be built without them). A rejection for an unknown symbol is
sequenced under the command's symbol string.

Speed: integers inside (ticks, lots, notional in ``tick_size * lot_size`` units); ``Decimal``
only to parse prices and quantities on the way in (with small caches), and no ``Decimal`` at all
on the way out (exact integer formatting, equal to ``fmt``).

Self-trade prevention is not part of this engine: two orders of one account can trade.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.money import (
    PRICE_PLACES,
    QUANTITY_PLACES,
    MoneyError,
    has_places,
    to_decimal,
)

from nexus_matching.book import Level, Order, OrderBook, OrderRow

Event = dict[str, Any]

SNAPSHOT_FORMAT: Final = 1

_SIDES: Final = ("buy", "sell")
_ORDER_TYPES: Final = ("limit", "market")
_TIFS: Final = ("gtc", "ioc", "fok", "day")
_CACHE_LIMIT: Final = 1 << 16

# The ISO-8601 shapes the engine accepts for ``ts`` (what ``nexus_common.events.iso`` writes,
# and the usual variants); calendar validity is then checked by ``datetime.fromisoformat``.
_TS_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


class _Invalid(Exception):
    """Internal: a new-order command fails validation (becomes a ``rejected`` event)."""

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


class _Market:
    """One symbol: its instrument, book, sequence counter and decimal <-> integer conversions."""

    __slots__ = (
        "book",
        "instrument",
        "lot_coef",
        "lot_places",
        "notional_coef",
        "notional_places",
        "price_cache",
        "price_str_cache",
        "qty_cache",
        "qty_str",
        "seq",
        "symbol",
        "tick_coef",
        "tick_places",
    )

    def __init__(self, instrument: Instrument, book: OrderBook | None = None, seq: int = 0) -> None:
        self.symbol = instrument.symbol
        self.instrument = instrument
        self.book = book if book is not None else OrderBook()
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

    # -- decimal -> integers (entry) ---------------------------------------------------------

    def price_ticks(self, raw: object) -> int:
        if type(raw) is str:
            cached = self.price_cache.get(raw)
            if cached is not None:
                return cached
        try:
            price = to_decimal(raw)
        except MoneyError as exc:
            raise _Invalid("invalid_price", f"price: {exc}") from None
        if price <= 0:
            raise _Invalid("invalid_price", "price must be positive")
        if not has_places(price, PRICE_PLACES):
            raise _Invalid("price_off_tick", f"price needs at most {PRICE_PLACES} decimal places")
        try:
            ticks: int = self.instrument.price_to_ticks(price)
        except InstrumentError as exc:
            raise _Invalid(exc.code, exc.message) from None
        if type(raw) is str:
            if len(self.price_cache) >= _CACHE_LIMIT:
                self.price_cache.clear()
            self.price_cache[raw] = ticks
        return ticks

    def quantity_lots(self, raw: object) -> int:
        if type(raw) is str:
            cached = self.qty_cache.get(raw)
            if cached is not None:
                return cached
        try:
            quantity = to_decimal(raw)
        except MoneyError as exc:
            raise _Invalid("invalid_quantity", f"quantity: {exc}") from None
        if quantity <= 0:
            raise _Invalid("invalid_quantity", "quantity must be positive")
        if not has_places(quantity, QUANTITY_PLACES):
            raise _Invalid(
                "quantity_off_lot", f"quantity needs at most {QUANTITY_PLACES} decimal places"
            )
        try:
            lots: int = self.instrument.quantity_to_lots(quantity)
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


class MatchingEngine:
    """Price-time-priority matching for every instrument of the venue. See the module doc.

    Lifecycle: build with the instruments (and the leadership epoch), ``process`` commands in
    journal order, ``snapshot`` at any point, ``restore`` a snapshot and keep processing: the
    restored engine continues exactly as the original would have.
    """

    def __init__(self, instruments: Mapping[str, Instrument], epoch: int = 0) -> None:
        self._markets: dict[str, _Market] = {}
        for symbol, instrument in instruments.items():
            if symbol != instrument.symbol:
                raise ValueError(f"instrument {instrument.symbol!r} listed under {symbol!r}")
            self._markets[symbol] = _Market(instrument)
        # Sequence counters of symbol strings that are not instruments (their rejections).
        self._other_seq: dict[str, int] = {}
        self._seen: set[str] = set()
        self._epoch = 0
        self._last_ts: str | None = None  # the last ts that passed _valid_ts (a cache)
        self.dropped_commands = 0
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
        """Replace an instrument's reference data (e.g. halt or resume it).

        The tick and lot size of a symbol with resting orders cannot change: those orders are
        held in ticks and lots.
        """
        market = self._markets.get(instrument.symbol)
        if market is None:
            seq = self._other_seq.pop(instrument.symbol, 0)
            self._markets[instrument.symbol] = _Market(instrument, seq=seq)
            return
        old = market.instrument
        if market.book.orders and (
            old.tick_size != instrument.tick_size or old.lot_size != instrument.lot_size
        ):
            raise ValueError("tick or lot size cannot change while orders rest in the book")
        self._markets[instrument.symbol] = _Market(instrument, market.book, market.seq)

    # -- commands ----------------------------------------------------------------------------

    def process(self, command: Mapping[str, Any]) -> list[Event]:
        """Apply one command; return its events (possibly none). Never raises on bad input."""
        if type(command) is not dict and not isinstance(command, Mapping):
            self.dropped_commands += 1
            return []
        get = command.get
        kind = get("type")
        order_id = get("order_id")
        symbol = get("symbol")
        command_id = get("command_id")
        ts = get("ts")
        if not (
            type(order_id) is str
            and order_id
            and type(symbol) is str
            and symbol
            and type(command_id) is str
            and type(ts) is str
            and (ts == self._last_ts or self._valid_ts(ts))
        ):
            self.dropped_commands += 1
            return []
        if kind == "new":
            return self._new(command, order_id, symbol, command_id, ts)
        if kind == "cancel":
            return self._cancel(command, order_id, symbol, command_id, ts)
        self.dropped_commands += 1
        return []

    def _valid_ts(self, ts: str) -> bool:
        if _TS_RE.fullmatch(ts) is None:
            return False
        try:
            datetime.fromisoformat(ts)
        except ValueError:
            return False
        self._last_ts = ts
        return True

    def _next_seq(self, symbol: str) -> int:
        market = self._markets.get(symbol)
        if market is not None:
            market.seq += 1
            return market.seq
        seq = self._other_seq.get(symbol, 0) + 1
        self._other_seq[symbol] = seq
        return seq

    def _new(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str
    ) -> list[Event]:
        if order_id in self._seen:
            return []
        self._seen.add(order_id)
        account_id = c.get("account_id")
        market = self._markets.get(symbol)
        try:
            if market is None:
                raise _Invalid("unknown_symbol", f"unknown symbol {symbol!r}")
            if market.instrument.status == "halted":
                raise _Invalid("symbol_halted", f"{symbol} is halted")
            side = c.get("side")
            order_type = c.get("order_type")
            tif = c.get("time_in_force", "gtc")
            if side not in _SIDES:
                raise _Invalid("invalid_command", "side must be buy or sell")
            if order_type not in _ORDER_TYPES:
                raise _Invalid("invalid_command", "order_type must be limit or market")
            if tif not in _TIFS:
                raise _Invalid("invalid_command", "time_in_force must be gtc, ioc, fok or day")
            if type(account_id) is not str or not account_id:
                raise _Invalid("invalid_command", "account_id is required")
            raw_price = c.get("price")
            if order_type == "limit":
                if raw_price is None:
                    raise _Invalid("missing_price", "a limit order needs a price")
                price: int | None = market.price_ticks(raw_price)
            else:
                if raw_price is not None:
                    raise _Invalid("unexpected_price", "a market order takes no price")
                price = None
            lots = market.quantity_lots(c.get("quantity"))
        except _Invalid as invalid:
            return [
                self._rejected(
                    symbol,
                    ts,
                    command_id,
                    order_id,
                    account_id if type(account_id) is str else "",
                    invalid,
                )
            ]
        assert market is not None and type(side) is str and type(tif) is str
        return self._execute(market, ts, command_id, order_id, account_id, side, price, lots, tif)

    def _execute(
        self,
        m: _Market,
        ts: str,
        command_id: str,
        order_id: str,
        account_id: str,
        side: str,
        price: int | None,
        lots: int,
        tif: str,
    ) -> list[Event]:
        """Match a validated new order, rest or cancel its remainder, and build its events."""
        symbol = m.symbol
        epoch = self._epoch
        book = m.book
        is_buy = side == "buy"
        m.seq += 1
        events: list[Event] = [
            {
                "event_id": f"{symbol}-{m.seq}",
                "type": "accepted",
                "version": 1,
                "ts": ts,
                "correlation_id": command_id,
                "symbol": symbol,
                "seq": m.seq,
                "epoch": epoch,
                "order_id": order_id,
                "account_id": account_id,
                "side": side,
                "order_type": "market" if price is None else "limit",
                "price": None if price is None else m.price_str(price),
                "quantity": m.qty_str(lots),
                "time_in_force": tif,
            }
        ]
        if tif == "fok" and not book.can_fill(is_buy, price, lots):
            events.append(self._cancelled(m, ts, command_id, order_id, account_id, lots, "fok"))
            return events

        taker = Order(order_id, account_id, is_buy, price or 0, lots, tif)
        fills = book.match(taker, price)
        touched: list[Level] = []
        if fills:
            filled = 0
            notional = 0
            qty_str = m.qty_str
            notional_str = m.notional_str
            last_level: Level | None = None
            for maker, traded in fills:
                trade_price = maker.price
                filled += traded
                notional += trade_price * traded
                m.seq += 1
                events.append(
                    {
                        "event_id": f"{symbol}-{m.seq}",
                        "type": "trade",
                        "version": 1,
                        "ts": ts,
                        "correlation_id": command_id,
                        "symbol": symbol,
                        "seq": m.seq,
                        "epoch": epoch,
                        "price": m.price_str(trade_price),
                        "quantity": qty_str(traded),
                        "aggressor_side": side,
                        "maker_order_id": maker.order_id,
                        "maker_account_id": maker.account_id,
                        "taker_order_id": order_id,
                        "taker_account_id": account_id,
                        "maker_filled_quantity": qty_str(maker.filled),
                        "maker_filled_notional": notional_str(maker.notional),
                        "maker_remaining_quantity": qty_str(maker.remaining),
                        "taker_filled_quantity": qty_str(filled),
                        "taker_filled_notional": notional_str(notional),
                        "taker_remaining_quantity": qty_str(lots - filled),
                    }
                )
                level = maker.level
                if level is not last_level:
                    assert level is not None
                    touched.append(level)
                    last_level = level

        if taker.remaining:
            if price is None:
                events.append(
                    self._cancelled(
                        m,
                        ts,
                        command_id,
                        order_id,
                        account_id,
                        taker.remaining,
                        "market_no_liquidity",
                    )
                )
            elif tif == "ioc":
                events.append(
                    self._cancelled(m, ts, command_id, order_id, account_id, taker.remaining, "ioc")
                )
            else:  # gtc, day (a fok that got here filled completely)
                rested = book.rest(taker)
                # Bids first (descending), then asks (ascending); the matched levels are already
                # in that order, from the best price outwards.
                if is_buy:
                    touched.insert(0, rested)
                else:
                    touched.append(rested)

        for level in touched:
            m.seq += 1
            events.append(
                {
                    "event_id": f"{symbol}-{m.seq}",
                    "type": "book",
                    "version": 1,
                    "ts": ts,
                    "correlation_id": command_id,
                    "symbol": symbol,
                    "seq": m.seq,
                    "epoch": epoch,
                    "side": "buy" if level.key > 0 else "sell",  # bid keys are +price
                    "price": m.price_str(level.price),
                    "quantity": m.qty_str(level.qty),
                    "orders": level.count,
                }
            )
        return events

    def _cancel(
        self, c: Mapping[str, Any], order_id: str, symbol: str, command_id: str, ts: str
    ) -> list[Event]:
        account_id = c.get("account_id")
        account = account_id if type(account_id) is str else ""
        market = self._markets.get(symbol)
        order = None if market is None else market.book.orders.get(order_id)
        if market is None or order is None:
            return [
                self._cancel_rejected(symbol, ts, command_id, order_id, account, "unknown_order")
            ]
        if order.account_id != account_id:
            return [self._cancel_rejected(symbol, ts, command_id, order_id, account, "not_owner")]
        remaining = order.remaining
        level = market.book.cancel(order)
        cancelled = self._cancelled(
            market, ts, command_id, order_id, order.account_id, remaining, "user"
        )
        market.seq += 1
        return [
            cancelled,
            {
                "event_id": f"{symbol}-{market.seq}",
                "type": "book",
                "version": 1,
                "ts": ts,
                "correlation_id": command_id,
                "symbol": symbol,
                "seq": market.seq,
                "epoch": self._epoch,
                "side": "buy" if order.is_buy else "sell",
                "price": market.price_str(level.price),
                "quantity": market.qty_str(level.qty),
                "orders": level.count,
            },
        ]

    # -- event builders ----------------------------------------------------------------------

    def _cancelled(
        self,
        m: _Market,
        ts: str,
        command_id: str,
        order_id: str,
        account_id: str,
        remaining: int,
        reason: str,
    ) -> Event:
        m.seq += 1
        return {
            "event_id": f"{m.symbol}-{m.seq}",
            "type": "cancelled",
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": m.symbol,
            "seq": m.seq,
            "epoch": self._epoch,
            "order_id": order_id,
            "account_id": account_id,
            "remaining_quantity": m.qty_str(remaining),
            "reason": reason,
        }

    def _rejected(
        self,
        symbol: str,
        ts: str,
        command_id: str,
        order_id: str,
        account_id: str,
        invalid: _Invalid,
    ) -> Event:
        seq = self._next_seq(symbol)
        return {
            "event_id": f"{symbol}-{seq}",
            "type": "rejected",
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": symbol,
            "seq": seq,
            "epoch": self._epoch,
            "order_id": order_id,
            "account_id": account_id,
            "reason": invalid.reason,
            "message": invalid.message,
        }

    def _cancel_rejected(
        self, symbol: str, ts: str, command_id: str, order_id: str, account_id: str, reason: str
    ) -> Event:
        seq = self._next_seq(symbol)
        return {
            "event_id": f"{symbol}-{seq}",
            "type": "cancel_rejected",
            "version": 1,
            "ts": ts,
            "correlation_id": command_id,
            "symbol": symbol,
            "seq": seq,
            "epoch": self._epoch,
            "order_id": order_id,
            "account_id": account_id,
            "reason": reason,
        }

    # -- queries -----------------------------------------------------------------------------

    def book_depth(self, symbol: str, depth: int) -> dict[str, list[tuple[int, int, int]]]:
        """Top ``depth`` levels per side, best first: ``(price_ticks, qty_lots, orders)``.

        Raises KeyError for a symbol that is not an instrument.
        """
        return self._markets[symbol].book.depth(depth)

    # -- snapshot / restore ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The full state as JSON-ready data, deterministic (same state -> same dict/JSON)."""
        seqs = dict(self._other_seq)
        books: dict[str, Any] = {}
        for symbol in sorted(self._markets):
            market = self._markets[symbol]
            if market.seq:
                seqs[symbol] = market.seq
            if market.book.orders:
                instrument = market.instrument
                books[symbol] = {
                    "tick_size": str(instrument.tick_size),
                    "lot_size": str(instrument.lot_size),
                    **market.book.to_state(),
                }
        return {
            "format": SNAPSHOT_FORMAT,
            "epoch": self._epoch,
            "dropped_commands": self.dropped_commands,
            "seq": {symbol: seqs[symbol] for symbol in sorted(seqs)},
            "books": books,
            "seen_order_ids": sorted(self._seen),
        }

    @classmethod
    def restore(
        cls, state: Mapping[str, Any], instruments: Mapping[str, Instrument]
    ) -> MatchingEngine:
        """Rebuild an engine from ``snapshot()`` output (also after a JSON round trip).

        Raises ValueError when the state is malformed or does not fit the instruments (a book
        for an unknown symbol, or a different tick or lot size).
        """
        try:
            if state["format"] != SNAPSHOT_FORMAT:
                raise ValueError(f"unsupported snapshot format {state['format']!r}")
            engine = cls(instruments, epoch=state["epoch"])
            dropped = state["dropped_commands"]
            if type(dropped) is not int or dropped < 0:
                raise ValueError("malformed dropped_commands")
            engine.dropped_commands = dropped
            for symbol, book_state in state["books"].items():
                market = engine._markets.get(symbol)
                if market is None:
                    raise ValueError(f"snapshot has orders for unknown symbol {symbol!r}")
                instrument = market.instrument
                if (
                    Decimal(book_state["tick_size"]) != instrument.tick_size
                    or Decimal(book_state["lot_size"]) != instrument.lot_size
                ):
                    raise ValueError(f"tick or lot size of {symbol} changed since the snapshot")
                market.book = OrderBook.from_state(book_state)
            for symbol, seq in state["seq"].items():
                if type(symbol) is not str or type(seq) is not int or seq < 1:
                    raise ValueError(f"malformed sequence counter {symbol!r}: {seq!r}")
                market = engine._markets.get(symbol)
                if market is not None:
                    market.seq = seq
                else:
                    engine._other_seq[symbol] = seq
            seen = state["seen_order_ids"]
            if not all(type(order_id) is str for order_id in seen):
                raise ValueError("malformed seen_order_ids")
            engine._seen = set(seen)
            for market in engine._markets.values():
                if not market.book.orders.keys() <= engine._seen:
                    raise ValueError(f"resting orders of {market.symbol} missing from seen ids")
        except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"malformed snapshot: {exc!r}") from exc
        return engine


__all__ = ["Event", "MatchingEngine", "OrderRow", "scaled_str"]
