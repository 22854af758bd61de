# cython: language_level=3, annotation_typing=False
"""The order book of one instrument, on integers only.

Prices are integer ticks and quantities integer lots (the engine converts at its boundary with
``nexus_common.instruments.Instrument``); nothing here knows about decimals, events or I/O. The
matching loop itself lives in the engine (it interleaves self-trade prevention, icebergs and OCO
groups with the fills); this module is the data structure.

Structure, chosen for speed:

* an ``Order`` is a ``__slots__`` object and also the node of an intrusive doubly linked list,
  so a price level is a FIFO queue with O(1) append, O(1) pop from the front and O(1) removal
  of any order (cancel);
* a ``BookSide`` maps a *key* to its ``Level`` and keeps the keys in a list sorted ascending,
  with the best level at the end: ``key = price`` for bids and ``key = -price`` for asks. The
  best level is therefore always ``keys[-1]``, removing it is ``list.pop()``, and a new level is
  placed with ``bisect.insort``. Since prices are positive, a key also tells the side (bids
  ``> 0``, asks ``< 0``), and sorting keys descending lists bids best first, then asks best first;
* ``OrderBook.orders`` indexes the resting orders by id, for O(1) cancel. It is an
  ``OrderIndex``: 64 dicts picked by the id's hash rather than one, because CPython rebuilds a
  dict's whole table when it grows or, under the constant churn of orders, compacts it; at a
  few hundred thousand resting orders one table pauses the engine for over 10 ms, a 64th of it
  for a fraction of a millisecond.

An order's open quantity is ``remaining + hidden``: ``remaining`` is the part shown in the book
(all of it, for an ordinary order), ``hidden`` the reserve of an iceberg order, which refreshes
the shown slice (``peak`` lots, at the back of the queue) each time it is used up. A level's
``qty`` counts shown lots only.

Price-time priority: the best price trades first; within a price, the order that arrived first
(an iceberg's refreshed slice counts as a new arrival). A trade happens at the resting (maker)
order's price.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator
from typing import Final

# A limit key below every real key: a taker without a limit crosses every level.
NO_LIMIT: Final = -(1 << 128)

# Order kinds.
LIMIT: Final = 0
MARKET: Final = 1
STOP: Final = 2
STOP_LIMIT: Final = 3
KIND_NAMES: Final = ("limit", "market", "stop", "stop_limit")

# Self-trade prevention modes (0: none).
STP_NONE: Final = 0
STP_CANCEL_NEWEST: Final = 1
STP_CANCEL_OLDEST: Final = 2
STP_CANCEL_BOTH: Final = 3
STP_DECREMENT: Final = 4
STP_NAMES: Final = (None, "cancel_newest", "cancel_oldest", "cancel_both", "decrement")

# Order states.
NEW: Final = 0
RESTING: Final = 1
PENDING: Final = 2  # an untriggered stop
DONE: Final = 3

# One order in a snapshot (see ``Order.to_row``).
OrderRow = list[str | int | None]


class Order:
    """An order on integers. Resting orders are linked into their price level's queue.

    ``quantity`` is the order's total (filled included; lowered by a replace, an OCO sibling's
    fill or a self-trade decrement); ``filled + remaining + hidden <= quantity``, with equality
    while the order is live. ``notional`` is the exact filled notional in units of
    ``tick_size * lot_size``: the sum of ``price_ticks * lots`` over the order's fills.
    ``price`` is 0 for a market or stop order (no limit). ``expire_at`` is in microseconds since
    the epoch, 0 for none. ``arrival`` orders stops and expiries deterministically.
    """

    __slots__ = (
        "account_id",
        "arrival",
        "expire_at",
        "filled",
        "group",
        "hidden",
        "is_buy",
        "kind",
        "level",
        "next",
        "notional",
        "order_id",
        "peak",
        "post_only",
        "prev",
        "price",
        "quantity",
        "remaining",
        "state",
        "stop_price",
        "stp",
        "tif",
    )

    order_id: str
    account_id: str
    is_buy: bool
    price: int
    remaining: int
    hidden: int
    peak: int
    filled: int
    notional: int
    quantity: int
    tif: str
    kind: int
    stop_price: int
    stp: int
    post_only: bool
    expire_at: int
    arrival: int
    state: int
    group: OcoGroup | None
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
        tif: str = "gtc",
        filled: int = 0,
        notional: int = 0,
        kind: int = LIMIT,
        stop_price: int = 0,
        stp: int = STP_NONE,
        peak: int = 0,
        post_only: bool = False,
        expire_at: int = 0,
        arrival: int = 0,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.is_buy = is_buy
        self.price = price
        self.remaining = remaining
        self.hidden = 0
        self.peak = peak
        self.filled = filled
        self.notional = notional
        self.quantity = filled + remaining
        self.tif = tif
        self.kind = kind
        self.stop_price = stop_price
        self.stp = stp
        self.post_only = post_only
        self.expire_at = expire_at
        self.arrival = arrival
        self.state = NEW
        self.group = None
        self.level = None
        self.prev = None
        self.next = None

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (
            f"Order({self.order_id!r}, {side}, {KIND_NAMES[self.kind]}, price={self.price}, "
            f"remaining={self.remaining}, hidden={self.hidden}, filled={self.filled})"
        )

    @property
    def open(self) -> int:
        return self.remaining + self.hidden

    def to_row(self) -> OrderRow:
        """``[order_id, account_id, side, kind, price, stop_price, quantity, remaining, hidden,
        peak, filled, notional, tif, stp, post_only, expire_at, arrival, group_id]``."""
        return [
            self.order_id,
            self.account_id,
            1 if self.is_buy else 0,
            self.kind,
            self.price,
            self.stop_price,
            self.quantity,
            self.remaining,
            self.hidden,
            self.peak,
            self.filled,
            self.notional,
            self.tif,
            self.stp,
            1 if self.post_only else 0,
            self.expire_at,
            self.arrival,
            None if self.group is None else self.group.group_id,
        ]

    @classmethod
    def from_row(cls, row: OrderRow) -> Order:
        """The inverse of ``to_row`` (group links are restored by the engine); ValueError when
        the row is malformed."""
        if not isinstance(row, list) or len(row) != 18:
            raise ValueError(f"malformed order row: {row!r}")
        (oid, acct, side, kind, price, stop, qty, rem, hidden, peak, filled, notional, tif, stp,
         post, expire, arrival, group) = row
        ints = (side, kind, price, stop, qty, rem, hidden, peak, filled, notional, stp, post, expire, arrival)
        if not (
            isinstance(oid, str)
            and isinstance(acct, str)
            and isinstance(tif, str)
            and (group is None or isinstance(group, str))
            and all(type(v) is int for v in ints)
        ):
            raise ValueError(f"malformed order row: {row!r}")
        assert type(price) is int and type(rem) is int and type(hidden) is int and type(filled) is int
        assert type(qty) is int and type(kind) is int and type(stop) is int and type(stp) is int
        assert type(peak) is int and type(notional) is int and type(expire) is int
        assert type(arrival) is int
        if not (
            kind in (LIMIT, MARKET, STOP, STOP_LIMIT)
            and 0 <= stp <= STP_DECREMENT
            and price >= 0
            and rem > 0
            and hidden >= 0
            and filled >= 0
            and qty == filled + rem + hidden
        ):
            raise ValueError(f"malformed order row: {row!r}")
        order = cls(
            oid, acct, side == 1, price, rem, tif, filled, notional,
            kind=kind, stop_price=stop, stp=stp, peak=peak, post_only=post == 1,
            expire_at=expire, arrival=arrival,
        )
        order.hidden = hidden
        order.quantity = qty
        return order


class OcoGroup:
    """Two legs (take-profit limit, stop-loss stop) sharing one quantity: every lot one leg
    fills is taken off the other."""

    __slots__ = ("group_id", "legs")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.legs: list[Order] = []

    def live(self) -> bool:
        """Has the group a leg that is still live?"""
        for leg in self.legs:
            if leg.state != DONE:
                return True
        return False

    def sibling(self, order: Order) -> Order | None:
        for leg in self.legs:
            if leg is not order and leg.state != DONE:
                return leg
        return None


ORDER_SHARDS: Final = 64
_SHARD_MASK: Final = ORDER_SHARDS - 1


class OrderIndex:
    """Resting orders by id (see the module doc): the subset of a ``dict`` the engine uses.

    Iteration (``values``, ``items``) follows the shards, not the insertion order: whoever needs
    an order sorts (the engine sorts by arrival)."""

    __slots__ = ("shards",)

    def __init__(self) -> None:
        self.shards: list[dict[str, Order]] = [{} for _ in range(ORDER_SHARDS)]

    def get(self, order_id: str) -> Order | None:
        return self.shards[hash(order_id) & _SHARD_MASK].get(order_id)

    def add(self, order: Order) -> None:
        order_id = order.order_id
        self.shards[hash(order_id) & _SHARD_MASK][order_id] = order

    def remove(self, order_id: str) -> None:
        del self.shards[hash(order_id) & _SHARD_MASK][order_id]

    def __getitem__(self, order_id: str) -> Order:
        return self.shards[hash(order_id) & _SHARD_MASK][order_id]

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.shards[hash(order_id) & _SHARD_MASK]

    def __len__(self) -> int:
        size = 0
        for shard in self.shards:
            size += len(shard)
        return size

    def __bool__(self) -> bool:
        for shard in self.shards:
            if shard:
                return True
        return False

    def values(self) -> list[Order]:
        found: list[Order] = []
        for shard in self.shards:
            found.extend(shard.values())
        return found

    def items(self) -> list[tuple[str, Order]]:
        found: list[tuple[str, Order]] = []
        for shard in self.shards:
            found.extend(shard.items())
        return found


class Level:
    """One price level: a FIFO queue of orders and its aggregates (shown lots, order count).

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
    """The resting limit orders of one symbol, on integers."""

    __slots__ = ("asks", "bids", "orders")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.orders = OrderIndex()  # resting orders by id

    # -- queries -----------------------------------------------------------------------------

    def side(self, is_buy: bool) -> BookSide:
        return self.bids if is_buy else self.asks

    def best_bid(self) -> int | None:
        keys = self.bids.keys
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        keys = self.asks.keys
        return -keys[-1] if keys else None

    def can_fill(self, is_buy: bool, limit: int | None, lots: int, account_id: str | None = None,
                 stp: int = STP_NONE) -> bool:
        """Could a taker on ``is_buy`` with ``limit`` (None: none) fill ``lots`` right now?

        Counts shown and hidden lots. With ``account_id``, meeting an order of that account
        that self-trade prevention would stop (``stp`` of the taker, or the maker's own) before
        ``lots`` are reached answers False: such an order cannot fill completely. An iceberg's
        hidden reserve shows again at the back of its level, behind every order queued there, so
        it counts only once the whole level's queue has been met."""
        opposite = self.asks if is_buy else self.bids
        limit_key = NO_LIMIT if limit is None else (-limit if is_buy else limit)
        levels = opposite.levels
        available = 0
        for key in reversed(opposite.keys):
            if key < limit_key:
                return False
            maker = levels[key].head
            reserve = 0
            while maker is not None:
                if account_id is not None and maker.account_id == account_id and (stp or maker.stp):
                    return False
                available += maker.remaining
                if available >= lots:
                    return True
                reserve += maker.hidden
                maker = maker.next
            available += reserve
            if available >= lots:
                return True
        return False

    def would_take(self, is_buy: bool, price: int) -> bool:
        """Would a limit order at ``price`` cross the opposite side?"""
        if is_buy:
            keys = self.asks.keys
            return bool(keys) and -keys[-1] <= price
        keys = self.bids.keys
        return bool(keys) and keys[-1] >= price

    def depth(self, depth: int) -> dict[str, list[tuple[int, int, int]]]:
        """Aggregated shown levels, best first: ``(price_ticks, qty_lots, orders)``."""
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
        self.orders.add(order)
        order.state = RESTING
        # BookSide.append, inlined: this is on the hot path.
        if order.is_buy:
            side = self.bids
            key = order.price
        else:
            side = self.asks
            key = -order.price
        levels = side.levels
        level = levels.get(key)
        if level is None:
            level = Level(key, order.price)
            levels[key] = level
            insort(side.keys, key)
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

    def cancel(self, order: Order) -> Level:
        """Remove a resting order; returns its level (aggregates already updated)."""
        order_id = order.order_id
        del self.orders.shards[hash(order_id) & _SHARD_MASK][order_id]  # OrderIndex.remove inline
        order.state = DONE
        return (self.bids if order.is_buy else self.asks).unlink(order)

    # -- snapshot ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, list[OrderRow]]:
        """Resting orders per side in priority order (best level first, FIFO within)."""
        state: dict[str, list[OrderRow]] = {}
        for name, book_side in (("bids", self.bids), ("asks", self.asks)):
            state[name] = [o.to_row() for level in book_side.iter_levels() for o in level.orders()]
        return state

    @classmethod
    def from_state(cls, state: dict[str, list[OrderRow]]) -> OrderBook:
        """Rebuild a book from ``to_state`` output; raises ValueError on a malformed state."""
        book = cls()
        for name, is_buy in (("bids", True), ("asks", False)):
            for row in state[name]:
                order = Order.from_row(row)
                if order.is_buy != is_buy or order.kind not in (LIMIT, STOP_LIMIT) or order.price <= 0:
                    raise ValueError(f"malformed resting order in snapshot: {row!r}")
                if order.order_id in book.orders:
                    raise ValueError(f"duplicate order id in snapshot: {order.order_id!r}")
                book.rest(order)
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            raise ValueError("snapshot book is crossed")
        return book
