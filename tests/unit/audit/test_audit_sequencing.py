"""The audit log's per-aggregate sequence numbers: never a gap, never twice, under redelivery of a
batch, replay of the same events, a crash between the two writes, and a concurrent writer. Against
the audit table under moto, built from the template."""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_events import FakeLambdaContext, kinesis_event, load_event
from nexus_audit.records import SOURCE_AUDIT_EVENTS, AuditEntry
from nexus_audit.repo import DynamoAuditLog, record_to_item
from nexus_audit.sequencing import MAX_MARKS, AuditRecord, Head, append, append_one
from nexus_common.audit_items import expand

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/{name}"


def _table(aws: Any) -> Any:
    return boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AuditTable"))


def _records(aws: Any, aggregate: str) -> list[dict[str, Any]]:
    answer = _table(aws).query(KeyConditionExpression=Key("aggregate").eq(aggregate), ConsistentRead=True)
    return list(answer["Items"])


def _all_records(aws: Any) -> dict[str, list[dict[str, Any]]]:
    by_aggregate: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in _table(aws).scan(ConsistentRead=True)["Items"]:
        if not str(item["aggregate"]).startswith("claim#"):
            by_aggregate[str(item["aggregate"])].append(item)
    return by_aggregate


def _assert_gapless_and_unique(aws: Any) -> dict[str, list[str]]:
    """Every aggregate holds records 1..n and entries 1..m exactly, each event once; returns its
    event ids in entry order."""
    logs = {}
    for aggregate, items in _all_records(aws).items():
        items.sort(key=lambda i: int(i["seq"]))
        assert [int(i["seq"]) for i in items] == list(range(1, len(items) + 1)), aggregate
        entries = [entry for item in items for entry in expand(item)]
        assert [int(e["seq"]) for e in entries] == list(range(1, len(entries) + 1)), aggregate
        for item in items:  # what the time index needs of a record: its first entry is its earliest
            times = [str(e["ts"]) for e in expand(item)]
            assert times == sorted(times) and times[0] == item["ts"], (aggregate, item["seq"])
        ids = [str(e["event_id"]) for e in entries]
        assert len(ids) == len(set(ids)), aggregate
        logs[aggregate] = ids
    return logs


def _entry(event_id: str, aggregate_id: str = "acc_1", kind: str = "login_failed") -> AuditEntry:
    return AuditEntry("account", aggregate_id, event_id, kind, NOW, SOURCE_AUDIT_EVENTS)


def _execution_record(events: list[dict[str, Any]]) -> dict[str, Any]:
    event = kinesis_event({"events": events})
    for record in event["Records"]:
        record["eventSourceARN"] = STREAM.format(name="nexus-test-execution-events")
    return event


class CrashAfter:
    """An ``AuditLog`` that dies (as a Lambda that times out would) right after a chosen write."""

    def __init__(self, log: DynamoAuditLog, write: str, times: int = 1) -> None:
        self.log, self.write, self.times = log, write, times

    def head(self, aggregate: str, known: Head | None = None) -> Head:
        return self.log.head(aggregate, known)

    def heads(self, aggregates: list[str]) -> dict[str, Head]:
        return self.log.heads(aggregates)

    def known_head(self, aggregate: str) -> Head | None:
        return self.log.known_head(aggregate)

    def records_down(self, aggregate: str, top: int, bottom: int) -> Iterator[tuple[tuple[str, ...], Head]]:
        return self.log.records_down(aggregate, top, bottom)

    def events_at(self, aggregate: str, seq: int) -> tuple[str, ...] | None:
        return self.log.events_at(aggregate, seq)

    def claim(self, aggregate: str, event_id: str, seq: int) -> int | None:
        held = self.log.claim(aggregate, event_id, seq)
        self._maybe_crash("claim")
        return held

    def move_claim(self, aggregate: str, event_id: str, old: int, new: int) -> bool:
        moved = self.log.move_claim(aggregate, event_id, old, new)
        self._maybe_crash("move_claim")
        return moved

    def put(self, record: AuditRecord) -> tuple[str, ...] | None:
        holder = self.log.put(record)
        self._maybe_crash("put")
        return holder

    def _maybe_crash(self, write: str) -> None:
        if write == self.write and self.times > 0:
            self.times -= 1
            raise TimeoutError(f"crashed after {write}")


