"""The smart order router: one routing decision from the venues' books, and ``split_order``.

``route_order`` is pure: a request, the books of the venues (``VenueBook`` snapshots), the venue
configurations, optional venue statistics and the instant of the decision in; a
``RoutingDecision`` out, which says which venues were considered (and why one was not), the child
orders (venue, quantity, limit, ISO or not), what happens to a remainder, why, the alternatives
with their expected cost, and the NBBO at the decision.

How a marketable order is routed. Every level of every eligible venue's opposite side is a
candidate; candidates are taken greedily in price priority (the best price first), and among
equal prices by the strategy's preference:

| strategy | at one price, first | a remainder of a limit order rests on |
|---|---|---|
| ``BEST_PRICE`` | the largest displayed size | the venue most likely to fill it |
| ``FASTEST`` | the lowest expected latency | the fastest venue |
| ``LOWEST_COST`` | the lowest taker fee (rebates included) | the highest maker rebate |
| ``SMART`` | lowest fee, then best fill rate, then latency | the venue most likely to fill it |
| ``INTERNALIZE_FIRST`` | the internal venue, then the lowest fee | the internal venue |
| ``EXTERNAL_ONLY`` | the lowest fee; the internal venue is not used | the most likely external venue |

Price priority first is what keeps a route free of trade-throughs (Reg NMS Rule 611): a level is
only taken once every better level of every eligible venue is taken, so every better protected
quote is taken first, in the same sweep; the children that execute beyond another venue's
protected quote are marked ISO (intermarket sweep orders). When the request forbids ISOs, the
sweep stops at the NBBO. A protected quote the route may not take (a venue the strategy excludes,
a venue beyond ``max_venues``) stops the sweep before any price worse than it. With fees within
the Rule 610(c) cap (below a tick), "the lowest fee at one price" is exactly the greedy sweep of
the combined book by fee-inclusive price, so ``LOWEST_COST`` pays the least of all strategies.

``SMART`` adapts: a market order, a ``high`` urgency or an order the NBBO's displayed size covers
sweeps as far as its limit allows; a larger ``normal`` order takes up to two ticks through the
NBBO and re-routes the rest once those children report; a ``low`` urgency one takes the NBBO
only and rests the rest passively (never locking or crossing a protected quote).

A remainder: a limit order rests at its limit when no eligible liquidity within the limit is left
(on the venue of the table above), and is re-routed when some is left but blocked (``max_venues``,
an excluded venue's protected quote, the SMART impact cap); a market order's remainder is
re-routed (the caller bounds the rounds and cancels what is left).

Quantities are exact: the children's quantities plus ``unrouted`` equal the order's quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from heapq import heapify, heappop, heapreplace
from typing import Any, Final, NamedTuple, Protocol

from nexus_common.errors import ValidationFailed
from nexus_common.events import iso
from nexus_common.money import MAX_MAGNITUDE, MoneyError, fmt, to_decimal

from nexus_routing.model import ZERO, BookLevel, OrderType, Side, Strategy, Urgency, VenueBook
from nexus_routing.nbbo import Nbbo, compute_nbbo
from nexus_routing.venues import FillProbabilityModel, Venue

# Named tuples built on the hot path skip their generated Python ``__new__``: ``_new(Cls, values)``
# with every field, in order.
_new: Final = tuple.__new__

MAX_VENUES: Final = 16
MAX_QUANTITY: Final = Decimal(10) ** 9
ONE: Final = Decimal(1)
SMART_IMPACT_TICKS: Final = {Urgency.LOW: 0, Urgency.NORMAL: 2}

TAKE: Final = "take"
REST: Final = "rest"
NONE: Final = "none"
REROUTE: Final = "reroute"


class FillRates(Protocol):
    """What the router reads of the venue statistics (``stats.VenueStats`` is one)."""

    def fill_rates(self, symbol: str, side: Side, quantity: Decimal) -> Mapping[str, Decimal]:
        """Observed fill rate by venue for orders of this symbol, side and size (venues without
        observations absent)."""
        ...


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """One order to route. ``limit_price`` None for a market order."""

    order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    strategy: Strategy
    order_type: OrderType = OrderType.LIMIT
    limit_price: Decimal | None = None
    max_venues: int | None = None
    urgency: Urgency = Urgency.NORMAL
    allow_iso: bool = True
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = ONE
    # Immediate-or-cancel: a limit order's remainder is never rested (it goes unfilled)
    immediate: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RouteRequest:
        """A request from its JSON form; ``ValidationFailed`` (400) naming the field at fault."""

        def field(name: str, parse: Any, default: Any = None, required: bool = False) -> Any:
            raw = body.get(name)
            if raw is None:
                if required:
                    raise ValidationFailed("missing_field", f"{name} is required", field=name)
                return default
            try:
                return parse(raw)
            except (ValueError, TypeError, MoneyError) as exc:
                raise ValidationFailed("invalid_field", f"{name}: {exc}", field=name) from None

        def text(raw: Any) -> str:
            if type(raw) is not str or not 0 < len(raw) <= 64:
                raise ValueError("a string of 1 to 64 characters")
            return raw

        def integer(raw: Any) -> int:
            if type(raw) is not int:
                raise ValueError("an integer")
            return raw

        def flag(raw: Any) -> bool:
            if type(raw) is not bool:
                raise ValueError("true or false")
            return raw

        request = cls(
            order_id=field("order_id", text, required=True),
            symbol=field("symbol", text, required=True),
            side=field("side", Side, required=True),
            quantity=field("quantity", to_decimal, required=True),
            strategy=field("strategy", Strategy, required=True),
            order_type=field("order_type", OrderType, OrderType.LIMIT),
            limit_price=field("limit_price", to_decimal),
            max_venues=field("max_venues", integer),
            urgency=field("urgency", Urgency, Urgency.NORMAL),
            allow_iso=field("allow_iso", flag, True),
            tick_size=field("tick_size", to_decimal, Decimal("0.01")),
            lot_size=field("lot_size", to_decimal, ONE),
        )
        return request  # validated by __post_init__

    def validate(self) -> None:
        """Bounds checked before any arithmetic; ``ValidationFailed`` naming the field."""
        for name, kind in (("side", Side), ("strategy", Strategy), ("order_type", OrderType), ("urgency", Urgency)):
            if not isinstance(getattr(self, name), kind):
                raise ValidationFailed("invalid_field", f"{name} must be one of {[k.value for k in kind]}", name)
        if type(self.order_id) is not str or not 0 < len(self.order_id) <= 64:
            raise ValidationFailed("invalid_field", "order_id is 1 to 64 characters", "order_id")
        if type(self.symbol) is not str or not 0 < len(self.symbol) <= 12:
            raise ValidationFailed("invalid_field", "symbol is 1 to 12 characters", "symbol")
        quantity = self.quantity
        if not (isinstance(quantity, Decimal) and quantity.is_finite() and ZERO < quantity <= MAX_QUANTITY):
            raise ValidationFailed("invalid_quantity", f"quantity is above 0, at most {MAX_QUANTITY}", "quantity")
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if not (isinstance(value, Decimal) and value.is_finite() and ZERO < value < MAX_MAGNITUDE):
                raise ValidationFailed("invalid_field", f"{name} must be positive", name)
            if value.as_tuple().exponent < -8:  # type: ignore[operator]
                raise ValidationFailed("invalid_field", f"{name} has at most 8 decimal places", name)
        if self.quantity.as_tuple().exponent < -8 or self.quantity % self.lot_size:  # type: ignore[operator]
            raise ValidationFailed("quantity_off_lot", f"quantity must be a multiple of {self.lot_size}", "quantity")
        if self.order_type is OrderType.MARKET:
            if self.limit_price is not None:
                raise ValidationFailed("unexpected_price", "a market order takes no limit_price", "limit_price")
        else:
            price = self.limit_price
            if price is None:
                raise ValidationFailed("missing_price", "a limit order needs a limit_price", "limit_price")
            if not (isinstance(price, Decimal) and price.is_finite() and ZERO < price < MAX_MAGNITUDE):
                raise ValidationFailed("invalid_price", "limit_price must be positive", "limit_price")
            if price.as_tuple().exponent < -8 or price % self.tick_size:  # type: ignore[operator]
                raise ValidationFailed(
                    "price_off_tick", f"limit_price must be a multiple of {self.tick_size}", "limit_price"
                )
        if self.max_venues is not None and not 1 <= self.max_venues <= MAX_VENUES:
            raise ValidationFailed("invalid_max_venues", f"max_venues is 1 to {MAX_VENUES}", "max_venues")


class Allocation(NamedTuple):
    """One child order of a decision. ``take``: an IOC limit at ``limit_price`` (the worst price
    it may reach); ``rest``: a GTC limit resting at ``limit_price``. ``notional`` and ``fees`` are
    what the displayed book lets the router expect (``fees`` negative: a rebate)."""

    venue: str
    mic: str
    action: str
    quantity: Decimal
    limit_price: Decimal
    notional: Decimal
    fees: Decimal
    iso: bool
    expected_latency_us: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "mic": self.mic,
            "action": self.action,
            "quantity": fmt(self.quantity),
            "limit_price": fmt(self.limit_price),
            "expected_notional": fmt(self.notional),
            "expected_fees": fmt(self.fees),
            "iso": self.iso,
            "expected_latency_us": self.expected_latency_us,
        }


class Considered(NamedTuple):
    """A venue the router looked at, and whether (and why not) it could be used."""

    venue: str
    mic: str
    kind: str
    eligible: bool
    why: str
    taker_fee: Decimal
    maker_rebate: Decimal
    expected_latency_us: int
    fill_rate: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "mic": self.mic,
            "kind": self.kind,
            "eligible": self.eligible,
            "why": self.why,
            "taker_fee": fmt(self.taker_fee),
            "maker_rebate": fmt(self.maker_rebate),
            "expected_latency_us": self.expected_latency_us,
            "fill_rate": None if self.fill_rate is None else fmt(self.fill_rate),
        }


class Alternative(NamedTuple):
    """The order sent to one venue alone: what its displayed book would fill within the limit,
    and at what cost (``all_in`` = notional plus fees for a buy, minus fees for a sell)."""

    venue: str
    fillable: Decimal
    notional: Decimal
    fees: Decimal
    all_in: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "fillable": fmt(self.fillable),
            "expected_notional": fmt(self.notional),
            "expected_fees": fmt(self.fees),
            "expected_all_in": fmt(self.all_in),
        }


class RoutingDecision(NamedTuple):
    """One routing decision, ready to be stored and published (``to_dict``)."""

    decision_id: str
    order_id: str
    round: int
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    strategy: Strategy
    urgency: Urgency
    ts: datetime
    nbbo: Nbbo
    considered: tuple[Considered, ...]
    children: tuple[Allocation, ...]
    unrouted: Decimal
    remainder: str  # none | rest | reroute
    reason: str
    alternatives: tuple[Alternative, ...]

    @property
    def taken(self) -> Decimal:
        total = ZERO
        for child in self.children:
            if child.action == TAKE:
                total += child.quantity
        return total

    @property
    def expected_notional(self) -> Decimal:
        total = ZERO
        for child in self.children:
            if child.action == TAKE:
                total += child.notional
        return total

    @property
    def expected_fees(self) -> Decimal:
        total = ZERO
        for child in self.children:
            if child.action == TAKE:
                total += child.fees
        return total

    @property
    def expected_all_in(self) -> Decimal:
        """The taken part's notional with fees: paid for a buy, received for a sell."""
        if self.side is Side.BUY:
            return self.expected_notional + self.expected_fees
        return self.expected_notional - self.expected_fees

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "order_id": self.order_id,
            "round": self.round,
            "symbol": self.symbol,
            "side": self.side.value,
            "quantity": fmt(self.quantity),
            "order_type": self.order_type.value,
            "limit_price": None if self.limit_price is None else fmt(self.limit_price),
            "strategy": self.strategy.value,
            "urgency": self.urgency.value,
            "ts": iso(self.ts),
            "nbbo": self.nbbo.to_dict(),
            "considered": [c.to_dict() for c in self.considered],
            "chosen": [c.to_dict() for c in self.children],
            "unrouted": fmt(self.unrouted),
            "remainder": self.remainder,
            "reason": self.reason,
            "alternatives": [a.to_dict() for a in self.alternatives],
            "expected_notional": fmt(self.expected_notional),
            "expected_fees": fmt(self.expected_fees),
            "expected_all_in": fmt(self.expected_all_in),
        }


