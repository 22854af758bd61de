"""Surveillance HTTP API (Chalice), for the compliance and admin roles only (a trader: 403).

Alerts (list with filters and cursor pages; one with its evidence resolved to orders and trades;
acknowledge / escalate / close with a note, each change audited, an invalid change 409),
thresholds per detector (validated with the detector's typed model, versioned, audited; the live
consumer picks a change up within ``THRESHOLDS_CACHE_SECONDS``), a user's trading profile, and
historical scans (asynchronous: a scan id, then its status and alerts).
"""

from __future__ import annotations

from datetime import timedelta

from chalice.app import Chalice, Response
from nexus_common.audit import KinesisAuditSink
from nexus_common.errors import ValidationFailed
from nexus_common.events import iso, utc_now
from nexus_common.http import install_error_handling, json_response, parse_body, parse_query
from nexus_common.identity import require_role
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings

from nexus_surveillance import models as m
from nexus_surveillance.alerts import FEED, alert_view
from nexus_surveillance.repo import (
    AuditHistory,
    DynamoAlertStore,
    KillSwitch,
    Lookups,
    ScansRepo,
    ThresholdsRepo,
    send_scan_request,
)
from nexus_surveillance.service import AlertWorkflow, ProfileService, ScanService, ThresholdsService
from nexus_surveillance.settings import ApiSettings

ROLES = ("compliance", "admin")
MAX_LIST_RANGE = timedelta(days=366)
MAX_SCAN_RANGE = timedelta(days=31)

app = Chalice(app_name="nexus-surveillance", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)
settings = lazy_settings(ApiSettings)

store = lazy(lambda: DynamoAlertStore(settings().surveillance_alerts_table))
audit = lazy(lambda: KinesisAuditSink(settings().audit_stream))
lookups = lazy(lambda: Lookups(settings().orders_table, settings().trades_table, settings().users_table))
workflow = lazy(lambda: AlertWorkflow(store(), KillSwitch(settings().accounts_table), audit(), lookups()))
thresholds = lazy(lambda: ThresholdsService(ThresholdsRepo(settings().surveillance_thresholds_table), audit()))
profiles = lazy(lambda: ProfileService(lookups(), AuditHistory(settings().audit_table), store()))
scans = lazy(lambda: ScanService(ScansRepo(settings().surveillance_scans_table)))


def _check_id(value: str, field: str) -> str:
    if not value or len(value) > 128 or not all(c.isalnum() or c in "_-.:" for c in value):
        raise ValidationFailed("invalid_field", f"{field}: not an id", field)
    return value


@app.route("/v1/surveillance/alerts", methods=["GET"])
@documented(summary="Surveillance alerts, newest first (compliance, admin)", query=m.AlertsQuery,
            response=m.AlertsPage, tags=("surveillance",),
            description="Filters: status, detector, severity, symbol, account, from/to (window end). "
                        "Pages with cursor.")
def list_alerts() -> Response:
    request = app.current_request
    require_role(request, *ROLES)
    query = parse_query(request, m.AlertsQuery)
    if query.to:
        end = m.parse_instant(query.to, "to")
    else:  # the first page's "now", carried by its cursor: every page reads the same window
        end = m.cursor_end(query.cursor) if query.cursor else utc_now()
    start = m.parse_instant(query.from_, "from") if query.from_ else end - timedelta(days=30)
    if start > end or end - start > MAX_LIST_RANGE:
        raise ValidationFailed("invalid_range", "from must be before to, at most 366 days apart", "from")
    filters = {k: v for k, v in (("status", query.status), ("detector", query.detector),
               ("severity", query.severity), ("symbol", query.symbol), ("account", query.account)) if v}  # fmt: skip
    bound = query.model_dump_json(exclude={"cursor", "limit"}) + iso(start) + iso(end)
    after = m.decode_cursor(query.cursor, bound) if query.cursor else None
    if after is not None and (after["feed"] != FEED or not iso(start) <= after["sort"] <= iso(end) + "\uffff"):
        raise ValidationFailed("invalid_cursor", "the cursor is not from this query", "cursor")
    items, more = store().list_page(start=iso(start), end=iso(end), filters=filters, limit=query.limit, after=after)
    cursor = m.encode_cursor(more, bound, iso(end)) if more else None
    return json_response({"alerts": [alert_view(i) for i in items], "cursor": cursor})


@app.route("/v1/surveillance/alerts/{alert_id}", methods=["GET"])
@documented(summary="One alert, its evidence resolved to orders and trades (compliance, admin)",
            response=m.AlertEnvelope, tags=("surveillance",))
def get_alert(alert_id: str) -> Response:
    require_role(app.current_request, *ROLES)
    return json_response({"alert": workflow().resolved(_check_id(alert_id, "alert_id"))})


