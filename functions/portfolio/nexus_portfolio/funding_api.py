"""Funding HTTP API (Chalice): users ask for deposits and withdrawals of their acting account;
admins approve or reject them, or move cash directly. Every route is authenticated; asking
needs the ``trade`` scope, the admin routes the ``admin`` role (a trader gets 403).

* ``POST /v1/funding/deposits``, ``POST /v1/funding/withdrawals`` (``{"amount", "client_request_id",
  "memo"?}``): 201 with the pending request; the same ``client_request_id`` again answers 200
  with the request as it stands (409 ``idempotency_conflict`` for other terms).
* ``GET /v1/funding/requests``: the acting account's requests, newest first.
* ``GET /v1/admin/funding/requests`` (``?account_id=`` for one account, else the pending queue).
* ``POST /v1/admin/funding/requests/{request_id}/approve`` and ``/reject`` (``{"reason"}``).
* ``POST /v1/admin/accounts/{account_id}/deposits`` and ``/withdrawals``: an operator's movement,
  approved at once (201, or 200 when the key was used before).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from chalice.app import Chalice, Response
from nexus_common.audit import KinesisAuditSink
from nexus_common.fields import WireDecimal
from nexus_common.http import install_error_handling, json_response, parse_body, parse_query
from nexus_common.identity import caller, require_role, require_scope
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings
from pydantic import BaseModel, ConfigDict, Field

from nexus_portfolio.funding import FundingRequest
from nexus_portfolio.funding_repo import DynamoFundingStore
from nexus_portfolio.funding_service import FundingService
from nexus_portfolio.settings import FundingApiSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FundingAsk(_Strict):
    amount: WireDecimal = Field(description="USD, > 0, at most 2 decimal places")
    client_request_id: str = Field(min_length=1, max_length=64, description="idempotency key")
    memo: str | None = Field(default=None, max_length=200)


class RejectBody(_Strict):
    reason: str = Field(min_length=1, max_length=200)


class AdminFundingQuery(_Strict):
    account_id: str | None = Field(default=None, min_length=1, max_length=100)


class FundingRequestView(BaseModel):
    request_id: str
    account_id: str
    kind: Literal["deposit", "withdrawal"]
    amount: str
    status: Literal["pending", "approved", "rejected"]
    client_request_id: str
    requested_by: str
    requested_at: str
    memo: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    entry_id: str | None = None


class FundingRequestEnvelope(BaseModel):
    request: FundingRequestView


class FundingRequestList(BaseModel):
    requests: list[FundingRequestView]


app = Chalice(app_name="nexus-funding", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)
settings = lazy_settings(FundingApiSettings)


@lazy
def service() -> FundingService:
    config = settings()
    store = DynamoFundingStore(config.funding_table, config.accounts_table, config.ledger_table,
                               config.settlements_table)  # fmt: skip
    return FundingService(store, KinesisAuditSink(config.audit_stream))


def _one(request: FundingRequest, new: bool) -> Response:
    return json_response({"request": request.to_wire()}, status=201 if new else 200)


def _ask(kind: str) -> Response:
    principal = require_scope(app.current_request, "trade")
    body = parse_body(app.current_request, FundingAsk)
    request, new = service().request(principal.account_id, kind, Decimal(body.amount), body.client_request_id,
                                     body.memo, principal.user_id)  # fmt: skip
    return _one(request, new)


def _move(account_id: str, kind: str) -> Response:
    principal = require_role(app.current_request, "admin")
    body = parse_body(app.current_request, FundingAsk)
    request, new = service().move(account_id, kind, Decimal(body.amount), body.client_request_id, body.memo,
                                  principal.user_id)  # fmt: skip
    return _one(request, new)


@app.route("/v1/funding/deposits", methods=["POST"])
@documented(summary="Ask for a deposit into the acting account (an admin approves it)", request=FundingAsk,
            response=FundingRequestEnvelope, status=201, tags=("funding",))
def ask_deposit() -> Response:
    return _ask("deposit")


@app.route("/v1/funding/withdrawals", methods=["POST"])
@documented(summary="Ask for a withdrawal of settled, unreserved cash (an admin approves it)", request=FundingAsk,
            response=FundingRequestEnvelope, status=201, tags=("funding",))
def ask_withdrawal() -> Response:
    return _ask("withdrawal")


@app.route("/v1/funding/requests", methods=["GET"])
@documented(summary="The acting account's funding requests, newest first", response=FundingRequestList,
            tags=("funding",))
def list_requests() -> Response:
    principal = caller(app.current_request)
    return json_response({"requests": [r.to_wire() for r in service().of_account(principal.account_id)]})


@app.route("/v1/admin/funding/requests", methods=["GET"])
@documented(summary="Pending funding requests, oldest first, or one account's (admin)", query=AdminFundingQuery,
            response=FundingRequestList, tags=("admin",))
def admin_list_requests() -> Response:
    require_role(app.current_request, "admin")
    query = parse_query(app.current_request, AdminFundingQuery)
    found = service().of_account(query.account_id) if query.account_id else service().pending()
    return json_response({"requests": [r.to_wire() for r in found]})


@app.route("/v1/admin/funding/requests/{request_id}/approve", methods=["POST"])
@documented(summary="Approve a funding request: the cash moves, once (admin)", response=FundingRequestEnvelope,
            tags=("admin",))
def approve_request(request_id: str) -> Response:
    principal = require_role(app.current_request, "admin")
    return _one(service().approve(request_id, principal.user_id), False)


@app.route("/v1/admin/funding/requests/{request_id}/reject", methods=["POST"])
@documented(summary="Reject a funding request: nothing moves (admin)", request=RejectBody,
            response=FundingRequestEnvelope, tags=("admin",))
def reject_request(request_id: str) -> Response:
    principal = require_role(app.current_request, "admin")
    body = parse_body(app.current_request, RejectBody)
    return _one(service().reject(request_id, principal.user_id, body.reason), False)


@app.route("/v1/admin/accounts/{account_id}/deposits", methods=["POST"])
@documented(summary="Deposit into an account, approved at once (admin)", request=FundingAsk,
            response=FundingRequestEnvelope, status=201, tags=("admin",))
def admin_deposit(account_id: str) -> Response:
    return _move(account_id, "deposit")


@app.route("/v1/admin/accounts/{account_id}/withdrawals", methods=["POST"])
@documented(summary="Withdraw from an account's settled, unreserved cash, approved at once (admin)",
            request=FundingAsk, response=FundingRequestEnvelope, status=201, tags=("admin",))
def admin_withdrawal(account_id: str) -> Response:
    return _move(account_id, "withdrawal")
