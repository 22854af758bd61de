"""The routing service: what the routing API and the routed-order path call.

* ``nbbo`` / ``books``: the protected quotes of the enabled venues (the internal venue's
  displayed levels from the market-data book, each simulated venue's from its saved book).
* ``rankings``: the venues for a symbol, side and size, from the stored statistics.
* ``route``: a routed parent order over the venues (``SmartOrderRouter``): each decision is
  stored and published before its children are sent, the children's reports are published on
  the venue-reports stream (the statistics consumer's input), and the parent, its children and
  fills are stored.
* ``decisions``: a parent with its decisions and children, for its owner, compliance or admin.
* ``report_606`` / ``execution_quality``: the Rule 606(a)(1) report and the Rule 605-style
  statistics over the stored parents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Protocol

from nexus_common.errors import Conflict, NotFound, ValidationFailed
from nexus_common.events import RouteCancelRequest, RoutedFill, RoutedFillsCommand, RouteOrderRequest, iso
from nexus_common.identity import Principal
from nexus_common.instruments import Instrument

from nexus_routing.execution import SmartOrderRouter
from nexus_routing.model import (
    ZERO,
    BookLevel,
    ChildOrder,
    ExecStatus,
    ExecutionReport,
    OrderType,
    Side,
    Strategy,
    Urgency,
    VenueBook,
)
from nexus_routing.nbbo import Nbbo, compute_nbbo
from nexus_routing.parent import AVG_EXP, LIVE, ChildState, ParentOrder
from nexus_routing.reports import (
    MARKET_ZONE,
    ExecutedFill,
    ExecutionRecord,
    RoutedOrder,
    VenueRoute,
    classify_order,
    execution_quality,
    parse_quarter,
    rule606_report,
    rule606_xml,
)
from nexus_routing.router import RouteRequest, RoutingDecision, expected_latency_us
from nexus_routing.stats import VenueStat, VenueStats, size_bucket, update_venue_stats
from nexus_routing.venues import (
    DEFAULT_DEPTH,
    ExecutionVenue,
    InternalEnginePort,
    InternalVenue,
    SimulatedVenue,
    Venue,
)

# S&P 500 constituents among the listed symbols (the 606 report's first section); others are
# "other NMS stocks".
CENT: Final = Decimal("0.01")
SP500: Final = frozenset({"AAPL", "MSFT", "GOOGL", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "IBM"})
MAX_REPORT_DAYS: Final = 93
SESSION_CLOSE: Final = time(16, 0)  # New York: a ``day`` remainder expires at the close
MAX_APPLIED: Final = 500  # report keys a working parent keeps (its item stays small)
OVERSIGHT_ROLES: Final = ("compliance", "admin")
STAT_FIELDS: Final = ("sent", "filled", "orders", "latency_total_us", "latency_count", "cost_shares", "cost_total")


class VenueRepo(Protocol):
    def list(self) -> list[Venue]: ...


class InternalBook(Protocol):
    def depth(self, venue: str, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook: ...


class SimulatedBooks(Protocol):
    def books(self, names: Iterable[str], symbol: str) -> dict[str, VenueBook]: ...

    def open(self, configs: Iterable[Venue], account: str | None = None) -> Any: ...


class DecisionStore(Protocol):
    def put_decision(self, order_id: str, decision: Mapping[str, Any]) -> None: ...

    def put_parent(self, parent: Mapping[str, Any]) -> None: ...

    def get(self, order_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]: ...

    def parents(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored parents of these orders (those that exist), by order id."""

    def parents_in_months(self, months: Iterable[str], start: str = "0", end: str = "~",
                          limit: int = 100_000) -> Iterable[dict[str, Any]]: ...


class StatsStore(Protocol):
    def rows(self, key: str) -> list[dict[str, Any]]: ...

    def apply(self, report_id: str, key: str, venue: str, deltas: Mapping[str, int | Decimal], now_s: int) -> bool:
        """Add a report's deltas to the stored counters once (False: the report was applied before)."""


class Publisher(Protocol):
    def publish(self, records: list[tuple[str, Mapping[str, Any]]]) -> None: ...


class EngineCommands(Protocol):
    """The engine's ``order-commands`` stream (partition key = symbol)."""

    def send(self, command: RoutedFillsCommand) -> None: ...


class OrderTotals(Protocol):
    """What the orders table says a routed order filled in all (its internal venue's part is
    the engine's, folded there): ``(filled_quantity, filled_notional, updated_at)`` by id."""

    def totals(self, order_ids: list[str]) -> dict[str, tuple[Decimal, Decimal, datetime]]: ...


class InstrumentLookup(Protocol):
    def get(self, symbol: str) -> Instrument | None: ...


def stats_key(symbol: str, side: Side, bucket: str) -> str:
    return f"{symbol}#{side.value}#{bucket}"


def stats_from_rows(symbol: str, side: Side, bucket: str, rows: Iterable[Mapping[str, Any]]) -> VenueStats:
    """A ``VenueStats`` holding the stored counters of one symbol, side and bucket."""
    stats = VenueStats()
    rates: dict[str, Decimal] = {}
    for row in rows:
        stat = VenueStat(
            sent=Decimal(str(row.get("sent", 0))), filled=Decimal(str(row.get("filled", 0))),
            orders=int(row.get("orders", 0)), latency_total_us=int(row.get("latency_total_us", 0)),
            latency_count=int(row.get("latency_count", 0)), cost_shares=Decimal(str(row.get("cost_shares", 0))),
            cost_total=Decimal(str(row.get("cost_total", 0))),
        )
        venue = str(row["venue"])
        stats._stats[(venue, symbol, side, bucket)] = stat
        if stat.fill_rate is not None:
            rates[venue] = stat.fill_rate
    stats._rates[(symbol, side, bucket)] = rates
    return stats


