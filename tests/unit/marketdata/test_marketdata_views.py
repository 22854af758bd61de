"""The market data consumer and API under moto, with a real Redis for the snapshot cache.

The events come from the real matching engine on a seeded random journal; the references are
the engine's own book (L1/L2/L3) and a recomputation from the tape (candles, day volume)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
import redis
from lambda_events import FakeLambdaContext, call, kinesis_event, rest_event
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from nexus_common.events import utc_now
from nexus_common.instruments import Instrument
from nexus_common.money import fmt
from nexus_marketdata import api, on_before_open_schedule, on_execution_events, opening, views
from nexus_marketdata.l3 import opaque_id
from nexus_marketdata.ports import CacheConfig, Freshness
from nexus_marketdata.repo import SnapshotCache, put_instruments
from nexus_matching.engine import MatchingEngine

TICK = Decimal("0.01")


def journal(seed: int, size: int, start: datetime) -> list[dict[str, Any]]:
    """Limit (some icebergs), market, stop-limit, cancel and replace commands for AAPL."""
    rng = random.Random(seed)
    commands: list[dict[str, Any]] = []
    ids: list[str] = []
    for i in range(size):
        ts = (start + timedelta(seconds=i * rng.choice([1, 20, 45]))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        base = {"command_id": f"c{i}", "account_id": rng.choice(["alice", "bob"]), "symbol": "AAPL", "ts": ts}
        kind = rng.choice(["limit"] * 5 + ["iceberg", "market", "stop_limit", "cancel", "replace"])
        price = str(Decimal(rng.randint(9_995, 10_005)) * TICK)
        if kind in ("cancel", "replace") and ids:
            target = rng.choice(ids)
            if kind == "cancel":
                commands.append({**base, "type": "cancel", "order_id": target})
            else:
                commands.append({**base, "type": "replace", "order_id": target, "quantity": str(rng.randint(1, 9))})
            continue
        quantity = rng.randint(2, 9)
        command: dict[str, Any] = {
            **base, "type": "new", "order_id": f"o{i}", "side": rng.choice(["buy", "sell"]),
            "quantity": str(quantity), "time_in_force": "gtc", "order_type": "limit", "price": price,
        }
        if kind == "iceberg":
            command["display_quantity"] = "1"
        elif kind == "market":
            command.pop("price")
            command.update(order_type="market", time_in_force="ioc")
        elif kind == "stop_limit":
            command.update(order_type="stop_limit", stop_price=price)
        ids.append(f"o{i}")
        commands.append(command)
    return commands


class World:
    def __init__(self, aws: Any, redis_db: redis.Redis) -> None:  # noqa: F811
        self.aws = aws
        self.redis = redis_db
        put_instruments(aws.use_function_env("MarketsApiFunction")["INSTRUMENTS_TABLE"])
        self.env = aws.use_function_env("MarketDataConsumerFunction")
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.tables = {
            name: ddb.Table(self.env[name])
            for name in ("TRADES_TABLE", "BOOK_LEVELS_TABLE", "CANDLES_TABLE", "BOOK_ORDERS_TABLE")
        }
        self.engine = MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=TICK, lot_size=Decimal(1))})
        self.records: list[dict[str, Any]] = []

    def trade(self, commands: list[dict[str, Any]]) -> None:
        for command in commands:
            events = self.engine.process(command)
            if events:
                self.records.append({"events": events})

    def deliver(self, *records: dict[str, Any], batch: int = 25) -> None:
        for start in range(0, len(records), batch):
            answer = on_execution_events.handler(kinesis_event(*records[start : start + batch]), FakeLambdaContext())
            assert answer == {"batchItemFailures": []}

    def state(self) -> dict[str, Any]:
        return {name: sorted(map(repr, table.scan()["Items"])) for name, table in self.tables.items()}

    def get(self, resource: str, symbol: str = "AAPL", **query: str) -> tuple[int, Any]:
        self.redis.flushdb()  # read what is stored, not a snapshot cached by an earlier read
        return call(api.app, rest_event("GET", resource, path_params={"symbol": symbol}, query=query or None))

    def tape(self) -> list[dict[str, Any]]:
        return [e for r in self.records for e in r["events"] if e["type"] == "trade"]


@pytest.fixture
def world(aws: Any, redis_db: redis.Redis) -> World:  # noqa: F811
    return World(aws, redis_db)


def engine_book(world: World) -> dict[str, list[tuple[str, str, list[tuple[str, str]]]]]:
    book = world.engine._markets["AAPL"].book  # the reference: the engine's own queues
    accepted = {
        e["order_id"]: e["seq"] for r in world.records for e in r["events"] if e["type"] == "accepted"
    }
    out = {}
    for name, side in (("bids", book.bids), ("asks", book.asks)):
        out[name] = [
            (
                str(Decimal(level.price) * TICK),
                str(Decimal(level.qty)),
                [(opaque_id("AAPL", accepted[o.order_id]), str(o.remaining)) for o in level.orders()],
            )
            for level in side.iter_levels()
        ]
    return out


def wire_decimal(value: str) -> str:
    return fmt(Decimal(value))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_redelivered_and_reordered_records_leave_every_view_as_the_engine_and_the_tape_say(
    world: World, seed: int
) -> None:
    # GIVEN the engine's records of a random journal
    world.trade(journal(seed, 60, datetime(2026, 3, 6, 23, 57, tzinfo=UTC)))
    records = world.records
    # WHEN they are delivered, then an older one again after newer ones, then all of them again
    world.deliver(*records)
    state = world.state()
    world.deliver(records[len(records) // 2], records[1], records[-1])
    world.deliver(*records, batch=7)
    # THEN nothing changed
    assert world.state() == state
    # AND L3 is the engine's book: levels in price order, orders in time priority, anonymous
    status, l3 = world.get("/v1/markets/{symbol}/book", level="3", depth="20")
    assert status == 200
    expected = engine_book(world)
    for side in ("bids", "asks"):
        ours = [
            (wire_decimal(lv["price"]), wire_decimal(lv["quantity"]), [(o["id"], o["quantity"]) for o in lv["orders"]])
            for lv in l3[side]
        ]
        assert ours == [(wire_decimal(p), q, orders) for p, q, orders in expected[side][:20]]
    assert "account" not in repr(l3) and "o1" not in repr(l3)
    # AND L2 and L1 are its aggregates
    _, l2 = world.get("/v1/markets/{symbol}/book", depth="100")
    depth = world.engine.book_depth("AAPL", 100)
    for side in ("bids", "asks"):
        assert [(wire_decimal(lv["price"]), lv["quantity"], lv["orders"]) for lv in l2[side]] == [
            (wire_decimal(str(Decimal(p) * TICK)), str(q), n) for p, q, n in depth[side]
        ]
    _, l1 = world.get("/v1/markets/{symbol}/book", level="1")
    assert (l1["level"], l1["bids"], l1["asks"]) == (1, l2["bids"][:1], l2["asks"][:1])
    # AND the 1m candles are the tape's, bucket by bucket
    tape = world.tape()
    assert tape, "the journal traded"
    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for trade in tape:
        ts = datetime.fromisoformat(trade["ts"].replace("Z", "+00:00"))
        buckets[ts.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")].append(trade)
    status, body = world.get(
        "/v1/markets/{symbol}/candles", interval="1m", **{"from": "2026-03-06T00:00:00Z", "to": "2026-03-08T00:00:00Z"}
    )
    assert status == 200
    reference = []
    for start in sorted(buckets):
        prices = [Decimal(t["price"]) for t in buckets[start]]
        quantities = [Decimal(t["quantity"]) for t in buckets[start]]
        reference.append(
            (start, prices[0], max(prices), min(prices), prices[-1], sum(quantities), len(prices))
        )
    assert [
        (c["start"], Decimal(c["open"]), Decimal(c["high"]), Decimal(c["low"]), Decimal(c["close"]),
         Decimal(c["volume"]), c["trades"])
        for c in body["candles"]
    ] == reference
    # the 1d candles split at 00:00 UTC
    _, days = world.get("/v1/markets/{symbol}/candles", interval="1d", **{"from": "2026-03-06T00:00:00Z"})
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    for trade in tape:
        per_day[trade["ts"][:10] + "T00:00:00Z"] += Decimal(trade["quantity"])
    assert {c["start"]: Decimal(c["volume"]) for c in days["candles"]} == dict(per_day)


def test_the_ticker_is_l1_the_last_trade_and_the_utc_day_volume(world: World) -> None:
    now = utc_now().replace(microsecond=0)
    start = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=0))
    world.trade(journal(7, 40, start))
    world.deliver(*world.records)
    status, ticker = world.get("/v1/markets/{symbol}/ticker")
    assert status == 200
    tape = world.tape()
    today = now.strftime("%Y-%m-%d")
    volume = sum((Decimal(t["quantity"]) for t in tape if t["ts"].startswith(today)), Decimal(0))
    assert Decimal(ticker["volume"]) == volume and ticker["day"]["date"] == today
    assert ticker["last"]["seq"] == tape[-1]["seq"] and ticker["last"]["price"] == tape[-1]["price"]
    depth = world.engine.book_depth("AAPL", 1)
    for side, key in (("bids", "bid"), ("asks", "ask")):
        expected = (str(Decimal(depth[side][0][0]) * TICK), str(depth[side][0][1])) if depth[side] else None
        ours = (wire_decimal(ticker[key]["price"]), ticker[key]["quantity"]) if ticker[key] else None
        assert ours == (wire_decimal(expected[0]), expected[1]) if expected else ours is None


def test_book_reads_are_served_from_the_cache_once_fetched(world: World) -> None:
    world.trade(journal(3, 20, datetime(2026, 3, 6, 15, 0, tzinfo=UTC)))
    world.deliver(*world.records)
    world.redis.flushdb()
    event = rest_event("GET", "/v1/markets/{symbol}/book", path_params={"symbol": "MSFT"}, query={"depth": "5"})
    first = api.app(event, FakeLambdaContext())
    second = api.app(event, FakeLambdaContext())
    assert first["headers"]["X-Cache"] == "fetched"
    assert second["headers"]["X-Cache"] in ("hit", "stale", "fetched")  # tier 1: fresh for 50 ms only
    assert first["body"] == second["body"]


def test_without_redis_the_source_answers(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_common.redis_store import reset_redis_client
    from nexus_common.settings import reset_lazy

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    reset_redis_client()
    reset_lazy()
    event = rest_event("GET", "/v1/markets/{symbol}/book", path_params={"symbol": "AAPL"}, query={"level": "1"})
    response = api.app(event, FakeLambdaContext())
    assert (response["statusCode"], response["headers"]["X-Cache"]) == (200, "bypass")


BAD_INPUTS = [
    ("/v1/markets/{symbol}/book", {"level": "4"}, 400, "level"),
    ("/v1/markets/{symbol}/book", {"level": "x"}, 400, "level"),
    ("/v1/markets/{symbol}/book", {"depth": "0"}, 400, "depth"),
    ("/v1/markets/{symbol}/book", {"depth": "101"}, 400, "depth"),
    ("/v1/markets/{symbol}/book", {"level": "3", "depth": "21"}, 400, "depth"),
    ("/v1/markets/{symbol}/book", {"side": "buy"}, 400, "side"),
    ("/v1/markets/{symbol}/candles", {}, 400, "interval"),
    ("/v1/markets/{symbol}/candles", {"interval": "2m"}, 400, "interval"),
    ("/v1/markets/{symbol}/candles", {"interval": "1m", "from": "2026-03-06T10:00:00Z", "to": "2026-03-06T09:00:00Z"},
     400, "from"),
    ("/v1/markets/{symbol}/candles", {"interval": "1m", "from": "2026-03-06T10:00:00"}, 400, "from"),
    ("/v1/markets/{symbol}/candles", {"interval": "1m", "to": "yesterday"}, 400, "to"),
    ("/v1/markets/{symbol}/candles", {"interval": "1h", "limit": "0"}, 400, "limit"),
    ("/v1/markets/{symbol}/candles", {"interval": "1d", "to": "0001-01-01T00:00:00Z"}, 400, "to"),
    ("/v1/markets/{symbol}/candles", {"interval": "1d", "from": "9999-12-31T23:59:59-23:59"}, 400, "from"),
    ("/v1/markets/{symbol}/ticker", {"depth": "1"}, 400, "depth"),
]


def test_bad_inputs_answer_4xx_with_the_error_body_and_change_nothing(world: World) -> None:
    world.trade(journal(4, 10, datetime(2026, 3, 6, 15, 0, tzinfo=UTC)))
    world.deliver(*world.records)
    before = world.state()
    for resource, query, status, field in BAD_INPUTS:
        got, body = world.get(resource, **query)
        assert (got, body["error"]["field"]) == (status, field), (resource, query)
        assert set(body["error"]) == {"code", "message", "field"}
    assert world.state() == before


@pytest.mark.parametrize("resource", ["/v1/markets/{symbol}/ticker", "/v1/markets/{symbol}/candles"])
def test_unknown_symbols_answer_404(world: World, resource: str) -> None:
    query = {"interval": "1m"} if resource.endswith("candles") else {}
    status, body = world.get(resource, "NOPE", **query)
    assert (status, body["error"]["code"], body["error"]["field"]) == (404, "unknown_symbol", "symbol")


# -- warm-up before the open ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "due"),
    [
        ("2026-03-06T14:29:00Z", True),  # Friday, EST: 09:29 in New York
        ("2026-03-06T13:29:00Z", False),  # 08:29 EST
        ("2026-07-06T13:29:00Z", True),  # Monday, EDT: 09:29
        ("2026-07-06T14:29:00Z", False),  # 10:29 EDT: after the open
        ("2026-03-09T13:29:00Z", True),  # the Monday after the spring change: EDT already
        ("2026-07-03T13:29:00Z", False),  # a NYSE holiday
        ("2026-03-07T14:29:00Z", False),  # Saturday
    ],
)
def test_the_warm_up_runs_in_the_half_hour_before_the_new_york_open(instant: str, due: bool) -> None:
    assert opening.due(datetime.fromisoformat(instant.replace("Z", "+00:00"))) is due


def test_the_warm_up_fills_the_cache_and_pins_the_previous_sessions_hot_symbols(world: World) -> None:
    # GIVEN trades on Thursday 2026-03-05 (UTC day) in AAPL
    world.trade(journal(5, 30, datetime(2026, 3, 5, 15, 0, tzinfo=UTC)))
    world.deliver(*world.records)
    assert world.tape()
    world.aws.use_function_env("MarketDataWarmupFunction")
    world.redis.flushdb()
    # WHEN the warm-up of Friday 09:29 New York (EST) runs (windows long enough to look at them)
    long = Freshness(fresh_ms=60_000, max_age_ms=60_000)
    cache = SnapshotCache(world.redis, CacheConfig(tier1=long, standard=long))
    result = on_before_open_schedule.warmup().warm(cache, datetime(2026, 3, 6, 14, 29, tzinfo=UTC))
    # THEN every active symbol's book and ticker snapshots are in Redis, as the source has them
    assert sorted(result["warmed"]) == ["AAPL", "AMZN", "GOOGL", "MSFT"]
    assert result["pinned"] == ["AAPL"] and result["previous_session"] == "2026-03-05"
    for symbol in result["warmed"]:
        read = cache.get(symbol, "l2", lambda: pytest.fail("the warmed snapshot was not used"))
        assert read.outcome == "hit"
        assert read.value == views.book_l2(on_before_open_schedule.book_levels(), symbol)
        assert cache.get(symbol, "ticker", lambda: pytest.fail("not warmed")).outcome == "hit"
    # AND AAPL, the most traded, is pinned hot until the close (16:00 New York = 21:00 UTC)
    assert 6.5 * 3600 - 5 <= world.redis.ttl(cache.config.prefix + "pin:AAPL") <= 6.5 * 3600 + 60
    # AND outside the half hour before the open, a scheduled run does nothing
    assert on_before_open_schedule.handler({"time": "2026-03-06T18:00:00Z"}, FakeLambdaContext())["skipped"] is True


def test_a_batch_reads_every_symbols_candles_and_l3_orders_in_one_request(world: World) -> None:
    from nexus_common import aws as nexus_aws

    # GIVEN an engine trading AAPL and MSFT: a resting sell and a buy that takes part of it, each
    lot = Decimal(1)
    world.engine = MatchingEngine({s: Instrument(symbol=s, tick_size=TICK, lot_size=lot) for s in ("AAPL", "MSFT")})
    ts = "2026-03-06T15:00:00.000000Z"
    for symbol in ("AAPL", "MSFT"):
        base = {"account_id": "alice", "symbol": symbol, "ts": ts, "type": "new", "time_in_force": "gtc",
                "order_type": "limit", "price": "100.00"}  # fmt: skip
        world.trade([{**base, "command_id": f"{symbol}-s", "order_id": f"{symbol}-s", "side": "sell", "quantity": "5"},
                     {**base, "command_id": f"{symbol}-b", "order_id": f"{symbol}-b", "side": "buy", "quantity": "2",
                      "account_id": "bob"}])  # fmt: skip
    calls: list[dict[str, int]] = []
    puts: list[str] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: calls.append(
        {table: len(request["Keys"]) for table, request in params["RequestItems"].items()}))
    client.meta.events.register("before-parameter-build.dynamodb.PutItem", lambda params, **_: puts.append(
        params["Item"]["series"]) if params["TableName"] == world.env["CANDLES_TABLE"] else None)  # fmt: skip
    # WHEN their records come in one batch
    world.deliver(*world.records)
    # THEN one request read both symbols' candles (the live item and the 4 intervals' buckets
    # each) and L3 orders (2 each)
    assert calls == [{world.env["CANDLES_TABLE"]: 10, world.env["BOOK_ORDERS_TABLE"]: 4}]
    # AND each symbol's 4 candles were written with one put, of its live item
    assert sorted(puts) == ["AAPL#live", "MSFT#live"]
    # AND the views are what the trades say, and stay so when the records come again one by one
    for symbol in ("AAPL", "MSFT"):
        status, body = world.get("/v1/markets/{symbol}/candles", symbol=symbol, interval="1m",
                                 **{"from": "2026-03-06T00:00:00Z", "to": "2026-03-07T00:00:00Z"})  # fmt: skip
        assert status == 200 and [(c["volume"], c["trades"]) for c in body["candles"]] == [("2", 1)]
        _, book = world.get("/v1/markets/{symbol}/book", symbol=symbol, level="3")
        assert [(lv["quantity"], len(lv["orders"])) for lv in book["asks"]] == [("3", 1)] and book["bids"] == []
    state = world.state()
    world.deliver(*world.records, batch=1)
    assert world.state() == state


def test_candles_close_into_items_of_their_own_and_are_read_with_the_live_ones(world: World) -> None:
    from nexus_marketdata.candles import candles_from_item
    from nexus_marketdata.repo import DynamoCandles

    # GIVEN a 1m candle written before live items existed (10 shares at 99.00, seq 0)
    world.tables["CANDLES_TABLE"].put_item(Item={
        "series": "AAPL#1m", "bucket": "2026-03-06T23:59:00Z", "symbol": "AAPL", "interval": "1m",
        "open": Decimal("99"), "high": Decimal("99"), "low": Decimal("99"), "close": Decimal("99"),
        "volume": Decimal(10), "notional": Decimal(990), "trades": 1, "first_seq": 0, "last_seq": 0,
        "epoch": 0})  # fmt: skip
    # AND a trade of 2 at 100.00 in that minute, then one of 3 at 101.00 in the next UTC day
    for n, (ts, price, quantity) in enumerate((("2026-03-06T23:59:30.000000Z", "100.00", "2"),
                                               ("2026-03-07T00:00:10.000000Z", "101.00", "3"))):  # fmt: skip
        base = {"account_id": "alice", "symbol": "AAPL", "ts": ts, "type": "new", "time_in_force": "gtc",
                "order_type": "limit", "price": price, "quantity": quantity}  # fmt: skip
        world.trade([{**base, "command_id": f"s{n}", "order_id": f"s{n}", "side": "sell"},
                     {**base, "command_id": f"b{n}", "order_id": f"b{n}", "side": "buy", "account_id": "bob"}])
    # WHEN their records come in one batch, then again one by one
    world.deliver(*world.records)
    state = world.state()
    world.deliver(*world.records, batch=1)
    assert world.state() == state
    # THEN the first day's candles were closed into items of their own (the minute's folded onto
    # the one stored before), and the live item holds the second day's
    items = world.tables["CANDLES_TABLE"].scan()["Items"]
    closed = {(i["series"], i["bucket"]): (i["volume"], i["trades"]) for i in items if i["bucket"] != "live"}
    assert closed == {("AAPL#1m", "2026-03-06T23:59:00Z"): (12, 2), ("AAPL#5m", "2026-03-06T23:55:00Z"): (2, 1),
                      ("AAPL#1h", "2026-03-06T23:00:00Z"): (2, 1), ("AAPL#1d", "2026-03-06T00:00:00Z"): (2, 1)}
    (live,) = [candles_from_item(i) for i in items if i["bucket"] == "live"]
    assert {key: (c.start.isoformat(), c.volume) for key, c in live.items()} == {
        ("AAPL#live", interval): ("2026-03-07T00:00:00+00:00", 3) for interval in ("1m", "5m", "1h", "1d")}
    # AND a range reads both: the closed candles and the live one
    _, days = world.get("/v1/markets/{symbol}/candles", interval="1d", **{"from": "2026-03-06T00:00:00Z",
                                                                          "to": "2026-03-07T12:00:00Z"})  # fmt: skip
    assert [(c["start"], c["volume"], c["close"]) for c in days["candles"]] == [
        ("2026-03-06T00:00:00Z", "2", "100"), ("2026-03-07T00:00:00Z", "3", "101")]
    _, minutes = world.get("/v1/markets/{symbol}/candles", interval="1m", **{"from": "2026-03-06T23:59:00Z",
                                                                             "to": "2026-03-07T00:00:59Z"})  # fmt: skip
    assert [(c["start"], c["volume"]) for c in minutes["candles"]] == [
        ("2026-03-06T23:59:00Z", "12"), ("2026-03-07T00:00:00Z", "3")]
    hour = {"from": "2026-03-06T23:00:00Z", "to": "2026-03-06T23:59:59Z"}
    _, only_closed = world.get("/v1/markets/{symbol}/candles", interval="1h", **hour)
    assert [c["start"] for c in only_closed["candles"]] == ["2026-03-06T23:00:00Z"]
    # AND one bucket's candle is found where it is
    candles = DynamoCandles(world.env["CANDLES_TABLE"])
    found = [candles.get("AAPL", "1d", day) for day in ("2026-03-06T00:00:00Z", "2026-03-07T00:00:00Z",
                                                         "2026-03-08T00:00:00Z")]  # fmt: skip
    assert [c.volume if c else None for c in found] == [2, 3, None]
