"""routing-requests queue -> a routed order executed on the venues, its fills sent to the engine.

Each message is one ``RouteOrderRequest`` the orders API sent for an order it stored and reserved
for, or a ``RouteCancelRequest`` for a routed order whose remainder rests on an external venue
(``RoutingService.cancel_entered``: cancelled there, its end sent to the engine; an order that is
not the account's or does not work on a venue is logged and dropped, since a retry cannot change
that). ``RoutingService.route_entered`` routes it (decisions stored and published, children sent to
the simulated venues under their locks, the parent stored with its ``routed_fills`` command) and
puts that command on ``order-commands``; the engine sequences it as ``venue_fill`` events and one
``route_ended``, which risk, the portfolio and the orders consumer book like the engine's own
fills. Requests per message: a parent's Query and the venues' Scan (about 3 DynamoDB reads), one
PutItem per decision and one for the parent, one PutRecords per stream written (decisions, venue
reports) and one PutRecord of the command; Redis: one lock per venue, one MGET, one MULTI.

Messages are routed one at a time, in order (they contend for the same venues' locks). A
redelivered message finds its parent stored and sends the same command again, which the engine
drops as a repeat. A message that fails is reported and comes back after the visibility timeout
(then the DLQ).
"""

from __future__ import annotations

from typing import Annotated, Any

from nexus_common.errors import Conflict, NotFound
from nexus_common.events import RouteCancelRequest, RouteOrderRequest
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from pydantic import Field, TypeAdapter

from nexus_routing.service import RoutingService
from nexus_routing.settings import RoutingRequestsSettings
from nexus_routing.wiring import routing_service

logger = get_logger()
settings = lazy_settings(RoutingRequestsSettings)
REQUEST_ADAPTER: TypeAdapter[RouteOrderRequest | RouteCancelRequest] = TypeAdapter(
    Annotated[RouteOrderRequest | RouteCancelRequest, Field(discriminator="type")]
)


@lazy
def service() -> RoutingService:
    return routing_service(settings())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed: list[str] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId"))
        try:
            request = REQUEST_ADAPTER.validate_json(record["body"])
            if isinstance(request, RouteCancelRequest):
                try:
                    commands = service().cancel_entered(request)
                except (NotFound, Conflict) as refused:  # final: retrying cannot change it
                    logger.warning("routed order not cancelled", extra={"order_id": request.order_id,
                                                                         "code": refused.code})
                    continue
                logger.info("routed order cancelled", extra={"order_id": request.order_id, "commands": len(commands)})
                continue
            command = service().route_entered(request)
        except Exception as exc:  # noqa: BLE001 - per-message boundary: reported, retried, then the DLQ
            logger.warning("routing request failed", extra={"message_id": message_id,
                                                             "error": f"{type(exc).__name__}: {exc}"[:300]})
            failed.append(message_id)
            continue
        logger.info("routed order routed", extra={"order_id": command.order_id, "fills": len(command.fills),
                                                  "end_reason": command.end_reason})
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
