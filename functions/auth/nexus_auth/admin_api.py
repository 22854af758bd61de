"""Admin and compliance HTTP API (Chalice): halts, kill switches, roles. Each action is audited.

Every route needs the role ``admin`` (reads also ``compliance``); a trader gets 403.
"""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.audit import KinesisAuditSink
from nexus_common.http import install_error_handling, json_response, parse_body
from nexus_common.identity import require_role
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings

from nexus_auth import models as m
from nexus_auth.domain import profile_to_wire
from nexus_auth.passwords import Passwords
from nexus_auth.repo import DynamoIdentityStore, TableNames, TradingStatusJournal
from nexus_auth.service import IdentityService, TradingHalts
from nexus_auth.settings import AdminApiSettings

app = Chalice(app_name="nexus-admin", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)
settings = lazy_settings(AdminApiSettings)


@lazy
def service() -> IdentityService:
    config = settings()
    store = DynamoIdentityStore(
        TableNames(
            users=config.users_table,
            api_keys="",
            tokens="",
            accounts=config.accounts_table,
            instruments=config.instruments_table,
        )
    )
    return IdentityService(store, Passwords(), None, KinesisAuditSink(config.audit_stream))


@lazy
def trading_status_journal() -> TradingStatusJournal:
    return TradingStatusJournal(settings().order_commands_stream)


halts = lazy(lambda: TradingHalts(service(), trading_status_journal()))


def _set_halt(symbol: str, halted: bool) -> Response:
    """The instruments table, then the engine's journal (``TradingHalts``)."""
    request = app.current_request
    principal = require_role(request, "admin")
    body = parse_body(request, m.HaltRequest)
    return json_response({"instrument": halts().set_halt(principal, symbol, halted, body.reason)})


@app.route("/v1/admin/instruments/{symbol}/halt", methods=["POST"])
@documented(summary="Halt trading in a symbol (admin)", request=m.HaltRequest,
            response=m.InstrumentStatusEnvelope, tags=("admin",))
def halt(symbol: str) -> Response:
    return _set_halt(symbol, True)


@app.route("/v1/admin/instruments/{symbol}/resume", methods=["POST"])
@documented(summary="Resume trading in a halted symbol (admin)", request=m.HaltRequest,
            response=m.InstrumentStatusEnvelope, tags=("admin",))
def resume(symbol: str) -> Response:
    return _set_halt(symbol, False)


@app.route("/v1/admin/accounts/{account_id}/trading", methods=["PUT"])
@documented(summary="Switch an account's trading off (kill switch) or back on (admin)",
            request=m.TradingSwitchRequest, response=m.AccountTradingEnvelope, tags=("admin",))
def switch_trading(account_id: str) -> Response:
    request = app.current_request
    principal = require_role(request, "admin")
    body = parse_body(request, m.TradingSwitchRequest)
    return json_response({"account": service().set_trading(principal, account_id, body.trading_enabled, body.reason)})


@app.route("/v1/admin/users/{user_id}", methods=["GET"])
@documented(summary="A user's profile (compliance, admin)", response=m.ProfileEnvelope, tags=("admin",))
def get_user(user_id: str) -> Response:
    require_role(app.current_request, "compliance", "admin")
    return json_response({"user": profile_to_wire(service().profile(user_id))})


@app.route("/v1/admin/users/{user_id}/roles", methods=["POST"])
@documented(summary="Grant a role (admin)", request=m.RoleChange, response=m.RolesEnvelope, tags=("admin",))
def grant_role(user_id: str) -> Response:
    request = app.current_request
    principal = require_role(request, "admin")
    body = parse_body(request, m.RoleChange)
    roles = service().change_role(user_id, body.role, True, principal.user_id)
    return json_response({"user_id": user_id, "roles": roles})


@app.route("/v1/admin/users/{user_id}/roles/{role}", methods=["DELETE"])
@documented(summary="Take a role away (admin)", response=m.RolesEnvelope, tags=("admin",))
def revoke_role(user_id: str, role: str) -> Response:
    principal = require_role(app.current_request, "admin")
    roles = service().change_role(user_id, role, False, principal.user_id)
    return json_response({"user_id": user_id, "roles": roles})