@pytest.fixture
def audit(aws: Any) -> Any:
    aws.use_function_env("AuditStreamsConsumerFunction")
    return aws


def test_each_aggregate_gets_1_to_n_in_source_order(audit: Any) -> None:
    # GIVEN an empty audit log
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    # WHEN a batch of entries of two aggregates, interleaved, is appended
    entries = [(i, _entry(f"e{i}", "acc_1" if i % 2 else "acc_2")) for i in range(8)]
    outcome = append(log, entries, lambda: NOW)
    # THEN each aggregate holds 1..4 in the order of the batch
    assert (outcome.written, outcome.duplicates, outcome.first_failed) == (8, 0, None)
    logs = _assert_gapless_and_unique(audit)
    assert logs == {"account#acc_1": ["e1", "e3", "e5", "e7"], "account#acc_2": ["e0", "e2", "e4", "e6"]}


def test_a_redelivered_batch_gets_no_second_sequence_number(audit: Any) -> None:
    from nexus_audit import on_event_streams

    # GIVEN the execution-events fixture appended once through the handler
    event = _execution_record(load_event("audit_execution_events.json")["events"])
    first = on_event_streams.handler(copy.deepcopy(event), FakeLambdaContext())
    assert first == {"batchItemFailures": []}
    before = _assert_gapless_and_unique(audit)
    # WHEN Lambda delivers the same batch again
    again = on_event_streams.handler(copy.deepcopy(event), FakeLambdaContext())
    # THEN nothing new is written: same records, same seqs
    assert again == {"batchItemFailures": []}
    assert _assert_gapless_and_unique(audit) == before
    assert before["order#TAKER"] == ["AAPL-3", "AAPL-4"]
    assert before["order#MAKER"] == ["AAPL-1", "AAPL-4", "AAPL-8"]


def test_with_runs_switched_off_each_entry_is_a_record_of_its_own(audit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_audit import on_event_streams

    # GIVEN the template's switch (AuditRecordRuns) on, as by default
    assert audit.env_for("AuditStreamsConsumerFunction")["AUDIT_RECORD_RUNS"] == "true"
    assert audit.env_for("AuditTablesConsumerFunction")["AUDIT_RECORD_RUNS"] == "true"
    event = _execution_record(load_event("audit_execution_events.json")["events"])
    # WHEN it is off (a stack upgraded from before runs) and the consumer takes a batch
    monkeypatch.setenv("AUDIT_RECORD_RUNS", "false")
    assert on_event_streams.handler(copy.deepcopy(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN every record holds one entry, numbered as its seq: what the consumers before runs wrote
    items = [item for records in _all_records(audit).values() for item in records]
    assert items and all("more" not in item and "first" not in item for item in items)
    assert _assert_gapless_and_unique(audit)["order#MAKER"] == ["AAPL-1", "AAPL-4", "AAPL-8"]


def test_a_replay_of_old_events_after_new_ones_changes_nothing(audit: Any) -> None:
    from nexus_audit import on_event_streams

    # GIVEN the engine's first two steps for MAKER were appended, then a third
    events = load_event("audit_execution_events.json")["events"]
    on_event_streams.handler(_execution_record(events[:4]), FakeLambdaContext())
    on_event_streams.handler(_execution_record(events[7:8]), FakeLambdaContext())
    # WHEN a restarted engine replays the journal and re-emits every event (same ids)
    answer = on_event_streams.handler(_execution_record(events), FakeLambdaContext())
    # THEN only the events never seen are appended, after what is there, with no gap
    assert answer == {"batchItemFailures": []}
    logs = _assert_gapless_and_unique(audit)
    assert logs["order#MAKER"] == ["AAPL-1", "AAPL-4", "AAPL-8"]
    assert logs["order#G1.sl"] == ["AAPL-6", "AAPL-7"]


def test_a_crash_between_the_claim_and_the_record_is_finished_by_the_retry(audit: Any) -> None:
    # GIVEN an aggregate with two records
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("a")), (1, _entry("b"))], lambda: NOW)
    # WHEN appending "c" crashes after its claim, before its record
    crashing = CrashAfter(log, "claim")
    outcome = append(crashing, [(0, _entry("c")), (1, _entry("d"))], lambda: NOW)
    assert outcome.first_failed == 0 and outcome.written == 0
    assert [int(i["seq"]) for i in _records(audit, "account#acc_1")] == [1, 2]
    # AND the batch is retried
    retry = append(log, [(0, _entry("c")), (1, _entry("d"))], lambda: NOW)
    # THEN "c" takes the seq it claimed and "d" the next: no gap, nothing twice
    assert (retry.written, retry.duplicates, retry.first_failed) == (2, 0, None)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "b", "c", "d"]


