"""Momentum ignition: aggressive orders through several price levels, then a quick fill on the
opposite side at the moved price.

An owner's taker fills on one side within ``ignition_window_ms`` form a burst; it *ignites* when
they traded at ``min_levels`` distinct prices and moved the price by ``min_move_bps`` from the
burst's first fill to its furthest. The alert comes when, within ``reversal_window_ms`` of the
burst's last fill, the owner's fills on the other side (passive or aggressive) at prices that keep
at least ``min_capture`` of the move reach ``min_unwind_fraction`` of the burst's quantity.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000
_BPS = Decimal(10_000)

Fill = tuple[int, Decimal, Decimal, str, str]  # ts, price, quantity, trade id, account


class MomentumIgnitionThresholds(Thresholds):
    ignition_window_ms: int = Field(default=3_000, gt=0, le=3_600_000)
    min_levels: int = Field(default=3, ge=2, le=1000)
    min_move_bps: Decimal = Field(default=Decimal(10), gt=0, le=10_000)
    reversal_window_ms: int = Field(default=30_000, gt=0, le=3_600_000)
    min_capture: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    min_unwind_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=10)


class MomentumIgnitionDetector(PatternDetector[MomentumIgnitionThresholds]):
    name = "momentum_ignition"
    thresholds_model = MomentumIgnitionThresholds
    KINDS = frozenset({"fill"})
    _STATE = ("_bursts", "_ignited")

    def _configure(self) -> None:
        t = self.thresholds
        self._window = t.ignition_window_ms * _MS
        self._reversal = t.reversal_window_ms * _MS

    def _reset(self) -> None:
        super()._reset()
        # (symbol, owner) -> [side, deque of taker fills]
        self._bursts: dict[tuple[str, str], list[Any]] = {}
        # (symbol, owner) -> [side, start price, far price, start ts, end ts, burst qty, trade ids,
        #   unwound qty, unwind trade ids, accounts]
        self._ignited: dict[tuple[str, str], list[Any]] = {}

    def _apply(self, e: SurvEvent) -> list[Alert]:
        if e.kind != "fill":
            return []
        key = (e.symbol, e.owner)
        alerts: list[Alert] = []
        ignited = self._ignited.get(key)
        if ignited is not None:
            if e.ts - ignited[4] > self._reversal:
                del self._ignited[key]
                ignited = None
            elif e.side != ignited[0]:
                alert = self._unwind(e, ignited)
                if alert is not None:
                    del self._ignited[key]
                    alerts.append(alert)
                    ignited = None
        if e.aggressor:
            self._burst(e, key, ignited)
        return alerts

    def _burst(self, e: SurvEvent, key: tuple[str, str], ignited: list[Any] | None) -> None:
        price = e.fill_price or Decimal(0)
        qty = e.fill_quantity or Decimal(0)
        burst = self._bursts.get(key)
        if burst is None or burst[0] != e.side:
            burst = self._bursts[key] = [e.side, deque()]
        fills: deque[Fill] = burst[1]
        horizon = e.ts - self._window
        while fills and fills[0][0] < horizon:
            fills.popleft()
        fills.append((e.ts, price, qty, e.trade_id or e.event_id, e.account_id))
        if len(fills) < self.thresholds.min_levels:
            return
        prices = {f[1] for f in fills}
        if len(prices) < self.thresholds.min_levels:
            return
        start = fills[0][1]
        far = max(prices) if e.side == "buy" else min(prices)
        if start <= 0 or abs(far - start) * _BPS < start * self.thresholds.min_move_bps:
            return
        if (far > start) != (e.side == "buy"):
            return
        total = sum((f[2] for f in fills), Decimal(0))
        ids = [f[3] for f in fills]
        accounts = {f[4] for f in fills}
        if ignited is not None and ignited[0] == e.side and ignited[3] <= fills[0][0] <= ignited[4]:
            # the same burst grows: keep its start, extend its reach
            ignited[2], ignited[4], ignited[5] = far, e.ts, total
            ignited[6] = sorted(set(ignited[6]) | set(ids))
            ignited[9] = sorted(set(ignited[9]) | accounts)
            return
        self._ignited[key] = [e.side, start, far, fills[0][0], e.ts, total, ids, Decimal(0), [], sorted(accounts)]

    def _unwind(self, e: SurvEvent, ignited: list[Any]) -> Alert | None:
        side, start, far = ignited[0], ignited[1], ignited[2]
        price = e.fill_price or Decimal(0)
        level = start + (far - start) * self.thresholds.min_capture
        if (side == "buy" and price < level) or (side == "sell" and price > level):
            return None
        ignited[7] += e.fill_quantity or Decimal(0)
        ignited[8].append(e.trade_id or e.event_id)
        if e.account_id not in ignited[9]:
            ignited[9].append(e.account_id)
        if ignited[7] < ignited[5] * self.thresholds.min_unwind_fraction:
            return None
        move_bps = abs(far - start) * _BPS / start
        return self._alert(
            severity="HIGH",
            symbol=e.symbol,
            keys=ignited[6],
            accounts=ignited[9],
            users=[e.owner],
            start_ns=ignited[3],
            end_ns=e.ts,
            score=float(min(Decimal(1), Decimal("0.5") + move_bps / (self.thresholds.min_move_bps * 8))),
            evidence={
                "trade_ids": ignited[6],
                "unwind_trade_ids": list(ignited[8]),
                "side": side,
                "start_price": figure(start),
                "moved_to": figure(far),
                "move_bps": figure(move_bps.quantize(Decimal("0.1"))),
                "burst_quantity": figure(ignited[5]),
                "unwound_quantity": figure(ignited[7]),
            },
        )

    def _prune(self, now_ns: int) -> None:
        self._bursts = {k: b for k, b in self._bursts.items() if b[1] and now_ns - b[1][-1][0] <= self._window}
        self._ignited = {k: i for k, i in self._ignited.items() if now_ns - i[4] <= self._reversal}
