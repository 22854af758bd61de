"""Market data: level keys, the consumer (trade tape, L2 levels) and the API, under moto."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, call, kinesis_event, load_event, rest_event
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from nexus_common.instruments import DEMO_INSTRUMENTS, Instrument
from nexus_marketdata import api, on_execution_events
from nexus_marketdata.domain import level_key
from nexus_marketdata.repo import list_instruments, put_instruments


def test_level_keys_sort_like_prices() -> None:
    assert level_key("buy", Decimal("101.5")) == "B#0000000001015000"
    assert level_key("sell", Decimal("0.0001")) == "A#0000000000000001"
    prices = [Decimal(p) for p in ("9.99", "10", "100.01", "1000")]
    keys = [level_key("sell", p) for p in prices]
    assert keys == sorted(keys)
    for bad in (Decimal("0"), Decimal("-1"), Decimal("1.00001")):
        with pytest.raises(ValueError):
            level_key("buy", bad)


def book(seq: int, side: str, price: str, quantity: str, orders: int = 1) -> dict[str, Any]:
    return {
        "event_id": f"AAPL-{seq}",
        "type": "book",
        "version": 1,
        "ts": "2026-01-05T14:30:00.000000Z",
        "correlation_id": "c",
        "symbol": "AAPL",
        "seq": seq,
        "epoch": 0,
        "side": side,
        "price": price,
        "quantity": quantity,
        "orders": orders,
    }


class World:
    def __init__(self, aws: Any) -> None:
        api_env = aws.use_function_env("MarketsApiFunction")
        put_instruments(api_env["INSTRUMENTS_TABLE"])
        self.env = aws.use_function_env("MarketDataConsumerFunction")
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.trades = ddb.Table(self.env["TRADES_TABLE"])
        self.levels = ddb.Table(self.env["BOOK_LEVELS_TABLE"])

    def handle(self, *payloads: Any) -> dict[str, Any]:
        return on_execution_events.handler(kinesis_event(*payloads), FakeLambdaContext())

    def get(self, resource: str, symbol: str | None = None, **query: str) -> tuple[int, Any]:
        params = {"symbol": symbol} if symbol else None
        ev = rest_event("GET", resource, path_params=params, query=query or None)
        return call(api.app, ev)

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        return self.trades.scan()["Items"], self.levels.scan()["Items"]


@pytest.fixture
def world(aws: Any, redis_db: Any) -> World:  # noqa: F811 - the fixture
    return World(aws)


def test_instruments_are_seeded_and_listed(world: World) -> None:
    status, body = world.get("/v1/markets")
    assert status == 200
    assert [m["symbol"] for m in body["markets"]] == sorted(i.symbol for i in DEMO_INSTRUMENTS)
    aapl = next(m for m in body["markets"] if m["symbol"] == "AAPL")
    assert aapl == {
        "symbol": "AAPL",
        "name": "Apple Inc.",
        "currency": "USD",
        "tick_size": "0.01",
        "lot_size": "1",
        "status": "active",
    }


def test_put_instruments_replaces_reference_data(world: World, aws: Any) -> None:
    table = aws.env_for("MarketsApiFunction")["INSTRUMENTS_TABLE"]
    halted = Instrument(
        symbol="AAPL", tick_size=Decimal("0.05"), lot_size=Decimal("10"), status="halted"
    )
    assert put_instruments(table, [halted]) == 1
    found = {i.symbol: i for i in list_instruments(table)}
    assert found["AAPL"] == halted and len(found) == len(DEMO_INSTRUMENTS)


def test_trades_go_on_the_tape_once_newest_first(world: World) -> None:
    # GIVEN the fill step fixture WHEN consumed twice
    payload = copy.deepcopy(load_event("execution_events_fill.json"))
    assert world.handle(payload) == {"batchItemFailures": []}
    first = world.snapshot()
    assert world.handle(payload) == {"batchItemFailures": []}
    # THEN the second delivery changed nothing
    assert world.snapshot() == first
    status, body = world.get("/v1/markets/{symbol}/trades", "AAPL")
    assert status == 200
    assert body["trades"] == [
        {
            "trade_id": "AAPL-4",
            "seq": 4,
            "price": "101.5",
            "quantity": "40",
            "aggressor_side": "buy",
            "ts": "2026-01-05T14:30:01.000000Z",
        }
    ]
    assert "maker_account_id" not in str(first[0])


def test_trades_limit_and_order(world: World) -> None:
    payload = copy.deepcopy(load_event("execution_events_fill.json"))
    trade = next(e for e in payload["events"] if e["type"] == "trade")
    trades = [{**trade, "seq": seq, "event_id": f"AAPL-{seq}"} for seq in (10, 11, 12)]
    world.handle({"events": trades})
    status, body = world.get("/v1/markets/{symbol}/trades", "AAPL", limit="2")
    assert [t["seq"] for t in body["trades"]] == [12, 11]
    for bad in ("0", "501", "x"):
        status, body = world.get("/v1/markets/{symbol}/trades", "AAPL", limit=bad)
        assert (status, body["error"]["field"]) == (400, "limit")


def test_the_l2_book_is_sorted_skips_empty_levels_and_honours_depth(world: World) -> None:
    # GIVEN levels on both sides, one of which was emptied later
    world.handle(
        {
            "events": [
                book(1, "buy", "100.00", "5"),
                book(2, "buy", "100.50", "7", 2),
                book(3, "buy", "99.99", "1"),
                book(4, "sell", "101.00", "3"),
                book(5, "sell", "100.75", "4"),
                book(6, "sell", "102.00", "9"),
                book(7, "sell", "100.75", "0", 0),
            ]
        }
    )
    # WHEN the book is read
    status, body = world.get("/v1/markets/{symbol}/book", "AAPL")
    # THEN bids descend, asks ascend, the emptied level is absent
    assert status == 200
    assert body["bids"] == [
        {"price": "100.5", "quantity": "7", "orders": 2},
        {"price": "100", "quantity": "5", "orders": 1},
        {"price": "99.99", "quantity": "1", "orders": 1},
    ]
    assert [a["price"] for a in body["asks"]] == ["101", "102"]
    _, shallow = world.get("/v1/markets/{symbol}/book", "AAPL", depth="1")
    assert [len(shallow["bids"]), len(shallow["asks"])] == [1, 1]
    for bad in ("0", "101", "deep"):
        status, answer = world.get("/v1/markets/{symbol}/book", "AAPL", depth=bad)
        assert (status, answer["error"]["field"]) == (400, "depth")


def test_an_old_redelivery_cannot_resurrect_an_emptied_level(world: World) -> None:
    world.handle({"events": [book(1, "sell", "101.00", "3"), book(2, "sell", "101.00", "0", 0)]})
    # WHEN the first delta is delivered again, alone
    world.handle({"events": [book(1, "sell", "101.00", "3")]})
    # THEN the level stays empty (kept as a tombstone with the newer seq)
    (level,) = world.levels.scan()["Items"]
    assert (level["quantity"], level["seq"], level["level"]) == (0, 2, "A#0000000001010000")
    assert world.get("/v1/markets/{symbol}/book", "AAPL")[1]["asks"] == []


def test_unknown_symbols_answer_404(world: World) -> None:
    for resource in ("/v1/markets/{symbol}/book", "/v1/markets/{symbol}/trades"):
        status, body = world.get(resource, "NOPE")
        assert status == 404
        assert body["error"] == {
            "code": "unknown_symbol",
            "message": "unknown symbol 'NOPE'",
            "field": "symbol",
        }


def test_the_consumer_stops_at_the_first_failed_record(world: World) -> None:
    response = world.handle(
        {"events": [book(1, "buy", "100", "1")]},
        {"events": [book(2, "buy", "100", "2"), {"type": "book", "seq": "bad"}]},
        {"events": [book(3, "buy", "100", "3")]},
    )
    assert len(response["batchItemFailures"]) == 2
    (level,) = world.levels.scan()["Items"]
    assert level["seq"] == 1  # record 2 failed as a whole: its first event was not applied


def test_a_deposed_engine_leader_cannot_change_the_book_or_the_tape(world: World) -> None:
    # GIVEN a level written by engine leader epoch 2
    world.handle({"events": [{**book(7, "sell", "101.50", "60"), "epoch": 2}]})
    # WHEN the old leader (epoch 1) publishes a newer seq for that level
    world.handle({"events": [{**book(9, "sell", "101.50", "999", 3), "epoch": 1}]})
    # THEN the level is as the current leader left it
    status, body = world.get("/v1/markets/{symbol}/book", "AAPL")
    assert status == 200
    assert [(a["price"], a["quantity"]) for a in body["asks"]] == [("101.5", "60")]
