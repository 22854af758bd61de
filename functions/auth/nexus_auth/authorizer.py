"""The edge authorizer: a credential -> the principal (context) and an IAM policy.

Serves two kinds of event:

* API Gateway REST ``REQUEST`` authorizer events (every route but the public ones): the
  credential is ``Authorization: Bearer <credential>``;
* API Gateway v2 WebSocket ``$connect`` authorizer events: ``Authorization`` header, or the
  ``token`` query-string parameter (browsers cannot set headers on a WebSocket).

A credential is an API key (``nxk_...``: looked up by its sha256 in ``ApiKeysTable``) or an
access token (a JWT from ``POST /v1/auth/login``: signature against the current and previous
signing keys, then its session must not be revoked). The user item gives the roles and accounts.
The template turns API Gateway's authorizer cache off (``ReauthorizeEvery: 0``): the acting account
depends on the ``X-Account-Id`` header, which a cache keyed on ``Authorization`` would not see, and
every request must take from its rate-limit buckets. Instead a warm authorizer keeps the good key,
session and user items it read for ``AUTHORIZER_CACHE_SECONDS`` (``service.RecentCredentials``) and
serves the orders and market-data routes on them: there a revoked key, a logout or a disabled user
counts within that bound (2 s by default); every other route and every ``$connect`` reads afresh,
and a refusal is always decided on fresh reads. The decision (acting account, policy, limits) is
made again on every request.

Context (``nexus_common.identity``): ``user_id``, ``account_id`` (``X-Account-Id`` when owned,
else the default account; a header naming an account the caller does not own is denied),
``accounts``, ``roles``, ``scopes``, ``key_id``, ``session_id``, and ``retry_after`` (seconds;
``0`` when the rate limits allow the request: ``nexus_common.http`` answers 429 otherwise), and
``limits`` = ``unavailable`` when Redis cannot be asked about an order entry (503: it fails closed;
other routes fail open).
Policy: a ``trade`` credential may invoke the whole API; a ``read``-only one only ``GET``/``HEAD``
(API Gateway answers 403 to anything else). An unusable credential raises
``Exception("Unauthorized")`` (401); any other failure raises something else (API Gateway: 500),
so a credential is never accepted by accident.

This module parses the event and answers; the decision is ``nexus_auth.service.EdgeAuthorizer``
(its rules in ``nexus_auth.domain``). It keeps its name: its trigger is API Gateway's authorizer
(the REST API's ``ApiKeyAuthorizer`` and the WebSocket API's ``$connect``), as ``api.py`` is named
for the HTTP trigger.
"""

from __future__ import annotations

from typing import Any

from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.ratelimit import RateLimiter
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings

from nexus_auth import tokens as tk
from nexus_auth.domain import RateLimits
from nexus_auth.repo import DynamoIdentityStore, TableNames, signing_key_ring
from nexus_auth.service import Denied, EdgeAuthorizer, EdgeRequest, RecentCredentials
from nexus_auth.settings import AuthorizerSettings

logger = get_logger()
settings = lazy_settings(AuthorizerSettings)
ring = lazy(lambda: signing_key_ring(settings().signing_key_secret_arn))
limiter = lazy(lambda: RateLimiter(redis_client()))


store = lazy(
    lambda: RecentCredentials(
        DynamoIdentityStore(
            TableNames(
                users=settings().users_table,
                api_keys=settings().api_keys_table,
                tokens=settings().tokens_table,
                accounts="",
            )
        ),
        settings().authorizer_cache_seconds,
    )
)


def limits() -> RateLimits:
    config = settings()
    return RateLimits(config.rate_limit_credential, config.rate_limit_orders, config.rate_limit_ip)


edge = lazy(lambda: EdgeAuthorizer(store, ring, limiter, limits, logger))


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None


def is_websocket(event: dict[str, Any]) -> bool:
    context = event.get("requestContext") or {}
    return context.get("eventType") == "CONNECT" or str(event.get("methodArn", "")).endswith("/$connect")


def credential_of(event: dict[str, Any]) -> str | None:
    """The raw credential: the bearer of ``Authorization``; for WebSocket also ``?token=``."""
    header = _header(event, "authorization")
    if header is not None:
        if len(header) > tk.MAX_TOKEN_LENGTH + 16:
            return None
        parts = header.strip().split()
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1]
        return None
    if is_websocket(event):
        token = (event.get("queryStringParameters") or {}).get("token")
        if isinstance(token, str) and 0 < len(token) <= tk.MAX_TOKEN_LENGTH:
            return token
    return None


def request_of(event: dict[str, Any]) -> EdgeRequest:
    context = event.get("requestContext") or {}
    return EdgeRequest(
        method_arn=str(event["methodArn"]),
        websocket=is_websocket(event),
        credential=credential_of(event),
        account_header=_header(event, "x-account-id"),
        method=str(event.get("httpMethod") or context.get("httpMethod") or ""),
        path=str(event.get("resource") or event.get("path") or ""),
        source_ip=str((context.get("identity") or {}).get("sourceIp") or ""),
    )


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = request_of(event)
    try:
        return edge().authorize(request)
    except Denied as exc:
        logger.info("denied", extra={"reason": str(exc), "websocket": request.websocket})
        raise Exception("Unauthorized") from None  # API Gateway's 401: the message is its contract
