"""The national best bid and offer across the venues, from their protected quotes.

A venue's protected quote is the top of its displayed book (Reg NMS 600(b)(58), simplified: every
enabled venue's best bid and best offer are protected); a disabled venue quotes nothing. The NBBO
is the highest protected bid and the lowest protected offer, with the size displayed at that
price on every venue quoting it and each venue's own quote and depth beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from nexus_common.money import fmt

from nexus_routing.model import ZERO, Side, VenueBook
from nexus_routing.venues import Venue

_new = tuple.__new__


class ProtectedQuote(NamedTuple):
    venue: str
    mic: str
    bid: Decimal | None
    bid_size: Decimal
    ask: Decimal | None
    ask_size: Decimal
    bid_depth: Decimal  # shares displayed on the bid side within the book snapshot
    ask_depth: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "mic": self.mic,
            "bid": None if self.bid is None else fmt(self.bid),
            "bid_size": fmt(self.bid_size),
            "ask": None if self.ask is None else fmt(self.ask),
            "ask_size": fmt(self.ask_size),
            "bid_depth": fmt(self.bid_depth),
            "ask_depth": fmt(self.ask_depth),
        }


class Nbbo(NamedTuple):
    """``bid``/``ask`` None: no venue quotes that side."""

    symbol: str
    bid: Decimal | None
    bid_size: Decimal
    bid_venues: tuple[str, ...]
    ask: Decimal | None
    ask_size: Decimal
    ask_venues: tuple[str, ...]
    quotes: tuple[ProtectedQuote, ...]

    def far(self, side: Side) -> Decimal | None:
        """The price a taker on ``side`` meets first (the offer for a buy)."""
        return self.ask if side is Side.BUY else self.bid

    def near(self, side: Side) -> Decimal | None:
        return self.bid if side is Side.BUY else self.ask

    @property
    def midpoint(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid

    @property
    def crossed(self) -> bool:
        return self.bid is not None and self.ask is not None and self.bid > self.ask

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "bid": None if self.bid is None else fmt(self.bid),
            "bid_size": fmt(self.bid_size),
            "bid_venues": list(self.bid_venues),
            "ask": None if self.ask is None else fmt(self.ask),
            "ask_size": fmt(self.ask_size),
            "ask_venues": list(self.ask_venues),
            "quotes": [q.to_dict() for q in self.quotes],
        }


def compute_nbbo(symbol: str, books: Mapping[str, VenueBook], venues: Mapping[str, Venue]) -> Nbbo:
    """The NBBO of ``symbol`` from the books of the enabled venues (a venue without a book, or
    disabled, quotes nothing). Quotes are listed in venue-name order."""
    quotes: list[ProtectedQuote] = []
    bid = ask = None
    bid_size = ask_size = ZERO
    bid_venues: list[str] = []
    ask_venues: list[str] = []
    for name in sorted(books):
        venue = venues.get(name)
        if venue is None or not venue.enabled:
            continue
        book = books[name]
        top_bid = book.bids[0] if book.bids else None
        top_ask = book.asks[0] if book.asks else None
        quotes.append(
            _new(ProtectedQuote, (  # every field in order, without the generated __new__
                name,
                venue.mic,
                None if top_bid is None else top_bid.price,
                ZERO if top_bid is None else top_bid.quantity,
                None if top_ask is None else top_ask.price,
                ZERO if top_ask is None else top_ask.quantity,
                book.bid_depth,
                book.ask_depth,
            ))
        )
        if top_bid is not None:
            if bid is None or top_bid.price > bid:
                bid, bid_size, bid_venues = top_bid.price, top_bid.quantity, [name]
            elif top_bid.price == bid:
                bid_size += top_bid.quantity
                bid_venues.append(name)
        if top_ask is not None:
            if ask is None or top_ask.price < ask:
                ask, ask_size, ask_venues = top_ask.price, top_ask.quantity, [name]
            elif top_ask.price == ask:
                ask_size += top_ask.quantity
                ask_venues.append(name)
    return Nbbo(symbol, bid, bid_size, tuple(bid_venues), ask, ask_size, tuple(ask_venues), tuple(quotes))
