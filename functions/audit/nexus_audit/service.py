"""The application layer of audit: a batch of source records appended to the audit log.

A batch is decoded in order into entries tagged with their record's index, appended grouped by
aggregate (``sequencing.append``: one head read per aggregate), and the first record not fully
appended is reported with every record after it (``batchItemFailures``): the stream resumes from
there and what was already appended is dropped as duplicates. A record that cannot be decoded
stops the batch at that record (nothing after it is appended, so no aggregate's order changes)
and, once the mapping's retries are spent, goes to the audit DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nexus_common.audit_items import MAX_GROUP
from nexus_common.events import utc_now
from nexus_common.logging import get_logger
from nexus_common.parallel import run_all

from nexus_audit.records import AuditEntry, UnreadableSource
from nexus_audit.sequencing import AppendOutcome, AuditLog, append

logger = get_logger()


def process(
    records: list[dict[str, Any]],
    decode: Callable[[dict[str, Any]], list[AuditEntry]],
    item_id: Callable[[dict[str, Any]], str],
    log: AuditLog,
    clock: Callable[[], datetime] = utc_now,
    max_group: int = MAX_GROUP,
) -> tuple[dict[str, Any], AppendOutcome]:
    """Decode, append, and answer Lambda with the records to retry (see module docstring);
    ``max_group`` entries at most in one record (1: a record per entry)."""
    entries: list[tuple[int, AuditEntry]] = []
    undecodable: int | None = None
    for index, record in enumerate(records):
        try:
            entries.extend((index, entry) for entry in decode(record))
        except (UnreadableSource, KeyError, TypeError, ValueError) as exc:
            logger.error("unreadable record", extra={"index": index, "error": str(exc)[:300]})
            undecodable = index
            break
    outcome = append(log, entries, clock, parallel=run_all, max_group=max_group)
    for error in outcome.errors:
        logger.warning("append failed", extra={"error": f"{type(error).__name__}: {str(error)[:300]}"})
    failed_from = min(i for i in (undecodable, outcome.first_failed) if i is not None) if (
        undecodable is not None or outcome.first_failed is not None) else None  # fmt: skip
    failures = [] if failed_from is None else [{"itemIdentifier": item_id(r)} for r in records[failed_from:]]
    logger.info(
        "audit batch",
        extra={"records": len(records), "written": outcome.written, "duplicates": outcome.duplicates,
               "failed": len(failures)},
    )  # fmt: skip
    return {"batchItemFailures": failures}, outcome
