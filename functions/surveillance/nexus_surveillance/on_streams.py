"""order-commands + execution-events (Kinesis) -> the detectors -> alerts (service.LiveSurveillance).

One function, two event source mappings; it tells the streams apart by the record's
``eventSourceARN``. A batch is decoded in order; a record that is not JSON or not of the
platform's formats stops the batch there (the records before it are applied; it and every record
after it are reported, retried, then sent to the surveillance DLQ). Any other error fails the
whole batch (the mapping bisects and retries): the detector state is saved only after the
batch's alerts are stored, and the detectors' per-symbol watermarks make the retry change nothing
already applied. Requests per event: docs/capacity.md.
"""

from __future__ import annotations

import base64
from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings
from nexus_common.sqs import SqsBatchSender

from nexus_surveillance.repo import (
    AccountOwners,
    AwsAlertEffects,
    CachedThresholds,
    ComplianceRecipients,
    DynamoAlertStore,
    KillSwitch,
    RedisSymbolState,
    ThresholdsRepo,
)
from nexus_surveillance.service import LiveSurveillance
from nexus_surveillance.settings import ConsumerSettings

logger = get_logger()
settings = lazy_settings(ConsumerSettings)


def build_live() -> LiveSurveillance:
    """One container's consumer (its detectors in memory, its caches)."""
    config = settings()
    return LiveSurveillance(
        state=RedisSymbolState(redis_client(), config.surveillance_state_prefix),
        owners=AccountOwners(config.accounts_table),
        thresholds=CachedThresholds(
            ThresholdsRepo(config.surveillance_thresholds_table), config.thresholds_cache_seconds
        ),
        store=DynamoAlertStore(config.surveillance_alerts_table),
        effects=AwsAlertEffects(
            config.surveillance_alerts_stream,
            config.audit_stream,
            SqsBatchSender(config.notifications_queue_url),
            ComplianceRecipients(config.users_table),
            KillSwitch(config.accounts_table),
        ),
    )


live = lazy(build_live)


def is_command_stream(record: dict[str, Any]) -> bool:
    return str(record.get("eventSourceARN", "")).rsplit("/", 1)[-1].endswith("order-commands")


def shard_of(record: dict[str, Any]) -> str:
    """The record's shard (a Kinesis ``eventID`` is ``<shard id>:<sequence number>``) and stream."""
    stream = str(record.get("eventSourceARN", "")).rsplit("/", 1)[-1]
    return f"{stream}/{str(record.get('eventID', '')).split(':', 1)[0]}"


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raw = list(event.get("Records") or [])
    if not raw:
        return {"batchItemFailures": []}
    records = [(str(r["kinesis"]["sequenceNumber"]), base64.b64decode(r["kinesis"]["data"])) for r in raw]
    outcome = live().process(records, commands=is_command_stream(raw[0]), shard=shard_of(raw[0]))
    logger.info("surveillance batch", extra={"records": len(records), "events": outcome.events,
                                             "alerts": len(outcome.alerts), "dispatched": len(outcome.dispatched),
                                             "failed": len(outcome.failed)})  # fmt: skip
    return {"batchItemFailures": [{"itemIdentifier": s} for s in outcome.failed]}