def stat_deltas(stat: VenueStat) -> dict[str, int | Decimal]:
    return {"sent": stat.sent, "filled": stat.filled, "orders": stat.orders,
            "latency_total_us": stat.latency_total_us, "latency_count": stat.latency_count,
            "cost_shares": stat.cost_shares, "cost_total": stat.cost_total}


def market_month(ts: datetime) -> str:
    local = ts.astimezone(MARKET_ZONE)
    return f"{local.year:04d}-{local.month:02d}"


class _Recording(ExecutionVenue):
    """A venue that remembers every report it gives (with the child's quantity), for publishing."""

    def __init__(self, inner: ExecutionVenue, sink: list[tuple[ExecutionReport, Decimal | None]],
                 parent_id: str | None = None) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.sink = sink
        self.parent_id = parent_id  # set: other routed orders' reports stay on the venue for their sweep

    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        return self.inner.depth(symbol, levels)

    def tick_size(self, symbol: str) -> Decimal:
        return self.inner.tick_size(symbol)

    def submit(self, order: ChildOrder) -> ExecutionReport:
        report = self.inner.submit(order)
        self.sink.append((report, order.quantity))
        return report

    def cancel(self, symbol: str, order_id: str) -> ExecutionReport | None:
        report = self.inner.cancel(symbol, order_id)
        if report is not None:
            self.sink.append((report, None))
        return report

    def drain_reports(self) -> list[ExecutionReport]:
        if self.parent_id is not None and isinstance(self.inner, SimulatedVenue):
            reports = self.inner.drain_reports_of(self.parent_id)
        else:
            reports = self.inner.drain_reports()
        self.sink.extend((r, None) for r in reports)
        return reports


DEFERRED: Final = "sent to the engine with the order's external fills"


def _less(levels: tuple[BookLevel, ...], taken: Decimal) -> tuple[BookLevel, ...]:
    """``levels`` (best first) with ``taken`` removed from the top."""
    out: list[BookLevel] = []
    for level in levels:
        if taken >= level.quantity:
            taken -= level.quantity
            continue
        out.append(BookLevel(level.price, level.quantity - taken))
        taken = ZERO
    return tuple(out)


class _Deferred(ExecutionVenue):
    """The internal venue as the routing consumer reaches it: a child sent here is not run now;
    it is kept (its limit price) for the engine's ``routed_fills`` command, which runs what the
    external fills left on the internal book in the same engine step. Its report says so
    (working, nothing filled): the router routes nothing else of it, and it is not a report of
    the venue's own (no statistics, no venue report)."""

    def __init__(self, config: Venue, book: InternalBook, tick: Decimal, clock: Callable[[], datetime]) -> None:
        super().__init__(config)
        self.book = book
        self.tick = tick
        self.clock = clock
        self.sent: list[ChildOrder] = []  # children that take (immediate-or-cancel)
        self.rest: ChildOrder | None = None  # a remainder the route rests here

    def depth(self, symbol: str, levels: int = DEFAULT_DEPTH) -> VenueBook:
        """The displayed book less what the children sent here will take of it (best first), so
        a later round does not count on it again."""
        book = self.book.depth(self.name, symbol, levels)
        bids, asks = book.bids, book.asks
        for side in (Side.BUY, Side.SELL):
            taken = sum((o.quantity for o in self.sent if o.side is side), ZERO)
            if taken:
                if side is Side.BUY:
                    asks = _less(asks, taken)
                else:
                    bids = _less(bids, taken)
        return VenueBook(book.venue, book.symbol, bids, asks)

    def tick_size(self, symbol: str) -> Decimal:
        return self.tick

    def submit(self, order: ChildOrder) -> ExecutionReport:
        if order.time_in_force == "ioc":
            self.sent.append(order)
        else:
            self.rest = order
        return ExecutionReport(f"{order.order_id}-sent", self.name, order.order_id, order.symbol, order.side,
                               ExecStatus.NEW, (), ZERO, order.quantity, 0, self.clock(), DEFERRED, order.parent_id)

    def cancel(self, symbol: str, order_id: str) -> ExecutionReport | None:
        return None  # the engine ends it: IOC

    def drain_reports(self) -> list[ExecutionReport]:
        return []

    def internal_price(self, side: Side) -> Decimal | None:
        """The price the engine's part runs at: the furthest limit of the children sent here."""
        prices = [o.price for o in self.sent if o.price is not None]
        if not prices:
            return None
        return max(prices) if side is Side.BUY else min(prices)


