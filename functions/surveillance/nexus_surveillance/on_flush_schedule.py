"""Every minute: close the detectors' windows that ended (service.LiveSurveillance.flush_behind_consumer).

A window that closes on event time (marking the close is judged once the session close has
passed) would otherwise wait for the symbol's next event, perhaps the next day. The flush closes
each symbol's windows up to how far the live consumer has got in the symbol's shard (the newest
engine time it applied there, recorded with each batch) minus ``FLUSH_LAG_SECONDS``, the grace
for events a little out of time order across symbols. Never by the wall clock: a consumer that is
behind holds the flush back (an event still on its way would find its window closed without it);
a shard with no event since holds its symbols' windows until its next one. Same per-symbol locks,
alerts and dispatch as a batch of events. Then it dispatches the alerts of the last
``REDISPATCH_HOURS`` that were stored but never dispatched (a batch that kept failing after
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
    grace = settings().flush_lag_seconds
    raised = live().flush_behind_consumer(grace * _EPOCH_NS)
    # alerts stored by a batch that failed before dispatching them (and may have gone to the DLQ)
    since = utc_now() - timedelta(seconds=grace) - timedelta(hours=REDISPATCH_HOURS)
    redispatched = live().redispatch(since)
    logger.info("surveillance flush", extra={"alerts": len(raised), "redispatched": len(redispatched)})
    return {"alerts": raised, "redispatched": redispatched}