def expected_latency_us(venue: Venue) -> int:
    return _facts(venue).latency


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the router reads of a venue configuration, computed once per configuration object."""

    venue: Venue
    latency: int
    taker_fee: Decimal
    maker_rebate: Decimal
    internal: bool
    fill_model: FillProbabilityModel


_FACTS: dict[int, _Facts] = {}


_ROSTERS: dict[int, tuple[Mapping[str, Venue], tuple[tuple[str, Venue, _Facts], ...]]] = {}


def _roster(venues: Mapping[str, Venue]) -> tuple[tuple[str, Venue, _Facts], ...]:
    """The venues in name order with their facts, kept per venues mapping object and checked
    venue by venue (a mapping changed in place is read again)."""
    cached = _ROSTERS.get(id(venues))
    if cached is not None and cached[0] is venues and len(cached[1]) == len(venues):
        get = venues.get
        for name, venue, _ in cached[1]:
            if get(name) is not venue:  # changed in place: build it again
                break
        else:
            return cached[1]
    roster = tuple((name, venues[name], _facts(venues[name])) for name in sorted(venues))
    if len(_ROSTERS) >= 256:
        _ROSTERS.clear()
    _ROSTERS[id(venues)] = (venues, roster)
    return roster


def _facts(venue: Venue) -> _Facts:
    facts = _FACTS.get(id(venue))
    if facts is None or facts.venue is not venue:
        spec = venue.latency
        latency = spec.base_us + spec.jitter_us // 2 + int(spec.tail_probability * spec.tail_us)
        facts = _Facts(venue, latency, venue.fees.taker_fee, venue.fees.maker_rebate, venue.internal,
                       FillProbabilityModel(venue.fill_model))
        if len(_FACTS) >= 4096:
            _FACTS.clear()
        _FACTS[id(venue)] = facts
    return facts


def _eligibility(strategy: Strategy, venue: Venue, book: VenueBook | None) -> str:
    """Empty when the venue can be used, else why not."""
    if not venue.enabled:
        return "disabled"
    if book is None:
        return "no book"
    if strategy is Strategy.EXTERNAL_ONLY and venue.internal:
        return "internal venue excluded by EXTERNAL_ONLY"
    return ""


def _preference(strategy: Strategy, name: str, facts: _Facts, fill_rate: Decimal | None) -> tuple[Any, ...]:
    """The strategy's order among venues quoting the same price (lower first; see module doc)."""
    fee = facts.taker_fee
    if strategy is Strategy.FASTEST:
        return (facts.latency, fee, name)
    if strategy is Strategy.INTERNALIZE_FIRST:
        return (0 if facts.internal else 1, fee, name)
    if strategy is Strategy.SMART:
        return (fee, -(fill_rate if fill_rate is not None else ONE), facts.latency, name)
    if strategy is Strategy.BEST_PRICE:
        return (name,)  # the level's size comes first, see _entry
    return (fee, name)


