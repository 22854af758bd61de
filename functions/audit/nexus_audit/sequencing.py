"""Appending entries to the audit log: per-aggregate sequence numbers that never skip or repeat.

The log (``AuditLog``, a DynamoDB table in production) holds, per aggregate, *records* at
``seq`` 1, 2, 3, ... Records are only ever created with a conditional put ("unless that seq
exists"), never changed or removed, so an aggregate's records are always exactly 1..H: a record
is only put at ``head + 1`` for a head that was seen in the records (a head only grows, so an old
one is a lower bound, and too low a head only costs a refused put).

What is left is never to append one event twice, however often it is delivered. Two ways:

**Marked entries: one conditional put.** Some sources say where each event stands in an order of
theirs: the engine's events are ``<symbol>-<seq>``, the ledger's and the settlements' entries
come from one table stream record each, and the command that creates an order is its
aggregate's only receipt (``mark``: a source key and the entry's position there). All that
matters is that the same event always carries the same mark; two events that share one only
cost a read (the second is looked for before it is put). Each record carries the
*marks* of its aggregate up to itself: per source key, the highest position among records
``marks_from``..seq (``marks_from`` = 1 for an aggregate whose every record carries them). A
record's marks are its predecessor's plus its own entry's, so when the record at the head covers
all records (``marks_from`` = 1) and an entry's position is above its key's mark there, no record
holds that entry, and it is put at ``head + 1`` at once. The put is conditional on ``head + 1``
being free, so the head that was checked is still the head when the record lands: nothing can
slip in between. Otherwise (a redelivery, a replay, two sources whose positions interleave, or
records older than the marks) the records are read back from the head (``records_down``) until
the entry is found (a duplicate: nothing written) or a record whose marks rule it out is reached
(everything below it is covered too), and the entry is then put as above. A refused put (another
writer took the seq) reads the head again and checks only the records added since.

**A run of marked entries: one record.** A record holds one entry, or a run of an aggregate's
consecutive marked entries from one batch (``runs``: on one UTC day, times never going down, none
``GROUP_SPAN`` or more after the first, at most ``MAX_GROUP``; ``nexus_common.audit_items`` is the
item format).
Entries are numbered 1, 2, 3, ... per aggregate across records, without a gap: a record's first
entry follows the previous record's last (``Head.next_entry``). The run is checked as one entry is
(the ones a record holds are dropped as duplicates) and the rest put as one record at ``head + 1``,
its marks those of all its entries: the put is all or nothing, so a retry finds the whole run or
none of it. An aggregate's entries of one batch (an account's fills and their journal entries, a
taker accepted and filled in one engine step) are then one write, not one each.

**Other entries: a claim, then the record.** An entry without a mark (a cancel or replace
request, an audit event: events an aggregate has many of, in no order the audit can see) has,
per (aggregate, event id), one *claim*: the seq that event was given. Two more conditional writes
exist for it:

* ``claim(aggregate, event_id, seq)``: create the claim unless it exists (else return the seq it
  holds);
* ``move_claim(aggregate, event_id, old, new)``: change a claim's seq, only if it still holds ``old``.

Appending event ``E`` to aggregate ``A`` whose head the caller saw:

1. ``claim(A, E, head + 1)``: the seq ``s`` is ``head + 1``, or what an earlier attempt claimed.
2. ``put`` the record at ``s``. Written: done. Held by ``E`` itself: ``E`` was already appended
   (a redelivery, a replay, or a retry after a crash or a lost answer): nothing is written. Held by
   another event (another consumer of the same aggregate got there first, or the claim is left
   from an attempt that crashed before its record and others have appended since): read the head
   again, ``move_claim`` to ``head + 1`` and go to 2.

A claim whose record was never written (a crash between the two writes) leaves no hole: the head
is read from records, never from claims, so the next event takes that seq. An event has one
claim, and its record is written only at its claim's current seq; the claim moves only after the
put found that seq held by *another* event, so ``E`` has at most one record. A claim is never
above the head + 1 it was made or moved for; when it is above the head the caller saw (that head
was stale), the head is read before the put, so every record is put right after the record whose
marks it extends.

Cost per new event: one conditional put when marked (shared by the run it is in), two otherwise
(no transactions). Per batch,
the heads of the aggregates this process has not seen are read together (``heads``: batched
consistent probes, one request per round for all of them). An aggregate whose head this process
has seen (``known_head``: read or written here before) starts from that head without reading: a
head that was seen is a lower bound forever, and if others appended since, the put is refused
and the head is read then.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from nexus_common.audit_items import GROUP_SPAN, MAX_GROUP, MAX_GROUP_BYTES

from nexus_audit.records import AuditEntry, Mark, day_of

MAX_RACES = 50  # how often one event may lose its seq to concurrent writers before giving up
MAX_MARKS = 64  # source keys kept in a record's marks; past that the oldest key is dropped (see Head.after)


@dataclass(frozen=True)
class Head:
    """A record of an aggregate (its head when it was read or written), as far as appending needs it:
    its seq and its marks. ``seq`` 0 is the empty log."""

    seq: int = 0
    marks: Mapping[str, int] = field(default_factory=dict)
    # the marks cover the records from this seq to ``seq``; 1: all of them (seq + 1: none)
    marks_from: int = 1
    # the entry number the next record starts at (a record holds one entry or a run of them)
    next_entry: int = 1

    def rules_out(self, mark: Mark | None) -> bool:
        """True when no record up to this one can hold the entry of ``mark``."""
        if mark is None or self.marks_from != 1:
            return False
        key, position = mark
        return position > self.marks.get(key, -1)

    def after(self, *marks_of_entries: Mark | None) -> tuple[dict[str, int], int]:
        """The marks (and from where they cover) of the record put right after this one, holding
        entries with these marks."""
        marks = dict(self.marks)
        marks_from = self.marks_from
        for mark in marks_of_entries:
            if mark is None:
                continue
            key, position = mark
            if position > marks.get(key, -1):
                marks.pop(key, None)
                marks[key] = position  # the latest last: the first is dropped (read back: in the store's order)
            if len(marks) > MAX_MARKS:
                del marks[next(iter(marks))]
                marks_from = self.seq + 1  # the dropped key's records are no longer covered: only the new one is
        return marks, marks_from


@dataclass(frozen=True)
class AuditRecord:
    """Entries (one, or a run of an aggregate's consecutive entries) at their place in its log:
    the record's ``seq``, the entry number of the first (``first``), and the marks up to it."""

    entries: tuple[AuditEntry, ...]
    seq: int
    recorded_at: datetime
    marks: Mapping[str, int] = field(default_factory=dict)
    marks_from: int = 1
    first: int = 0  # 0: ``seq`` (records without runs before them)

    def __post_init__(self) -> None:
        if not self.entries or len({entry.aggregate for entry in self.entries}) != 1:
            raise ValueError("a record holds one or more entries of one aggregate")
        if not self.first:
            object.__setattr__(self, "first", self.seq)

    @classmethod
    def after(cls, head: Head, entries: Sequence[AuditEntry], recorded_at: datetime) -> AuditRecord:
        marks, marks_from = head.after(*(entry.mark for entry in entries))
        return cls(tuple(entries), head.seq + 1, recorded_at, marks, marks_from, head.next_entry)

    @property
    def aggregate(self) -> str:
        return self.entries[0].aggregate

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(entry.event_id for entry in self.entries)

    @property
    def head(self) -> Head:
        return Head(self.seq, self.marks, self.marks_from, self.first + len(self.entries))


class AuditLog(Protocol):
    def head(self, aggregate: str, known: Head | None = None) -> Head:
        """The aggregate's last record (``Head()`` when it has none), read consistently; ``known`` is
        a record known to exist, where the search may start."""

    def heads(self, aggregates: Sequence[str]) -> dict[str, Head]:
        """``head`` of each aggregate, the reads of all of them made together."""

    def known_head(self, aggregate: str) -> Head | None:
        """The highest record of the aggregate this log has seen exist (read or written), without
        reading anything; None when it has seen none."""

    def records_down(self, aggregate: str, top: int, bottom: int) -> Iterator[tuple[tuple[str, ...], Head]]:
        """The event ids and marks of the records ``top`` down to ``bottom`` (inclusive), read
        consistently, a page at a time, highest first."""

    def claim(self, aggregate: str, event_id: str, seq: int) -> int | None:
        """Create the claim of ``event_id`` at ``seq`` unless one exists: None when created, else
        the seq the existing claim holds."""

    def move_claim(self, aggregate: str, event_id: str, old: int, new: int) -> bool:
        """Set the claim's seq to ``new`` if it holds ``old``; False if it does not."""

    def put(self, record: AuditRecord) -> tuple[str, ...] | None:
        """Create the record unless its seq exists: None when created, else the event ids of the
        record that holds the seq."""

    def events_at(self, aggregate: str, seq: int) -> tuple[str, ...] | None:
        """The event ids of the record at ``seq``, read consistently; None when there is none."""


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


def held(log: AuditLog, entries: Sequence[AuditEntry], head: Head, above: int = 0) -> set[str]:
    """The event ids among ``entries`` that a record from ``above + 1`` up to ``head`` holds: the
    records are read back from the head until each entry is found, or a record whose marks rule it
    out is reached (so do all below it). None is read when the head's marks rule them all out."""
    looked_for = [entry for entry in entries if head.seq > above and not head.rules_out(entry.mark)]
    found: set[str] = set()
    if not looked_for:
        return found
    for event_ids, record in log.records_down(looked_for[0].aggregate, head.seq, above + 1):
        still = []
        for entry in looked_for:
            if entry.event_id in event_ids:
                found.add(entry.event_id)
            elif not record.rules_out(entry.mark):
                still.append(entry)
        looked_for = still
        if not looked_for:
            break
    return found


def append_marked(log: AuditLog, entries: Sequence[AuditEntry], head: Head, now: datetime) -> tuple[Head, int, int]:
    """Append a run of entries with marks (``can_share_a_record``), in order: checked against the
    records (from their marks alone when they rule them out), then one conditional put of the ones
    not there, as one record at ``head + 1``. Returns the head after, and how many were written and
    how many were there already."""
    checked = 0  # records 1..checked are known not to hold any of the entries
    firsts: dict[str, AuditEntry] = {}
    for entry in entries:
        firsts.setdefault(entry.event_id, entry)  # an event twice in the run is appended once
    pending = list(firsts.values())
    duplicates = len(entries) - len(pending)
    for _ in range(MAX_RACES):
        found = held(log, pending, head, above=checked)
        duplicates += len(found)
        pending = [entry for entry in pending if entry.event_id not in found]
        if not pending:
            return head, 0, duplicates
        checked = head.seq
        record = AuditRecord.after(head, pending, now)
        if log.put(record) is None:
            return record.head, len(pending), duplicates
        head = log.head(record.aggregate, known=head)  # someone else took head + 1: read on from it
    raise Contention(f"{pending[0].event_id} lost its seq on {pending[0].aggregate} {MAX_RACES} times")


def append_claimed(log: AuditLog, entry: AuditEntry, head: Head, now: datetime) -> tuple[Head, bool]:
    """Append an entry without a mark: claim ``head + 1`` (or find an earlier attempt's claim), then
    put the record (of this entry alone) at the claimed seq."""
    aggregate, event_id = entry.aggregate, entry.event_id
    held_at = log.claim(aggregate, event_id, head.seq + 1)
    seq = head.seq + 1 if held_at is None else held_at
    for _ in range(MAX_RACES):
        if seq != head.seq + 1:  # an earlier attempt's claim, and the head seen is not right before it
            head = log.head(aggregate, known=head)
            if seq <= head.seq:
                holders = log.events_at(aggregate, seq)
                if holders is not None and event_id in holders:
                    return head, False
                seq = _move(log, entry, seq, head)
            elif seq > head.seq + 1:
                raise Contention(f"the claim of {event_id} on {aggregate} is at {seq}, past head {head.seq} + 1")
        record = AuditRecord.after(head, [entry], now)
        holders = log.put(record)
        if holders is None:
            return record.head, True
        if event_id in holders:
            return log.head(aggregate, known=head), False
        head = log.head(aggregate, known=head)
        seq = _move(log, entry, seq, head)
    raise Contention(f"{event_id} lost its seq on {aggregate} {MAX_RACES} times")


def _move(log: AuditLog, entry: AuditEntry, seq: int, head: Head) -> int:
    if not log.move_claim(entry.aggregate, entry.event_id, seq, head.seq + 1):
        raise Contention(f"the claim of {entry.event_id} on {entry.aggregate} moved under us")
    return head.seq + 1


def append_run(log: AuditLog, entries: Sequence[AuditEntry], head: Head, now: datetime) -> tuple[Head, int, int]:
    """Append what one record holds (``runs``: a run of marked entries, or one entry) given a
    record of its aggregate that exists (``head``); returns the head after, and how many entries
    were written and how many were there already."""
    if entries[0].mark is not None:
        return append_marked(log, entries, head, now)
    head, written = append_claimed(log, entries[0], head, now)
    return head, int(written), int(not written)


def append_one(log: AuditLog, entry: AuditEntry, head: Head, now: datetime) -> tuple[Head, bool]:
    """Append ``entry`` given a record of its aggregate that exists (``head``); returns the head
    after and whether the entry was written (False: it was there already)."""
    head, written, _ = append_run(log, [entry], head, now)
    return head, written == 1


def _size(entry: AuditEntry) -> int:
    """An entry's text in characters, and room for its attribute names (``MAX_GROUP_BYTES``)."""
    text = sum(len(key) + len(value) for key, value in entry.details.items()) + sum(len(x) for x in entry.links)
    return 200 + len(entry.event_id) + len(entry.kind) + len(entry.correlation_id or "") + text


def can_share_a_record(
    run: Sequence[AuditEntry], entry: AuditEntry, run_bytes: int, max_group: int = MAX_GROUP
) -> bool:
    """Whether ``entry`` may join ``run`` (marked entries of one aggregate) in one record: it is
    marked too, on the run's UTC day, no earlier than the run's last and less than ``GROUP_SPAN``
    later than its first (what the time index needs, ``nexus_common.audit_items``), and the record
    stays small. A run's times never go down, so any part of it (what is left once the entries
    already stored are dropped) starts with its earliest entry and spans no more."""
    if not run or entry.mark is None or len(run) >= max_group or run_bytes + _size(entry) > MAX_GROUP_BYTES:
        return False
    first = run[0].ts
    return run[-1].ts <= entry.ts < first + GROUP_SPAN and day_of(first) == day_of(entry.ts)


def runs(
    group: Sequence[tuple[int, AuditEntry]], max_group: int = MAX_GROUP
) -> Iterator[list[tuple[int, AuditEntry]]]:
    """One aggregate's entries, in order, cut into what each record holds: a run of marked entries
    that ``can_share_a_record`` (at most ``max_group``), or one entry."""
    run: list[tuple[int, AuditEntry]] = []
    entries: list[AuditEntry] = []  # the run's entries, as ``can_share_a_record`` reads them
    run_bytes = 0
    for index, entry in group:
        if run and can_share_a_record(entries, entry, run_bytes, max_group):
            run.append((index, entry))
            entries.append(entry)
            run_bytes += _size(entry)
            continue
        if run:
            yield run
        run, entries, run_bytes = [(index, entry)], [entry], _size(entry)
        if entry.mark is None:
            yield run
            run, entries, run_bytes = [], [], 0
    if run:
        yield run


Runner = Callable[[Sequence[Callable[[], AppendOutcome]]], list[AppendOutcome]]


def _one_after_another(jobs: Sequence[Callable[[], AppendOutcome]]) -> list[AppendOutcome]:
    return [job() for job in jobs]


def _append_group(
    log: AuditLog, aggregate: str, group: list[tuple[int, AuditEntry]], now: datetime, head: Head | BaseException,
    max_group: int = MAX_GROUP,
) -> AppendOutcome:  # fmt: skip
    """One aggregate's entries, in order, from ``head`` (or the error that kept it from being
    read), stopping at the first failure; never raises."""
    outcome = AppendOutcome()
    if isinstance(head, BaseException):
        outcome.fail(group[0][0], head)
        return outcome
    for run in runs(group, max_group):
        try:
            head, written, duplicates = append_run(log, [entry for _, entry in run], head, now)
            outcome.written += written
            outcome.duplicates += duplicates
        except Exception as exc:  # noqa: BLE001 - per-aggregate boundary: this and later entries are retried
            outcome.fail(run[0][0], exc)  # a record is one put: none of the run was written
            break
    return outcome


def append(
    log: AuditLog,
    entries: Sequence[tuple[int, AuditEntry]],
    clock: Callable[[], datetime],
    parallel: Runner = _one_after_another,
    max_group: int = MAX_GROUP,
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
    heads: dict[str, Head | BaseException] = {}
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
    jobs = [functools.partial(_append_group, log, aggregate, group, now, heads[aggregate], max_group)
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
