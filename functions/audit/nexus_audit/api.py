"""Audit HTTP API (Chalice): ``GET /v1/audit``, for the compliance and admin roles only.

Read-only by construction: the app has no other route, and the function's role may only
``Query`` and ``GetItem`` the audit table.
"""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.http import install_error_handling, json_response, parse_query
from nexus_common.identity import require_role
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings

from nexus_audit.query import AuditPage, AuditQuery, AuditReader
from nexus_audit.repo import DynamoAuditReader
from nexus_audit.settings import AuditApiSettings

AUDIT_ROLES = ("compliance", "admin")

app = Chalice(app_name="nexus-audit", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(AuditApiSettings)
reader = lazy(lambda: AuditReader(DynamoAuditReader(settings().audit_table)))


@app.route("/v1/audit", methods=["GET"])
@documented(
    summary="Read the audit trail: one aggregate in sequence order, or a time range in time order",
    query=AuditQuery,
    response=AuditPage,
    tags=("audit",),
    description="Compliance and admin roles only (403 otherwise). Pages with next_token.",
)
def search_audit() -> Response:
    request = app.current_request
    principal = require_role(request, *AUDIT_ROLES)
    query = parse_query(request, AuditQuery)
    page = reader().search(query)
    logger.info("audit read", extra={"user_id": principal.user_id, "records": len(page["records"])})
    return json_response(page)
