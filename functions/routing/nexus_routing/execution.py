"""The router at work: decisions sent to venues, reports folded into parents and statistics.

``SmartOrderRouter`` is the long-lived core the platform wraps (the order path, the
``routing-decisions`` stream, the decisions table are its callers' business: a decision is handed
to ``on_decision`` before its children are sent, so the caller stores and publishes it first). No
I/O of its own: the venues are ``ExecutionVenue`` objects and the clock is injected.

``route`` runs rounds: a decision over the current books, its children sent, their reports
applied; a remainder the decision re-routes gets a new round (up to ``max_rounds``) while the
previous round took something; then the parent is closed, and what is neither filled nor working
stays unfilled. A remainder that rests stays working until ``poll`` folds in its fills or
``cancel`` takes it off its venue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from nexus_common.errors import Conflict, NotFound, ValidationFailed

from nexus_routing.model import Side, VenueBook
from nexus_routing.nbbo import Nbbo, compute_nbbo
from nexus_routing.parent import ParentOrder
from nexus_routing.router import REROUTE, RouteRequest, RoutingDecision, expected_latency_us, route_order
from nexus_routing.stats import VenueRanking, VenueStats, update_venue_stats
from nexus_routing.venues import DEFAULT_DEPTH, ExecutionVenue, Venue


class SmartOrderRouter:
    def __init__(
        self,
        venues: Mapping[str, ExecutionVenue],
        clock: Callable[[], datetime],
        stats: VenueStats | None = None,
        on_decision: Callable[[RoutingDecision], None] | None = None,
        max_rounds: int = 3,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if not 1 <= max_rounds <= 100 or not 1 <= depth <= 100:
            raise ValueError("max_rounds and depth are 1 to 100")
        self.venues = dict(venues)
        self.configs: dict[str, Venue] = {name: v.config for name, v in self.venues.items()}
        self.clock = clock
        self.stats = stats if stats is not None else VenueStats()
        self.on_decision = on_decision
        self.max_rounds = max_rounds
        self.depth = depth
        self.parents: dict[str, ParentOrder] = {}
        self._decision_nbbo: dict[str, Nbbo] = {}
        self._nbbos: dict[str, tuple[dict[str, Venue], tuple[tuple[str, VenueBook], ...], Nbbo]] = {}

    def set_enabled(self, venue: str, enabled: bool) -> None:
        config = self.configs.get(venue)
        if config is None:
            raise NotFound("unknown_venue", f"no venue {venue!r}", "venue")
        self.configs = {**self.configs, venue: config.model_copy(update={"enabled": enabled})}

    def books(self, symbol: str) -> dict[str, VenueBook]:
        return {
            name: venue.depth(symbol, self.depth)
            for name, venue in self.venues.items()
            if self.configs[name].enabled
        }

    def nbbo(self, symbol: str) -> Nbbo:
        return self._nbbo(symbol, self.books(symbol))

    def _nbbo(self, symbol: str, books: dict[str, VenueBook]) -> Nbbo:
        """The NBBO of these books, recomputed only when a venue's book snapshot (or a venue's
        configuration) changed since the last call: the router maintains it as a SIP does."""
        cached = self._nbbos.get(symbol)
        if cached is not None and cached[0] is self.configs and len(cached[1]) == len(books):
            same = True
            for (name, book), (cached_name, cached_book) in zip(books.items(), cached[1], strict=True):
                if name != cached_name or book is not cached_book:
                    same = False
                    break
            if same:
                return cached[2]
        nbbo = compute_nbbo(symbol, books, self.configs)
        self._nbbos[symbol] = (self.configs, tuple(books.items()), nbbo)
        return nbbo

    def rankings(self, symbol: str, side: Side, quantity: Decimal) -> list[VenueRanking]:
        """The enabled venues ranked for an order of ``quantity`` on ``side`` (``stats``), with
        the configured expected latency where none was observed yet."""
        latency = {name: expected_latency_us(config) for name, config in self.configs.items()}
        return self.stats.rankings(symbol, side, quantity, self.books(symbol), latency)

    def decide(self, request: RouteRequest, round_: int = 1) -> RoutingDecision:
        """One routing decision over the venues' current books (nothing sent)."""
        books = self.books(request.symbol)
        return route_order(request, books, self.configs, self.clock(), self.stats, round_,
                           self._nbbo(request.symbol, books))

    def route(self, request: RouteRequest) -> ParentOrder:
        if request.order_id in self.parents:
            raise Conflict("duplicate_order", f"order {request.order_id} was routed already", "order_id")
        parent = ParentOrder(request)
        self.parents[request.order_id] = parent
        for round_ in range(1, self.max_rounds + 1):
            remaining = parent.remaining
            if not remaining:
                break
            decision = self.decide(
                request if remaining == request.quantity else dataclasses.replace(request, quantity=remaining),
                round_,
            )
            if self.on_decision is not None:
                self.on_decision(decision)
            self._decision_nbbo[decision.decision_id] = decision.nbbo
            for child in parent.add_decision(decision):
                report = self.venues[parent.children[child.order_id].venue].submit(child)
                parent.apply(report)
                update_venue_stats(self.stats, report, child.quantity, decision.nbbo)
            if decision.remainder != REROUTE or not decision.taken:
                break
        if parent.remaining:
            parent.close("remainder unfilled: no liquidity within the order's limits")
        return parent

    def poll(self) -> int:
        """Fold every venue's pending reports (fills of resting children) in; how many applied."""
        applied = 0
        for venue in self.venues.values():
            for report in venue.drain_reports():
                parent = self.parents.get(report.parent_id or "")
                if parent is None or report.order_id not in parent.children:
                    continue  # someone else's order on that venue
                decision_id = parent.children[report.order_id].decision_id
                if parent.apply(report):
                    applied += 1
                    update_venue_stats(self.stats, report, None, self._decision_nbbo.get(decision_id))
        return applied

    def evict_done(self) -> int:
        """Forget the parents that are done (filled, or closed with nothing working), once the
        caller has stored them: a long-running router's memory stays bounded by its working
        orders. Returns how many were forgotten."""
        done = [order_id for order_id, parent in self.parents.items() if parent.done]
        for order_id in done:
            parent = self.parents.pop(order_id)
            for decision in parent.decisions:
                self._decision_nbbo.pop(decision.decision_id, None)
        return len(done)

    def cancel(self, order_id: str) -> ParentOrder:
        """Cancel a parent: its working children are cancelled on their venues."""
        parent = self.parents.get(order_id)
        if parent is None:
            raise NotFound("unknown_order", f"no routed order {order_id!r}", "order_id")
        self.poll()
        for child in list(parent.children.values()):
            if child.open:
                report = self.venues[child.venue].cancel(parent.request.symbol, child.order_id)
                if report is None:
                    raise ValidationFailed("cancel_failed", f"{child.order_id} is not live on {child.venue}")
                parent.apply(report)
        parent.close("cancelled")
        return parent
