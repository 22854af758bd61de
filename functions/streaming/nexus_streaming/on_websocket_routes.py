"""WebSocket API routes: ``$connect``, ``$disconnect``, ``subscribe``, ``unsubscribe``, ``$default``.

The handler parses the route's event; subscribing and unsubscribing is
``nexus_streaming.service.subscription``. ``$connect`` has passed the REQUEST authorizer (the
same credentials as the REST API); its context (``account_id``, ``accounts``, ``user_id``,
``key_id``, ``session_id``) comes with every later message of the connection, and the
connection record keeps the credential's ids. Answers to ``subscribe`` / ``unsubscribe``
(``subscribed``, ``unsubscribed``, ``error``) are posted back to the connection through the
Management API. A ``subscribe`` re-checks the credential (cached for
``CREDENTIAL_CACHE_SECONDS``): a revoked key, a logged-out session or a disabled user gets an
``unauthorized`` error and the connection is closed.
"""

from __future__ import annotations

from typing import Any

from nexus_common.credentials import Credential
from nexus_common.errors import NexusError, Unauthorized, ValidationFailed
from nexus_common.events import utc_now
from nexus_common.guarded_push import Guard, StreamingConnections, credential_check
from nexus_common.http import validate_input
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.jsonutil import JSONError, dumps, loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.push import Connection, ManagementApi
from nexus_common.settings import lazy, lazy_settings

from nexus_streaming import service
from nexus_streaming.domain import SubscriptionRequest, control
from nexus_streaming.revocations import CredentialRevoked
from nexus_streaming.settings import RoutesSettings

logger = get_logger()
settings = lazy_settings(RoutesSettings)
store = lazy(lambda: StreamingConnections(settings().connections_table))
management = lazy(lambda: ManagementApi(settings().ws_management_endpoint))
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))
guard = lazy(lambda: Guard(store(), management(), credential_check(settings())))

OK = {"statusCode": 200}


def connection_of(context: dict[str, Any]) -> Connection:
    """The caller, from the authorizer context API Gateway attaches to every route."""
    authorizer = context.get("authorizer") or {}
    account_id = authorizer.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise Unauthorized("unauthorized", "missing or invalid credentials")
    accounts = tuple(a for a in str(authorizer.get("accounts") or "").split(",") if a)
    user_id = authorizer.get("user_id")
    return Connection(
        connection_id=str(context["connectionId"]),
        account_id=account_id,
        accounts=accounts or (account_id,),
        user_id=str(user_id) if user_id else None,
    )


def credential_of(context: dict[str, Any]) -> Credential | None:
    """The ids of the credential ``$connect`` was authorized with (from the authorizer context)."""
    return Credential.from_item(dict(context.get("authorizer") or {}))


def _request(body: Any) -> SubscriptionRequest:
    try:
        data = loads(body or "")
    except JSONError as exc:
        raise ValidationFailed("malformed_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ValidationFailed("malformed_json", "a message must be a JSON object")
    return validate_input(SubscriptionRequest, data)


def _reply(connection_id: str, message: dict[str, Any]) -> None:
    management().post(connection_id, dumps(message).encode())


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    route = request_context.get("routeKey")
    connection_id = str(request_context.get("connectionId", ""))
    if route == "$disconnect":
        store().remove(connection_id)
        return OK
    try:
        connection = connection_of(request_context)
    except NexusError:
        return {"statusCode": 401}
    credential = credential_of(request_context)
    if route == "$connect":
        store().add_with(connection, credential, utc_now())
        logger.info("connected", extra={"account_id": connection.account_id})
        return OK
    try:
        if route in ("subscribe", "unsubscribe"):
            request = _request(event.get("body"))
            answer = service.subscription(request, connection, credential, store(), guard(), instruments())
        else:
            raise ValidationFailed("unknown_action", "action must be subscribe or unsubscribe", "action")
    except NexusError as exc:
        _reply(connection_id, control("error", **exc.body()))
        if isinstance(exc, CredentialRevoked):
            guard().close(connection_id, "credential no longer valid")
        return {"statusCode": exc.status}
    _reply(connection_id, answer)
    return OK