class RoutingService:
    def __init__(
        self,
        venues: VenueRepo,
        internal_book: InternalBook,
        simulated: SimulatedBooks,
        decisions: DecisionStore,
        stats: StatsStore,
        instruments: InstrumentLookup,
        clock: Callable[[], datetime],
        broker_dealer: str,
        decisions_stream: Publisher | None = None,
        reports_stream: Publisher | None = None,
        engine: EngineCommands | None = None,
        order_totals: OrderTotals | None = None,
    ) -> None:
        self.venues = venues
        self.internal_book = internal_book
        self.simulated = simulated
        self.decision_store = decisions
        self.stats = stats
        self.instruments = instruments
        self.clock = clock
        self.broker_dealer = broker_dealer
        self.decisions_stream = decisions_stream
        self.reports_stream = reports_stream
        self.engine = engine
        self.order_totals = order_totals  # None: the statistics count the external fills alone

    # -- reads ---------------------------------------------------------------------------------

    def instrument(self, symbol: str) -> Instrument:
        found = self.instruments.get(symbol)
        if found is None:
            raise NotFound("unknown_symbol", f"no instrument {symbol[:16]!r}", "symbol")
        return found

    def books(self, symbol: str, configs: list[Venue] | None = None) -> tuple[dict[str, Venue], dict[str, VenueBook]]:
        configs = self.venues.list() if configs is None else configs
        enabled = {v.name: v for v in configs if v.enabled}
        books: dict[str, VenueBook] = {}
        for venue in enabled.values():
            if venue.internal:
                books[venue.name] = self.internal_book.depth(venue.name, symbol)
        books.update(self.simulated.books([v.name for v in enabled.values() if not v.internal], symbol))
        return enabled, books

    def nbbo(self, symbol: str) -> Nbbo:
        self.instrument(symbol)
        venues, books = self.books(symbol)
        return compute_nbbo(symbol, books, venues)

    def rankings(self, symbol: str, side: Side, quantity: Decimal) -> dict[str, Any]:
        self.instrument(symbol)
        bucket = size_bucket(quantity)
        venues, books = self.books(symbol)
        stats = stats_from_rows(symbol, side, bucket, self.stats.rows(stats_key(symbol, side, bucket)))
        latency = {name: expected_latency_us(v) for name, v in venues.items()}
        rows = stats.rankings(symbol, side, quantity, books, latency)
        return {"symbol": symbol, "side": side.value, "quantity": str(quantity), "size_bucket": bucket,
                "venues": [{**r.to_dict(), "mic": venues[r.venue].mic, "kind": venues[r.venue].kind} for r in rows]}

    def decisions(self, principal: Principal, order_id: str) -> dict[str, Any]:
        parent, decisions = self.decision_store.get(order_id)
        if parent is None or not (principal.owns(str(parent["account_id"])) or principal.has_role(*OVERSIGHT_ROLES)):
            raise NotFound("order_not_found", f"no routed order {order_id[:64]!r}", "order_id")
        body = parent["body"]
        return {"order": body["parent"], "account_id": parent["account_id"], "received_at": parent["received_at"],
                "children": body["parent"]["children"], "decisions": decisions}

    # -- routing -------------------------------------------------------------------------------

    def route(
        self, account_id: str, request: RouteRequest, internal: InternalEnginePort | None = None,
    ) -> dict[str, Any]:
        """Route one parent order (see module doc); the stored parent body."""
        return self._route(account_id, request, internal)[0]

    def _route(
        self, account_id: str, request: RouteRequest, internal: InternalEnginePort | None = None,
        entered: RouteOrderRequest | None = None,
    ) -> tuple[dict[str, Any], RoutedFillsCommand | None]:
        """``route``; with ``entered`` (the orders API's request of a routed order) the internal
        venue's children are deferred to the engine (``_Deferred``), and the engine's
        ``routed_fills`` command is stored with the parent (under ``command``) and returned."""
        instrument = self.instrument(request.symbol)
        if instrument.status != "active":
            raise ValidationFailed("symbol_halted", f"{request.symbol} is halted", "symbol")
        received_at = self.clock() if entered is None else entered.ts
        configs = [v for v in self.venues.list()
                   if v.enabled and (internal is not None or entered is not None or not v.internal)]
        if not configs:
            raise ValidationFailed("no_venue", "no enabled venue to route to", "routing")
        reports: list[tuple[ExecutionReport, Decimal | None]] = []
        nbbo_of: dict[str, Nbbo] = {}

        def on_decision(decision: RoutingDecision) -> None:
            data = decision.to_dict()
            nbbo_of[decision.decision_id] = decision.nbbo
            self.decision_store.put_decision(request.order_id, {**data, "account_id": account_id})
            if self.decisions_stream is not None:
                self.decisions_stream.publish([(request.symbol, data)])

        bucket = size_bucket(request.quantity)
        stats = stats_from_rows(request.symbol, request.side, bucket,
                                self.stats.rows(stats_key(request.symbol, request.side, bucket)))
        with self.simulated.open(configs) as live:
            venues: dict[str, ExecutionVenue] = {}
            deferred: _Deferred | None = None
            for config in configs:
                inner: ExecutionVenue
                if config.internal and internal is not None:
                    inner = InternalVenue(config, internal)
                elif config.internal:
                    inner = deferred = _Deferred(config, self.internal_book, instrument.tick_size, self.clock)
                else:
                    inner = live[config.name]
                venues[config.name] = _Recording(inner, reports, None if entered is None else request.order_id)
            router = SmartOrderRouter(venues, self.clock, stats=stats, on_decision=on_decision)
            parent = router.route(request)
            router.poll()
            if request.immediate:  # nothing of an immediate-or-cancel order stays on a simulated venue
                for child in list(parent.children.values()):
                    if child.open and not (deferred is not None and child.venue == deferred.name):
                        cancelled = venues[child.venue].cancel(request.symbol, child.order_id)
                        if cancelled is not None:
                            parent.apply(cancelled)
                parent.close("immediate-or-cancel")
            # stored before the venues are saved: if the parent cannot be stored, the venues'
            # books stay as they were read (nothing executed without its record)
            command = None
            working = None
            if entered is not None:
                resting = next((c for c in parent.children.values() if c.open and c.venue in live), None)
                if resting is not None and deferred is not None and deferred.sent:
                    # the engine sequences the internal part and the order's end in one step, so an
                    # order that took on the internal book rests there too
                    cancelled = venues[resting.venue].cancel(request.symbol, resting.order_id)
                    if cancelled is not None:
                        parent.apply(cancelled)
                    resting = None
                if resting is None:
                    inside = entered.time_in_force != "ioc" and request.strategy is not Strategy.EXTERNAL_ONLY
                    parent.close("rests on the internal book" if inside else "immediate-or-cancel")
                    # an EXTERNAL_ONLY remainder no external venue took ends: it never rests inside
                    rest = rest_price(entered, router.books(request.symbol), instrument.tick_size) if inside else None
                    command = routed_fills_command(entered, parent, reports, venues, self.clock(), deferred, rest)
                else:
                    command = routed_fills_command(entered, parent, reports, venues, self.clock(), resting=resting)
                    working = {
                        "venue": resting.venue, "mic": venues[resting.venue].config.mic,
                        "child_id": resting.order_id, "price": str(resting.limit_price),
                        "time_in_force": entered.time_in_force,
                        "expires_at": iso(day_close(received_at)) if entered.time_in_force == "day" else None,
                        "filled": str(parent.filled), "notional": str(parent.notional), "commands": 0,
                        "applied": [], "ended": None,
                    }
            return self._store(account_id, parent, received_at, reports, nbbo_of, command, entered, working), command

    def _store(self, account_id: str, parent: ParentOrder, received_at: datetime,
               reports: list[tuple[ExecutionReport, Decimal | None]], nbbo_of: Mapping[str, Nbbo],
               command: RoutedFillsCommand | None = None, entered: RouteOrderRequest | None = None,
               working: dict[str, Any] | None = None) -> dict[str, Any]:
        request = parent.request
        first = parent.decisions[0].nbbo if parent.decisions else None
        fills = []
        published = []
        decision_of = {child.order_id: child.decision_id for child in parent.children.values()}
        for report, quantity in reports:
            if report.parent_id != parent.order_id or report.reason == DEFERRED:
                continue
            for fill in report.fills:
                fills.append({"ts": iso(report.ts), "venue": report.venue, "price": str(fill.price),
                              "quantity": str(fill.quantity), "fee": str(fill.fee)})
            nbbo = nbbo_of.get(decision_of.get(report.order_id, ""))
            published.append((report.venue, {
                **report.to_dict(), "order_quantity": None if quantity is None else str(quantity),
                "nbbo_bid": None if nbbo is None or nbbo.bid is None else str(nbbo.bid),
                "nbbo_ask": None if nbbo is None or nbbo.ask is None else str(nbbo.ask),
            }))
        body = {
            "parent": parent.to_dict(),
            "order_type": request.order_type.value if entered is None else entered.order_type,
            "limit_price": None if request.limit_price is None else str(request.limit_price),
            "sp500": request.symbol in SP500,
            "nbbo_bid": None if first is None or first.bid is None else str(first.bid),
            "nbbo_ask": None if first is None or first.ask is None else str(first.ask),
            "fills": fills,
        }
        item = {
            "order_id": parent.order_id, "account_id": account_id, "symbol": request.symbol,
            "received_at": iso(received_at), "month": market_month(received_at),
            "sort": f"{iso(received_at)}#{parent.order_id}", "status": parent.status.value, "body": body,
        }
        if command is not None:
            item["command"] = command.model_dump_json()
        if working is not None:  # its remainder works on an external venue (``sweep``, ``cancel_entered``)
            item["working"] = working
        self.decision_store.put_parent(item)
        if self.reports_stream is not None and published:
            self.reports_stream.publish(published)
        return body

    def route_entered(self, entered: RouteOrderRequest) -> RoutedFillsCommand:
        """Route an order the orders API stored and reserved for, and send the engine what it
        did (``routed_fills``: its fills, then its end). At least once: a request whose parent is
        stored already sends the stored command again (the engine drops a repeat by its id), so a
        retry never routes twice. A request routing cannot carry out (halted symbol, no venue,
        a refused request) ends the order with nothing filled, its reservation given back."""
        engine = self._engine()
        stored, _ = self.decision_store.get(entered.order_id)
        if stored is not None and stored.get("command"):
            command = RoutedFillsCommand.model_validate(json.loads(stored["command"]))
        else:
            command = self._route_entered(entered)
        engine.send(command)
        return command

    def _route_entered(self, entered: RouteOrderRequest) -> RoutedFillsCommand:
        try:
            instrument = self.instrument(entered.symbol)
            request = RouteRequest(
                order_id=entered.order_id, symbol=entered.symbol, side=Side(entered.side),
                quantity=entered.quantity, strategy=Strategy(entered.strategy),
                order_type=OrderType.MARKET if entered.price is None else OrderType.LIMIT,
                limit_price=entered.price, max_venues=entered.max_venues, urgency=Urgency(entered.urgency),
                tick_size=instrument.tick_size, lot_size=instrument.lot_size,
                immediate=entered.time_in_force == "ioc",
            )
            _, command = self._route(entered.account_id, request, entered=entered)
        except (ValidationFailed, NotFound, Conflict, ValueError) as refused:
            code = str(getattr(refused, "code", "invalid_request"))[:64]
            command = RoutedFillsCommand(
                command_id=f"route-{entered.order_id}", order_id=entered.order_id, account_id=entered.account_id,
                symbol=entered.symbol, side=entered.side, quantity=entered.quantity, fills=[],
                end_reason=code, ts=self.clock(),
            )
            # stored as the parent too: a redelivery sends this same end, never a second route
            self.decision_store.put_parent({
                "order_id": entered.order_id, "account_id": entered.account_id, "symbol": entered.symbol,
                "received_at": iso(entered.ts), "status": "done", "command": command.model_dump_json(),
                "body": {"parent": {"order_id": entered.order_id, "symbol": entered.symbol, "side": entered.side,
                                    "quantity": str(entered.quantity), "filled": "0", "status": "done",
                                    "closed_reason": code, "children": [], "decisions": []},
                         "order_type": entered.order_type, "fills": []},
            })
            return command
        assert command is not None  # an entered order's route always makes its command
        return command

    # -- remainders working on an external venue ----------------------------------------------

    def sweep(self) -> dict[str, int]:
        """One pass over the simulated venues (all of them, under their locks): the ``day``
        routed children whose session closed are expired, each venue's outside flow runs one
        horizon over the routed children left (``SimulatedVenue.simulate_flow``: they fill with
        the probability its fill model gives), and every routed child's reports since the last
        pass (published on venue-reports for the statistics) go to the engine as its order's
        fills with the order's running totals, and its end once the child is done
        (``_advance``). The commands are sent, then the parents stored, then the venues saved;
        a pass that fails saves no venue, and the next one gives the same commands again (the
        engine drops a repeat by its id) or none (the stored parent has applied them)."""
        engine = self._engine()
        now = self.clock()
        configs = [v for v in self.venues.list() if not v.internal]
        counts = {"expired": 0, "flow_orders": 0, "commands": 0, "orders": 0, "unknown_reports": 0,
                  "ended_reports": 0}
        with self.simulated.open(configs) as live:
            children = {child: (name, symbol, parent_id) for name, venue in live.items()
                        for child, (symbol, parent_id) in venue.routed_children().items()}
            items = self.decision_store.parents({parent_id for _, _, parent_id in children.values()})
            expired: list[ExecutionReport] = []
            for child, (name, symbol, parent_id) in sorted(children.items()):
                working = (items.get(parent_id) or {}).get("working") or {}
                expires = working.get("expires_at")
                if expires and now >= datetime.fromisoformat(expires):
                    report = live[name].cancel(symbol, child, reason="expired")
                    if report is not None:
                        expired.append(report)
            counts["expired"] = len(expired)
            for _, venue in sorted(live.items()):
                for symbol in sorted({symbol for symbol, _ in venue.routed_children().values()}):
                    counts["flow_orders"] += venue.simulate_flow(symbol)
            by_parent: dict[str, list[ExecutionReport]] = {}
            for _, venue in sorted(live.items()):
                for report in venue.drain_reports():
                    if report.parent_id:
                        by_parent.setdefault(report.parent_id, []).append(report)
            for report in expired:  # after the fills the venue reported before the close
                by_parent.setdefault(str(report.parent_id), []).append(report)
            missing = set(by_parent) - set(items)
            if missing:
                items.update(self.decision_store.parents(missing))
            commands: list[RoutedFillsCommand] = []
            changed: list[dict[str, Any]] = []
            for parent_id, reports in sorted(by_parent.items()):
                item = items.get(parent_id)
                if item is None or not item.get("working"):
                    counts["unknown_reports"] += len(reports)
                    continue
                if item["working"].get("ended"):  # the order ended already: nothing more is booked
                    counts["ended_reports"] += len(reports)
                    continue
                made = _advance(item, reports, now)
                if made:
                    commands.extend(made)
                    changed.append(item)
            for command in commands:
                engine.send(command)
            for item in changed:
                self.decision_store.put_parent(item)
            if self.reports_stream is not None:  # the resting children's fill rates (venue statistics)
                published = [(r.venue, {**r.to_dict(), "order_quantity": None, "nbbo_bid": None, "nbbo_ask": None})
                             for parent_id, reports in sorted(by_parent.items()) if parent_id in items
                             for r in reports]
                if published:
                    self.reports_stream.publish(published)
        counts["commands"] = len(commands)
        counts["orders"] = len(changed)
        return counts

    def cancel_entered(self, request: RouteCancelRequest) -> list[RoutedFillsCommand]:
        """Cancel a routed order whose remainder rests on an external venue (the orders API's
        request): its child is cancelled there, and the engine gets the child's fills since the
        last sweep, then the order's end (``user``, as a cancel on the internal book says). An
        order that ended already gets nothing more (its end was sent). Under the venue's lock,
        like every change to it."""
        engine = self._engine()
        item = self.decision_store.parents([request.order_id]).get(request.order_id)
        if item is None or str(item["account_id"]) != request.account_id:
            raise NotFound("order_not_found", f"no routed order {request.order_id[:64]!r}", "order_id")
        working = item.get("working")
        if not working:
            raise Conflict("not_working", "the order's remainder does not rest on an external venue", "order_id")
        if working.get("ended"):
            return []
        config = next((v for v in self.venues.list() if v.name == working["venue"]), None)
        if config is None:
            raise Conflict("unknown_venue", f"venue {working['venue']} is no longer in the venues table", "venue")
        with self.simulated.open([config]) as live:
            venue = live[config.name]
            mine = venue.drain_reports_of(request.order_id)
            cancelled = venue.cancel(str(item["symbol"]), str(working["child_id"]), reason="user")
            if cancelled is not None:
                mine.append(cancelled)
            commands = _advance(item, mine, self.clock())
            for command in commands:
                engine.send(command)
            if commands:
                self.decision_store.put_parent(item)
        return commands

    def _engine(self) -> EngineCommands:
        if self.engine is None:
            raise Unreachable("routing has no engine stream to send fills to")
        return self.engine

    # -- reports -------------------------------------------------------------------------------

    def _mics(self) -> dict[str, str]:
        return {v.name: v.mic for v in self.venues.list()}

    def report_606(self, quarter: str) -> dict[str, Any]:
        year, qtr = parse_quarter(quarter)
        months = [f"{year:04d}-{m:02d}" for m in range(3 * qtr - 2, 3 * qtr + 1)]
        mics = self._mics()
        orders = [_routed(p, mics) for p in self.decision_store.parents_in_months(months)]
        return rule606_report(orders, quarter, self.broker_dealer, self.clock())

    def report_606_xml(self, quarter: str) -> bytes:
        return rule606_xml(self.report_606(quarter))

    def execution_quality(self, start: datetime, end: datetime, symbol: str | None) -> dict[str, Any]:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationFailed("invalid_time", "from and to must carry a time zone", "from")
        if start >= end or end - start > timedelta(days=MAX_REPORT_DAYS):
            raise ValidationFailed("invalid_range", f"from before to, at most {MAX_REPORT_DAYS} days apart", "from")
        months: list[str] = []
        cursor = start.astimezone(MARKET_ZONE).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        while cursor <= end.astimezone(MARKET_ZONE):
            months.append(f"{cursor.year:04d}-{cursor.month:02d}")
            cursor = (cursor + timedelta(days=32)).replace(day=1)
        parents = [p for p in self.decision_store.parents_in_months(months, iso(start), iso(end) + "~")
                   if symbol is None or p["symbol"] == symbol]
        inside = [str(p["order_id"]) for p in parents if _has_internal_part(p)]
        totals = self.order_totals.totals(inside) if self.order_totals is not None and inside else {}
        records = []
        for parent in parents:
            record = _execution_record(parent, totals.get(str(parent["order_id"])))
            if record is not None:
                records.append(record)
        return execution_quality(records, start, end, symbol)


