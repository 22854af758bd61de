"""The integer order book on its own: queues, levels, matching, cancel, state."""

from __future__ import annotations

import pytest
from nexus_matching.book import Order, OrderBook


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


def test_match_walks_levels_and_keeps_a_partly_filled_maker_at_the_front() -> None:
    # GIVEN asks 10x2, 10x3 (later), 11x5
    book = OrderBook()
    book.rest(limit("s1", False, 10, 2))
    book.rest(limit("s2", False, 10, 3))
    book.rest(limit("s3", False, 11, 5))
    # WHEN a buy for 6 up to 11 matches
    taker = limit("b", True, 11, 6)
    fills = book.match(taker, 11)
    # THEN s1 and s2 fill, s3 gives 1 and stays first at 11
    assert [(m.order_id, lots) for m, lots in fills] == [("s1", 2), ("s2", 3), ("s3", 1)]
    assert (taker.remaining, taker.filled, taker.notional) == (0, 6, 10 * 5 + 11 * 1)
    assert (fills[2][0].remaining, fills[2][0].filled, fills[2][0].notional) == (4, 1, 11)
    assert book.depth(5)["asks"] == [(11, 4, 1)]
    assert set(book.orders) == {"s3"}
    # AND a later order at 11 queues behind s3
    book.rest(limit("s4", False, 11, 1))
    assert queue(book, False, 11) == ["s3", "s4"]


def test_match_stops_at_the_limit_and_market_takes_everything() -> None:
    book = OrderBook()
    book.rest(limit("b1", True, 20, 1))
    book.rest(limit("b2", True, 18, 1))
    seller = limit("s", False, 19, 5)
    assert [(m.order_id, n) for m, n in book.match(seller, 19)] == [("b1", 1)]
    assert seller.remaining == 4
    market = Order("m", "acct", False, 0, 5, "ioc")
    assert [(m.order_id, n) for m, n in book.match(market, None)] == [("b2", 1)]
    assert (market.remaining, book.depth(5)) == (4, {"bids": [], "asks": []})


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


def test_state_round_trip_keeps_queue_order_and_counters() -> None:
    book = OrderBook()
    book.rest(limit("b1", True, 9, 2))
    book.rest(limit("b2", True, 9, 1))
    book.rest(limit("b3", True, 8, 1))
    book.rest(limit("s1", False, 11, 5))
    book.match(limit("x", True, 11, 2), 11)  # s1 partly filled
    state = book.to_state()
    assert state == {
        "bids": [
            ["b1", "acct", 9, 2, 0, 0, "gtc"],
            ["b2", "acct", 9, 1, 0, 0, "gtc"],
            ["b3", "acct", 8, 1, 0, 0, "gtc"],
        ],
        "asks": [["s1", "acct", 11, 3, 2, 22, "gtc"]],
    }
    assert OrderBook.from_state(state).to_state() == state


@pytest.mark.parametrize(
    "state",
    [
        {"bids": [["b", "a", 10, 1, 0, 0, "gtc"]], "asks": [["s", "a", 10, 1, 0, 0, "gtc"]]},
        {"bids": [["b", "a", 10, 0, 0, 0, "gtc"]], "asks": []},
        {"bids": [["b", "a", "10", 1, 0, 0, "gtc"]], "asks": []},
        {"bids": [["b", "a", 10, 1, 0, 0, "gtc"], ["b", "a", 9, 1, 0, 0, "gtc"]], "asks": []},
    ],
    ids=["crossed", "empty-order", "string-price", "duplicate-id"],
)
def test_from_state_refuses_bad_states(state: dict[str, list[list[str | int]]]) -> None:
    with pytest.raises(ValueError):
        OrderBook.from_state(state)
