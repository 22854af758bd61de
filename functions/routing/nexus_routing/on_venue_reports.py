"""venue-reports stream -> venue statistics (``update_venue_stats``), each report once.

A record is one execution report of a child order (``ExecutionReport.to_dict`` with the child's
``order_quantity`` on the report answering its submission, and the NBBO of its decision). The
report's contribution is computed with the library's ``update_venue_stats`` on an empty
``VenueStats`` and added to the stored counters in one transaction with the report's marker, so
a redelivered report changes nothing. A record that cannot be decoded is logged and skipped (it
would never decode); a failed write is reported and retried.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_routing.repo import DynamoVenueStats
from nexus_routing.service import apply_venue_report, decode_venue_report
from nexus_routing.settings import VenueStatsConsumerSettings

logger = get_logger()
settings = lazy_settings(VenueStatsConsumerSettings)
store = lazy(lambda: DynamoVenueStats(settings().venue_stats_table))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from nexus_common.events import utc_now

    now_s = int(utc_now().timestamp())
    failed: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        sequence = str(record["kinesis"]["sequenceNumber"])
        try:
            data = json.loads(base64.b64decode(record["kinesis"]["data"]))
            report, _, _ = decode_venue_report(data)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            logger.error("undecodable venue report skipped",
                         extra={"sequence_number": sequence, "error": str(exc)[:200]})
            continue
        try:
            apply_venue_report(store(), data, now_s)
        except Exception as exc:  # noqa: BLE001 - per-record poison boundary: reported, retried, then the DLQ
            logger.warning("venue report not applied", extra={"report_id": report.report_id,
                                                               "error": f"{type(exc).__name__}: {exc}"[:300]})
            failed.append({"itemIdentifier": sequence})
            break  # the shard's later records wait for this one (ordered per venue)
    if failed:
        seqs = [str(r["kinesis"]["sequenceNumber"]) for r in event.get("Records") or []]
        failed = [{"itemIdentifier": s} for s in seqs[seqs.index(failed[0]["itemIdentifier"]):]]
    return {"batchItemFailures": failed}