def route_order(
    request: RouteRequest,
    books: Mapping[str, VenueBook],
    venues: Mapping[str, Venue],
    now: datetime,
    stats: FillRates | None = None,
    round_: int = 1,
    nbbo: Nbbo | None = None,
) -> RoutingDecision:
    """One routing decision (see the module doc). ``nbbo``: the NBBO of exactly these books when
    the caller maintains it (computed here otherwise). ``ValidationFailed`` for a bad request or
    a naive ``now``."""
    if now.tzinfo is None:
        raise ValidationFailed("invalid_clock", "the decision instant must be tz-aware", "ts")
    if not 1 <= round_ <= 1_000:
        raise ValidationFailed("invalid_round", "round is 1 to 1000", "round")
    side, strategy, symbol = request.side, request.strategy, request.symbol
    buy = side is Side.BUY
    if nbbo is None:
        nbbo = compute_nbbo(symbol, books, venues)
    rates = stats.fill_rates(symbol, side, request.quantity) if stats is not None else {}
    limit = request.limit_price
    far = nbbo.far(side)

    by_size = strategy is Strategy.BEST_PRICE  # BEST_PRICE: the largest level first at one price
    considered: list[Considered] = []
    heap: list[tuple[Any, ...]] = []
    level_lists: list[tuple[BookLevel, ...]] = []
    infos: list[tuple[Venue, _Facts]] = []
    prefs: list[tuple[Any, ...]] = []
    for name, venue, facts in _roster(venues):
        book = books.get(name)
        why = _eligibility(strategy, venue, book)
        rate = rates.get(name)
        considered.append(
            _new(Considered, (name, venue.mic, venue.kind, not why, why or "eligible", facts.taker_fee,
                              facts.maker_rebate, facts.latency, rate))
        )
        if book is None or not venue.enabled:
            continue
        levels = book.asks if buy else book.bids
        if not levels:
            continue
        if why:  # an enabled venue's protected quote the route may not take: a blocker
            top = levels[0].price
            heap.append((top if buy else -top, 1, name))
            continue
        index = len(level_lists)
        level_lists.append(levels)
        infos.append((venue, facts))
        pref = _preference(strategy, name, facts, rate)
        prefs.append(pref)
        top_level = levels[0]
        key = top_level.price if buy else -top_level.price
        heap.append((key, 0, -top_level.quantity, pref, index, 0) if by_size else (key, 0, pref, index, 0))
    heapify(heap)

    # How far the sweep may go: the limit, the NBBO without ISOs, SMART's impact cap.
    cap = limit
    cap_reason = "limit reached"
    mode = ""
    if strategy is Strategy.SMART and far is not None:
        displayed = nbbo.ask_size if buy else nbbo.bid_size
        if request.order_type is OrderType.MARKET or request.urgency is Urgency.HIGH:
            mode = "sweep (market order or high urgency)"
        elif request.quantity <= displayed:
            mode = "the NBBO's displayed size covers the order"
        else:
            ticks = SMART_IMPACT_TICKS[request.urgency]
            impact = far + ticks * request.tick_size if buy else far - ticks * request.tick_size
            if cap is None or (impact < cap if buy else impact > cap):
                cap, cap_reason = impact, "impact cap reached"
            mode = f"larger than the NBBO's {displayed} displayed: at most {ticks} ticks through the NBBO"
    if not request.allow_iso and far is not None and (cap is None or (far < cap if buy else far > cap)):
        cap, cap_reason = far, "the NBBO reached (no ISO allowed)"

    remaining = request.quantity
    taken: dict[int, list[Decimal]] = {}  # venue index -> [quantity, notional, worst price]
    order: list[int] = []
    stop = "filled"
    max_venues = request.max_venues
    while remaining:
        if not heap:
            stop = "no more displayed liquidity"
            break
        entry = heap[0]
        price = entry[0] if buy else -entry[0]
        if cap is not None and (price > cap if buy else price < cap):
            stop = cap_reason
            break
        if entry[1] == 1:
            stop = f"protected quote of {entry[2]} at {price} may not be traded through"
            break
        index, li = entry[-2], entry[-1]
        if index not in taken:
            if max_venues is not None and len(taken) >= max_venues:
                stop = f"max_venues {max_venues} reached"
                break
            taken[index] = [ZERO, ZERO, price]
            order.append(index)
        venue_levels = level_lists[index]
        level = venue_levels[li]
        qty = level.quantity if level.quantity < remaining else remaining
        acc = taken[index]
        acc[0] += qty
        acc[1] += qty * price
        acc[2] = price
        remaining -= qty
        if li + 1 < len(venue_levels):
            nxt = venue_levels[li + 1]
            key = nxt.price if buy else -nxt.price
            heapreplace(heap, (key, 0, -nxt.quantity, prefs[index], index, li + 1) if by_size
                        else (key, 0, prefs[index], index, li + 1))
        else:
            heappop(heap)

    # Children: ISO when they reach beyond another venue's protected quote.
    tops: dict[str, Decimal] = {}
    for q in nbbo.quotes:
        quoted = q.ask if buy else q.bid
        if quoted is not None:
            tops[q.venue] = quoted
    children: list[Allocation] = []
    for index in order:
        venue, facts = infos[index]
        qty, notional, worst = taken[index]
        beyond = False
        for name, other in tops.items():
            if name != venue.name and (worst > other if buy else worst < other):
                beyond = True
                break
        children.append(
            Allocation(venue.name, venue.mic, TAKE, qty, worst, notional, facts.taker_fee * qty, beyond, facts.latency)
        )

    unrouted = remaining
    remainder = NONE
    reason = f"{strategy.value}: " + (f"{mode}; " if mode else "")
    if children:
        reason += f"took {request.quantity - remaining} from {', '.join(c.venue for c in children)}"
    else:
        reason += "took nothing"
    if remaining:
        next_price = None
        if heap:
            next_price = heap[0][0] if buy else -heap[0][0]
        blocked = stop != "limit reached" and stop != "no more displayed liquidity"
        reason += f"; {stop}"
        if request.order_type is OrderType.MARKET or (blocked and request.urgency is not Urgency.LOW) or limit is None:
            remainder = REROUTE
            reason += f"; {remaining} re-routed when the children report"
        elif request.immediate:
            reason += f"; {fmt(remaining)} not rested: immediate-or-cancel"
        else:
            rest_price = limit
            if next_price is not None and (rest_price >= next_price if buy else rest_price <= next_price):
                rest_price = next_price - request.tick_size if buy else next_price + request.tick_size
            rest = _rest_venue(request, rest_price, remaining, books, venues, [c for c in considered if c.eligible])
            if rest is None or rest_price <= 0:
                remainder = REROUTE
                reason += f"; no venue to rest on: {fmt(remaining)} re-routed"
            else:
                venue, why = rest
                children.append(
                    Allocation(venue.name, venue.mic, REST, remaining, rest_price, remaining * rest_price,
                               venue.fees.maker_cost(remaining), False, expected_latency_us(venue))
                )
                unrouted = ZERO
                remainder = REST
                reason += f"; {fmt(remaining)} rests on {venue.name} at {fmt(rest_price)} ({why})"

    return RoutingDecision(
        decision_id=f"{request.order_id}-r{round_}",
        order_id=request.order_id,
        round=round_,
        symbol=symbol,
        side=side,
        quantity=request.quantity,
        order_type=request.order_type,
        limit_price=limit,
        strategy=strategy,
        urgency=request.urgency,
        ts=now,
        nbbo=nbbo,
        considered=tuple(considered),
        children=tuple(children),
        unrouted=unrouted,
        remainder=remainder,
        reason=reason,
        alternatives=tuple(_alternatives(request, books, venues)),
    )


