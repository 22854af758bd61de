"""Whole-batch processing for stream consumers that coalesce their writes.

``OrderedStreamProcessor`` (``nexus_common.batch``) applies one record at a time. A consumer that
writes one item per account or position *per batch* instead reads the whole batch first:

* ``decode_batch`` decodes every record of a Kinesis event, in shard order, and sets the poison
  records (not JSON, not ``{"events": [...]}``, an invalid known event) apart. Nothing is
  written while decoding, so a poison record can never leave half an entry behind.
* The consumer applies the events of every other record (its writes are idempotent and guarded
  by per-symbol sequence numbers, so the records after a poison one are applied in order and
  are not held back by it), then answers ``failures(batch.poison)``: Lambda retries from the
  first poison record (the records after it change nothing the second time) and, after the
  mapping's ``MaximumRetryAttempts``, describes what is left on the ``OnFailure`` destination
  (the DLQ) and moves on.
* Any other error is raised: a function error, on which the mapping bisects and retries the
  batch (``BisectBatchOnFunctionError``); what was already written changes nothing on the retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from nexus_common.batch import ExecutionEventT, PoisonRecord, decode_execution_events


@dataclass(frozen=True)
class DecodedRecord:
    sequence_number: str
    events: list[ExecutionEventT]


@dataclass
class DecodedBatch:
    records: list[DecodedRecord] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)  # sequence numbers, in shard order
    sequence_numbers: list[str] = field(default_factory=list)  # of every record, in shard order

    @property
    def events(self) -> list[ExecutionEventT]:
        """The events of every decodable record, in shard order."""
        return [event for record in self.records for event in record.events]

    def until_first_poison(self) -> tuple[list[ExecutionEventT], list[str]]:
        """For a consumer that stops at the first poison record: the events of the records before
        it, and the sequence numbers of that record and every one after it (to report)."""
        records, failed = self.records_until_first_poison()
        return [event for record in records for event in record], failed

    def records_until_first_poison(self) -> tuple[list[list[ExecutionEventT]], list[str]]:
        """``until_first_poison`` with the events kept record by record."""
        if not self.poison:
            return [record.events for record in self.records], []
        stop = self.sequence_numbers.index(self.poison[0])
        before = set(self.sequence_numbers[:stop])
        return [r.events for r in self.records if r.sequence_number in before], self.sequence_numbers[stop:]


def decode_batch(event: dict[str, Any], logger: logging.Logger | Any | None = None) -> DecodedBatch:
    batch = DecodedBatch()
    for raw in event.get("Records") or []:
        record = KinesisStreamRecord(raw)
        sequence_number = record.kinesis.sequence_number
        batch.sequence_numbers.append(sequence_number)
        try:
            events = decode_execution_events(record)
        except PoisonRecord as exc:
            if logger is not None:
                logger.error("poison record", extra={"sequence_number": sequence_number, "reason": str(exc)})
            batch.poison.append(sequence_number)
            continue
        batch.records.append(DecodedRecord(sequence_number, events))
    return batch


def failures(sequence_numbers: list[str]) -> dict[str, list[dict[str, str]]]:
    """The ``ReportBatchItemFailures`` answer for these records (empty: the batch is done)."""
    return {"batchItemFailures": [{"itemIdentifier": s} for s in sequence_numbers]}