def test_a_claim_left_by_a_crash_whose_seq_was_taken_meanwhile_moves_to_the_head(audit: Any) -> None:
    # GIVEN "c" crashed after claiming seq 2 of the aggregate
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("a"))], lambda: NOW)
    assert append(CrashAfter(log, "claim"), [(0, _entry("c"))], lambda: NOW).first_failed == 0
    # AND another source appended two events to the same aggregate since (seq 2 and 3)
    append(log, [(0, _entry("x")), (1, _entry("y"))], lambda: NOW)
    # WHEN "c" is retried
    retry = append(log, [(0, _entry("c"))], lambda: NOW)
    # THEN it is appended once, at 4, and its claim says 4
    assert (retry.written, retry.duplicates) == (1, 0)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "x", "y", "c"]
    assert log.claim("account#acc_1", "c", 99) == 4


def test_a_crash_after_the_record_before_the_answer_writes_nothing_on_retry(audit: Any) -> None:
    # GIVEN appending "b" crashed after its record was written (the batch was not acknowledged)
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("a"))], lambda: NOW)
    assert append(CrashAfter(log, "put"), [(0, _entry("b"))], lambda: NOW).first_failed == 0
    # WHEN the batch is retried, twice
    first, second = (append(log, [(0, _entry("b")), (1, _entry("c"))], lambda: NOW) for _ in range(2))
    # THEN "b" stays at 2 and "c" is appended once, at 3
    assert (first.written, first.duplicates) == (1, 1)
    assert (second.written, second.duplicates) == (0, 2)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "b", "c"]


def test_a_crash_after_moving_a_claim_is_finished_by_the_retry(audit: Any) -> None:
    # GIVEN "c" claimed seq 2 and crashed; "x" then took 2; the retry of "c" moved its claim to 3 and crashed
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("a"))], lambda: NOW)
    append(CrashAfter(log, "claim"), [(0, _entry("c"))], lambda: NOW)
    append(log, [(0, _entry("x"))], lambda: NOW)
    assert append(CrashAfter(log, "move_claim"), [(0, _entry("c"))], lambda: NOW).first_failed == 0
    # WHEN it is retried again
    retry = append(log, [(0, _entry("c"))], lambda: NOW)
    # THEN "c" is at 3, once
    assert retry.written == 1
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "x", "c"]


def test_a_writer_with_a_stale_head_loses_the_race_and_appends_after_the_winner(audit: Any) -> None:
    # GIVEN two consumers of different streams both read the aggregate's head as 1
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("a"))], lambda: NOW)
    stale_head = log.head("account#acc_1")
    # WHEN one appends "cmd" first, then the other appends "evt" with the head it read
    append_one(log, _entry("cmd"), stale_head, NOW)
    head, written = append_one(log, _entry("evt"), stale_head, NOW)
    # THEN "evt" goes to 3, not over "cmd"
    assert (head.seq, written) == (3, True)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "cmd", "evt"]


