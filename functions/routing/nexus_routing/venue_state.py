"""A simulated venue's state as JSON-ready data, so a venue can live between processes.

The routing API and the market maker share each simulated external venue: its book is kept as
the matching core's own snapshot (``MatchingEngine.snapshot`` / ``restore``) with the venue's
live orders (whose they are, what they filled), the reports of routed children not drained yet,
its report and command counters and its simulated-flow generator. ``dump`` and ``load``
round-trip exactly; the same commands on a loaded venue give the same reports as on the
original. No I/O here (``repo.RedisVenueBooks`` stores the data under a lock).

``book_to_dict`` / ``book_from_dict``: a venue's displayed book, the cheap read of the NBBO.

The library's ``SimulatedVenue`` has no snapshot of its own yet; this module reads and sets its
fields (the engine, the live orders, the counters), which is why it lives beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.instruments import Instrument
from nexus_common.money import fmt
from nexus_matching.engine import MatchingEngine

from nexus_routing.model import BookLevel, ExecutionReport, Side, VenueBook
from nexus_routing.venues import SimulatedVenue, Venue, _Live

STATE_FORMAT: Final = 1


def dump(venue: SimulatedVenue) -> dict[str, Any]:
    version, state, gauss = venue._flow_rng.getstate()
    return {
        "format": STATE_FORMAT,
        "venue": venue.name,
        "engine": venue.engine.snapshot(),
        "live": {
            order_id: {
                "symbol": live.symbol, "side": live.side.value, "account_id": live.account_id,
                "quantity": fmt(live.quantity), "cum": fmt(live.cum), "parent_id": live.parent_id,
                "price": None if live.price is None else fmt(live.price),
            }
            for order_id, live in venue._live.items()
        },
        # the reports of routed children not drained yet (their fills reach the platform when
        # routing drains them); the reports of other accounts' orders are not kept
        "reports": [r.to_dict() for r in venue._reports if r.parent_id],
        "commands": venue._commands,
        "seq": venue._seq,
        "rng": [version, list(state), gauss],
    }


def load(
    config: Venue,
    instruments: Mapping[str, Instrument],
    clock: Callable[[], datetime],
    state: Mapping[str, Any] | None,
    router_account: str | None = None,
) -> SimulatedVenue:
    """The venue of ``config`` as ``dump`` left it (``state`` None: a new, empty venue)."""
    kwargs: dict[str, Any] = {} if router_account is None else {"router_account": router_account}
    venue = SimulatedVenue(config, instruments, clock, **kwargs)
    if state is None:
        return venue
    if state.get("format") != STATE_FORMAT or state.get("venue") != config.name:
        raise ValueError(f"not a state of venue {config.name!r}")
    known = {symbol: instrument for symbol, instrument in instruments.items()}
    for symbol in state["engine"].get("books", {}):
        if symbol not in known:
            raise ValueError(f"the state of {config.name} has a book of unknown symbol {symbol!r}")
    venue.engine = MatchingEngine.restore(state["engine"], known)
    venue._live = {
        order_id: _Live(
            row["symbol"], Side(row["side"]), row["account_id"], Decimal(row["quantity"]), Decimal(row["cum"]),
            row["parent_id"], None if row["price"] is None else Decimal(row["price"]),
        )
        for order_id, row in state["live"].items()
    }
    venue._reports = [ExecutionReport.from_dict(r) for r in state.get("reports", [])]
    venue._commands = int(state["commands"])
    venue._seq = int(state["seq"])
    version, rng_state, gauss = state["rng"]
    venue._flow_rng.setstate((version, tuple(rng_state), gauss))
    return venue


def book_to_dict(book: VenueBook) -> dict[str, Any]:
    return book.to_dict()


def book_from_dict(data: Mapping[str, Any]) -> VenueBook:
    def side(rows: Any) -> tuple[BookLevel, ...]:
        return tuple(BookLevel(Decimal(price), Decimal(qty)) for price, qty in rows)

    return VenueBook(str(data["venue"]), str(data["symbol"]), side(data["bids"]), side(data["asks"]))
