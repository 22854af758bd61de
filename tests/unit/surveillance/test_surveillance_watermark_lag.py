"""The live consumer's progress: the scheduled flush closes windows only up to how far the
consumer has got in each shard (never by the wall clock), and each batch records its lag where a
benchmark reads it (``nexus.cli_surveillance.read_live_lag``). Clocks are injected; a real Redis,
AWS under moto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from lambda_events import FakeLambdaContext
from surv_service_helpers import T0, Flow, alert_items, kinesis_event

from nexus.cli_surveillance import read_live_lag, reset_live_lag

MIN = 60_000  # ms
CLOSE_MS = 6 * 60 * MIN + 30 * MIN  # 21:00 UTC on T0's day: the 16:00 New York close


@pytest.fixture
def consumer(aws: Any, redis_db: Any, people: Any) -> Any:
    aws.use_function_env("SurveillanceConsumerFunction")
    from nexus_surveillance import on_streams

    return on_streams


def _at(ms: int) -> Any:
    return T0 + timedelta(milliseconds=ms)


def _run(consumer: Any, events: list[dict[str, Any]], first: int, clock_ms: int) -> None:
    consumer.live().clock = lambda: _at(clock_ms)
    answer = consumer.handler(kinesis_event([{"events": events}], first=first), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}


def _flush(aws: Any, monkeypatch: pytest.MonkeyPatch, wall_ms: int) -> dict[str, Any]:
    aws.use_function_env("SurveillanceFlushFunction")
    from nexus_surveillance import on_flush_schedule

    monkeypatch.setattr(on_flush_schedule, "utc_now", lambda: _at(wall_ms))
    on_flush_schedule.live().clock = lambda: _at(wall_ms)
    answer: dict[str, Any] = on_flush_schedule.handler({}, FakeLambdaContext())
    aws.use_function_env("SurveillanceConsumerFunction")
    return answer


def test_a_consumer_more_than_the_grace_behind_still_raises_marking_the_close(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN usr_a marking AAPL's close with two aggressive buys (20:57 and 20:58 UTC), and a
    # consumer five minutes behind: at 21:05 on its clock it has applied only up to 20:57
    aapl, msft = Flow("AAPL"), Flow("MSFT")
    _run(consumer, [
        aapl.trade(("m0", "acc_b"), ("t0", "acc_c"), "10", "100.00", "buy", CLOSE_MS - 10 * MIN),
        aapl.trade(("m1", "acc_b"), ("t1", "acc_a1"), "10", "100.20", "buy", CLOSE_MS - 3 * MIN),
    ], first=1, clock_ms=CLOSE_MS + 5 * MIN)  # fmt: skip
    # WHEN the per-minute flush runs at 21:05 by the wall clock (more than its 120 s grace after
    # the close)
    early = _flush(aws, monkeypatch, CLOSE_MS + 5 * MIN)
    # THEN it closes nothing: the consumer has got to 20:57 only
    assert early["alerts"] == [] and alert_items(aws) == []
    # WHEN the consumer then applies the second buy and, in the same shard, MSFT's trade of 21:02:30,
    # and the flush runs again
    _run(consumer, [
        aapl.trade(("m2", "acc_b"), ("t2", "acc_a1"), "10", "100.50", "buy", CLOSE_MS - 2 * MIN),
        msft.trade(("m3", "acc_b"), ("t3", "acc_c"), "10", "50.00", "buy", CLOSE_MS + 2 * MIN + 30_000),
    ], first=2, clock_ms=CLOSE_MS + 6 * MIN)  # fmt: skip
    late = _flush(aws, monkeypatch, CLOSE_MS + 6 * MIN)
    # THEN the close is judged with both buys (the consumer is past 21:00 + the grace): one
    # marking-the-close alert on usr_a
    (alert,) = alert_items(aws)
    assert late["alerts"] == [alert["alert_id"]]
    assert (alert["detector"], alert["symbol"], alert["users"]) == ("marking_the_close", "AAPL", ["usr_a"])
    assert len(alert["evidence"]["trade_ids"]) == 2


def test_a_shard_short_of_close_plus_grace_holds_its_symbols_windows(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the same two buys applied, and the shard's newest event at 21:01 (inside the grace)
    aapl = Flow("AAPL")
    _run(consumer, [
        aapl.trade(("m0", "acc_b"), ("t0", "acc_c"), "10", "100.00", "buy", CLOSE_MS - 10 * MIN),
        aapl.trade(("m1", "acc_b"), ("t1", "acc_a1"), "10", "100.20", "buy", CLOSE_MS - 3 * MIN),
        aapl.trade(("m2", "acc_b"), ("t2", "acc_a1"), "10", "100.50", "buy", CLOSE_MS - 2 * MIN),
    ], first=1, clock_ms=CLOSE_MS + 1 * MIN)  # fmt: skip
    msft = Flow("MSFT")
    _run(consumer, [msft.accepted("o1", "acc_b", "buy", "10", "50.00", CLOSE_MS + 1 * MIN)], first=2,
         clock_ms=CLOSE_MS + 1 * MIN)  # fmt: skip
    # WHEN the flush runs an hour later by the wall clock
    answer = _flush(aws, monkeypatch, CLOSE_MS + 60 * MIN)
    # THEN the close is not judged yet: the consumer is not past 21:00 + 120 s
    assert answer["alerts"] == [] and alert_items(aws) == []


def test_each_events_batch_records_its_lag_and_the_shard_mark(
    aws: Any, consumer: Any, redis_url: str
) -> None:
    # GIVEN nothing recorded yet
    assert read_live_lag(redis_url, "test")["batches"] == 0
    flow = Flow()
    # WHEN a batch whose newest event is at +1 s is applied with the consumer's clock at +4 s, then
    # a batch of two records, newest at +2 s, at +3 s, then a batch of commands
    _run(consumer, [flow.accepted("o1", "acc_b", "buy", "10", "100.00", 500),
                    flow.accepted("o2", "acc_c", "sell", "10", "101.00", 1_000)], first=1, clock_ms=4_000)
    consumer.live().clock = lambda: _at(3_000)
    answer = consumer.handler(kinesis_event([
        {"events": [flow.accepted("o3", "acc_b", "buy", "5", "99.00", 1_500)]},
        {"events": [flow.accepted("o4", "acc_c", "sell", "5", "102.00", 2_000)]},
    ], first=2), FakeLambdaContext())  # fmt: skip
    assert answer == {"batchItemFailures": []}
    new = {"type": "new", "command_id": "c9", "order_id": "o9", "account_id": "acc_b", "symbol": "AAPL",
           "side": "buy", "order_type": "limit", "price": "100", "quantity": "1", "ts": "2026-03-02T14:31:00Z"}
    consumer.handler(kinesis_event([new], commands=True, first=9), FakeLambdaContext())
    # THEN the figures are those of the two events batches: last 1 s, max 3 s, mean 2 s, 3 records
    lag = read_live_lag(redis_url, "test")
    assert (lag["batches"], lag["records"], lag["last_records"]) == (2, 3, 2)
    assert (lag["last_lag_ms"], lag["max_lag_ms"], lag["mean_lag_ms"]) == (1_000, 3_000, 2_000.0)
    assert lag["last_at"] == "2026-03-02T14:30:03.000000Z"
    # AND the shard's high-water mark is the newest engine time applied in it
    assert list(lag["high_water_marks"].values()) == ["2026-03-02T14:30:02.000000Z"]
    (shard,) = lag["high_water_marks"]
    assert shard.endswith("execution-events/shardId-000000000000")
    # AND a reset clears the figures, not the mark the flush needs
    reset_live_lag(redis_url, "test")
    after = read_live_lag(redis_url, "test")
    assert after["batches"] == 0 and after["max_lag_ms"] is None
    assert after["high_water_marks"] == lag["high_water_marks"]


def test_a_redelivered_older_batch_never_moves_the_mark_back(aws: Any, consumer: Any, redis_url: str) -> None:
    # GIVEN a shard applied up to +2 s
    flow = Flow()
    older = [flow.accepted("o1", "acc_b", "buy", "10", "100.00", 1_000)]
    newer = [flow.accepted("o2", "acc_c", "sell", "10", "101.00", 2_000)]
    _run(consumer, older, first=1, clock_ms=2_500)
    _run(consumer, newer, first=2, clock_ms=2_500)
    # WHEN the older batch is delivered again
    _run(consumer, older, first=1, clock_ms=9_000)
    # THEN the mark stays at +2 s (and the redelivery's lag is recorded as measured)
    lag = read_live_lag(redis_url, "test")
    assert list(lag["high_water_marks"].values()) == ["2026-03-02T14:30:02.000000Z"]
    assert (lag["batches"], lag["last_lag_ms"], lag["max_lag_ms"]) == (3, 8_000, 8_000)
