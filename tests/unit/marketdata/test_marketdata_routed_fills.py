"""A routed order's external fills (``venue_fill``, ``route_ended``) are not trades of this venue:
the tape, the candles and the books show only the engine's own trades."""

from __future__ import annotations

import json
from typing import Any

import boto3
from lambda_events import FakeLambdaContext, kinesis_event, load_event
from nexus_marketdata import on_execution_events
from nexus_marketdata.candles import candles_from_item


def test_external_fills_reach_neither_the_tape_nor_the_candles_nor_the_books(aws: Any) -> None:
    # GIVEN an internal trade of 40 and then a routed order's record (two external fills, its end)
    env = aws.use_function_env("MarketDataConsumerFunction")
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    text = json.dumps(load_event("execution_events_fill.json"))
    internal = json.loads(text.replace("MAKER", "m").replace("TAKER", "t"))
    routed = {"events": load_event("routed_fills.json")["events"]}
    # WHEN the market data consumer reads both
    answer = on_execution_events.handler(kinesis_event(internal, routed), FakeLambdaContext())
    # THEN no failure, the tape holds the internal trade alone and the candles count its 40 alone
    assert answer == {"batchItemFailures": []}
    tape = ddb.Table(env["TRADES_TABLE"]).scan()["Items"]
    assert [int(t["seq"]) for t in tape] == [4]
    items: list[dict[str, Any]] = ddb.Table(env["CANDLES_TABLE"]).scan()["Items"]
    candles = [candle for item in items for candle in candles_from_item(item).values()]
    assert len(candles) == 4 and {(c.volume, c.trades) for c in candles} == {(40, 1)}
    # AND the L3 book knows the internal maker alone, as the internal step left it (the taker,
    # accepted and filled in that one record, never rested: it needs no item)
    orders = ddb.Table(env["BOOK_ORDERS_TABLE"]).scan()["Items"]
    assert sorted((o["order_id"], int(o["last_seq"]), int(o["open"])) for o in orders) == [("m", 4, 60)]


def test_a_route_resting_on_an_external_venue_is_not_on_this_venues_book(aws: Any) -> None:
    # GIVEN a routed order's records: fills, its rest on BATS-SIM at 100 (route_working), its end
    env = aws.use_function_env("MarketDataConsumerFunction")
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    records = load_event("routed_working.json")["records"]
    # WHEN the market data consumer reads them
    answer = on_execution_events.handler(kinesis_event(*records), FakeLambdaContext())
    # THEN no failure, and no trade, candle or L3 order came of them
    assert answer == {"batchItemFailures": []}
    for table in ("TRADES_TABLE", "CANDLES_TABLE", "BOOK_ORDERS_TABLE"):
        assert ddb.Table(env[table]).scan()["Items"] == [], table
