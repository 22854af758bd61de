"""Notifications and alerts HTTP API (Chalice): ``GET /v1/notifications`` (the inbox, newest
first, paginated), ``POST/GET /v1/alerts``, ``DELETE /v1/alerts/{alert_id}``. Own account only."""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.errors import ValidationFailed
from nexus_common.events import utc_now
from nexus_common.http import caller_account_id, install_error_handling, json_response, parse_body, parse_query
from nexus_common.identity import caller
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings
from pydantic import BaseModel, ConfigDict, Field

from nexus_notifications import service
from nexus_notifications.alerts import AlertsQuery, CreateAlert
from nexus_notifications.domain import inbox_view
from nexus_notifications.repo import AlertsTable, Inbox, LastPrices
from nexus_notifications.settings import NotificationsApiSettings

app = Chalice(app_name="nexus-notifications", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(NotificationsApiSettings)
inbox = lazy(lambda: Inbox(settings().notifications_table))
alerts = lazy(lambda: AlertsTable(settings().alerts_table))
prices = lazy(lambda: LastPrices(settings().trades_table))
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=1000)


@app.route("/v1/notifications", methods=["GET"])
@documented(summary="The caller's notifications, newest first", query=InboxQuery, tags=("notifications",))
def list_notifications() -> Response:
    """The caller's notifications, newest first; ``next_cursor`` pages on (``?cursor=``)."""
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, InboxQuery)
    items, cursor = inbox().page(account_id, query.limit, query.cursor)
    return json_response({"notifications": [inbox_view(i) for i in items], "next_cursor": cursor})


@app.route("/v1/alerts", methods=["POST"], content_types=["application/json"])
@documented(summary="Set a price alert", request=CreateAlert, status=201, tags=("alerts",))
def create_alert() -> Response:
    request = app.current_request
    account_id = caller_account_id(request)
    body = parse_body(request, CreateAlert)
    alert = service.create_alert(
        account_id, caller(request).accounts, body, instruments(), alerts(), prices(),
        settings().max_alerts_per_user, utc_now(),
    )  # fmt: skip
    return json_response({"alert": alert.to_wire()}, status=201)


@app.route("/v1/alerts", methods=["GET"])
@documented(summary="The caller's price alerts, newest first", query=AlertsQuery, tags=("alerts",))
def list_alerts() -> Response:
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, AlertsQuery)
    return json_response({"alerts": [a.to_wire() for a in alerts().for_account(account_id, query.status)]})


@app.route("/v1/alerts/{alert_id}", methods=["DELETE"])
@documented(summary="Delete one of the caller's price alerts", tags=("alerts",))
def delete_alert(alert_id: str) -> Response:
    account_id = caller_account_id(app.current_request)
    if not 1 <= len(alert_id) <= 64:
        raise ValidationFailed("invalid_field", "alert_id is not valid", "alert_id")
    alert = alerts().delete(account_id, alert_id)
    return json_response({"alert": {**alert.to_wire(), "status": "deleted"}})
