"""The live path: order-commands + execution-events -> detectors (state in a real Redis) ->
alerts (moto), published, audited, notified, and a CRITICAL one halts its accounts. Idempotent
on redelivery, in order per symbol, a poison record stops the batch where it is."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lambda_events import FakeLambdaContext
from nexus_common import aws as common_aws
from nexus_common.errors import Unavailable
from surv_service_helpers import (
    T0,
    Flow,
    account,
    alert_items,
    kinesis_event,
    read_queue,
    read_stream,
    ts,
    wash_episode,
)


@pytest.fixture
def consumer(aws: Any, redis_db: Any, people: Any) -> Any:
    aws.use_function_env("SurveillanceConsumerFunction")
    from nexus_surveillance import on_streams

    return on_streams


def _run(consumer: Any, payloads: list[Any], **kwargs: Any) -> dict[str, Any]:
    return consumer.handler(kinesis_event(payloads, **kwargs), FakeLambdaContext())


def test_same_owner_wash_trade_raises_one_critical_alert_that_halts_both_accounts(aws: Any, consumer: Any) -> None:
    # GIVEN usr_a's two accounts trading with each other
    events = wash_episode(Flow())
    # WHEN the engine's record reaches the consumer
    answer = _run(consumer, [{"events": events}])
    # THEN one CRITICAL wash-trading alert is stored, dispatched and names both accounts
    assert answer == {"batchItemFailures": []}
    (alert,) = alert_items(aws)
    assert (alert["detector"], alert["severity"], alert["status"]) == ("wash_trading", "CRITICAL", "open")
    assert alert["accounts"] == ["acc_a1", "acc_a2"] and alert["users"] == ["usr_a"]
    assert alert["dispatched_at"] and sorted(alert["halted_accounts"]) == ["acc_a1", "acc_a2"]
    # AND both accounts are switched off by the kill switch, the alert as the reason
    for account_id in ("acc_a1", "acc_a2"):
        item = account(aws, account_id)
        assert item["trading_enabled"] is False and item["trading_halted_by"] == alert["alert_id"]
    # AND the alert is on the surveillance-alerts stream, in the audit trail, and in compliance's inbox
    (published,) = read_stream(aws, "SurveillanceAlertsStream")
    assert published["alert_id"] == alert["alert_id"]
    audit = read_stream(aws, "AuditEventsStream")
    kinds = sorted((e["kind"], e["aggregate_id"]) for e in audit)
    assert kinds == [("kill_switch_on", "acc_a1"), ("kill_switch_on", "acc_a2"),
                     ("surveillance_alert", alert["alert_id"])]  # fmt: skip
    assert {e["details"].get("reason") for e in audit if e["kind"] == "kill_switch_on"} == {alert["alert_id"]}
    (note,) = read_queue(aws, "NotificationsQueue")
    assert (note["account_id"], note["kind"], note["alert_id"]) == ("acc_c", "surveillance_alert", alert["alert_id"])


def test_a_redelivered_batch_neither_doubles_nor_loses_the_alert(aws: Any, consumer: Any) -> None:
    # GIVEN a batch already processed
    payloads = [{"events": wash_episode(Flow())}]
    _run(consumer, payloads)
    first = alert_items(aws)
    # WHEN Lambda delivers it again (a retry, a replayed journal)
    answer = _run(consumer, payloads)
    # THEN nothing more is stored, published, audited or notified
    assert answer == {"batchItemFailures": []}
    assert alert_items(aws) == first
    assert len(read_stream(aws, "SurveillanceAlertsStream")) == 1
    assert len(read_stream(aws, "AuditEventsStream")) == 3
    assert len(read_queue(aws, "NotificationsQueue")) == 1


def test_an_alert_stored_but_not_dispatched_is_dispatched_by_the_retry(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the notification step fails once, after the alert was stored
    from nexus_surveillance.repo import AwsAlertEffects

    original = AwsAlertEffects.notify_compliance
    calls = {"n": 0}

    def flaky(self: Any, alerts: Any, at: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Unavailable("queue_down", "the queue is down")
        original(self, alerts, at)

    monkeypatch.setattr(AwsAlertEffects, "notify_compliance", flaky)
    payloads = [{"events": wash_episode(Flow())}]
    with pytest.raises(Unavailable):
        _run(consumer, payloads)
    (stored,) = alert_items(aws)
    assert "dispatched_at" not in stored
    # WHEN the mapping retries the batch
    _run(consumer, payloads)
    # THEN the alert is dispatched now, once, and still stored once
    (alert,) = alert_items(aws)
    assert alert["dispatched_at"]
    assert len(read_queue(aws, "NotificationsQueue")) == 1
    audit_alerts = [e for e in read_stream(aws, "AuditEventsStream") if e["kind"] == "surveillance_alert"]
    assert {e["event_id"] for e in audit_alerts} == {f"surveillance-alert-{alert['alert_id']}"}


def _stream_down(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make publishing fail; returns what restores it."""
    from nexus_surveillance.repo import AwsAlertEffects

    original = AwsAlertEffects.publish

    def down(self: Any, alerts: Any) -> None:
        raise Unavailable("publish_failed", "the surveillance-alerts stream refuses every record")

    monkeypatch.setattr(AwsAlertEffects, "publish", down)
    return lambda: monkeypatch.setattr(AwsAlertEffects, "publish", original)


