"""Spoofing: a large order cancelled quickly, without execution, while its owner trades on the
other side.

An order is *large* from ``min_quantity``; it qualifies when it is cancelled within
``max_lifetime_ms`` of its acceptance having filled at most ``max_filled_fraction`` of it. The
owner's fills on the other side from ``pre_window_ms`` before the order's acceptance to
``post_window_ms`` after its cancel are its counterpart; the alert needs the cancelled quantity to
be at least ``min_size_ratio`` times the real side (a spoof dwarfs the real order; a market
maker's two quotes are alike): the real side counts as the larger of the quantity traded and the
open quantity its orders showed before they traded. A counterpart fill after the cancel completes the alert when it
comes. The owner's further spoof orders around the same fills fold into the first alert. Orders on
more than ``max_levels`` prices of that side during the order's life are layering, left to the
layering detector.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000


class SpoofingThresholds(Thresholds):
    min_quantity: Decimal = Field(default=Decimal(1000), gt=0, le=Decimal(10) ** 12)
    max_lifetime_ms: int = Field(default=10_000, gt=0, le=3_600_000)
    max_filled_fraction: Decimal = Field(default=Decimal("0.1"), ge=0, le=1)
    min_size_ratio: Decimal = Field(default=Decimal(3), ge=1, le=1_000_000)
    pre_window_ms: int = Field(default=2_000, ge=0, le=3_600_000)
    post_window_ms: int = Field(default=2_000, ge=0, le=3_600_000)
    # large orders on more price levels than this are layering (the layering detector's alert)
    max_levels: int = Field(default=2, ge=1, le=1000)


class SpoofingDetector(PatternDetector[SpoofingThresholds]):
    name = "spoofing"
    thresholds_model = SpoofingThresholds
    _STATE = ("_orders", "_fills", "_pending", "_last_alert", "_placed")

    def _configure(self) -> None:
        t = self.thresholds
        self._min_qty = t.min_quantity
        self._life = t.max_lifetime_ms * _MS
        self._pre = t.pre_window_ms * _MS
        self._post = t.post_window_ms * _MS
        self._keep = self._life + self._pre + self._post

    def _reset(self) -> None:
        super()._reset()
        # (symbol, order_id) -> [accepted_ts, side, quantity, filled, owner, account]: large orders only
        self._orders: dict[tuple[str, str], list[Any]] = {}
        # (symbol, owner) -> deque of (ts, side, quantity, trade_id, account, order_id, order's open
        #   quantity before the fill)
        self._fills: dict[tuple[str, str], deque[tuple[int, str, Decimal, str, str, str, Decimal]]] = {}
        # (symbol, owner) -> list of qualifying cancels waiting for a counterpart fill:
        # (cancel_ts, accepted_ts, side, quantity, order_id, account)
        self._pending: dict[tuple[str, str], list[tuple[int, int, str, Decimal, str, str]]] = {}
        # (symbol, owner) -> (ts, trade ids) of the last alert, to fold the same episode
        self._last_alert: dict[tuple[str, str], tuple[int, list[str]]] = {}
        # (symbol, owner) -> deque of (accepted_ts, side, price) of the owner's recent orders
        self._placed: dict[tuple[str, str], deque[tuple[int, str, Decimal | None]]] = {}

    def _apply(self, e: SurvEvent) -> list[Alert]:
        kind = e.kind
        if kind == "fill":
            return self._on_fill(e)
        if kind == "accepted":
            qty = e.quantity
            if qty is None or e.side is None:
                return []
            owner = e.user_id or e.account_id
            if qty >= self._min_qty:
                self._orders[(e.symbol, e.order_id)] = [e.ts, e.side, qty, Decimal(0), owner, e.account_id]
            placed = self._placed.get((e.symbol, owner))
            if placed is None:
                placed = self._placed[(e.symbol, owner)] = deque()
            horizon = e.ts - 2 * self._life
            while placed and placed[0][0] < horizon:
                placed.popleft()
            placed.append((e.ts, e.side, e.price))
            return []
        if kind == "cancelled":
            order = self._orders.pop((e.symbol, e.order_id), None)
            if order is None:
                return []
            return self._on_cancel(e, order)
        if kind == "expired" or kind == "rejected":
            self._orders.pop((e.symbol, e.order_id), None)
        elif kind == "replace":
            key = (e.symbol, e.order_id)
            order = self._orders.get(key)
            if order is not None and e.quantity is not None:
                order[2] = e.quantity
        return []

    def _on_fill(self, e: SurvEvent) -> list[Alert]:
        key = (e.symbol, e.owner)
        ts = e.ts
        fills = self._fills.get(key)
        if fills is None:
            fills = self._fills[key] = deque()
        horizon = ts - self._keep
        while fills and fills[0][0] < horizon:
            fills.popleft()
        qty = e.fill_quantity or Decimal(0)
        shown = qty + e.leaves_quantity if e.leaves_quantity is not None else qty
        fills.append((ts, e.side or "", qty, e.trade_id or "", e.account_id, e.order_id, shown))
        order = self._orders.get((e.symbol, e.order_id))
        if order is not None:
            order[3] += qty
            if e.leaves_quantity is not None and e.leaves_quantity <= 0:
                del self._orders[(e.symbol, e.order_id)]  # done: it can no longer be cancelled
        pending = self._pending.get(key)
        if not pending:
            return []
        alerts: list[Alert] = []
        keep: list[tuple[int, int, str, Decimal, str, str]] = []
        for item in pending:
            cancel_ts, accepted_ts, side, quantity, order_id, account = item
            if ts - cancel_ts > self._post:
                continue
            if e.side == side:
                keep.append(item)
                continue
            alert = self._judge(e.symbol, e.owner, ts, accepted_ts, cancel_ts, side, quantity, order_id, account)
            if alert is None:
                keep.append(item)
            else:
                alerts.append(alert)
        if keep:
            self._pending[key] = keep
        else:
            del self._pending[key]
        return alerts

    def _on_cancel(self, e: SurvEvent, order: list[Any]) -> list[Alert]:
        accepted_ts, side, quantity, filled, owner, account = order
        if e.ts - accepted_ts > self._life or filled > quantity * self.thresholds.max_filled_fraction:
            return []
        cancelled = quantity - filled
        alert = self._judge(e.symbol, owner, e.ts, accepted_ts, e.ts, side, cancelled, e.order_id, account)
        if alert is not None:
            return [alert]
        if self._post > 0:
            key = (e.symbol, owner)
            pending = [p for p in self._pending.get(key, ()) if e.ts - p[0] <= self._post]
            pending.append((e.ts, accepted_ts, side, cancelled, e.order_id, account))
            self._pending[key] = pending
        return []

    def _judge(
        self, symbol: str, owner: str, now: int, accepted_ts: int, cancel_ts: int, side: str,
        quantity: Decimal, order_id: str, account: str,
    ) -> Alert | None:
        fills = self._fills.get((symbol, owner))
        if not fills:
            return None
        lo = accepted_ts - self._pre
        hi = min(cancel_ts + self._post, now)
        counter = []
        for f in reversed(fills):  # newest first: stop at the window's start
            if f[0] < lo:
                break
            if f[1] != side and f[0] <= hi:
                counter.append(f)
        if not counter:
            return None
        counter.reverse()
        traded = sum((f[2] for f in counter), Decimal(0))
        shown: dict[str, Decimal] = {}
        for f in counter:
            if f[6] > shown.get(f[5], Decimal(0)):
                shown[f[5]] = f[6]
        genuine = max(traded, sum(shown.values(), Decimal(0)))
        ratio = quantity / genuine if genuine > 0 else Decimal(10) ** 6
        if ratio < self.thresholds.min_size_ratio:
            return None
        placed = self._placed.get((symbol, owner), ())
        levels = {p[2] for p in placed if p[1] == side and accepted_ts - self._life <= p[0] <= cancel_ts}
        if len(levels) > self.thresholds.max_levels:
            return None  # layered: the layering detector's pattern
        trade_ids = sorted({f[3] for f in counter})
        last = self._last_alert.get((symbol, owner))
        if last is not None and set(trade_ids) <= set(last[1]):
            return None  # the same episode: folded into the alert raised already
        self._last_alert[(symbol, owner)] = (now, trade_ids)
        accounts = {account} | {f[4] for f in counter}
        score = float(min(Decimal(1), ratio / (self.thresholds.min_size_ratio * 4)))
        return self._alert(
            severity="HIGH",
            symbol=symbol,
            keys=[order_id],
            accounts=accounts,
            users=[owner],
            start_ns=min(accepted_ts, counter[0][0]),
            end_ns=max(cancel_ts, counter[-1][0]),
            score=0.5 + score / 2,
            evidence={
                "order_ids": [order_id],
                "trade_ids": trade_ids,
                "side": side,
                "cancelled_quantity": figure(quantity),
                "lifetime_ms": (cancel_ts - accepted_ts) // _MS,
                "opposite_traded_quantity": figure(traded),
                "opposite_order_quantity": figure(genuine),
                "size_ratio": figure(ratio.quantize(Decimal("0.01"))),
            },
        )

    def _prune(self, now_ns: int) -> None:
        self._orders = {k: o for k, o in self._orders.items() if now_ns - o[0] <= self._life}
        self._fills = {k: f for k, f in self._fills.items() if f and now_ns - f[-1][0] <= self._keep}
        self._placed = {k: p for k, p in self._placed.items() if p and now_ns - p[-1][0] <= 2 * self._life}
        self._pending = {k: p for k, p in self._pending.items() if any(now_ns - x[0] <= self._post for x in p)}
        self._last_alert = {k: a for k, a in self._last_alert.items() if now_ns - a[0] <= self._keep}