def test_a_head_this_process_saw_costs_no_read_and_a_stale_one_only_a_refused_put(
    audit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two consumer processes, each with its own log; A has appended "a", so it knows head 1
    mine, other = DynamoAuditLog(audit.table_name("AuditTable")), DynamoAuditLog(audit.table_name("AuditTable"))
    append(mine, [(0, _entry("a"))], lambda: NOW)
    reads: list[dict[str, Any]] = []
    real_get = mine.table.get_item
    monkeypatch.setattr(mine.table, "get_item", lambda **kw: reads.append(kw["Key"]) or real_get(**kw))
    # WHEN A appends "b" in its next batch
    assert append(mine, [(0, _entry("b"))], lambda: NOW).written == 1
    # THEN it read nothing: it started from the head it had seen
    assert reads == []
    # WHEN the other process appends "c" and "d", and A then appends "e" from its stale head 2
    append(other, [(0, _entry("c")), (1, _entry("d"))], lambda: NOW)
    assert append(mine, [(0, _entry("e"))], lambda: NOW).written == 1
    # THEN A's put at 3 was refused, it read the head then, and "e" follows "d": no gap, no overwrite
    assert reads != []
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["a", "b", "c", "d", "e"]


def test_aggregates_appended_at_the_same_time_keep_each_ones_order_and_report_the_lowest_failure(
    audit: Any,
) -> None:
    from nexus_common.parallel import run_all

    # GIVEN a batch over twelve aggregates, one of which crashes on its second entry
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    entries = [(i, _entry(f"e{i}", f"acc_{i % 12}")) for i in range(60)]
    crash_on = "e13"  # acc_1's second entry

    class CrashOn(CrashAfter):
        def put(self, record: AuditRecord) -> tuple[str, ...] | None:
            if crash_on in record.event_ids:
                raise TimeoutError("crashed before the put")
            return self.log.put(record)

    # WHEN they are appended eight aggregates at a time
    outcome = append(CrashOn(log, "none"), entries, lambda: NOW, parallel=run_all)
    # THEN every other aggregate holds its five entries in source order, and acc_1 stops at e13
    assert outcome.first_failed == 13 and outcome.written == 11 * 5 + 1
    logs = _assert_gapless_and_unique(audit)
    for k in range(12):
        expected = [f"e{i}" for i in range(k, 60, 12)]
        assert logs[f"account#acc_{k}"] == (expected[:1] if k == 1 else expected)


def test_a_batch_that_fails_midway_reports_the_failed_record_and_every_later_one(audit: Any) -> None:
    from nexus_audit import on_event_streams

    # GIVEN three records, the second of which is not JSON
    events = load_event("audit_execution_events.json")["events"]
    event = _execution_record(events[:1])
    event["Records"] += _execution_record(events[2:4])["Records"]
    event["Records"].insert(1, copy.deepcopy(event["Records"][0]))
    event["Records"][1]["kinesis"]["data"] = "bm90IGpzb24="  # "not json"
    for i, record in enumerate(event["Records"]):
        record["kinesis"]["sequenceNumber"] = f"seq-{i}"
    # WHEN the handler gets the batch
    answer = on_event_streams.handler(event, FakeLambdaContext())
    # THEN the unreadable record and the one after it are reported, and only the first is appended
    assert answer == {"batchItemFailures": [{"itemIdentifier": "seq-1"}, {"itemIdentifier": "seq-2"}]}
    assert _assert_gapless_and_unique(audit) == {"order#MAKER": ["AAPL-1"]}


# -- marked entries: one put each ---------------------------------------------------------


def _marked(event_id: str, position: int, aggregate_id: str = "acc_1", key: str = "e:AAPL") -> AuditEntry:
    return replace(_entry(event_id, aggregate_id), mark=(key, position))


@pytest.fixture
def calls() -> Iterator[list[str]]:
    """The DynamoDB operations sent from here on."""
    from nexus_common import aws as nexus_aws

    sent: list[str] = []
    events = nexus_aws.resource("dynamodb").meta.client.meta.events
    events.register("before-call.dynamodb", lambda model, **_: sent.append(model.name), unique_id="audit-calls")
    yield sent
    events.unregister("before-call.dynamodb", unique_id="audit-calls")


def _claims(aws: Any) -> list[str]:
    return [str(i["aggregate"]) for i in _table(aws).scan(ConsistentRead=True)["Items"]
            if str(i["aggregate"]).startswith("claim#")]  # fmt: skip


def test_a_run_of_marked_entries_past_the_heads_marks_is_one_put_and_no_claim(audit: Any, calls: list[str]) -> None:
    # GIVEN an aggregate whose head this process wrote (a command, claimed, then an engine event)
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(0, _entry("cmd")), (1, _marked("AAPL-1", 1))], lambda: NOW)
    calls.clear()
    # WHEN the engine's next events come in one batch
    outcome = append(log, [(0, _marked("AAPL-2", 2)), (1, _marked("AAPL-5", 5))], lambda: NOW)
    # THEN they are one record, one conditional put: no read, no claim
    assert (outcome.written, outcome.duplicates) == (2, 0)
    assert calls == ["PutItem"]
    assert _claims(audit) == ["claim#account#acc_1#cmd"]
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["cmd", "AAPL-1", "AAPL-2", "AAPL-5"]
    items = _records(audit, "account#acc_1")
    assert [(int(i["seq"]), int(i.get("first", i["seq"])), len(expand(i))) for i in items] == [(1, 1, 1), (2, 2, 1),
                                                                                                (3, 3, 2)]
    assert {str(k): str(v) for k, v in items[-1]["marks"].items()} == {"e:AAPL": "5"}
    # AND the next record's first entry follows the run's last (entry 5 in record 4)
    append(log, [(0, _entry("late"))], lambda: NOW)
    last = _records(audit, "account#acc_1")[-1]
    assert (int(last["seq"]), int(last["first"]), last["event_id"]) == (4, 5, "late")


