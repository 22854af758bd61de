"""The edge authorizer: a credential -> the principal (context) and an IAM policy.

Serves two kinds of event:

* API Gateway REST ``REQUEST`` authorizer events (every route but the public ones): the
  credential is ``Authorization: Bearer <credential>``;
* API Gateway v2 WebSocket ``$connect`` authorizer events: ``Authorization`` header, or the
  ``token`` query-string parameter (browsers cannot set headers on a WebSocket).

A credential is an API key (``nxk_...``: looked up by its sha256 in ``ApiKeysTable``) or an
access token (a JWT from ``POST /v1/auth/login``: signature against the current and previous
signing keys, then its session must not be revoked). The user item gives the roles and accounts,
so a role change, a revoked key or a logout takes effect on the next request: the template turns
API Gateway's authorizer cache off (``ReauthorizeEvery: 0``) because the acting account depends on
the ``X-Account-Id`` header, which a cache keyed on ``Authorization`` would not see.

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
"""

from __future__ import annotations

import hmac
import math
from typing import Any, Final

from nexus_common import aws
from nexus_common.identity import ROLES, SCOPES, Principal
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.ratelimit import Bucket, Limit, LimiterUnavailable, RateLimiter
from nexus_common.redis_store import redis_client
from nexus_common.settings import NexusSettings, lazy, lazy_settings

from nexus_auth import tokens as tk
from nexus_auth.keys import bearer_key, hash_api_key
from nexus_auth.store import signing_key_ring

ORDER_ENTRY_METHODS: Final = frozenset({"POST", "DELETE", "PUT", "PATCH"})
_READ_METHODS: Final = ("GET", "HEAD", "OPTIONS")


class AuthorizerSettings(NexusSettings):
    api_keys_table: str
    users_table: str
    tokens_table: str
    signing_key_secret_arn: str
    rate_limit_credential: str  # per user, whatever the credential: tokens per second / burst, e.g. "200/400"
    rate_limit_orders: str  # order entry (POST/DELETE /v1/orders...) per user and per account
    rate_limit_ip: str  # per source IP


class Denied(Exception):
    """The credential is unusable: 401."""


logger = get_logger()
settings = lazy_settings(AuthorizerSettings)
api_keys = lazy(lambda: aws.dynamodb_table(settings().api_keys_table))
users = lazy(lambda: aws.dynamodb_table(settings().users_table))
sessions = lazy(lambda: aws.dynamodb_table(settings().tokens_table))
ring = lazy(lambda: signing_key_ring(settings().signing_key_secret_arn))
limiter = lazy(lambda: RateLimiter(redis_client()))


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


def _user(user_id: str) -> dict[str, Any]:
    item = users().get_item(Key={"pk": f"user#{user_id}"}, ConsistentRead=True).get("Item")
    if not item or item.get("status") != "active":
        raise Denied("unknown or disabled user")
    return dict(item)


def _roles(user: dict[str, Any]) -> tuple[str, ...]:
    return tuple(r for r in (str(x) for x in user.get("roles") or []) if r in ROLES)


def principal_of_key(api_key: str) -> Principal:
    key_hash = hash_api_key(api_key)
    item = api_keys().get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
    if not item or item.get("status") != "active" or not hmac.compare_digest(str(item.get("key_hash", "")), key_hash):
        raise Denied("unknown or revoked key")
    key_id = str(item.get("key_id", ""))
    scopes = tuple(s for s in (str(x) for x in item.get("scopes") or SCOPES) if s in SCOPES)
    bound = str(item["account_id"]) if item.get("account_id") else None
    if not item.get("user_id"):  # a key from before users: bound to its account, read + trade
        if bound is None:
            raise Denied("key without user or account")
        return Principal(f"legacy:{bound}", bound, (bound,), ("trader",), scopes, key_id=key_id)
    user = _user(str(item["user_id"]))
    owned = tuple(str(a) for a in user.get("accounts") or [])
    if bound is not None and bound not in owned:
        raise Denied("key bound to an account the user no longer owns")
    accounts = (bound,) if bound is not None else owned
    default = bound or str(user.get("default_account_id") or (owned[0] if owned else ""))
    return Principal(str(user["user_id"]), default, accounts, _roles(user), scopes, key_id=key_id)


def principal_of_token(token: str) -> Principal:
    try:
        claims = tk.verify_access_token(ring(), token)
    except tk.InvalidToken as exc:
        raise Denied(f"token refused: {exc}") from None
    family = sessions().get_item(Key={"pk": f"family#{claims.session_id}"}, ConsistentRead=True).get("Item")
    if not family or family.get("status") != "active" or family.get("user_id") != claims.user_id:
        raise Denied("session revoked or unknown")
    user = _user(claims.user_id)
    owned = tuple(str(a) for a in user.get("accounts") or [])
    default = str(user.get("default_account_id") or (owned[0] if owned else ""))
    return Principal(claims.user_id, default, owned, _roles(user), SCOPES, session_id=claims.session_id)


