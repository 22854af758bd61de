"""The order book of one instrument, on integers only.

Prices are integer ticks and quantities integer lots (the engine converts at its boundary with
``nexus_common.instruments.Instrument``); nothing here knows about decimals, events or I/O.

Structure, chosen for speed:

* an ``Order`` is a ``__slots__`` object and also the node of an intrusive doubly linked list,
  so a price level is a FIFO queue with O(1) append, O(1) pop from the front and O(1) removal
  of any order (cancel);
* a ``BookSide`` maps a *key* to its ``Level`` and keeps the keys in a list sorted ascending,
  with the best level at the end: ``key = price`` for bids and ``key = -price`` for asks. The
  best level is therefore always ``keys[-1]``, removing it is ``list.pop()``, and a new level is
  placed with ``bisect.insort``;
* ``OrderBook.orders`` indexes the resting orders by id, for O(1) cancel.

Price-time priority: the best price trades first; within a price, the order that arrived first.
A trade happens at the resting (maker) order's price.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Final

# A limit key below every real key: a market order crosses every level.
_NO_LIMIT: Final = -(1 << 128)

# One fill of a match: the maker order (its counters already updated) and the lots traded.
Fill = tuple["Order", int]

# One order in a snapshot: [order_id, account_id, price_ticks, remaining_lots, filled_lots,
# filled_notional, time_in_force]. Side and queue position are given by where the row sits.
OrderRow = list[str | int]


class Order:
    """An order on integers. Resting orders are linked into their price level's queue.

    ``notional`` is the exact filled notional in units of ``tick_size * lot_size``: the sum of
    ``price_ticks * lots`` over the order's fills.
    """

    __slots__ = (
        "account_id",
        "filled",
        "is_buy",
        "level",
        "next",
        "notional",
        "order_id",
        "prev",
        "price",
        "remaining",
        "tif",
    )

    order_id: str
    account_id: str
    is_buy: bool
    price: int
    remaining: int
    filled: int
    notional: int
    tif: str
    level: Level | None
    prev: Order | None
    next: Order | None

    def __init__(
        self,
        order_id: str,
        account_id: str,
        is_buy: bool,
        price: int,
        remaining: int,
        tif: str,
        filled: int = 0,
        notional: int = 0,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.is_buy = is_buy
        self.price = price  # ticks; 0 for a market order (never rests)
        self.remaining = remaining  # open lots
        self.filled = filled  # filled lots
        self.notional = notional
        self.tif = tif
        self.level = None
        self.prev = None
        self.next = None

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (
            f"Order({self.order_id!r}, {side}, price={self.price}, "
            f"remaining={self.remaining}, filled={self.filled})"
        )


class Level:
    """One price level: a FIFO queue of orders and its aggregates (open lots, order count).

    After the level empties and leaves the book the object keeps ``qty == 0`` and
    ``count == 0``, which is exactly the book delta to publish for it.
    """

    __slots__ = ("count", "head", "key", "price", "qty", "tail")

    def __init__(self, key: int, price: int) -> None:
        self.key = key
        self.price = price
        self.qty = 0
        self.count = 0
        self.head: Order | None = None
        self.tail: Order | None = None

    def orders(self) -> Iterator[Order]:
        """The level's orders in time priority."""
        order = self.head
        while order is not None:
            yield order
            order = order.next


class BookSide:
    """All resting orders of one side, by price level."""

    __slots__ = ("is_bid", "keys", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []  # sorted ascending; the best level is keys[-1]

    def key_of(self, price: int) -> int:
        return price if self.is_bid else -price

    def best(self) -> Level | None:
        return self.levels[self.keys[-1]] if self.keys else None

    def level_at(self, price: int) -> Level | None:
        return self.levels.get(price if self.is_bid else -price)

    def append(self, order: Order) -> Level:
        """Queue ``order`` at the back of its price level, creating the level if needed."""
        key = order.price if self.is_bid else -order.price
        level = self.levels.get(key)
        if level is None:
            level = Level(key, order.price)
            self.levels[key] = level
            insort(self.keys, key)
        tail = level.tail
        order.prev = tail
        order.next = None
        if tail is None:
            level.head = order
        else:
            tail.next = order
        level.tail = order
        level.qty += order.remaining
        level.count += 1
        order.level = level
        return level

    def unlink(self, order: Order) -> Level:
        """Take a resting ``order`` out of its level (dropping the level if it empties)."""
        level = order.level
        assert level is not None, "order is not resting"
        prev, nxt = order.prev, order.next
        if prev is None:
            level.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev = prev
        order.prev = order.next = None
        level.qty -= order.remaining
        level.count -= 1
        if level.count == 0:
            self._drop(level.key)
        return level

    def _drop(self, key: int) -> None:
        keys = self.keys
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]
        del self.levels[key]

    def iter_levels(self) -> Iterator[Level]:
        """Levels from the best price to the worst."""
        levels = self.levels
        for key in reversed(self.keys):
            yield levels[key]


