"""Every minute: close the detectors' windows that ended (service.LiveSurveillance.flush).

A window that closes on event time (marking the close is judged once the session close has
passed) would otherwise wait for the symbol's next event, perhaps the next day. The flush closes
windows up to ``now - FLUSH_LAG_SECONDS``: the consumer promises the detectors no event older
than that will come, so the lag bounds how far behind the stream the consumer may run. Same
per-symbol locks, alerts and dispatch as a batch of events. Then it dispatches the alerts of the
last ``REDISPATCH_HOURS`` that were stored but never dispatched (a batch that kept failing after
storing them), so their halt, publication, audit and notification are not lost with the batch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nexus_common.events import utc_now
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_surveillance.on_streams import build_live
from nexus_surveillance.settings import FlushSettings

logger = get_logger()
settings = lazy_settings(FlushSettings)
live = lazy(build_live)

_EPOCH_NS = 1_000_000_000
REDISPATCH_HOURS = 24  # how far back (window end) the flush looks for alerts never dispatched


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    until = utc_now() - timedelta(seconds=settings().flush_lag_seconds)
    now_ns = int(until.timestamp()) * _EPOCH_NS + until.microsecond * 1000
    raised = live().flush(now_ns)
    # alerts stored by a batch that failed before dispatching them (and may have gone to the DLQ)
    redispatched = live().redispatch(until - timedelta(hours=REDISPATCH_HOURS))
    logger.info("surveillance flush", extra={"until": until.isoformat(), "alerts": len(raised),
                                             "redispatched": len(redispatched)})  # fmt: skip
    return {"alerts": raised, "redispatched": redispatched}
