"""The value types of best execution: sides, strategies, book levels, child orders, fills and
execution reports.

Money and quantities are ``Decimal`` (per-share prices and fees exact, never float); times are
tz-aware UTC ``datetime``; durations are integer microseconds. These are plain frozen slotted
dataclasses because the router builds them on its hot path; ``to_dict`` gives the JSON-ready form
(decimals as strings) for storing and publishing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from nexus_common.events import iso
from nexus_common.money import fmt

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Strategy(StrEnum):
    BEST_PRICE = "BEST_PRICE"
    FASTEST = "FASTEST"
    LOWEST_COST = "LOWEST_COST"
    SMART = "SMART"
    INTERNALIZE_FIRST = "INTERNALIZE_FIRST"
    EXTERNAL_ONLY = "EXTERNAL_ONLY"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class Liquidity(StrEnum):
    TAKER = "taker"
    MAKER = "maker"


class ExecStatus(StrEnum):
    NEW = "new"  # accepted, resting, nothing filled
    PARTIALLY_FILLED = "partially_filled"  # some filled, the rest resting
    FILLED = "filled"
    CANCELLED = "cancelled"  # done; what was not filled is cancelled (IOC remainder, user, ...)
    REJECTED = "rejected"


class BookLevel(NamedTuple):
    """One aggregated displayed price level."""

    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class VenueBook:
    """A venue's displayed book of one symbol, best level first on each side."""

    venue: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    bid_depth: Decimal = field(init=False, compare=False)  # shares displayed per side
    ask_depth: Decimal = field(init=False, compare=False)
    _cumulative: dict[Side, tuple[tuple[Decimal, Decimal, Decimal], ...]] = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        total = ZERO
        for level in self.bids:
            total += level.quantity
        object.__setattr__(self, "bid_depth", total)
        total = ZERO
        for level in self.asks:
            total += level.quantity
        object.__setattr__(self, "ask_depth", total)
        object.__setattr__(self, "_cumulative", {})

    def sweep(self, side: Side, quantity: Decimal, limit: Decimal | None) -> tuple[Decimal, Decimal]:
        """What a taker on ``side`` sweeping this book alone for ``quantity`` within ``limit``
        (None: none) would get: ``(shares, notional)``, exact. Running totals per level are
        computed once per snapshot."""
        cumulative = self._cumulative.get(side)
        if cumulative is None:
            rows = []
            shares = notional = ZERO
            for level in self.asks if side is Side.BUY else self.bids:
                shares += level.quantity
                notional += level.quantity * level.price
                rows.append((level.price, shares, notional))
            cumulative = self._cumulative[side] = tuple(rows)
        buy = side is Side.BUY
        prev_shares = prev_notional = ZERO
        for price, shares, notional in cumulative:
            if limit is not None and (price > limit if buy else price < limit):
                break
            if shares >= quantity:
                return quantity, prev_notional + (quantity - prev_shares) * price
            prev_shares, prev_notional = shares, notional
        return prev_shares, prev_notional

    def levels(self, side: Side) -> tuple[BookLevel, ...]:
        """The levels a taker on ``side`` trades against (asks for a buy)."""
        return self.asks if side is Side.BUY else self.bids

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "bids": [[fmt(lv.price), fmt(lv.quantity)] for lv in self.bids],
            "asks": [[fmt(lv.price), fmt(lv.quantity)] for lv in self.asks],
        }


class ChildOrder(NamedTuple):
    """An order sent to one venue. ``price`` None: a market order. ``account_id`` None: the
    router's own account at the venue."""

    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal | None
    time_in_force: str = "ioc"  # ioc (take) or gtc (rest)
    iso: bool = False  # an intermarket sweep order (Reg NMS 600(b)(30))
    parent_id: str | None = None
    account_id: str | None = None


class Fill(NamedTuple):
    """One execution. ``fee`` is what the router pays for it, exact: positive a fee (taker),
    negative a rebate received (maker)."""

    price: Decimal
    quantity: Decimal
    liquidity: Liquidity
    fee: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "price": fmt(self.price),
            "quantity": fmt(self.quantity),
            "liquidity": self.liquidity.value,
            "fee": fmt(self.fee),
        }


class ExecutionReport(NamedTuple):
    """What a venue answers about one child order: the fills of this report, the order's
    cumulative and open quantities after it, and its status. ``report_id`` is unique per venue
    and deterministic, so a consumer applies each report once."""

    report_id: str
    venue: str
    order_id: str
    symbol: str
    side: Side
    status: ExecStatus
    fills: tuple[Fill, ...]
    cum_quantity: Decimal
    leaves_quantity: Decimal
    latency_us: int
    ts: datetime
    reason: str | None = None
    parent_id: str | None = None

    @property
    def filled_quantity(self) -> Decimal:
        total = ZERO
        for f in self.fills:
            total += f.quantity
        return total

    @property
    def notional(self) -> Decimal:
        total = ZERO
        for f in self.fills:
            total += f.price * f.quantity
        return total

    @property
    def fees(self) -> Decimal:
        total = ZERO
        for f in self.fills:
            total += f.fee
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "venue": self.venue,
            "order_id": self.order_id,
            "parent_id": self.parent_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "status": self.status.value,
            "fills": [f.to_dict() for f in self.fills],
            "cum_quantity": fmt(self.cum_quantity),
            "leaves_quantity": fmt(self.leaves_quantity),
            "latency_us": self.latency_us,
            "ts": iso(self.ts),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionReport:
        """The report ``to_dict`` gave (decimals from their strings, exactly)."""
        return cls(
            report_id=str(data["report_id"]), venue=str(data["venue"]), order_id=str(data["order_id"]),
            symbol=str(data["symbol"]), side=Side(data["side"]), status=ExecStatus(data["status"]),
            fills=tuple(Fill(Decimal(f["price"]), Decimal(f["quantity"]), Liquidity(f["liquidity"]),
                             Decimal(f["fee"])) for f in data["fills"]),
            cum_quantity=Decimal(data["cum_quantity"]), leaves_quantity=Decimal(data["leaves_quantity"]),
            latency_us=int(data["latency_us"]), ts=datetime.fromisoformat(data["ts"]), reason=data.get("reason"),
            parent_id=data.get("parent_id"),
        )
