"""Two-sided quotes with inventory skew and limits, and the market maker's P&L. No I/O.

The reservation price is the mid moved against the inventory: long ``q`` shares of a
``max_inventory`` limit moves it down by ``skew_ticks * q / max_inventory`` ticks (rounded to a
tick), so the bid is less eager and the ask more; each side quotes ``half_spread_ticks`` (plus
the venue's offset) away from it, ``levels`` levels ``level_step_ticks`` apart. A side that would
take the inventory past its limit is not quoted (long at the limit: no bid), and a level's size is
cut to what is left of the limit. Bids are floored, asks ceiled to the tick: a quote never crosses
the reservation price. Where others' orders rest past them, a side is moved clear of the book
(``clear_of_book``): its quotes are post-only, and one that would take is refused.

``Pnl`` folds fills in (exact decimals): position, cash, fees paid (a rebate is negative),
realized P&L on the closed part (average cost), unrealized at a mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple

from nexus_marketmaker.config import MarketMakerConfig

ZERO = Decimal(0)


class Quote(NamedTuple):
    side: str  # buy | sell
    price: Decimal
    size: Decimal
    level: int


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding) * tick


def reservation_price(mid: Decimal, tick: Decimal, inventory: Decimal, config: MarketMakerConfig) -> Decimal:
    ratio = max(Decimal(-1), min(Decimal(1), inventory / config.max_inventory))
    ticks = (ratio * config.skew_ticks).to_integral_value(ROUND_HALF_EVEN)
    return mid - ticks * tick


def make_quotes(
    mid: Decimal, tick: Decimal, lot: Decimal, inventory: Decimal, config: MarketMakerConfig, venue: str,
    room: tuple[Decimal, Decimal] | None = None,
) -> list[Quote]:
    """The quotes for one symbol on one venue (see module doc). ``room`` is (buy, sell): the shares
    this venue's quotes may still add on each side once the quotes live on the other venues are
    counted as filled; by default the whole limit (a single venue)."""
    if mid <= 0 or tick <= 0 or lot <= 0:
        raise ValueError("mid, tick and lot must be positive")
    center = reservation_price(mid, tick, inventory, config)
    offset = config.half_spread_ticks + config.venue_offset_ticks.get(venue, 0)
    room_buy = config.max_inventory - inventory  # shares a buy may still add
    room_sell = config.max_inventory + inventory
    if room is not None:
        room_buy, room_sell = min(room_buy, room[0]), min(room_sell, room[1])
    quotes: list[Quote] = []
    for level in range(config.levels):
        distance = (offset + level * config.level_step_ticks) * tick
        for side, room, raw, rounding in (
            ("buy", room_buy, center - distance, ROUND_FLOOR),
            ("sell", room_sell, center + distance, ROUND_CEILING),
        ):
            used = sum((q.size for q in quotes if q.side == side), ZERO)
            size = (min(config.size, room - used) / lot).to_integral_value(ROUND_FLOOR) * lot
            price = _to_tick(raw, tick, rounding)
            if size > 0 and price > 0:
                quotes.append(Quote(side, price, size, level))
    return quotes


def clear_of_book(
    quotes: list[Quote], best_bid: Decimal | None, best_ask: Decimal | None, tick: Decimal
) -> list[Quote]:
    """The quotes moved so that none would take on a venue whose other orders rest at
    ``best_bid``/``best_ask`` (None: that side is empty). A side whose best quote would meet the
    opposite best is moved away as a whole, by whole ticks, until its best quote is one tick clear
    of it: the levels keep their spacing, the sizes are unchanged. A post-only quote that would
    take is refused by the venue; quoting it again every step would be refused every step."""
    moved: list[Quote] = []
    for side, opposite in (("buy", best_ask), ("sell", best_bid)):
        own = [q for q in quotes if q.side == side]
        if not own or opposite is None:
            moved += own
            continue
        if side == "buy":
            shift = max(ZERO, max(q.price for q in own) - (opposite - tick))
            moved += [q._replace(price=q.price - shift) for q in own if q.price - shift > 0]
        else:
            shift = max(ZERO, (opposite + tick) - min(q.price for q in own))
            moved += [q._replace(price=q.price + shift) for q in own]
    return sorted(moved, key=lambda q: (q.level, q.side != "buy"))  # make_quotes' order


@dataclass
class Pnl:
    """One symbol's position and P&L from the market maker's fills."""

    position: Decimal = ZERO
    cost: Decimal = ZERO  # average cost of the open position times its size (signed with it)
    cash: Decimal = ZERO
    fees: Decimal = ZERO
    realized: Decimal = ZERO
    volume: Decimal = ZERO
    fills: int = 0
    seen: list[str] = field(default_factory=list)  # recent fill ids (idempotency), bounded

    def apply(self, fill_id: str, side: str, price: Decimal, quantity: Decimal, fee: Decimal) -> bool:
        """Fold one fill in; False when that fill id was applied already."""
        if fill_id in self.seen:
            return False
        self.seen.append(fill_id)
        del self.seen[:-500]
        signed = quantity if side == "buy" else -quantity
        self.cash -= signed * price
        self.fees += fee
        self.volume += quantity
        self.fills += 1
        if self.position == 0 or (self.position > 0) == (signed > 0):
            self.cost += signed * price
            self.position += signed
            return True
        closing = min(abs(signed), abs(self.position))
        average = self.cost / self.position
        direction = Decimal(1) if self.position > 0 else Decimal(-1)
        self.realized += (price - average) * closing * direction
        self.cost -= average * closing * direction
        self.position += signed
        rest = abs(signed) - closing
        if rest > 0:  # the fill flipped the position: the rest opens at this price
            self.cost = price * rest * (Decimal(1) if signed > 0 else Decimal(-1))
        return True

    def unrealized(self, mark: Decimal) -> Decimal:
        return mark * self.position - self.cost

    def total(self, mark: Decimal) -> Decimal:
        """Realized + unrealized, net of fees."""
        return self.realized + self.unrealized(mark) - self.fees

    def to_dict(self, mark: Decimal | None = None) -> dict[str, Any]:
        out = {"position": str(self.position), "cost": str(self.cost), "cash": str(self.cash),
               "fees": str(self.fees), "realized": str(self.realized), "volume": str(self.volume),
               "fills": self.fills, "seen": list(self.seen)}
        if mark is not None:
            out["mark"] = str(mark)
            out["unrealized"] = str(self.unrealized(mark).quantize(Decimal("0.01"), ROUND_HALF_EVEN))
            out["total"] = str(self.total(mark).quantize(Decimal("0.01"), ROUND_HALF_EVEN))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pnl:
        return cls(Decimal(data["position"]), Decimal(data["cost"]), Decimal(data["cash"]), Decimal(data["fees"]),
                   Decimal(data["realized"]), Decimal(data["volume"]), int(data["fills"]),
                   [str(s) for s in data.get("seen", [])])
