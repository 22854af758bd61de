"""surveillance-scans queue -> one historical scan per message (service.run_scan)."""

from __future__ import annotations

from typing import Any

from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_surveillance.repo import AccountOwners, AuditHistory, ScansRepo, ThresholdsRepo
from nexus_surveillance.service import run_scan
from nexus_surveillance.settings import ScanSettings

logger = get_logger()
settings = lazy_settings(ScanSettings)
scans = lazy(lambda: ScansRepo(settings().surveillance_scans_table))
history = lazy(lambda: AuditHistory(settings().audit_table))
owners = lazy(lambda: AccountOwners(settings().accounts_table))
thresholds = lazy(lambda: ThresholdsRepo(settings().surveillance_thresholds_table))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        scan_id = ""
        try:
            scan_id = str(loads(record["body"])["scan_id"])
            current = {name: dict(e.get("thresholds") or {}) for name, e in thresholds().current().items()}
            result = run_scan(scan_id, scans(), history(), owners(), current)
            logger.info("scan", extra=result)
        except Exception as exc:  # noqa: BLE001 - per-message poison boundary: reported, redelivered, then the DLQ
            logger.warning("scan failed", extra={"scan_id": scan_id, "error": f"{type(exc).__name__}: {exc}"[:300]})
            if scan_id:
                try:
                    scans().set_status(scan_id, "failed", error=type(exc).__name__)
                except Exception:  # noqa: BLE001 - best effort: the failure is already reported
                    logger.warning("scan status not recorded", extra={"scan_id": scan_id})
            failed.append({"itemIdentifier": str(record.get("messageId"))})
    return {"batchItemFailures": failed}