class OrderBook:
    """The book of one symbol: resting limit orders, matching and cancel, on integers."""

    __slots__ = ("asks", "bids", "orders")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.orders: dict[str, Order] = {}  # resting orders by id

    # -- queries -----------------------------------------------------------------------------

    def side(self, is_buy: bool) -> BookSide:
        return self.bids if is_buy else self.asks

    def best_bid(self) -> int | None:
        keys = self.bids.keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        keys = self.asks.keys
        return -keys[-1] if keys else None

    def can_fill(self, is_buy: bool, limit: int | None, lots: int) -> bool:
        """Could a taker on ``is_buy`` with ``limit`` (None: market) fill ``lots`` right now?"""
        opposite = self.asks if is_buy else self.bids
        limit_key = _NO_LIMIT if limit is None else (-limit if is_buy else limit)
        levels = opposite.levels
        available = 0
        for key in reversed(opposite.keys):
            if key < limit_key:
                return False
            available += levels[key].qty
            if available >= lots:
                return True
        return False

    def depth(self, depth: int) -> dict[str, list[tuple[int, int, int]]]:
        """Aggregated levels, best first: ``(price_ticks, qty_lots, orders)``."""
        result: dict[str, list[tuple[int, int, int]]] = {}
        for name, book_side in (("bids", self.bids), ("asks", self.asks)):
            rows: list[tuple[int, int, int]] = []
            for level in book_side.iter_levels():
                if len(rows) >= depth:
                    break
                rows.append((level.price, level.qty, level.count))
            result[name] = rows
        return result

    # -- changes -----------------------------------------------------------------------------

    def rest(self, order: Order) -> Level:
        """Add a limit order to the book (behind the orders already at its price)."""
        self.orders[order.order_id] = order
        return (self.bids if order.is_buy else self.asks).append(order)

    def cancel(self, order: Order) -> Level:
        """Remove a resting order; returns its level (aggregates already updated)."""
        del self.orders[order.order_id]
        return (self.bids if order.is_buy else self.asks).unlink(order)

    def match(self, taker: Order, limit: int | None) -> list[Fill]:
        """Match ``taker`` against the opposite side up to ``limit`` ticks (None: market).

        Updates the counters of the taker and of every maker it meets, takes fully filled makers
        out of the book, and returns the fills in matching order. Each maker appears at most
        once, so its counters after the call are its state right after its fill. The taker is
        not rested here: the caller decides by time in force.
        """
        opposite = self.asks if taker.is_buy else self.bids
        keys = opposite.keys
        levels = opposite.levels
        orders = self.orders
        if limit is None:
            limit_key = _NO_LIMIT
        else:
            limit_key = -limit if taker.is_buy else limit
        fills: list[Fill] = []
        remaining = taker.remaining
        notional = 0
        while remaining and keys:
            key = keys[-1]
            if key < limit_key:
                break
            level = levels[key]
            price = level.price
            maker = level.head
            while maker is not None:
                lots = maker.remaining if maker.remaining <= remaining else remaining
                remaining -= lots
                notional += price * lots
                maker.remaining -= lots
                maker.filled += lots
                maker.notional += price * lots
                level.qty -= lots
                fills.append((maker, lots))
                if maker.remaining:
                    break  # the taker is done; this maker keeps its place at the front
                del orders[maker.order_id]
                level.count -= 1
                nxt = maker.next
                maker.next = None
                maker = nxt
                if not remaining:
                    break
            if maker is None:
                # The level is used up; it is the best one, so it is the last key.
                level.head = level.tail = None
                keys.pop()
                del levels[key]
            else:
                maker.prev = None
                level.head = maker
        taker.filled += taker.remaining - remaining
        taker.notional += notional
        taker.remaining = remaining
        return fills

    # -- snapshot ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, list[OrderRow]]:
        """Resting orders per side in priority order (best level first, FIFO within)."""
        state: dict[str, list[OrderRow]] = {}
        for name, book_side in (("bids", self.bids), ("asks", self.asks)):
            rows: list[OrderRow] = []
            for level in book_side.iter_levels():
                for o in level.orders():
                    rows.append(
                        [
                            o.order_id,
                            o.account_id,
                            o.price,
                            o.remaining,
                            o.filled,
                            o.notional,
                            o.tif,
                        ]
                    )
            state[name] = rows
        return state

    @classmethod
    def from_state(cls, state: dict[str, list[OrderRow]]) -> OrderBook:
        """Rebuild a book from ``to_state`` output; raises ValueError on a malformed state."""
        book = cls()
        for name, is_buy in (("bids", True), ("asks", False)):
            for row in state[name]:
                order_id, account_id, price, remaining, filled, notional, tif = row
                if not (
                    isinstance(order_id, str)
                    and isinstance(account_id, str)
                    and isinstance(tif, str)
                    and type(price) is int
                    and type(remaining) is int
                    and type(filled) is int
                    and type(notional) is int
                    and price > 0
                    and remaining > 0
                    and filled >= 0
                ):
                    raise ValueError(f"malformed order row in snapshot: {row!r}")
                if order_id in book.orders:
                    raise ValueError(f"duplicate order id in snapshot: {order_id!r}")
                book.rest(
                    Order(order_id, account_id, is_buy, price, remaining, tif, filled, notional)
                )
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            raise ValueError("snapshot book is crossed")
        return book