def test_a_batch_overlapping_a_written_run_writes_only_what_is_new_as_one_record(
    audit: Any, calls: list[str]
) -> None:
    # GIVEN engine events 1..3 appended as one record
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    assert append(log, [(i, _marked(f"AAPL-{i}", i)) for i in (1, 2, 3)], lambda: NOW).written == 3
    # WHEN a batch of 2..5 comes (a retry from record 2), in this process and then in a new one
    batch = [(i, _marked(f"AAPL-{i}", i)) for i in (2, 3, 4, 5)]
    first = append(log, batch, lambda: NOW)
    again = append(DynamoAuditLog(audit.table_name("AuditTable")), batch, lambda: NOW)
    # THEN 4 and 5 are one more record, each event is there once, numbered 1..5
    assert (first.written, first.duplicates, again.written, again.duplicates) == (2, 2, 0, 4)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == [f"AAPL-{i}" for i in range(1, 6)]
    assert [len(expand(i)) for i in _records(audit, "account#acc_1")] == [3, 2]


def test_a_retried_run_whose_first_entries_are_stored_keeps_its_record_findable_by_time(audit: Any) -> None:
    from datetime import timedelta

    from nexus_audit.repo import DynamoAuditReader
    from nexus_common.audit_items import by_time

    # GIVEN A appended, then a retry of A, B (2 s later) and C (1 s later: sources are not in time order)
    log = DynamoAuditLog(audit.table_name("AuditTable"))

    def at(event_id: str, seconds: int, position: int) -> tuple[int, AuditEntry]:
        return position, replace(_entry(event_id), ts=NOW + timedelta(seconds=seconds), mark=("s:x", position))

    append(log, [at("A", 0, 1)], lambda: NOW)
    assert append(log, [at("A", 0, 1), at("B", 2, 2), at("C", 1, 3)], lambda: NOW).written == 2
    # THEN every record starts with its earliest entry, and a time range holding only C finds it
    _assert_gapless_and_unique(audit)
    reader = DynamoAuditReader(audit.table_name("AuditTable"))
    found = list(by_time(reader.by_day, NOW + timedelta(milliseconds=900), NOW + timedelta(milliseconds=1500)))
    assert [r["event_id"] for r in found] == ["C"]


