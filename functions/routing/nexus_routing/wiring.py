"""The routing service as its handlers build it (the composition root of ``functions/routing``):
the venues, decisions and statistics tables, the internal venue's levels, the simulated venues'
books in Redis, and, for the routing-requests consumer, the streams it writes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from nexus_common.events import utc_now
from nexus_common.instrument_store import CachedInstruments, DynamoInstruments
from nexus_common.instruments import Instrument
from nexus_common.redis_store import redis_client

from nexus_routing.repo import (
    DynamoDecisions,
    DynamoInternalBook,
    DynamoOrderTotals,
    DynamoVenues,
    DynamoVenueStats,
    KinesisEngineCommands,
    KinesisPublisher,
    RedisVenueBooks,
)
from nexus_routing.service import RoutingService
from nexus_routing.settings import RoutingApiSettings, RoutingRequestsSettings, RoutingSettings

INSTRUMENT_TTL_SECONDS = 5.0  # a halt reaches routing within this


def routing_service(config: RoutingSettings, clock: Callable[[], datetime] = utc_now) -> RoutingService:
    """The service; with ``RoutingRequestsSettings`` it also publishes decisions and venue
    reports and sends the engine each routed order's fills; with ``RoutingApiSettings`` it reads
    routed orders' totals for the 605 statistics."""

    def all_instruments() -> Mapping[str, Instrument]:
        return {i.symbol: i for i in DynamoInstruments(config.instruments_table).list_all()}

    writes = config if isinstance(config, RoutingRequestsSettings) else None
    return RoutingService(
        venues=DynamoVenues(config.venues_table),
        internal_book=DynamoInternalBook(config.book_levels_table),
        simulated=RedisVenueBooks(redis_client(), config.venue_state_prefix, all_instruments, utc_now),
        decisions=DynamoDecisions(config.routing_decisions_table),
        stats=DynamoVenueStats(config.venue_stats_table),
        instruments=CachedInstruments(DynamoInstruments(config.instruments_table), INSTRUMENT_TTL_SECONDS),
        clock=clock,
        broker_dealer=config.broker_dealer_name,
        decisions_stream=None if writes is None else KinesisPublisher(writes.routing_decisions_stream),
        reports_stream=None if writes is None else KinesisPublisher(writes.venue_reports_stream),
        engine=None if writes is None else KinesisEngineCommands(writes.order_commands_stream),
        order_totals=DynamoOrderTotals(config.orders_table) if isinstance(config, RoutingApiSettings) else None,
    )
