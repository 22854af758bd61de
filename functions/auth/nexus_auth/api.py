"""Auth, users and API keys HTTP API (Chalice). Handlers are thin: parse, call, answer.

Public (no authorizer; rate limited here per source IP): ``POST /v1/auth/register``,
``POST /v1/auth/login``, ``POST /v1/auth/refresh``. Behind the authorizer: ``POST
/v1/auth/logout``, ``GET|PATCH /v1/users/me``, ``POST /v1/users/me/accounts``, ``GET|POST
/v1/keys``, ``DELETE /v1/keys/{key_id}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalice.app import Chalice, Request, Response
from nexus_common.audit import KinesisAuditSink
from nexus_common.events import utc_now
from nexus_common.http import install_error_handling, json_response, parse_body
from nexus_common.identity import caller
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.ratelimit import RateLimiter
from nexus_common.redis_store import redis_client
from nexus_common.settings import lazy, lazy_settings

from nexus_auth import models as m
from nexus_auth.domain import SessionPolicy, key_to_wire, profile_to_wire
from nexus_auth.passwords import Argon2Params, Passwords
from nexus_auth.repo import DynamoIdentityStore, TableNames, signing_key_ring
from nexus_auth.service import IdentityService, PublicRouteLimits
from nexus_auth.settings import AuthApiSettings

app = Chalice(app_name="nexus-auth", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)
settings = lazy_settings(AuthApiSettings)


@lazy
def service() -> IdentityService:
    config = settings()
    return IdentityService(
        DynamoIdentityStore(
            TableNames(
                users=config.users_table,
                api_keys=config.api_keys_table,
                tokens=config.tokens_table,
                accounts=config.accounts_table,
            )
        ),
        Passwords(Argon2Params(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism)),
        signing_key_ring(config.signing_key_secret_arn),
        KinesisAuditSink(config.audit_stream),
        SessionPolicy(
            access_ttl=timedelta(seconds=config.access_token_ttl_seconds),
            refresh_ttl=timedelta(seconds=config.refresh_token_ttl_seconds),
            lockout_threshold=config.lockout_threshold,
            lockout=timedelta(seconds=config.lockout_seconds),
            max_api_keys=config.max_api_keys_per_user,
            max_accounts=config.max_accounts_per_user,
        ),
    )


limiter = lazy(lambda: RateLimiter(redis_client()))


def _source_ip(request: Request) -> str:
    context = request.context if isinstance(request.context, dict) else {}
    return str((context.get("identity") or {}).get("sourceIp") or "")


public_limits = lazy(lambda: PublicRouteLimits(limiter, lambda: settings().rate_limit_auth_ip, logger))


def _limit_public(request: Request, route: str) -> None:
    """Per source IP (``PublicRouteLimits``: ``register`` fails closed while Redis is down)."""
    public_limits().check(route, _source_ip(request))


def _no_store(body: Any, status: int = 200) -> Response:
    return json_response(body, status, {"Cache-Control": "no-store"})


@app.route("/v1/auth/register", methods=["POST"])
@documented(
    summary="Register a user (answers the same whether or not the email is taken)",
    request=m.RegisterRequest, response=m.RegisterResponse, status=202, tags=("auth",),
)
def register() -> Response:
    request = app.current_request
    _limit_public(request, "register")
    body = parse_body(request, m.RegisterRequest)
    service().register(body.email, body.password, body.name, utc_now())
    return json_response(
        {"status": "accepted", "message": "if the address can be registered, it is: log in with it"}, 202
    )


@app.route("/v1/auth/login", methods=["POST"])
@documented(summary="Log in: an access token (15 min) and a refresh token", request=m.LoginRequest,
            response=m.TokenResponse, tags=("auth",))
def login() -> Response:
    request = app.current_request
    _limit_public(request, "login")
    body = parse_body(request, m.LoginRequest)
    pair = service().login(body.email, body.password, utc_now(), _source_ip(request))
    return _no_store(pair.to_wire())


@app.route("/v1/auth/refresh", methods=["POST"])
@documented(summary="Swap a refresh token for new tokens (a reused one ends the session)",
            request=m.RefreshRequest, response=m.TokenResponse, tags=("auth",))
def refresh() -> Response:
    request = app.current_request
    _limit_public(request, "refresh")
    body = parse_body(request, m.RefreshRequest)
    return _no_store(service().refresh(body.refresh_token, utc_now()).to_wire())


@app.route("/v1/auth/logout", methods=["POST"])
@documented(summary="End the session of the access token", response=m.LogoutResponse, tags=("auth",))
def logout() -> Response:
    service().logout(caller(app.current_request), utc_now())
    return json_response({"status": "logged_out"})


@app.route("/v1/users/me", methods=["GET"])
@documented(summary="Your profile: roles and accounts", response=m.ProfileEnvelope, tags=("users",))
def get_me() -> Response:
    principal = caller(app.current_request)
    return json_response({"user": profile_to_wire(service().profile(principal.user_id))})


@app.route("/v1/users/me", methods=["PATCH"])
@documented(summary="Update your name or default account", request=m.ProfileUpdate,
            response=m.ProfileEnvelope, tags=("users",))
def update_me() -> Response:
    request = app.current_request
    principal = caller(request)
    body = parse_body(request, m.ProfileUpdate)
    user = service().update_profile(principal, body.name, body.default_account_id)
    return json_response({"user": profile_to_wire(user)})


@app.route("/v1/users/me/accounts", methods=["POST"])
@documented(summary="Open another trading account (USD, no cash)", request=m.NewAccountRequest,
            response=m.AccountEnvelope, status=201, tags=("users",))
def open_account() -> Response:
    request = app.current_request
    principal = caller(request)
    body = parse_body(request, m.NewAccountRequest)
    account = service().open_account(principal, body.name, utc_now())
    wire = {k: account[k] for k in ("account_id", "name", "currency", "status", "created_at")}
    return json_response({"account": wire}, 201)


@app.route("/v1/keys", methods=["POST"])
@documented(summary="Create an API key (shown once)", request=m.NewKeyRequest,
            response=m.CreatedKeyEnvelope, status=201, tags=("keys",))
def create_key() -> Response:
    request = app.current_request
    principal = caller(request)
    body = parse_body(request, m.NewKeyRequest)
    created = service().create_key(principal, body.name, list(body.scopes), body.account_id, utc_now())
    return json_response({"key": key_to_wire(created.item), "api_key": created.api_key}, 201,
                         {"Cache-Control": "no-store"})


@app.route("/v1/keys", methods=["GET"])
@documented(summary="Your API keys (never the keys themselves)", response=m.KeyList, tags=("keys",))
def list_keys() -> Response:
    principal = caller(app.current_request)
    return json_response({"keys": [key_to_wire(item) for item in service().list_keys(principal)]})


@app.route("/v1/keys/{key_id}", methods=["DELETE"])
@documented(summary="Revoke one of your API keys", response=m.KeyEnvelope, tags=("keys",))
def revoke_key(key_id: str) -> Response:
    principal = caller(app.current_request)
    return json_response({"key": key_to_wire(service().revoke_key(principal, key_id, utc_now()))})