def test_a_run_is_cut_where_the_time_index_or_the_item_size_needs_it() -> None:
    from datetime import timedelta

    from nexus_audit.sequencing import runs
    from nexus_common.audit_items import GROUP_SPAN, MAX_GROUP

    def at(event_id: str, ts: datetime, marked: bool = True, size: int = 0) -> AuditEntry:
        entry = replace(_entry(event_id), ts=ts, details={"x": "y" * size} if size else {})
        return replace(entry, mark=("e:AAPL", len(event_id))) if marked else entry

    late = NOW.replace(hour=23, minute=59, second=58)
    entries = [
        at("a", NOW), at("b", NOW + GROUP_SPAN - timedelta(microseconds=1)),  # within the span of "a"
        at("c", NOW + GROUP_SPAN),  # the span is over: a new record
        at("d", NOW + GROUP_SPAN - timedelta(seconds=1)),  # earlier than its run's last: a new record
        at("cmd", NOW + GROUP_SPAN, marked=False),  # claimed: a record of its own
        at("x", NOW + 2 * GROUP_SPAN), at("y", NOW + 2 * GROUP_SPAN + timedelta(seconds=2)),
        at("z", NOW + 2 * GROUP_SPAN + timedelta(seconds=1)),  # later than the run's first, earlier than its last
        at("e", late), at("f", late + timedelta(seconds=3)),  # the next UTC day: a new record
        *(at(f"g{i}", NOW) for i in range(MAX_GROUP + 1)),  # at most MAX_GROUP in one record
        at("h", NOW), at("big", NOW, size=79_700),  # too big to share a record with "h"
    ]  # fmt: skip
    cut = [[entry.event_id for _, entry in run] for run in runs(list(enumerate(entries)))]
    assert cut == [
        ["a", "b"], ["c"], ["d"], ["cmd"], ["x", "y"], ["z"], ["e"], ["f"],
        [f"g{i}" for i in range(MAX_GROUP)], [f"g{MAX_GROUP}", "h"], ["big"],
    ]  # fmt: skip


def test_a_redelivered_marked_entry_is_found_reading_back_from_the_head(audit: Any, calls: list[str]) -> None:
    # GIVEN thirty engine events appended
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    append(log, [(i, _marked(f"AAPL-{i}", i)) for i in range(1, 31)], lambda: NOW)
    before = _assert_gapless_and_unique(audit)
    calls.clear()
    # WHEN a recent one and an old one are delivered again, in this process and in a new one
    again = append(log, [(0, _marked("AAPL-29", 29))], lambda: NOW)
    old = append(DynamoAuditLog(audit.table_name("AuditTable")), [(0, _marked("AAPL-3", 3))], lambda: NOW)
    # THEN nothing is written; the recent one cost one page of records, read back from the head
    assert (again.written, again.duplicates, old.written, old.duplicates) == (0, 1, 0, 1)
    assert calls[0] == "Query" and "PutItem" not in calls
    assert _assert_gapless_and_unique(audit) == before


