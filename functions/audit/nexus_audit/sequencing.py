"""Appending entries to the audit log: per-aggregate sequence numbers that never skip or repeat.

The log (``AuditLog``, a DynamoDB table in production) holds, per aggregate, *records* at
``seq`` 1, 2, 3, ... and, per (aggregate, event id), one *claim*: the seq that event was given.
Only three conditional writes exist, and nothing is ever deleted:

* ``claim(aggregate, event_id, seq)``: create the claim unless it exists (else return the seq it
  holds);
* ``move_claim(aggregate, event_id, old, new)``: change a claim's seq, only if it still holds ``old``;
* ``put(record)``: create the record at (aggregate, seq) unless that seq exists (else return the
  event id of the record that holds it).

Appending event ``E`` to aggregate ``A`` whose last record the caller read as ``head``:

1. ``claim(A, E, head + 1)``: the seq ``s`` is ``head + 1``, or what an earlier attempt claimed.
2. ``put`` the record at ``s``. Written: done. Held by ``E`` itself: ``E`` was already appended
   (a redelivery, a replay, or a retry after a crash or a lost answer): nothing is written. Held by
   another event (another consumer of the same aggregate got there first, or the claim is left
   from an attempt that crashed before its record and others have appended since): read the head
   again, ``move_claim`` to ``head + 1`` and go to 2.

Why no seq is ever skipped: by induction, an aggregate's records are always exactly 1..H. A
record is only put at a claimed seq ``s``, and a claim is only ever ``head + 1`` for a head that
was seen in the records (read, or written, maybe a while ago: a head only grows, so an old one is
a lower bound, and too low a head only costs a refused put), so record ``s - 1`` existed when
``s`` was claimed, and records are never removed. The put succeeds only if ``s`` is free; with
1..H present and ``s - 1 <= H``, a free ``s`` is ``H + 1``. A claim whose record was never written
(a crash between the two writes, or an event that is never retried) leaves no hole: the head is
read from records, never from claims, so the next event takes that seq.

Why no event gets two seqs: an event has one claim (the claim item is unique per aggregate and
event id), and its record is written only at its claim's current seq. The claim moves only after
the put found that seq held by *another* event, that is, when no record of ``E`` exists at the old
seq; so ``E`` has at most one record. A redelivered or replayed event finds its claim, and its
record at the claimed seq. The events of one source shard are appended by one consumer at a time
and in order (Kinesis and DynamoDB streams deliver a shard in order to one invocation), so two
attempts for the same event never run at once; ``move_claim`` is conditional anyway.

A crash between the writes: after the claim and before the record, the retry finds the claim and
writes the record at that seq if it is still free (it is ``head + 1``: nothing was appended after
it) or moves the claim if another event took it. After the record, before the batch is
acknowledged: the retry finds its own record and writes nothing.

Cost per new event: two conditional puts (no transactions). Per batch, the heads of the
aggregates this process has not seen are read together (``heads``: batched consistent probes, one
request per round for all of them). An aggregate whose head this process has seen
(``known_head``: read or written here before) starts from that head without reading: a head that
was seen is a lower bound forever, which is all the argument above needs, and if others appended
since, the put is refused and the head is read then. A redelivered event: two refused puts (the
refusals return the item they hit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from nexus_audit.records import AuditEntry

MAX_RACES = 50  # how often one event may lose its seq to concurrent writers before giving up


@dataclass(frozen=True)
class AuditRecord:
    """An entry at its place in its aggregate's log."""

    entry: AuditEntry
    seq: int
    recorded_at: datetime


class AuditLog(Protocol):
    def head(self, aggregate: str, known: int = 0) -> int:
        """The highest seq of the aggregate's records (0 when it has none), read consistently;
        ``known`` is a seq known to exist, where the search may start."""

    def heads(self, aggregates: Sequence[str]) -> dict[str, int]:
        """``head`` of each aggregate, the reads of all of them made together."""

    def known_head(self, aggregate: str) -> int | None:
        """The highest seq of the aggregate this log has seen exist (read or written), without
        reading anything; None when it has seen none."""

    def claim(self, aggregate: str, event_id: str, seq: int) -> int | None:
        """Create the claim of ``event_id`` at ``seq`` unless one exists: None when created, else
        the seq the existing claim holds."""

    def move_claim(self, aggregate: str, event_id: str, old: int, new: int) -> bool:
        """Set the claim's seq to ``new`` if it holds ``old``; False if it does not."""

    def put(self, record: AuditRecord) -> str | None:
        """Create the record unless its seq exists: None when created, else the event id of the
        record that holds the seq."""


