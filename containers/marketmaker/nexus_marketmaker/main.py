"""Composition root of the market maker process: settings from the environment (the template's
task definition), the adapters over the platform (the orders service's own code for the
internal venue, the routing service's venue store for the simulated ones, the tables), and the
run loop with its clean stop on SIGTERM/SIGINT (every quote pulled, state saved)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable
from decimal import Decimal
from types import FrameType
from typing import Any

from nexus_common import aws
from nexus_common.errors import NexusError
from nexus_common.events import utc_now
from nexus_common.instrument_store import CachedInstruments, DynamoInstruments
from nexus_common.redis_store import redis_client
from nexus_common.settings import load_settings
from nexus_orders.models import MassCancelRequest, NewOrderRequest
from nexus_orders.repo import DynamoMarketReference
from nexus_orders.service import OrderService
from nexus_orders.settings import OrdersApiSettings
from nexus_orders.wiring import order_service
from nexus_routing.repo import DynamoVenues, RedisVenueBooks
from nexus_routing.venues import Venue

from nexus_marketmaker.config import MarketMakerConfig
from nexus_marketmaker.runner import MarketMaker

log = logging.getLogger("nexus.marketmaker")
IDLE_SECONDS = 5.0
# A halt reaches the quotes within this, as it reaches order entry (the engine refuses a halted
# symbol's orders meanwhile, and a halt cancels nothing that rests: the engine's rule)
INSTRUMENT_TTL_SECONDS = 5.0


class MarketMakerSettings(OrdersApiSettings):
    market_maker_table: str
    venues_table: str
    venue_state_prefix: str


class OrdersEntry:
    """The internal venue through the orders service (``InternalEntry``)."""

    def __init__(self, service: OrderService, account_id: str) -> None:
        self.service = service
        self.account_id = account_id

    def place(self, symbol: str, side: str, price: Decimal, size: Decimal, client_order_id: str) -> str:
        request = NewOrderRequest.model_validate({"symbol": symbol, "side": side, "type": "limit", "quantity": size,
                                                  "price": price, "time_in_force": "gtc", "post_only": True,
                                                  "client_order_id": client_order_id})
        order, _ = self.service.place(self.account_id, request)
        return str(order.order_id)

    def cancel(self, order_id: str) -> None:
        self.service.cancel(self.account_id, order_id)

    def cancel_all(self, symbols: list[str]) -> None:
        for symbol in symbols:  # per symbol: no by-account index query needed
            self.service.mass_cancel(self.account_id, MassCancelRequest(symbol=symbol))

    def progress(self, order_ids: list[str]) -> dict[str, tuple[Decimal, Decimal, bool]]:
        orders = self.service.get_many(self.account_id, order_ids)
        return {i: (o.filled_quantity, o.filled_notional, o.is_open) for i, o in orders.items()}


class PlatformMarket:
    """Instruments (halts), the account's kill switch, the last trade, the internal book's levels and
    the venues table."""

    def __init__(self, settings: MarketMakerSettings) -> None:
        self.instruments = CachedInstruments(DynamoInstruments(settings.instruments_table), INSTRUMENT_TTL_SECONDS)
        self.reference = DynamoMarketReference(settings.trades_table, settings.book_levels_table)
        self.venue_rows = DynamoVenues(settings.venues_table)
        self.accounts_table = settings.accounts_table

    def instrument(self, symbol: str) -> tuple[Decimal, Decimal, bool]:
        found = self.instruments.get(symbol)
        if found is None:
            return Decimal("0.01"), Decimal(1), True  # not listed: nothing to quote
        return found.tick_size, found.lot_size, found.status != "active"

    def trading_enabled(self, account_id: str) -> bool:
        item = aws.dynamodb_table(self.accounts_table).get_item(
            Key={"account_id": account_id}, ProjectionExpression="#s, trading_enabled",
            ExpressionAttributeNames={"#s": "status"}, ConsistentRead=True,
        ).get("Item")
        return item is not None and item.get("status") == "active" and item.get("trading_enabled", True) is not False

    def last_trade(self, symbol: str) -> Decimal | None:
        return self.reference.last_trade(symbol)

    def levels(self, symbol: str, side: str) -> list[tuple[Decimal, Decimal]]:
        return self.reference.levels(symbol, side)

    def venues(self) -> list[Venue]:
        return self.venue_rows.list()


class TableState:
    """The market-maker table: ``config`` (read) and ``state`` (written by this process alone)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def config(self) -> MarketMakerConfig | None:
        item = aws.dynamodb_table(self.table_name).get_item(Key={"item": "config"}, ConsistentRead=True).get("Item")
        return None if item is None else MarketMakerConfig.from_item(_plain(item))

    def load(self) -> dict[str, Any] | None:
        item = aws.dynamodb_table(self.table_name).get_item(Key={"item": "state"}, ConsistentRead=True).get("Item")
        return None if item is None else dict(_plain(item))

    def save(self, state: dict[str, Any]) -> None:
        aws.dynamodb_table(self.table_name).put_item(Item=state)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    return value


def build(settings: MarketMakerSettings, config: MarketMakerConfig) -> MarketMaker:
    instruments = DynamoInstruments(settings.instruments_table)

    def all_instruments() -> dict[str, Any]:
        return {i.symbol: i for i in instruments.list_all()}

    books = RedisVenueBooks(redis_client(), settings.venue_state_prefix, all_instruments, utc_now)
    return MarketMaker(config, OrdersEntry(order_service(settings), config.account_id), books,
                       PlatformMarket(settings), TableState(settings.market_maker_table), utc_now,
                       maker_fee_bps=settings.maker_fee_bps)


def run(stop: threading.Event, argv: Iterable[str] = ()) -> int:
    settings = load_settings(MarketMakerSettings)
    state = TableState(settings.market_maker_table)
    maker: MarketMaker | None = None
    print("nexus-marketmaker ready", flush=True)
    while not stop.is_set():
        try:
            config = state.config()
            if config is None:
                if maker is not None:
                    maker.stop()
                    maker = None
                stop.wait(IDLE_SECONDS)
                continue
            if maker is None or maker.config != config:
                if maker is not None:
                    maker.stop()
                maker = build(settings, config)
                maker.start()
                log.info("quoting %s on %s", ",".join(config.symbols), ",".join(config.venues))
            maker.step()
            stop.wait(float(config.refresh_seconds))
        except (NexusError, OSError, ValueError) as exc:  # a platform hiccup: logged, the next step retries
            log.warning("step failed: %s", str(exc)[:300])
            stop.wait(IDLE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the quoting loop outlives any failure (AWS endpoint or Redis away): retried
            log.warning("step failed: %s: %s", type(exc).__name__, str(exc)[:300])
            stop.wait(IDLE_SECONDS)
    if maker is not None:
        try:
            maker.stop()
        except Exception as exc:  # noqa: BLE001 - shutdown: a failed pull is logged, the process still exits
            log.warning("stop: quotes not pulled: %s", str(exc)[:300])
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run(stop)
