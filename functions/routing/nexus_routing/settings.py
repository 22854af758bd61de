"""Settings of the routing functions (environment given by the template; no defaults)."""

from __future__ import annotations

from nexus_common.settings import NexusSettings
from pydantic import Field


class RoutingApiSettings(NexusSettings):
    venues_table: str
    routing_decisions_table: str
    venue_stats_table: str
    instruments_table: str
    book_levels_table: str
    venue_state_prefix: str
    broker_dealer_name: str = Field(min_length=1, max_length=80)


class RoutingRequestsSettings(RoutingApiSettings):
    """The routing-requests consumer: what the API reads, plus the streams it writes."""

    order_commands_stream: str
    routing_decisions_stream: str
    venue_reports_stream: str


class VenueStatsConsumerSettings(NexusSettings):
    venue_stats_table: str
