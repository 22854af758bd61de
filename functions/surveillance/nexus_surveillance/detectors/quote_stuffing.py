"""Quote stuffing: bursts of orders and cancels with a high order-to-trade ratio.

Per owner and symbol, over a sliding ``window_ms``: the order messages (acceptances, cancels,
replaces) number at least ``min_messages`` and the acceptances are at least
``min_order_to_trade`` times the owner's fills in the window. One alert per burst: the burst lasts
while the condition holds again within ``window_ms`` of its last hold.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000
_WHAT = {"accepted": 0, "cancelled": 1, "replace": 1, "fill": 2}


class QuoteStuffingThresholds(Thresholds):
    window_ms: int = Field(default=1_000, gt=0, le=600_000)
    min_messages: int = Field(default=200, ge=2, le=10_000_000)
    min_order_to_trade: Decimal = Field(default=Decimal(20), gt=0, le=1_000_000)


class QuoteStuffingDetector(PatternDetector[QuoteStuffingThresholds]):
    name = "quote_stuffing"
    thresholds_model = QuoteStuffingThresholds
    KINDS = frozenset({"accepted", "cancelled", "replace", "fill"})
    _STATE = ("_flow", "_bursts")

    def _configure(self) -> None:
        self._window = self.thresholds.window_ms * _MS
        self._min_messages = self.thresholds.min_messages
        self._ratio = self.thresholds.min_order_to_trade

    def _reset(self) -> None:
        super()._reset()
        # (symbol, owner) -> [deque of (ts, what) with what 0 accepted, 1 cancel/replace, 2 fill,
        #   accepted count, message count, fill count]
        self._flow: dict[tuple[str, str], list[Any]] = {}
        # (symbol, owner) -> ts of the last hold of the open burst (alerted already)
        self._bursts: dict[tuple[str, str], int] = {}

    def _apply(self, e: SurvEvent) -> list[Alert]:
        what = _WHAT[e.kind]
        key = (e.symbol, e.user_id or e.account_id)
        flow = self._flow.get(key)
        if flow is None:
            flow = self._flow[key] = [deque(), 0, 0, 0]
        items: deque[tuple[int, int, str]] = flow[0]
        ts = e.ts
        horizon = ts - self._window
        while items and items[0][0] <= horizon:
            old = items.popleft()[1]
            if old == 2:
                flow[3] -= 1
            else:
                flow[2] -= 1
                if old == 0:
                    flow[1] -= 1
        items.append((ts, what, e.event_id))
        if what == 2:
            flow[3] += 1
            return []
        flow[2] += 1
        if what == 0:
            flow[1] += 1
        if flow[2] < self._min_messages or flow[1] < self._ratio * max(1, flow[3]):
            return []
        t = self.thresholds
        last = self._bursts.get(key)
        self._bursts[key] = ts
        if last is not None and ts - last <= self._window:
            return []
        first = items[0]
        ratio = Decimal(flow[1]) / max(1, flow[3])
        return [self._alert(
            severity="MEDIUM",
            symbol=e.symbol,
            keys=[e.owner, first[2]],
            accounts=[e.account_id],
            users=[e.owner],
            start_ns=first[0],
            end_ns=ts,
            score=float(min(Decimal(1), Decimal("0.5") + Decimal(flow[2]) / (4 * t.min_messages))),
            evidence={
                "first_event_id": first[2],
                "last_event_id": e.event_id,
                "messages": flow[2],
                "orders": flow[1],
                "fills": flow[3],
                "order_to_trade": figure(ratio.quantize(Decimal("0.1"))),
                "window_ms": t.window_ms,
            },
        )]

    def _prune(self, now_ns: int) -> None:
        self._flow = {k: f for k, f in self._flow.items() if f[0] and now_ns - f[0][-1][0] < self._window}
        self._bursts = {k: ts for k, ts in self._bursts.items() if now_ns - ts <= self._window}