class Unreachable(RuntimeError):
    """The service was built without what a use case needs (a wiring error, not a request's)."""


def routed_fills_command(
    entered: RouteOrderRequest, parent: ParentOrder, reports: list[tuple[ExecutionReport, Decimal | None]],
    venues: Mapping[str, ExecutionVenue], ts: datetime, deferred: _Deferred | None = None,
    rest: Decimal | None = None, resting: ChildState | None = None,
) -> RoutedFillsCommand:
    """The engine's ``routed_fills`` command of a routed order: each fill in the order the venues
    reported it, with the venue's fee to the cent (half-even, the ledger's precision) and the
    parent's totals after it (``ts``: when it was routed), then how it ends: on the internal
    book at the internal children's price when the route sent any there and something is left,
    else why it ended. With ``resting`` (the child resting on an external venue) the order keeps
    working there: no end, the venue and price it rests at (``route_working``)."""
    fills: list[RoutedFill] = []
    filled = ZERO
    notional = ZERO
    for report, _ in reports:
        if report.parent_id != parent.order_id:
            continue
        venue = venues.get(report.venue)
        made, filled, notional = _report_fills(report, None if venue is None else venue.config.mic,
                                               entered.quantity, filled, notional)
        fills.extend(made)
    if filled != parent.filled:
        raise Conflict("fills_disagree", f"the reports of {parent.order_id} do not add up to its fills")
    left = filled != entered.quantity
    if resting is not None:  # the remainder works on an external venue: no end yet
        return RoutedFillsCommand(
            command_id=f"route-{entered.order_id}", order_id=entered.order_id, account_id=entered.account_id,
            symbol=entered.symbol, side=entered.side, quantity=entered.quantity, fills=fills, end_reason="rest",
            rest_price=resting.limit_price, time_in_force=entered.time_in_force, working=True,
            rest_venue=resting.venue, rest_mic=venues[resting.venue].config.mic, ts=ts,
        )
    internal_price = deferred.internal_price(Side(entered.side)) if deferred is not None and left else None
    rest = rest if left and entered.time_in_force != "ioc" else None
    if internal_price is not None:
        reason = "internal"
    elif rest is not None:
        reason = "rest"
    else:
        reason = "filled" if not left else ("no_liquidity" if not filled else "ioc")
    return RoutedFillsCommand(
        command_id=f"route-{entered.order_id}", order_id=entered.order_id, account_id=entered.account_id,
        symbol=entered.symbol, side=entered.side, quantity=entered.quantity, fills=fills, end_reason=reason,
        internal_price=internal_price, rest_price=rest, time_in_force=entered.time_in_force, ts=ts,
    )


