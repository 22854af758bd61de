"""The market maker: quotes skewed by inventory within its limits (pure), its P&L (exact,
idempotent per fill), and its process on the real pieces: the orders service's code on the
template's tables (moto) for the internal venue, the simulated venues in a real Redis, its
configuration and state in its table. Quotes are kept while nothing moves, a fill on a simulated
venue reaches the P&L, a halt or the kill switch pulls every quote, and stop pulls them too."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures

# The market maker is a container's package (containers/marketmaker); an editable install made
# before it existed does not map it yet.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "containers" / "marketmaker"))

from nexus_marketmaker.config import MarketMakerConfig
from nexus_marketmaker.quoting import Pnl, clear_of_book, make_quotes, reservation_price

D = Decimal
TICK, LOT = D("0.01"), D("1")
NOW = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)


def config(**changes: Any) -> MarketMakerConfig:
    base: dict[str, Any] = {"account_id": "acc_mm", "symbols": ["MSFT"], "venues": ["NexusTrade", "Alpha", "Beta"],
                            "reference_prices": {"MSFT": "300.00"}, "half_spread_ticks": 2, "size": "100",
                            "levels": 2, "max_inventory": "1000", "skew_ticks": 4}
    return MarketMakerConfig.model_validate({**base, **changes})


def test_flat_quotes_are_symmetric_around_the_mid_on_the_tick() -> None:
    quotes = make_quotes(D("300.00"), TICK, LOT, D(0), config(), "Alpha")
    assert [(q.side, q.price, q.size) for q in quotes] == [
        ("buy", D("299.98"), D(100)), ("sell", D("300.02"), D(100)),
        ("buy", D("299.97"), D(100)), ("sell", D("300.03"), D(100)),
    ]


def test_a_long_inventory_skews_both_sides_down_and_the_limit_stops_the_bid() -> None:
    # GIVEN long half the limit: the reservation price moves 2 of the 4 skew ticks down
    assert reservation_price(D("300.00"), TICK, D(500), config()) == D("299.98")
    quotes = make_quotes(D("300.00"), TICK, LOT, D(500), config(), "Alpha")
    assert (quotes[0].price, quotes[1].price) == (D("299.96"), D("300.00"))
    # WHEN at the limit THEN no bid at all, the asks stay
    at_limit = make_quotes(D("300.00"), TICK, LOT, D(1000), config(), "Alpha")
    assert {q.side for q in at_limit} == {"sell"}
    # AND close to the limit the bids are cut to what is left of it
    near = make_quotes(D("300.00"), TICK, LOT, D(950), config(), "Alpha")
    assert sum(q.size for q in near if q.side == "buy") == D(50)


def test_a_side_that_would_take_moves_clear_of_the_book_as_a_whole() -> None:
    quotes = make_quotes(D("300.00"), TICK, LOT, D(0), config(), "Alpha")  # 299.98/299.97 and 300.02/300.03

    def prices(moved: list[Any]) -> list[tuple[str, Decimal]]:
        return [(q.side, q.price) for q in moved]

    # GIVEN others' bid at 300.05, above the asks THEN the asks move to one tick above it, their
    # spacing and sizes kept; the bids stay
    moved = clear_of_book(quotes, D("300.05"), D("300.10"), TICK)
    assert prices(moved) == [("buy", D("299.98")), ("sell", D("300.06")), ("buy", D("299.97")), ("sell", D("300.07"))]
    assert [q.size for q in moved] == [q.size for q in quotes]
    # AND an ask at exactly the best bid would take too; an empty side moves nothing
    asks = prices(clear_of_book(quotes, D("300.02"), None, TICK))[1::2]
    assert asks == [("sell", D("300.03")), ("sell", D("300.04"))]
    bids = prices(clear_of_book(quotes, None, D("299.95"), TICK))[0::2]
    assert bids == [("buy", D("299.94")), ("buy", D("299.93"))]
    # AND quotes inside the book, or no book at all, are left as they are
    assert clear_of_book(quotes, D("299.99"), D("300.01"), TICK) == quotes
    assert clear_of_book(quotes, None, None, TICK) == quotes
    # AND a bid pushed to zero or below is not quoted
    low = make_quotes(D("0.05"), TICK, LOT, D(0), config(), "Alpha")
    assert [p for p in prices(clear_of_book(low, None, D("0.02"), TICK)) if p[0] == "buy"] == [("buy", D("0.01"))]
    assert {q.side for q in clear_of_book(low, None, D("0.01"), TICK)} == {"sell"}


def test_bad_quoting_input_is_refused() -> None:
    with pytest.raises(ValueError):
        make_quotes(D(0), TICK, LOT, D(0), config(), "Alpha")
    with pytest.raises(ValueError):
        config(half_spread_ticks=0)
    with pytest.raises(ValueError):
        config(reference_prices={"MSFT": "-1"})


def test_pnl_realizes_on_the_closed_part_counts_fees_and_applies_a_fill_once() -> None:
    pnl = Pnl()
    assert pnl.apply("f1", "buy", D("100.00"), D(100), D("-0.20"))  # rebate received
    assert not pnl.apply("f1", "buy", D("100.00"), D(100), D("-0.20"))
    pnl.apply("f2", "buy", D("102.00"), D(100), D("-0.20"))
    pnl.apply("f3", "sell", D("103.00"), D(150), D("0.45"))
    assert pnl.position == D(50)
    assert pnl.realized == D("300.00")  # 150 closed at 103 against the 101 average
    assert pnl.fees == D("0.05")
    assert pnl.unrealized(D("104.00")) == D("150.00")
    assert pnl.total(D("104.00")) == D("449.95")
    # a sell that flips the position opens the rest at its price
    pnl.apply("f4", "sell", D("105.00"), D(80), D(0))
    assert (pnl.position, pnl.cost) == (D(-30), D("-3150.00"))
    assert Pnl.from_dict(pnl.to_dict()) == pnl


@pytest.fixture
def maker(aws: Any, redis_db: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811 - fixture
          request: pytest.FixtureRequest) -> Any:
    """GIVEN the platform's tables (the market maker's container environment from the template),
    MSFT listed, a funded market-maker account, the internal venue and two simulated ones, and
    the market maker built as its process builds it (one level a side)."""
    import boto3
    from nexus_common.instrument_store import DynamoInstruments
    from nexus_common.instruments import Instrument
    from nexus_common.settings import load_settings
    from nexus_marketmaker.main import MarketMakerSettings, build
    from nexus_routing.repo import DynamoVenues
    from nexus_routing.venues import Venue

    container = next(c for c in aws.platform.containers if c.name == "marketmaker")
    for key, value in container.environment.items():
        monkeypatch.setenv(key, value)
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(
        [Instrument(symbol="MSFT", tick_size=TICK, lot_size=LOT)])
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AccountsTable")).put_item(
        Item={"account_id": "acc_mm", "name": "mm", "cash": D("10000000.00"), "currency": "USD", "status": "active"})
    venues = DynamoVenues(aws.table_name("VenuesTable"))
    venues.put(Venue(name="NexusTrade", mic="NXTR", kind="internal"))
    venues.put(Venue(name="Alpha", mic="XALP", kind="simulated", fees={"maker_rebate": "0.002"}))
    venues.put(Venue(name="Beta", mic="XBET", kind="simulated"))
    settings = load_settings(MarketMakerSettings)
    mm = build(settings, config(levels=1, **getattr(request, "param", {})))
    mm.start()
    return mm


def external_books(mm: Any) -> dict[str, Any]:
    return mm.external.books(["Alpha", "Beta"], "MSFT")


def internal_orders(mm: Any) -> list[Any]:
    return [mm.internal.service.get("acc_mm", q.order_id) for q in mm.quotes.values() if q.venue == "NexusTrade"]


def test_it_quotes_every_venue_and_keeps_its_quotes_while_nothing_moves(maker: Any) -> None:
    # WHEN it steps twice with nothing happening
    maker.step()
    first = dict(maker.quotes)
    maker.step()
    # THEN each venue has one bid at 299.98 and one ask at 300.02, the same orders both times
    assert set(maker.quotes) == set(first) and len(first) == 6
    for book in external_books(maker).values():
        assert (book.bids[0].price, book.asks[0].price) == (D("299.98"), D("300.02"))
    orders = internal_orders(maker)
    assert sorted((o.side, o.price, o.quantity, o.status) for o in orders) == [
        ("buy", D("299.98"), D(100), "pending_new"), ("sell", D("300.02"), D(100), "pending_new")]


def test_a_step_reads_each_symbols_last_trade_once_and_its_internal_quotes_in_one_go(maker: Any) -> None:
    # GIVEN the market maker's real reads, counted
    reads: list[str] = []
    last_trade, progress = maker.market.last_trade, maker.internal.progress

    def counted_last_trade(symbol: str) -> Any:
        reads.append(f"last_trade {symbol}")
        return last_trade(symbol)

    def counted_progress(order_ids: list[str]) -> Any:
        reads.append(f"progress {len(order_ids)}")
        return progress(order_ids)

    levels = maker.market.levels

    def counted_levels(symbol: str, side: str) -> Any:
        reads.append(f"levels {symbol} {side}")
        return levels(symbol, side)

    maker.market.last_trade, maker.internal.progress = counted_last_trade, counted_progress
    maker.market.levels = counted_levels
    # WHEN it steps twice over three venues
    maker.step()
    maker.step()
    # THEN each step read MSFT's last trade once for all venues, and the second step read its two
    # live internal quotes in one go (the first had none); the internal book's levels were read
    # only by the first, which had quotes to place there
    assert reads == ["last_trade MSFT", "levels MSFT buy", "levels MSFT sell", "progress 2", "last_trade MSFT"]
    orders = internal_orders(maker)
    assert sorted((o.side, o.price) for o in orders) == [("buy", D("299.98")), ("sell", D("300.02"))]


def test_a_fill_on_a_simulated_venue_reaches_the_pnl_and_the_quotes_skew(maker: Any) -> None:
    from nexus_routing.model import ChildOrder, Side

    maker.step()
    alpha = next(v for v in maker.market.venues() if v.name == "Alpha")
    # GIVEN a client buys 100 on Alpha, taking the market maker's ask
    with maker.external.open([alpha], "acc_client") as live:
        report = live["Alpha"].submit(ChildOrder("client-1", "MSFT", Side.BUY, D(100), D("300.02"), "ioc"))
    assert report.status.value == "filled"
    # WHEN it steps
    maker.step()
    # THEN it is short 100 at 300.02, with Alpha's rebate, and its state says so
    pnl = maker.pnl["MSFT"]
    assert (pnl.position, pnl.cash, pnl.fees) == (D(-100), D("30002.00"), D("-0.200"))
    state = maker.store.load()
    assert state["pnl"]["MSFT"]["position"] == "-100"
    # AND short 100 of 1000 skews the quotes up by round(0.4) = 0 ticks: unchanged on Beta; Alpha's
    # ask is quoted again
    assert external_books(maker)["Alpha"].asks[0].price == D("300.02")
    # the same fill is not counted twice
    maker.step()
    assert maker.pnl["MSFT"].position == D(-100)


def test_a_halt_and_the_kill_switch_pull_every_quote_and_stop_pulls_them_too(aws: Any, maker: Any) -> None:
    import boto3
    from nexus_common.instrument_store import DynamoInstruments

    maker.market.instruments = DynamoInstruments(aws.table_name("InstrumentsTable"))  # no cache: no waiting
    maker.step()
    instruments = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("InstrumentsTable"))
    accounts = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AccountsTable"))
    # WHEN MSFT is halted
    instruments.update_item(Key={"symbol": "MSFT"}, UpdateExpression="SET #s = :h",
                            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":h": "halted"})
    maker.step()
    # THEN the simulated books are empty and the internal quotes have their cancels requested
    assert all(not b.bids and not b.asks for b in external_books(maker).values())
    assert all(o.cancel_requested for o in internal_orders(maker))
    # WHEN trading resumes THEN it quotes again; WHEN the kill switch is on THEN nothing again
    instruments.update_item(Key={"symbol": "MSFT"}, UpdateExpression="SET #s = :a",
                            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":a": "active"})
    maker.step()
    assert all(b.bids and b.asks for b in external_books(maker).values())
    accounts.update_item(Key={"account_id": "acc_mm"}, UpdateExpression="SET trading_enabled = :f",
                         ExpressionAttributeValues={":f": False})
    maker.step()
    assert all(not b.bids and not b.asks for b in external_books(maker).values())
    # AND stop leaves no quote either (trading back on, then stopped)
    accounts.update_item(Key={"account_id": "acc_mm"}, UpdateExpression="SET trading_enabled = :t",
                         ExpressionAttributeValues={":t": True})
    maker.step()
    maker.stop()
    assert all(not b.bids and not b.asks for b in external_books(maker).values())


def worst_case(mm: Any, side: str) -> Decimal:
    """The inventory if every live quote of that side filled."""
    sign = 1 if side == "buy" else -1
    return mm.pnl["MSFT"].position + sign * sum((q.size - q.filled for q in mm.quotes.values() if q.side == side), D(0))


@pytest.mark.parametrize("maker", [{"max_inventory": "250"}], indirect=True)
def test_the_inventory_limit_is_shared_by_the_venues_even_if_every_quote_fills(maker: Any) -> None:
    from nexus_routing.model import ChildOrder, Side

    # GIVEN a limit of 250 shares and three venues quoting 100 a side each
    # WHEN it steps
    maker.step()
    # THEN the bids of all venues together are 250 (100, 100 and the 50 left), the asks too:
    # every quote filling would take the inventory exactly to the limit, never past it
    bids = sorted(q.size for q in maker.quotes.values() if q.side == "buy")
    assert bids == [D(50), D(100), D(100)]
    assert worst_case(maker, "buy") == D(250) and worst_case(maker, "sell") == D(-250)
    # AND nothing changes on the next step (the shared room counts each venue's own quotes once)
    before = dict(maker.quotes)
    maker.step()
    assert set(maker.quotes) == set(before)
    # WHEN a client sells into Alpha's bid and it steps twice
    alpha = next(v for v in maker.market.venues() if v.name == "Alpha")
    alpha_bid = next(q for q in maker.quotes.values() if q.venue == "Alpha" and q.side == "buy")
    with maker.external.open([alpha], "acc_client") as live:
        report = live["Alpha"].submit(ChildOrder("client-2", "MSFT", Side.SELL, alpha_bid.size - alpha_bid.filled,
                                                 alpha_bid.price, "ioc"))
    assert report.status.value == "filled"
    maker.step()
    maker.step()
    # THEN it is long what it bought and the bids still left cannot take it past the limit
    assert maker.pnl["MSFT"].position == alpha_bid.size
    assert worst_case(maker, "buy") <= D(250) and worst_case(maker, "sell") >= D(-250)


def test_a_step_whose_venue_lock_ran_out_forgets_its_quotes_and_the_next_step_quotes_again(
        maker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_common.errors import Unavailable
    from nexus_routing import venue_state

    # GIVEN the simulated venues' locks change hands while the market maker saves its first quotes
    dump = venue_state.dump

    def dump_then_steal(venue: Any) -> Any:
        maker.external.redis.set(f"{maker.external.prefix}:{venue.name}:lock", "someone-else")
        return dump(venue)

    monkeypatch.setattr(venue_state, "dump", dump_then_steal)
    # WHEN it steps THEN the step fails as retryable, nothing is on the simulated books, and it
    # does not believe it has quotes there
    with pytest.raises(Unavailable) as caught:
        maker.step()
    assert caught.value.code == "venue_lock_lost"
    assert all(not b.bids and not b.asks for b in external_books(maker).values())
    assert {q.venue for q in maker.quotes.values()} == {"NexusTrade"}
    # WHEN the other holder is done (its locks released) and it steps again
    monkeypatch.setattr(venue_state, "dump", dump)
    for name in ("Alpha", "Beta"):
        maker.external.redis.delete(f"{maker.external.prefix}:{name}:lock")
    maker.step()
    # THEN it quotes every venue, with no fill invented from the lost quotes
    assert all(b.bids and b.asks for b in external_books(maker).values())
    assert (maker.pnl["MSFT"].position, maker.pnl["MSFT"].fills) == (D(0), 0)


def test_a_restart_cancels_the_quotes_placed_after_the_last_saved_state(maker: Any) -> None:
    import json

    import boto3
    from nexus_common.settings import load_settings
    from nexus_marketmaker.main import MarketMakerSettings, build

    # GIVEN a run that quoted every venue and crashed before its state recorded those quotes
    stale = maker.store.load()
    maker.step()
    assert all(b.bids and b.asks for b in external_books(maker).values())
    maker.store.save(stale)
    # WHEN a new process starts
    restarted = build(load_settings(MarketMakerSettings), config(levels=1))
    restarted.start()
    # THEN the simulated venues hold no quote of the account any more
    assert all(not b.bids and not b.asks for b in external_books(restarted).values())
    # AND the internal venue got the orders service's mass cancel for the account in MSFT
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    name = restarted.internal.service.commands.stream_name
    commands = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        commands.extend(json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=it, Limit=1000)["Records"])
    assert any(c["type"] == "mass_cancel" and c["account_id"] == "acc_mm" and c["symbol"] == "MSFT" for c in commands)
    # AND it quotes afresh on its next step, with no fill invented
    restarted.step()
    assert all(b.bids and b.asks for b in external_books(restarted).values())
    assert restarted.pnl["MSFT"].position == D(0)


def live_internal(mm: Any) -> list[tuple[str, Decimal]]:
    """The internal quotes it keeps (not those it is cancelling), as (side, price)."""
    return sorted((q.side, q.price) for q in mm.quotes.values() if q.venue == "NexusTrade" and not q.cancelling)


def rest_in_internal_book(aws: Any, side: str, price: str, quantity: str, seq: int) -> None:
    """A level of the internal venue's book, as market data writes it from the engine's book event."""
    from nexus_common.events import BookEvent
    from nexus_marketdata.repo import DynamoBookLevels

    DynamoBookLevels(aws.table_name("BookLevelsTable")).apply(BookEvent(
        event_id=f"MSFT-{seq}", ts=NOW, correlation_id="c", symbol="MSFT", seq=seq, side=side, price=D(price),
        quantity=D(quantity), orders=1))


def test_internal_quotes_that_would_take_move_clear_of_others_resting_orders(aws: Any, maker: Any) -> None:
    # GIVEN others' bid resting at 300.05 in the internal book, above the last trade (300.00)
    rest_in_internal_book(aws, "buy", "300.05", "40", seq=1)
    # WHEN it steps twice
    maker.step()
    first = dict(maker.quotes)
    maker.step()
    # THEN its internal ask (post-only) is one tick above that bid, not at 300.02 where the engine
    # would refuse it, and the same order is kept on the next step (not placed and refused again)
    orders = internal_orders(maker)
    assert sorted((o.side, o.price) for o in orders) == [("buy", D("299.98")), ("sell", D("300.06"))]
    assert set(maker.quotes) == set(first)
    # AND the simulated venues, whose books are their own, quote around the mid as before
    for book in external_books(maker).values():
        assert (book.bids[0].price, book.asks[0].price) == (D("299.98"), D("300.02"))
    # WHEN that bid is gone THEN the ask comes back to 300.02 (the one at 300.06 being cancelled)
    rest_in_internal_book(aws, "buy", "300.05", "0", seq=2)
    maker.step()
    assert live_internal(maker) == [("buy", D("299.98")), ("sell", D("300.02"))]


def test_its_own_resting_quote_does_not_push_its_other_side_away(aws: Any, maker: Any) -> None:
    # GIVEN its internal bid of 100 at 299.98 resting in the book, and others' 30 at 299.97
    maker.step()
    rest_in_internal_book(aws, "buy", "299.98", "100", seq=1)
    rest_in_internal_book(aws, "buy", "299.97", "30", seq=2)
    # WHEN the market trades down to 299.90, so that it wants its ask at 299.92
    maker.market.last_trade = lambda symbol: D("299.90")
    maker.step()
    # THEN the ask is clear of others' bid (299.97 + a tick), not of its own bid at 299.98, which
    # it is replacing by 299.88 in the same step
    assert live_internal(maker) == [("buy", D("299.88")), ("sell", D("299.98"))]
