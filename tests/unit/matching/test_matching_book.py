"""The integer order book on its own: queues, levels, matching, cancel, state."""

from __future__ import annotations

import pytest
from nexus_matching.book import ORDER_SHARDS, Order, OrderBook, OrderIndex
from nexus_matching.seen import IdSet


def limit(order_id: str, is_buy: bool, price: int, lots: int) -> Order:
    return Order(order_id, "acct", is_buy, price, lots, "gtc")


def queue(book: OrderBook, is_buy: bool, price: int) -> list[str]:
    level = book.side(is_buy).level_at(price)
    return [] if level is None else [o.order_id for o in level.orders()]


def test_levels_are_kept_best_first_on_both_sides() -> None:
    # GIVEN bids and asks added in scrambled price order
    book = OrderBook()
    for i, price in enumerate((100, 102, 101, 99)):
        book.rest(limit(f"b{i}", True, price, 1))
    for i, price in enumerate((105, 103, 104, 110)):
        book.rest(limit(f"s{i}", False, price, 1))
    # THEN depth lists bids descending and asks ascending, and the best prices are right
    depth = book.depth(10)
    assert [p for p, _, _ in depth["bids"]] == [102, 101, 100, 99]
    assert [p for p, _, _ in depth["asks"]] == [103, 104, 105, 110]
    assert (book.best_bid(), book.best_ask()) == (102, 103)


@pytest.mark.parametrize("victim", ["o0", "o1", "o2"])
def test_cancel_unlinks_head_middle_or_tail(victim: str) -> None:
    # GIVEN three orders queued at one price
    book = OrderBook()
    for i in range(3):
        book.rest(limit(f"o{i}", True, 50, i + 1))
    # WHEN one is cancelled
    level = book.cancel(book.orders[victim])
    # THEN the others keep their order and the aggregates drop by its quantity
    expected = [o for o in ("o0", "o1", "o2") if o != victim]
    assert queue(book, True, 50) == expected
    assert (level.qty, level.count) == (6 - (int(victim[1]) + 1), 2)
    assert victim not in book.orders


def test_cancelling_the_last_order_drops_the_level() -> None:
    book = OrderBook()
    book.rest(limit("a", False, 10, 1))
    book.rest(limit("b", False, 11, 1))
    level = book.cancel(book.orders["a"])
    assert (level.qty, level.count) == (0, 0)
    assert book.best_ask() == 11
    assert book.asks.level_at(10) is None
    # the remaining order can still be appended to and cancelled
    book.rest(limit("c", False, 11, 2))
    assert queue(book, False, 11) == ["b", "c"]


def test_can_fill_counts_only_liquidity_within_the_limit() -> None:
    book = OrderBook()
    book.rest(limit("s1", False, 10, 3))
    book.rest(limit("s2", False, 12, 3))
    assert book.can_fill(True, 10, 3)
    assert not book.can_fill(True, 11, 4)
    assert book.can_fill(True, 12, 6)
    assert not book.can_fill(True, 12, 7)
    assert book.can_fill(True, None, 6)
    assert not book.can_fill(False, None, 1)


def test_can_fill_counts_hidden_lots_and_stops_at_a_self_trade() -> None:
    book = OrderBook()
    iceberg = limit("s1", False, 10, 2)
    iceberg.hidden = 8
    book.rest(iceberg)
    other = Order("s2", "me", False, 10, 3, "gtc", stp=1)
    book.rest(other)
    assert book.can_fill(True, 10, 13)
    assert not book.can_fill(True, 10, 14)
    # an order of the same account that self-trade prevention would stop ends the count; the
    # iceberg's reserve would show again behind that order, so only its shown lots count
    assert not book.can_fill(True, 10, 3, "me", 0)
    assert book.can_fill(True, 10, 2, "me", 0)
    assert book.can_fill(True, 10, 13, "you", 0)


