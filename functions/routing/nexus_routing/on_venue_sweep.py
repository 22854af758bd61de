"""Scheduled: the routed orders resting on the simulated external venues (``RoutingService.sweep``).

Each run expires the ``day`` remainders whose session closed, runs each venue's outside flow one
horizon over the routed children (they fill with the probability the venue's fill model gives),
and sends the engine what the venues reported since the last run: the orders' fills with their
running totals, and the end of those whose child is done (filled, cancelled, expired). The
engine sequences them as ``venue_fill`` and ``route_ended`` events, which risk, the portfolio and
the orders consumer book like any fill.

Requests per run: a Scan of the venues and one of the instruments (the venues' books), one
BatchGetItem of the parents with routed children (100 a request; none when nothing rests), one
PutRecord per command, one PutItem per order that changed and one PutRecords of their reports
(venue statistics); Redis: one lock per venue, one MGET, one MULTI. A run that fails saves no
venue; the next one sends the same commands (the engine drops a repeat by its id) or none (the
stored parent has them).
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings

from nexus_routing.service import RoutingService
from nexus_routing.settings import RoutingRequestsSettings
from nexus_routing.wiring import routing_service

logger = get_logger()
settings = lazy_settings(RoutingRequestsSettings)


@lazy
def service() -> RoutingService:
    return routing_service(settings())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    counts = service().sweep()
    if counts["unknown_reports"] or counts["ended_reports"]:  # reports no working order takes: looked into
        logger.warning("venues swept with reports no working order takes", extra=counts)
    elif counts["commands"] or counts["expired"]:
        logger.info("venues swept", extra=counts)
    return counts
