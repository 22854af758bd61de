"""Layering (FINRA Rule 5210, Supplementary Material .03, pattern A): several orders at several
price levels on one side, an execution on the opposite side, then those orders cancelled.

When an owner's order fills, the owner's live orders on the other side placed within
``build_window_ms`` before the fill are the candidate layers: at least ``min_orders`` of them at
``min_levels`` distinct prices, quantity at least ``min_layer_ratio`` times the fill, while the
owner's other orders on the fill's side are at most ``max_same_side_ratio`` of the layers (a market
maker's ladder is two-sided). The alert comes when ``min_cancelled_fraction`` of the layers, over
``min_levels`` prices, are cancelled within ``cancel_window_ms`` of the fill. Further fills while
the same layers stand join the same candidate.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000


class LayeringThresholds(Thresholds):
    min_orders: int = Field(default=3, ge=2, le=1000)
    min_levels: int = Field(default=3, ge=2, le=1000)
    build_window_ms: int = Field(default=30_000, gt=0, le=3_600_000)
    cancel_window_ms: int = Field(default=15_000, gt=0, le=3_600_000)
    min_cancelled_fraction: Decimal = Field(default=Decimal("0.75"), gt=0, le=1)
    min_layer_ratio: Decimal = Field(default=Decimal(1), ge=0, le=1_000_000)
    max_same_side_ratio: Decimal = Field(default=Decimal("0.5"), ge=0, le=1_000)


class LayeringDetector(PatternDetector[LayeringThresholds]):
    name = "layering"
    thresholds_model = LayeringThresholds
    _STATE = ("_orders", "_live", "_candidates")

    def _configure(self) -> None:
        t = self.thresholds
        self._build = t.build_window_ms * _MS
        self._cancel = t.cancel_window_ms * _MS

    def _reset(self) -> None:
        super()._reset()
        # (symbol, order_id) -> [owner, side, price, open quantity, accepted_ts, account]
        self._orders: dict[tuple[str, str], list[Any]] = {}
        # (symbol, owner) -> {order_id: None}: the owner's live orders (insertion ordered)
        self._live: dict[tuple[str, str], dict[str, None]] = {}
        # (symbol, owner) -> candidates: [deadline, layer side, {order_id: [price, qty, ts]}, trade ids,
        #   fill_ts, cancelled order ids, fill qty, alerted, accounts]
        self._candidates: dict[tuple[str, str], list[list[Any]]] = {}

    def _apply(self, e: SurvEvent) -> list[Alert]:
        kind = e.kind
        if kind == "accepted":
            if e.side is not None and e.price is not None and e.quantity is not None:
                owner = e.owner
                self._orders[(e.symbol, e.order_id)] = [owner, e.side, e.price, e.quantity, e.ts, e.account_id]
                live = self._live.get((e.symbol, owner))
                if live is None:
                    live = self._live[(e.symbol, owner)] = {}
                live[e.order_id] = None
            return []
        if kind == "fill":
            return self._on_fill(e)
        if kind == "cancelled":
            order = self._drop(e.symbol, e.order_id)
            if order is None:
                return []
            return self._on_cancel(e, order[0])
        if kind == "expired" or kind == "rejected":
            self._drop(e.symbol, e.order_id)
        elif kind == "replace":
            order = self._orders.get((e.symbol, e.order_id))
            if order is not None:
                if e.price is not None:
                    order[2] = e.price
                if e.leaves_quantity is not None:
                    order[3] = e.leaves_quantity
        return []

    def _drop(self, symbol: str, order_id: str) -> list[Any] | None:
        order = self._orders.pop((symbol, order_id), None)
        if order is not None:
            live = self._live.get((symbol, order[0]))
            if live is not None:
                live.pop(order_id, None)
                if not live:
                    del self._live[(symbol, order[0])]
        return order

    def _on_fill(self, e: SurvEvent) -> list[Alert]:
        symbol, owner, ts = e.symbol, e.owner, e.ts
        key = (symbol, owner)
        order = self._orders.get((symbol, e.order_id))
        if order is not None and e.leaves_quantity is not None:
            order[3] = e.leaves_quantity
            if e.leaves_quantity <= 0:
                self._drop(symbol, e.order_id)
        live = self._live.get(key)
        if not live:
            return []
        t = self.thresholds
        fill_side = e.side
        layers: dict[str, list[Any]] = {}
        same_side = Decimal(0)
        horizon = ts - self._build
        orders = self._orders
        for order_id in live:
            o = orders[(symbol, order_id)]
            if o[1] == fill_side:
                if order_id != e.order_id:
                    same_side += o[3]
            elif o[4] >= horizon:
                layers[order_id] = [o[2], o[3], o[4]]
        if len(layers) < t.min_orders:
            return []
        if len({v[0] for v in layers.values()}) < t.min_levels:
            return []
        layered = sum((v[1] for v in layers.values()), Decimal(0))
        fill_qty = e.fill_quantity or Decimal(0)
        if layered < fill_qty * t.min_layer_ratio or same_side > layered * t.max_same_side_ratio:
            return []
        candidates = [c for c in self._candidates.get(key, ()) if not c[7] and c[0] >= ts]
        layer_side = "sell" if fill_side == "buy" else "buy"
        for c in candidates:
            if c[1] == layer_side and not set(c[2]).isdisjoint(layers):
                c[2].update(layers)
                c[3].append(e.trade_id or e.event_id)
                c[6] += fill_qty
                c[8].add(e.account_id)
                c[0] = ts + self._cancel
                break
        else:
            accounts = {e.account_id} | {orders[(symbol, oid)][5] for oid in layers}
            candidates.append([ts + self._cancel, layer_side, layers, [e.trade_id or e.event_id], ts, [], fill_qty,
                               False, accounts])
        self._candidates[key] = candidates
        return []

    def _on_cancel(self, e: SurvEvent, owner: str) -> list[Alert]:
        key = (e.symbol, owner)
        candidates = self._candidates.get(key)
        if not candidates:
            return []
        t = self.thresholds
        alerts: list[Alert] = []
        for c in candidates:
            if c[7] or e.order_id not in c[2] or e.ts > c[0]:
                continue
            c[5].append(e.order_id)
            layers: dict[str, list[Any]] = c[2]
            need = max(t.min_orders, math.ceil(len(layers) * t.min_cancelled_fraction))
            if len(c[5]) < need:
                continue
            prices = {layers[oid][0] for oid in c[5]}
            if len(prices) < t.min_levels:
                continue
            c[7] = True
            cancelled_qty = sum((layers[oid][1] for oid in c[5]), Decimal(0))
            first_layer = min(v[2] for v in layers.values())
            alerts.append(self._alert(
                severity="HIGH",
                symbol=e.symbol,
                keys=sorted(c[2]) + c[3][:1],
                accounts=c[8],
                users=[owner],
                start_ns=min(first_layer, c[4]),
                end_ns=e.ts,
                score=min(1.0, 0.5 + len(prices) / (4 * t.min_levels)),
                evidence={
                    "order_ids": sorted(c[5]),
                    "trade_ids": list(c[3]),
                    "layer_side": c[1],
                    "levels": len(prices),
                    "layer_prices": [figure(p) for p in sorted(prices)],
                    "cancelled_quantity": figure(cancelled_qty),
                    "executed_quantity": figure(c[6]),
                },
            ))
        if all(c[7] or c[0] < e.ts for c in candidates):
            del self._candidates[key]
        return alerts

    def _prune(self, now_ns: int) -> None:
        kept = {}
        for key, candidates in self._candidates.items():
            alive = [c for c in candidates if not c[7] and c[0] >= now_ns]
            if alive:
                kept[key] = alive
        self._candidates = kept