def test_an_order_received_twice_is_recorded_once_and_another_receipt_is_looked_for(audit: Any) -> None:
    from nexus_audit.records import from_command

    # GIVEN an order's new command appended, then the engine's first event of the order
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    command = {"type": "new", "command_id": "c-1", "order_id": "o-1", "account_id": "a", "ts": "2026-01-05T14:30:00Z"}
    append(log, list(enumerate(from_command(command))), lambda: NOW)
    append(log, [(0, replace(_marked("AAPL-1", 1), aggregate_type="order", aggregate_id="o-1"))], lambda: NOW)
    # WHEN the same command comes again (published twice), and then another command naming the same order
    again = append(log, list(enumerate(from_command(command))), lambda: NOW)
    other = append(log, list(enumerate(from_command({**command, "command_id": "c-2"}))), lambda: NOW)
    # THEN the first is recorded once, and the second, sharing its mark, was looked for and appended
    assert (again.written, again.duplicates, other.written) == (0, 1, 1)
    assert _assert_gapless_and_unique(audit)["order#o-1"] == ["cmd:c-1", "AAPL-1", "cmd:c-2"]
    assert _claims(audit) == []


def test_positions_that_interleave_are_checked_against_the_records(audit: Any) -> None:
    # GIVEN a stream whose records reach the aggregate out of order (two shards of one table stream)
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    entries = [(i, _marked(f"s-{p}", p, key="s:t")) for i, p in enumerate((10, 5, 7))]
    # WHEN they are appended, and then delivered again
    first = append(log, entries, lambda: NOW)
    again = append(log, entries, lambda: NOW)
    # THEN each is there once: a position under the mark was looked for, not taken as a duplicate
    assert (first.written, again.duplicates) == (3, 3)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["s-10", "s-5", "s-7"]


def test_records_from_before_marks_are_read_back_for_a_marked_entry(audit: Any) -> None:
    # GIVEN an aggregate whose first record was written before records carried marks
    item = record_to_item(AuditRecord((_entry("AAPL-3"),), 1, NOW))
    del item["marks"]
    _table(audit).put_item(Item=item)
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    # WHEN that event comes again, then a new one, then the old one once more (in a new process)
    first = append(log, [(0, _marked("AAPL-3", 3)), (1, _marked("AAPL-9", 9))], lambda: NOW)
    again = append(DynamoAuditLog(audit.table_name("AuditTable")), [(0, _marked("AAPL-3", 3))], lambda: NOW)
    # THEN the old one is found each time, and the new record's marks cover only itself
    assert (first.written, first.duplicates, again.duplicates) == (1, 1, 1)
    assert _assert_gapless_and_unique(audit)["account#acc_1"] == ["AAPL-3", "AAPL-9"]
    assert int(_records(audit, "account#acc_1")[1]["marks_from"]) == 2


def test_a_record_keeps_at_most_max_marks_keys_and_then_covers_less() -> None:
    # GIVEN a head whose marks hold MAX_MARKS keys
    head = Head(7, {f"e:S{i}": 1 for i in range(MAX_MARKS)}, 1)
    # WHEN the next record adds a new key
    marks, marks_from = head.after(("e:NEW", 4))
    # THEN the oldest key goes, and the marks cover the new record only: the dropped key rules nothing out
    assert len(marks) == MAX_MARKS and "e:S0" not in marks and marks["e:NEW"] == 4
    assert marks_from == 8
    after = Head(8, marks, marks_from)
    assert not after.rules_out(("e:S0", 2)) and not after.rules_out(("e:NEW", 5))
    # AND a key already there only moves up
    assert head.after(("e:S3", 9)) == ({**head.marks, "e:S3": 9}, 1)
    assert head.after(("e:S3", 0)) == (dict(head.marks), 1)


# -- any schedule of crashes and redeliveries ------------------------------------------------

