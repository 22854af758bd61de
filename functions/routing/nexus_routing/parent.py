"""Parent and child orders: a routed order (the parent) and the orders its decisions sent to the
venues (the children).

The parent's fills, notional, fees and status are folded from its children's execution reports
(each report applied once, by its id), with exact decimals: ``filled + open + remaining ==
quantity`` at every step, where ``open`` is what children still have working on venues and
``remaining`` is what is neither filled nor working (to re-route, or cancelled once the parent
is done). Cancelling the parent cancels its working children (``execution.SmartOrderRouter``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Final

from nexus_common.errors import Conflict, ValidationFailed
from nexus_common.money import fmt

from nexus_routing.model import ZERO, ChildOrder, ExecStatus, ExecutionReport
from nexus_routing.router import REST, RouteRequest, RoutingDecision

AVG_EXP: Final = Decimal("0.000001")
LIVE: Final = (ExecStatus.NEW, ExecStatus.PARTIALLY_FILLED)


class ParentStatus(StrEnum):
    WORKING = "working"  # nothing filled yet, something working or to re-route
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE = "done"  # finished with a part unfilled (cancelled, no liquidity, rounds used up)


@dataclass(slots=True)
class ChildState:
    order_id: str
    venue: str
    action: str
    quantity: Decimal
    limit_price: Decimal
    iso: bool
    decision_id: str
    status: ExecStatus = ExecStatus.NEW
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    open: Decimal = ZERO  # working on the venue
    sent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "venue": self.venue,
            "action": self.action,
            "quantity": fmt(self.quantity),
            "limit_price": fmt(self.limit_price),
            "iso": self.iso,
            "decision_id": self.decision_id,
            "status": self.status.value,
            "filled": fmt(self.filled),
            "notional": fmt(self.notional),
            "fees": fmt(self.fees),
            "open": fmt(self.open),
        }


class ParentOrder:
    def __init__(self, request: RouteRequest) -> None:
        request.validate()
        self.request = request
        self.order_id = request.order_id
        self.quantity = request.quantity
        self.children: dict[str, ChildState] = {}
        self.decisions: list[RoutingDecision] = []
        self.filled = ZERO
        self.notional = ZERO
        self.fees = ZERO
        self.closed_reason: str | None = None
        self._applied: set[str] = set()

    @property
    def open(self) -> Decimal:
        total = ZERO
        for child in self.children.values():
            total += child.open
        return total

    @property
    def remaining(self) -> Decimal:
        """Neither filled nor working: to re-route (or, once the parent is done, unfilled)."""
        return self.quantity - self.filled - self.open

    @property
    def done(self) -> bool:
        return self.filled == self.quantity or (self.closed_reason is not None and not self.open)

    @property
    def status(self) -> ParentStatus:
        if self.filled == self.quantity:
            return ParentStatus.FILLED
        if self.closed_reason is not None and not self.open:
            return ParentStatus.DONE
        return ParentStatus.PARTIALLY_FILLED if self.filled else ParentStatus.WORKING

    @property
    def average_price(self) -> Decimal | None:
        """Filled notional over filled shares, half-even to 6 places (None before a fill)."""
        return (self.notional / self.filled).quantize(AVG_EXP, ROUND_HALF_EVEN) if self.filled else None

    def add_decision(self, decision: RoutingDecision) -> list[ChildOrder]:
        """Record a decision for this parent; the child orders to send."""
        if decision.order_id != self.order_id:
            raise ValidationFailed("wrong_parent", "the decision is for another order", "order_id")
        if self.closed_reason is not None:
            raise Conflict("parent_closed", f"order {self.order_id} is {self.status.value}")
        if decision.quantity > self.remaining:
            raise Conflict("over_allocation", f"the decision routes {fmt(decision.quantity)}, "
                           f"only {fmt(self.remaining)} is left")
        self.decisions.append(decision)
        orders: list[ChildOrder] = []
        request = self.request
        for index, alloc in enumerate(decision.children, start=1):
            child_id = f"{self.order_id}-{decision.round}-{index}"
            if child_id in self.children:
                raise Conflict("duplicate_child", f"child {child_id} exists already")
            self.children[child_id] = ChildState(
                child_id, alloc.venue, alloc.action, alloc.quantity, alloc.limit_price, alloc.iso, decision.decision_id,
                open=alloc.quantity,
            )
            orders.append(
                ChildOrder(
                    child_id, request.symbol, request.side, alloc.quantity, alloc.limit_price,
                    "gtc" if alloc.action == REST else "ioc", alloc.iso, self.order_id,
                )
            )
        return orders

    def apply(self, report: ExecutionReport) -> bool:
        """Fold one execution report of a child in; False when it was applied already."""
        child = self.children.get(report.order_id)
        if child is None:
            raise ValidationFailed("unknown_child", f"{report.order_id} is not a child of {self.order_id}", "order_id")
        if report.venue != child.venue:
            raise ValidationFailed("wrong_venue", f"{report.order_id} was sent to {child.venue}", "venue")
        if report.report_id in self._applied:
            return False
        filled = report.filled_quantity
        if child.filled + filled > child.quantity:
            raise Conflict("overfill", f"{report.order_id} would fill more than its {fmt(child.quantity)}")
        self._applied.add(report.report_id)
        child.filled += filled
        child.notional += report.notional
        child.fees += report.fees
        self.filled += filled
        self.notional += report.notional
        self.fees += report.fees
        child.status = report.status
        child.open = child.quantity - child.filled if report.status in LIVE else ZERO
        return True

    def close(self, reason: str) -> None:
        """No more routing for this parent: what is not filled once its children are done stays
        unfilled (the children still working are cancelled by the caller)."""
        if self.closed_reason is None:
            self.closed_reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "symbol": self.request.symbol,
            "side": self.request.side.value,
            "strategy": self.request.strategy.value,
            "quantity": fmt(self.quantity),
            "filled": fmt(self.filled),
            "open": fmt(self.open),
            "remaining": fmt(self.remaining),
            "average_price": None if self.average_price is None else fmt(self.average_price),
            "notional": fmt(self.notional),
            "fees": fmt(self.fees),
            "status": self.status.value,
            "closed_reason": self.closed_reason,
            "children": [c.to_dict() for c in self.children.values()],
            "decisions": [d.decision_id for d in self.decisions],
        }
