# cython: language_level=3, annotation_typing=False
"""One symbol's market: its book, its integer conversions, its price rules and its parked stops.

``Market`` holds everything the matching core keeps per symbol: the instrument and its
``OrderBook``, the conversions between the wire's decimal strings and the engine's integers
(ticks, lots, notional in ``tick_size * lot_size`` units, instants in microseconds), the price
collar and the session close, the parked stop orders (by side and stop price, triggered in
arrival order), the OCO groups, the expiry heap, the event sequence, and the step's records and
touched levels (turned into events by ``render``). The rules themselves are in
docs/matching-engine.md.

On the hot path, so compiled with the book and the engine: ``market.pxd`` makes ``Market`` a
final extension type whose fields the engine reads as C struct members.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from nexus_common.instruments import Instrument, InstrumentError
from nexus_common.money import (
    PRICE_PLACES,
    QUANTITY_PLACES,
    MoneyError,
    has_places,
    to_decimal,
)

from nexus_matching.book import NEW, PENDING, Level, OcoGroup, Order, OrderBook

if TYPE_CHECKING:
    from nexus_matching.config import EngineConfig

_CACHE_LIMIT: Final = 1 << 16
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


class Invalid(Exception):
    """A command fails validation (becomes a ``rejected`` / ``replace_rejected`` event)."""

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


def by_arrival(order: Order) -> int:
    """Sort key: an order's time priority."""
    return order.arrival


class Market:
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
            raise Invalid("invalid_price", f"{name}: {exc}") from None
        if price <= 0:
            raise Invalid("invalid_price", f"{name} must be positive")
        if not has_places(price, PRICE_PLACES):
            raise Invalid("price_off_tick", f"{name} needs at most {PRICE_PLACES} decimal places")
        try:
            ticks: int = self.instrument.price_to_ticks(price, name)
        except InstrumentError as exc:
            raise Invalid(exc.code, exc.message) from None
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
            raise Invalid("invalid_quantity", f"{name}: {exc}") from None
        if quantity <= 0:
            raise Invalid("invalid_quantity", f"{name} must be positive")
        if not has_places(quantity, QUANTITY_PLACES):
            raise Invalid(
                "quantity_off_lot", f"{name} needs at most {QUANTITY_PLACES} decimal places"
            )
        try:
            lots: int = self.instrument.quantity_to_lots(quantity, name)
        except InstrumentError as exc:
            raise Invalid(exc.code, exc.message) from None
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
            raise Invalid(
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
        found.sort(key=by_arrival)
        return found


__all__ = ["Invalid", "Market", "by_arrival", "micros_iso", "scaled_str", "ts_micros"]
