"""Portfolio HTTP API (Chalice): ``/v1/portfolio``, ``/v1/positions``, ``/v1/ledger``,
``/v1/settlements``. Read-only; handlers are thin: parse, call, answer."""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.http import caller_account_id, install_error_handling, json_response, parse_query
from nexus_common.logging import get_logger
from nexus_common.settings import lazy, lazy_settings

from nexus_portfolio.repo import (
    DynamoAccountView,
    DynamoJournal,
    DynamoLastPrices,
    DynamoPositions,
    DynamoSettlements,
)
from nexus_portfolio.service import PortfolioReader
from nexus_portfolio.settings import PortfolioApiSettings
from nexus_portfolio.views import LedgerQuery, NoQuery, SettlementsQuery

app = Chalice(app_name="nexus-portfolio", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(PortfolioApiSettings)


@lazy
def reader() -> PortfolioReader:
    config = settings()
    return PortfolioReader(
        accounts=DynamoAccountView(config.accounts_table),
        positions=DynamoPositions(config.positions_table),
        prices=DynamoLastPrices(config.trades_table),
        journal=DynamoJournal(config.ledger_table),
        settlements=DynamoSettlements(config.settlements_table),
    )


@app.route("/v1/portfolio", methods=["GET"])
def get_portfolio() -> Response:
    """Cash, reserved, available, positions with P&L at the last trade price, and totals."""
    request = app.current_request
    account_id = caller_account_id(request)
    parse_query(request, NoQuery)
    return json_response({"portfolio": reader().portfolio(account_id)})


@app.route("/v1/positions", methods=["GET"])
def list_positions() -> Response:
    request = app.current_request
    account_id = caller_account_id(request)
    parse_query(request, NoQuery)
    return json_response({"positions": reader().positions(account_id)})


@app.route("/v1/ledger", methods=["GET"])
def list_ledger() -> Response:
    """The account's journal entries, oldest first: ``?from=&to=`` (ISO dates or instants, UTC)."""
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, LedgerQuery)
    return json_response({"entries": reader().ledger(account_id, query)})


@app.route("/v1/settlements", methods=["GET"])
def list_settlements() -> Response:
    """Settlement obligations (``?status=pending|settling|settled``) and the account's batches."""
    request = app.current_request
    account_id = caller_account_id(request)
    query = parse_query(request, SettlementsQuery)
    return json_response(reader().settlements(account_id, query))
