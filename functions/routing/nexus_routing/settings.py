"""Settings of the routing functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings
from pydantic import Field


class RoutingSettings(NexusSettings):
    """What every routing function reads: the venues, decisions and statistics, the books."""

    venues_table: str
    routing_decisions_table: str
    venue_stats_table: str
    instruments_table: str
    book_levels_table: str
    venue_state_prefix: str
    broker_dealer_name: str = Field(min_length=1, max_length=80)


class RoutingApiSettings(RoutingSettings):
    """The routing API: also the orders table (a routed order's totals, for the 605 statistics)."""

    orders_table: str


class RoutingRequestsSettings(RoutingSettings):
    """The routing-requests consumer: also the streams it writes."""

    order_commands_stream: str
    routing_decisions_stream: str
    venue_reports_stream: str


class VenueStatsConsumerSettings(NexusSettings):
    venue_stats_table: str