def _report_fills(report: ExecutionReport, mic: str | None, quantity: Decimal, filled: Decimal, notional: Decimal
                  ) -> tuple[list[RoutedFill], Decimal, Decimal]:
    """The engine's fills of one venue report of a routed order of ``quantity``, each with the
    venue's fee to the cent (half-even, the ledger's precision) and the order's totals after it,
    counted on from ``filled`` / ``notional``; and the totals after the last."""
    fills: list[RoutedFill] = []
    for index, fill in enumerate(report.fills, start=1):
        filled += fill.quantity
        notional += fill.price * fill.quantity
        fills.append(RoutedFill(
            child_id=report.order_id, venue=report.venue, mic=mic, price=fill.price, quantity=fill.quantity,
            liquidity=fill.liquidity.value, fee=fill.fee.quantize(CENT, ROUND_HALF_EVEN),
            report_id=f"{report.report_id}#{index}", filled_quantity=filled, filled_notional=notional,
            remaining_quantity=quantity - filled,
        ))
    return fills, filled, notional


def day_close(ts: datetime) -> datetime:
    """The first regular-session close (16:00 New York) at or after ``ts``: when a ``day``
    order's remainder expires, as on the internal book."""
    local = ts.astimezone(MARKET_ZONE)
    close = datetime.combine(local.date(), SESSION_CLOSE, tzinfo=MARKET_ZONE)
    if close < local:
        close = datetime.combine(local.date() + timedelta(days=1), SESSION_CLOSE, tzinfo=MARKET_ZONE)
    return close.astimezone(UTC)