def _act(alert_id: str, action: str) -> Response:
    request = app.current_request
    principal = require_role(request, *ROLES)
    body = parse_body(request, m.AlertActionRequest)
    view = workflow().act(_check_id(alert_id, "alert_id"), action, principal, body.note, body.resume_trading)
    return json_response({"alert": view})


@app.route("/v1/surveillance/alerts/{alert_id}/acknowledge", methods=["POST"])
@documented(summary="Acknowledge an open alert, with a note (audited; 409 from another status)",
            request=m.AlertActionRequest, response=m.AlertChangedEnvelope, tags=("surveillance",))
def acknowledge_alert(alert_id: str) -> Response:
    return _act(alert_id, "acknowledge")


@app.route("/v1/surveillance/alerts/{alert_id}/escalate", methods=["POST"])
@documented(summary="Escalate an open or acknowledged alert, with a note (audited)",
            request=m.AlertActionRequest, response=m.AlertChangedEnvelope, tags=("surveillance",))
def escalate_alert(alert_id: str) -> Response:
    return _act(alert_id, "escalate")


@app.route("/v1/surveillance/alerts/{alert_id}/close", methods=["POST"])
@documented(summary="Close an alert, with a note; resume_trading switches its halted accounts back on (audited)",
            request=m.AlertActionRequest, response=m.AlertChangedEnvelope, tags=("surveillance",))
def close_alert(alert_id: str) -> Response:
    return _act(alert_id, "close")


@app.route("/v1/surveillance/thresholds/{detector}", methods=["GET"])
@documented(summary="A detector's thresholds in force, with their version history", response=m.ThresholdsOut,
            tags=("surveillance",))
def get_thresholds(detector: str) -> Response:
    require_role(app.current_request, *ROLES)
    return json_response(thresholds().get(detector))


@app.route("/v1/surveillance/thresholds/{detector}", methods=["PUT"])
@documented(summary="Change a detector's thresholds (a new version, audited; live within seconds)",
            request=m.ThresholdsRequest, response=m.ThresholdsOut, tags=("surveillance",))
def put_thresholds(detector: str) -> Response:
    request = app.current_request
    principal = require_role(request, *ROLES)
    body = parse_body(request, m.ThresholdsRequest)
    return json_response(thresholds().put(detector, body.thresholds, body.note, principal, body.expected_version))


@app.route("/v1/surveillance/profiles/{user_id}", methods=["GET"])
@documented(summary="A user's trading profile over lookback_days (1-90)", query=m.ProfileQuery,
            response=m.ProfileOut, tags=("surveillance",))
def get_profile(user_id: str) -> Response:
    request = app.current_request
    require_role(request, *ROLES)
    query = parse_query(request, m.ProfileQuery)
    return json_response(profiles().profile(_check_id(user_id, "user_id"), query.lookback_days))


@app.route("/v1/surveillance/scans", methods=["POST"])
@documented(summary="Start a historical scan of the stored history (asynchronous)", request=m.ScanRequest,
            response=m.ScanEnvelope, status=202, tags=("surveillance",))
def start_scan() -> Response:
    request = app.current_request
    principal = require_role(request, *ROLES)
    body = parse_body(request, m.ScanRequest)
    start, end = m.parse_instant(body.from_, "from"), m.parse_instant(body.to, "to")
    if start >= end or end - start > MAX_SCAN_RANGE:
        raise ValidationFailed("invalid_range", "from must be before to, at most 31 days apart", "from")
    symbols = sorted({s for s in body.symbols})
    users = sorted({u for u in body.users})
    for index, symbol in enumerate(symbols):
        if not (1 <= len(symbol) <= 12 and all(c.isupper() or c.isdigit() or c == "." for c in symbol)):
            raise ValidationFailed("invalid_field", "symbols: not a symbol", f"symbols.{index}")
    for index, user in enumerate(users):
        _check_id(user, f"users.{index}")
    queue = settings().surveillance_scans_queue_url
    scan = scans().start(principal, start, end, symbols, users, lambda scan_id: send_scan_request(queue, scan_id))
    return json_response({"scan": scan}, 202)


@app.route("/v1/surveillance/scans/{scan_id}", methods=["GET"])
@documented(summary="A scan's status and, once done, its alerts", query=m.ScanQuery, response=m.ScanEnvelope,
            tags=("surveillance",))
def get_scan(scan_id: str) -> Response:
    request = app.current_request
    require_role(request, *ROLES)
    query = parse_query(request, m.ScanQuery)
    return json_response({"scan": scans().get(_check_id(scan_id, "scan_id"), query.limit)})
