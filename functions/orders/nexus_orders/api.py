"""Orders HTTP API (Chalice): ``/v1/orders``. Handlers are thin: parse, call, answer."""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.http import (
    caller_account_id,
    install_error_handling,
    json_response,
    parse_body,
    parse_query,
)
from nexus_common.instrument_store import CachedInstruments, DynamoInstruments
from nexus_common.logging import get_logger
from nexus_common.settings import lazy, lazy_settings

from nexus_orders.domain import ListOrdersQuery, NewOrderRequest
from nexus_orders.repo import (
    DynamoMarketReference,
    DynamoOrderRepository,
    DynamoRiskBook,
    KinesisCommandPublisher,
)
from nexus_orders.service import OrderService, PreTradeRisk
from nexus_orders.settings import OrdersApiSettings

app = Chalice(app_name="nexus-orders", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(OrdersApiSettings)
INSTRUMENT_TTL_SECONDS = 5.0  # a halt reaches order entry within this; the engine checks halts too


@lazy
def service() -> OrderService:
    config = settings()
    return OrderService(
        orders=DynamoOrderRepository(config.orders_table),
        instruments=CachedInstruments(DynamoInstruments(config.instruments_table), INSTRUMENT_TTL_SECONDS),
        commands=KinesisCommandPublisher(config.order_commands_stream),
        risk=PreTradeRisk(
            DynamoRiskBook(config.accounts_table),
            DynamoMarketReference(config.trades_table, config.book_levels_table),
            config.risk_limits(),
        ),
    )


@app.route("/v1/orders", methods=["POST"])
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
def list_orders() -> Response:
    """The caller's orders, newest first; ``?status=open|closed|<status>&limit=1..500``."""
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, ListOrdersQuery)
    orders = service().list(account_id, query)
    return json_response({"orders": [order.to_wire() for order in orders]})


@app.route("/v1/orders/{order_id}", methods=["GET"])
def get_order(order_id: str) -> Response:
    account_id = caller_account_id(app.current_request)
    return json_response({"order": service().get(account_id, order_id).to_wire()})


@app.route("/v1/orders/{order_id}", methods=["DELETE"])
def cancel_order(order_id: str) -> Response:
    """Request a cancel: 202 with the order and ``cancel_requested: true``; 409 if not open."""
    account_id = caller_account_id(app.current_request)
    order = service().cancel(account_id, order_id)
    logger.info("cancel requested", extra={"order_id": order.order_id})
    return json_response({"order": order.to_wire()}, status=202)