def _advance(item: dict[str, Any], reports: Iterable[ExecutionReport], now: datetime) -> list[RoutedFillsCommand]:
    """The engine commands of a routed order working on an external venue for these reports of
    its resting child, in order: one per report with fills (``route-<order>-<n>``, ``working``,
    each fill with the order's running totals), the last one ending the order when the child is
    done (``filled``, or the venue's reason: ``user`` for a cancel, ``expired``). Each report counts
    once (by its id, status and cumulative quantity); an order that ended takes no more.
    ``item`` (the stored parent) is updated in place: totals, child, fills, status."""
    working = item["working"]
    if working.get("ended"):
        return []
    body = item["body"]
    parent = body["parent"]
    order_id = str(item["order_id"])
    quantity = Decimal(parent["quantity"])
    filled = Decimal(working["filled"])
    notional = Decimal(working["notional"])
    applied: list[str] = list(working["applied"])
    count = int(working["commands"])
    child = next(c for c in parent["children"] if c["order_id"] == working["child_id"])
    commands: list[RoutedFillsCommand] = []
    ended: str | None = None
    for report in reports:
        key = f"{report.report_id}|{report.status.value}|{report.cum_quantity}"
        if report.order_id != working["child_id"] or key in applied:
            continue
        applied.append(key)
        fills, filled, notional = _report_fills(report, working.get("mic"), quantity, filled, notional)
        body["fills"].extend({"ts": iso(report.ts), "venue": report.venue, "price": str(fill.price),
                              "quantity": str(fill.quantity), "fee": str(fill.fee)} for fill in report.fills)
        _fold_child(child, report)
        if report.status not in LIVE:
            ended = "filled" if filled == quantity else (report.reason or "cancelled")
        if fills or ended:
            count += 1
            commands.append(RoutedFillsCommand(
                command_id=f"route-{order_id}-{count}", order_id=order_id, account_id=str(item["account_id"]),
                symbol=str(item["symbol"]), side=parent["side"], quantity=quantity, fills=fills,
                end_reason=ended or "working", working=ended is None, time_in_force=working["time_in_force"],
                ts=now,
            ))
        if ended:
            break
    if filled > quantity:
        raise Conflict("overfill", f"the reports of {order_id} fill more than its quantity")
    fees = sum((Decimal(c["fees"]) for c in parent["children"]), ZERO)
    status = "filled" if filled == quantity else ("done" if ended else ("partially_filled" if filled else "working"))
    parent.update(filled=str(filled), notional=str(notional), fees=str(fees), status=status,
                  open=child["open"] if not ended else "0", remaining=str(quantity - filled - Decimal(child["open"])),
                  average_price=str((notional / filled).quantize(AVG_EXP, ROUND_HALF_EVEN)) if filled else None)
    if ended and ended != "filled":
        parent["closed_reason"] = ended
    item["status"] = status
    # the latest keys are enough: a retry only sees again the reports of the pass that failed
    working.update(filled=str(filled), notional=str(notional), commands=count, applied=applied[-MAX_APPLIED:],
                   ended=ended)
    return commands