WRITES = ("claim", "put", "move_claim")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    sizes=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    batch=st.integers(1, 4),
)
def test_any_schedule_of_crashes_and_redeliveries_leaves_each_event_once_in_source_order(
    audit: Any, data: st.DataObject, sizes: tuple[int, int], batch: int
) -> None:
    # GIVEN two sources (say, order-commands and execution-events), each with its events for the
    # same two aggregates, consumed in batches that crash after any write and are redelivered
    log = DynamoAuditLog(audit.table_name("AuditTable"))
    run = uuid.uuid4().hex[:8]
    aggregates = (f"{run}-x", f"{run}-y")
    # (commands are claimed; the engine's events are marked with their position)
    sources = [
        [replace(_entry(f"{name}{i}", data.draw(st.sampled_from(aggregates))),
                 mark=("e:X", i) if name == "evt" else None) for i in range(size)]
        for name, size in zip(("cmd", "evt"), sizes, strict=True)
    ]  # fmt: skip
    positions = [0, 0]  # each source's checkpoint: everything before it is acknowledged
    while positions[0] < len(sources[0]) or positions[1] < len(sources[1]):
        # WHEN one source's next batch is delivered, to a consumer that may crash after a write
        source = data.draw(st.sampled_from([s for s in (0, 1) if positions[s] < len(sources[s])]))
        pending = sources[source][positions[source] : positions[source] + batch]
        crash = data.draw(st.none() | st.tuples(st.sampled_from(WRITES), st.integers(1, 3)))
        target: Any = log if crash is None else CrashAfter(log, crash[0], crash[1])
        outcome = append(target, list(enumerate(pending)), lambda: NOW)
        # (Lambda retries from the first record not appended; what was appended is acknowledged)
        positions[source] += len(pending) if outcome.first_failed is None else outcome.first_failed
        if data.draw(st.booleans()):  # and sometimes the whole source is replayed from the start
            append(log, list(enumerate(sources[source][: positions[source]])), lambda: NOW)
    # THEN every aggregate holds 1..n, each event once, each source's events in that source's order
    logs = _assert_gapless_and_unique(audit)
    for aggregate in aggregates:
        got = logs.get(f"account#{aggregate}", [])
        for events in sources:
            mine = [e.event_id for e in events if e.aggregate_id == aggregate]
            assert [e for e in got if e in set(mine)] == mine
        assert sorted(got) == sorted(e.event_id for events in sources for e in events if e.aggregate_id == aggregate)


def test_the_heads_of_a_batchs_aggregates_are_read_together(audit: Any) -> None:
    from nexus_common import aws as nexus_aws

    # GIVEN aggregates with 0, 1, 5 and 37 records
    table = audit.table_name("AuditTable")
    sizes = {"account#new": 0, "account#one": 1, "account#five": 5, "account#many": 37}
    writer = DynamoAuditLog(table)
    for aggregate, n in sizes.items():
        append(writer, [(i, _entry(f"{aggregate}-{i}", aggregate.split("#")[1])) for i in range(n)], lambda: NOW)
    rounds: list[int] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem",
                                lambda params, **_: rounds.append(len(params["RequestItems"][table]["Keys"])))
    # WHEN a process that saw none of them reads their heads
    reader = DynamoAuditLog(table)
    heads = reader.heads(list(sizes))
    # THEN each is its aggregate's last seq, the same as one by one, and is remembered
    assert {a: h.seq for a, h in heads.items()} == sizes
    probes: list[str] = []
    client.meta.events.register("before-parameter-build.dynamodb.GetItem",
                                lambda params, **_: probes.append(str(params["Key"]["aggregate"])))
    assert {a: DynamoAuditLog(table).head(a).seq for a in sizes} == sizes
    assert {a: getattr(reader.known_head(a), "seq", None) for a in sizes} == {a: n or None for a, n in sizes.items()}
    # AND the probes went together: the first round asked all four, and there were as many
    # rounds as the largest aggregate alone needs probes (gallop 1, 3, 7, 15, 31, 63, bisect to 37)
    assert rounds[0] == 4 and len(rounds) == probes.count("account#many") == 11 and rounds[-1] == 1
    # AND a new aggregate alone costs one request
    rounds.clear()
    assert DynamoAuditLog(table).heads(["account#other"]) == {"account#other": Head()} and rounds == [1]
