"""Execution venues: their configuration as data, their fee, latency and fill-probability models,
the ``ExecutionVenue`` interface and its two kinds.

* ``Venue`` is one row of the venues table (name, MIC, kind, fees, latency, fill model,
  enabled): a pydantic model, decimals as strings on the wire (``to_item`` / ``from_item``).
* ``SimulatedVenue`` is an external venue simulated in process: a real price-time order book,
  the NexusTrade matching core (``nexus_matching.engine.MatchingEngine``) used as a library, its
  own fee schedule, a seeded latency model and a seeded flow that fills resting orders with the
  probability the fill model gives.
* ``InternalVenue`` is the platform's own matching engine behind a port (``InternalEnginePort``):
  the platform supplies the port (order commands on the stream, the book cache); the router sees
  the same interface as for any venue.

Fees are per share in USD, exact: a taker pays ``taker_fee`` per share (negative on an inverted
venue: the taker is paid), a maker receives ``maker_rebate`` per share (negative: the maker pays).
``Fill.fee`` carries what the router pays (a rebate is negative). Access fees are bounded by the
Rule 610(c) cap of USD 0.003 per share (quotes of USD 1.00 or more).
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from nexus_common.errors import ValidationFailed
from nexus_common.events import iso
from nexus_common.instruments import Instrument
from nexus_common.money import fmt, to_decimal
from nexus_matching.engine import EngineConfig, MatchingEngine
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nexus_routing.model import (
    ZERO,
    BookLevel,
    ChildOrder,
    ExecStatus,
    ExecutionReport,
    Fill,
    Liquidity,
    Side,
    VenueBook,
)

ACCESS_FEE_CAP: Final = Decimal("0.003")  # Rule 610(c): USD per share, quotes >= USD 1.00
DEFAULT_DEPTH: Final = 10
MAX_LATENCY_US: Final = 10_000_000  # 10 s: anything slower is no venue
ROUTER_ACCOUNT: Final = "nexus-router"
FLOW_ACCOUNT: Final = "sim-flow"


class VenueKind:
    INTERNAL: Final = "internal"
    SIMULATED: Final = "simulated"


def _probability(value: Decimal, name: str) -> Decimal:
    if not ZERO <= value <= 1:
        raise ValueError(f"{name} is a probability between 0 and 1")
    return value


class FeeSchedule(BaseModel):
    """Per-share fees in USD, exact (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    taker_fee: Decimal = Field(default=ZERO, ge=-ACCESS_FEE_CAP, le=ACCESS_FEE_CAP)
    maker_rebate: Decimal = Field(default=ZERO, ge=-ACCESS_FEE_CAP, le=ACCESS_FEE_CAP)

    @field_validator("taker_fee", "maker_rebate", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Decimal:
        result: Decimal = to_decimal(value)
        return result

    def taker_cost(self, quantity: Decimal) -> Decimal:
        """What a taker pays for ``quantity`` shares (negative: it is paid)."""
        return self.taker_fee * quantity

    def maker_cost(self, quantity: Decimal) -> Decimal:
        """What a maker pays for ``quantity`` shares (negative: the rebate it receives)."""
        return -self.maker_rebate * quantity


class LatencySpec(BaseModel):
    """A venue's round-trip latency: ``base_us`` plus a uniform jitter up to ``jitter_us``, and
    with probability ``tail_probability`` a further ``tail_us`` (a slow tail). Seeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_us: int = Field(default=500, ge=0, le=MAX_LATENCY_US)
    jitter_us: int = Field(default=100, ge=0, le=MAX_LATENCY_US)
    tail_probability: Decimal = Field(default=Decimal("0.01"))
    tail_us: int = Field(default=2_000, ge=0, le=MAX_LATENCY_US)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    @field_validator("tail_probability", mode="before")
    @classmethod
    def _tail(cls, value: Any) -> Decimal:
        return _probability(to_decimal(value), "tail_probability")


class FillModelSpec(BaseModel):
    """Fill probability of a resting order within one horizon (see ``FillProbabilityModel``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    touch_probability: Decimal = Field(default=Decimal("0.6"))
    decay_per_tick: Decimal = Field(default=Decimal("0.5"))
    turnover: Decimal = Field(default=Decimal("1000"), gt=0)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    @field_validator("touch_probability", "decay_per_tick", mode="before")
    @classmethod
    def _probabilities(cls, value: Any) -> Decimal:
        return _probability(to_decimal(value), "probability")

    @field_validator("turnover", mode="before")
    @classmethod
    def _turnover(cls, value: Any) -> Decimal:
        result: Decimal = to_decimal(value)
        return result


class Venue(BaseModel):
    """One venue as data: a row of the venues table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9 .,&'()/-]*$")
    mic: str = Field(pattern=r"^[A-Z0-9]{4}$")  # ISO 10383
    kind: str = Field(pattern=r"^(internal|simulated)$")
    fees: FeeSchedule = Field(default_factory=FeeSchedule)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    fill_model: FillModelSpec = Field(default_factory=FillModelSpec)
    enabled: bool = True

    @property
    def internal(self) -> bool:
        return self.kind == VenueKind.INTERNAL

    def to_item(self) -> dict[str, Any]:
        """The JSON/table form: decimals as strings."""
        return self.model_dump(mode="json")

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Venue:
        """Parse a venue row or request body; ``ValidationFailed`` (400) naming the field."""
        try:
            return cls.model_validate(dict(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or None
            raise ValidationFailed("invalid_venue", f"{where}: {first['msg']}", field=where) from None


class LatencyModel:
    """Samples a venue's latency in microseconds from its own seeded generator."""

    __slots__ = ("_base", "_jitter", "_rng", "_tail", "_tail_p", "expected_us")

    def __init__(self, spec: LatencySpec) -> None:
        self._base = spec.base_us
        self._jitter = spec.jitter_us
        self._tail_p = float(spec.tail_probability)
        self._tail = spec.tail_us
        self._rng = random.Random(spec.seed)
        self.expected_us = spec.base_us + spec.jitter_us // 2 + int(spec.tail_probability * spec.tail_us)

    def sample(self) -> int:
        rng = self._rng
        latency = self._base + int(self._jitter * rng.random())
        if self._tail_p and rng.random() < self._tail_p:
            latency += self._tail
        return latency


class FillProbabilityModel:
    """The probability that a resting order fills within one horizon.

    ``p = touch_probability * decay_per_tick ** ticks_behind * min(1, turnover / (queue_ahead +
    quantity))``: an order at the touch with nothing ahead fills with ``touch_probability``; each
    tick behind the touch multiplies that by ``decay_per_tick``; the shares queued ahead and the
    order's own size share the horizon's ``turnover``. A price through the touch (marketable)
    is 1. A probability, not money: computed in binary floating point.
    """

    __slots__ = ("_decay", "_touch", "_turnover")

    def __init__(self, spec: FillModelSpec) -> None:
        self._touch = float(spec.touch_probability)
        self._decay = float(spec.decay_per_tick)
        self._turnover = float(spec.turnover)

    def probability(self, ticks_behind: int, queue_ahead: Decimal, quantity: Decimal) -> float:
        if ticks_behind < 0:
            return 1.0
        share = min(1.0, self._turnover / float(queue_ahead + quantity)) if queue_ahead + quantity > 0 else 1.0
        return self._touch * math.pow(self._decay, ticks_behind) * share


class ExecutionVenue(ABC):
    """What the router needs of a venue: its book, order entry, fees, latency and fill model."""

    def __init__(self, config: Venue) -> None:
        self.config = config
        self.latency = LatencyModel(config.latency)
        self.fill_model = FillProbabilityModel(config.fill_model)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def fees(self) -> FeeSchedule:
        return self.config.fees

    @abstractmethod
    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        """The displayed book of ``symbol``, ``levels`` per side, best first."""

    @abstractmethod
    def tick_size(self, symbol: str) -> Decimal: ...

    @abstractmethod
    def submit(self, order: ChildOrder) -> ExecutionReport:
        """Send an order; the report of what happened at once (taker fills, resting, refused)."""

    @abstractmethod
    def cancel(self, symbol: str, order_id: str) -> ExecutionReport | None:
        """Cancel a live order; None when it is not live."""

    @abstractmethod
    def drain_reports(self) -> list[ExecutionReport]:
        """Reports that happened since the last call (maker fills of resting orders)."""

    def quote(self, symbol: str) -> VenueBook:
        """The top of book: the venue's protected quote."""
        return self.depth(symbol, 1)

    def fill_probability(self, symbol: str, side: Side, price: Decimal, quantity: Decimal) -> float:
        """The probability that an order resting at ``price`` on ``side`` fills in one horizon."""
        book = self.depth(symbol)
        tick = self.tick_size(symbol)
        opposite = book.asks if side is Side.BUY else book.bids
        if opposite and (price >= opposite[0].price if side is Side.BUY else price <= opposite[0].price):
            return 1.0
        own = book.bids if side is Side.BUY else book.asks
        if not own:
            return self.fill_model.probability(0, ZERO, quantity)
        touch = own[0].price
        behind = (touch - price) if side is Side.BUY else (price - touch)
        ticks = max(0, int(behind / tick))
        ahead = ZERO
        for level in own:
            if (level.price >= price) if side is Side.BUY else (level.price <= price):
                ahead += level.quantity
        return self.fill_model.probability(ticks, ahead, quantity)


@dataclass(slots=True)
class _Live:
    """An order the venue accepted and that rests: whose it is and what it has filled."""

    symbol: str
    side: Side
    account_id: str
    quantity: Decimal
    cum: Decimal
    parent_id: str | None
    price: Decimal | None = None


class SimulatedVenue(ExecutionVenue):
    """An external venue simulated in process on the NexusTrade matching core (see module doc).

    The clock is injected (``clock()`` returns the tz-aware instant stamped on commands and
    reports); latency and the simulated flow are seeded from the venue's configuration, so the
    same calls give the same reports.
    """

    def __init__(
        self,
        config: Venue,
        instruments: Mapping[str, Instrument],
        clock: Callable[[], datetime],
        engine_config: EngineConfig | None = None,
        router_account: str = ROUTER_ACCOUNT,
    ) -> None:
        super().__init__(config)
        self.engine = MatchingEngine(instruments, config=engine_config)
        self._instruments = dict(instruments)
        self._clock = clock
        self._router_account = router_account
        self._flow_rng = random.Random(config.fill_model.seed)
        self._live: dict[str, _Live] = {}
        self._reports: list[ExecutionReport] = []
        self._books: dict[tuple[str, int], tuple[int, VenueBook]] = {}
        self._version = 0
        self._commands = 0
        self._seq = 0
        self._prices: dict[str, dict[int, Decimal]] = {}
        self._sizes: dict[str, dict[int, Decimal]] = {}
        self._ts: tuple[datetime | None, str] = (None, "")

    # -- book --------------------------------------------------------------------------------

    def tick_size(self, symbol: str) -> Decimal:
        tick: Decimal = self._instrument(symbol).tick_size
        return tick

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise ValidationFailed("unknown_symbol", f"{symbol!r} is not traded on {self.name}", field="symbol")
        return instrument

    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        cached = self._books.get((symbol, levels))
        if cached is not None and cached[0] == self._version:
            return cached[1]
        instrument = self._instrument(symbol)
        tick, lot = instrument.tick_size, instrument.lot_size
        raw = self.engine.book_depth(symbol, levels)
        prices = self._prices.setdefault(symbol, {})  # ticks -> Decimal price, lots -> Decimal size
        sizes = self._sizes.setdefault(symbol, {})
        sides: list[tuple[BookLevel, ...]] = []
        for name in ("bids", "asks"):
            rows = []
            for p, q, _ in raw[name]:
                price = prices.get(p)
                if price is None:
                    price = prices[p] = tick * p
                size = sizes.get(q)
                if size is None:
                    if len(sizes) > 100_000:
                        sizes.clear()
                    size = sizes[q] = lot * q
                rows.append(BookLevel(price, size))
            sides.append(tuple(rows))
        book = VenueBook(self.name, symbol, sides[0], sides[1])
        self._books[(symbol, levels)] = (self._version, book)
        return book

    # -- orders ------------------------------------------------------------------------------

    def _command(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        self._commands += 1
        command["command_id"] = f"{self.name}-c{self._commands}"
        now = self._clock()
        if self._ts[0] != now:
            self._ts = (now, iso(now))
        command["ts"] = self._ts[1]
        self._version += 1
        events: list[dict[str, Any]] = self.engine.process(command)
        return events

    def _report(
        self,
        order_id: str,
        live: _Live,
        status: ExecStatus,
        fills: tuple[Fill, ...],
        latency_us: int,
        reason: str | None = None,
        leaves: Decimal | None = None,
    ) -> ExecutionReport:
        self._seq += 1
        return ExecutionReport(
            report_id=f"{self.name}:{self._seq}",
            venue=self.name,
            order_id=order_id,
            symbol=live.symbol,
            side=live.side,
            status=status,
            fills=fills,
            cum_quantity=live.cum,
            leaves_quantity=live.quantity - live.cum if leaves is None else leaves,
            latency_us=latency_us,
            ts=self._clock().astimezone(UTC),
            reason=reason,
            parent_id=live.parent_id,
        )

    def submit(self, order: ChildOrder) -> ExecutionReport:
        self._instrument(order.symbol)
        account = order.account_id or self._router_account
        command: dict[str, Any] = {
            "type": "new",
            "order_id": order.order_id,
            "account_id": account,
            "symbol": order.symbol,
            "side": order.side.value,
            "order_type": "market" if order.price is None else "limit",
            "quantity": fmt(order.quantity),
            "time_in_force": order.time_in_force,
        }
        if order.price is not None:
            command["price"] = fmt(order.price)
        latency = self.latency.sample()
        live = _Live(order.symbol, order.side, account, order.quantity, ZERO, order.parent_id, order.price)
        events = self._command(command)
        fills: list[Fill] = []
        done_reason: str | None = None
        for event in events:
            kind = event["type"]
            if kind == "rejected":
                return self._report(order.order_id, live, ExecStatus.REJECTED, (), latency, event["reason"], ZERO)
            if kind == "trade":
                self._on_trade(event, order.order_id, live, fills)
            elif kind == "cancelled" and event["order_id"] == order.order_id:
                done_reason = event["reason"]
        if not events:  # a duplicate order id: the engine ignores it
            return self._report(order.order_id, live, ExecStatus.REJECTED, (), latency, "duplicate_order_id", ZERO)
        if live.cum == order.quantity:
            status = ExecStatus.FILLED
        elif done_reason is not None or order.price is None or order.time_in_force in ("ioc", "fok"):
            status = ExecStatus.CANCELLED
            done_reason = done_reason or "not_resting"
        else:
            status = ExecStatus.PARTIALLY_FILLED if live.cum else ExecStatus.NEW
            self._live[order.order_id] = live
        leaves = None if status in (ExecStatus.NEW, ExecStatus.PARTIALLY_FILLED) else ZERO
        return self._report(order.order_id, live, status, tuple(fills), latency, done_reason, leaves)

    def _on_trade(self, event: dict[str, Any], order_id: str, live: _Live, fills: list[Fill]) -> None:
        price = Decimal(event["price"])
        quantity = Decimal(event["quantity"])
        fees = self.config.fees
        if event["taker_order_id"] == order_id:
            live.cum += quantity
            fills.append(Fill(price, quantity, Liquidity.TAKER, fees.taker_cost(quantity)))
        maker = self._live.get(event["maker_order_id"])
        if maker is not None:
            maker.cum += quantity
            fill = Fill(price, quantity, Liquidity.MAKER, fees.maker_cost(quantity))
            done = maker.cum == maker.quantity
            status = ExecStatus.FILLED if done else ExecStatus.PARTIALLY_FILLED
            self._reports.append(self._report(event["maker_order_id"], maker, status, (fill,), 0))
            if done:
                del self._live[event["maker_order_id"]]

    def cancel(self, symbol: str, order_id: str, reason: str = "user") -> ExecutionReport | None:
        live = self._live.get(order_id)
        if live is None or live.symbol != symbol:
            return None
        events = self._command(
            {"type": "cancel", "order_id": order_id, "account_id": live.account_id, "symbol": symbol}
        )
        if not any(e["type"] == "cancelled" for e in events):
            return None
        del self._live[order_id]
        return self._report(order_id, live, ExecStatus.CANCELLED, (), self.latency.sample(), reason, ZERO)

    def drain_reports(self) -> list[ExecutionReport]:
        reports, self._reports = self._reports, []
        return reports

    def drain_reports_of(self, parent_id: str) -> list[ExecutionReport]:
        """The pending reports of ``parent_id``'s children; other routed orders' stay pending (for
        the sweep that sends them), the rest (other accounts' orders) are dropped as by
        ``drain_reports``."""
        reports, self._reports = self._reports, [r for r in self._reports
                                                 if r.parent_id and r.parent_id != parent_id]
        return [r for r in reports if r.parent_id == parent_id]

    def routed_children(self) -> dict[str, tuple[str, str]]:
        """The routed children live here: ``(symbol, parent id)`` by child order id."""
        return {oid: (live.symbol, live.parent_id) for oid, live in self._live.items() if live.parent_id}

    def live_orders(self) -> dict[str, Decimal]:
        """Open quantity of every live order submitted through this venue object."""
        return {oid: live.quantity - live.cum for oid, live in self._live.items()}

    def cancel_account(self, account_id: str, keep: Iterable[str] = ()) -> list[str]:
        """Cancel every live order of ``account_id`` except those in ``keep``; the ids cancelled."""
        kept = set(keep)
        cancelled = []
        for order_id, live in list(self._live.items()):
            if live.account_id == account_id and order_id not in kept and self.cancel(live.symbol, order_id):
                cancelled.append(order_id)
        return cancelled

    def simulate_flow(self, symbol: str) -> int:
        """One horizon of outside order flow: each live order submitted through ``submit``
        (oldest first) is met, with the probability the fill model gives on the book as the
        horizon starts, by a flow order for its open quantity at its price, which trades through
        the real book (price-time priority: whatever queues ahead of it fills first). Returns the
        number of flow orders sent."""
        drawn: list[tuple[str, _Live, Decimal]] = []  # probabilities from the book as the horizon starts
        for order_id, live in self._live.items():
            if live.symbol != symbol or live.price is None:
                continue
            probability = self.fill_probability(symbol, live.side, live.price, live.quantity - live.cum)
            if self._flow_rng.random() < probability:
                drawn.append((order_id, live, live.price))
        sent = 0
        for order_id, live, price in drawn:
            if order_id not in self._live:
                continue
            open_qty = live.quantity - live.cum
            sent += 1
            events = self._command(
                {
                    "type": "new",
                    "order_id": f"{self.name}-flow-{self._commands + 1}",
                    "account_id": FLOW_ACCOUNT,
                    "symbol": symbol,
                    "side": "sell" if live.side is Side.BUY else "buy",
                    "order_type": "limit",
                    "price": fmt(price),
                    "quantity": fmt(open_qty),
                    "time_in_force": "ioc",
                }
            )
            for event in events:
                if event["type"] == "trade":
                    self._on_trade(event, "", live, [])
        return sent


class InternalEnginePort(Protocol):
    """What the platform supplies for its own matching engine (order commands, book cache)."""

    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook: ...

    def tick_size(self, symbol: str) -> Decimal: ...

    def submit(self, order: ChildOrder) -> ExecutionReport: ...

    def cancel(self, symbol: str, order_id: str) -> ExecutionReport | None: ...

    def drain_reports(self) -> list[ExecutionReport]: ...


class InternalVenue(ExecutionVenue):
    """The platform's own matching engine as a venue, through ``InternalEnginePort``."""

    def __init__(self, config: Venue, port: InternalEnginePort) -> None:
        if not config.internal:
            raise ValidationFailed("invalid_venue", "the internal venue has kind 'internal'", field="kind")
        super().__init__(config)
        self._port = port

    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        book = self._port.depth(symbol, levels)
        return book if book.venue == self.name else VenueBook(self.name, symbol, book.bids, book.asks)

    def tick_size(self, symbol: str) -> Decimal:
        return self._port.tick_size(symbol)

    def submit(self, order: ChildOrder) -> ExecutionReport:
        return self._port.submit(order)

    def cancel(self, symbol: str, order_id: str) -> ExecutionReport | None:
        return self._port.cancel(symbol, order_id)

    def drain_reports(self) -> list[ExecutionReport]:
        return self._port.drain_reports()