def _fold_child(child: dict[str, Any], report: ExecutionReport) -> None:
    filled = Decimal(child["filled"]) + report.filled_quantity
    child.update(filled=str(filled), notional=str(Decimal(child["notional"]) + report.notional),
                 fees=str(Decimal(child["fees"]) + report.fees), status=report.status.value,
                 open=str(Decimal(child["quantity"]) - filled if report.status in LIVE else ZERO))


def rest_price(entered: RouteOrderRequest, books: Mapping[str, VenueBook], tick: Decimal) -> Decimal | None:
    """Where a gtc / day routed order's remainder rests on the internal book: at its limit, or a
    tick inside the best opposite quote left on any venue when the limit would lock or cross it
    (Rule 610); None for an immediate-or-cancel or a market order."""
    if entered.time_in_force == "ioc" or entered.order_type != "limit" or entered.price is None:
        return None
    price = entered.price
    if entered.side == "buy":
        asks = [b.asks[0].price for b in books.values() if b.asks]
        if asks and price >= min(asks):
            price = min(asks) - tick
    else:
        bids = [b.bids[0].price for b in books.values() if b.bids]
        if bids and price <= max(bids):
            price = max(bids) + tick
    return price if price > 0 else None


def _routed(parent: Mapping[str, Any], mics: Mapping[str, str]) -> RoutedOrder:
    body = parent["body"]
    p = body["parent"]
    side = Side(p["side"])
    nbbo = None
    if body.get("nbbo_bid") is not None or body.get("nbbo_ask") is not None:
        bid = None if body.get("nbbo_bid") is None else Decimal(body["nbbo_bid"])
        ask = None if body.get("nbbo_ask") is None else Decimal(body["nbbo_ask"])
        nbbo = Nbbo(p["symbol"], bid, ZERO, (), ask, ZERO, (), ())
    limit = None if body.get("limit_price") is None else Decimal(body["limit_price"])
    per_venue: dict[str, list[Decimal]] = {}
    for child in p["children"]:
        acc = per_venue.setdefault(child["venue"], [ZERO, ZERO])
        acc[0] += Decimal(child["quantity"])
        acc[1] -= Decimal(child["fees"])
    routes = tuple(VenueRoute(v, mics.get(v), acc[0], acc[1]) for v, acc in sorted(per_venue.items()))
    return RoutedOrder(p["order_id"], datetime.fromisoformat(parent["received_at"]), p["symbol"], bool(body["sp500"]),
                       classify_order(OrderType(body["order_type"]), side, limit, nbbo), False, routes)


