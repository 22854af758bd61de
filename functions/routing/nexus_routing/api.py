"""Routing HTTP API (Chalice): the NBBO, venue rankings, a routed parent's decisions and
children, the Rule 606(a)(1) report (XML in the SEC's schema or JSON) and Rule 605-style
execution quality. Read-only; every route is authenticated by the edge authorizer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from chalice.app import Chalice, Response
from nexus_common.errors import ValidationFailed
from nexus_common.events import utc_now
from nexus_common.http import install_error_handling, json_response, parse_query
from nexus_common.identity import caller, require_role
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings
from pydantic import BaseModel, ConfigDict, Field

from nexus_routing.model import Side
from nexus_routing.service import OVERSIGHT_ROLES, RoutingService
from nexus_routing.settings import RoutingApiSettings
from nexus_routing.wiring import routing_service

SYMBOL_PATTERN = r"^[A-Z][A-Z0-9.]{0,11}$"
MAX_QUANTITY = Decimal(10) ** 9

app = Chalice(app_name="nexus-routing", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)
settings = lazy_settings(RoutingApiSettings)


@lazy
def service() -> RoutingService:
    return routing_service(settings(), clock=lambda: utc_now())  # looked up at each call: tests set the clock


class VenuesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(pattern=SYMBOL_PATTERN)
    side: Side
    quantity: Decimal = Field(gt=0, le=MAX_QUANTITY, max_digits=18, decimal_places=8)


class Report606Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quarter: str = Field(pattern=r"^20[0-9]{2}Q[1-4]$")
    format: Literal["json", "xml"] | None = None


class ExecutionQualityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from", min_length=10, max_length=40)
    to: str = Field(min_length=10, max_length=40)
    symbol: str | None = Field(default=None, pattern=SYMBOL_PATTERN)


def _instant(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("invalid_time", f"{field} is an ISO-8601 instant with a zone", field) from None
    if parsed.tzinfo is None:
        raise ValidationFailed("invalid_time", f"{field} must carry a zone (Z or an offset)", field)
    return parsed


def _symbol(symbol: str) -> str:
    plain = symbol.replace(".", "")
    if len(symbol) > 12 or not plain.isalnum() or not symbol[:1].isalpha() or symbol != symbol.upper():
        raise ValidationFailed("invalid_symbol", "symbol is 1 to 12 capitals, digits or dots", "symbol")
    return symbol


@app.route("/v1/routing/nbbo/{symbol}", methods=["GET"])
@documented(summary="The NBBO of a symbol across the enabled venues, with each venue's protected quote and depth",
            tags=("routing",))
def get_nbbo(symbol: str) -> Response:
    caller(app.current_request)
    return json_response({"nbbo": service().nbbo(_symbol(symbol)).to_dict()})


@app.route("/v1/routing/venues", methods=["GET"])
@documented(summary="The venues ranked for a symbol, side and size (price, all-in cost, fill rate, latency)",
            query=VenuesQuery, tags=("routing",))
def get_venue_rankings() -> Response:
    request = app.current_request
    caller(request)
    query = parse_query(request, VenuesQuery)
    return json_response(service().rankings(query.symbol, query.side, query.quantity))


@app.route("/v1/routing/decisions/{order_id}", methods=["GET"])
@documented(summary="A routed order's decisions and child orders (its owner, compliance, admin)", tags=("routing",))
def get_decisions(order_id: str) -> Response:
    principal = caller(app.current_request)
    if not 0 < len(order_id) <= 64 or not all(c.isalnum() or c in "-_" for c in order_id):
        raise ValidationFailed("invalid_field", "order_id: not an order id", "order_id")
    return json_response(service().decisions(principal, order_id))


@app.route("/v1/reports/606", methods=["GET"])
@documented(summary="SEC Rule 606(a)(1) held-order routing report of a quarter (compliance, admin)",
            query=Report606Query, tags=("reports",),
            description="XML in the SEC's schema (oh-20191231.xsd) with Accept: application/xml or format=xml; "
                        "JSON otherwise.")
def get_report_606() -> Response:
    request = app.current_request
    require_role(request, *OVERSIGHT_ROLES)
    query = parse_query(request, Report606Query)
    accept = (request.headers or {}).get("accept", "") if request is not None else ""
    if query.format == "xml" or (query.format is None and "application/xml" in accept):
        xml = service().report_606_xml(query.quarter)
        return Response(body=xml.decode("utf-8"), status_code=200, headers={"Content-Type": "application/xml"})
    return json_response({"report": service().report_606(query.quarter)})


@app.route("/v1/reports/execution-quality", methods=["GET"])
@documented(summary="Rule 605-style execution quality of routed orders by size bucket", query=ExecutionQualityQuery,
            tags=("reports",))
def get_execution_quality() -> Response:
    request = app.current_request
    caller(request)
    query = parse_query(request, ExecutionQualityQuery)
    start, end = _instant(query.from_, "from"), _instant(query.to, "to")
    return json_response({"execution_quality": service().execution_quality(start, end, query.symbol)})
