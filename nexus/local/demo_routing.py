"""Demo venues and the demo market maker (``nexus up --demo``), through the services' own code.

Venues: the internal book (NexusTrade, MIC NXTR) and three simulated external venues with their
own fee schedules and latencies: Alpha (taker 0.0030, rebate 0.0020 a share), Beta (0.0010 /
0.0010) and Gamma (inverted: the taker is paid 0.0010, the maker pays 0.0005). The market maker
gets an account of its own (its API key only in the state folder, like the demo users') and a
configuration quoting the demo symbols on every venue (Gamma a tick wider than the others, so the
books differ and the NBBO has something to choose)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

MARKET_MAKER_CASH: Final = Decimal("50000000.00")
DEMO_VENUES: Final = (
    {"name": "NexusTrade", "mic": "NXTR", "kind": "internal",
     "fees": {"taker_fee": "0", "maker_rebate": "0"}, "latency": {"base_us": 150, "jitter_us": 50, "seed": 1}},
    {"name": "Alpha", "mic": "XALP", "kind": "simulated",
     "fees": {"taker_fee": "0.003", "maker_rebate": "0.002"}, "latency": {"base_us": 400, "seed": 2}},
    {"name": "Beta", "mic": "XBET", "kind": "simulated",
     "fees": {"taker_fee": "0.001", "maker_rebate": "0.001"}, "latency": {"base_us": 600, "seed": 3}},
    {"name": "Gamma", "mic": "XGAM", "kind": "simulated",
     "fees": {"taker_fee": "-0.001", "maker_rebate": "-0.0005"}, "latency": {"base_us": 900, "seed": 4}},
)
# Where the demo books start before any trade (the market maker's mid until the symbol trades).
# AAPL at 150.00: the README's first trade (alice sells 10 at 150.00, bob buys 4 at 151.00) rests
# inside the market maker's 149.98 / 150.02 and is taken first, as written there.
DEMO_REFERENCE_PRICES: Final = {"AAPL": "150.00", "MSFT": "420.00", "GOOGL": "170.00", "AMZN": "180.00"}


def seed_venues(table: Callable[[str], str]) -> list[str]:
    """The demo venues (a venue of that name is replaced: a restart keeps the same set)."""
    from nexus_routing.repo import DynamoVenues
    from nexus_routing.venues import Venue

    store = DynamoVenues(table("VenuesTable"))
    for row in DEMO_VENUES:
        store.put(Venue.from_item(row))
    return [str(row["name"]) for row in DEMO_VENUES]


def seed_market_maker(table: Callable[[str], str], **overrides: Any) -> dict[str, str]:
    """A funded account for the market maker and its configuration on the demo symbols and
    venues (``overrides``: configuration fields, e.g. a faster ``refresh_seconds`` in tests)."""
    from nexus_common import aws

    from nexus.local.demo import create_account

    account = create_account(table, "marketmaker", MARKET_MAKER_CASH)
    config = {
        "item": "config",
        "account_id": account["account_id"],
        "symbols": list(DEMO_REFERENCE_PRICES),
        "venues": [str(row["name"]) for row in DEMO_VENUES],
        "reference_prices": dict(DEMO_REFERENCE_PRICES),
        "half_spread_ticks": 2,
        "venue_offset_ticks": {"NexusTrade": 0, "Alpha": 0, "Beta": 0, "Gamma": 1},
        "size": "100",
        "levels": 2,
        "level_step_ticks": 1,
        "refresh_seconds": "1",
        "max_inventory": "2000",
        "skew_ticks": 2,
        **overrides,
    }
    aws.dynamodb_table(table("MarketMakerTable")).put_item(Item=config)
    return account