def _has_internal_part(parent: Mapping[str, Any]) -> bool:
    """A routed order from the orders API whose rest ran on the internal book (its fills there
    are the engine's, on the order, not in the route's record)."""
    command = parent.get("command")
    if not command:
        return False
    data = json.loads(command)
    return data.get("internal_price") is not None or data.get("rest_price") is not None


def _execution_record(
    parent: Mapping[str, Any], order: tuple[Decimal, Decimal, datetime] | None = None
) -> ExecutionRecord | None:
    """A covered order's record: the route's external fills, and when ``order`` (the orders
    table's totals) says more filled, the internal venue's part as one fill at its average price
    (6 places, half-even) at the order's last update."""
    body = parent["body"]
    if body.get("nbbo_bid") is None or body.get("nbbo_ask") is None:
        return None  # no two-sided NBBO at arrival: not a covered order
    p = body["parent"]
    fills = tuple(ExecutedFill(datetime.fromisoformat(f["ts"]), Decimal(f["price"]), Decimal(f["quantity"]))
                  for f in body["fills"])
    if order is not None:
        quantity = order[0] - sum((f.quantity for f in fills), ZERO)
        notional = order[1] - sum((f.price * f.quantity for f in fills), ZERO)
        if quantity > 0 and notional > 0:
            price = (notional / quantity).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
            fills = (*fills, ExecutedFill(order[2], price, quantity))
    return ExecutionRecord(p["order_id"], p["symbol"], Side(p["side"]), Decimal(p["quantity"]),
                           datetime.fromisoformat(parent["received_at"]), Decimal(body["nbbo_bid"]),
                           Decimal(body["nbbo_ask"]), fills)


# -- the venue-reports consumer's use case ------------------------------------------------------


def decode_venue_report(data: Mapping[str, Any]) -> tuple[ExecutionReport, Decimal | None, Nbbo | None]:
    report = ExecutionReport.from_dict(data)
    quantity = None if data.get("order_quantity") is None else Decimal(data["order_quantity"])
    bid = None if data.get("nbbo_bid") is None else Decimal(data["nbbo_bid"])
    ask = None if data.get("nbbo_ask") is None else Decimal(data["nbbo_ask"])
    nbbo = None if bid is None and ask is None else Nbbo(report.symbol, bid, ZERO, (), ask, ZERO, (), ())
    return report, quantity, nbbo


def apply_venue_report(stats_store: StatsStore, data: Mapping[str, Any], now_s: int) -> bool:
    """Apply one report's record; False when it was applied already."""
    report, quantity, nbbo = decode_venue_report(data)
    stats = VenueStats()
    update_venue_stats(stats, report, quantity, nbbo)
    size = quantity if quantity is not None else report.cum_quantity + report.leaves_quantity
    if size <= 0:
        size = report.filled_quantity or Decimal(1)
    stat = stats.stat(report.venue, report.symbol, report.side, size)
    if stat is None:
        return False
    key = stats_key(report.symbol, report.side, size_bucket(size))
    return stats_store.apply(report.report_id, key, report.venue, stat_deltas(stat), now_s)
