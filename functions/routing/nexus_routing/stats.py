"""Venue statistics from execution reports, and the venue rankings they give.

Per venue, symbol, side and order size bucket (the Rule 605 buckets): shares sent and filled
(fill rate), observed latency, and all-in cost per share: for each fill, how far its price is
from the NBBO midpoint at the decision against the order (positive: paid away) plus the fee per
share (a rebate is negative). ``update_venue_stats`` applies a report once (the report id is
remembered), so a redelivered report changes nothing.

Rankings per symbol, side and size: the venues by the price they show now (best first), then
all-in cost (lowest), fill rate (highest) and latency (lowest).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from nexus_common.errors import ValidationFailed
from nexus_common.money import fmt

from nexus_routing.model import ZERO, ExecStatus, ExecutionReport, Side, VenueBook
from nexus_routing.nbbo import Nbbo

SIZE_BUCKETS: Final = (
    ("<100", Decimal(0), Decimal(100)),
    ("100-499", Decimal(100), Decimal(500)),
    ("500-1999", Decimal(500), Decimal(2000)),
    ("2000-4999", Decimal(2000), Decimal(5000)),
    ("5000-9999", Decimal(5000), Decimal(10000)),
    ("10000+", Decimal(10000), None),
)
RATE_EXP: Final = Decimal("0.0001")
COST_EXP: Final = Decimal("0.000001")
SEEN_WINDOW: Final = 200_000


def size_bucket(quantity: Decimal) -> str:
    """The Rule 605 order size bucket of ``quantity`` shares."""
    for name, low, high in SIZE_BUCKETS:
        if quantity >= low and (high is None or quantity < high):
            return name
    raise ValidationFailed("invalid_quantity", "quantity must be positive", "quantity")


@dataclass(slots=True)
class VenueStat:
    sent: Decimal = ZERO
    filled: Decimal = ZERO
    orders: int = 0
    latency_total_us: int = 0
    latency_count: int = 0
    cost_shares: Decimal = ZERO
    cost_total: Decimal = ZERO  # sum over fills of (price away from the mid + fee per share) * shares

    @property
    def fill_rate(self) -> Decimal | None:
        return (self.filled / self.sent).quantize(RATE_EXP, ROUND_HALF_EVEN) if self.sent else None

    @property
    def latency_us(self) -> int | None:
        return self.latency_total_us // self.latency_count if self.latency_count else None

    @property
    def all_in_cost(self) -> Decimal | None:
        """Per share, rounded half-even to 6 places."""
        return (self.cost_total / self.cost_shares).quantize(COST_EXP, ROUND_HALF_EVEN) if self.cost_shares else None


@dataclass(frozen=True, slots=True)
class VenueRanking:
    rank: int
    venue: str
    price: Decimal | None
    fill_rate: Decimal | None
    latency_us: int | None
    all_in_cost: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "venue": self.venue,
            "price": None if self.price is None else fmt(self.price),
            "fill_rate": None if self.fill_rate is None else fmt(self.fill_rate),
            "latency_us": self.latency_us,
            "all_in_cost_per_share": None if self.all_in_cost is None else fmt(self.all_in_cost),
        }


class VenueStats:
    """The statistics store (in memory; the platform persists ``snapshot()`` rows)."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str, Side, str], VenueStat] = {}
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        # (symbol, side, bucket) -> venue -> fill rate, kept current by update_venue_stats
        self._rates: dict[tuple[str, Side, str], dict[str, Decimal]] = {}

    def stat(self, venue: str, symbol: str, side: Side, quantity: Decimal) -> VenueStat | None:
        return self._stats.get((venue, symbol, side, size_bucket(quantity)))

    def fill_rate(self, venue: str, symbol: str, side: Side, quantity: Decimal) -> Decimal | None:
        stat = self._stats.get((venue, symbol, side, size_bucket(quantity)))
        return None if stat is None else stat.fill_rate

    def fill_rates(self, symbol: str, side: Side, quantity: Decimal) -> dict[str, Decimal]:
        """Observed fill rate by venue for this symbol, side and size bucket (one read per
        decision: the router's view)."""
        return self._rates.get((symbol, side, size_bucket(quantity)), {})

    def _remember(self, report_id: str) -> bool:
        if report_id in self._seen:
            return False
        self._seen.add(report_id)
        self._order.append(report_id)
        if len(self._order) > SEEN_WINDOW:
            self._seen.discard(self._order.popleft())
        return True

    def snapshot(self) -> list[dict[str, Any]]:
        rows = []
        for (venue, symbol, side, bucket), s in sorted(self._stats.items()):
            rows.append({
                "venue": venue, "symbol": symbol, "side": side.value, "bucket": bucket,
                "sent": fmt(s.sent), "filled": fmt(s.filled), "orders": s.orders,
                "fill_rate": None if s.fill_rate is None else fmt(s.fill_rate),
                "latency_us": s.latency_us,
                "all_in_cost_per_share": None if s.all_in_cost is None else fmt(s.all_in_cost),
            })
        return rows

    def rankings(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        books: Mapping[str, VenueBook],
        expected_latency: Mapping[str, int] | None = None,
    ) -> list[VenueRanking]:
        """The venues of ``books`` ranked for an order of ``quantity`` on ``side`` (module doc)."""
        bucket = size_bucket(quantity)
        buy = side is Side.BUY
        rows: list[tuple[Any, ...]] = []
        for name, book in books.items():
            levels = book.asks if buy else book.bids
            price = levels[0].price if levels else None
            stat = self._stats.get((name, symbol, side, bucket))
            rate = stat.fill_rate if stat else None
            latency = stat.latency_us if stat and stat.latency_us is not None else (expected_latency or {}).get(name)
            cost = stat.all_in_cost if stat else None
            key = (
                price is None,
                (price if buy else -price) if price is not None else ZERO,
                cost is None,
                cost if cost is not None else ZERO,
                -(rate if rate is not None else ZERO),
                latency if latency is not None else 1 << 62,
                name,
            )
            rows.append((key, name, price, rate, latency, cost))
        rows.sort(key=lambda r: r[0])
        return [VenueRanking(i + 1, n, p, r, lat, c) for i, (_, n, p, r, lat, c) in enumerate(rows)]