def test_would_take_compares_with_the_opposite_best() -> None:
    book = OrderBook()
    assert not book.would_take(True, 100)
    book.rest(limit("s1", False, 10, 1))
    book.rest(limit("b1", True, 8, 1))
    assert book.would_take(True, 10) and not book.would_take(True, 9)
    assert book.would_take(False, 8) and not book.would_take(False, 9)


def test_state_round_trip_keeps_queue_order_and_counters() -> None:
    book = OrderBook()
    book.rest(limit("b1", True, 9, 2))
    book.rest(limit("b2", True, 9, 1))
    book.rest(limit("b3", True, 8, 1))
    partly = Order("s1", "acct", False, 11, 3, "gtc", 2, 22, peak=1)
    partly.hidden = 2
    partly.remaining = 1
    partly.quantity = 5
    book.rest(partly)
    state = book.to_state()
    assert [row[0] for row in state["bids"]] == ["b1", "b2", "b3"]
    assert state["asks"] == [
        ["s1", "acct", 0, 0, 11, 0, 5, 1, 2, 1, 2, 22, "gtc", 0, 0, 0, 0, None],
    ]
    assert OrderBook.from_state(state).to_state() == state


def _row(order_id: str, is_buy: bool, price: object, lots: int) -> list[object]:
    return [order_id, "a", 1 if is_buy else 0, 0, price, 0, lots, lots, 0, 0, 0, 0, "gtc", 0, 0, 0, 0, None]


@pytest.mark.parametrize(
    "state",
    [
        {"bids": [_row("b", True, 10, 1)], "asks": [_row("s", False, 10, 1)]},
        {"bids": [_row("b", True, 10, 0)], "asks": []},
        {"bids": [_row("b", True, "10", 1)], "asks": []},
        {"bids": [_row("b", True, 10, 1), _row("b", True, 9, 1)], "asks": []},
        {"bids": [_row("b", False, 10, 1)], "asks": []},
        {"bids": [["b", "a", 10, 1, 0, 0, "gtc"]], "asks": []},
    ],
    ids=["crossed", "empty-order", "string-price", "duplicate-id", "wrong-side", "old-format"],
)
def test_from_state_refuses_bad_states(state: dict[str, list[list[str | int | None]]]) -> None:
    with pytest.raises(ValueError):
        OrderBook.from_state(state)


def test_order_index_behaves_as_one_dict_across_its_shards() -> None:
    # GIVEN many more orders than shards, some removed again
    index = OrderIndex()
    orders = {f"o{i}": limit(f"o{i}", True, 100, 1) for i in range(ORDER_SHARDS * 20)}
    assert not index and len(index) == 0
    for order in orders.values():
        index.add(order)
    for order_id in list(orders)[::3]:
        index.remove(order_id)
        del orders[order_id]
    # THEN lookups, membership, size and iteration agree with a plain dict
    assert index and len(index) == len(orders)
    assert all(index.get(order_id) is order and index[order_id] is order for order_id, order in orders.items())
    assert index.get("o0") is None and "o0" not in index and "o1" in index
    assert sorted(o.order_id for o in index.values()) == sorted(orders)
    assert dict(index.items()) == orders
    assert sum(len(shard) for shard in index.shards) == len(orders)
    assert sum(1 for shard in index.shards if shard) > ORDER_SHARDS // 2  # spread over the shards
    with pytest.raises(KeyError):
        index.remove("o0")


def test_id_set_counts_distinct_ids_across_its_shards() -> None:
    # GIVEN ids added twice, some of them at construction
    ids = IdSet(["a", "b", "a"])
    for i in range(500):
        ids.add(f"id{i}")
        ids.add(f"id{i}")
    # THEN the size counts each id once, and membership and iteration see every id
    assert len(ids) == ids.size == 502
    assert ids.contains("a") and "id499" in ids and not ids.contains("c") and "c" not in ids
    assert sorted(ids) == sorted(["a", "b", *(f"id{i}" for i in range(500))])
