"""Builders shared by the routing tests: venue configurations, books written as text, and three
simulated venues on the real matching core with a market maker's quotes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from nexus_common.instruments import Instrument
from nexus_routing.model import BookLevel, ChildOrder, Side, VenueBook
from nexus_routing.venues import SimulatedVenue, Venue

D = Decimal
NOW = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
SYMBOL = "MSFT"
INSTRUMENTS = {SYMBOL: Instrument(symbol=SYMBOL, tick_size=D("0.01"), lot_size=D("1"))}


def venue(name: str, mic: str, taker: str = "0", rebate: str = "0", **extra: Any) -> Venue:
    return Venue(
        name=name, mic=mic, kind=extra.pop("kind", "simulated"),
        fees={"taker_fee": taker, "maker_rebate": rebate}, **extra,
    )


def levels(text: str) -> tuple[BookLevel, ...]:
    """``"10.00x100 10.01x200"`` -> levels, best first as written."""
    out = []
    for part in text.split():
        price, qty = part.split("x")
        out.append(BookLevel(D(price), D(qty)))
    return tuple(out)


def book(name: str, bids: str = "", asks: str = "") -> VenueBook:
    return VenueBook(name, SYMBOL, levels(bids), levels(asks))


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def quote(sim: SimulatedVenue, tag: str, side: Side, price: str, qty: int, account: str = "mm") -> None:
    report = sim.submit(ChildOrder(f"{sim.name}-{tag}", SYMBOL, side, D(qty), D(price), "gtc", account_id=account))
    assert report.status.value == "new", report


def three_venues(clock: Clock) -> dict[str, SimulatedVenue]:
    """Alpha (taker 0.0030, rebate 0.0020), Beta (0.0010 / 0.0010), Gamma (inverted: the taker is
    paid 0.0010, the maker pays 0.0005), each quoted by a market maker: Alpha 299.99 / 300.00,
    Beta 299.98 / 300.00, Gamma 299.99 / 300.01, 100 shares a level, three levels a side."""
    specs = [
        ("Alpha", "XALP", "0.003", "0.002", "299.99", "300.00"),
        ("Beta", "XBET", "0.001", "0.001", "299.98", "300.00"),
        ("Gamma", "XGAM", "-0.001", "-0.0005", "299.99", "300.01"),
    ]
    venues = {}
    for name, mic, taker, rebate, bid, ask in specs:
        sim = SimulatedVenue(venue(name, mic, taker, rebate, latency={"base_us": 300 + 100 * len(venues), "seed": 7}),
                             INSTRUMENTS, clock)
        for k in range(3):
            quote(sim, f"a{k}", Side.SELL, str(D(ask) + D("0.01") * k), 100)
            quote(sim, f"b{k}", Side.BUY, str(D(bid) - D("0.01") * k), 100)
        venues[name] = sim
    return venues
