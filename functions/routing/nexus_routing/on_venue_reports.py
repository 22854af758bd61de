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
from datetime import datetime
from decimal import Decimal
from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_routing.model import ZERO, ExecStatus, ExecutionReport, Fill, Liquidity, Side
from nexus_routing.nbbo import Nbbo
from nexus_routing.repo import DynamoVenueStats
from nexus_routing.service import stat_deltas, stats_key
from nexus_routing.settings import VenueStatsConsumerSettings
from nexus_routing.stats import VenueStats, size_bucket, update_venue_stats

logger = get_logger()
settings = lazy_settings(VenueStatsConsumerSettings)
store = lazy(lambda: DynamoVenueStats(settings().venue_stats_table))


def decode(data: dict[str, Any]) -> tuple[ExecutionReport, Decimal | None, Nbbo | None]:
    report = ExecutionReport(
        report_id=str(data["report_id"]), venue=str(data["venue"]), order_id=str(data["order_id"]),
        symbol=str(data["symbol"]), side=Side(data["side"]), status=ExecStatus(data["status"]),
        fills=tuple(Fill(Decimal(f["price"]), Decimal(f["quantity"]), Liquidity(f["liquidity"]), Decimal(f["fee"]))
                    for f in data["fills"]),
        cum_quantity=Decimal(data["cum_quantity"]), leaves_quantity=Decimal(data["leaves_quantity"]),
        latency_us=int(data["latency_us"]), ts=datetime.fromisoformat(data["ts"]), reason=data.get("reason"),
        parent_id=data.get("parent_id"),
    )
    quantity = None if data.get("order_quantity") is None else Decimal(data["order_quantity"])
    bid = None if data.get("nbbo_bid") is None else Decimal(data["nbbo_bid"])
    ask = None if data.get("nbbo_ask") is None else Decimal(data["nbbo_ask"])
    nbbo = None if bid is None and ask is None else Nbbo(report.symbol, bid, ZERO, (), ask, ZERO, (), ())
    return report, quantity, nbbo


def apply(stats_store: DynamoVenueStats, data: dict[str, Any], now_s: int) -> bool:
    """Apply one report's record; False when it was applied already."""
    report, quantity, nbbo = decode(data)
    stats = VenueStats()
    update_venue_stats(stats, report, quantity, nbbo)
    size = quantity if quantity is not None else report.cum_quantity + report.leaves_quantity
    if size <= 0:
        size = report.filled_quantity or Decimal(1)
    stat = stats.stat(report.venue, report.symbol, report.side, size)
    if stat is None:
        return False
    key = stats_key(report.symbol, report.side, size_bucket(size))
    return stats_store.apply(report.report_id, key, report.venue, stat_deltas(stat), now_s)


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from nexus_common.events import utc_now

    now_s = int(utc_now().timestamp())
    failed: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        sequence = str(record["kinesis"]["sequenceNumber"])
        try:
            data = json.loads(base64.b64decode(record["kinesis"]["data"]))
            report, _, _ = decode(data)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            logger.error("undecodable venue report skipped",
                         extra={"sequence_number": sequence, "error": str(exc)[:200]})
            continue
        try:
            apply(store(), data, now_s)
        except Exception as exc:  # noqa: BLE001 - per-record poison boundary: reported, retried, then the DLQ
            logger.warning("venue report not applied", extra={"report_id": report.report_id,
                                                               "error": f"{type(exc).__name__}: {exc}"[:300]})
            failed.append({"itemIdentifier": sequence})
            break  # the shard's later records wait for this one (ordered per venue)
    if failed:
        seqs = [str(r["kinesis"]["sequenceNumber"]) for r in event.get("Records") or []]
        failed = [{"itemIdentifier": s} for s in seqs[seqs.index(failed[0]["itemIdentifier"]):]]
    return {"batchItemFailures": failed}