class Contention(RuntimeError):
    """An event kept losing its seq to other writers (retried with the batch)."""


@dataclass
class AppendOutcome:
    written: int = 0
    duplicates: int = 0
    # index (in the caller's numbering, e.g. the batch record) of the first entry not appended
    first_failed: int | None = None
    errors: list[BaseException] = field(default_factory=list)

    def fail(self, index: int, error: BaseException) -> None:
        self.first_failed = index if self.first_failed is None else min(self.first_failed, index)
        self.errors.append(error)


def append_one(log: AuditLog, entry: AuditEntry, head: int, now: datetime) -> tuple[int, bool]:
    """Append ``entry`` given its aggregate's ``head``; returns (the head after, whether written)."""
    aggregate = entry.aggregate
    held = log.claim(aggregate, entry.event_id, head + 1)
    seq = head + 1 if held is None else held
    for _ in range(MAX_RACES):
        holder = log.put(AuditRecord(entry, seq, now))
        if holder is None:
            return max(head, seq), True
        if holder == entry.event_id:
            return max(head, seq), False
        head = log.head(aggregate, known=seq)
        if not log.move_claim(aggregate, entry.event_id, seq, head + 1):
            raise Contention(f"the claim of {entry.event_id} on {aggregate} moved under us")
        seq = head + 1
    raise Contention(f"{entry.event_id} lost its seq on {aggregate} {MAX_RACES} times")


Runner = Callable[[Sequence[Callable[[], AppendOutcome]]], list[AppendOutcome]]


def _one_after_another(jobs: Sequence[Callable[[], AppendOutcome]]) -> list[AppendOutcome]:
    return [job() for job in jobs]


def _append_group(
    log: AuditLog, aggregate: str, group: list[tuple[int, AuditEntry]], now: datetime, head: int | BaseException
) -> AppendOutcome:
    """One aggregate's entries, in order, from ``head`` (or the error that kept it from being
    read), stopping at the first failure; never raises."""
    outcome = AppendOutcome()
    if isinstance(head, BaseException):
        outcome.fail(group[0][0], head)
        return outcome
    for index, entry in group:
        try:
            head, written = append_one(log, entry, head, now)
        except Exception as exc:  # noqa: BLE001 - per-aggregate boundary: this and later entries are retried
            outcome.fail(index, exc)
            break
        if written:
            outcome.written += 1
        else:
            outcome.duplicates += 1
    return outcome


def append(
    log: AuditLog,
    entries: Sequence[tuple[int, AuditEntry]],
    clock: Callable[[], datetime],
    parallel: Runner = _one_after_another,
) -> AppendOutcome:
    """Append entries (each tagged with its source index, in source order).

    Entries are grouped by aggregate, keeping their order within each; the heads of the
    aggregates this log has not seen (``known_head``) are read together (``heads``: one round of
    batched probes for a new aggregate, a few for one with records). An aggregate stops at its first
    failure (a later entry must not overtake it); the others go on. ``first_failed`` is the lowest
    index not appended: the caller reports that record and every later one for retry, and the
    retry's duplicates write nothing. Aggregates are independent logs, so ``parallel`` may run
    them at the same time (the consumers pass ``nexus_common.parallel.run_all``); each
    aggregate's entries still go one after the other, in source order.
    """
    groups: dict[str, list[tuple[int, AuditEntry]]] = {}
    for index, entry in entries:
        groups.setdefault(entry.aggregate, []).append((index, entry))
    now = clock()
    heads: dict[str, int | BaseException] = {}
    for aggregate in groups:
        known = log.known_head(aggregate)
        if known is not None:
            heads[aggregate] = known
    unknown = [aggregate for aggregate in groups if aggregate not in heads]
    if unknown:
        try:
            heads.update(log.heads(unknown))
        except Exception as exc:  # noqa: BLE001 - those aggregates fail (reported, retried); the others go on
            heads.update({aggregate: exc for aggregate in unknown})
    jobs = [functools.partial(_append_group, log, aggregate, group, now, heads[aggregate])
            for aggregate, group in groups.items()]  # fmt: skip
    outcome = AppendOutcome()
    for part in parallel(jobs):
        outcome.written += part.written
        outcome.duplicates += part.duplicates
        for error in part.errors:
            outcome.errors.append(error)
        if part.first_failed is not None:
            outcome.first_failed = (
                part.first_failed if outcome.first_failed is None else min(outcome.first_failed, part.first_failed)
            )
    return outcome