def authenticate(credential: str | None) -> Principal:
    if credential is None:
        raise Denied("missing or malformed credentials")
    api_key = bearer_key(f"Bearer {credential}") if credential.startswith("nxk_") else None
    if api_key is not None:
        return principal_of_key(api_key)
    if tk.looks_like_jwt(credential):
        return principal_of_token(credential)
    raise Denied("malformed credentials")


def act_as(principal: Principal, wanted: str | None) -> Principal:
    """The principal acting for ``X-Account-Id`` (when given); ``None`` if it is not theirs."""
    if wanted is None or not wanted.strip():
        return principal
    wanted = wanted.strip()
    for owned in principal.accounts:
        if hmac.compare_digest(owned.encode(), wanted.encode()):
            return Principal(
                principal.user_id, owned, principal.accounts, principal.roles, principal.scopes,
                principal.key_id, principal.session_id,
            )
    raise PermissionError("X-Account-Id names an account the caller does not own")


def is_order_entry(method: str, path: str) -> bool:
    return method in ORDER_ENTRY_METHODS and path.startswith("/v1/orders")


def buckets(principal: Principal, method: str, path: str, source_ip: str) -> list[Bucket]:
    """The buckets a request takes from: per user (whatever the credential: a user's keys and
    sessions share one bucket, so more keys buy no more requests), per source IP, and for order
    entry per user and per acting account."""
    config = settings()
    who = f"user:{principal.user_id}"
    chosen = [Bucket(who, Limit.parse(config.rate_limit_credential))]
    if source_ip:
        chosen.append(Bucket(f"ip:{source_ip}", Limit.parse(config.rate_limit_ip)))
    if is_order_entry(method, path):
        orders = Limit.parse(config.rate_limit_orders)
        chosen.append(Bucket(f"orders:{who}", orders))
        chosen.append(Bucket(f"orders:account:{principal.account_id}", orders))
    return chosen


def limits_context(principal: Principal, event: dict[str, Any]) -> dict[str, str]:
    """The rate-limit verdict for the context: ``retry_after`` (0: allowed; else 429), and
    ``limits: unavailable`` when Redis cannot be asked for order entry (503 with
    ``Retry-After``: order entry fails closed). Every other route fails open: served without
    limits while Redis is down (logged)."""
    context = event.get("requestContext") or {}
    source_ip = str((context.get("identity") or {}).get("sourceIp") or "")
    method = str(event.get("httpMethod") or context.get("httpMethod") or "")
    path = str(event.get("resource") or event.get("path") or "")
    try:
        wait = limiter().take(buckets(principal, method, path, source_ip))
    except LimiterUnavailable as exc:
        if is_order_entry(method, path):
            logger.warning("rate limiter unavailable: order entry refused", extra={"breaker": limiter().breaker.state})
            return {"retry_after": str(exc.retry_after), "limits": "unavailable"}
        logger.warning("rate limiter unavailable: served without limits", extra={"breaker": limiter().breaker.state})
        return {"retry_after": "0"}
    return {"retry_after": "0" if wait <= 0 else str(max(1, math.ceil(wait)))}


def api_resource(method_arn: str, method: str = "*") -> str:
    """``arn:...:apiId/stage/GET/v1/orders`` -> ``arn:...:apiId/stage/<method>/*``."""
    parts = method_arn.split("/")
    if len(parts) < 2 or not parts[0].startswith("arn:"):
        raise ValueError("not a method ARN")
    return f"{parts[0]}/{parts[1]}/{method}" + ("" if method == "*" else "/*")


def policy(
    principal: Principal, method_arn: str, websocket: bool, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    if websocket:
        resources: list[str] = [method_arn]
    elif "trade" in principal.scopes:
        resources = [api_resource(method_arn)]
    else:
        resources = [api_resource(method_arn, m) for m in _READ_METHODS]
    return {
        "principalId": principal.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}],
        },
        "context": {**principal.to_context(), **(limits or {"retry_after": "0"})},
    }


def deny(principal_id: str, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [method_arn]}],
        },
    }


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method_arn = str(event["methodArn"])
    websocket = is_websocket(event)
    try:
        principal = authenticate(credential_of(event))
    except Denied as exc:
        logger.info("denied", extra={"reason": str(exc), "websocket": websocket})
        raise Exception("Unauthorized") from None
    try:
        principal = act_as(principal, _header(event, "x-account-id"))
    except PermissionError:
        logger.info("denied: account not owned", extra={"user_id": principal.user_id})
        return deny(principal.user_id, method_arn)
    if not principal.account_id:
        logger.info("denied: no account", extra={"user_id": principal.user_id})
        return deny(principal.user_id, method_arn)
    limits = None if websocket else limits_context(principal, event)
    logger.info(
        "allowed",
        extra={"user_id": principal.user_id, "account_id": principal.account_id, "key_id": principal.key_id},
    )
    return policy(principal, method_arn, websocket, limits)