def _rest_venue(
    request: RouteRequest,
    price: Decimal,
    quantity: Decimal,
    books: Mapping[str, VenueBook],
    venues: Mapping[str, Venue],
    eligible: list[Considered],
) -> tuple[Venue, str] | None:
    """Where a remainder rests, per strategy (see the module doc)."""
    if not eligible:
        return None
    chosen = [venues[c.venue] for c in eligible]
    strategy = request.strategy
    if strategy is Strategy.INTERNALIZE_FIRST:
        for v in chosen:
            if v.internal:
                return v, "internal venue"
    if strategy is Strategy.FASTEST:
        best = min(chosen, key=lambda v: (_facts(v).latency, v.name))
        return best, "lowest expected latency"
    chance = {v.name: _fill_probability(request, v, books[v.name], price, quantity) for v in chosen}
    if strategy is Strategy.LOWEST_COST:
        best = max(chosen, key=lambda v: (_facts(v).maker_rebate, chance[v.name], v.name))
        return best, f"highest maker rebate {best.fees.maker_rebate}"
    best = max(chosen, key=lambda v: (chance[v.name], _facts(v).maker_rebate, v.name))
    return best, f"fill probability {chance[best.name]:.2f}"


def _fill_probability(request: RouteRequest, venue: Venue, book: VenueBook, price: Decimal, quantity: Decimal) -> float:
    buy = request.side is Side.BUY
    own = book.bids if buy else book.asks
    model = _facts(venue).fill_model
    if not own:
        return model.probability(0, ZERO, quantity)
    touch = own[0].price
    behind = (touch - price) if buy else (price - touch)
    ticks = max(0, int(behind / request.tick_size))
    ahead = ZERO
    for level in own:
        if (level.price < price) if buy else (level.price > price):
            break
        ahead += level.quantity
    return model.probability(ticks, ahead, quantity)


