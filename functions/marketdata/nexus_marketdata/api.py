"""Market data HTTP API (Chalice): instruments, L2 book, trade tape."""

from __future__ import annotations

from chalice.app import Chalice, Response
from nexus_common.errors import NotFound
from nexus_common.http import install_error_handling, json_response, parse_query
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import Instrument
from nexus_common.logging import get_logger
from nexus_common.settings import lazy, lazy_settings

from nexus_marketdata.domain import BookQuery, TradesQuery, instrument_to_wire, trade_to_wire
from nexus_marketdata.repo import DynamoBookLevels, DynamoTrades
from nexus_marketdata.settings import MarketDataApiSettings

app = Chalice(app_name="nexus-marketdata", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(MarketDataApiSettings)
instruments = lazy(lambda: DynamoInstruments(settings().instruments_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
trades = lazy(lambda: DynamoTrades(settings().trades_table))


def _instrument(symbol: str) -> Instrument:
    found = instruments().get(symbol)
    if found is None:
        raise NotFound("unknown_symbol", f"unknown symbol {symbol!r}", "symbol")
    return found


@app.route("/v1/markets", methods=["GET"])
def list_markets() -> Response:
    """Every instrument with its tick size, lot size and status."""
    return json_response({"markets": [instrument_to_wire(i) for i in instruments().list_all()]})


@app.route("/v1/markets/{symbol}/book", methods=["GET"])
def get_book(symbol: str) -> Response:
    """L2 book: ``?depth=1..100`` (default 10); bids best (highest) first, asks lowest first."""
    query = parse_query(app.current_request, BookQuery)
    instrument = _instrument(symbol)
    bids = book_levels().top(instrument.symbol, "buy", query.depth)
    asks = book_levels().top(instrument.symbol, "sell", query.depth)
    return json_response(
        {
            "symbol": instrument.symbol,
            "bids": [level.to_wire() for level in bids],
            "asks": [level.to_wire() for level in asks],
        }
    )


@app.route("/v1/markets/{symbol}/trades", methods=["GET"])
def get_trades(symbol: str) -> Response:
    """Trade tape, newest first: ``?limit=1..500`` (default 50)."""
    query = parse_query(app.current_request, TradesQuery)
    instrument = _instrument(symbol)
    rows = trades().recent(instrument.symbol, query.limit)
    return json_response({"symbol": instrument.symbol, "trades": [trade_to_wire(r) for r in rows]})