def test_a_critical_alert_halts_its_accounts_even_when_publishing_keeps_failing(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the surveillance-alerts stream refusing every record
    _stream_down(monkeypatch)
    # WHEN a same-owner wash trade reaches the consumer, and every retry fails the same way
    payloads = [{"events": wash_episode(Flow())}]
    for _ in range(2):
        with pytest.raises(Unavailable):
            _run(consumer, payloads)
    # THEN the alert is stored, not dispatched, yet both accounts are halted and the halt recorded
    # on the alert (for close) and audited
    (alert,) = alert_items(aws)
    assert "dispatched_at" not in alert and sorted(alert["halted_accounts"]) == ["acc_a1", "acc_a2"]
    for account_id in ("acc_a1", "acc_a2"):
        assert account(aws, account_id)["trading_enabled"] is False
    halts = {e["aggregate_id"] for e in read_stream(aws, "AuditEventsStream") if e["kind"] == "kill_switch_on"}
    assert halts == {"acc_a1", "acc_a2"}
    assert read_stream(aws, "SurveillanceAlertsStream") == []


def test_the_flush_dispatches_a_stored_alert_its_failed_batch_never_dispatched(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an alert stored at T0 + 1 min by a batch whose publishing failed (the batch is given up)
    from datetime import timedelta

    clock = {"now": T0 + timedelta(minutes=1)}
    live = consumer.live()
    live.clock = lambda: clock["now"]
    restore = _stream_down(monkeypatch)
    with pytest.raises(Unavailable):
        _run(consumer, [{"events": wash_episode(Flow())}])
    restore()
    # WHEN the flush looks back a day, first a minute later (the batch may still be at work), then
    # ten minutes later
    clock["now"] = T0 + timedelta(minutes=2)
    early = live.redispatch(T0 - timedelta(days=1))
    clock["now"] = T0 + timedelta(minutes=11)
    late = live.redispatch(T0 - timedelta(days=1))
    again = live.redispatch(T0 - timedelta(days=1))
    # THEN the recent one is left alone, then the alert is dispatched once: published, audited,
    # compliance notified, and marked dispatched (so the next flush leaves it)
    (alert,) = alert_items(aws)
    assert early == [] and late == [alert["alert_id"]] and again == []
    assert alert["dispatched_at"] and sorted(alert["halted_accounts"]) == ["acc_a1", "acc_a2"]
    (published,) = read_stream(aws, "SurveillanceAlertsStream")
    assert published["alert_id"] == alert["alert_id"]
    assert [e["kind"] for e in read_stream(aws, "AuditEventsStream")].count("surveillance_alert") == 1
    assert len(read_queue(aws, "NotificationsQueue")) == 1


def test_the_scheduled_flush_handler_redispatches_what_a_failed_batch_left(
    aws: Any, consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an alert stored at T0 by a batch whose publishing failed
    from datetime import timedelta

    consumer.live().clock = lambda: T0
    restore = _stream_down(monkeypatch)
    with pytest.raises(Unavailable):
        _run(consumer, [{"events": wash_episode(Flow())}])
    restore()
    # WHEN the per-minute flush runs ten minutes later
    aws.use_function_env("SurveillanceFlushFunction")
    from nexus_surveillance import on_flush_schedule

    later = T0 + timedelta(minutes=10)
    monkeypatch.setattr(on_flush_schedule, "utc_now", lambda: later)
    on_flush_schedule.live().clock = lambda: later
    answer = on_flush_schedule.handler({}, FakeLambdaContext())
    # THEN it dispatched the alert
    (alert,) = alert_items(aws)
    assert answer["redispatched"] == [alert["alert_id"]] and alert["dispatched_at"]
    assert len(read_stream(aws, "SurveillanceAlertsStream")) == 1



def spoofing_episode() -> tuple[list[Any], list[Any], list[Any]]:
    """usr_a's large buy (acc_a1), usr_a selling on the other side (acc_a2) to acc_b, then the
    large buy cancelled quickly: spoofing, as three slices of events."""
    flow = Flow()
    spoof = [flow.accepted("o-spoof", "acc_a1", "buy", "5000", "99.00", 0)]
    real = [
        flow.accepted("o-bid", "acc_b", "buy", "100", "100.00", 100),
        flow.accepted("o-sell", "acc_a2", "sell", "100", "100.00", 200),
        flow.trade(("o-bid", "acc_b"), ("o-sell", "acc_a2"), "100", "100.00", "sell", 200),
    ]
    return spoof, real, [flow.cancelled("o-spoof", "acc_a1", "5000", 900)]


def test_an_episode_split_over_batches_and_containers_is_seen_and_an_older_batch_redelivered_changes_nothing(
    aws: Any, consumer: Any
) -> None:
    # GIVEN a large buy by usr_a cancelled quickly while usr_a sells on the other side (spoofing),
    # delivered over three batches
    spoof, real, cancel = spoofing_episode()
    # WHEN they arrive in order, each to a new container (state restored from Redis: the snapshot
    # of the first batch, then the journal of the second), then the first one again
    assert _run(consumer, [{"events": spoof}], first=1) == {"batchItemFailures": []}
    assert alert_items(aws) == []
    consumer.live.reset()
    _run(consumer, [{"events": real}], first=2)
    consumer.live.reset()
    _run(consumer, [{"events": cancel}], first=3)
    after = alert_items(aws)
    consumer.live.reset()
    _run(consumer, [{"events": spoof}], first=1)
    # THEN the spoofing alert is raised once, from the state kept between batches
    assert [a["detector"] for a in after] == ["spoofing"]
    assert alert_items(aws) == after
    assert after[0]["evidence"]


def test_a_poison_record_stops_the_batch_there(aws: Any, consumer: Any) -> None:
    # GIVEN a good record, one that is not JSON, and a good one after it
    flow = Flow()
    good = {"events": [flow.accepted("o1", "acc_b", "buy", "1", "100.00", 0)]}
    later = {"events": wash_episode(flow, 10)}
    event = kinesis_event([good, b"{not json", later])
    # WHEN the batch is processed
    answer = consumer.handler(event, FakeLambdaContext())
    # THEN the poison record and every one after it are reported, and nothing after it applied
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert answer == {"batchItemFailures": [{"itemIdentifier": s} for s in sequence_numbers[1:]]}
    assert alert_items(aws) == []


def test_a_batch_of_commands_costs_no_aws_request(aws: Any, consumer: Any, redis_db: Any) -> None:
    # GIVEN commands of accounts whose owners are known already (read once, then cached)
    new = {"type": "new", "command_id": "c1", "order_id": "o1", "account_id": "acc_b", "symbol": "AAPL",
           "side": "buy", "order_type": "limit", "price": "100", "quantity": "1", "ts": ts(0)}  # fmt: skip
    _run(consumer, [new], commands=True)
    common_aws.reset_request_counts()
    # WHEN more commands of those accounts arrive
    cancel = {"type": "cancel", "command_id": "c2", "order_id": "o1", "account_id": "acc_b", "symbol": "AAPL",
              "ts": ts(5)}  # fmt: skip
    answer = _run(consumer, [new, cancel], commands=True, first=5)
    # THEN they are decoded and skipped by the detectors (the engine's sequenced events carry
    # them) without a request to AWS or Redis state
    assert answer == {"batchItemFailures": []}
    assert common_aws.request_counts() == {}
    assert redis_db.keys("*surveillance:state:*") == []


def test_a_symbol_locked_by_another_invocation_fails_the_batch_for_a_retry(redis_db: Any) -> None:
    # GIVEN AAPL's state lock held by another invocation
    from nexus_surveillance.repo import RedisSymbolState

    store = RedisSymbolState(redis_db, "nexus-test-surveillance", wait_s=0.2, sleep=lambda _: None)
    redis_db.set("nexus-test-surveillance:lock:AAPL", "someone-else", px=60_000)
    # WHEN this invocation wants AAPL and MSFT
    # THEN it gives up (the mapping retries the batch) and holds no lock of its own
    with pytest.raises(Unavailable), store.locked(["AAPL", "MSFT"]):
        pass
    assert redis_db.get("nexus-test-surveillance:lock:MSFT") is None
    assert redis_db.get("nexus-test-surveillance:lock:AAPL") == b"someone-else"


def test_a_warm_container_reloads_a_symbol_another_container_moved_on(aws: Any, consumer: Any) -> None:
    # GIVEN container A applied usr_a's large buy, then container B applied the fill
    spoof, rest, cancel = spoofing_episode()

    def records(events: list[Any], number: int) -> list[tuple[str, bytes]]:
        (record,) = kinesis_event([{"events": events}], first=number)["Records"]
        return [(record["kinesis"]["sequenceNumber"], base64.b64decode(record["kinesis"]["data"]))]

    container_a, container_b = consumer.build_live(), consumer.build_live()
    container_a.process(records(spoof, 1), commands=False)
    container_b.process(records(rest, 2), commands=False)
    # WHEN container A, still warm but a generation behind, gets the cancel
    outcome = container_a.process(records(cancel, 3), commands=False)
    # THEN it reloaded the symbol from Redis first: the alert counts B's fill
    (alert,) = alert_items(aws)
    assert outcome.alerts == [alert["alert_id"]] and alert["detector"] == "spoofing"


def test_the_scheduled_flush_judges_the_close_of_a_symbol_that_trades_no_more(aws: Any, consumer: Any) -> None:
    # GIVEN usr_a lifting AAPL 50 bps with the last two aggressive buys before the 16:00 New York
    # close (21:00 UTC on T0's day), and no AAPL event after the close
    flow = Flow()
    events = [
        flow.trade(("m0", "acc_b"), ("t0", "acc_c"), "10", "100.00", "buy", 22_800_000),  # 20:50 UTC
        flow.trade(("m1", "acc_b"), ("t1", "acc_a1"), "10", "100.20", "buy", 23_220_000),  # 20:57
        flow.trade(("m2", "acc_b"), ("t2", "acc_a1"), "10", "100.50", "buy", 23_280_000),  # 20:58
    ]
    _run(consumer, [{"events": events}])
    assert alert_items(aws) == []
    # WHEN the flush runs with its clock before, then after the close
    flush = consumer.build_live()
    before_close = 23_340_000 * 1_000_000 + int(T0.timestamp()) * 1_000_000_000  # 20:59 UTC
    assert flush.flush(before_close) == []
    raised = flush.flush(before_close + 120 * 1_000_000_000)  # 21:01 UTC
    # THEN the close is judged: one marking-the-close alert on usr_a, stored and dispatched once
    (alert,) = alert_items(aws)
    assert raised == [alert["alert_id"]] and alert["detector"] == "marking_the_close"
    assert alert["users"] == ["usr_a"] and alert["dispatched_at"]
    # AND a consumer container restored from Redis (snapshot + journal with the flush) raises nothing again
    assert consumer.build_live().flush(before_close + 180 * 1_000_000_000) == []
    assert len(alert_items(aws)) == 1