def _alternatives(
    request: RouteRequest, books: Mapping[str, VenueBook], venues: Mapping[str, Venue]
) -> list[Alternative]:
    buy = request.side is Side.BUY
    limit = request.limit_price
    found: list[Alternative] = []
    quantity = request.quantity
    side = request.side
    for name in sorted(books):
        venue = venues.get(name)
        if venue is None or not venue.enabled:
            continue
        fillable, notional = books[name].sweep(side, quantity, limit)
        fees = _facts(venue).taker_fee * fillable
        found.append(_new(Alternative, (name, fillable, notional, fees, notional + fees if buy else notional - fees)))
    return found


def split_order(
    quantity: Decimal,
    displayed: Mapping[str, Decimal],
    max_venues: int,
    lot_size: Decimal = ONE,
) -> dict[str, Decimal]:
    """Split ``quantity`` across at most ``max_venues`` venues in proportion to their displayed
    liquidity, in whole lots, exactly: the parts sum to ``quantity``.

    The venues with the most displayed liquidity are kept (ties by name); each gets
    ``floor(quantity * displayed / total)`` lots, and the lots left over go one by one to the
    largest fractional remainders (ties: more displayed first, then name). A venue with nothing
    displayed gets nothing unless no venue displays anything (then the split is even).
    ``ValidationFailed`` for a quantity that is not a positive multiple of ``lot_size``, a
    ``max_venues`` out of 1..16, a negative displayed size, or no venue at all.
    """
    try:
        quantity = to_decimal(quantity)
        lot_size = to_decimal(lot_size)
    except MoneyError as exc:
        raise ValidationFailed("invalid_quantity", str(exc), "quantity") from None
    if not ZERO < lot_size < MAX_MAGNITUDE:
        raise ValidationFailed("invalid_field", "lot_size must be positive", "lot_size")
    if not ZERO < quantity <= MAX_QUANTITY or quantity % lot_size:
        raise ValidationFailed("invalid_quantity", f"quantity must be a positive multiple of {lot_size}", "quantity")
    if type(max_venues) is not int or not 1 <= max_venues <= MAX_VENUES:
        raise ValidationFailed("invalid_max_venues", f"max_venues is 1 to {MAX_VENUES}", "max_venues")
    if not displayed:
        raise ValidationFailed("no_venue", "no venue to split across", "venues")
    sizes: dict[str, Decimal] = {}
    for name, size in displayed.items():
        try:
            value = to_decimal(size)
        except MoneyError as exc:
            raise ValidationFailed("invalid_displayed", f"{name}: {exc}", "displayed") from None
        if value < 0:
            raise ValidationFailed("invalid_displayed", f"{name}: displayed size is negative", "displayed")
        sizes[name] = value
    ranked = sorted(sizes, key=lambda n: (-sizes[n], n))
    keep = [n for n in ranked if sizes[n] > 0][:max_venues] or ranked[:max_venues]
    total = sum((sizes[n] for n in keep), ZERO)
    lots = int(quantity / lot_size)
    weights = {n: (sizes[n] if total else ONE) for n in keep}
    weight_total = total if total else Decimal(len(keep))
    parts: dict[str, int] = {}
    fractions: list[tuple[Decimal, Decimal, str]] = []
    for name in keep:
        share = lots * weights[name]
        whole = int(share // weight_total)
        parts[name] = whole
        fractions.append((-(share - whole * weight_total), -weights[name], name))
    left = lots - sum(parts.values())
    for _, _, name in sorted(fractions)[:left]:
        parts[name] += 1
    return {name: parts[name] * lot_size for name in keep if parts[name]}


def trade_throughs(decision: RoutingDecision) -> list[str]:
    """The Rule 611 violations of a decision against the protected quotes at its NBBO: a child
    that may execute at a price worse than another venue's protected quote, unless it is an ISO
    and the same sweep takes that whole protected quote. Empty: no trade-through."""
    buy = decision.side is Side.BUY
    takes = {c.venue: c for c in decision.children if c.action == TAKE}
    found: list[str] = []
    for child in takes.values():
        for quote in decision.nbbo.quotes:
            if quote.venue == child.venue:
                continue
            top, size = (quote.ask, quote.ask_size) if buy else (quote.bid, quote.bid_size)
            if top is None or not (child.limit_price > top if buy else child.limit_price < top):
                continue
            if not child.iso:
                found.append(f"{child.venue} at {fmt(child.limit_price)} trades through {quote.venue} at {fmt(top)}")
                continue
            sweep = takes.get(quote.venue)
            if sweep is None or sweep.quantity < size or (sweep.limit_price < top if buy else sweep.limit_price > top):
                found.append(
                    f"ISO on {child.venue} at {fmt(child.limit_price)} leaves {quote.venue}'s {fmt(top)} untaken"
                )
    return found