def update_venue_stats(
    stats: VenueStats,
    report: ExecutionReport,
    order_quantity: Decimal | None = None,
    nbbo: Nbbo | None = None,
) -> bool:
    """Apply one execution report to the venue statistics; False when it was applied already.

    ``order_quantity``: the child order's quantity, given with the report that answers its
    submission (it counts as sent, and its latency is observed); None for later reports of a
    resting order. ``nbbo``: the NBBO at the routing decision, for the all-in cost. The bucket is
    the one of the child's quantity (cumulative plus open for later reports).
    """
    if order_quantity is not None and order_quantity <= 0:
        raise ValidationFailed("invalid_quantity", "order_quantity must be positive", "order_quantity")
    if not stats._remember(report.report_id):
        return False
    size = order_quantity if order_quantity is not None else report.cum_quantity + report.leaves_quantity
    if size <= 0:
        size = report.filled_quantity or Decimal(1)
    key = (report.venue, report.symbol, report.side, size_bucket(size))
    stat = stats._stats.get(key)
    if stat is None:
        stat = stats._stats[key] = VenueStat()
    if order_quantity is not None:
        stat.orders += 1
        stat.sent += order_quantity
        if report.status is not ExecStatus.REJECTED:
            stat.latency_total_us += report.latency_us
            stat.latency_count += 1
    mid = nbbo.midpoint if nbbo is not None else None
    for fill in report.fills:
        stat.filled += fill.quantity
        if mid is not None:
            away = fill.price - mid if report.side is Side.BUY else mid - fill.price
            stat.cost_total += away * fill.quantity + fill.fee
            stat.cost_shares += fill.quantity
    rate = stat.fill_rate
    if rate is not None:
        stats._rates.setdefault(key[1:], {})[report.venue] = rate
    return True
