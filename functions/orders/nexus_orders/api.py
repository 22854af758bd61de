"""Orders HTTP API (Chalice): ``/v1/orders`` (every engine order type and instruction, replace,
mass cancel, OCO groups). Handlers are thin: parse, call, answer."""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.http import (
    caller_account_id,
    install_error_handling,
    json_response,
    parse_body,
    parse_query,
)
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings

from nexus_orders.models import (
    ListOrdersQuery,
    MassCancelRequest,
    NewOrderRequest,
    OcoRequest,
    ReplaceOrderRequest,
)
from nexus_orders.order import Order
from nexus_orders.service import OrderService
from nexus_orders.settings import OrdersApiSettings
from nexus_orders.wiring import order_service

app = Chalice(app_name="nexus-orders", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(OrdersApiSettings)


@lazy
def service() -> OrderService:
    return order_service(settings())


def _group(legs: list[Order]) -> dict[str, object]:
    return {"group_id": legs[0].group_id, "orders": [leg.to_wire() for leg in legs]}


@app.route("/v1/orders", methods=["POST"])
@documented(summary="Place an order (limit, market, stop, stop_limit; gtc/ioc/fok/day/gtd; post-only, iceberg, STP)",
            request=NewOrderRequest, status=202, tags=("orders",))
def place_order() -> Response:
    """Place an order: 202 with the new order; 200 with the first order for a repeated
    ``client_order_id``; 422 with a reason code when pre-trade risk refuses it."""
    request = app.current_request
    account_id = caller_account_id(request)
    body = parse_body(request, NewOrderRequest)
    order, created = service().place(account_id, body)
    logger.info("order placed" if created else "order repeated", extra={"order_id": order.order_id})
    return json_response({"order": order.to_wire()}, status=202 if created else 200)


@app.route("/v1/orders", methods=["GET"])
@documented(summary="The account's orders, newest first, a page at a time", query=ListOrdersQuery, tags=("orders",))
def list_orders() -> Response:
    """The caller's orders, newest first; ``?status=open|closed|<status>&limit=1..500&cursor=``:
    ``next_cursor`` pages on (null at the end; a filtered page may be short and still go on)."""
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, ListOrdersQuery)
    orders, cursor = service().list(account_id, query)
    return json_response({"orders": [order.to_wire() for order in orders], "next_cursor": cursor})


@app.route("/v1/orders/{order_id}", methods=["GET"])
@documented(summary="One order", tags=("orders",))
def get_order(order_id: str) -> Response:
    account_id = caller_account_id(app.current_request)
    return json_response({"order": service().get(account_id, order_id).to_wire()})


@app.route("/v1/orders/{order_id}", methods=["DELETE"])
@documented(summary="Cancel an order (an OCO leg: the whole group)", status=202, tags=("orders",))
def cancel_order(order_id: str) -> Response:
    """Request a cancel: 202 with the order and ``cancel_requested: true``; 409 if not open."""
    account_id = caller_account_id(app.current_request)
    order = service().cancel(account_id, order_id)
    logger.info("cancel requested", extra={"order_id": order.order_id})
    return json_response({"order": order.to_wire()}, status=202)


@app.route("/v1/orders/{order_id}", methods=["PATCH"])
@documented(summary="Replace an order's price, stop price and/or quantity", request=ReplaceOrderRequest,
            status=202, tags=("orders",))
def replace_order(order_id: str) -> Response:
    """Request a replace: 202 with the order and ``replace_pending: true``; 422 when the account
    cannot afford the new terms (nothing changes); 409 if not open or a replace is pending."""
    request = app.current_request
    account_id = caller_account_id(request)
    body = parse_body(request, ReplaceOrderRequest)
    order = service().replace(account_id, order_id, body)
    logger.info("replace requested", extra={"order_id": order.order_id})
    return json_response({"order": order.to_wire()}, status=202)


@app.route("/v1/orders/mass-cancel", methods=["POST"])
@documented(summary="Cancel every open order of the account, optionally in one symbol", request=MassCancelRequest,
            status=202, tags=("orders",))
def mass_cancel() -> Response:
    request = app.current_request
    account_id = caller_account_id(request)
    body = parse_body(request, MassCancelRequest)
    result = service().mass_cancel(account_id, body)
    logger.info("mass cancel requested", extra={"symbols": result["symbols"]})
    return json_response({"mass_cancel": result}, status=202)


@app.route("/v1/orders/oco", methods=["POST"])
@documented(summary="Place an OCO group: a take-profit and a stop-loss, one reservation for the larger leg",
            request=OcoRequest, status=202, tags=("orders",))
def place_oco() -> Response:
    """202 with ``group_id`` and both legs; 200 with the first group for a repeated
    ``client_order_id``; 422 when pre-trade risk refuses it."""
    request = app.current_request
    account_id = caller_account_id(request)
    body = parse_body(request, OcoRequest)
    legs, created = service().place_oco(account_id, body)
    logger.info("oco placed" if created else "oco repeated", extra={"group_id": legs[0].group_id})
    return json_response(_group(legs), status=202 if created else 200)


@app.route("/v1/orders/oco/{group_id}", methods=["GET"])
@documented(summary="One OCO group and its legs", tags=("orders",))
def get_oco(group_id: str) -> Response:
    account_id = caller_account_id(app.current_request)
    return json_response(_group(service().get_group(account_id, group_id)))


@app.route("/v1/orders/oco/{group_id}", methods=["DELETE"])
@documented(summary="Cancel an OCO group (both legs)", status=202, tags=("orders",))
def cancel_oco(group_id: str) -> Response:
    account_id = caller_account_id(app.current_request)
    legs = service().cancel_group(account_id, group_id)
    logger.info("group cancel requested", extra={"group_id": group_id})
    return json_response(_group(legs), status=202)
